"""Orders end to end on the running stack: placing over HTTP, the order saga with the real
inventory, payments (test gateway) and shipping (test carrier) subscribers. Needs ES_CONTEXTS with
"orders inventory payments shipping" and ES_SUBSCRIBERS with "order-saga payments shipping"; the
deadline tests expect short deadlines (EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS /
EVENTSHOP_ORDER_PAY_TIMEOUT_MS, e.g. 20000 / 30000, as scripts/test.sh should set them).

THE INVARIANTS: no overselling; every saga ends (confirmed and on, or cancelled with its stock
released); a confirmed order is charged exactly once, a cancelled one is never left charged."""
import json
import os
import random
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import command_meta, command_serializer, needs, producer, read_topic, unique, wait_for
from notify_ship_util import carrier_url, mails_about, register_customer

WAIT = {"Prefer": "wait=20"}
FINAL = {"delivered", "cancelled"}
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
           "postal_code": "N1 9GU", "country": "GB"}


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
    wait_status(api_url, tok, oid, "delivered", timeout=120)
    # payment and shipment come from their own contexts' read models, each kept by its own
    # projector: the order delivered does not mean those have applied their last event yet
    o = wait_for(lambda: (lambda o: o if o and o["payment_status"] and o["shipment_status"] == "delivered"
                          else None)(get_order(api_url, tok, oid)),
                 timeout=60, interval=0.5, what=f"order {oid}'s payment and shipment read")
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


SAGA = "subscriber-order-saga"
SAGA_GROUP = "eventshop-order-saga-subscriber"


def saga_env():
    """What scripts/stack.sh gives the saga role (saga_env): its own database user."""
    return {"EVENTSHOP_MYSQL_ORDER_SAGA_USER": "eventshop_order_saga",
            "EVENTSHOP_MYSQL_ORDER_SAGA_PASSWORD_FILE":
                os.path.join(os.environ["ES_STATE"], "secrets", "mysql-order-saga.password")}


def restart_saga(stack, kill=False, **env):
    """Stops (or SIGKILLs) the saga role and starts it again with env added."""
    (stack.kill if kill else stack.stop)(SAGA)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "scripts", "stack.sh")
    subprocess.run([script, "role-start", SAGA], check=True, timeout=120,
                   env={**os.environ, **env})
    subprocess.run([script, "role-wait", SAGA, "90"], check=True, timeout=120)


def saga_log():
    return os.path.join(os.environ["ES_STATE"], "logs", f"{SAGA}.log")


def open_row(db, oid):
    with db("order_saga").cursor() as c:
        c.execute("SELECT * FROM open_orders WHERE order_id = %s", (oid,))
        return c.fetchone()


class Events:
    """Reads a topic to the end offsets taken when called, naming each record by the schema of
    its Confluent header (several event types share a topic)."""

    def __init__(self, brokers, registry):
        self.brokers, self.registry, self.names = brokers, registry, {}

    def __call__(self, topic, key, **match):
        """(record name, value) of each message of key whose value has the fields of match."""
        out = []
        deser = AvroDeserializer(self.registry)
        for m in read_topic(self.brokers, None, topic, decode=False):
            raw = m["value"]
            if m["key"] != key or not raw or raw[0] != 0:
                continue  # other aggregates' messages (another test's garbage among them)
            sid = int.from_bytes(raw[1:5], "big")
            if sid not in self.names:
                self.names[sid] = json.loads(self.registry.get_schema(sid).schema_str)["name"]
            v = deser(raw, SerializationContext(topic, MessageField.VALUE))
            if all(v.get(k) == x for k, x in match.items()):
                out.append((self.names[sid], v))
        return out


def test_cancel_before_dispatch_is_compensated_and_after_dispatch_refused(
        api_url, token, gateway, db, stack, brokers, registry):
    """The order's decider settles the race between a cancel and the dispatch. With a dispatch
    hold (the saga approves the dispatch only after it), a cancel of a confirmed order wins:
    cancelled, refunded once, stock released, and an approval sent after it ships nothing. Once
    the order is dispatched, a cancel is refused with 409 and nothing is refunded."""
    events = Events(brokers, registry)
    sku, _ = sku_on_sale(api_url, token, stock=3)
    _, tok = customer(token)
    restart_saga(stack, EVENTSHOP_ORDER_DISPATCH_HOLD_MS="600000")
    try:
        oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 2}]))
        wait_status(api_url, tok, oid, "confirmed")
        # the saga holds the dispatch: the order waits in its table for the approval
        row = wait_for(lambda: (lambda r: r if r and r["status"] == "confirmed" else None)(
            open_row(db, oid)), timeout=30, what="the held order in the saga's table")
        assert row["dispatch_at"] > time.time() * 1000 + 60000, row
        r = requests.post(f"{api_url}/v1/orders/{oid}/cancel", headers=auth(tok, **WAIT),
                          timeout=30)
        assert r.status_code in (200, 201), r.text
        o = wait_status(api_url, tok, oid, "cancelled")
        assert o["cancel_reason"] == "customer" and o["refund_requested"] == 1
        # positive markers of the compensation: the refund and the release
        wait_for(lambda: [e for n, e in events("payments.events", oid, order_id=oid)
                          if n == "PaymentRefunded"], timeout=60, what="PaymentRefunded")
        released = wait_for(lambda: [e for n, e in events("inventory.events", sku, order_id=oid)
                                     if n == "StockReleased"], timeout=60, what="StockReleased")
        assert [(e["sku"], e["quantity"]) for e in released] == [(sku, 2)]
        assert open_row(db, oid) is None  # no deadline left for it
        # the saga's approval coming late (as after the hold): the decider records nothing
        ser = command_serializer(registry, "eventshop.orders.ApproveDispatch", "orders.commands")
        cmd = {"metadata": command_meta("svc-order-saga", "admin", aggregate_id=oid),
               "order_id": oid}
        p = producer(brokers)
        p.produce("orders.commands", key=oid.encode(),
                  value=ser(cmd, SerializationContext("orders.commands", MessageField.VALUE)))
        p.flush(10)
        res = wait_for(lambda: [m["value"] for m in read_topic(brokers, registry, "orders.results")
                                if m["value"] and m["value"]["command_id"] ==
                                cmd["metadata"]["command_id"]], timeout=60, what="the approval's result")
        assert res[0]["status"] == "ACCEPTED" and res[0]["event_count"] == 0, res
    finally:
        restart_saga(stack)
    assert not [n for n, _ in events("orders.events", oid) if n == "OrderDispatchApproved"]
    # shipping.events read to its end offsets taken after the cancel settled: never shipped
    assert events("shipping.events", oid) == []
    assert not [b for b in requests.get(f"{carrier_url()}/_shipments", timeout=10).json()
                if b["order_id"] == oid]
    g = charges(gateway, oid)
    assert g["charges"] == 1 and g["refunds"] == 1, g
    wait_for(lambda: stock(api_url, sku)["reserved"] == 0 and stock(api_url, sku)["available"] == 3,
             timeout=30, what="the reservation released")
    r = requests.post(f"{api_url}/v1/orders/{oid}/cancel", headers=auth(tok, **WAIT), timeout=30)
    assert r.status_code == 409  # cancelled is final

    # without a hold the dispatch follows the confirmation; once shipped a cancel is refused
    oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))
    wait_status(api_url, tok, oid, {"shipped", "delivered"}, timeout=120)
    r = requests.post(f"{api_url}/v1/orders/{oid}/cancel", headers=auth(tok, **WAIT), timeout=30)
    assert r.status_code == 409, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:eventshop:problem:already_shipped", r.json()
    assert get_order(api_url, tok, oid)["status"] in ("shipped", "delivered")
    assert [n for n, _ in events("shipping.events", oid)][:2] == [
        "ShipmentRequested", "ShipmentDispatched"]
    assert charges(gateway, oid)["refunds"] == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def saga_members(brokers):
    """instance id -> the orders.events partitions it owns, from the group's description."""
    admin = AdminClient({"bootstrap.servers": brokers})
    desc = admin.describe_consumer_groups([SAGA_GROUP])[SAGA_GROUP].result(timeout=20)
    return {m.group_instance_id: sorted(tp.partition for tp in m.assignment.topic_partitions
                                        if tp.topic == "orders.events")
            for m in desc.members}


def murmur2_partition(key, n):
    """Kafka's murmur2 partitioner (murmur2_random, as every eventshop producer uses)."""
    data, m, h = key.encode(), 0x5BD1E995, (0x9747B28C ^ len(key.encode())) & 0xFFFFFFFF
    for i in range(0, len(data) // 4 * 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = data[len(data) // 4 * 4:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % n


def test_saga_replicas_share_the_partitions_and_orders_complete(api_url, token, gateway, brokers):
    """A second order-saga instance joins the group: both own orders partitions, and orders in
    the partitions of each complete (each instance handled its own orders)."""
    me = unique("saga2")
    log = os.path.join(os.environ["ES_STATE"], "logs", f"{me}.log")
    env = {**os.environ, **saga_env(), "EVENTSHOP_INSTANCE_ID": me,
           "EVENTSHOP_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
    tool = os.path.join(os.environ["ES_BUILD"], "subscribers", "eventshop-subscriber")
    with open(log, "ab") as out:
        proc = subprocess.Popen([tool, "order-saga"], env=env, stdout=out, stderr=out)
    try:
        members = wait_for(lambda: (lambda g: g if len(g) == 2 and all(g.values()) else None)(
            saga_members(brokers)), timeout=90, interval=1, what="two saga members with partitions")
        assert proc.poll() is None
        mine = set(members[f"{SAGA_GROUP}-{me}"])
        n = int(os.environ.get("EVENTSHOP_PARTITIONS", "4"))
        sku, _ = sku_on_sale(api_url, token, stock=40)
        orders, sides = [], set()
        while len(sides) < 2 or len(orders) < 4:
            assert len(orders) < 24, "no order landed in one of the instances' partitions"
            _, tok = customer(token)
            oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))
            orders.append((tok, oid, murmur2_partition(oid, n) in mine))
            sides.add(orders[-1][2])
        for tok, oid, _ in orders:
            wait_status(api_url, tok, oid, {"shipped", "delivered"}, timeout=120)
        assert proc.poll() is None
        with open(log, errors="replace") as f:
            second = f.read()
        with open(saga_log(), errors="replace") as f:
            first = f.read()
        for _, oid, theirs in orders:  # the owner of each order's partition handled it
            assert f'"aggregate_id":"{oid}"' in (second if theirs else first), (oid, theirs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # the partitions come back to the remaining instance (a static member leaves by timeout)
    wait_for(lambda: (lambda g: g if len(g) == 1 and len(next(iter(g.values()))) == int(
        os.environ.get("EVENTSHOP_PARTITIONS", "4")) else None)(saga_members(brokers)),
        timeout=90, interval=1, what="one saga member owning every partition")


def test_flash_sale_sells_exactly_the_stock(api_url, token, gateway):
    n_buyers, units = 200, 50
    sku, _ = sku_on_sale(api_url, token, stock=units, price=990)
    with ThreadPoolExecutor(max_workers=4) as pool:  # a token is a process: a few at a time
        buyers = list(pool.map(lambda _: customer(token), range(n_buyers)))
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


# The tests that wait out a payment deadline come last in this file, with the API (which stamps
# the deadlines on each order) started again with a shorter one for them alone: each waits the
# whole deadline, and the 30 s the suite gives every other test (for a flash sale on a loaded
# machine) cost them 3 x 30 s. 20 s leaves the restart test 15 s or more between the order and
# the kill of its saga (a few seconds on the sanitized stack; 15 s measured 4 s of margin use on
# the plain one, too little for a loaded CI machine under ASan).
SHORT_PAY_MS = 20000


@pytest.fixture(scope="module")
def short_pay_deadline(stack):
    old = os.environ.get("EVENTSHOP_ORDER_PAY_TIMEOUT_MS")
    os.environ["EVENTSHOP_ORDER_PAY_TIMEOUT_MS"] = str(SHORT_PAY_MS)  # pay_ms() and the API's
    try:
        stack.stop("api")
        stack.start("api")
        yield SHORT_PAY_MS
    finally:
        if old is None:
            del os.environ["EVENTSHOP_ORDER_PAY_TIMEOUT_MS"]
        else:
            os.environ["EVENTSHOP_ORDER_PAY_TIMEOUT_MS"] = old
        stack.stop("api")
        stack.start("api")


@pytest.mark.parametrize("upgrade", [False, True], ids=["restart", "upgrade"])
def test_saga_restart_resumes_open_deadlines_from_its_table(short_pay_deadline, api_url, token,
                                                           gateway, db, stack, upgrade):
    """An order whose payment never comes is cancelled by its deadline although the saga was
    killed and started again in between: the deadline comes from the saga's table, as the
    restarted saga reads no history. upgrade: the table never folded the order's partition (as
    on the first start after the in-memory saga), so that partition's history is folded once."""
    sku, _ = sku_on_sale(api_url, token, stock=2)
    _, tok = customer(token)
    stack.stop("subscriber-payments")  # no payment will come
    try:
        oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))
        wait_status(api_url, tok, oid, "stock_reserved")
        row = wait_for(lambda: (lambda r: r if r and r["status"] == "stock_reserved" else None)(
            open_row(db, oid)), timeout=30, what="the open order in the saga's table")
        assert row["pay_by"] > time.time() * 1000, "the restart must come before the deadline"
        before = os.path.getsize(saga_log())
        if upgrade:
            stack.kill(SAGA)
            with db("order_saga").cursor() as c:
                for table in ("progress", "open_orders"):
                    c.execute(f"DELETE FROM {table} WHERE orders_partition = %s",
                              (row["orders_partition"],))
            assert open_row(db, oid) is None
        restart_saga(stack, kill=True)
        o = wait_status(api_url, tok, oid, "cancelled", timeout=pay_ms() / 1000 + 60)
        assert o["cancel_reason"] == "deadline"
        with open(saga_log(), errors="replace") as f:
            f.seek(before)
            after = f.read()
        assert "open orders read from the table" in after
        folded = f"orders.events[{row['orders_partition']}] folded into the table once"
        assert (folded in after) == upgrade, after[-2000:]
        assert f"order '{oid}' missed its payment deadline" in after
        wait_for(lambda: open_row(db, oid) is None, timeout=30, what="the row closed")
    finally:
        stack.start("subscriber-payments")
    wait_for(lambda: stock(api_url, sku)["reserved"] == 0 and stock(api_url, sku)["available"] == 2,
             timeout=30, what="the reservation released")
    # the payment requested before the cancel is charged late, and refunded
    wait_for(lambda: (lambda c: c["charges"] == c["refunds"])(charges(gateway, oid)),
             timeout=60, what="no charge left standing")


def test_payment_deadline_cancels_and_refunds_a_late_capture(short_pay_deadline, api_url, token,
                                                            gateway):
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
