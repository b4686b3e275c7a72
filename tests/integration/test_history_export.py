"""eventshop-history export (issue 11, item 1), black box: a third-party reader (fastavro, no
registry) opens every file; the records per partition are what a confluent-kafka read_committed
consumer counts over the manifest's range; a re-run, and a resumed run, give the same bytes; and
after forgetting a user, not one byte of the export holds that user's personal data, in clear or
sealed (the sealed blobs of its events, its blind index), while a live user's stay sealed."""
import base64
import glob
import hashlib
import json
import os
import shutil
import subprocess
import uuid

import fastavro
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import env, mint_token, read_topic, unique

WAIT = {"Prefer": "wait=15"}
CONTEXTS = "catalog,users"


def history(*args, timeout=300):
    exe = os.path.join(env("ES_BUILD"), "history", "eventshop-history")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


def register(api_url, tag):
    email = f"hist-{tag}@example.test"
    r = requests.post(f"{api_url}/v1/users", headers=WAIT, timeout=30,
                      json={"email": email, "password": f"history password {tag}",
                            "name": f"History Name {tag}", "role": "customer",
                            "phone": f"+44 20 {int(tag[:8], 16) % 10**8:08d}"})
    assert r.status_code == 201, r.text
    return r.headers["Location"].rsplit("/", 1)[1], email, f"History Name {tag}"


def to_positions(manifest):
    """The manifest's end positions as a --to POSITIONS argument."""
    return ",".join(f"{t}:{p}={r['to']}" for t, tv in manifest["topics"].items()
                    for p, r in tv["partitions"].items())


@pytest.fixture(scope="module")
def exported(api_url, tmp_path_factory):
    """Events on both topics, one user forgotten and one live, then an export of them."""
    vendor = f"v-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {mint_token('vendor', vendor, vendor)}", **WAIT}
    for i in range(7):
        r = requests.post(f"{api_url}/v1/products", headers=auth, timeout=30,
                          json={"sku": f"HIS-{uuid.uuid4().hex[:8]}", "name": f"History {i}",
                                "category": "k", "currency": "EUR"})
        assert r.status_code == 201, r.text
    gone = register(api_url, uuid.uuid4().hex[:10])
    live = register(api_url, uuid.uuid4().hex[:10])
    admin = {"Authorization": f"Bearer {mint_token('admin', 'history-suite')}", **WAIT}
    r = requests.delete(f"{api_url}/v1/users/{gone[0]}", headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    out = tmp_path_factory.mktemp("export") / "a"
    p = history("export", "--out", str(out), "--contexts", CONTEXTS, "--roll", "5")
    assert p.returncode == 0, p.stderr
    assert "export:" in p.stderr  # progress lines
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    return {"dir": out, "manifest": manifest, "gone": gone, "live": live}


def files_of(d):
    return sorted(glob.glob(os.path.join(d, "*", "partition=*", "*.avro")))


def test_fastavro_reads_every_file_without_registry(exported):
    files = files_of(exported["dir"])
    assert files
    types = set()
    for path in files:
        topic, part = path.split(os.sep)[-3], int(path.split(os.sep)[-2].split("=")[1])
        first = int(os.path.basename(path).rsplit("+", 1)[1].split(".")[0])
        with open(path, "rb") as f:
            r = fastavro.reader(f)
            schema = r.writer_schema
            recs = list(r)
        assert 0 < len(recs) <= 5
        assert recs[0]["offset"] == first and all(x["topic"] == topic for x in recs)
        assert all(x["partition"] == part for x in recs)
        # the schema text keeps logical types and defaults
        text = json.dumps(schema)
        assert "timestamp-millis" in text and '"default"' in text
        for x in recs:
            types.add(x["event_type"])
            assert x["payload"]["metadata"]["aggregate_id"] == x["aggregate_id"]
    assert "eventshop.catalog.ProductListed" in types
    assert "eventshop.users.UserRegistered" in types


def count_committed(brokers, topic, part, lo, hi):
    """Records a confluent-kafka read_committed consumer reads in [lo, hi) of topic/part."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("hist"),
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, part, lo)])
    n = 0
    try:
        while True:
            m = c.poll(5)
            assert m is not None, f"{topic}[{part}] stalled"
            if m.error():
                assert m.error().code() == -191, m.error()
                if c.position([TopicPartition(topic, part)])[0].offset >= hi:
                    return n
                continue
            if m.offset() >= hi:
                return n
            n += m.value() is not None
            if m.offset() + 1 >= hi:
                return n
    finally:
        c.close()


def test_counts_match_a_read_committed_consumer(exported, brokers):
    m = exported["manifest"]
    assert set(m["topics"]) == {"catalog.events", "users.events"}
    for topic, tv in m["topics"].items():
        for p, r in tv["partitions"].items():
            assert r["complete"]
            want = count_committed(brokers, topic, int(p), r["from"], r["to"]) \
                if r["to"] > r["from"] else 0
            assert r["records"] == want == sum(f["records"] for f in r["files"]), (topic, p)
            for f in r["files"]:
                with open(os.path.join(exported["dir"], f["path"]), "rb") as fp:
                    data = fp.read()
                assert hashlib.sha256(data).hexdigest() == f["sha256"]


def test_rerun_and_resume_give_identical_bytes(exported, tmp_path):
    a = exported["dir"]
    b = tmp_path / "b"
    p = history("export", "--out", str(b), "--contexts", CONTEXTS, "--roll", "5",
                "--to", to_positions(exported["manifest"]))
    assert p.returncode == 0, p.stderr
    rel = lambda d: [os.path.relpath(f, d) for f in files_of(d)]  # noqa: E731
    assert rel(a) == rel(b)
    for f in rel(a):
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f
    # an interrupted run: the last file of each partition and its completion not yet recorded
    with open(b / "manifest.json") as f:
        m = json.load(f)
    dropped = 0
    for tv in m["topics"].values():
        for r in tv["partitions"].values():
            r["complete"] = False
            if r["files"]:
                last = r["files"].pop()
                r["records"] -= last["records"]
                os.unlink(os.path.join(b, last["path"]))
                dropped += 1
    assert dropped
    with open(b / "manifest.json", "w") as f:
        json.dump(m, f)
    p = history("export", "--out", str(b), "--contexts", CONTEXTS, "--roll", "5",
                "--to", to_positions(exported["manifest"]))
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stderr
    assert rel(a) == rel(b)
    for f in rel(a):
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f
    # another run's options are refused in the same directory
    p = history("export", "--out", str(b), "--contexts", "catalog")
    assert p.returncode == 1 and "another" in p.stderr


def test_the_json_path_writes_the_same_bytes(exported, tmp_path):
    """--json-path decodes and re-encodes every event (the fast path copies the bodies written
    with the current schema): the same files, byte for byte, the forgotten user's shredded."""
    a = exported["dir"]
    c = tmp_path / "c"
    p = history("export", "--out", str(c), "--contexts", CONTEXTS, "--roll", "5", "--json-path",
                "--to", to_positions(exported["manifest"]))
    assert p.returncode == 0, p.stderr
    rel = lambda d: [os.path.relpath(f, d) for f in files_of(d)]  # noqa: E731
    assert rel(a) == rel(c)
    for f in rel(a):
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(c, f), "rb").read(), f


def sealed_blobs(brokers, registry, user_id):
    """The raw bytes of every sealed field and the blind index of user_id's events."""
    blobs = []
    for m in read_topic(brokers, registry, "users.events"):
        v = m["value"]
        if not v or v.get("user_id") != user_id:
            continue
        for k, x in v.items():
            if k.endswith("_enc") and x:
                blobs.append(x if isinstance(x, bytes) else base64.b64decode(x))
            if k == "email_index":
                blobs.append(x.encode())
    return blobs


def test_a_forgotten_user_leaves_nothing_openable(exported, brokers, registry):
    gone_id, gone_email, gone_name = exported["gone"]
    live_id = exported["live"][0]
    gone_blobs = sealed_blobs(brokers, registry, gone_id)
    live_blobs = sealed_blobs(brokers, registry, live_id)
    assert len(gone_blobs) >= 4 and len(live_blobs) >= 4
    data = b"".join(open(f, "rb").read() for f in files_of(exported["dir"]))
    # the control: the live user's sealed fields and index are there, sealed
    assert all(b in data for b in live_blobs)
    for needle in [gone_email.encode(), gone_name.encode(), *gone_blobs]:
        assert needle not in data, needle[:40]
    # and the forgotten user's records say what was shredded
    shredded = []
    for f in files_of(exported["dir"]):
        with open(f, "rb") as fp:
            for x in fastavro.reader(fp):
                if str(x["payload"].get("user_id")) == gone_id and x["shredded"]:
                    shredded.append(x)
    reg = [x for x in shredded if x["event_type"] == "eventshop.users.UserRegistered"]
    assert reg, "the forgotten user's registration is not marked"
    assert {"email_index", "email_enc", "name_enc", "password_hash_enc"} <= set(reg[0]["shredded"])
    assert reg[0]["payload"]["email_enc"] is None and reg[0]["payload"]["email_index"] is None


def test_bad_specs_are_usage_errors(tmp_path):
    p = history("export", "--out", str(tmp_path / "x"), "--to", "yesterday")
    assert p.returncode == 2 and "ISO-8601" in p.stderr
    p = history("export", "--out", str(tmp_path / "x"), "--from", "catalog.events:x=1")
    assert p.returncode == 2 and "position" in p.stderr


def test_time_bounds_resolve_through_timestamps(exported, tmp_path):
    """--to at an instant before everything: an empty export whose manifest says so."""
    d = tmp_path / "t"
    p = history("export", "--out", str(d), "--contexts", "catalog", "--to", "2001-01-01T00:00:00Z")
    assert p.returncode == 0, p.stderr
    with open(d / "manifest.json") as f:
        m = json.load(f)
    assert m["to_time_ms"] == 978307200000
    for r in m["topics"]["catalog.events"]["partitions"].values():
        assert r["to"] == r["from"] and r["records"] == 0
    assert files_of(d) == []
    shutil.rmtree(d)


def test_unseal_opens_live_users_only(exported, tmp_path):
    """--unseal (the keys database's credentials): a live user's fields in clear, listed in
    'unsealed'; the forgotten user's still null."""
    d = tmp_path / "u"
    e = {**os.environ, "EVENTSHOP_MYSQL_KEYS_USER": "eventshop_keys",
         "EVENTSHOP_MYSQL_KEYS_PASSWORD_FILE": os.path.join(env("ES_STATE"), "secrets",
                                                            "mysql-keys.password")}
    exe = os.path.join(env("ES_BUILD"), "history", "eventshop-history")
    p = subprocess.run([exe, "export", "--out", str(d), "--contexts", "users", "--unseal"],
                       capture_output=True, text=True, timeout=300, env=e)
    assert p.returncode == 0, p.stderr
    live_id, _, live_name = exported["live"]
    seen = {}
    for f in files_of(d):
        with open(f, "rb") as fp:
            for x in fastavro.reader(fp):
                if x["event_type"] == "eventshop.users.UserRegistered":
                    seen[str(x["payload"]["user_id"])] = x
    assert seen[live_id]["payload"]["name_enc"] == live_name.encode()
    assert "name_enc" in seen[live_id]["unsealed"]
    gone = seen[exported["gone"][0]]
    assert gone["payload"]["name_enc"] is None and not gone["unsealed"]
