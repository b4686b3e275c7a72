"""Non-blocking reads (issue 12, item 1), past the cache: the API's GETs of a product, a price and a stock level
run their queries on non-blocking MariaDB connections driven by the loop threads, so a query that
waits (here on a table lock taken from the test) holds only its own request.

- Several GETs of a price wait at once on a locked `prices` table: MariaDB shows every one of
  them waiting (a loop thread that blocked on its query would have at most one in flight), and
  meanwhile GETs of a product and of a stock level on the same API answer; once the table is
  unlocked, the waiting GETs answer 200.
- Point reads batch (es_dbpool_lookup): GETs of products that come while a statement of product
  reads runs (here held on a locked `products` table) wait, and are asked together in the next
  statement; each answers its own product (or its 404), duplicates and unknown skus among them,
  and the API's metrics show fewer statements than reads.
- MariaDB killed under the stack while GETs are in flight: the API keeps running, answers 503
  problem+json with Retry-After, and every GET answers 200 again once MariaDB is back.
"""
import contextlib
import threading

import pytest
import requests

from conftest import unique, wait_for
from test_faults import pid_of, restore, same_process, stack  # noqa: F401 (restore: fixture)

# every read here is of MySQL itself: the API's cache (api_cache.c), which would answer a hot sku
# from memory with MariaDB locked or gone, is asked to step aside
MYSQL = {"Cache-Control": "no-cache"}
SLOW = 4  # a loop thread's pool (API_DB_POOL_DEFAULT): all of them in flight even on one thread


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


@pytest.fixture
def stocked_sku(api_url, token):
    """A product with a list price and a stock level, read back through the API."""
    tok = token("vendor", unique("u"), unique("v"))
    sku = unique("NB")
    h = auth(tok, Prefer="wait=20")
    for method, path, body in (
            ("POST", "/v1/products", {"sku": sku, "name": "Lamp", "category": "home",
                                      "currency": "EUR"}),
            ("PUT", f"/v1/prices/{sku}", {"amount_minor": 990, "currency": "EUR"}),
            ("POST", f"/v1/inventory/{sku}/receipts", {"quantity": 7})):
        r = requests.request(method, api_url + path, json=body, headers=h, timeout=30)
        assert r.status_code in (200, 201), r.text
    for path in (f"/v1/products/{sku}", f"/v1/prices/{sku}", f"/v1/inventory/{sku}"):
        wait_for(lambda: requests.get(api_url + path, timeout=10, headers=MYSQL).status_code == 200,
                 timeout=30, what=f"GET {path}")
    return sku


@contextlib.contextmanager
def locked(db, ctx, tables):
    """The tables of ctx's database write-locked from a connection of the test's own."""
    c = db(ctx)
    try:
        with c.cursor() as cur:
            cur.execute("LOCK TABLES " + ", ".join(f"{t} WRITE" for t in tables))
        yield
    finally:
        with c.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        c.close()


def queries_waiting(c, db, sql_start):
    """How many of the API's reads beginning with sql_start wait on a table lock in MariaDB."""
    with c.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM information_schema.processlist "
                    "WHERE db = %s AND state LIKE 'Waiting for table%%' AND info LIKE %s",
                    (db, sql_start + "%"))
        return cur.fetchone()["n"]


def test_a_slow_query_holds_only_its_own_request(api_url, db, stocked_sku):
    sku = stocked_sku
    answers = []

    def get_price():
        r = requests.get(f"{api_url}/v1/prices/{sku}", timeout=60, headers=MYSQL)
        answers.append(r.status_code)

    slow = [threading.Thread(target=get_price) for _ in range(SLOW)]
    with locked(db, "pricing", ("prices", "price_rules")):
        for t in slow:
            t.start()
        # every one of them is in flight at once, each waiting on its own connection
        watch = db("pricing")
        try:
            wait_for(lambda: queries_waiting(watch, "eventshop_pricing", "SELECT p.list_amount_minor")
                     >= SLOW, timeout=8, what=f"{SLOW} price reads waiting on the lock at once")
        finally:
            watch.close()
        # meanwhile the same API answers reads of other tables
        r = requests.get(f"{api_url}/v1/inventory/{sku}", timeout=5, headers=MYSQL)
        assert r.status_code == 200, r.text
        assert r.json()["on_hand"] == 7
        r = requests.get(f"{api_url}/v1/products/{sku}", timeout=5, headers=MYSQL)
        assert r.status_code == 200, r.text
        assert r.json()["sku"] == sku
        assert answers == [], "a price read answered while its table was locked"
    for t in slow:
        t.join(60)
    assert answers == [200] * SLOW


def catalog_metrics(api_url):
    """eventshop_db_{lookups_total,lookup_statements_total,queued} of the catalog context."""
    text = requests.get(api_url + "/metrics", timeout=10).text
    got = {}
    for name in ("eventshop_db_lookups_total", "eventshop_db_lookup_statements_total",
                 "eventshop_db_queued"):
        line = next((x for x in text.splitlines()
                     if x.startswith(name + '{context="catalog"}')), None)
        got[name] = float(line.split()[-1]) if line else 0.0
    return got


def test_point_reads_that_wait_together_go_in_one_statement_each_answered_its_own(
        api_url, db, token, stocked_sku):
    other = unique("NB")
    h = auth(token("vendor", unique("u"), unique("v")), Prefer="wait=20")
    r = requests.post(api_url + "/v1/products", json={"sku": other, "name": "Chair",
                                                      "category": "home", "currency": "EUR"},
                      headers=h, timeout=30)
    assert r.status_code in (200, 201), r.text
    wait_for(lambda: requests.get(f"{api_url}/v1/products/{other}", timeout=10,
                                  headers=MYSQL).status_code == 200, timeout=30, what="GET other")
    # known skus twice over and several unknown ones, in an order that mixes them
    unknown = [unique("NB-none") for _ in range(6)]
    skus = [stocked_sku, other, *unknown[:3], stocked_sku, other, *unknown[3:], stocked_sku]
    answers = {}

    def get(i, sku):
        r = requests.get(f"{api_url}/v1/products/{sku}", timeout=60, headers=MYSQL)
        answers[i] = (r.status_code, r.json())

    before = catalog_metrics(api_url)
    threads = [threading.Thread(target=get, args=(i, sku)) for i, sku in enumerate(skus)]
    with locked(db, "catalog", ("products",)):
        for t in threads:
            t.start()
        # every read is either in a statement waiting on the lock or queued behind one
        watch = db("catalog")
        try:
            wait_for(lambda: queries_waiting(watch, "eventshop_catalog", "SELECT sku, vendor_id")
                     + catalog_metrics(api_url)["eventshop_db_queued"] >= len(skus),
                     timeout=10, what="every product read waiting or queued")
            statements_held = queries_waiting(watch, "eventshop_catalog", "SELECT sku, vendor_id")
        finally:
            watch.close()
        assert statements_held < len(skus)
    for t in threads:
        t.join(60)
    for i, sku in enumerate(skus):
        status, body = answers[i]
        if sku in unknown:
            assert status == 404, body
            assert sku in body["detail"], body
        else:
            assert status == 200, body
            assert body["sku"] == sku, body
            assert body["name"] == ("Lamp" if sku == stocked_sku else "Chair"), body
    after = catalog_metrics(api_url)
    lookups = after["eventshop_db_lookups_total"] - before["eventshop_db_lookups_total"]
    statements = (after["eventshop_db_lookup_statements_total"]
                  - before["eventshop_db_lookup_statements_total"])
    assert lookups == len(skus)
    # the ones held on the lock went one a statement; the queued ones went together after it
    assert statements <= statements_held + 2, (lookups, statements, statements_held)


@pytest.mark.run_last
def test_gets_recover_after_mariadb_restarts_under_them(api_url, stocked_sku, restore):  # noqa: F811
    sku = stocked_sku
    paths = [f"/v1/products/{sku}", f"/v1/prices/{sku}", f"/v1/inventory/{sku}"]
    api = pid_of("api")
    # warm every loop thread's connections, so that the kill finds them open
    for _ in range(20):
        for p in paths:
            assert requests.get(api_url + p, timeout=10, headers=MYSQL).status_code == 200
    stop = threading.Event()
    seen = set()

    def reader():
        while not stop.is_set():
            for p in paths:
                try:
                    r = requests.get(api_url + p, timeout=30, headers=MYSQL)
                    seen.add(r.status_code)
                except requests.RequestException:
                    seen.add("error")

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        stack("infra-kill", "mariadb")
        for p in paths:
            wait_for(lambda: requests.get(api_url + p, timeout=30, headers=MYSQL).status_code == 503,
                     timeout=30, what=f"GET {p} to answer 503 without MariaDB")
        r = requests.get(api_url + paths[0], timeout=30, headers=MYSQL)
        assert r.status_code == 503
        assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
        assert int(r.headers["Retry-After"]) >= 1
        stack("infra-start")
        for p in paths:
            wait_for(lambda: requests.get(api_url + p, timeout=30, headers=MYSQL).status_code == 200,
                     timeout=60, what=f"GET {p} to answer again after MariaDB's return")
    finally:
        stop.set()
        for t in readers:
            t.join(60)
    same_process("api", api)
    assert "error" not in seen, "a GET got no HTTP answer while MariaDB restarted"
    assert seen <= {200, 503}, seen
