"""make bench, the measuring part (scripts/bench.sh starts a private stack first).

For each handler batch size: stop the catalog handler, preload N ListProduct commands on
catalog.commands, start the handler with that batch size, and time from its first to its last
result (broker timestamps of catalog.results). Then the baseline: eventshop-bench-raw writes
the same three records per command (event, state, result; same sizes) to three topics of 4
partitions (as the handler writes them) with the same batch per transaction to the same broker;
and, for comparison with earlier runs, to one topic. Prints both rates, their ratio and the handler's resident memory,
and records the figure at batch 500 (goal 0.8) through bench/results.py."""
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from conftest import Stack, command_meta, command_serializer, produce_all, producer  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402
from results import record  # noqa: E402 (bench/ is the script's own folder)

brokers = os.environ["EVENTSHOP_KAFKA_BROKERS"]
registry = SchemaRegistryClient({"url": os.environ["EVENTSHOP_REGISTRY_URL"]})
N = int(os.environ.get("BENCH_COMMANDS", "20000"))
BATCHES = [int(b) for b in os.environ.get("BENCH_BATCHES", "100 500 2000").split()]
RECORDED_BATCH = 500  # the batch whose figure goes to bench/results.json (issue 12, item 5)
stack = Stack()


def results_end():
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex})
    ends = {p: c.get_watermark_offsets(TopicPartition("catalog.results", p))[1] for p in range(
        len(c.list_topics("catalog.results").topics["catalog.results"].partitions))}
    c.close()
    return ends


def wait_results(start, n, timeout=600):
    """Timestamps of the first n results after the offsets in start."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex,
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition("catalog.results", p, o) for p, o in start.items()])
    stamps = []
    deadline = time.time() + timeout
    while len(stamps) < n and time.time() < deadline:
        for m in c.consume(10000, 0.5):
            if not m.error():
                stamps.append(m.timestamp()[1])
    c.close()
    if len(stamps) < n:
        raise SystemExit(f"bench: only {len(stamps)} of {n} results within {timeout}s")
    return min(stamps), max(stamps)


def rss_kb(role):
    pid = open(os.path.join(os.environ["ES_STATE"], "run", role + ".pid")).read().strip()
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def preload(prefix):
    """Writes N ListProduct commands, all serialized before the first is produced, so that a
    running handler sees them arrive at the producer's pace, not the serializer's."""
    ser = command_serializer(registry, "eventshop.catalog.ListProduct")
    records = []
    for i in range(N):
        sku = f"{prefix}-{i:06d}"
        v = {"metadata": command_meta("bench-user", "vendor", "bench-vendor", sku), "sku": sku,
             "vendor_id": "bench-vendor", "name": f"Benchmark product {i}",
             "description": "a product listed by make bench", "category": "bench",
             "attributes": {"colour": "blue", "size": "M"}, "currency": "EUR"}
        records.append((sku, ser(v, SerializationContext("catalog.commands", MessageField.VALUE))))
    produce_all(producer(brokers, **{"linger.ms": 50}), "catalog.commands", records, 60, "commands")
    return len(records[-1][1])


RAW_TOPICS = {"bench.raw": {}, "bench.raw.events": {}, "bench.raw.results": {},
              "bench.raw.changelog": {"cleanup.policy": "compact"}}
# the handler's three records go to three topics in one transaction (events, changelog, results);
# the limit writes them so, and to one topic as before: the faster of the two is the limit
RAW_THREE = "bench.raw.events,bench.raw.changelog,bench.raw.results"


def raw_rate(topics, n, batch, cmd_bytes):
    """eventshop-bench-raw's commands/s: the same three records per command (an event about the
    command's size, a state a bit smaller, a result ~120 B) with the same batch per transaction."""
    out = subprocess.run([os.path.join(os.environ["ES_BUILD"], "bench", "eventshop-bench-raw"),
                          topics, str(n), str(batch), str(cmd_bytes + 40), str(cmd_bytes - 60),
                          "130"], check=True, capture_output=True, text=True).stdout.split()[1]
    return float(out)


def raw_topics(admin):
    futures = admin.create_topics([NewTopic(t, 4, 1, config=c) for t, c in RAW_TOPICS.items()])
    for t, f in futures.items():
        err = f.exception(30)
        if err is not None and "already exists" not in str(err):
            raise SystemExit(f"bench: cannot create {t}: {err}")
    while not set(RAW_TOPICS) <= set(admin.list_topics(timeout=10).topics):
        time.sleep(0.2)
    # a first transactional write to new topics is slow (leaders, metadata, the coordinator's
    # first AddPartitionsToTxn): measured, it made the three-topic limit 30 % lower than the
    # single topic's in a fresh stack's first run; the handler's topics are warm by then
    for topics in (RAW_THREE, "bench.raw"):
        raw_rate(topics, 2000, 100, 300)


def main():
    raw_topics(AdminClient({"bootstrap.servers": brokers}))
    print(f"{N} ListProduct commands per run, 4 partitions, one handler, local single-node broker")
    print(f"{'batch':>6} {'handler cmd/s':>14} {'raw cmd/s':>10} {'ratio':>6} {'raw 1 topic':>12} "
          f"{'ratio':>6} {'handler RSS':>12}")
    for b in BATCHES:
        stack.stop("handler-catalog")
        start = results_end()
        cmd_bytes = preload("bench-" + uuid.uuid4().hex[:8])
        os.environ["EVENTSHOP_HANDLER_BATCH"] = str(b)
        stack.start("handler-catalog")
        t_first, t_last = wait_results(start, N)
        rate = N / max((t_last - t_first) / 1000.0, 1e-3)
        rss = rss_kb("handler-catalog")
        raw = raw_rate(RAW_THREE, N, b, cmd_bytes)
        raw1 = raw_rate("bench.raw", N, b, cmd_bytes)
        print(f"{b:>6} {rate:>14.0f} {raw:>10.0f} {rate / raw:>6.2f} {raw1:>12.0f} "
              f"{rate / raw1:>6.2f} {rss / 1024:>9.1f} MiB", flush=True)
        if b == RECORDED_BATCH:  # against the faster of the two ways to write the records
            best, how, other, other_how = ((raw, "three topics", raw1, "one topic")
                                           if raw >= raw1 else
                                           (raw1, "one topic", raw, "three topics"))
            record(f"handler commands/s at batch {b}", rate, "commands/s", best,
                   f"raw transactional producer, same records and batch, to {how}", 0.8,
                   note=f"to {other_how}: {other:.0f}/s, ratio {rate / other:.2f}")


if __name__ == "__main__":
    main()
