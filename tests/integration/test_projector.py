"""The catalog projector (projections/) on the real Kafka, registry and MariaDB.

Each test runs its own eventshop-projector process with a unique consumer group
(EVENTSHOP_PROJECTOR_GROUP) and its own tables (EVENTSHOP_PROJECTOR_TABLE_SUFFIX: products_<s>,
offsets and dead letters under catalog_products_<s>), so it neither disturbs nor is disturbed by
the stack's own projector. Events are produced as a third party would: confluent-kafka's
AvroSerializer through our registry, TopicRecordNameStrategy subjects, in a Kafka transaction.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import TOP, env, unique, wait_for

TOPIC = "catalog.events"
SCHEMAS = os.path.join(TOP, "events", "schemas")
PROJECTOR = os.path.join(os.environ.get("ES_BUILD", "/work/main/build"), "projections",
                         "eventshop-projector")


def standalone_schema(name):
    """The event's .avsc with eventshop.Metadata inlined, as the engine registers it."""
    with open(os.path.join(SCHEMAS, "common", "Metadata.avsc")) as f:
        metadata = json.load(f)
    with open(os.path.join(SCHEMAS, "catalog", "events", f"{name}.avsc")) as f:
        schema = json.load(f)
    for field in schema["fields"]:
        if field["type"] == "eventshop.Metadata":
            field["type"] = metadata
    return json.dumps(schema)


class Events:
    """Serializers for the catalog events, using the registered schema when there is one."""

    def __init__(self, registry):
        self.ser = {}
        for name in ("ProductListed", "ProductDetailsChanged", "ProductDelisted"):
            subject = f"{TOPIC}-eventshop.catalog.{name}"
            try:
                text = registry.get_latest_version(subject).schema.schema_str
                conf = {"auto.register.schemas": False, "use.latest.version": True}
            except Exception:
                text = standalone_schema(name)
                conf = {"auto.register.schemas": True}
            conf["subject.name.strategy"] = lambda ctx, n, s=subject: s
            self.ser[name] = AvroSerializer(registry, text, conf=conf)

    def encode(self, name, value):
        return self.ser[name](value, SerializationContext(TOPIC, MessageField.VALUE))


def meta(sku, version):
    return {"event_id": str(uuid.uuid4()), "aggregate_id": sku, "aggregate_version": version,
            "command_id": str(uuid.uuid4()), "correlation_id": unique("corr"),
            "occurred_at": int(time.time() * 1000), "actor": "u-test"}


def listed(sku, version=1, **kw):
    v = {"metadata": meta(sku, version), "sku": sku, "vendor_id": "v-pj", "name": f"name {sku}",
         "description": "d", "category": "cat-pj", "attributes": {"k": "v"}, "currency": "EUR"}
    v.update(kw)
    return ("ProductListed", v)


def changed(sku, version, name):
    return ("ProductDetailsChanged",
            {"metadata": meta(sku, version), "sku": sku, "name": name, "description": f"v{version}",
             "category": "cat-pj2", "attributes": {"v": str(version)}})


def delisted(sku, version):
    return ("ProductDelisted", {"metadata": meta(sku, version), "sku": sku})


def produce(brokers, events, batch):
    """Produces [(name, value)] keyed by sku in one Kafka transaction; returns {partition: last
    offset}."""
    p = Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                  "transactional.id": unique("pj-tx"), "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    last = {}

    def done(err, msg):
        assert err is None, err
        last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    for name, value in events:
        # events carry a traceparent, as the handler writes them (DESIGN.md §3)
        tp = "00-%s-%s-01" % (uuid.uuid4().hex, uuid.uuid4().hex[:16])
        p.produce(TOPIC, key=value["sku"].encode(), value=batch.encode(name, value),
                  headers=[("traceparent", tp)], on_delivery=done)
        p.poll(0)
    p.commit_transaction(60)
    p.flush(30)
    return last


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Projector:
    def __init__(self, tmp_path, **extra):
        self.suffix = "_t" + uuid.uuid4().hex[:8]
        self.key = "catalog_products" + self.suffix
        self.table = "products" + self.suffix
        self.port = free_port()
        self.env = dict(os.environ, EVENTSHOP_PROJECTOR_GROUP=unique("pj-test"),
                        EVENTSHOP_PROJECTOR_TABLE_SUFFIX=self.suffix,
                        EVENTSHOP_METRICS_ADDR=f"127.0.0.1:{self.port}", **extra)
        self.log = tmp_path / f"projector{self.suffix}.log"
        self.proc = None

    def start(self):
        assert os.access(PROJECTOR, os.X_OK), f"build {PROJECTOR} first"
        self.proc = subprocess.Popen([PROJECTOR, "catalog"], env=self.env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_for(self.ready, timeout=60, what="projector ready")

    def ready(self):
        assert self.proc.poll() is None, f"projector exited: {self.log.read_text()[-2000:]}"
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def metrics(self):
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text

    def lag(self):
        """Sum of eventshop_projector_lag over the partitions, or None before it is known."""
        vals = re.findall(r'^eventshop_projector_lag\{projection="%s",partition="\d+"\} (\S+)$'
                          % self.key, self.metrics(), re.M)
        return sum(float(v) for v in vals) if vals else None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(30)
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def projector(tmp_path, db):
    started = []

    def make(**extra):
        p = Projector(tmp_path, **extra)
        started.append(p)
        return p

    yield make
    for p in started:
        if p.proc and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)
        with db() as c, c.cursor() as cur:  # our own tables only
            cur.execute(f"DROP TABLE IF EXISTS `{p.table}`")
            cur.execute(f"DROP TABLE IF EXISTS `event_index{p.suffix}`")  # its event index
            for t in ("projection_offsets", "projection_dead_letters", "projection_status"):
                cur.execute(f"DELETE FROM {t} WHERE projection=%s", (p.key,))


def query(db, sql, *args):
    with db() as c, c.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def stored_offsets(db, key):
    return {r["part"]: r["next_offset"] for r in
            query(db, "SELECT part, next_offset FROM projection_offsets "
                      "WHERE projection=%s AND topic=%s", key, TOPIC)}


def test_projects_the_catalog_and_dead_letters_malformed_events(brokers, registry, db, projector):
    ev = Events(registry)
    a, b, ghost, bad = (unique("pj-sku") for _ in range(4))
    last = produce(brokers, [listed(a), changed(a, 2, "renamed"), listed(b), delisted(b, 2),
                             changed(ghost, 1, "no such sku"), listed(bad, currency="EURO")], ev)
    p = projector()
    p.start()
    def both_at_v2():
        got = query(db, f"SELECT * FROM `{p.table}` WHERE sku IN (%s, %s) AND version = 2", a, b)
        return {r["sku"]: r for r in got} if len(got) == 2 else None

    rows = wait_for(both_at_v2, timeout=60, what="rows of a and b at version 2")
    ra, rb = rows[a], rows[b]
    assert ra["name"] == "renamed" and ra["description"] == "v2" and ra["category"] == "cat-pj2"
    assert json.loads(ra["attributes"]) == {"v": "2"}
    assert ra["vendor_id"] == "v-pj" and ra["currency"] == "EUR" and ra["status"] == "listed"
    assert ra["applied_events"] == 2 and len(ra["last_event_id"]) == 36
    assert ra["listed_at"] <= ra["updated_at"]
    assert rb["status"] == "delisted" and rb["applied_events"] == 2 and rb["name"] == f"name {b}"

    # the malformed ones are recorded, not applied, and the projector went on
    wait_for(lambda: all(stored_offsets(db, p.key).get(part, -1) > off
                         for part, off in last.items()), timeout=30, what="offsets stored")
    assert query(db, f"SELECT sku FROM `{p.table}` WHERE sku IN (%s, %s)", ghost, bad) == ()
    dead = query(db, "SELECT error FROM projection_dead_letters WHERE projection=%s", p.key)
    errors = " | ".join(d["error"] for d in dead)
    assert f"sku '{ghost}' is not in the read model" in errors
    assert "currency: 'EURO'" in errors
    m = p.metrics()
    assert re.search(r'eventshop_projector_dead_letters_total\{projection="%s"\} [1-9]' % p.key, m)
    assert re.search(r'eventshop_projector_events_total\{projection="%s"\} [1-9]' % p.key, m)
    assert p.stop() == 0


def test_a_missing_sku_among_merged_changes_is_dead_lettered_alone(brokers, registry, db,
                                                                  projector):
    """A batch's changes (and delistings) of listed skus merge as one multi-row upsert, their
    upsert form; one for a sku not in the read model makes it count fewer rows than it names (the
    missing row inserted, not changed): the batch is rolled back and redone event by event, that
    event dead-lettered, the others applied once, and no row of the missing sku is left."""
    ev = Events(registry)
    skus = [unique("pj-merge") for _ in range(6)]
    ghost, ghost2 = unique("pj-ghost"), unique("pj-ghost")
    p = projector()
    p.start()
    last = produce(brokers, [listed(s) for s in skus], ev)
    wait_for(lambda: all(stored_offsets(db, p.key).get(part, -1) > off
                         for part, off in last.items()), timeout=60, what="the listings")
    assert p.stop() == 0
    # stopped meanwhile: the next start finds them all at once, one batch
    last = produce(brokers, [changed(s, 2, "renamed") for s in skus[:3]] +
                   [changed(ghost, 1, "no such sku"), delisted(ghost2, 1)] +
                   [delisted(s, 2) for s in skus[3:]], ev)
    p.start()
    wait_for(lambda: all(stored_offsets(db, p.key).get(part, -1) > off
                         for part, off in last.items()), timeout=60, what="the changes")
    rows = {r["sku"]: r for r in query(db, f"SELECT * FROM `{p.table}`")}
    assert ghost not in rows and ghost2 not in rows
    for s in skus:
        assert rows[s]["version"] == 2 and rows[s]["applied_events"] == 2, rows[s]
    assert all(rows[s]["name"] == "renamed" for s in skus[:3])
    assert all(rows[s]["status"] == "delisted" for s in skus[3:])
    dead = " | ".join(d["error"] for d in query(
        db, "SELECT error FROM projection_dead_letters WHERE projection=%s", p.key))
    assert f"sku '{ghost}' is not in the read model" in dead
    assert f"sku '{ghost2}' is not in the read model" in dead
    log = p.log.read_text()
    assert "(2 a row: its upsert form)" in log, "the merged upsert was not what failed"
    assert p.stop() == 0


def test_killed_projector_applies_every_event_exactly_once(brokers, registry, db, projector):
    """SIGKILL in the middle of a burst, restart: each row's applied_events equals its version
    (no event applied twice, none lost) and the offsets are stored past the burst."""
    ev = Events(registry)
    p = projector(EVENTSHOP_PROJECTOR_BATCH="5", EVENTSHOP_PROJECTOR_LINGER_MS="5")
    p.start()
    wait_for(lambda: p.lag() == 0, timeout=120, what="projector caught up with the topic")

    prefix = unique("pj-burst")
    skus = [f"{prefix}-{i}" for i in range(500)]
    versions = 20
    events = []
    for v in range(1, versions + 1):
        for s in skus:
            events.append(listed(s) if v == 1 else changed(s, v, f"n{v}"))
    total = len(events)
    last = produce(brokers, events, ev)

    conn = db()  # one connection, to see the burst start as early as possible

    def applied():
        with conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(SUM(applied_events), 0) AS n FROM `{p.table}` "
                        "WHERE sku LIKE %s", (prefix + "-%",))
            return cur.fetchone()["n"]

    wait_for(lambda: applied() > 0, timeout=60, interval=0.01, what="the burst to start")
    p.kill()
    at_kill = applied()
    assert 0 < at_kill < total, f"kill came too late to test anything ({at_kill}/{total})"

    p.start()
    # rows and offsets commit together: once the stored offsets are past the burst's last event,
    # every apply of it is in, and a double apply would already show
    wait_for(lambda: all(stored_offsets(db, p.key).get(part, -1) > off
                         for part, off in last.items()), timeout=120, what="the whole burst")
    bad = query(db, f"SELECT sku, version, applied_events FROM `{p.table}` WHERE sku LIKE %s "
                    "AND (applied_events <> version OR version <> %s)", prefix + "-%", versions)
    assert bad == (), f"applied twice or lost: {bad[:5]}"
    assert query(db, f"SELECT COUNT(*) AS n FROM `{p.table}` WHERE sku LIKE %s",
                 prefix + "-%")[0]["n"] == len(skus)
    offs = stored_offsets(db, p.key)
    for part, off in last.items():
        assert offs.get(part, -1) > off, f"partition {part}: stored {offs.get(part)} <= {off}"
    conn.close()
    assert p.stop() == 0



def test_a_batch_whose_stored_offsets_moved_is_dropped_and_resynced(brokers, registry, db,
                                                                     projector):
    """The fence: a batch is written only while the stored offsets of its partitions are the ones
    its projector started from (since issue 12 checked and stored by one UPDATE). Moved under a
    running projector (to 0, as another consumer might), the next batch is rolled back and the
    projector resumes from the stored offsets: each row then counts its listing twice (the replay
    from 0) and its change once; a batch applied past the fence would have counted the change
    twice."""
    ev = Events(registry)
    skus = [unique("pj-fence") for _ in range(3)]
    p = projector()
    p.start()
    last = produce(brokers, [listed(s) for s in skus], ev)
    wait_for(lambda: all(stored_offsets(db, p.key).get(part, -1) > off
                         for part, off in last.items()), timeout=60, what="the listings")
    with db() as c, c.cursor() as cur:
        cur.execute("UPDATE projection_offsets SET next_offset = 0 WHERE projection=%s", (p.key,))
    last = produce(brokers, [changed(s, 2, "fenced") for s in skus], ev)
    wait_for(lambda: all(stored_offsets(db, p.key).get(part, -1) > off
                         for part, off in last.items()), timeout=60, what="the changes")
    rows = {r["sku"]: r for r in query(db, f"SELECT * FROM `{p.table}` WHERE sku IN (%s, %s, %s)",
                                       *skus)}
    for s in skus:
        assert rows[s]["name"] == "fenced" and rows[s]["version"] == 2, rows[s]
        assert rows[s]["applied_events"] == 3, rows[s]
    log = p.log.read_text()
    assert "dropped, resyncing" in log and "moved" in log, log[-2000:]
    assert p.stop() == 0


PROJECTIONS = os.path.join(TOP, "projections")


def upsert_tables():
    """{(database, table)} of every must-match UPDATE's upsert form (pj_stmt_set_upsert) in the
    projections' sources, read from the calls themselves so that a new form is guarded at once;
    a call this cannot read fails, rather than go unguarded."""
    found, unread = set(), []
    for name in sorted(os.listdir(PROJECTIONS)):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(PROJECTIONS, name)) as f:
            src = f.read()
        calls = [m for m in re.finditer(r"\bpj_stmt_set_upsert\s*\(", src)
                 if not re.search(r"\bvoid\s*$", src[:m.start()])]  # not its definition
        if not calls:
            continue
        ctx = re.search(r'\bPJ_PROJECTION\s*\(\s*\w+\s*,\s*"(\w+)"', src)
        for m in calls:
            line = src.count("\n", 0, m.start()) + 1
            call = src[m.end():src.find(";", m.end())]
            table = re.search(r'INSERT\s+INTO\s+`(\w+)%s`', call)
            if ctx and table:
                found.add((f"eventshop_{ctx.group(1)}", table.group(1)))
            else:
                unread.append(f"projections/{name}:{line}")
    assert not unread, f"upsert forms whose table this guard cannot read: {unread}"
    return found


def test_tables_with_an_upsert_form_have_no_unique_key_but_the_primary(db):
    """pj_batch merges a must-match UPDATE's upsert form as one INSERT ... ON DUPLICATE KEY UPDATE
    and takes 2 affected rows a row as "every row matched". That holds only while the primary key
    is the table's one unique key: with another one a row could collide on it and update a row
    other than the one meant, still counting 2. So every such table of the live schema (the
    stack's, as the projector created it) has no unique index other than PRIMARY."""
    tables = upsert_tables()
    assert ("eventshop_catalog", "products") in tables, tables  # the reading itself still works
    for schema, table in sorted(tables):
        with db(schema.removeprefix("eventshop_")) as c, c.cursor() as cur:
            cur.execute("SELECT index_name AS idx FROM information_schema.statistics "
                        "WHERE table_schema=%s AND table_name=%s AND non_unique=0 "
                        "ORDER BY index_name, seq_in_index", (schema, table))
            rows = cur.fetchall()
        assert rows, f"{schema}.{table} has no unique index at all: not created yet?"
        others = sorted({r["idx"] for r in rows} - {"PRIMARY"})
        assert not others, (f"{schema}.{table} has an upsert form (pj_stmt_set_upsert) but also "
                            f"the unique index(es) {others}: its merged upserts may update the "
                            "wrong row; drop the upsert form or the index")
