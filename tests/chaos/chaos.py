#!/usr/bin/env python3
"""The chaos suite (`make chaos`; `--short` runs inside `make test`): a steady mixed load of
listings, stock receipts, price changes and orders with payments against a running stack, and,
one after another, faults of every dependency and role. Clients retry each command with the same
Idempotency-Key until it is accepted. After each fault the load pauses and the suite checks:

  lost / duplicated   every accepted receipt, price change, listing and order applied exactly
                      once in the read models (a receipt sku's on-hand is the sum of its accepted
                      receipts and it has one movement per receipt; one price-history row per
                      accepted price; every listing and every order present)
  rebuild             the read models the fault could touch equal, row by row, a fresh rebuild
                      (a second projector with a table suffix and its own group, from offset 0,
                      caught up to the live one's stored offsets; nothing is swapped)
and at the end: every order in a final state, no order charged twice, no cancelled order left
charged, at most one distinct Message-ID per (order, e-mail kind).

It prints one table: fault, longest outage a client saw (first try to acceptance), time until
every role was ready again, lost, duplicated. Exit status 0 only when nothing was lost or
duplicated and every check held. Environment: a stack's $ES_STATE/env (scripts/chaos.sh)."""
import argparse
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pymysql
import requests

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(TOP, "scripts", "stack.sh")
STATE = os.environ["ES_STATE"]
API = os.environ["EVENTSHOP_API_URL"]
BUILD = os.environ["ES_BUILD"]
CONTEXTS = os.environ.get("ES_CONTEXTS", "").split()
SUBSCRIBERS = os.environ.get("ES_SUBSCRIBERS", "").split()
ADDRESS = {"name": "Chaos Monkey", "line1": "1 Fault St", "city": "Lyon", "postal_code": "69001",
           "country": "FR"}
FINAL = {"delivered", "cancelled"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ the stack


def stack(*args, timeout=300):
    subprocess.run([STACK, *args], check=True, timeout=timeout, stdout=subprocess.DEVNULL)


def pid_of(name):
    try:
        with open(os.path.join(STATE, "run", f"{name}.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def roles():
    out = ["registry"] + [f"handler-{c}" for c in CONTEXTS] + [f"projector-{c}" for c in CONTEXTS]
    return out + ["api"] + [f"subscriber-{s}" for s in SUBSCRIBERS]


_URLS = {}


def ready_url(role):
    """role's readiness URL, from `stack.sh roles` (the one place that numbers the ports)."""
    if not _URLS:
        out = subprocess.run([STACK, "roles"], check=True, capture_output=True, text=True).stdout
        _URLS.update(line.split(None, 1) for line in out.splitlines() if line.strip())
    if role == "registry":
        return _URLS[role] + "/"
    return _URLS[role] + "/readyz"


def is_ready(role):
    try:
        return requests.get(ready_url(role), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_all_ready(limit=180):
    """Seconds until every role answers ready (each role restarted if it is gone)."""
    t0 = time.time()
    while time.time() - t0 < limit:
        missing = [r for r in roles() if not pid_of(r)]
        for r in missing:  # a role that died: the fault found a crash; restart it and say so
            log(f"  role {r} is not running: restarting it")
            CRASHED.add(r)
            subprocess.run([STACK, "role-start", r], timeout=60, stdout=subprocess.DEVNULL)
        if not missing and all(is_ready(r) for r in roles()):
            return time.time() - t0
        time.sleep(0.25)
    raise RuntimeError(f"roles not ready after {limit} s: "
                       f"{[r for r in roles() if not is_ready(r)]}")


CRASHED = set()


def db(context):
    return pymysql.connect(unix_socket=os.environ["EVENTSHOP_MYSQL_ROOT_SOCKET"], user="root",
                           database=f"eventshop_{context}", autocommit=True,
                           cursorclass=pymysql.cursors.DictCursor)


def query(context, sql, args=()):
    for attempt in range(60):
        try:
            with db(context) as conn, conn.cursor() as c:
                c.execute(sql, args)
                return c.fetchall()
        except pymysql.err.OperationalError:
            if attempt == 59:
                raise
            time.sleep(1)


def token(role, sub, vendor=None):
    cmd = [os.path.join(BUILD, "api", "eventshop-token"), "--role", role, "--sub", sub]
    if vendor:
        cmd += ["--vendor", vendor]
    cmd += ["--ttl", "86400"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


# ------------------------------------------------------------------------------ the load


class Load:
    """Client threads sending commands; each retried with its Idempotency-Key until accepted."""

    def __init__(self, threads, seed):
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.stop = threading.Event()
        self.idle = [threading.Event() for _ in range(threads)]
        self.receipts = {}  # sku -> [quantities]
        self.prices = {}  # sku -> count of accepted price changes
        # every price sent differs from every other: setting the current price again is accepted
        # with no event (nothing changed), which the count of PriceSet events would call lost
        self.amounts = itertools.count(1001)  # above the 1000 of setup()
        self.listed = []  # skus
        self.orders = {}  # order id -> customer token
        self.rejected = []  # (what, status, body): a 4xx the load did not expect
        self.longest = 0.0  # longest first-try-to-acceptance since the last reset
        self.accepted = 0
        self.vendor = f"chaos-{uuid.uuid4().hex[:8]}"
        self.vtok = token("vendor", f"u-{self.vendor}", self.vendor)
        self.customers = [token("customer", f"cust-chaos-{uuid.uuid4().hex[:10]}")
                          for _ in range(6)]
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(threads)]

    def register(self):
        """A customer with an account, so that its orders send e-mails."""
        body = {"email": f"chaos-{uuid.uuid4().hex[:10]}@example.test", "name": "Chaos Buyer",
                "password": "correct horse battery staple", "role": "customer"}
        r = requests.post(f"{API}/v1/users", json=body, headers={"Prefer": "wait=15"}, timeout=30)
        if r.status_code != 201:
            log(f"  registration refused ({r.status_code}): orders of minted customers only")
            return
        self.customers.append(token("customer", r.headers["Location"].rsplit("/", 1)[1]))

    def setup(self):
        if "users" in CONTEXTS:
            for _ in range(2):
                self.register()
        self.receipt_skus = [self.list_product() for _ in range(4)]
        self.price_skus = [self.list_product() for _ in range(3)]
        self.order_skus = [self.list_product() for _ in range(3)]
        for s in self.price_skus + self.order_skus:
            self.send("PUT", f"/v1/prices/{s}", {"amount_minor": 1000, "currency": "EUR"},
                      self.vtok, what=("price", s))
        for s in self.order_skus:
            self.send("POST", f"/v1/inventory/{s}/receipts", {"quantity": 1000000}, self.vtok,
                      what=("stock", s))
        for t in self.threads:
            t.start()

    def list_product(self):
        sku = f"CH-{uuid.uuid4().hex[:10]}"
        self.send("POST", "/v1/products", {"sku": sku, "name": "Chaos mug", "category": "kitchen",
                                           "currency": "EUR"}, self.vtok, what=("listing", sku))
        return sku

    def send(self, method, path, body, tok, what):
        """Sends until the command's outcome is known, with Prefer: wait and the same
        Idempotency-Key on every try (a 202 means queued, not decided: ask again). Records an
        accepted command with the time from the first try; a rejection is kept apart."""
        key = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {tok}", "Idempotency-Key": key, "Prefer": "wait=10"}
        t0 = time.time()
        while True:
            try:
                r = requests.request(method, API + path, json=body, headers=headers, timeout=15)
            except requests.RequestException:
                r = None
            if r is not None and r.status_code in (200, 201):
                order_id = None
                if what[0] == "order":
                    order_id = (r.json() or {}).get("order_id") or (r.json() or {}).get(
                        "aggregate_id")
                self.record(what, body, order_id, tok, time.time() - t0)
                return r
            if r is not None and 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                with self.lock:
                    self.rejected.append((what, r.status_code, r.text[:300]))
                return r
            if self.stop.is_set():
                return None
            time.sleep(0.2)

    def record(self, what, body, order_id, tok, took):
        with self.lock:
            self.accepted += 1
            self.longest = max(self.longest, took)
            kind, sku = what
            if kind == "receipt":
                self.receipts.setdefault(sku, []).append(body["quantity"])
            elif kind == "price":
                self.prices[sku] = self.prices.get(sku, 0) + 1
            elif kind == "listing":
                self.listed.append(sku)
            elif kind == "order":
                self.orders[order_id] = tok

    def client(self, i):
        rnd = random.Random(self.rnd.random())
        while not self.stop.is_set():
            if not self.running.is_set():
                self.idle[i].set()
                self.running.wait(0.5)
                continue
            self.idle[i].clear()
            x = rnd.random()
            if x < 0.35:
                sku = rnd.choice(self.receipt_skus)
                self.send("POST", f"/v1/inventory/{sku}/receipts", {"quantity": rnd.randint(1, 9)},
                          self.vtok, what=("receipt", sku))
            elif x < 0.55:
                sku = rnd.choice(self.price_skus)
                with self.lock:
                    amount = next(self.amounts)
                self.send("PUT", f"/v1/prices/{sku}", {"amount_minor": amount, "currency": "EUR"},
                          self.vtok, what=("price", sku))
            elif x < 0.65:
                self.list_product()
            else:
                lines = [{"sku": rnd.choice(self.order_skus), "quantity": rnd.randint(1, 3)}]
                self.send("POST", "/v1/orders", {"lines": lines, "shipping_address": ADDRESS},
                          rnd.choice(self.customers), what=("order", None))
            time.sleep(rnd.uniform(0.02, 0.1))

    def resume(self):
        with self.lock:
            self.longest = 0.0
        self.running.set()

    def pause(self, limit=180):
        """Stops sending new commands; returns once every in-flight one was accepted, or after
        limit seconds: then the number of clients still retrying a command nobody decided."""
        self.running.clear()
        deadline = time.time() + limit
        for e in self.idle:
            e.wait(max(0.0, deadline - time.time()))
        stuck = sum(not e.is_set() for e in self.idle)
        if stuck:
            log(f"  {stuck} clients still retrying a command undecided after {limit} s")
        return stuck

    def close(self):
        self.stop.set()
        self.running.set()


# ------------------------------------------------------------------------------ checks


def wait_converged(load, limit=90):
    """Waits until every accepted command shows in the read models exactly once; returns
    (lost, duplicated) as counts of commands."""
    deadline = time.time() + limit
    while True:
        lost, dup, detail = count_applied(load)
        if (lost == 0 and dup == 0) or dup > 0 or time.time() > deadline:
            if lost or dup:
                log(f"  not converged: {detail}")
            return lost, dup
        time.sleep(0.5)


def count_applied(load):
    lost = dup = 0
    detail = []
    with load.lock:
        receipts = {k: list(v) for k, v in load.receipts.items()}
        prices = dict(load.prices)
        listed = list(load.listed)
        orders = list(load.orders)
    for sku, qs in receipts.items():
        row = query("inventory", "SELECT on_hand, (SELECT COUNT(*) FROM stock_movements m WHERE "
                    "m.sku = s.sku AND m.kind = 'received') AS n FROM stock s WHERE sku = %s",
                    (sku,))
        n = row[0]["n"] if row else 0
        on_hand = row[0]["on_hand"] if row else 0
        if n < len(qs) or on_hand < sum(qs):
            lost += len(qs) - n if n < len(qs) else 1
            detail.append(f"{sku}: {n}/{len(qs)} receipts, on hand {on_hand}/{sum(qs)}")
        elif n > len(qs) or on_hand > sum(qs):
            dup += n - len(qs) if n > len(qs) else 1
            detail.append(f"{sku}: {n}/{len(qs)} receipts, on hand {on_hand}/{sum(qs)}")
    for sku, k in prices.items():
        n = query("pricing", "SELECT COUNT(*) AS n FROM price_history WHERE sku = %s AND "
                  "event_type = 'PriceSet'", (sku,))[0]["n"]
        if n != k:
            detail.append(f"{sku}: {n}/{k} price changes")
            lost, dup = (lost + k - n, dup) if n < k else (lost, dup + n - k)
    if listed:
        have = {r["sku"] for r in query(
            "catalog", "SELECT sku FROM products WHERE sku IN (%s)" % ",".join(["%s"] * len(listed)),
            listed)}
        missing = [s for s in listed if s not in have]
        lost += len(missing)
        if missing:
            detail.append(f"{len(missing)} listings missing")
    if orders:
        have = set()
        for i in range(0, len(orders), 500):
            part = orders[i:i + 500]
            have |= {r["order_id"] for r in query(
                "orders", "SELECT order_id FROM orders WHERE order_id IN (%s)" %
                ",".join(["%s"] * len(part)), part)}
        missing = [o for o in orders if o not in have]
        lost += len(missing)
        if missing:
            detail.append(f"{len(missing)} orders missing")
    return lost, dup, "; ".join(detail[:6])


def table_columns(context, table):
    rows = query(context, "SELECT column_name AS c FROM information_schema.columns WHERE "
                 "table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
                 (table,))
    return [r["c"] for r in rows]


def live_tables(context):
    rows = query(context, "SELECT table_name AS t FROM information_schema.tables WHERE "
                 "table_schema = DATABASE() AND table_name NOT LIKE 'projection\\_%%' AND "
                 "table_name NOT LIKE '%%\\_chk%%' AND table_name NOT LIKE '%%\\_old%%' AND "
                 "table_name NOT LIKE '%%\\_rebuild%%' AND "
                 # a shadow rebuild's tables ("_rb<unix time>"), e.g. one an earlier suite's
                 # failure left waiting for its swap: not the live read model
                 "table_name NOT REGEXP '_rb[0-9]+$'")
    return sorted(r["t"] for r in rows)


def rebuild_compare(context, n):
    """Builds the context's read model afresh beside the live one and compares them row by row.
    Returns a list of differences (empty when equal)."""
    suffix = f"_chk{n}"
    name = query(context, "SELECT projection AS p FROM projection_versions LIMIT 1")[0]["p"]
    with socket.socket() as sk:  # a free port for its metrics
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    e = dict(os.environ, EVENTSHOP_PROJECTOR_TABLE_SUFFIX=suffix,
             EVENTSHOP_PROJECTOR_GROUP=f"eventshop-chaos-check-{context}-{n}-{uuid.uuid4().hex[:6]}",
             EVENTSHOP_METRICS_ADDR=f"127.0.0.1:{port}", EVENTSHOP_LOG_LEVEL="warn")
    logf = open(os.path.join(STATE, "logs", f"chaos-check-{context}.log"), "ab")
    p = subprocess.Popen([os.path.join(BUILD, "projections", "eventshop-projector"), context],
                         env=e, stdout=logf, stderr=logf)
    diffs = []
    tables = live_tables(context)
    cols = {t: ", ".join(f"`{c}`" for c in table_columns(context, t)) for t in tables}
    try:
        # The live projector may still move (the saga goes on after the load pauses). Each
        # projector commits its rows with its offsets, so one consistent snapshot in which both
        # stand at the same offsets compares like with like.
        deadline = time.time() + 120
        while True:
            if p.poll() is not None:
                return [f"{context}: the check projector exited ({p.returncode})"]
            with db(context) as conn, conn.cursor() as c:
                c.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                c.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                at = {}
                for key in (name, name + suffix):
                    c.execute("SELECT part, next_offset FROM projection_offsets WHERE "
                              "projection = %s", (key,))
                    at[key] = {r["part"]: r["next_offset"] for r in c.fetchall()}
                if at[name] and at[name] == at[name + suffix]:
                    for t in tables:
                        c.execute(f"SELECT {cols[t]} FROM `{t}` ORDER BY {cols[t]}")
                        a = c.fetchall()
                        c.execute(f"SELECT {cols[t]} FROM `{t}{suffix}` ORDER BY {cols[t]}")
                        b = c.fetchall()
                        if a != b:
                            extra = [r for r in a if r not in b][:2]
                            missing = [r for r in b if r not in a][:2]
                            diffs.append(f"{context}.{t} at {at[name]}: live {len(a)} rows, "
                                         f"rebuild {len(b)}; only live: {extra}; only rebuild: "
                                         f"{missing}")
                    c.execute("COMMIT")
                    break
                c.execute("COMMIT")
            if time.time() > deadline:
                return [f"{context}: live and fresh rebuild never at the same offsets in 120 s "
                        f"(live {at[name]}, rebuild {at[name + suffix]})"]
            time.sleep(0.3)
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        logf.close()
        for t in live_tables(context):
            query(context, f"DROP TABLE IF EXISTS `{t}{suffix}`")
        for t in ("projection_offsets", "projection_status"):
            query(context, f"DELETE FROM {t} WHERE projection = %s", (name + suffix,))
    return diffs


def final_checks(load, limit):
    """Every order final; charged at most once; a cancelled one not left charged; e-mails."""
    problems = []
    gateway = os.environ.get("EVENTSHOP_PAYMENTS_GATEWAY_URL")
    left = dict(load.orders)
    deadline = time.time() + limit
    status = {}
    while left and time.time() < deadline:
        ids = list(left)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for r in query("orders", "SELECT order_id, status FROM orders WHERE order_id IN (%s)" %
                           ",".join(["%s"] * len(part)), part):
                status[r["order_id"]] = r["status"]
                if r["status"] in FINAL:
                    left.pop(r["order_id"], None)
        if left:
            time.sleep(2)
    if left:
        problems.append(f"{len(left)} orders not in a final state, e.g. "
                        f"{[(o, status.get(o)) for o in list(left)[:3]]}")
    if gateway:
        charged = requests.get(f"{gateway}/_charges", timeout=30).json().get("orders", {})
        for oid, st in status.items():
            c = charged.get(oid, {"charges": 0, "refunds": 0})
            if c["charges"] > 1:
                problems.append(f"order {oid} charged {c['charges']} times")
            if st == "cancelled" and c["charges"] > c["refunds"]:
                problems.append(f"cancelled order {oid} left charged")
            if st == "delivered" and c["charges"] - c["refunds"] != 1:
                problems.append(f"delivered order {oid}: charges {c}")
    mail_dir = os.environ.get("EVENTSHOP_MAIL_CAPTURE_DIR", os.path.join(STATE, "mail"))
    seen = {}
    if os.path.isdir(mail_dir):
        import email
        for f in os.listdir(mail_dir):
            if f.endswith(".eml"):
                with open(os.path.join(mail_dir, f), "rb") as fh:
                    m = email.message_from_bytes(fh.read())
                key = (m.get("To", ""), m.get("Subject", ""))
                seen.setdefault(key, set()).add(m.get("Message-ID"))
    for key, ids in seen.items():
        if len(ids) > 1:
            problems.append(f"{len(ids)} distinct Message-IDs for one notification {key}")
    return problems


# ------------------------------------------------------------------------------ faults


def signal_pid(name, sig):
    pid = pid_of(name)
    if not pid:
        raise RuntimeError(f"{name} is not running")
    os.kill(pid, sig)
    return pid


def wait_gone(pid, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"pid {pid} still alive")


INFRA = {"kafka", "mariadb"}


def kill_restart(target):
    pid = signal_pid(target, signal.SIGKILL)
    wait_gone(pid)
    time.sleep(2)  # the outage: clients keep retrying meanwhile
    return restart(target)


def restart(target):
    """Starts target again; returns the seconds it took to be ready by itself."""
    t0 = time.time()
    if target in INFRA:
        try:
            os.remove(os.path.join(STATE, "run", f"{target}.pid"))
        except FileNotFoundError:
            pass
        stack("infra-up")  # returns once MariaDB answers and Kafka serves metadata
    else:
        subprocess.run([STACK, "role-start", target], check=True, timeout=60,
                       stdout=subprocess.DEVNULL)
        subprocess.run([STACK, "role-wait", target, "120"], check=True, timeout=130,
                       stdout=subprocess.DEVNULL)
    return time.time() - t0


def hang(target, seconds):
    """SIGSTOP: the process keeps its sockets (connections are accepted by the kernel) but
    answers nothing, like a hung server."""
    pid = signal_pid(target, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def outage(target, seconds):
    pid = signal_pid(target, signal.SIGKILL)
    wait_gone(pid)
    time.sleep(seconds)
    return restart(target)


def faults(short):
    ctx = CONTEXTS
    if short:
        proj = "projector-inventory" if "inventory" in ctx else f"projector-{ctx[0]}"
        return [("kill kafka", lambda: kill_restart("kafka"), ctx),
                ("kill mariadb", lambda: kill_restart("mariadb"), ctx),
                (f"kill {proj}", lambda: kill_restart(proj), [proj.split("-", 1)[1]])]
    out = [("kill kafka", lambda: kill_restart("kafka"), ctx),
           ("kill mariadb", lambda: kill_restart("mariadb"), ctx),
           ("kill registry", lambda: kill_restart("registry"), [])]
    for c in ctx:
        out.append((f"kill handler-{c}", lambda c=c: kill_restart(f"handler-{c}"), []))
    for c in ctx:
        out.append((f"kill projector-{c}", lambda c=c: kill_restart(f"projector-{c}"), [c]))
    for s in SUBSCRIBERS:
        out.append((f"kill subscriber-{s}", lambda s=s: kill_restart(f"subscriber-{s}"), []))
    out.append(("kill api", lambda: kill_restart("api"), []))
    for t in ("kafka", "mariadb", "registry"):
        out.append((f"stop {t} 20 s", lambda t=t: hang(t, 20), ctx if t == "mariadb" else []))
    out.append(("kafka down 75 s", lambda: outage("kafka", 75), ctx))
    for t in ("test-gateway", "test-carrier", "smtp-capture"):
        if pid_of(t):
            out.append((f"hang {t} 60 s", lambda t=t: hang(t, 60), []))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--short", action="store_true", help="broker, MariaDB and one projector kill")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--warm", type=float, default=5.0, help="seconds of load before each fault")
    ap.add_argument("--only", help="comma-separated substrings of the faults to run")
    args = ap.parse_args()
    t_start = time.time()
    wait_all_ready()
    load = Load(args.threads, seed=int(os.environ.get("ES_CHAOS_SEED", "8")))
    load.setup()
    results, failures = [], []
    checked = 0
    plan = faults(args.short)
    if args.only:
        plan = [f for f in plan if any(s in f[0] for s in args.only.split(","))]
    for name, inject, rebuild_contexts in plan:
        load.resume()
        time.sleep(args.warm)
        log(f"fault: {name}")
        t0 = time.time()
        before = {r: pid_of(r) for r in roles()}
        own = inject() or 0.0
        ready = wait_all_ready()
        # a role other than the fault's target with a new pid died and was restarted (by the
        # supervisor or by wait_all_ready): the fault crashed it
        CRASHED.update(r for r in roles() if r not in name.split() and pid_of(r) != before[r])
        # and any role, the fault's target included, that dies after the recovery: under the
        # load that follows, while converging, or during the rebuild comparison
        after = {r: pid_of(r) for r in roles()}
        time.sleep(args.warm)  # work after the recovery
        stuck = load.pause()
        worst = load.longest
        lost, dup = wait_converged(load)
        lost += stuck  # commands the engine never decided
        diffs = []
        for c in rebuild_contexts:
            checked += 1
            diffs += rebuild_compare(c, checked)
        for d in diffs:
            log(f"  {d}")
        CRASHED.update(r for r in roles() if pid_of(r) != after[r])
        crashed = sorted(CRASHED)
        CRASHED.clear()
        ready += own
        results.append((name, worst, own, ready, lost, dup, "differs" if diffs else
                        ("ok" if rebuild_contexts else "-"), ",".join(crashed) or "-"))
        if lost or dup or diffs or crashed:
            failures.append(name)
        log(f"  outage {worst:.1f} s, restarted in {own:.1f} s, all ready {ready:.1f} s, lost {lost}, dup {dup}, "
            f"rebuild {'differs' if diffs else 'ok'}, crashed {crashed or 'none'} "
            f"({time.time() - t0:.0f} s)")
    stuck = load.pause()
    log("end: every order final, charges, e-mails; every read model against a fresh rebuild")
    before = {r: pid_of(r) for r in roles()}
    problems = final_checks(load, limit=180)
    if stuck:
        problems.append(f"{stuck} commands never decided")
    for c in CONTEXTS:
        checked += 1
        problems += rebuild_compare(c, checked)
    lost, dup = wait_converged(load, limit=30)
    problems += [f"{r} died during the end checks" for r in roles() if pid_of(r) != before[r]]
    load.close()
    if load.rejected:
        problems.append(f"{len(load.rejected)} commands refused with a 4xx, e.g. {load.rejected[:3]}")
    print()
    print("longest outage: a client's first try to acceptance; restarted: the faulty part's own "
          "time to ready; all ready: until every role was ready again (both from the restart)")
    print(f"{'fault':<30} {'longest outage':>15} {'restarted':>10} {'all ready':>10} {'lost':>5} "
          f"{'dup':>5} {'rebuild':>8}  crashed roles")
    for name, worst, own, ready, l, d, rb, cr in results:
        print(f"{name:<30} {worst:>13.1f} s {own:>8.1f} s {ready:>8.1f} s {l:>5} {d:>5} {rb:>8}  "
              f"{cr}")
    print(f"{'end':<30} {'':>15} {'':>10} {'':>10} {lost:>5} {dup:>5} "
          f"{'differs' if any('rows' in p for p in problems) else 'ok':>8}")
    print(f"\naccepted commands: {load.accepted}, orders: {len(load.orders)}, "
          f"total {time.time() - t_start:.0f} s")
    for p in problems:
        print(f"problem: {p}")
    ok = not failures and not problems and lost == 0 and dup == 0
    print(f"chaos: {'PASS' if ok else 'FAIL'}"
          f"{'' if ok else ' (' + ', '.join(failures + (['final checks'] if problems else [])) + ')'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
