"""The notifications subscriber on the real stack: events on orders.events / payments.events
(written here as a third party would, with confluent-kafka's AvroSerializer) become e-mails
captured by the stack's SMTP server (tests/tools/smtp_capture.py), SMS captured by the test
carrier's webhook, and NotificationSent / NotificationFailed events on notifications.events.
Each e-mail is sent once, even when the subscriber is SIGKILLed mid-stream and restarted."""
import collections
import time

import pytest
import requests

from conftest import read_topic, unique, wait_for
from notify_ship_util import EventWriter, carrier_url, mails_about, meta, mails, register_customer

ROLE = "subscriber-notifications"


def placed(order, customer, total=2599):
    return ("OrderPlaced", order, {
        "metadata": meta(order, 1), "order_id": order, "customer_id": customer,
        "lines": [{"sku": "NT-1", "vendor_id": "v-nt", "quantity": 1, "unit_amount_minor": total}],
        "total_minor": total, "currency": "EUR", "shipping_address_enc": None,
        "reserve_by": 0, "pay_by": 0})


def confirmed(order, customer, total=2599):
    return ("OrderConfirmed", order, {
        "metadata": meta(order, 4), "order_id": order, "customer_id": customer,
        "gateway_ref": "pi_test",
        "lines": [{"sku": "NT-1", "vendor_id": "v-nt", "quantity": 1, "unit_amount_minor": total}],
        "total_minor": total, "currency": "EUR", "shipping_address_enc": None})


def cancelled(order, customer, reason):
    return ("OrderCancelled", order, {"metadata": meta(order, 3), "order_id": order,
                                      "customer_id": customer, "reason": reason,
                                      "skus": ["NT-1"], "refund": False})


@pytest.fixture(scope="module")
def orders_out(registry, brokers):
    return EventWriter(registry, brokers, "orders")


def notifications_for(brokers, registry, order):
    return [m["value"] for m in read_topic(brokers, registry, "notifications.events")
            if m["value"] and m["value"].get("order_id") == order]


def test_confirmed_order_mails_the_customer_and_texts_the_phone(api_url, db, brokers, registry,
                                                                orders_out):
    customer, addr = register_customer(api_url, db, phone="+33 6 12 34 56 78")
    order = unique("ord")
    orders_out.write([placed(order, customer, 12345), confirmed(order, customer, 12345)])
    # with the order saga running, the confirmed order also gets shipped (another e-mail later):
    # this test is about the confirmation
    def confirmations():
        return [m for m in mails_about(order) if "is confirmed" in m["Subject"]]
    got = wait_for(confirmations, timeout=30, what=f"the e-mail of order {order}")
    time.sleep(1)
    got = confirmations()
    assert len(got) == 1
    m = got[0]
    assert m["To"] == addr
    assert "confirmed" in m["Subject"]
    body = m.get_payload(decode=True).decode()
    assert order in body and "123.45 EUR" in body
    assert m["Message-ID"].endswith("@eventshop.local>")
    sms = wait_for(lambda: [s for s in requests.get(f"{carrier_url()}/_sms", timeout=5).json()
                            if order in s.get("text", "")], timeout=15, what="the sms")
    assert sms[0]["to"] == "+33 6 12 34 56 78"
    sent = wait_for(lambda: [n for n in notifications_for(brokers, registry, order)
                             if n["kind"] == "order_confirmed"], timeout=20,
                    what="NotificationSent")
    assert len(sent) == 1
    assert sent[0]["channels"] == ["email", "sms"]
    assert addr not in str(sent[0]), "no address in clear on the log"


def test_payment_declined_and_cancel_templates(api_url, db, brokers, registry, orders_out):
    customer, _ = register_customer(api_url, db)
    order = unique("ord")
    orders_out.write([placed(order, customer, 500)])
    EventWriter(registry, brokers, "payments").write([("PaymentDeclined", order, {
        "metadata": meta(order, 2), "order_id": order, "customer_id": customer,
        "reason": "card_declined", "gateway_ref": ""})])
    # the cancellation that follows a decline is not mailed again; a customer cancel is
    orders_out.write([cancelled(order, customer, "payment_declined")])
    other = unique("ord")
    orders_out.write([placed(other, customer, 700), cancelled(other, customer, "customer")])
    wait_for(lambda: mails_about(other), timeout=30, what="the cancel e-mail")
    got = mails_about(order)
    assert len(got) == 1 and "declined" in got[0]["Subject"], [g["Subject"] for g in got]
    assert "asked us to cancel" in mails_about(other)[0].get_payload(decode=True).decode()


def test_unknown_customer_gets_notification_failed(brokers, registry, orders_out):
    order = unique("ord")
    orders_out.write([placed(order, "dev-customer-without-account"),
                      confirmed(order, "dev-customer-without-account")])
    failed = wait_for(lambda: notifications_for(brokers, registry, order), timeout=30,
                      what="NotificationFailed")
    assert failed[0]["reason"] == "no_address" and failed[0]["kind"] == "order_confirmed"
    assert mails_about(order) == []


def test_each_mail_once_across_a_kill_and_restart(api_url, db, brokers, registry, orders_out,
                                                  stack):
    customer, _ = register_customer(api_url, db)
    orders = [unique("ordk") for _ in range(12)]
    for o in orders:
        orders_out.write([placed(o, customer), confirmed(o, customer)])
        if o == orders[3]:
            # kill it while the stream is being worked through
            wait_for(lambda: mails_about(orders[0]), timeout=30, what="the first e-mail")
            stack.kill(ROLE)
    stack.start(ROLE)
    wait_for(lambda: all(any("is confirmed" in m["Subject"] for m in mails_about(o))
                         for o in orders), timeout=60, what="every e-mail")
    ids = collections.Counter(m["Message-ID"] for m in mails())
    for o in orders:
        # with the order saga running, a confirmed order also gets shipped and delivered later:
        # count the confirmation e-mails, the ones this stream of events triggers
        got = [m for m in mails_about(o) if "is confirmed" in m["Subject"]]
        assert len(got) == 1, f"order {o}: {len(got)} confirmation e-mails"
        assert ids[got[0]["Message-ID"]] == 1
    sent = [n for o in orders for n in notifications_for(brokers, registry, o)
            if n["kind"] == "order_confirmed"]
    per_trigger = collections.Counter(n["trigger_event_id"] for n in sent)
    assert len(per_trigger) == len(orders) and set(per_trigger.values()) == {1}
