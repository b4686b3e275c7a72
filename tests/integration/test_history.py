"""An aggregate's history (issue 11, item 3): GET /v1/history/{context}/{aggregate_id} and
`eventshop-history show`, read from each context's event index (kept by its projector) and the
events topic. An order lists placed -> reserved -> ... -> confirmed in version order with
positions; another customer gets 404; a vendor sees its sku and not another's; paging follows
the next link; a forgotten user's personal fields are null; `show` prints the same events."""
import json
import os
import subprocess
import uuid

import pytest
import requests

from conftest import env, mint_token, unique, wait_for
from notify_ship_util import register_customer

SERVED = set(os.environ.get("ES_CONTEXTS", "").split())
pytestmark = pytest.mark.skipif(
    not {"catalog", "inventory", "pricing", "orders", "payments", "users"} <= SERVED,
    reason="the stack does not run the contexts an order needs")
WAIT = {"Prefer": "wait=15"}
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
           "postal_code": "N1 9GU", "country": "GB"}


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


def history(api_url, tok, ctx, agg, **params):
    return requests.get(f"{api_url}/v1/history/{ctx}/{agg}", headers=auth(tok), params=params,
                        timeout=30)


def show(ctx, agg):
    out = subprocess.run([os.path.join(env("ES_BUILD"), "history", "eventshop-history"), "show",
                          ctx, agg, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def vendor_sku(api_url):
    vendor = unique("v")
    tok = mint_token("vendor", unique("u"), vendor)
    sku = unique("HIST")
    r = requests.post(f"{api_url}/v1/products", timeout=30, headers=auth(tok, **WAIT),
                      json={"sku": sku, "name": "Mug", "category": "kitchen", "currency": "EUR"})
    assert r.status_code == 201, r.text
    r = requests.put(f"{api_url}/v1/prices/{sku}", timeout=30, headers=auth(tok, **WAIT),
                     json={"amount_minor": 900, "currency": "EUR"})
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", timeout=30,
                      headers=auth(tok, **WAIT), json={"quantity": 10})
    assert r.status_code in (200, 201), r.text
    return sku, tok


@pytest.fixture(scope="module")
def order(api_url, vendor_sku):
    """A confirmed order of a customer: (order id, customer token)."""
    sku, _ = vendor_sku
    tok = mint_token("customer", f"cust-{uuid.uuid4().hex[:12]}")
    r = requests.post(f"{api_url}/v1/orders", timeout=60, headers=auth(tok, **WAIT),
                      json={"lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS})
    assert r.status_code in (200, 201, 202), r.text
    oid = r.json().get("order_id") or r.json().get("aggregate_id")

    def confirmed():
        items = history(api_url, tok, "orders", oid).json().get("items", [])
        types = [i["type"].rsplit(".", 1)[1] for i in items]
        return items if "OrderConfirmed" in types else None

    wait_for(confirmed, timeout=90, interval=0.5, what=f"order {oid} confirmed in its history")
    return oid, tok


def test_an_orders_history_is_in_version_order_with_positions(api_url, order):
    oid, tok = order
    r = history(api_url, tok, "orders", oid)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["context"] == "orders" and body["aggregate_id"] == oid
    items = body["items"]
    types = [i["type"].rsplit(".", 1)[1] for i in items]
    assert types[0] == "OrderPlaced", types
    for a, b in [("OrderPlaced", "OrderStockReserved"), ("OrderStockReserved", "OrderConfirmed")]:
        assert types.index(a) < types.index(b), types
    assert [i["version"] for i in items] == list(range(1, len(items) + 1))
    for i in items:
        part, off = i["position"].split(":")
        assert int(part) >= 0 and int(off) >= 0
        assert i["occurred_at"] > 0 and i["event_id"]
        assert "metadata" not in i["payload"]
    parts = {i["position"].split(":")[0] for i in items}
    assert len(parts) == 1, "an aggregate lives on one partition"
    # the customer's own order: its sealed address opened
    placed = items[0]["payload"]
    assert placed["shipping_address"] == ADDRESS
    assert "shipping_address_enc" not in placed
    assert body["next"] is None


def test_another_customer_gets_404_and_a_vendor_403(api_url, order, vendor_sku):
    oid, _ = order
    other = mint_token("customer", f"cust-{uuid.uuid4().hex[:12]}")
    r = history(api_url, other, "orders", oid)
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    r = history(api_url, other, "orders", "o-does-not-exist")
    assert r.status_code == 404
    r = history(api_url, vendor_sku[1], "orders", oid)
    assert r.status_code == 403, r.text
    admin = mint_token("admin", "adm-hist")
    assert history(api_url, admin, "orders", oid).status_code == 200


def test_a_vendor_sees_its_skus_history_and_not_anothers(api_url, vendor_sku):
    sku, tok = vendor_sku
    for ctx, first in [("catalog", "ProductListed"), ("pricing", None), ("inventory", None)]:
        r = history(api_url, tok, ctx, sku)
        assert r.status_code == 200, (ctx, r.text)
        items = r.json()["items"]
        assert items, ctx
        if first:
            assert items[0]["type"].endswith(first)
    stranger = mint_token("vendor", unique("u"), unique("v"))
    for ctx in ("catalog", "pricing", "inventory"):
        assert history(api_url, stranger, ctx, sku).status_code == 404, ctx


def test_paging_follows_the_next_link(api_url, order):
    oid, tok = order
    whole = history(api_url, tok, "orders", oid).json()["items"]
    assert len(whole) >= 3
    seen, url = [], f"/v1/history/orders/{oid}?limit=2"
    while url:
        r = requests.get(f"{api_url}{url}", headers=auth(tok), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 2
        seen += body["items"]
        url = body["next"]
        if url:
            assert r.headers["Link"] == f'<{url}>; rel="next"'
    assert [i["position"] for i in seen] == [i["position"] for i in whole]
    r = history(api_url, tok, "orders", oid, after_version=2, limit=1)
    assert [i["version"] for i in r.json()["items"]] == [3]


def test_bad_requests_are_problems(api_url, order):
    oid, tok = order
    admin = mint_token("admin", "adm-hist")
    for params in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"after_version": -1},
                   {"after_version": "1e3"}):
        r = history(api_url, admin, "orders", oid, **params)
        assert r.status_code == 400, (params, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    r = history(api_url, admin, "weather", oid)
    assert r.status_code == 404 and r.json()["field"] == "context"
    assert history(api_url, admin, "orders", "x" * 129).status_code == 404
    assert requests.get(f"{api_url}/v1/history/orders/{oid}", timeout=30).status_code == 401


def test_a_forgotten_users_history_shows_null_personal_fields(api_url, db):
    user_id, addr = register_customer(api_url, db, phone="+33123456789")
    admin = mint_token("admin", "adm-hist")
    items = history(api_url, admin, "users", user_id).json()["items"]
    reg = items[0]["payload"]
    assert reg["email"] == addr and reg["name"] == "Zoë Buyer" and reg["phone"] == "+33123456789"
    assert reg["password_hash"] is None and "shredded" not in items[0]
    # the user itself may read its account's history; another customer may not
    assert history(api_url, mint_token("customer", user_id), "users", user_id).status_code == 200
    assert history(api_url, mint_token("customer", "cust-x"), "users", user_id).status_code == 404
    r = requests.delete(f"{api_url}/v1/users/{user_id}", headers=auth(admin, **WAIT), timeout=30)
    assert r.status_code in (200, 202, 204), r.text

    def forgotten():
        it = history(api_url, admin, "users", user_id).json()["items"]
        return it if it[-1]["type"].endswith("UserForgotten") else None

    items = wait_for(forgotten, timeout=30, what="UserForgotten in the history")
    reg = items[0]
    assert reg["shredded"] is True
    for f in ("email", "name", "phone", "password_hash", "email_index"):
        assert reg["payload"][f] is None, f
    assert addr not in json.dumps(items)


def test_show_prints_the_same_events(api_url, order):
    oid, tok = order
    api_items = history(api_url, tok, "orders", oid).json()["items"]
    doc = show("orders", oid)
    assert doc["aggregate_id"] == oid
    assert [(i["version"], f'{i["part"]}:{i["offset"]}', i["type"]) for i in doc["items"]] == \
        [(i["version"], i["position"], i["type"]) for i in api_items]
    # an operator sees the address sealed
    placed = doc["items"][0]["payload"]
    assert placed["shipping_address_enc"] and "shipping_address" not in placed
