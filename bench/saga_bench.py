"""make bench, the order saga's throughput (issue 12, item 5), on the running stack.

One sku on sale with more stock than the run needs. The orders handler is stopped, N PlaceOrder
commands (one line each, customers that the test gateway accepts) are preloaded on
orders.commands, and the handler is started. Two rates come from the broker timestamps of
orders.events (read_committed), told apart by their schema id:
  - the orders handler's own: N OrderPlaced from the first to the last;
  - the saga's: from the first OrderPlaced to the N-th OrderConfirmed, every order having gone
    through the inventory reservation, the payment's capture at the test gateway and the
    confirmation, on the same machine at the same time as the handler deciding them.
The goal is that orders are confirmed at no less than half the rate the handler places them.

  . .state/dev/env; ES_BUILD=$PWD/build .cache/venv/bin/python bench/saga_bench.py
BENCH_SAGA_ORDERS (default 2000) sets N."""
import os
import sys
import time
import uuid

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402
from conftest import Stack, command_meta, command_serializer, mint_token, produce_all, producer  # noqa: E402
from results import record  # noqa: E402

N = int(os.environ.get("BENCH_SAGA_ORDERS", "2000"))
API = os.environ["EVENTSHOP_API_URL"]
brokers = os.environ["EVENTSHOP_KAFKA_BROKERS"]
registry = SchemaRegistryClient({"url": os.environ["EVENTSHOP_REGISTRY_URL"]})
TOPIC = "orders.events"
WAIT = {"Prefer": "wait=20"}
stack = Stack()


def call(method, path, tok, body):
    r = requests.request(method, f"{API}{path}", json=body, timeout=60,
                         headers={"Authorization": f"Bearer {tok}", **WAIT})
    if r.status_code not in (200, 201):
        raise SystemExit(f"bench: {method} {path} answered {r.status_code}: {r.text}")


def sku_on_sale():
    vendor = "bench-saga-" + uuid.uuid4().hex[:8]
    tok = mint_token("vendor", vendor + "-user", vendor)
    sku = vendor.upper()
    call("POST", "/v1/products", tok, {"sku": sku, "name": "Saga mug", "category": "bench",
                                       "currency": "EUR"})
    call("PUT", f"/v1/prices/{sku}", tok, {"amount_minor": 990, "currency": "EUR"})
    call("POST", f"/v1/inventory/{sku}/receipts", tok, {"quantity": N * 2})
    return sku


def schema_id(name):
    return registry.get_latest_version(f"{TOPIC}-eventshop.orders.{name}").schema_id


def ends():
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex})
    parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    out = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in parts}
    c.close()
    return out


def preload(sku, prefix):
    ser = command_serializer(registry, "eventshop.orders.PlaceOrder", "orders.commands")
    p = producer(brokers, **{"linger.ms": 20})
    now = int(time.time() * 1000)

    def commands():
        for i in range(N):
            order, cust = f"{prefix}-{i:06d}", f"cust-{prefix}-{i:06d}"
            v = {"metadata": command_meta(cust, "customer", None, order), "order_id": order,
                 "customer_id": cust, "lines": [{"sku": sku, "quantity": 1}],
                 "shipping_address_enc": None, "reserve_by": now + 600_000, "pay_by": now + 900_000}
            yield order, ser(v, SerializationContext("orders.commands", MessageField.VALUE))

    produce_all(p, "orders.commands", commands(), 60, "the PlaceOrder commands")


def follow(start, prefix, placed_id, confirmed_id, timeout=600):
    """Broker timestamps of this run's OrderPlaced and OrderConfirmed events."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex,
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, p, o) for p, o in start.items()])
    placed, confirmed = [], []
    key = prefix.encode()
    deadline = time.time() + timeout
    while len(confirmed) < N and time.time() < deadline:
        for m in c.consume(10000, 0.5):
            if m.error() or not (m.key() or b"").startswith(key) or len(m.value() or b"") < 5:
                continue
            sid = int.from_bytes(m.value()[1:5], "big")
            if sid == placed_id:
                placed.append(m.timestamp()[1])
            elif sid == confirmed_id:
                confirmed.append(m.timestamp()[1])
    c.close()
    if len(placed) < N or len(confirmed) < N:
        raise SystemExit(f"bench: {len(placed)} placed and {len(confirmed)} confirmed of {N} "
                         f"orders within {timeout}s")
    return placed, confirmed


def main():
    sku = sku_on_sale()
    placed_id, confirmed_id = schema_id("OrderPlaced"), schema_id("OrderConfirmed")
    prefix = "bench-" + uuid.uuid4().hex[:8]
    stack.stop("handler-orders")
    start = ends()
    preload(sku, prefix)
    stack.start("handler-orders")
    placed, confirmed = follow(start, prefix, placed_id, confirmed_id)
    handler = N / max((max(placed) - min(placed)) / 1000.0, 1e-3)
    saga = N / max((max(confirmed) - min(placed)) / 1000.0, 1e-3)
    print(f"{N} orders of one line: the orders handler placed them at {handler:.0f}/s, the saga "
          f"confirmed them at {saga:.0f}/s (first placed to last confirmed)")
    record("orders placed -> confirmed through the saga", saga, "orders/s", handler,
           "the orders handler placing the same orders, same run", 0.5)


if __name__ == "__main__":
    main()
