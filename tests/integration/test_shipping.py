"""The shipping context and subscriber on the real stack: a RequestShipment command (as the
order saga sends it) becomes ShipmentRequested; the shipping subscriber books the parcel with the
test carrier (once, by idempotency key) and records the dispatch with its tracking number; its
tick polls the carrier and records the delivery. The read model follows, and the notifications
subscriber mails "shipped" and "delivered" with the tracking number."""
import requests
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import (command_meta, command_serializer, producer, read_topic, unique, wait_for)
from notify_ship_util import EventWriter, carrier_url, mails_about, meta, register_customer

TOPIC = "shipping.commands"


def request_shipment(registry, brokers, order, customer, command_id=None):
    ser = command_serializer(registry, "eventshop.shipping.RequestShipment", TOPIC)
    value = {"metadata": command_meta("svc-order-saga", "admin", aggregate_id=order,
                                      command_id=command_id),
             "order_id": order, "customer_id": customer,
             "lines": [{"sku": "SH-1", "quantity": 2}], "shipping_address_enc": None}
    p = producer(brokers)
    p.produce(TOPIC, key=order.encode(), value=ser(value, SerializationContext(TOPIC,
                                                                               MessageField.VALUE)))
    p.flush(10)


def shipment(db, order):
    with db("shipping").cursor() as c:
        c.execute("SELECT * FROM shipments WHERE order_id = %s", (order,))
        return c.fetchone()


def test_dispatch_then_delivery(api_url, db, brokers, registry):
    customer, addr = register_customer(api_url, db)
    order = unique("ship")
    EventWriter(registry, brokers, "orders").write([("OrderPlaced", order, {
        "metadata": meta(order, 1), "order_id": order, "customer_id": customer,
        "lines": [{"sku": "SH-1", "vendor_id": "v", "quantity": 2, "unit_amount_minor": 1000}],
        "total_minor": 2000, "currency": "EUR", "shipping_address_enc": None,
        "reserve_by": 0, "pay_by": 0})])
    request_shipment(registry, brokers, order, customer)
    row = wait_for(lambda: (lambda r: r if r and r["status"] != "requested" else None)(
        shipment(db, order)), timeout=30, what="the dispatch")
    tracking = row["tracking_number"]
    assert tracking and row["customer_id"] == customer
    seen = requests.get(f"{carrier_url()}/shipments/{tracking}", timeout=5).json()
    assert seen["order_id"] == order
    row = wait_for(lambda: (lambda r: r if r and r["status"] == "delivered" else None)(
        shipment(db, order)), timeout=30, what="the delivery")
    assert row["delivered_at"] and row["dispatched_at"] <= row["delivered_at"]
    # the saga's command again (a redelivery): nothing new happens
    request_shipment(registry, brokers, order, customer)
    events = [m["value"] for m in read_topic(brokers, registry, "shipping.events")
              if m["key"] == order]
    kinds = [e["metadata"]["aggregate_version"] for e in events]
    assert kinds == [1, 2, 3], events
    assert events[1]["tracking_number"] == tracking == events[2]["tracking_number"]
    bookings = [s for s in requests.get(f"{carrier_url()}/_shipments", timeout=5).json()
                if s["order_id"] == order]
    assert len(bookings) == 1
    mail = wait_for(lambda: (lambda g: g if len(g) >= 2 else None)(mails_about(order)),
                    timeout=30, what="the shipped and delivered e-mails")
    subjects = sorted(m["Subject"] for m in mail)
    assert len(mail) == 2 and "has shipped" in subjects[0] and "was delivered" in subjects[1]
    for m in mail:
        assert tracking in m.get_payload(decode=True).decode()
        assert m["To"] == addr


def test_rejects_dispatch_of_unknown_shipment(registry, brokers):
    order = unique("ship")
    ser = command_serializer(registry, "eventshop.shipping.RecordDispatch", TOPIC)
    value = {"metadata": command_meta("u-admin", "admin", aggregate_id=order), "order_id": order,
             "tracking_number": "TCX", "carrier": ""}
    p = producer(brokers)
    p.produce(TOPIC, key=order.encode(), value=ser(value, SerializationContext(
        TOPIC, MessageField.VALUE)))
    p.flush(10)
    res = wait_for(lambda: [m["value"] for m in read_topic(brokers, registry, "shipping.results")
                            if m["value"] and m["value"].get("command_id") ==
                            value["metadata"]["command_id"]], timeout=30, what="the result")
    assert res[0]["status"] == "REJECTED" and res[0]["reason"] == "unknown_shipment", res
