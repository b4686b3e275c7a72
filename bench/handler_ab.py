"""A/B of two handler builds at batch 500 on a private stack (issue 12).

Alternates the catalog handler between build trees (role-start with ES_ROLE_BUILD), each run on
a fresh preload of N ListProduct commands, then the raw transactional producer with the same
records; on a shared machine only pairs of one run compare. Usage: handler_ab.py BUILD_A BUILD_B
(ROUNDS=2 by default). Besides the rates, prints the handler's CPU time per 1000 commands, whole
process and its decide thread (the main thread), and the broker's (it shares the cores): on a loaded machine the rate follows the load,
the CPU cost much less."""
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import handler_bench as hb  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

N = hb.N
hb.raw_topics(AdminClient({"bootstrap.servers": hb.brokers}))
builds = sys.argv[1:]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid, tid=None):
    """utime + stime of the process pid (or of its thread tid), in seconds."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    f = open(path).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def handler_pid():
    return open(os.path.join(os.environ["ES_STATE"], "run", "handler-catalog.pid")).read().strip()

for rnd in range(int(os.environ.get("ROUNDS", "2"))):
    for b in builds:
        hb.stack.stop("handler-catalog")
        start = hb.results_end()
        cmd_bytes = hb.preload("bench-" + uuid.uuid4().hex[:8])
        os.environ["EVENTSHOP_HANDLER_BATCH"] = "500"
        os.environ["ES_ROLE_BUILD"] = b
        hb.stack.start("handler-catalog")
        os.environ.pop("ES_ROLE_BUILD", None)
        pid = handler_pid()
        kpid = open(os.path.join(os.environ["ES_STATE"], "run", "kafka.pid")).read().strip()
        c0, d0, k0 = cpu_s(pid), cpu_s(pid, pid), cpu_s(kpid)
        t_first, t_last = hb.wait_results(start, N)
        c1, d1, k1 = cpu_s(pid), cpu_s(pid, pid), cpu_s(kpid)
        rate = N / max((t_last - t_first) / 1000.0, 1e-3)
        raw = hb.raw_rate(hb.RAW_THREE, N, 500, cmd_bytes)
        print(f"round {rnd} {os.path.basename(b):12} handler {rate:7.0f} raw {float(raw):7.0f} "
              f"ratio {rate / float(raw):.2f} cpu/1k {(c1 - c0) * 1e6 / N:.0f} ms "
              f"decide/1k {(d1 - d0) * 1e6 / N:.0f} ms broker/1k {(k1 - k0) * 1e6 / N:.0f} ms rss {hb.rss_kb('handler-catalog') / 1024:.1f} MiB "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
