"""Orders end to end on the running stack: placing over HTTP, the order saga with the real
inventory, payments (test gateway) and shipping (test carrier) subscribers. Needs ES_CONTEXTS with
"orders inventory payments shipping" and ES_SUBSCRIBERS with "order-saga payments shipping"; the
deadline tests expect short deadlines (EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS /
EVENTSHOP_ORDER_PAY_TIMEOUT_MS, e.g. 20000 / 30000, as scripts/test.sh should set them).

THE INVARIANTS: no overselling; every saga ends (confirmed and on, or cancelled with its stock
released); a confirmed order is charged exactly once, a cancelled one is never left charged."""
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import read_topic, unique, wait_for
from notify_ship_util import mails_about, register_customer

WAIT = {"Prefer": "wait=20"}
FINAL = {"delivered", "cancelled"}
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
           "postal_code": "N1 9GU", "country": "GB"}


def needs(kind, names):
    have = os.environ.get(kind, "").split()
    missing = [n for n in names if n not in have]
    if missing:
        pytest.skip(f"the stack runs without {kind} {missing}")


@pytest.fixture(scope="module", autouse=True)
def flow():
    needs("ES_CONTEXTS", ["orders", "inventory", "pricing", "payments", "shipping"])
    needs("ES_SUBSCRIBERS", ["order-saga", "payments", "shipping"])


def reserve_ms():
    return int(os.environ.get("EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS", "60000"))


def pay_ms():
    return int(os.environ.get("EVENTSHOP_ORDER_PAY_TIMEOUT_MS", "300000"))


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


@pytest.fixture(scope="module")
def gateway():
    url = os.environ["EVENTSHOP_PAYMENTS_GATEWAY_URL"]
    requests.post(f"{url}/_control", json={"fail_next": 0, "delay_ms": 0}, timeout=10)
    yield url
    requests.post(f"{url}/_control", json={"fail_next": 0, "delay_ms": 0}, timeout=10)


def charges(gateway, order_id):
    r = requests.get(f"{gateway}/_charges", params={"order_id": order_id}, timeout=10)
    r.raise_for_status()
    return r.json()["orders"].get(order_id, {"charges": 0, "refunds": 0, "intents": []})


def sku_on_sale(api_url, token, stock, price=1250):
    """A listed sku with a price and stock; returns (sku, vendor token)."""
    vendor = unique("v")
    tok = token("vendor", unique("u"), vendor)
    sku = unique("ORD")
    r = requests.post(f"{api_url}/v1/products", timeout=30, headers=auth(tok, **WAIT),
                      json={"sku": sku, "name": "Mug", "category": "kitchen", "currency": "EUR"})
    assert r.status_code == 201, r.text
    r = requests.put(f"{api_url}/v1/prices/{sku}", timeout=30, headers=auth(tok, **WAIT),
                     json={"amount_minor": price, "currency": "EUR"})
    assert r.status_code in (200, 201), r.text
    if stock:
        r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", timeout=30,
                          headers=auth(tok, **WAIT), json={"quantity": stock})
        assert r.status_code in (200, 201), r.text
    return sku, tok


def customer(token, decline=False):
    sub = f"cust-{'decline-' if decline else ''}{uuid.uuid4().hex[:12]}"
    return sub, token("customer", sub)


def place(api_url, tok, lines, session=requests):
    return session.post(f"{api_url}/v1/orders", timeout=60, headers=auth(tok, **WAIT),
                        json={"lines": lines, "shipping_address": ADDRESS})


def placed_id(r):
    assert r.status_code in (200, 201, 202), r.text
    body = r.json()
    oid = body.get("order_id") or body.get("aggregate_id")
    assert oid, body
    return oid


def get_order(api_url, tok, oid):
    r = requests.get(f"{api_url}/v1/orders/{oid}", headers=auth(tok), timeout=30)
    return r.json() if r.status_code == 200 else None


def wait_status(api_url, tok, oid, statuses, timeout=90):
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)

    def ok():
        o = get_order(api_url, tok, oid)
        return o if o and o["status"] in statuses else None

    return wait_for(ok, timeout=timeout, interval=0.5, what=f"order {oid} in {statuses}")


def stock(api_url, sku):
    r = requests.get(f"{api_url}/v1/inventory/{sku}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def registered_customer(api_url, db):
    """A customer with an account (so notifications know its address), logged in over HTTP:
    (user id, e-mail address, token)."""
    sub, addr = register_customer(api_url, db)  # with notify_ship_util's password
    r = requests.post(f"{api_url}/v1/auth/token", timeout=30,
                      json={"email": addr, "password": "correct horse battery staple"})
    assert r.status_code == 200, r.text
    return sub, addr, r.json()["access_token"]


def test_happy_path_placed_to_delivered(api_url, token, gateway, db, brokers, registry):
    needs("ES_SUBSCRIBERS", ["notifications"])
    sku, _ = sku_on_sale(api_url, token, stock=5, price=1250)
    sub, addr, tok = registered_customer(api_url, db)
    r = place(api_url, tok, [{"sku": sku, "quantity": 2}])
    oid = placed_id(r)
    assert r.headers.get("Location", "").endswith(oid) or r.status_code == 202
    o = wait_status(api_url, tok, oid, "delivered", timeout=120)
    assert o["order_id"] == oid and o["customer_id"] == sub
    assert o["total_minor"] == 2500 and o["currency"] == "EUR"
    assert [(l["sku"], l["quantity"], l["unit_amount_minor"]) for l in o["lines"]] == [(sku, 2, 1250)]
    walked = [t["status"] for t in o["timeline"]]
    assert walked == ["placed", "stock_reserved", "confirmed", "shipped", "delivered"], walked
    assert o["payment_status"] == "captured" and o["shipment_status"] == "delivered"
    g = charges(gateway, oid)
    assert g["charges"] == 1 and g["amount_charged"] == 2500
    wait_for(lambda: stock(api_url, sku)["on_hand"] == 3 and stock(api_url, sku)["reserved"] == 0,
             timeout=30, what="the stock committed")
    # the SMTP capture got the confirmed, shipped and delivered e-mails, once each
    kinds = ("is confirmed", "has shipped", "was delivered")

    def mailed():
        got = mails_about(oid)
        return got if all(any(k in m["Subject"] for m in got) for k in kinds) else None

    wait_for(mailed, timeout=30, what=f"the e-mails of order {oid}")

    # the subscriber records a mail before its NotificationSent is committed: once all three are
    # there, any second send of them would already be in the capture
    def recorded():
        sent = [m["value"]["kind"] for m in read_topic(brokers, registry, "notifications.events")
                if m["value"].get("order_id") == oid and "kind" in m["value"]]
        return len(sent) >= 3

    wait_for(recorded, timeout=30, what=f"three NotificationSent of order {oid}")
    got = mails_about(oid)
    assert sorted(m["Subject"] for m in got) == sorted(f"Your order {oid} {k}" for k in kinds), \
        [m["Subject"] for m in got]
    assert all(m["To"] == addr for m in got), [m["To"] for m in got]
    # the customer sees it in its list; another customer neither lists nor reads it
    mine = requests.get(f"{api_url}/v1/orders", headers=auth(tok), timeout=30).json()["items"]
    assert oid in [x["order_id"] for x in mine]
    _, other = customer(token)
    assert requests.get(f"{api_url}/v1/orders/{oid}", headers=auth(other), timeout=30).status_code == 404
    assert oid not in [x["order_id"] for x in
                       requests.get(f"{api_url}/v1/orders", headers=auth(other), timeout=30).json()["items"]]


def test_a_placed_order_is_named_in_its_202(api_url, token):
    """Without Prefer: wait the 202 names the order the API minted (order_id in the body, Link
    rel="related" to it) while Location stays the command's URL; the order is then found there."""
    sku, _ = sku_on_sale(api_url, token, stock=2)
    sub, tok = customer(token)
    r = requests.post(f"{api_url}/v1/orders", timeout=60, headers=auth(tok),
                      json={"lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS})
    assert r.status_code == 202, r.text
    body = r.json()
    oid, cid = body.get("order_id"), body["command_id"]
    assert oid and body["status"] == "pending", body
    assert r.headers["Location"] == f"/v1/commands/{cid}"
    assert r.headers["Link"] == f'</v1/orders/{oid}>; rel="related"'
    o = wait_status(api_url, tok, oid, {"placed", "stock_reserved", "confirmed", "shipped",
                                        "delivered", "cancelled"}, timeout=30)
    assert o["order_id"] == oid and o["customer_id"] == sub


def test_bad_orders_are_refused(api_url, token):
    sku, _ = sku_on_sale(api_url, token, stock=1)
    _, tok = customer(token)
    for body in ({"lines": [], "shipping_address": ADDRESS},
                 {"lines": [{"sku": sku, "quantity": 0}], "shipping_address": ADDRESS},
                 {"lines": [{"sku": sku, "quantity": 1, "x": 1}], "shipping_address": ADDRESS},
                 {"lines": [{"sku": sku, "quantity": 1}]},
                 {"lines": [{"sku": sku, "quantity": 1}], "shipping_address": {**ADDRESS, "x": "y"}}):
        r = requests.post(f"{api_url}/v1/orders", json=body, headers=auth(tok, **WAIT), timeout=30)
        assert r.status_code == 422, (body, r.status_code, r.text)
    r = place(api_url, tok, [{"sku": unique("NOPE"), "quantity": 1}])
    assert r.status_code == 404, r.text
    vendor_tok = token("vendor", unique("u"), unique("v"))
    assert place(api_url, vendor_tok, [{"sku": sku, "quantity": 1}]).status_code == 403


def test_decline_cancels_and_releases(api_url, token, gateway):
    sku, _ = sku_on_sale(api_url, token, stock=3)
    _, tok = customer(token, decline=True)
    oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))
    o = wait_status(api_url, tok, oid, "cancelled")
    assert o["cancel_reason"] == "payment_declined"
    assert charges(gateway, oid)["charges"] == 0
    wait_for(lambda: stock(api_url, sku)["reserved"] == 0 and stock(api_url, sku)["available"] == 3,
             timeout=30, what="the reservation released")


def test_customer_cancel_after_payment_is_refunded(api_url, token, gateway, stack):
    sku, _ = sku_on_sale(api_url, token, stock=3)
    _, tok = customer(token)
    # the shipping subscriber is down, so the paid order stays confirmed (not yet shipped)
    stack.stop("subscriber-shipping")
    try:
        oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))
        wait_status(api_url, tok, oid, "confirmed")
        r = requests.post(f"{api_url}/v1/orders/{oid}/cancel", headers=auth(tok, **WAIT), timeout=30)
        assert r.status_code in (200, 201), r.text
        o = wait_status(api_url, tok, oid, "cancelled")
    finally:
        stack.start("subscriber-shipping")
    assert o["cancel_reason"] == "customer" and o["refund_requested"] == 1
    wait_for(lambda: charges(gateway, oid)["refunds"] == 1, timeout=60, what="the refund")
    assert charges(gateway, oid)["charges"] == 1
    wait_for(lambda: stock(api_url, sku)["reserved"] == 0 and stock(api_url, sku)["available"] == 3,
             timeout=30, what="the reservation released")
    # a second cancel of a final order is refused
    r = requests.post(f"{api_url}/v1/orders/{oid}/cancel", headers=auth(tok, **WAIT), timeout=30)
    assert r.status_code == 409


def test_payment_deadline_cancels_and_refunds_a_late_capture(api_url, token, gateway):
    if pay_ms() > 60000:
        pytest.skip("needs EVENTSHOP_ORDER_PAY_TIMEOUT_MS <= 60000")
    sku, _ = sku_on_sale(api_url, token, stock=2)
    _, tok = customer(token)
    # the gateway answers after the pay deadline: the saga cancels, the capture that lands
    # afterwards is refunded
    requests.post(f"{gateway}/_control", json={"delay_ms": pay_ms() + 3000}, timeout=10)
    try:
        oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))
        o = wait_status(api_url, tok, oid, "cancelled", timeout=pay_ms() / 1000 + 30)
        assert o["cancel_reason"] == "deadline"
    finally:
        requests.post(f"{gateway}/_control", json={"delay_ms": 0}, timeout=10)
    g = wait_for(lambda: (lambda c: c if c["charges"] == 0 or c["refunds"] == 1 else None)(
        charges(gateway, oid)), timeout=60, what="no charge left standing")
    assert g["charges"] <= 1 and g["charges"] == g["refunds"]
    wait_for(lambda: stock(api_url, sku)["reserved"] == 0 and stock(api_url, sku)["available"] == 2,
             timeout=30, what="the reservation released")


def test_flash_sale_sells_exactly_the_stock(api_url, token, gateway):
    n_buyers, units = 200, 50
    sku, _ = sku_on_sale(api_url, token, stock=units, price=990)
    buyers = [customer(token) for _ in range(n_buyers)]
    t0 = time.time()
    local = threading.local()

    def buy(b):
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return b[1], placed_id(place(api_url, b[1], [{"sku": sku, "quantity": 1}], local.s))

    with ThreadPoolExecutor(max_workers=32) as pool:
        orders = list(pool.map(buy, buyers))
    finals = {}
    deadline = time.time() + 150
    while len(finals) < len(orders) and time.time() < deadline:
        for tok, oid in orders:
            if oid in finals:
                continue
            o = get_order(api_url, tok, oid)
            if o and (o["status"] in FINAL or o["status"] == "shipped"):
                finals[oid] = o
        time.sleep(1)
    assert len(finals) == len(orders), f"{len(orders) - len(finals)} orders never ended"
    sold = [o for o in finals.values() if o["status"] != "cancelled"]
    cancelled = [o for o in finals.values() if o["status"] == "cancelled"]
    assert len(sold) == units, (len(sold), len(cancelled))
    assert {o["cancel_reason"] for o in cancelled} == {"out_of_stock"}
    for o in sold:
        assert charges(gateway, o["order_id"])["charges"] == 1, o["order_id"]
    for o in cancelled:
        assert charges(gateway, o["order_id"])["charges"] == 0, o["order_id"]
    wait_for(lambda: (lambda s: s["available"] == 0 and s["reserved"] == 0)(stock(api_url, sku)),
             timeout=60, what="stock 0 available, 0 reserved")
    print(f"flash sale: {n_buyers} buyers, {units} units, ended in {time.time() - t0:.1f} s")


def test_every_saga_ends(api_url, token, gateway):
    """Random orders with injected failures (out of stock, declines, gateway 5xx bursts,
    customer cancels): after the deadlines none is left in a non-final state, every reservation
    is closed, and no cancelled order keeps a charge."""
    rnd = random.Random(int(os.environ.get("ES_TEST_SEED", "4")))
    skus = [sku_on_sale(api_url, token, stock=s)[0] for s in (3, 10)]
    requests.post(f"{gateway}/_control", json={"fail_next": 3}, timeout=10)
    plans = []
    for i in range(20):
        lines = [{"sku": s, "quantity": rnd.randint(1, 2)} for s in skus if rnd.random() < 0.7]
        plans.append((rnd.random() < 0.2, lines or [{"sku": skus[0], "quantity": 1}],
                      rnd.random() < 0.2))

    def go(plan):
        decline, lines, cancel = plan
        _, tok = customer(token, decline=decline)
        oid = placed_id(place(api_url, tok, lines))
        if cancel:
            requests.post(f"{api_url}/v1/orders/{oid}/cancel", headers=auth(tok), timeout=30)
        return tok, oid

    with ThreadPoolExecutor(max_workers=10) as pool:
        placed = list(pool.map(go, plans))
    limit = time.time() + max(reserve_ms(), pay_ms()) / 1000 + 90
    left = dict((oid, tok) for tok, oid in placed)
    ends = {}
    while left and time.time() < limit:
        for oid, tok in list(left.items()):
            o = get_order(api_url, tok, oid)
            if o and o["status"] in FINAL:
                ends[oid] = o
                del left[oid]
        time.sleep(1)
    assert not left, f"sagas that never ended: {left}"
    for oid, o in ends.items():
        g = charges(gateway, oid)
        if o["status"] == "cancelled":
            wait_for(lambda: (lambda c: c["charges"] == c["refunds"])(charges(gateway, oid)),
                     timeout=60, what=f"cancelled order {oid} refunded")
        else:
            assert g["charges"] == 1, (oid, g)
    for s in skus:
        wait_for(lambda: stock(api_url, s)["reserved"] == 0, timeout=60,
                 what=f"every reservation of {s} closed")


def test_dead_letter_and_replay(brokers):
    """A message the saga cannot process goes to order-saga.deadletter with its reason; the
    operator's replay command re-processes it (failing again, it is dead-lettered again)."""
    from conftest import producer, read_topic
    key = unique("dl")
    p = producer(brokers)
    p.produce("orders.events", key=key.encode(), value=b"\x00\x7f\xff\xff\xf0garbage")
    p.flush(10)

    def lettered():
        msgs = read_topic(brokers, None, "order-saga.deadletter", decode=False)
        return [m for m in msgs if m["key"] == key]

    got = wait_for(lettered, timeout=60, interval=1, what="the dead letter")
    assert got[0]["headers"]["reason"].startswith(b"undecodable")
    assert got[0]["headers"]["source-topic"] == b"orders.events"
    tool = os.path.join(os.environ["ES_BUILD"], "subscribers", "eventshop-subscriber")
    import subprocess
    out = subprocess.run([tool, "order-saga", "--replay-dead-letters"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "replayed" in out.stdout
    wait_for(lambda: len(lettered()) == 2, timeout=30, interval=1, what="the dead letter again")
