"""Every context's data its own (issue 10, item 3), for the notifications: they keep their own
contacts (table contacts of eventshop_notifications, from users.events, e-mail and phone still
sealed), have one opened by the users context's audited open call (POST
/internal/users/{id}/contact on the API, the notifications' credential only), and read no other
context's database.

Proved here on the real stack: the right contact is mailed; after the user is forgotten, no
column of any table of eventshop_notifications holds the user's e-mail or phone, nor a value
that opens a sealed field of the user's events (no usable key), and the open call answers 410;
the open call writes an audit line without the values; and a contact registered before the
notifications first start (their contacts table new, their group's users.events offsets at the
beginning) is back-filled and mailed."""
import base64
import binascii
import os
import uuid

import pytest
import requests
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import env, mint_token, read_topic, unique, wait_for
from notify_ship_util import EventWriter, mails_about, register_customer
from test_notifications import ROLE, confirmed, notifications_for, placed, start_role
from test_users import sodium_open

pytestmark = pytest.mark.skipif("users" not in os.environ.get("ES_CONTEXTS", "").split(),
                                reason="the stack does not run the users context")

GROUP = "eventshop-notifications-subscriber"
WAIT = {"Prefer": "wait=15"}


@pytest.fixture(scope="module")
def orders_out(registry, brokers):
    return EventWriter(registry, brokers, "orders")


def open_secret():
    with open(os.path.join(env("ES_STATE"), "secrets", "users-open.secret")) as f:
        return f.read().strip()


def contact(db, uid):
    with db("notifications").cursor() as c:
        c.execute("SELECT email_enc, phone_enc, forgotten FROM contacts WHERE user_id = %s", (uid,))
        return c.fetchone()


def every_value(db):
    """Every non-NULL value of every column of every table of eventshop_notifications."""
    out = []
    with db("notifications").cursor() as c:
        c.execute("SELECT table_name, column_name FROM information_schema.columns "
                  "WHERE table_schema = 'eventshop_notifications'")
        cols = c.fetchall()
        assert {"contacts", "sent", "claims", "order_facts"} <= {x["table_name"] for x in cols}
        for col in cols:
            c.execute(f"SELECT `{col['column_name']}` AS v FROM `{col['table_name']}` "
                      f"WHERE `{col['column_name']}` IS NOT NULL")
            out += [(f"{col['table_name']}.{col['column_name']}", r["v"]) for r in c.fetchall()]
    return out


def as_keys(value):
    """The 32-byte keys a stored value could be: raw, hex or base64."""
    raw = value if isinstance(value, (bytes, bytearray)) else str(value).encode()
    cands = [bytes(raw)]
    text = raw.decode(errors="ignore").strip()
    for decode in (binascii.unhexlify, base64.b64decode):
        try:
            cands.append(decode(text))
        except (binascii.Error, ValueError):
            pass
    return [k for k in cands if len(k) == 32]


def sealed_fields(brokers, registry, uid):
    out = []
    for m in read_topic(brokers, registry, "users.events"):
        if m["key"] == uid and m["value"]:
            out += [(f, m["value"][f"{f}_enc"]) for f in ("email", "phone")
                    if m["value"].get(f"{f}_enc")]
    assert out, "no sealed field in the user's events"
    return out


def test_the_open_call_wants_the_credential(api_url):
    uid = str(uuid.uuid4())
    r = requests.post(f"{api_url}/internal/users/{uid}/contact", json={"purpose": "test"},
                      timeout=10)
    assert r.status_code == 401, r.text
    r = requests.post(f"{api_url}/internal/users/{uid}/contact", json={"purpose": "test"},
                      headers={"X-Service-Credential": "not-the-secret"}, timeout=10)
    assert r.status_code == 401, r.text
    r = requests.post(f"{api_url}/internal/users/{uid}/contact", json={"purpose": "test"},
                      headers={"X-Service-Credential": open_secret()}, timeout=10)
    assert r.status_code == 410, r.text  # no key: unknown or forgotten


def test_mails_the_contact_and_keeps_nothing_usable_after_forgetting(api_url, db, brokers,
                                                                     registry, orders_out):
    phone = f"+44 20 {uuid.uuid4().int % 10**8:08d}"
    uid, addr = register_customer(api_url, db, phone=phone)
    order = unique("ordc")
    orders_out.write([placed(order, uid, 4200), confirmed(order, uid, 4200)])
    wait_for(lambda: [m for m in mails_about(order) if "is confirmed" in m["Subject"]],
             timeout=60, what="the confirmation e-mail")
    mail = [m for m in mails_about(order) if "is confirmed" in m["Subject"]][0]
    assert addr in mail["To"], mail["To"]
    row = contact(db, uid)
    assert row and row["email_enc"] and addr not in str(row["email_enc"]), row  # kept sealed

    # the open call left an audit line naming the user and the purpose, never the values
    logs = open(os.path.join(env("ES_STATE"), "logs", "api.log"), "rb").read().decode(errors="replace")
    audit = [ln for ln in logs.splitlines() if "contact_open" in ln and uid in ln]
    assert audit and "opened" in audit[-1] and "notification order_confirmed" in audit[-1], audit
    assert not any(addr in ln or phone in ln for ln in audit)

    admin = {"Authorization": f"Bearer {mint_token('admin', 'contacts-suite')}"}
    r = requests.delete(f"{api_url}/v1/users/{uid}", headers={**admin, **WAIT}, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(lambda: (contact(db, uid) or {}).get("forgotten") == 1, timeout=60,
             what="the contact erased")
    row = contact(db, uid)
    assert row["email_enc"] is None and row["phone_enc"] is None, row

    # no plaintext in any column of any table
    needles = [addr, addr.lower(), phone]
    hits = [(where, n) for where, v in every_value(db) for n in needles
            if n.encode() in (v if isinstance(v, (bytes, bytearray)) else str(v).encode())]
    assert hits == [], f"plaintext in eventshop_notifications: {hits}"
    # no usable key: no stored value opens a sealed field of the user's events
    sealed = sealed_fields(brokers, registry, uid)
    for where, v in every_value(db):
        for k in as_keys(v):
            for field, s in sealed:
                assert sodium_open(s, k, uid, field) is None, f"{where} opens {field}"
    # and the users context opens nothing any more
    email_enc = next(s for f, s in sealed if f == "email")
    r = requests.post(f"{api_url}/internal/users/{uid}/contact", timeout=10,
                      headers={"X-Service-Credential": open_secret()},
                      json={"purpose": "test", "email_enc": email_enc if isinstance(email_enc, str)
                            else base64.b64encode(email_enc).decode()})
    assert r.status_code == 410, r.text

    # a later order of the forgotten customer is not mailed
    later = unique("ordc")
    orders_out.write([placed(later, uid), confirmed(later, uid)])
    failed = wait_for(lambda: notifications_for(brokers, registry, later), timeout=60,
                      what="NotificationFailed")
    assert failed[0]["reason"] == "no_address", failed
    assert mails_about(later) == []


def rewind_users_events(brokers):
    """The notifications' group back at the beginning of users.events (its other topics' offsets
    kept): as on the first start of a notifications that never read users.events. Retried while
    the stopped member is still in the group."""
    admin = AdminClient({"bootstrap.servers": brokers})
    parts = admin.list_topics("users.events", timeout=10).topics["users.events"].partitions
    tps = [TopicPartition("users.events", p, 0) for p in parts]

    def done():
        try:
            got = admin.alter_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(GROUP, tps)])[GROUP].result(10)
        except Exception:  # the group is not empty yet (its static member's session timeout)
            return False
        return all(tp.error is None for tp in got.topic_partitions)
    wait_for(done, timeout=90, interval=2, what="the group's users.events offsets rewound")


def test_a_contact_registered_before_the_first_start_is_mailed(api_url, db, brokers, registry,
                                                               orders_out, stack):
    stack.stop(ROLE)
    try:
        uid, addr = register_customer(api_url, db)
        with db("notifications").cursor() as c:
            c.execute("DROP TABLE IF EXISTS contacts")
        rewind_users_events(brokers)
    finally:
        start_role()
    order = unique("ordb")
    orders_out.write([placed(order, uid, 990), confirmed(order, uid, 990)])
    wait_for(lambda: [m for m in mails_about(order) if "is confirmed" in m["Subject"]],
             timeout=90, what="the confirmation e-mail after the back-fill")
    assert addr in [m for m in mails_about(order) if "is confirmed" in m["Subject"]][0]["To"]
    # the whole history came back: every user of the users read model has its contact
    with db("users").cursor() as c:
        c.execute("SELECT user_id FROM users")
        users = {r["user_id"] for r in c.fetchall()}

    def missing():
        with db("notifications").cursor() as c:
            c.execute("SELECT user_id FROM contacts")
            return users - {r["user_id"] for r in c.fetchall()}
    wait_for(lambda: not missing(), timeout=60, what="every user's contact back-filled")
