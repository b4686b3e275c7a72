"""The notifications subscriber on the real stack: events on orders.events / payments.events
(written here as a third party would, with confluent-kafka's AvroSerializer) become e-mails
captured by the stack's SMTP server (tests/tools/smtp_capture.py), SMS captured by the test
carrier's webhook, and NotificationSent / NotificationFailed events on notifications.events.

The guarantee (docs/ARCHITECTURE.md, "Notifications: at-least-once with one Message-ID"): one
Message-ID per (event, template), and one delivery, except after a crash between the SMTP
server's accept and our record, where exactly one resend with the same Message-ID is made. The
crash tests force the subscriber's SIGKILL at each fault point (runtime/es_fault.h), not by
timing a kill."""
import hashlib
import json
import os
import re
import subprocess
import uuid

import pytest
import requests

from conftest import TOP, env, read_topic, unique, wait_for
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


def notification_key(event_id, kind):
    """The key of (event, template), computed here on its own as nt_notification_key does: a
    version-5 UUID of SHA-1("eventshop-notification" NUL "<kind>:<event_id>")."""
    d = bytearray(hashlib.sha1(f"eventshop-notification\0{kind}:{event_id}".encode()).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x50
    d[8] = (d[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(d)))


def notifications_for(brokers, registry, order):
    return [m["value"] for m in read_topic(brokers, registry, "notifications.events")
            if m["value"] and m["value"].get("order_id") == order]


def test_confirmed_order_mails_the_customer_and_texts_the_phone(api_url, db, brokers, registry,
                                                                orders_out):
    customer, addr = register_customer(api_url, db, phone="+33 6 12 34 56 78")
    order = unique("ord")
    confirm = confirmed(order, customer, 12345)
    orders_out.write([placed(order, customer, 12345), confirm])
    # with the order saga running, the confirmed order also gets shipped (another e-mail later):
    # this test is about the confirmation
    def confirmations():
        return [m for m in mails_about(order) if "is confirmed" in m["Subject"]]
    sent = wait_for(lambda: [n for n in notifications_for(brokers, registry, order)
                             if n["kind"] == "order_confirmed"], timeout=30,
                    what="NotificationSent")
    # NotificationSent is committed after the e-mail and the SMS went out: all is there now
    got = confirmations()
    assert len(got) == 1
    m = got[0]
    assert m["To"] == addr
    assert "confirmed" in m["Subject"]
    body = m.get_payload(decode=True).decode()
    assert order in body and "123.45 EUR" in body
    key = notification_key(confirm[2]["metadata"]["event_id"], "order_confirmed")
    assert m["Message-ID"] == f"<{key}@eventshop.local>"
    sms = [s for s in requests.get(f"{carrier_url()}/_sms", timeout=5).json()
           if order in s.get("text", "") and "confirmed" in s["text"]]
    assert len(sms) == 1
    assert sms[0]["to"] == "+33 6 12 34 56 78"
    # the webhook's idempotency key is the same derived value as the Message-ID
    assert sms[0]["idempotency_key"] == key
    assert len(sent) == 1
    assert sent[0]["message_id"] == m["Message-ID"]
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


# --------------------------------------------------------------- crashes at each fault point

STACK = os.path.join(TOP, "scripts", "stack.sh")
SUBJECTS = {"order_confirmed": "is confirmed", "payment_declined": "Payment declined",
            "order_cancelled": "is cancelled", "order_shipped": "has shipped",
            "order_delivered": "was delivered"}


def role_pid():
    try:
        with open(os.path.join(env("ES_STATE"), "run", f"{ROLE}.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    """Whether process pid exists: a zombie not reaped yet still counts, as stack.sh's kill -0
    sees it too (a role-start would take it for the running role)."""
    return os.path.exists(f"/proc/{pid}")


def log_path():
    return os.path.join(env("ES_STATE"), "logs", f"{ROLE}.log")


def log_size():
    return os.path.getsize(log_path()) if os.path.exists(log_path()) else 0


def log_since(offset):
    """The role's JSON log lines written after byte offset (other lines, e.g. librdkafka's, are
    skipped)."""
    with open(log_path(), "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def start_role(faults=None):
    """Starts the subscriber, with EVENTSHOP_FAULTS=faults or with no fault armed: stack.sh
    role-start hands its environment on to the role. Returns once it is ready, or once it is
    gone (an armed fault may fire on work left over before readiness is seen)."""
    e = dict(os.environ)
    e.pop("EVENTSHOP_FAULTS", None)
    if faults:
        e["EVENTSHOP_FAULTS"] = faults
    subprocess.run([STACK, "role-start", ROLE], check=True, timeout=60, env=e)
    r = subprocess.run([STACK, "role-wait", ROLE, "90"], timeout=120, env=e)
    assert r.returncode == 0 or faults, f"{ROLE} did not become ready"


def resent_metric(kind):
    out = subprocess.run([STACK, "endpoints"], check=True, capture_output=True, text=True).stdout
    url = re.search(rf"^\s+{ROLE}\s+(http://\S+/metrics)", out, re.M).group(1)
    text = requests.get(url, timeout=5).text
    m = re.search(rf'^eventshop_notifications_resent_total\{{kind="{kind}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def restored(stack):
    """Leaves the subscriber running with no fault armed, whatever the test did."""
    yield
    pid = role_pid()
    if pid is not None and alive(pid):
        with open(f"/proc/{pid}/environ", "rb") as f:
            if b"\0EVENTSHOP_FAULTS=" not in b"\0" + f.read():
                return
        stack.stop(ROLE)
    start_role()


@pytest.mark.parametrize("point, deliveries, resent", [
    ("notify.before_claim", 1, False),   # nothing claimed: sent once, fresh
    ("notify.after_claim", 1, True),     # claimed, never sent: the resend is the only delivery
    ("notify.after_accept", 2, True),    # the window: accepted, not recorded; same Message-ID
    ("notify.after_record", 1, False),   # recorded: never sent again
])
def test_one_message_id_across_a_crash_at(point, deliveries, resent, api_url, db, brokers,
                                          registry, orders_out, stack, restored):
    customer, _ = register_customer(api_url, db, phone="+33 6 00 00 00 01")
    stack.stop(ROLE)
    since = log_size()
    start_role(faults=point)
    pid = role_pid()
    order = unique("ordf")
    confirm = confirmed(order, customer)
    orders_out.write([placed(order, customer), confirm])

    # the positive marker: the fault's own line, and the process gone
    fired = f"fault '{point}' fired"
    wait_for(lambda: not alive(pid) and any(fired in ln.get("msg", "") for ln in log_since(since)),
             timeout=60, what=f"{ROLE} to die at {point}")
    lines = log_since(since)
    at = next(i for i, ln in enumerate(lines) if fired in ln.get("msg", ""))
    # the notification it was working on: the last one it began before the fault (one at a time)
    began = [ln for ln in lines[:at]
             if ln.get("msg", "").startswith(("sending notification", "resending notification"))]
    assert began, f"no notification began before the fault: {lines[:at]}"
    crashed = began[-1]
    msgid, kind, crashed_order = crashed["message_id"], crashed["kind"], crashed["order_id"]
    assert msgid == f"<{notification_key(crashed['event_id'], kind)}@eventshop.local>"
    with db("notifications").cursor() as c:
        c.execute("SELECT sends FROM claims WHERE message_id = %s", (msgid,))
        claim = c.fetchone()
        c.execute("SELECT 1 FROM sent WHERE message_id = %s", (msgid,))
        record = c.fetchone()
    # the crash landed where it was asked to: the durable state says so
    assert (claim is not None) == (point != "notify.before_claim"), claim
    assert (record is not None) == (point == "notify.after_record"), record

    since = log_size()
    start_role()
    # done when the redelivered event's NotificationSent is committed (the crashed batch never
    # was); the same for the order placed here, when the crash was on another notification
    def sent(o, mid):
        return [n for n in notifications_for(brokers, registry, o) if n["message_id"] == mid]
    our_key = notification_key(confirm[2]["metadata"]["event_id"], "order_confirmed")
    ours = f"<{our_key}@eventshop.local>"
    wait_for(lambda: sent(crashed_order, msgid), timeout=90, interval=1,
             what=f"NotificationSent of {msgid} after the restart")
    wait_for(lambda: sent(order, ours), timeout=90, interval=1,
             what=f"NotificationSent of the confirmation of {order}")

    captured = mails()
    by_id = [m for m in captured if m["Message-ID"] == msgid]
    assert len(by_id) == deliveries, f"{point}: {len(by_id)} deliveries of {msgid}"
    # one distinct Message-ID per (event, template)
    same_mail = {m["Message-ID"] for m in captured
                 if crashed_order in (m["Subject"] or "") and SUBJECTS[kind] in m["Subject"]}
    assert same_mail == {msgid}
    assert len(sent(crashed_order, msgid)) == 1, "one NotificationSent per notification"
    mine = [m for m in mails_about(order) if "is confirmed" in m["Subject"]]
    assert {m["Message-ID"] for m in mine} == {ours}
    assert len(mine) == (deliveries if ours == msgid else 1)
    # the SMS goes out after the e-mail's record, once, under the same key (after a crash at
    # notify.after_record, by the recovery)
    sms = [t for t in requests.get(f"{carrier_url()}/_sms", timeout=5).json()
           if t.get("idempotency_key") == our_key]
    assert len(sms) == 1, sms
    assert sent(order, ours)[0]["channels"] == ["email", "sms"]
    with db("notifications").cursor() as c:
        c.execute("SELECT sends FROM claims WHERE message_id = %s", (msgid,))
        claim = c.fetchone()
        c.execute("SELECT 1 FROM sent WHERE message_id = %s", (msgid,))
        assert c.fetchone(), "recorded after the recovery"
    # the claim goes once the record is written; a crash just after the record leaves it beside
    # the record (harmless: a redelivery finds the record first and sends nothing)
    if point == "notify.after_record":
        assert claim and claim["sends"] == 1, claim
    else:
        assert claim is None, f"claim of {msgid} left after its record: {claim}"

    # a resend is logged and counted, and only after a crash that left a claim without a record
    resends = [ln for ln in log_since(since) if ln.get("msg", "").startswith("resending")]
    assert [ln["message_id"] for ln in resends] == ([msgid] if resent else [])
    assert resent_metric(kind) == (1 if resent else 0)
