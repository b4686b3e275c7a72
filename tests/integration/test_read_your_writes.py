"""Read-your-writes on the live API (api/api_query.c): a command's outcome carries "position"
("<partition>:<offset>" of its last event); a query given it as the X-Min-Position header or the
?min_position= parameter answers only once the read model has applied it, so a write followed at
once by such a read always sees the write. A position the read model does not reach within the
bound (5 s) is a 504 problem; a malformed one, or one that cannot exist (partition outside the
topic, offset at or past the partition's high watermark), a 400 at once. Requests waiting in one
API process share one watcher (api/api_positions.c), so the reads of the stored offsets do not
grow with the number of waiting requests.

Many writes, spread over partitions (distinct skus) and over three contexts (catalog products,
inventory receipts, pricing list prices), each read back at once, from several threads."""
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from confluent_kafka import Consumer, TopicPartition

from conftest import mint_token, unique, wait_for

NEEDED = {"catalog", "inventory", "pricing"}
pytestmark = pytest.mark.skipif(not NEEDED <= set(os.environ.get("ES_CONTEXTS", "").split()),
                                reason="the stack does not run catalog, inventory and pricing")

WAIT = {"Prefer": "wait=15"}
MYSQL = {"Cache-Control": "no-cache"}  # past the API's cache, to the read model itself
BOUND_S = 5  # MIN_POSITION_MAX_MS of api_query.c
N_SKUS = 10  # each gets 5 writes: list, rename, receive, receive, price -> 50 writes
THREADS = 5


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


def read_at(api_url, path, position, style, headers=None):
    """GET path carrying position as a header or as the query parameter."""
    if style == "header":
        return requests.get(f"{api_url}{path}", headers={"X-Min-Position": position,
                                                         **(headers or {})}, timeout=30)
    return requests.get(f"{api_url}{path}", params={"min_position": position}, headers=headers,
                        timeout=30)


def write(api_url, tok, method, path, body):
    r = requests.request(method, f"{api_url}{path}", json=body, headers=auth(tok, **WAIT),
                         timeout=30)
    assert r.status_code in (200, 201), f"{method} {path} {body} -> {r.status_code} {r.text}"
    pos = r.json().get("position")
    assert pos and ":" in pos, f"{method} {path}: no position in {r.text}"
    return pos


def one_sku(api_url, tok, i):
    """Five writes on one sku, each read back at once at its position; returns what was seen."""
    sku = unique(f"RYW{i}")
    seen = []
    style = ("header", "param")

    def check(path, pos, n, pred, what):
        r = read_at(api_url, path, pos, style[n % 2])
        ok = r.status_code == 200 and pred(r.json())
        seen.append((what, pos, style[n % 2], r.status_code, ok, r.text[:200]))

    pos = write(api_url, tok, "POST", "/v1/products",
                {"sku": sku, "name": "v1", "category": "kitchen", "currency": "EUR"})
    check(f"/v1/products/{sku}", pos, i, lambda j: j["name"] == "v1", "product listed")
    pos = write(api_url, tok, "PATCH", f"/v1/products/{sku}", {"name": "v2"})
    check(f"/v1/products/{sku}", pos, i + 1, lambda j: j["name"] == "v2", "product renamed")
    pos = write(api_url, tok, "POST", f"/v1/inventory/{sku}/receipts", {"quantity": 3})
    check(f"/v1/inventory/{sku}", pos, i, lambda j: j["on_hand"] == 3, "first receipt")
    pos = write(api_url, tok, "POST", f"/v1/inventory/{sku}/receipts", {"quantity": 4})
    check(f"/v1/inventory/{sku}", pos, i + 1, lambda j: j["on_hand"] == 7, "second receipt")
    amount = 1000 + i
    pos = write(api_url, tok, "PUT", f"/v1/prices/{sku}", {"amount_minor": amount, "currency": "EUR"})
    check(f"/v1/prices/{sku}", pos, i, lambda j: j["amount_minor"] == amount, "list price")
    return seen


def test_a_write_then_a_read_at_its_position_sees_the_write(api_url):
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    with ThreadPoolExecutor(THREADS) as pool:
        results = [x for seen in pool.map(lambda i: one_sku(api_url, tok, i), range(N_SKUS))
                   for x in seen]
    assert len(results) == 5 * N_SKUS
    bad = [x for x in results if not x[4]]
    assert not bad, "reads that missed their write:\n" + "\n".join(map(str, bad))
    partitions = {pos.split(":")[0] for _, pos, *_ in results}
    assert len(partitions) > 1, f"every write landed on partition {partitions}: not spread"
    assert {s for _, _, s, *_ in results} == {"header", "param"}


def test_the_header_wins_over_the_parameter(api_url):
    """Documented in api/openapi.yaml: X-Min-Position wins when both are given; a malformed
    min_position is refused all the same (the contract's pattern holds for both)."""
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    sku = unique("RYWH")
    pos = write(api_url, tok, "POST", "/v1/products",
                {"sku": sku, "name": "h", "category": "kitchen", "currency": "EUR"})
    # the parameter's position is never reached: were it waited for, the answer would not be 200
    r = requests.get(f"{api_url}/v1/products/{sku}", params={"min_position": "0:999999999999"},
                     headers={"X-Min-Position": pos}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(f"{api_url}/v1/products/{sku}", params={"min_position": "not-a-position"},
                     headers={"X-Min-Position": pos}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "min_position"


def high_watermark(brokers, topic, partition):
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("hwm")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


def impossible_positions(brokers):
    """Positions no read model can ever reach: a partition outside the topic, offsets at and far
    past the partition's high watermark (nothing writes catalog.events while this module runs:
    its tests go one after another)."""
    hwm = high_watermark(brokers, "catalog.events", 0)
    return [("partition outside the topic", "81517:1"),
            ("offset at the high watermark", f"0:{hwm}"),
            ("offset far past the end", "0:999999999999")]


@pytest.mark.parametrize("style", ["header", "param"])
def test_a_position_that_cannot_exist_is_a_400_at_once(api_url, brokers, style):
    """A bogus position used to hold the request 5 s (querying MySQL every 20 ms), then answer
    504: now the broker is asked for the partition's high watermark and the answer is a 400 at
    once, well before the wait's bound."""
    for what, pos in impossible_positions(brokers):
        t0 = time.monotonic()
        r = read_at(api_url, f"/v1/products/{unique('RYWX')}", pos, style)
        took = time.monotonic() - t0
        assert r.status_code == 400, f"{what} {pos}: {r.status_code} {r.text}"
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["type"] == "urn:eventshop:problem:position_out_of_range", r.text
        assert took < BOUND_S - 1, f"{what} {pos}: answered after {took:.1f} s, not at once"


BAD = ["", "abc", "12", "1:", ":5", "-1:5", "1:-5", "1:2:3", "1 :5", "0x1:5", "1:5a",
       "99999999999:1", "1:9999999999999999999999", "１:5"]


@pytest.mark.parametrize("style", ["header", "param"])
@pytest.mark.parametrize("bad", BAD, ids=[repr(b) for b in BAD])
def test_a_malformed_position_is_a_400(api_url, style, bad):
    if style == "header" and bad == "":
        pytest.skip("an empty header is the same as none for some HTTP stacks")
    if style == "header":
        try:
            bad.encode("latin-1")
        except UnicodeEncodeError:
            pytest.skip("not representable in a header")
    t0 = time.monotonic()
    r = read_at(api_url, f"/v1/products/{unique('RYWB')}", bad, style)
    assert r.status_code == 400, f"{style} {bad!r}: {r.status_code} {r.text}"
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert time.monotonic() - t0 < 2, "a malformed position must be refused at once"


def test_a_read_waits_for_the_projector_instead_of_answering_stale(api_url, stack):
    """With the inventory projector stopped, a write is accepted but not projected: a read
    without a position answers the stale row, a read with the write's position refuses to (504);
    once the projector is back the same position is answered with the write. MySQL's path
    (Cache-Control: no-cache): the API's cache, fed by the events, may hold the write already
    (test_api_cache.py)."""
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    sku = unique("RYWP")
    write(api_url, tok, "POST", "/v1/products",
          {"sku": sku, "name": "p", "category": "kitchen", "currency": "EUR"})
    pos = write(api_url, tok, "POST", f"/v1/inventory/{sku}/receipts", {"quantity": 2})
    assert read_at(api_url, f"/v1/inventory/{sku}", pos, "header").json()["on_hand"] == 2
    stack.stop("projector-inventory")
    try:
        pos = write(api_url, tok, "POST", f"/v1/inventory/{sku}/receipts", {"quantity": 5})
        stale = requests.get(f"{api_url}/v1/inventory/{sku}", headers=MYSQL, timeout=30)
        assert stale.status_code == 200 and stale.json()["on_hand"] == 2, stale.text
        r = read_at(api_url, f"/v1/inventory/{sku}", pos, "param", MYSQL)
        assert r.status_code == 504, r.text
    finally:
        stack.start("projector-inventory")
    r = read_at(api_url, f"/v1/inventory/{sku}", pos, "header")
    assert r.status_code == 200 and r.json()["on_hand"] == 7, r.text


def metric(api_url, name, labels):
    """The value of one sample of the API's /metrics, 0 if absent."""
    text = requests.get(f"{api_url}/metrics", timeout=10).text
    want = f"{name}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return 0.0


def role_pid(role):
    with open(os.path.join(os.environ["ES_STATE"], "run", f"{role}.pid")) as f:
        return int(f.read().strip())


N_WAITERS = 40
STILL_TICK_S = 0.008  # POLL_MAX_MS of api_positions.c: the watcher's period while offsets stand still


def test_many_waiters_share_one_watcher_and_are_all_answered(api_url):
    """With the catalog projector frozen (SIGSTOP), N reads wait on a real position: each is
    answered with the write once the projector runs again, and while they wait the stored
    offsets are read by the API's one watcher at most once per period, not once per period per
    request (a watcher per request would do N times as many)."""
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    sku = unique("RYWN")
    labels = 'context="catalog"'
    waiting0 = metric(api_url, "eventshop_api_position_waiters", labels)
    pid = role_pid("projector-catalog")
    os.kill(pid, signal.SIGSTOP)
    try:
        pos = write(api_url, tok, "POST", "/v1/products",
                    {"sku": sku, "name": "many", "category": "kitchen", "currency": "EUR"})
        with ThreadPoolExecutor(N_WAITERS) as pool:
            futures = [pool.submit(read_at, api_url, f"/v1/products/{sku}", pos,
                                   ("header", "param")[i % 2]) for i in range(N_WAITERS)]
            wait_for(lambda: metric(api_url, "eventshop_api_position_waiters", labels)
                     >= waiting0 + N_WAITERS, timeout=3, interval=0.05,
                     what=f"{N_WAITERS} requests waiting")
            # the window [t0, t1] encloses the two samples, so every read counted is inside it
            t0 = time.monotonic()
            q0 = metric(api_url, "eventshop_api_position_watch_queries_total", labels)
            time.sleep(1)  # a window in which they all wait
            q1 = metric(api_url, "eventshop_api_position_watch_queries_total", labels)
            t1 = time.monotonic()
            still = metric(api_url, "eventshop_api_position_waiters", labels)
            os.kill(pid, signal.SIGCONT)
            answers = [f.result() for f in futures]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert still >= waiting0 + N_WAITERS, "the requests stopped waiting during the window"
    # the offsets stand still: at most one read per period of the one watcher, doubled for timer
    # slack; a read per waiting request per period would be N_WAITERS / 2 times this bound
    bound = 2 * ((t1 - t0) / STILL_TICK_S + 1)
    assert q1 > q0, "the watcher did not read the stored offsets while requests waited"
    assert q1 - q0 <= bound, (f"{q1 - q0:.0f} reads of the stored offsets in {t1 - t0:.2f} s "
                              f"for {N_WAITERS} waiting requests: more than one per period "
                              f"({bound:.0f})")
    bad = [(r.status_code, r.text[:200]) for r in answers
           if r.status_code != 200 or r.json()["name"] != "many"]
    assert not bad, f"{len(bad)} of {N_WAITERS} waiting reads did not get the write: {bad[:3]}"
    wait_for(lambda: metric(api_url, "eventshop_api_position_waiters", labels) <= waiting0,
             timeout=5, what="no request left waiting")


def test_a_read_at_a_position_outlives_the_api_connections_dropped(api_url, db):
    """MariaDB drops the API's connections to a read model (a restart, a timeout, a KILL) while
    they sit idle: the next read at a position is answered through new ones, not with a 503 from
    the first query that finds its connection gone (the watcher's included: it reads the offsets
    on a connection of its own, api/api_positions.c)."""
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    sku = unique("RYWK")
    write(api_url, tok, "POST", "/v1/products",
          {"sku": sku, "name": "kept", "category": "kitchen", "currency": "EUR"})
    pos = write(api_url, tok, "POST", f"/v1/inventory/{sku}/receipts", {"quantity": 3})
    r = read_at(api_url, f"/v1/inventory/{sku}", pos, "header", MYSQL)
    assert r.status_code == 200 and r.json()["on_hand"] == 3, r.text
    assert metric(api_url, "eventshop_api_position_watch_queries_total", 'context="inventory"') > 0, \
        "the watcher never read the inventory offsets: its connection is not open to be dropped"
    conn = db("inventory")
    with conn.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = "
                    "'eventshop_inventory_ro'")
        ids = [row["ID"] for row in cur.fetchall()]
        for i in ids:
            cur.execute(f"KILL CONNECTION {int(i)}")
    conn.close()
    assert ids, "the API holds no connection to the inventory read model"
    pos = write(api_url, tok, "POST", f"/v1/inventory/{sku}/receipts", {"quantity": 4})
    r = read_at(api_url, f"/v1/inventory/{sku}", pos, "param", MYSQL)
    assert r.status_code == 200 and r.json()["on_hand"] == 7, r.text
