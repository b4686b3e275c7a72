"""Payments end to end on the running stack (ES_CONTEXTS must include "payments",
ES_SUBSCRIBERS "payments"): RequestPayment and RefundPayment commands go straight to
payments.commands (as the order saga sends them); the payments subscriber charges through the
local test gateway (eventshop-test-gateway), whose /_charges tells how many times each order was
really charged. THE INVARIANT: a payment is charged at most once, whatever fails on the way."""
import os

import pytest
import requests

from conftest import command_meta, command_serializer, producer, read_topic, unique, wait_for
from confluent_kafka.serialization import MessageField, SerializationContext

NS = "eventshop.payments."
TOPIC = "payments.commands"


def needs_payments():
    if "payments" not in os.environ.get("ES_CONTEXTS", "").split() or \
            "payments" not in os.environ.get("ES_SUBSCRIBERS", "").split():
        pytest.skip("the stack runs without the payments context or subscriber")


@pytest.fixture(scope="module")
def gateway():
    needs_payments()
    url = os.environ["EVENTSHOP_PAYMENTS_GATEWAY_URL"]
    requests.post(f"{url}/_control", json={"fail_next": 0, "delay_ms": 0}, timeout=10)
    return url


@pytest.fixture(autouse=True)
def calm_gateway(request):
    yield
    if "gateway" in request.fixturenames:
        url = os.environ["EVENTSHOP_PAYMENTS_GATEWAY_URL"]
        requests.post(f"{url}/_control", json={"fail_next": 0, "delay_ms": 0}, timeout=10)


@pytest.fixture(scope="module")
def send(brokers, registry):
    needs_payments()
    p = producer(brokers)
    sers = {}

    def _send(name, order_id, **fields):
        if name not in sers:
            sers[name] = command_serializer(registry, NS + name, topic=TOPIC)
        value = {"metadata": command_meta("svc-order-saga", "admin", aggregate_id=order_id),
                 "order_id": order_id, **fields}
        p.produce(TOPIC, key=order_id.encode(),
                  value=sers[name](value, SerializationContext(TOPIC, MessageField.VALUE)))
        p.flush(10)
        return value["metadata"]["command_id"]

    return _send


def charges(gateway, order_id):
    r = requests.get(f"{gateway}/_charges", params={"order_id": order_id}, timeout=10)
    r.raise_for_status()
    body = r.json()
    return body["orders"].get(order_id, {"charges": 0, "refunds": 0, "intents": []}), body


def payment_row(db, order_id):
    with db("payments").cursor() as c:
        c.execute("SELECT * FROM payments WHERE order_id = %s", (order_id,))
        return c.fetchone()


def wait_status(db, order_id, status, timeout=60):
    return wait_for(lambda: (lambda r: r if r and r["status"] == status else None)(
        payment_row(db, order_id)), timeout=timeout, what=f"payment of {order_id} {status}")


def events_of(brokers, registry, order_id):
    return [m["value"] for m in read_topic(brokers, registry, "payments.events")
            if m["key"] == order_id]


def request_payment(send, order_id, customer, amount=2500, currency="EUR"):
    return send("RequestPayment", order_id, customer_id=customer, amount_minor=amount,
                currency=currency)


def decided(brokers, registry, *command_ids):
    """Waits for the handler's outcome of each command: the positive marker that whatever the
    command produced is committed (events and result share one transaction), so a test may then
    assert that nothing more came of it. Returns the statuses in order."""
    want = set(command_ids)

    def outcomes():
        got = {m["value"]["command_id"]: m["value"]["status"]
               for m in read_topic(brokers, registry, "payments.results")
               if m["value"]["command_id"] in want}
        return got if len(got) == len(want) else None

    got = wait_for(outcomes, timeout=60, what=f"the outcome of {len(want)} commands")
    return [got[c] for c in command_ids]


def test_capture_charges_once(gateway, send, db, brokers, registry):
    order = unique("pay")
    request_payment(send, order, unique("cust"))
    row = wait_status(db, order, "captured")
    assert row["amount_minor"] == 2500 and row["currency"] == "EUR"
    g, _ = charges(gateway, order)
    assert g["charges"] == 1 and g["amount_charged"] == 2500
    assert row["gateway_ref"] == g["intents"][0]["id"]
    # the saga redelivering its command changes nothing: once it is decided no new event can
    # come of it, so no second charge can follow
    decided(brokers, registry, request_payment(send, order, row["customer_id"]))
    assert charges(gateway, order)[0]["charges"] == 1
    evs = events_of(brokers, registry, order)
    assert [e["metadata"]["aggregate_version"] for e in evs] == [1, 2]
    assert evs[1]["gateway_ref"] == row["gateway_ref"]


def test_decline_is_recorded_and_not_charged(gateway, send, db):
    order = unique("pay")
    request_payment(send, order, unique("cust-decline"))
    row = wait_status(db, order, "declined")
    assert row["decline_reason"] == "generic_decline"
    g, _ = charges(gateway, order)
    assert g["charges"] == 0 and g["intents"][0]["status"] == "requires_payment_method"


def test_gateway_failing_twice_then_succeeding_charges_once(gateway, send, db):
    _, before = charges(gateway, "none")
    requests.post(f"{gateway}/_control", json={"fail_next": 2}, timeout=10).raise_for_status()
    order = unique("pay")
    request_payment(send, order, unique("cust"))
    wait_status(db, order, "captured")
    g, after = charges(gateway, order)
    assert g["charges"] == 1 and len(g["intents"]) == 1
    assert after["injected_failures"] - before["injected_failures"] == 2


def test_subscriber_killed_mid_charge_still_charges_once(gateway, send, db, stack):
    requests.post(f"{gateway}/_control", json={"delay_ms": 4000}, timeout=10).raise_for_status()
    order = unique("pay")
    request_payment(send, order, unique("cust"))
    # the gateway has charged but not answered yet: kill the subscriber now
    wait_for(lambda: charges(gateway, order)[0]["charges"] == 1, timeout=60,
             what="the charge at the gateway")
    stack.kill("subscriber-payments")
    _, before = charges(gateway, "none")
    requests.post(f"{gateway}/_control", json={"delay_ms": 0}, timeout=10).raise_for_status()
    assert payment_row(db, order)["status"] == "requested"
    stack.start("subscriber-payments")
    row = wait_status(db, order, "captured")
    g, after = charges(gateway, order)
    assert g["charges"] == 1 and len(g["intents"]) == 1, g
    assert row["gateway_ref"] == g["intents"][0]["id"]
    assert after["replays"] > before["replays"], "the retry must have been answered from the key"


def test_refund_once(gateway, send, db, brokers, registry):
    order = unique("pay")
    request_payment(send, order, unique("cust"))
    wait_status(db, order, "captured")
    first = send("RefundPayment", order, reason="order_cancelled")
    again = send("RefundPayment", order, reason="order_cancelled")
    row = wait_status(db, order, "refunded")
    decided(brokers, registry, first, again)
    g, _ = charges(gateway, order)
    assert g["charges"] == 1 and g["refunds"] == 1 and g["amount_refunded"] == 2500
    assert row["refund_ref"] == g["refund_ids"][0]
    names = [e["metadata"]["aggregate_version"] for e in events_of(brokers, registry, order)]
    assert names == [1, 2, 3, 4]  # requested, captured, refund requested, refunded


def test_refund_of_a_declined_payment_is_rejected(gateway, send, db, brokers, registry):
    order = unique("pay")
    request_payment(send, order, unique("cust-decline"))
    wait_status(db, order, "declined")
    assert decided(brokers, registry, send("RefundPayment", order, reason="order_cancelled")) == \
        ["REJECTED"]
    assert [e["metadata"]["aggregate_version"] for e in events_of(brokers, registry, order)] == \
        [1, 2]
    assert payment_row(db, order)["status"] == "declined"
    assert charges(gateway, order)[0]["refunds"] == 0
