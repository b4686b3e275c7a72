"""GET /v1/stream (Server-Sent Events) against the real stack, without a browser: resuming from
Last-Event-ID (no gap, no repeat, also across a reconnect with events written in between), the
filters, who sees what (a customer's orders, a vendor's skus), stream tickets (single use, unknown
or expired: 401), the end of a stream at its token's expiry, and the cap on open streams.

Every wait is for a positive marker: the stream's "caught-up" event (it has delivered what was
committed when it reached the live ring), an event seen, or the "end" event; ?until=now makes a
stream end by itself once caught up, so a catch-up is read to its end without a timeout."""
import json
import os
import time

import pytest
import requests

from conftest import api_json, mint_token, unique, wait_for

API = os.environ.get("EVENTSHOP_API_URL", "")
SERVED = set(os.environ.get("ES_CONTEXTS", "").split())
pytestmark = pytest.mark.skipif(not {"catalog", "pricing", "inventory", "orders"} <= SERVED,
                                reason="the stack does not serve the contexts these tests use")
WAIT = {"Prefer": "wait=20"}
ADDRESS = {"name": "Stream Probe", "line1": "1 Probe St", "city": "Lyon", "postal_code": "69001",
           "country": "FR"}


def auth(tok):
    return {"Authorization": f"Bearer {tok}"}


class Stream:
    """One open stream; events() yields (event name, id, data) as they come."""

    def __init__(self, tok=None, headers=None, timeout=60, **params):
        h = dict(auth(tok) if tok else {}, **(headers or {}))
        self.r = requests.get(f"{API}/v1/stream", params=params, headers=h, stream=True,
                              timeout=timeout)
        self.status = self.r.status_code
        self._lines = self._read_lines() if self.status == 200 else iter(())

    def _read_lines(self):
        """Lines as SSE ends them (CR, LF, CRLF): not str.splitlines, which also breaks at
        U+2028 and the like, found in the fuzzed product names an admin's stream carries."""
        buf = b""
        for chunk in self.r.iter_content(chunk_size=None):
            buf += chunk
            while True:
                cut = min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)
                if cut < 0 or (buf[cut:cut + 1] == b"\r" and cut + 1 == len(buf)):
                    break  # a CR at the end may be the first half of a CRLF
                end = cut + 2 if buf[cut:cut + 2] == b"\r\n" else cut + 1
                yield buf[:cut].decode("utf-8")
                buf = buf[end:]

    def events(self):
        name, ident, data = "message", None, []
        for line in self._lines:
            if line == "":
                if data:
                    yield name, ident, json.loads("\n".join(data))
                name, ident, data = "message", None, []
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])

    def until(self, pred):
        """Events up to and including the first for which pred(name, data) holds."""
        out = []
        for name, ident, data in self.events():
            out.append((name, ident, data))
            if pred(name, data):
                return out
        raise AssertionError(f"the stream ended first: {out[-5:]}")

    def close(self):
        self.r.close()


def read_all(tok, **params):
    """A stream with until=now read to its end: its events (id, data) and the end's reason."""
    s = Stream(tok, until="now", **params)
    assert s.status == 200, api_json(s.r)
    got = s.until(lambda n, d: n == "end")
    s.close()
    return [(i, d) for n, i, d in got if n == "message"], got[-1][2]["reason"]


def list_product(tok, sku, vendor="stream-vendor"):
    r = requests.post(f"{API}/v1/products", headers=dict(auth(tok), **WAIT), timeout=30,
                      json={"sku": sku, "vendor_id": vendor, "name": "Stream mug",
                            "category": "kitchen", "currency": "EUR"})
    assert r.status_code == 201, api_json(r)


def rename(tok, sku, name):
    r = requests.patch(f"{API}/v1/products/{sku}", headers=dict(auth(tok), **WAIT), timeout=30,
                       json={"name": name})
    assert r.status_code == 200, api_json(r)


@pytest.fixture(scope="module")
def admin():
    return mint_token("admin", unique("stream-admin"))


def test_a_whole_context_read_in_two_halves_is_the_whole_once(admin):
    """Cut anywhere, a catch-up resumed from the cut's Last-Event-ID gives the rest: the two
    halves together are the one read, in the same (deterministic) order, nothing twice."""
    for i in range(3):
        list_product(admin, unique("HALF").upper())
    whole, reason = read_all(admin, context="catalog", **{"from": "earliest"})
    assert reason == "caught_up" and len(whole) >= 3
    cut = len(whole) // 2
    first, reason = read_all(admin, context="catalog", limit=cut, **{"from": "earliest"})
    assert reason == "limit" and len(first) == cut
    rest, _ = read_all(admin, context="catalog", headers={"Last-Event-ID": first[-1][0]})
    positions = [d["position"] for _, d in first + rest]
    assert len(positions) == len(set(positions)), "an event came twice"
    assert [d["position"] for _, d in first] == [d["position"] for _, d in whole[:cut]]

    def by_partition(items):
        out = {}
        for _, d in items:
            part, offset = map(int, d["position"].split(":"))
            out.setdefault(part, []).append(offset)
        return out
    # per partition, in offset order, what the one read had and then what came since
    halves, one = by_partition(first + rest), by_partition(whole)
    for part, offsets in one.items():
        assert halves[part][:len(offsets)] == offsets, f"partition {part}: a gap or a repeat"
        assert halves[part] == sorted(halves[part])


def test_resume_after_a_reconnect_with_events_written_in_between(admin):
    s = Stream(admin, context="catalog", type="ProductListed")
    assert s.status == 200 and s.r.headers["Content-Type"] == "text/event-stream"
    s.until(lambda n, d: n == "caught-up")
    first = unique("LIVE").upper()
    list_product(admin, first)
    seen = s.until(lambda n, d: n == "message" and d["aggregate_id"] == first)
    last_id = seen[-1][1]
    s.close()
    later = [unique("GAP").upper() for _ in range(3)]
    for sku in later:
        list_product(admin, sku)
    got, _ = read_all(admin, context="catalog", type="ProductListed",
                      headers={"Last-Event-ID": last_id})
    skus = [d["aggregate_id"] for _, d in got]
    assert first not in skus, "the event before the cursor came again"
    assert [k for k in skus if k in later] == later, skus
    assert len(skus) == len(set(skus))


def test_filters_by_context_type_and_aggregate(admin):
    sku = unique("FILT").upper()
    list_product(admin, sku)
    rename(admin, sku, "renamed once")
    r = requests.put(f"{API}/v1/prices/{sku}", headers=dict(auth(admin), **WAIT), timeout=30,
                     json={"amount_minor": 1500, "currency": "EUR"})
    assert r.status_code in (200, 201), api_json(r)
    got, _ = read_all(admin, context="catalog,pricing", aggregate=sku, **{"from": "earliest"})
    # one aggregate's events in version order; across partitions, as the hub received them
    seen = [(d["context"], d["type"].rsplit(".", 1)[1], d["version"]) for _, d in got]
    assert [e for e in seen if e[0] == "catalog"] == [("catalog", "ProductListed", 1),
                                                      ("catalog", "ProductDetailsChanged", 2)]
    assert [e for e in seen if e[0] == "pricing"] == [("pricing", "PriceSet", 1)]
    got, _ = read_all(admin, context="catalog", aggregate=sku, type="eventshop.catalog.ProductDetailsChanged",
                      **{"from": "earliest"})
    assert [d["payload"]["name"] for _, d in got] == ["renamed once"]
    for bad in ({"context": "weather"}, {"type": "no spaces"}, {"from": "catalog:99:0"},
                {"limit": "0"}, {"until": "later"}):
        r = requests.get(f"{API}/v1/stream", params=bad, headers=auth(admin), timeout=10)
        assert r.status_code == 400 and r.headers["Content-Type"] == "application/problem+json", bad
    r = requests.get(f"{API}/v1/stream", headers=dict(auth(admin), **{"Last-Event-ID": "nope"}),
                     timeout=10)
    assert r.status_code == 400


def place_order(customer, sku):
    r = requests.post(f"{API}/v1/orders", headers=dict(auth(customer), **WAIT), timeout=30,
                      json={"lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS})
    assert r.status_code == 201, api_json(r)
    return r.json()["order_id"]


def test_a_customer_sees_its_own_orders_only(admin):
    sku = unique("ORD").upper()
    list_product(admin, sku)
    requests.post(f"{API}/v1/inventory/{sku}/receipts", headers=dict(auth(admin), **WAIT),
                  json={"quantity": 5}, timeout=30)
    requests.put(f"{API}/v1/prices/{sku}", headers=dict(auth(admin), **WAIT), timeout=30,
                 json={"amount_minor": 1000, "currency": "EUR"})
    alice, bob = mint_token("customer", unique("alice")), mint_token("customer", unique("bob"))
    mine = place_order(alice, sku)
    theirs = place_order(bob, sku)
    got, _ = read_all(alice, context="orders", **{"from": "earliest"})
    orders = {d["aggregate_id"] for _, d in got}
    assert mine in orders and theirs not in orders
    placed = [d for _, d in got if d["aggregate_id"] == mine and d["type"].endswith("OrderPlaced")]
    assert placed and placed[0]["payload"]["shipping_address"]["city"] == "Lyon"
    got, _ = read_all(bob, **{"from": "earliest"})  # every context a customer may read
    assert {d["context"] for _, d in got} <= {"orders", "users"}
    assert mine not in {d["aggregate_id"] for _, d in got}
    r = requests.get(f"{API}/v1/stream", params={"context": "catalog"}, headers=auth(alice),
                     timeout=10)
    assert r.status_code == 403


def test_a_vendor_sees_its_skus_only(admin):
    v1, v2 = unique("sv1"), unique("sv2")
    own, other = unique("OWN").upper(), unique("OTHER").upper()
    list_product(admin, own, v1)
    list_product(admin, other, v2)
    requests.put(f"{API}/v1/prices/{other}", headers=dict(auth(admin), **WAIT), timeout=30,
                 json={"amount_minor": 900, "currency": "EUR"})
    vendor = mint_token("vendor", unique("vendor-user"), v1)
    got, _ = read_all(vendor, **{"from": "earliest"})
    skus = {d["aggregate_id"] for _, d in got}
    assert own in skus and other not in skus
    assert {d["context"] for _, d in got} <= {"catalog", "inventory", "pricing"}


def test_tickets_are_single_use_and_unknown_or_expired_ones_are_401(admin):
    r = requests.post(f"{API}/v1/stream/tickets", headers=auth(admin), timeout=10)
    assert r.status_code == 201, api_json(r)
    ticket = r.json()["ticket"]
    s = Stream(None, ticket=ticket, until="now")
    assert s.status == 200
    assert s.until(lambda n, d: n == "end")[-1][2]["reason"] == "caught_up"
    s.close()
    again = requests.get(f"{API}/v1/stream", params={"ticket": ticket, "until": "now"}, timeout=10)
    assert again.status_code == 401 and again.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{API}/v1/stream", params={"ticket": "x" * 43}, timeout=10).status_code == 401
    assert requests.post(f"{API}/v1/stream/tickets", timeout=10).status_code == 401
    short = mint_token("admin", unique("short-admin"), ttl=2)
    r = requests.post(f"{API}/v1/stream/tickets", headers=auth(short), timeout=10)
    assert r.status_code == 201
    expires_at = r.json()["expires_at"]
    assert expires_at <= (time.time() + 3) * 1000  # never past its token
    wait_for(lambda: time.time() * 1000 > expires_at + 100, timeout=10, what="the ticket's expiry")
    r = requests.get(f"{API}/v1/stream", params={"ticket": r.json()["ticket"]}, timeout=10)
    assert r.status_code == 401


def test_a_stream_ends_when_its_token_expires():
    tok = mint_token("admin", unique("expiring-admin"), ttl=3)
    s = Stream(tok, timeout=30)
    assert s.status == 200
    assert s.until(lambda n, d: n == "end")[-1][2] == {"reason": "token_expired"}
    s.close()


def open_streams():
    r = requests.get(f"{API}/metrics", timeout=10)
    for line in r.text.splitlines():
        if line.startswith("eventshop_api_streams_open "):
            return int(float(line.split()[1]))
    return 0


def test_streams_beyond_the_cap_get_503_and_a_closed_one_frees_its_place(admin):
    cap = int(os.environ.get("EVENTSHOP_STREAM_MAX", "64"))
    held, refused = [], None
    try:
        for _ in range(cap + 1):
            s = Stream(admin, timeout=30)
            if s.status != 200:
                refused = s.r
                break
            held.append(s)
        assert refused is not None and refused.status_code == 503, "no cap"
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:eventshop:problem:too_many_streams"
        assert 1 <= len(held) <= cap
    finally:
        for s in held:
            s.close()
    # a closed client is noticed at the next write (a heartbeat at the latest)
    wait_for(lambda: open_streams() == 0, timeout=90, interval=1, what="the streams' places back")
    s = Stream(admin, until="now")
    assert s.status == 200
    s.close()
