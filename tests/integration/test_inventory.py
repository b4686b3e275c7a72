"""Inventory end to end on the running stack (ES_CONTEXTS must include "inventory"): stock over
HTTP, ownership from the catalog view, the handler's view-freshness rule, and THE INVARIANT —
many concurrent reservations on the real broker never oversell."""
import threading
import time
import uuid

import pytest
import requests

from conftest import command_meta, command_serializer, producer, read_topic, unique, wait_for
from confluent_kafka.serialization import MessageField, SerializationContext

WAIT = {"Prefer": "wait=20"}
NS = "eventshop.inventory."


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


def list_product(api_url, tok, sku):
    body = {"sku": sku, "name": "Mug", "category": "kitchen", "currency": "EUR"}
    r = requests.post(f"{api_url}/v1/products", json=body, headers=auth(tok, **WAIT), timeout=30)
    assert r.status_code == 201, r.text


def post(api_url, tok, path, body, **headers):
    return requests.post(f"{api_url}{path}", json=body, headers=auth(tok, **WAIT, **headers),
                         timeout=30)


def get_stock(api_url, sku, position=None):
    h = {"X-Min-Position": position} if position else {}
    return requests.get(f"{api_url}/v1/inventory/{sku}", headers=h, timeout=30)


@pytest.fixture
def owned_sku(api_url, token):
    vendor = unique("v")
    tok = token("vendor", unique("u"), vendor)
    sku = unique("INV")
    list_product(api_url, tok, sku)
    return sku, vendor, tok


def test_receive_adjust_and_query(api_url, token, owned_sku):
    sku, vendor, tok = owned_sku
    r = post(api_url, tok, f"/v1/inventory/{sku}/receipts", {"quantity": 10})
    assert r.status_code == 200, r.text
    assert r.json()["sku"] == sku and r.json()["aggregate_version"] == 1
    r = post(api_url, tok, f"/v1/inventory/{sku}/adjustments", {"delta": -3, "reason": "damage"})
    assert r.status_code == 200, r.text
    pos = r.json()["position"]
    s = get_stock(api_url, sku, pos)
    assert s.status_code == 200, s.text
    assert s.json() == {"sku": sku, "on_hand": 7, "reserved": 0, "available": 7, "version": 2}
    assert s.headers["ETag"] == '"2"'
    r = requests.get(f"{api_url}/v1/inventory/{sku}", headers={"If-None-Match": '"2"'}, timeout=10)
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == '"2"'

    admin = token("admin", unique("adm"))
    r = post(api_url, admin, f"/v1/inventory/{sku}/reservations", {"order_id": "o-1", "quantity": 4})
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v1/inventory/{sku}/reservations/o-1"
    # beyond what is available: 409 saying how much is
    r = post(api_url, admin, f"/v1/inventory/{sku}/reservations", {"order_id": "o-2", "quantity": 4})
    assert r.status_code == 409, r.text
    p = r.json()
    assert p["type"] == "urn:eventshop:problem:insufficient_stock" and "3 available" in p["detail"]
    # on hand never below what is reserved
    r = post(api_url, tok, f"/v1/inventory/{sku}/adjustments", {"delta": -4, "reason": "count"})
    assert r.status_code == 409, r.text
    r = requests.delete(f"{api_url}/v1/inventory/{sku}/reservations/o-1",
                        headers=auth(admin, **WAIT), timeout=30)
    assert r.status_code == 200, r.text
    s = get_stock(api_url, sku, r.json()["position"]).json()
    assert (s["on_hand"], s["reserved"], s["available"]) == (7, 0, 7)

    m = requests.get(f"{api_url}/v1/inventory/{sku}/movements", headers=auth(tok), timeout=30)
    assert m.status_code == 200, m.text
    kinds = [x["kind"] for x in m.json()["items"]]
    assert kinds == ["released", "rejected", "reserved", "adjusted", "received"]
    assert m.json()["items"][3]["reason"] == "damage"


def test_bad_input_is_refused_at_the_edge(api_url, owned_sku, token):
    sku, vendor, tok = owned_sku
    for body in ({"quantity": 0}, {"quantity": "3"}, {"quantity": 1, "extra": 1}, {}):
        r = post(api_url, tok, f"/v1/inventory/{sku}/receipts", body)
        assert r.status_code == 422, (body, r.text)
    r = post(api_url, tok, f"/v1/inventory/{sku}/adjustments", {"delta": 1, "reason": "theft"})
    assert r.status_code == 422, r.text
    r = post(api_url, tok, f"/v1/inventory/{sku}/reservations", {"order_id": "o", "quantity": 1})
    assert r.status_code == 403, r.text  # reservations: admins only


def test_other_vendor_is_not_owner(api_url, token, owned_sku):
    sku, vendor, tok = owned_sku
    assert post(api_url, tok, f"/v1/inventory/{sku}/receipts", {"quantity": 1}).status_code == 200
    other = token("vendor", unique("u"), unique("v"))
    for path, body in ((f"/v1/inventory/{sku}/receipts", {"quantity": 5}),
                       (f"/v1/inventory/{sku}/adjustments", {"delta": 1, "reason": "count"})):
        r = post(api_url, other, path, body)
        assert r.status_code == 403, r.text
        assert r.json()["type"] == "urn:eventshop:problem:not_owner"
    m = requests.get(f"{api_url}/v1/inventory/{sku}/movements", headers=auth(other), timeout=30)
    assert m.status_code == 403, m.text


def test_unknown_sku(api_url, token):
    admin = token("admin", unique("adm"))
    r = post(api_url, admin, f"/v1/inventory/{unique('NOPE')}/receipts", {"quantity": 1})
    assert r.status_code == 404, r.text
    assert r.json()["type"] == "urn:eventshop:problem:unknown_sku"


def test_view_freshness_a_command_after_a_listing_sees_it(api_url, token):
    """The handler catches its catalog view up to the last stable offsets before each batch: a
    receipt sent right after the listing's outcome arrived is never unknown_sku."""
    vendor = unique("v")
    tok = token("vendor", unique("u"), vendor)
    for _ in range(8):
        sku = unique("FR")
        list_product(api_url, tok, sku)
        r = post(api_url, tok, f"/v1/inventory/{sku}/receipts", {"quantity": 1})
        assert r.status_code == 200, r.text


def test_concurrent_reservations_never_oversell(api_url, token, owned_sku, brokers, registry, db):
    sku, vendor, tok = owned_sku
    r = post(api_url, tok, f"/v1/inventory/{sku}/receipts", {"quantity": 50})
    assert r.status_code == 200, r.text

    ser = command_serializer(registry, NS + "ReserveStock", topic="inventory.commands")
    orders = [f"ord-{i:03d}" for i in range(200)]
    repeats = orders[::10]  # 20 order ids sent twice, with other command ids
    jobs = [(o, str(uuid.uuid4())) for o in orders + repeats]
    ids = [cid for _, cid in jobs]

    def send(chunk):
        p = producer(brokers)
        for order, cid in chunk:
            value = {"metadata": command_meta("saga", "admin", aggregate_id=sku, command_id=cid),
                     "sku": sku, "order_id": order, "quantity": 1}
            p.produce("inventory.commands", key=sku.encode(),
                      value=ser(value, SerializationContext("inventory.commands", MessageField.VALUE)))
            p.poll(0)
        assert p.flush(30) == 0

    threads = [threading.Thread(target=send, args=(jobs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def results():
        got = {}
        for m in read_topic(brokers, registry, "inventory.results"):
            v = m["value"]
            if v["aggregate_id"] == sku and v["command_id"] in set(ids):
                got.setdefault(v["command_id"], v)
        return got if len(got) == len(ids) else None

    res = wait_for(results, timeout=90, interval=1, what="220 reservation outcomes")
    by_order = {}
    for order, cid in jobs:
        by_order.setdefault(order, []).append(res[cid])
    reserved = [o for o, rs in by_order.items() if any(r["status"] == "ACCEPTED" for r in rs)]
    rejected = [o for o, rs in by_order.items() if all(r["status"] == "REJECTED" for r in rs)]
    assert len(reserved) == 50 and len(rejected) == 150
    for o in rejected:
        assert all(r["reason"] == "insufficient_stock" for r in by_order[o])
    for o in reserved:  # a repeat of a held reservation is harmless: accepted, no event
        assert all(r["status"] == "ACCEPTED" for r in by_order[o]), by_order[o]

    events = [m["value"] for m in read_topic(brokers, registry, "inventory.events")
              if m["key"] == sku]
    for e in events:  # the state after every event
        assert e["on_hand"] >= 0 and e["on_hand"] - e["reserved"] >= 0, e
    reserved_events = [e for e in events if "available" not in e and "order_id" in e]
    rejected_events = [e for e in events if "available" in e]
    assert len(reserved_events) == 50
    assert sorted(e["order_id"] for e in reserved_events) == sorted(reserved)
    assert all(e["available"] == 0 for e in rejected_events)
    assert {e["order_id"] for e in rejected_events} == set(rejected)
    assert sum(e["quantity"] for e in reserved_events) <= 50
    assert max(e["reserved"] for e in events) == 50

    states = [m["value"] for m in read_topic(brokers, registry, "inventory.changelog")
              if m["key"] == sku]
    assert states[-1]["on_hand"] == 50 and states[-1]["reserved"] == 50
    assert len(states[-1]["reservations"]) == 50

    def row():
        with db("inventory") as c, c.cursor() as cur:
            cur.execute("SELECT on_hand, reserved, available FROM stock WHERE sku = %s", (sku,))
            r = cur.fetchone()
            cur.execute("SELECT COUNT(*) AS n FROM stock_movements WHERE sku = %s", (sku,))
            return (r, cur.fetchone()["n"]) if r and r["reserved"] == 50 else None

    r, n = wait_for(row, timeout=60, what="the stock row")
    assert r == {"on_hand": 50, "reserved": 50, "available": 0}
    assert n == len(events)
