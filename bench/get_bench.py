"""make bench, the read part (scripts/bench.sh runs it on its private stack; issue 12, item 5).

Hot GET: one product with a list price and a stock level, made through the API; wrk with
BENCH_CONNECTIONS (64) connections for BENCH_WRK_SECONDS (10) s on GET /v1/products/{sku},
/v1/prices/{sku} and /v1/inventory/{sku}, against eventshop-bench-ref (libh2o with the API's
number of loop threads, serving a fixed body the size of the product answer) with the same wrk
settings, right before each of ours: req/s (goal 0.5) and p99 (goal: within 3x, ratio 0.33)
for each.

Cold GET: BENCH_COLD_SKUS (100000) ProductListed events straight onto catalog.events (as a third
party would), the stack's projector catches up, then wrk asks for random skus among them against
sysbench point selects of the same columns of the same rows (random skus, same connections,
same user and TCP path as the API) with as many clients as wrk has connections: req/s, goal 0.8."""
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from conftest import mint_token, produce_all, producer  # noqa: E402
from results import record  # noqa: E402
from test_projector import Events, listed  # noqa: E402

import pymysql  # noqa: E402
import requests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
API = os.environ["EVENTSHOP_API_URL"].rstrip("/")
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
SECS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
COLD = int(os.environ.get("BENCH_COLD_SKUS", "100000"))
REF_PORT = int(os.environ.get("BENCH_REF_PORT", str(8079 + int(os.environ.get("ES_PORT_OFFSET", "0")))))
TOPIC = "catalog.events"
WAIT = {"Prefer": "wait=30"}
brokers = os.environ["EVENTSHOP_KAFKA_BROKERS"]


def ms(text):
    """wrk's duration ("812.00us", "3.41ms", "1.02s", "2.00m") in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise SystemExit(f"bench: cannot read wrk duration '{text}'")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def wrk(url, script=None, env=None, conns=CONNS):
    """(req/s, p99 ms, non-2xx count) of one wrk run."""
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{SECS}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"bench: wrk failed: {out.stderr.strip()}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out.stdout, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out.stdout, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.stdout)
    errors = re.search(r"Socket errors: (.*)", out.stdout)
    if not rate or not p99:
        raise SystemExit(f"bench: no rate or p99 in wrk's output:\n{out.stdout}")
    if errors:
        print(f"  wrk {url}: socket errors {errors.group(1)}", flush=True)
    return float(rate.group(1)), ms(p99.group(1)), int(bad.group(1)) if bad else 0


def hot_sku():
    """A product with a list price and a stock level, made through the API; its sku."""
    vendor = "bench-v-" + uuid.uuid4().hex[:8]
    tok = mint_token("vendor", "bench-u-" + uuid.uuid4().hex[:8], vendor)
    sku = "HOT-" + uuid.uuid4().hex[:10]
    h = {"Authorization": f"Bearer {tok}", **WAIT}
    base = API
    for method, path, body in (
            ("POST", "/v1/products", {"sku": sku, "name": "Benchmark mug", "category": "kitchen",
                                      "description": "a product read by make bench",
                                      "attributes": {"colour": "blue"}, "currency": "EUR"}),
            ("PUT", f"/v1/prices/{sku}", {"amount_minor": 1290, "currency": "EUR"}),
            ("POST", f"/v1/inventory/{sku}/receipts", {"quantity": 1000})):
        r = requests.request(method, base + path, json=body, headers=h, timeout=60)
        if r.status_code not in (200, 201, 202):
            raise SystemExit(f"bench: {method} {path}: {r.status_code} {r.text}")
    for path in (f"/v1/products/{sku}", f"/v1/prices/{sku}", f"/v1/inventory/{sku}"):
        deadline = time.time() + 60
        while requests.get(base + path, timeout=10).status_code != 200:
            if time.time() > deadline:
                raise SystemExit(f"bench: GET {path} is not 200 after 60 s")
            time.sleep(0.2)
    return sku


class RefServer:
    """eventshop-bench-ref on REF_PORT with the API's thread count, for a with-block."""

    def __init__(self, body_bytes):
        threads = os.environ.get("EVENTSHOP_API_THREADS", "2")
        exe = os.path.join(os.environ["ES_BUILD"], "bench", "eventshop-bench-ref")
        self.proc = subprocess.Popen([exe, str(REF_PORT), threads, str(body_bytes)],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening" not in line:
            self.proc.kill()
            raise SystemExit(f"bench: the reference server did not start ({line.strip()})")

    def __enter__(self):
        return f"http://127.0.0.1:{REF_PORT}"

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(30)


def hot():
    """Each endpoint right after a run of the reference server, so that both sides of a ratio
    see the same machine (other load on a shared machine moves both alike)."""
    sku = hot_sku()
    size = len(requests.get(f"{API}/v1/products/{sku}", timeout=10).content)
    limit = f"libh2o fixed {size}-byte body"
    print(f"hot GET, {CONNS} connections, {SECS} s each, each right after the reference "
          f"({limit})", flush=True)
    with RefServer(size) as ref:
        for what, path in (("product", f"/v1/products/{sku}"), ("price", f"/v1/prices/{sku}"),
                           ("stock level", f"/v1/inventory/{sku}")):
            ref_rate, ref_p99, _ = wrk(ref + path)
            rate, p99, bad = wrk(API + path)
            note = f"{bad} answers not 2xx" if bad else ""
            record(f"hot GET {what} req/s ({CONNS} conns)", rate, "req/s", ref_rate, limit, 0.5,
                   note=note)
            record(f"hot GET {what} p99 ({CONNS} conns)", p99, "ms", ref_p99, limit, 0.33,
                   lower_is_better=True, note=note)


def catalog_db():
    return pymysql.connect(unix_socket=os.environ["EVENTSHOP_MYSQL_ROOT_SOCKET"], user="root",
                           database="eventshop_catalog", autocommit=True)


def seed(prefix, n):
    """n ProductListed events of skus prefix-0000000.. on catalog.events; waits until the stack's
    projector has stored offsets past them."""
    ev = Events(SchemaRegistryClient({"url": os.environ["EVENTSHOP_REGISTRY_URL"]}))
    p = producer(brokers, **{"linger.ms": 50, "batch.size": 1000000,
                             "queue.buffering.max.messages": 200000})
    t0 = time.time()

    def events():
        for i in range(n):
            sku = f"{prefix}-{i:07d}"
            yield sku.encode(), ev.encode(*listed(sku, vendor_id="bench-cold", name=f"Cold product {i}"))

    produce_all(p, TOPIC, events(), what="cold skus")
    loaded = time.time() - t0
    wait_projected(prefix, n)
    print(f"cold GET: {n} skus loaded in {loaded:.1f} s, projected after {time.time() - t0:.1f} s",
          flush=True)


def wait_projected(prefix, n, timeout=600):
    deadline = time.time() + timeout
    while True:
        with catalog_db() as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM products WHERE sku LIKE %s", (prefix + "-%",))
            have = cur.fetchone()[0]
        if have >= n:
            return
        if time.time() > deadline:
            raise SystemExit(f"bench: only {have} of {n} cold skus projected in {timeout} s")
        time.sleep(0.5)


def sysbench(prefix, n):
    """(queries/s, p99 ms) of sysbench point selects over random skus of prefix."""
    pw = open(os.environ["EVENTSHOP_MYSQL_CATALOG_PASSWORD_FILE"]).read().strip()
    cmd = ["sysbench", os.path.join(HERE, "point_select.lua"), "--db-driver=mysql",
           "--mysql-host=127.0.0.1", f"--mysql-port={os.environ['EVENTSHOP_MYSQL_PORT']}",
           f"--mysql-user={os.environ['EVENTSHOP_MYSQL_CATALOG_USER']}", f"--mysql-password={pw}",
           "--mysql-db=eventshop_catalog", f"--threads={CONNS}", f"--time={SECS}",
           "--percentile=99", f"--sku-prefix={prefix}", f"--skus={n}", "run"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench: sysbench failed: {(out.stdout + out.stderr).strip()[-2000:]}")
    rate = re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", out.stdout)
    p99 = re.search(r"99th percentile:\s+([\d.]+)", out.stdout)
    if not rate or not p99:
        raise SystemExit(f"bench: no rate or p99 in sysbench's output:\n{out.stdout}")
    return float(rate.group(1)), float(p99.group(1))


def cold():
    prefix = "cold-" + uuid.uuid4().hex[:8]
    seed(prefix, COLD)
    env = dict(os.environ, BENCH_SKU_PREFIX=prefix, BENCH_SKUS=str(COLD))
    rate, p99, bad = wrk(API, script=os.path.join(HERE, "cold_get.lua"), env=env)
    db_rate, db_p99 = sysbench(prefix, COLD)
    print(f"cold GET p99: ours {p99:.2f} ms, MariaDB point selects {db_p99:.2f} ms", flush=True)
    record(f"cold GET product req/s (random of {COLD // 1000}k, {CONNS} conns)", rate, "req/s",
           db_rate, f"MariaDB point selects, {CONNS} clients", 0.8,
           note=f"{bad} answers not 2xx" if bad else "")


def main():
    hot()
    cold()


if __name__ == "__main__":
    main()
