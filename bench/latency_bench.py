"""make bench, the latency of one command (issue 12, items 3 and 5), on the running stack.

One client, one command at a time, over one keep-alive connection:
  - accepted: POST /v1/products with `Prefer: wait`, from sending to the outcome (201);
  - readable: the same command, then GET /v1/products/{sku} with the outcome's position as
    X-Min-Position until it is served (200), from sending the command to the read's answer.
The limits come from eventshop-bench-raw-hop on the same broker and MariaDB in the same run,
one record at a time: the transactional hop (begin, produce, commit, until a read_committed
consumer returns it), the plain hop (an idempotent produce until a consumer returns it) and one
MariaDB upsert and commit. accepted p99 is held against the transactional hop's p99 (goal: within
2x); readable p99 against the sum of the p99s of its hops (command to handler: plain hop; handler
to projector: transactional hop; projector: a MariaDB commit; goal: within 2x).

  . .state/dev/env; ES_BUILD=$PWD/build .cache/venv/bin/python bench/latency_bench.py
BENCH_LATENCY_COMMANDS (default 300) sets the number of commands of each figure."""
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from conftest import mint_token  # noqa: E402
from results import record  # noqa: E402

N = int(os.environ.get("BENCH_LATENCY_COMMANDS", "300"))
WARMUP = 20
TOPIC = "bench.hop"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


class Client:
    """One keep-alive HTTP/1.1 connection to the API."""

    def __init__(self, url, token):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.auth = {"Authorization": f"Bearer {token}"}

    def call(self, method, path, body=None, headers=None):
        h = dict(self.auth, **(headers or {}))
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, payload


def command(c, sku):
    status, body = c.call("POST", "/v1/products",
                          {"sku": sku, "name": "latency", "category": "bench", "currency": "EUR"},
                          {"Prefer": "wait=10"})
    if status not in (200, 201):
        raise SystemExit(f"latency bench: POST /v1/products -> {status} {body[:200]!r}")
    return json.loads(body)["position"]


def accepted(c, prefix):
    ms = []
    for i in range(-WARMUP, N):
        t0 = time.perf_counter()
        command(c, f"{prefix}-a{i + WARMUP:05d}")
        if i >= 0:
            ms.append((time.perf_counter() - t0) * 1000)
    return ms


def readable(c, prefix):
    """Times from sending the command to the read's answer; also (second list) from the
    command's outcome to the read's answer."""
    ms, read_ms = [], []
    for i in range(-WARMUP, N):
        sku = f"{prefix}-r{i + WARMUP:05d}"
        t0 = time.perf_counter()
        pos = command(c, sku)
        t1 = time.perf_counter()
        while True:
            status, body = c.call("GET", f"/v1/products/{sku}", headers={"X-Min-Position": pos})
            if status == 200:
                break
            if status != 504:
                raise SystemExit(f"latency bench: GET at {pos} -> {status} {body[:200]!r}")
        if i >= 0:
            ms.append((time.perf_counter() - t0) * 1000)
            read_ms.append((time.perf_counter() - t1) * 1000)
    return ms, read_ms


def raw_hops():
    admin = AdminClient({"bootstrap.servers": os.environ["EVENTSHOP_KAFKA_BROKERS"]})
    err = admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].exception(30)
    if err is not None and "already exists" not in str(err):
        raise SystemExit(f"latency bench: cannot create {TOPIC}: {err}")
    while TOPIC not in admin.list_topics(timeout=10).topics:
        time.sleep(0.2)
    out = subprocess.run([os.path.join(os.environ["ES_BUILD"], "bench", "eventshop-bench-raw-hop"),
                          TOPIC, str(N)], check=True, capture_output=True, text=True).stdout
    hops = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == "raw_hop":
            hops[f[1]] = (float(f[2]), float(f[3]))
    return hops


def main():
    vendor = "bench-latency-" + uuid.uuid4().hex[:6]
    c = Client(os.environ["EVENTSHOP_API_URL"], mint_token("vendor", vendor, vendor))
    prefix = "LAT-" + uuid.uuid4().hex[:8]
    hops = raw_hops()
    acc = accepted(c, prefix)
    rd, rd_read = readable(c, prefix)
    txn50, txn99 = hops["txn"]
    hop_sum99 = hops["txn"][1] + hops["consume"][1] + hops["mysql"][1]
    hop_sum50 = hops["txn"][0] + hops["consume"][0] + hops["mysql"][0]
    print(f"{N} commands, one client. raw hops p50/p99 ms: "
          + ", ".join(f"{k} {v[0]:.2f}/{v[1]:.2f}" for k, v in hops.items()))
    print(f"accepted p50 {pct(acc, 0.5):.2f} ms p99 {pct(acc, 0.99):.2f} ms "
          f"(raw transactional hop p50 {txn50:.2f} p99 {txn99:.2f}); readable p50 "
          f"{pct(rd, 0.5):.2f} ms p99 {pct(rd, 0.99):.2f} ms (sum of hops p50 {hop_sum50:.2f} "
          f"p99 {hop_sum99:.2f}); of which the read at the position p50 "
          f"{pct(rd_read, 0.5):.2f} ms p99 {pct(rd_read, 0.99):.2f} ms", flush=True)
    record("command accepted p99 (Prefer: wait, one client)", pct(acc, 0.99), "ms", txn99,
           "raw transactional produce -> read_committed consume p99", 0.5,
           lower_is_better=True, note=f"p50 {pct(acc, 0.5):.2f} ms against {txn50:.2f} ms")
    record("command -> readable p99 (X-Min-Position, one client)", pct(rd, 0.99), "ms", hop_sum99,
           "sum of its hops' p99 (plain hop, transactional hop, MariaDB commit)", 0.5,
           lower_is_better=True, note=f"p50 {pct(rd, 0.5):.2f} ms against {hop_sum50:.2f} ms")


if __name__ == "__main__":
    main()
