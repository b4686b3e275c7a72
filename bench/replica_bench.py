"""make bench, one replica against two (issue 12, item 6), on the running stack.

A second replica is a second process of the same role (scripts/stack.sh's ROLE@2: its own
port and instance id, the same consumer group or the same databases):
  - the catalog handler: BENCH_COMMANDS ListProduct commands written while one, then two,
    handlers run (the group splits the four partitions between them); commands/s from the
    first to the last result, as bench/handler_bench.py times them;
  - the API: wrk on the hot product GET, BENCH_CONNECTIONS connections on one API, then half of
    them on each of two APIs at once; req/s summed.
On one machine the replicas share its cores with Kafka, MariaDB and the load generator, so the
figure says what a second replica costs or gains here (goal 0.9: splitting the work loses at
most a tenth), not what it gains on a cluster, where each replica has cores of its own; that
model is in docs/BENCHMARKS.md.

  . .state/dev/env; ES_BUILD=$PWD/build .cache/venv/bin/python bench/replica_bench.py"""
import os
import sys
import threading
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import get_bench  # noqa: E402
import handler_bench  # noqa: E402
from results import record  # noqa: E402

stack = handler_bench.stack
N = handler_bench.N


def handler_rate(replicas):
    """Commands/s of the catalog handler with 1 or 2 replicas running while the commands come."""
    for r in ("handler-catalog", "handler-catalog@2")[:replicas]:
        stack.start(r)
    try:
        start = handler_bench.results_end()
        handler_bench.preload("bench-r" + uuid.uuid4().hex[:8])
        t_first, t_last = handler_bench.wait_results(start, N)
        return N / max((t_last - t_first) / 1000.0, 1e-3)
    finally:
        if replicas > 1:
            stack.stop("handler-catalog@2")


def api_rates(urls, path):
    """Summed req/s of wrk on each url at once, the connections split between them."""
    conns = max(1, get_bench.CONNS // len(urls))
    out = [None] * len(urls)

    def run(i):
        out[i] = get_bench.wrk(urls[i] + path, conns=conns)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(o is None for o in out):
        raise SystemExit("bench: a wrk run gave no figure")
    return sum(o[0] for o in out)


def main():
    os.environ["EVENTSHOP_HANDLER_BATCH"] = str(handler_bench.RECORDED_BATCH)
    one = handler_rate(1)
    two = handler_rate(2)
    print(f"catalog handler, {N} commands: 1 replica {one:.0f}/s, 2 replicas {two:.0f}/s", flush=True)
    record("handler commands/s, 2 replicas against 1 (same 2 cores)", two, "commands/s", one,
           "1 replica, same run", 0.9)

    sku = get_bench.hot_sku()
    path = f"/v1/products/{sku}"
    stack.start("api@2")
    try:
        u = urllib.parse.urlparse(get_bench.API)  # ROLE@2 listens on its role's port + 200
        second = f"{u.scheme}://{u.hostname}:{u.port + 200}"
        one = api_rates([get_bench.API], path)
        two = api_rates([get_bench.API, second], path)
    finally:
        stack.stop("api@2")
    print(f"hot GET product: 1 API {one:.0f} req/s, 2 APIs {two:.0f} req/s", flush=True)
    record("hot GET product req/s, 2 APIs against 1 (same 2 cores)", two, "req/s", one,
           "1 API, same run", 0.9)


if __name__ == "__main__":
    main()
