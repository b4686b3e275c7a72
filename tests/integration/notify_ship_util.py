"""Helpers shared by test_notifications.py and test_shipping.py: producing events as a third
party would (AvroSerializer through our registry, TopicRecordNameStrategy subjects), registering
customers, reading captured mail and the test carrier."""
import email
import json
import os
import time
import uuid

import requests
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import TOP, env, producer, unique, wait_for

SCHEMAS = os.path.join(TOP, "events", "schemas")


def standalone_schema(ctx, name):
    with open(os.path.join(SCHEMAS, "common", "Metadata.avsc")) as f:
        metadata = json.load(f)
    with open(os.path.join(SCHEMAS, ctx, "events", f"{name}.avsc")) as f:
        schema = json.load(f)
    for field in schema["fields"]:
        if field["type"] == "eventshop.Metadata":
            field["type"] = metadata
    return json.dumps(schema)


class EventWriter:
    """Writes events of a context to "<ctx>.events" in one Kafka transaction per call."""

    def __init__(self, registry, brokers, ctx):
        self.registry, self.ctx, self.topic = registry, ctx, f"{ctx}.events"
        self.ser = {}
        self.p = producer(brokers, **{"transactional.id": unique("nt-writer")})
        self.p.init_transactions(30)

    def _serializer(self, name):
        if name not in self.ser:
            subject = f"{self.topic}-eventshop.{self.ctx}.{name}"
            try:
                text = self.registry.get_latest_version(subject).schema.schema_str
                conf = {"auto.register.schemas": False, "use.latest.version": True}
            except Exception:
                text = standalone_schema(self.ctx, name)
                conf = {"auto.register.schemas": True}
            conf["subject.name.strategy"] = lambda c, n, s=subject: s
            self.ser[name] = AvroSerializer(self.registry, text, conf=conf)
        return self.ser[name]

    def write(self, events):
        """events: list of (name, key, value)."""
        self.p.begin_transaction()
        for name, key, value in events:
            data = self._serializer(name)(value, SerializationContext(self.topic,
                                                                     MessageField.VALUE))
            self.p.produce(self.topic, key=key.encode(), value=data)
        self.p.commit_transaction(30)


def meta(aggregate_id, version):
    return {"event_id": str(uuid.uuid4()), "aggregate_id": aggregate_id,
            "aggregate_version": version, "command_id": str(uuid.uuid4()),
            "correlation_id": unique("corr"), "occurred_at": int(time.time() * 1000),
            "actor": "u-test"}


def register_customer(api_url, db, phone=None):
    addr = f"cust-{uuid.uuid4().hex[:12]}@example.test"
    body = {"email": addr, "password": "correct horse battery staple", "name": "Zoë Buyer",
            "role": "customer"}
    if phone:
        body["phone"] = phone
    r = requests.post(f"{api_url}/v1/users", json=body, headers={"Prefer": "wait=15"}, timeout=30)
    assert r.status_code == 201, r.text
    user_id = r.headers["Location"].rsplit("/", 1)[1]

    def projected():
        with db("users").cursor() as c:
            c.execute("SELECT user_id FROM users WHERE user_id = %s", (user_id,))
            return c.fetchone()

    wait_for(projected, timeout=30, what=f"user {user_id} in the users read model")
    return user_id, addr


def mails():
    """Every captured message: list of email.message.Message."""
    d = env("EVENTSHOP_MAIL_CAPTURE_DIR")
    out = []
    if not os.path.isdir(d):
        return out
    for f in sorted(os.listdir(d)):
        if f.endswith(".eml"):
            with open(os.path.join(d, f), "rb") as fh:
                out.append(email.message_from_bytes(fh.read()))
    return out


def mails_about(order_id):
    return [m for m in mails() if order_id in (m["Subject"] or "")]


def carrier_url():
    return env("EVENTSHOP_CARRIER_URL")
