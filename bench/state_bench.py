"""make bench, a handler's memory and restart time against the number of aggregates it holds
(issue 12, items 4 and 5), on the running stack.

The users handler, the context the other bench scripts leave almost empty, is restarted and
measured (restart: from `role-start` until it answers /readyz, its partitions recovered; RSS
once ready); then user states are written straight onto users.changelog with a plain producer
(as a restore or a long history would leave them: the handler recovers from the changelog), up
to each size of BENCH_STATE_SIZES (default "100000 1000000"), and it is restarted twice: the
first restart replays the new records into the handler's state store (a fresh pod's catch-up,
printed), the second is measured (restart time and RSS; the catch-up's in the note). Goal: flat, within 2x
of the empty handler (ratio 0.5).

  . .state/dev/env; ES_BUILD=$PWD/build .cache/venv/bin/python bench/state_bench.py"""
import hashlib
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from conftest import Stack, produce_all, producer  # noqa: E402
from handler_bench import rss_kb  # noqa: E402
from results import record  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_STATE_SIZES", "100000 1000000").split()]
ROLE = "handler-users"
TOPIC = "users.changelog"
brokers = os.environ["EVENTSHOP_KAFKA_BROKERS"]
registry = SchemaRegistryClient({"url": os.environ["EVENTSHOP_REGISTRY_URL"]})
stack = Stack()


def zigzag(n):
    """Avro's long: zigzag, then base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(s):
    b = s.encode()
    return zigzag(len(b)) + b


def user_state(header, i, prefix):
    """One eventshop.users.UserState (user_id, email_index, role customer, status active,
    version 1) in the registry's wire format; written by hand, as a million records through a
    generic serializer would take minutes of this script's time."""
    index = hashlib.sha256(f"{prefix}-{i}@bench.invalid".encode()).hexdigest()
    user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, index))
    return user_id, header + avro_string(user_id) + avro_string(index) + zigzag(2) + zigzag(1) + zigzag(1)


def seed(header, first, last, prefix):
    p = producer(brokers, **{"linger.ms": 50, "batch.size": 1000000,
                             "queue.buffering.max.messages": 500000})
    states = (user_state(header, i, prefix) for i in range(first, last))
    produce_all(p, TOPIC, ((k.encode(), v) for k, v in states), 300, "the user states")


def restart():
    """(seconds from start to ready, RSS in KiB once ready) of the users handler."""
    stack.stop(ROLE)
    t0 = time.time()
    stack.start(ROLE)
    return time.time() - t0, rss_kb(ROLE)


def main():
    sid = registry.get_latest_version(f"{TOPIC}-eventshop.users.UserState").schema_id
    header = b"\0" + sid.to_bytes(4, "big")
    prefix = uuid.uuid4().hex[:8]
    secs0, rss0 = restart()
    print(f"users handler, as the run left it: ready {secs0:.2f} s after start, RSS "
          f"{rss0 / 1024:.1f} MiB", flush=True)
    have = 0
    for n in SIZES:
        prev = have
        t0 = time.time()
        seed(header, have, n, prefix)
        have = n
        print(f"{n} user states on {TOPIC} ({time.time() - t0:.1f} s to write)", flush=True)
        # the first restart replays what was written since the last into its state store (the
        # catch-up a fresh pod does for the whole changelog); the second is a restart as a
        # rollout or a crash makes it, the store up to date: that is the figure
        csecs, crss = restart()
        print(f"  catch-up: ready {csecs:.2f} s after start, RSS {crss / 1024:.1f} MiB", flush=True)
        secs, rss = restart()
        print(f"  restart: ready {secs:.2f} s after start, RSS {rss / 1024:.1f} MiB", flush=True)
        label = f"{n // 1000}k" if n < 1000000 else f"{n // 1000000}M"
        record(f"handler restart with {label} aggregates", secs, "s", secs0,
               "the same handler nearly empty", 0.5, lower_is_better=True)
        record(f"handler RSS with {label} aggregates", rss / 1024, "MiB", rss0 / 1024,
               "the same handler nearly empty", 0.5, lower_is_better=True,
               note=f"after the catch-up of {n - prev} new states: {csecs:.2f} s, RSS "
                    f"{crss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
