"""eventshop-history as-of (issue 11, item 2), black box against the running stack: at an
instant between two price changes and two stock movements, the as-of database answers the values
in force then (and at "latest", the later ones); at the live projectors' own positions it equals
the live read models row by row, every table of every projection; an interrupted run resumes to
the ends it fixed when it started, and to the same rows as a run that was never interrupted; bad
arguments are a non-zero exit with a message."""
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pymysql
import pytest
import requests
from confluent_kafka import Consumer

from conftest import env, mint_token, unique, wait_for

WAIT = {"Prefer": "wait=20"}
# the tables of each context's projection (projections/<context>.c), compared row by row (not
# the event index: the as-of database holds every chosen context, and builds none)
TABLES = {
    "catalog": ("catalog_products", ["products"]),
    "inventory": ("inventory_stock", ["stock", "stock_movements"]),
    "pricing": ("pricing_prices", ["prices", "price_rules", "price_history"]),
    "users": ("users_accounts", ["users"]),
    "orders": ("orders_orders", ["orders", "order_lines", "order_timeline"]),
    "payments": ("payments_payments", ["payments"]),
    "shipping": ("shipping_shipments", ["shipments"]),
}


def history(*args, timeout=600):
    exe = os.path.join(env("ES_BUILD"), "history", "eventshop-history")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


def connect(database):
    return pymysql.connect(unix_socket=env("EVENTSHOP_MYSQL_ROOT_SOCKET"), user="root",
                           database=database, autocommit=True,
                           cursorclass=pymysql.cursors.DictCursor)


def query(database, sql, *args):
    with connect(database) as conn, conn.cursor() as c:
        c.execute(sql, args)
        return list(c.fetchall())


def contexts():
    return [c for c in env("ES_CONTEXTS").split() if c in TABLES]


@pytest.fixture
def asof_db():
    """A fresh as-of database name (asof_*, the history user's grant), dropped afterwards."""
    made = []

    def name():
        made.append(f"asof_t_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield name
    with connect(None) as conn, conn.cursor() as c:
        for d in made:
            c.execute(f"DROP DATABASE IF EXISTS `{d}`")


def rows(conn, table):
    with conn.cursor() as c:
        c.execute(f"SELECT * FROM `{table}`")
        return sorted((tuple(sorted(r.items())) for r in c.fetchall()), key=repr)


def auth(tok):
    return {"Authorization": f"Bearer {tok}", **WAIT}


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def priced_product(api_url, amount):
    """A new product of a new vendor with list price amount: (sku, the vendor's token)."""
    tok = mint_token("vendor", unique("u"), unique("v"))
    sku = unique("ASOF")
    r = requests.post(f"{api_url}/v1/products", headers=auth(tok), timeout=30,
                      json={"sku": sku, "name": "Lamp", "category": "home", "currency": "EUR"})
    assert r.status_code == 201, r.text
    r = requests.put(f"{api_url}/v1/prices/{sku}", headers=auth(tok), timeout=30,
                     json={"amount_minor": amount, "currency": "EUR"})
    assert r.status_code == 200, r.text
    return sku, tok


def test_as_of_an_instant_answers_the_values_in_force_then(api_url, asof_db):
    for ctx in ("catalog", "pricing", "inventory"):
        if ctx not in contexts():
            pytest.skip(f"the stack does not serve {ctx}")
    sku, tok = priced_product(api_url, 1000)
    r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", headers=auth(tok), timeout=30,
                      json={"quantity": 10})
    assert r.status_code == 200, r.text
    time.sleep(0.5)
    at = int(time.time() * 1000)
    time.sleep(0.5)
    r = requests.put(f"{api_url}/v1/prices/{sku}", headers=auth(tok), timeout=30,
                     json={"amount_minor": 2000, "currency": "EUR"})
    assert r.status_code == 200, r.text
    r = requests.post(f"{api_url}/v1/inventory/{sku}/adjustments", headers=auth(tok), timeout=30,
                      json={"delta": -3, "reason": "damage"})
    assert r.status_code == 200, r.text

    then, now = asof_db(), asof_db()
    p = history("as-of", iso(at), "--database", then, "--contexts", "catalog,pricing,inventory")
    assert p.returncode == 0, p.stderr
    assert "as-of:" in p.stderr  # progress and the closing line
    assert query(then, "SELECT list_amount_minor AS a FROM prices WHERE sku=%s", sku) == [{"a": 1000}]
    assert query(then, "SELECT on_hand, available FROM stock WHERE sku=%s", sku) == \
        [{"on_hand": 10, "available": 10}]
    assert query(then, "SELECT COUNT(*) AS n FROM stock_movements WHERE sku=%s", sku) == [{"n": 1}]
    assert query(then, "SELECT COUNT(*) AS n FROM price_history WHERE sku=%s", sku) == [{"n": 1}]
    assert query(then, "SELECT sku FROM products WHERE sku=%s", sku) == [{"sku": sku}]
    run = query(then, "SELECT spec, contexts, as_of_ms, as_of, finished_at FROM asof_run")
    assert len(run) == 1 and run[0]["as_of_ms"] == at and run[0]["as_of"] == iso(at)
    assert run[0]["finished_at"] is not None
    ends = query(then, "SELECT topic, part, end_offset FROM asof_positions")
    assert {e["topic"] for e in ends} == {"catalog.events", "pricing.events", "inventory.events"}
    # the projector's own bookkeeping: the next offset of every partition that had events
    for e in query(then, "SELECT projection, topic, part, next_offset FROM projection_offsets"):
        assert e["next_offset"] == next(x["end_offset"] for x in ends
                                        if (x["topic"], x["part"]) == (e["topic"], e["part"]))

    p = history("as-of", "latest", "--database", now, "--contexts", "pricing,inventory")
    assert p.returncode == 0, p.stderr
    assert query(now, "SELECT list_amount_minor AS a FROM prices WHERE sku=%s", sku) == [{"a": 2000}]
    assert query(now, "SELECT on_hand FROM stock WHERE sku=%s", sku) == [{"on_hand": 7}]
    assert not query(now, "SHOW TABLES LIKE 'products'")  # catalog was not asked for


def partitions(topic):
    c = Consumer({"bootstrap.servers": env("EVENTSHOP_KAFKA_BROKERS"), "group.id": unique("asof")})
    try:
        return sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
    finally:
        c.close()


def live_snapshot(ctxs):
    """Per context, in one consistent snapshot of its database: the live projector's stored
    offsets and the rows of every table of its projection."""
    out = {}
    for ctx in ctxs:
        name, tables = TABLES[ctx]
        conn = pymysql.connect(unix_socket=env("EVENTSHOP_MYSQL_ROOT_SOCKET"), user="root",
                               database=f"eventshop_{ctx}", cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as c:
                c.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                c.execute("SELECT part, next_offset FROM projection_offsets WHERE projection=%s "
                          "AND topic=%s", (name, f"{ctx}.events"))
                offs = {r["part"]: r["next_offset"] for r in c.fetchall()}
            out[ctx] = (offs, {t: rows(conn, t) for t in tables})
            conn.commit()
        finally:
            conn.close()
    return out


def test_as_of_the_live_positions_equals_the_live_read_models(asof_db):
    ctxs = contexts()
    live = live_snapshot(ctxs)
    positions = ",".join(f"{ctx}.events:{p}={live[ctx][0].get(p, 0)}"
                         for ctx in ctxs for p in partitions(f"{ctx}.events"))
    d = asof_db()
    p = history("as-of", positions, "--database", d, "--contexts", ",".join(ctxs))
    assert p.returncode == 0, p.stderr
    with connect(d) as conn:
        for ctx in ctxs:
            for table, want in live[ctx][1].items():
                got = rows(conn, table)
                assert len(got) == len(want), f"{ctx}.{table}: {len(got)} rows, live {len(want)}"
                assert got == want, f"{ctx}.{table} differs from the live table"


def test_an_interrupted_run_resumes_to_the_ends_it_fixed(api_url, asof_db):
    if "pricing" not in contexts():
        pytest.skip("the stack does not serve pricing")
    ctxs = ",".join(contexts())
    d = asof_db()
    exe = os.path.join(env("ES_BUILD"), "history", "eventshop-history")
    proc = subprocess.Popen([exe, "as-of", "latest", "--database", d, "--contexts", ctxs,
                             "--batch", "1"], stderr=subprocess.PIPE, text=True)

    def started():
        try:
            return query(d, "SELECT COUNT(*) AS n FROM asof_positions")[0]["n"] > 0
        except pymysql.MySQLError:
            return False  # the database or its tables are not made yet

    wait_for(lambda: started() or proc.poll() is not None, timeout=120, interval=0.01,
             what="the run fixed its ends")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "interrupted" in err and "--database" in err
    assert query(d, "SELECT finished_at FROM asof_run")[0]["finished_at"] is None
    ends = query(d, "SELECT topic, part, end_offset FROM asof_positions ORDER BY topic, part")

    # an event after the interruption: the resumed run stops at the ends fixed at its start
    sku, _ = priced_product(api_url, 990)

    p = history("as-of", "latest", "--database", d, "--contexts", ctxs)
    assert p.returncode == 0, p.stderr
    assert "resuming" in p.stderr
    assert query(d, "SELECT topic, part, end_offset FROM asof_positions ORDER BY topic, part") == ends
    assert not query(d, "SELECT sku FROM prices WHERE sku=%s", sku)
    assert query(d, "SELECT finished_at FROM asof_run")[0]["finished_at"] is not None
    p = history("as-of", "latest", "--database", d, "--contexts", ctxs)
    assert p.returncode == 0 and "already complete" in p.stderr, p.stderr

    # the same rows as a run to the same ends that was never interrupted
    whole = asof_db()
    positions = ",".join(f"{e['topic']}:{e['part']}={e['end_offset']}" for e in ends)
    p = history("as-of", positions, "--database", whole, "--contexts", ctxs)
    assert p.returncode == 0, p.stderr
    with connect(d) as a, connect(whole) as b:
        for ctx in contexts():
            for table in TABLES[ctx][1]:
                assert rows(a, table) == rows(b, table), f"{ctx}.{table}"
        assert rows(a, "projection_offsets") != [] or ends == []
        strip = lambda rs: [tuple(kv for kv in r if kv[0] != "updated_at") for r in rs]
        assert strip(rows(a, "projection_offsets")) == strip(rows(b, "projection_offsets"))


@pytest.mark.parametrize("args, message", [
    ([], "usage:"),
    (["latest"], "usage:"),
    (["yesterday", "--database", "asof_x"], "not an ISO-8601 time"),
    (["latest", "--database", "eventshop_catalog"], "live databases"),
    (["latest", "--database", "asof-x"], "[A-Za-z0-9_]"),
    (["latest", "--database", "asof_x", "--contexts", "catalog,nope"], "no projection reads"),
    (["latest", "--database", "asof_x", "--contexts", "catalog,catalog"], "named twice"),
    (["orders.events:0=3", "--database", "asof_x", "--contexts", "catalog"], "not the events topic"),
    (["catalog.events:x=3", "--database", "asof_x"], "not a position"),
    (["latest", "--database", "asof_x", "--batch", "0"], "usage:"),
])
def test_bad_arguments_exit_non_zero_with_a_message(args, message):
    p = history("as-of", *args, timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert message in p.stderr


def test_another_argument_into_the_same_database_is_refused(asof_db):
    if "catalog" not in contexts():
        pytest.skip("the stack does not serve catalog")
    d = asof_db()
    p = history("as-of", "latest", "--database", d, "--contexts", "catalog")
    assert p.returncode == 0, p.stderr
    p = history("as-of", "2001-01-01T00:00:00Z", "--database", d, "--contexts", "catalog")
    assert p.returncode == 1 and "holds an as-of of 'latest'" in p.stderr, p.stderr
    # a database the history user has no grant on: refused by the server, said so
    p = history("as-of", "latest", "--database", f"other_{uuid.uuid4().hex[:8]}",
                "--contexts", "catalog")
    assert p.returncode == 1 and "denied" in p.stderr.lower(), p.stderr
