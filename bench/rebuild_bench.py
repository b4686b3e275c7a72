"""make bench, the projector part (scripts/bench.sh runs it after the handler bench, on the same
private stack).

Loads BENCH_EVENTS (100000) catalog events straight onto catalog.events with the Python client,
as a third party would (half ProductListed, half ProductDetailsChanged of the same skus), waits
for the stack's live projector to catch up, then measures over the whole topic:
  - live: a separate live projector (own consumer group and table suffix, live batch settings)
    from offset 0 until its stored offsets reach the high watermarks;
  - rebuild: `eventshop-projector catalog --rebuild` from start to swap (its own "swapped in"
    line gives the events and seconds; the process's wall time is printed too).
  - as-of: `eventshop-history as-of latest --contexts catalog` into a database of its own, the
    same projection code over the same events (issue 11, item 5).
and the limits in the same run: bench/raw_upsert.c writes the same rows (one products row and
one event_index row per event) as multi-row upserts of 500 rows a statement and a transaction;
bench/raw_consumer.c reads catalog.events read_committed without decoding.
Records through bench/results.py: live events/s against the raw upsert (goal 0.7), rebuild
events/s against min(raw consume, raw upsert) (goal 0.7), and as-of over rebuild in process wall
time (both start a process, connect, replay the whole topic and finish; goal 0.9)."""
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from conftest import produce_all, producer  # noqa: E402
from results import record  # noqa: E402
from test_projector import Events, changed, free_port, listed  # noqa: E402

import pymysql  # noqa: E402
import requests  # noqa: E402

TOPIC = "catalog.events"
brokers = os.environ["EVENTSHOP_KAFKA_BROKERS"]
registry = SchemaRegistryClient({"url": os.environ["EVENTSHOP_REGISTRY_URL"]})
N = int(os.environ.get("BENCH_EVENTS", "100000"))
PROJECTOR = os.path.join(os.environ["ES_BUILD"], "projections", "eventshop-projector")
HISTORY = os.path.join(os.environ["ES_BUILD"], "history", "eventshop-history")
RAW_UPSERT = os.path.join(os.environ["ES_BUILD"], "bench", "eventshop-bench-raw-upsert")
RAW_CONSUME = os.path.join(os.environ["ES_BUILD"], "bench", "eventshop-bench-raw-consume")
LOGS = os.path.join(os.environ["ES_STATE"], "logs")


def db():
    return pymysql.connect(unix_socket=os.environ["EVENTSHOP_MYSQL_ROOT_SOCKET"], user="root",
                           database="eventshop_catalog", autocommit=True)


def high_watermarks():
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex})
    n = len(c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
    hw = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(n)}
    c.close()
    return hw


def caught_up(key, hw):
    """Whether projection key's stored offsets reach hw (the end may hold a transaction marker,
    so one short of the watermark counts)."""
    with db() as c, c.cursor() as cur:
        cur.execute("SELECT part, next_offset FROM projection_offsets WHERE projection=%s "
                    "AND topic=%s", (key, TOPIC))
        stored = dict(cur.fetchall())
    return all(hw[p] == 0 or stored.get(p, 0) >= hw[p] - 1 for p in hw)


def wait_caught_up(key, hw, timeout=900, proc=None):
    deadline = time.time() + timeout
    while not caught_up(key, hw):
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"bench: projector exited with {proc.returncode}")
        if time.time() > deadline:
            raise SystemExit(f"bench: {key} did not catch up within {timeout}s")
        time.sleep(0.1)


def load(n):
    ev = Events(registry)
    p = producer(brokers, **{"linger.ms": 50, "batch.size": 1000000,
                             "queue.buffering.max.messages": 200000})
    prefix = "rb-" + uuid.uuid4().hex[:8]
    t0 = time.time()

    def events():
        for i in range(n):
            sku = f"{prefix}-{i // 2:07d}"
            name, value = listed(sku) if i % 2 == 0 else changed(sku, 2, f"renamed {i}")
            yield sku.encode(), ev.encode(name, value)

    produce_all(p, TOPIC, events(), what="events")
    return time.time() - t0


def live_run():
    suffix = "_bench" + uuid.uuid4().hex[:8]
    key = "catalog_products" + suffix
    env = dict(os.environ, EVENTSHOP_PROJECTOR_GROUP="bench-" + uuid.uuid4().hex,
               EVENTSHOP_PROJECTOR_TABLE_SUFFIX=suffix)
    port = free_port()
    env["EVENTSHOP_METRICS_ADDR"] = f"127.0.0.1:{port}"
    hw = high_watermarks()
    log = open(os.path.join(LOGS, "bench-live-projector.log"), "ab")
    t0 = time.time()
    proc = subprocess.Popen([PROJECTOR, "catalog"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_caught_up(key, hw, proc=proc)
        secs = time.time() - t0
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        events = sum(float(v) for v in re.findall(
            r'^eventshop_projector_(?:events|dead_letters)_total\{projection="%s"\} (\S+)$' % key,
            text, re.M))
    finally:
        proc.terminate()
        proc.wait(30)
        with db() as c, c.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `products{suffix}`")
            cur.execute(f"DROP TABLE IF EXISTS `event_index{suffix}`")
            cur.execute("DELETE FROM projection_offsets WHERE projection=%s", (key,))
            cur.execute("DELETE FROM projection_dead_letters WHERE projection=%s", (key,))
    return int(events), secs


def rebuild_run():
    path = os.path.join(LOGS, "bench-rebuild.log")
    t0 = time.time()
    out = subprocess.run([PROJECTOR, "catalog", "--rebuild"], capture_output=True, text=True)
    wall = time.time() - t0
    with open(path, "a") as f:
        f.write(out.stdout + out.stderr)
    if out.returncode:
        raise SystemExit(f"bench: rebuild failed ({out.returncode}), see {path}")
    m = re.search(r"swapped in: (\d+) events in ([\d.]+) s", out.stdout + out.stderr)
    if not m:
        raise SystemExit(f"bench: no 'swapped in' line in {path}")
    return int(m.group(1)), float(m.group(2)), wall


def asof_run():
    """eventshop-history as-of latest of catalog: (events it applied, process wall time)."""
    database = "asof_bench_" + uuid.uuid4().hex[:8]
    path = os.path.join(LOGS, "bench-asof.log")
    t0 = time.time()
    out = subprocess.run([HISTORY, "as-of", "latest", "--contexts", "catalog", "--database",
                          database], capture_output=True, text=True)
    wall = time.time() - t0
    with open(path, "a") as f:
        f.write(out.stderr)
    try:
        if out.returncode:
            raise SystemExit(f"bench: as-of failed ({out.returncode}), see {path}")
        m = re.findall(r"^as-of: (\d+) / \d+ events", out.stderr, re.M)
        if not m:
            raise SystemExit(f"bench: no progress line in {path}")
        return int(m[-1]), wall
    finally:
        with pymysql.connect(unix_socket=os.environ["EVENTSHOP_MYSQL_ROOT_SOCKET"],
                             user="root") as c, c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


def raw(cmd, tag):
    """Runs a raw baseline printing "<tag> <count> <seconds>": (count, seconds)."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"^%s (\d+) ([\d.]+)$" % tag, out.stdout, re.M)
    if out.returncode or not m:
        raise SystemExit(f"bench: {cmd[0]} failed ({out.returncode}): {out.stderr[-500:]}")
    return int(m.group(1)), float(m.group(2))


def main():
    if N > 0:
        secs = load(N)
        print(f"loaded {N} catalog events in {secs:.1f} s ({N / secs:.0f}/s)", flush=True)
    hw = high_watermarks()
    total = sum(hw.values())
    wait_caught_up("catalog_products", hw)  # the stack's own projector, before measuring
    print(f"catalog.events holds {total} records; one projector, local MariaDB and broker")
    print(f"{'run':>8} {'events':>8} {'seconds':>8} {'events/s':>9}")
    up_rows, up_secs = raw([RAW_UPSERT, str(total), "500", "500"], "raw_upsert")
    print(f"{'upsert':>8} {up_rows:>8} {up_secs:>8.1f} {up_rows / up_secs:>9.0f}  (raw: the same "
          f"rows, 500 a statement and a transaction)", flush=True)
    rc_rows, rc_secs = raw([RAW_CONSUME, TOPIC], "raw_consume")
    print(f"{'consume':>8} {rc_rows:>8} {rc_secs:>8.1f} {rc_rows / rc_secs:>9.0f}  (raw: "
          f"read_committed, no decoding)", flush=True)
    events, secs = live_run()
    print(f"{'live':>8} {events:>8} {secs:>8.1f} {events / secs:>9.0f}", flush=True)
    rb_events, rb_secs, wall = rebuild_run()
    print(f"{'rebuild':>8} {rb_events:>8} {rb_secs:>8.1f} {rb_events / rb_secs:>9.0f}  (process "
          f"wall time {wall:.1f} s)", flush=True)
    asof_events, asof_wall = asof_run()
    print(f"{'as-of':>8} {asof_events:>8} {asof_wall:>8.1f} {asof_events / asof_wall:>9.0f}  "
          f"(process wall time)", flush=True)
    upsert = up_rows / up_secs
    consume = rc_rows / rc_secs
    record("projector live events/s", events / secs, "events/s", upsert,
           "raw batched upserts of the same rows (500 a statement)", 0.7)
    record("projector rebuild events/s", rb_events / rb_secs, "events/s", min(upsert, consume),
           "min(raw read_committed consume, raw batched upsert)", 0.7,
           note=f"raw consume {consume:.0f}/s, raw upsert {upsert:.0f}/s")
    record("as-of / rebuild", asof_events / asof_wall, "events/s", rb_events / wall,
           "rebuild (process wall time)", 0.9)


if __name__ == "__main__":
    main()
