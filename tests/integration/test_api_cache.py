"""The API's cache of hot rows (api/api_cache.c): products, list prices and stock per sku, loaded
from MySQL in one snapshot with the projector's offset and kept current by the events the API's
stream hub reads, through the projections' own plans (projections/pj_row.c).

What must hold: an answer from the cache is byte for byte the MySQL path's answer at the same
aggregate version (body and ETag; a request with Cache-Control: no-cache takes the MySQL path),
under concurrent writes; a position (X-Min-Position) is answered from the cache only when the cache
has applied it, else the MySQL path answers (and waits); the cache holds at most
EVENTSHOP_API_CACHE_ENTRIES entries, evicting the least recently used."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import mint_token, unique, wait_for

NEEDED = {"catalog", "inventory", "pricing"}
pytestmark = pytest.mark.skipif(not NEEDED <= set(os.environ.get("ES_CONTEXTS", "").split()),
                                reason="the stack does not run catalog, inventory and pricing")

WAIT = {"Prefer": "wait=15"}
MYSQL = {"Cache-Control": "no-cache"}
AT = "1893456000000"  # a fixed ?at= for prices: the answer names its instant
N_SKUS = 4  # per context
WRITES = 6  # per sku
READERS = 4


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


def metric(api_url, name):
    text = requests.get(f"{api_url}/metrics", timeout=10).text
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key in (name, name + "{}"):
            return float(value)
    return 0.0


def write(api_url, tok, method, path, body=None):
    r = requests.request(method, f"{api_url}{path}", json=body, headers=auth(tok, **WAIT),
                         timeout=30)
    assert r.status_code in (200, 201), f"{method} {path} {body} -> {r.status_code} {r.text}"
    return r.json()["position"]


def get(api_url, path, position=None, extra=None):
    headers = dict(extra or {})
    if position:
        headers["X-Min-Position"] = position
    return requests.get(f"{api_url}{path}", headers=headers, timeout=30)


class Answers:
    """What the MySQL path answered per (path, ETag), and every other answer seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.mysql = {}
        self.other = []

    def add_mysql(self, path, r):
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        with self.lock:
            self.mysql[(path, r.headers["ETag"])] = r.content

    def add(self, path, r):
        with self.lock:
            self.other.append((path, r.status_code, r.headers.get("ETag"), r.content))


def writer(api_url, tok, kind, sku, answers):
    """One sku's writes, one after the other; after each, the MySQL path's answer at its position
    (the sku's version stands still until the next write: only this thread writes it) and the
    default path's answer at the same position."""
    if kind == "products":
        path = f"/v1/products/{sku}"
        steps = [("POST", "/v1/products", {"sku": sku, "name": "n0", "category": "kitchen",
                                            "currency": "EUR", "attributes": {"a": "1"}})]
        steps += [("PATCH", path, {"name": f"n{i}", "description": f"d{i}"})
                  for i in range(1, WRITES)]
        steps.append(("DELETE", path, None))
    elif kind == "stock":
        path = f"/v1/inventory/{sku}"
        steps = [("POST", f"{path}/receipts", {"quantity": i + 1}) for i in range(WRITES)]
    else:
        path = f"/v1/prices/{sku}?at={AT}"
        base = f"/v1/prices/{sku}"
        steps = [("PUT", base, {"amount_minor": 1000, "currency": "EUR"}),
                 ("POST", f"{base}/rules", {"rule_id": "b", "kind": "percent_off",
                                            "basis_points": 1000}),
                 ("POST", f"{base}/rules", {"rule_id": "a", "kind": "amount_off",
                                            "amount_minor": 50}),
                 ("PUT", base, {"amount_minor": 1200, "currency": "EUR"}),
                 ("DELETE", f"{base}/rules/b", None),
                 ("POST", f"{base}/rules", {"rule_id": "b", "kind": "floor",
                                            "amount_minor": 900})]
    for method, p, body in steps:
        pos = write(api_url, tok, method, p, body)
        answers.add_mysql(path, get(api_url, path, pos, MYSQL))
        answers.add(path, get(api_url, path, pos))
    return path


def reader(api_url, paths, stop, answers):
    while not stop.is_set():
        for path in paths:
            r = get(api_url, path)
            if r.status_code == 200:
                answers.add(path, r)


def test_every_cached_answer_is_the_mysql_answer_at_its_version(api_url):
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    skus = {kind: [unique(f"AC{kind[:2]}{i}") for i in range(N_SKUS)]
            for kind in ("products", "stock", "prices")}
    # the stock and price skus need their product; the stock skus are not priced, so a price's
    # "available" stands still while its answers are compared
    for sku in skus["stock"] + skus["prices"]:
        write(api_url, tok, "POST", "/v1/products",
              {"sku": sku, "name": "p", "category": "kitchen", "currency": "EUR"})
    hits0 = metric(api_url, "eventshop_api_cache_hits_total")
    answers = Answers()
    stop = threading.Event()
    paths = ([f"/v1/products/{s}" for s in skus["products"]]
             + [f"/v1/inventory/{s}" for s in skus["stock"]]
             + [f"/v1/prices/{s}?at={AT}" for s in skus["prices"]])
    with ThreadPoolExecutor(3 * N_SKUS + READERS) as pool:
        readers = [pool.submit(reader, api_url, paths, stop, answers) for _ in range(READERS)]
        writers = [pool.submit(writer, api_url, tok, kind, sku, answers)
                   for kind, group in skus.items() for sku in group]
        try:
            for w in writers:
                w.result()
        finally:
            stop.set()
        for r in readers:
            r.result()
    # at rest, every path once more through both
    for path in paths:
        answers.add_mysql(path, get(api_url, path, extra=MYSQL))
        answers.add(path, get(api_url, path))
    assert metric(api_url, "eventshop_api_cache_hits_total") > hits0, "the cache answered nothing"
    bad = []
    for path, status, etag, body in answers.other:
        want = answers.mysql.get((path, etag))
        if status != 200 or want is None or body != want:
            bad.append((path, status, etag, body[:300], want and want[:300]))
    assert not bad, f"{len(bad)} of {len(answers.other)} answers differ from MySQL's: {bad[:3]}"
    # a conditional request on what the cache holds (a price's answer depends on the instant and
    # the stock too: it carries an ETag but is never a 304, cached or not)
    for path in paths[:2 * N_SKUS]:
        etag = get(api_url, path).headers["ETag"]
        assert get(api_url, path, extra={"If-None-Match": etag}).status_code == 304, path


def cached(api_url, path):
    """Reads path until the cache answers it (a miss queues the load; the load counter moves)."""
    hits = metric(api_url, "eventshop_api_cache_hits_total")
    wait_for(lambda: get(api_url, path).status_code == 200
             and metric(api_url, "eventshop_api_cache_hits_total") > hits,
             timeout=30, interval=0.1, what=f"{path} answered from the cache")


def test_a_position_the_cache_reached_is_answered_while_mysql_lags(api_url, stack):
    """With the inventory projector stopped, a receipt is applied by the cache only: a read at its
    position is answered from the cache with the receipt, while the MySQL path (no-cache) still
    waits (504); once the projector is back both answer the same bytes."""
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    sku = unique("ACP")
    path = f"/v1/inventory/{sku}"
    write(api_url, tok, "POST", "/v1/products",
          {"sku": sku, "name": "p", "category": "kitchen", "currency": "EUR"})
    pos = write(api_url, tok, "POST", f"{path}/receipts", {"quantity": 2})
    assert get(api_url, path, pos).json()["on_hand"] == 2
    cached(api_url, path)
    stack.stop("projector-inventory")
    try:
        pos = write(api_url, tok, "POST", f"{path}/receipts", {"quantity": 5})
        # the stream hub may not have read the receipt yet: until then the read falls back to
        # MySQL's wait, which ends in a 504 (the projector is down)
        r = wait_for(lambda: (lambda r: r.status_code == 200 and r)(get(api_url, path, pos)),
                     timeout=60, interval=0.1, what="the cache answering the receipt's position")
        assert r.json()["on_hand"] == 7, r.text
        assert get(api_url, path, pos, MYSQL).status_code == 504
    finally:
        stack.start("projector-inventory")
    mysql = get(api_url, path, pos, MYSQL)
    assert mysql.status_code == 200 and mysql.content == get(api_url, path, pos).content
    assert mysql.headers["ETag"] == r.headers["ETag"]


@pytest.fixture
def small_cache(stack):
    """The API restarted with a cache of 5 entries; the plain API comes back at the end."""
    stack.stop("api")
    stack.start("api", EVENTSHOP_API_CACHE_ENTRIES="5")
    yield 5
    stack.stop("api")
    stack.start("api")


def test_the_cache_holds_at_most_its_bound_and_evicts_the_least_recently_used(api_url,
                                                                              small_cache):
    vendor = unique("v")
    tok = mint_token("vendor", vendor, vendor)
    skus = [unique(f"ACE{i}") for i in range(small_cache + 7)]
    for sku in skus:
        write(api_url, tok, "POST", "/v1/products",
              {"sku": sku, "name": sku, "category": "kitchen", "currency": "EUR"})
    evictions0 = metric(api_url, "eventshop_api_cache_evictions_total")
    for sku in skus:
        cached(api_url, f"/v1/products/{sku}")
        assert metric(api_url, "eventshop_api_cache_entries") <= small_cache
    assert metric(api_url, "eventshop_api_cache_entries") == small_cache
    assert metric(api_url, "eventshop_api_cache_evictions_total") - evictions0 == 7
    # the first sku went first: a miss (answered from MySQL, the same bytes), then a hit again
    misses = metric(api_url, "eventshop_api_cache_misses_total")
    path = f"/v1/products/{skus[0]}"
    r = get(api_url, path)
    assert metric(api_url, "eventshop_api_cache_misses_total") == misses + 1
    assert r.content == get(api_url, path, extra=MYSQL).content
    cached(api_url, path)
    assert metric(api_url, "eventshop_api_cache_entries") == small_cache
