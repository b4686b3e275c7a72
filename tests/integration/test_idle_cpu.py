"""Issue 8, item 3: idle costs nothing. With the stack idle, every eventshop role (registry,
handlers, projectors, API, subscribers, and the stack's supervisor) uses at most 1 % of one core:
waits block with timeouts, nothing polls with a zero timeout.

Idle is a positive marker, not a pause: every projector's lag gauges read 0 and the API has no
request waiting for a command's outcome; then, around the 10 s window in which each role's CPU
time (utime + stime of /proc/<pid>/stat, every thread) is read, nothing happened: no Kafka
partition's high watermark moved and no role's work counter moved. A window that saw work is
measured again. Kafka, MariaDB and the stand-ins for the outside world are not ours to judge.
"""
import os
import re
import subprocess
import time

import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import TOP, env, mint_token, unique, wait_for

WINDOW_S = 10.0
LIMIT = 0.01  # of one core
NOT_OURS = {"kafka", "mariadb", "test-gateway", "test-carrier", "smtp-capture"}
# counters that move when a role does work (a probe or a scrape of /metrics is not work)
WORK = re.compile(r"^(eventshop_[a-z_]*_total|eventshop_[a-z_]*_seconds_count)(\{[^}]*\})? ")
PROBE_ROUTE = re.compile(r'route="/(metrics|healthz|readyz)?"')


def stack_roles():
    out = subprocess.run([os.path.join(TOP, "scripts", "stack.sh"), "roles"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def pid_of(name):
    try:
        with open(os.path.join(env("ES_STATE"), "run", f"{name}.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if state in ("Z", "X") else pid


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat(5))


def metrics(url):
    text = requests.get(f"{url}/metrics", timeout=5).text
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def work_counters(urls):
    out = {}
    for role, url in urls.items():
        for line in metrics(url):
            if WORK.match(line) and not PROBE_ROUTE.search(line):
                name, value = line.rsplit(" ", 1)
                out[f"{role} {name}"] = float(value)
    return out


def high_watermarks(brokers):
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("idle"),
                  "enable.auto.commit": False})
    try:
        out = {}
        for topic, md in c.list_topics(timeout=10).topics.items():
            for p in md.partitions:
                out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        c.close()


def busy_reasons(urls):
    """Why the stack is not idle yet (empty when it is)."""
    why = []
    for role, url in urls.items():
        for line in metrics(url):
            if line.startswith("eventshop_projector_lag") and float(line.rsplit(" ", 1)[1]) > 0:
                why.append(f"{role}: {line}")
            if line.startswith("eventshop_api_pending_waiters") and float(line.rsplit(" ", 1)[1]) > 0:
                why.append(f"{role}: {line}")
    return why


# reads that make something on first use (a client, a connection) and keep it: asked once before
# the measure, so that what they keep is measured idle whatever ran before this test
ON_DEMAND = ["/v1/admin/activity", "/v1/admin/sagas", "/v1/admin/projections",
             "/v1/admin/dead-letters"]


def test_every_role_idles_below_one_percent_of_a_core(brokers, api_url):
    admin = {"Authorization": f"Bearer {mint_token('admin', unique('idle-admin'))}"}
    for path in ON_DEMAND:
        r = requests.get(f"{api_url}{path}", headers=admin, timeout=30)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:200]}"
    roles = stack_roles()
    ours = {r: u for r, u in roles.items() if r not in NOT_OURS}
    missing = [r for r in ours if pid_of(r) is None]
    assert not missing, f"roles not running, cannot measure them: {missing}"
    measured = dict(ours)
    if pid_of("supervisor"):  # `stack.sh up` runs one; it must idle too
        measured["supervisor"] = None
    tck = os.sysconf("SC_CLK_TCK")

    windows = []
    deadline = time.time() + 150
    while True:
        wait_for(lambda: not busy_reasons(ours), timeout=max(1, deadline - time.time()),
                 what="every projector's lag 0 and no API request waiting")
        hw0, work0 = high_watermarks(brokers), work_counters(ours)
        pids = {r: pid_of(r) for r in measured}
        t0 = time.monotonic()
        before = {r: cpu_ticks(p) for r, p in pids.items()}
        time.sleep(WINDOW_S)
        after = {r: cpu_ticks(p) for r, p in pids.items() if pid_of(r) == p}
        wall = time.monotonic() - t0
        hw1, work1 = high_watermarks(brokers), work_counters(ours)
        assert set(after) == set(pids), f"roles restarted or died while idle: {set(pids) - set(after)}"
        moved = sorted(f"{t}[{p}]" for (t, p), v in hw1.items() if hw0.get((t, p)) != v)
        moved += sorted(k for k, v in work1.items() if work0.get(k) != v)
        if not moved:
            break
        windows.append(moved[:6])
        assert time.time() < deadline, f"the stack never stayed idle for {WINDOW_S} s: {windows}"

    share = {r: (after[r] - before[r]) / tck / wall for r in pids}
    report = ", ".join(f"{r} {share[r] * 100:.2f} %" for r in sorted(share, key=share.get, reverse=True))
    print(f"idle CPU over {wall:.1f} s: {report}")
    over = {r: f"{v * 100:.2f} % of a core" for r, v in share.items() if v > LIMIT}
    assert not over, f"roles above {LIMIT * 100:.0f} % of one core while idle: {over} (all: {report})"
