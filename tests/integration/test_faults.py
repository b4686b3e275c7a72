"""Faults of the infrastructure under load: SIGKILL of MariaDB, then of the Kafka broker, in the
middle of a steady stream of stock receipts sent through the API, then a restart.

What must hold (issue 8): every role keeps running (the projector that used to die on
librdkafka's `rd_kafka_q_serve: assert: res != RD_KAFKA_OP_RES_PASS` after losing MariaDB is
the same process afterwards); the probes say what is going on (`/readyz` of the projector falls
while MariaDB is gone, the API's stays up: it needs Kafka only, its queries answer 503
problem+json with Retry-After and recover on their own); clients that retry with the same
Idempotency-Key get every command accepted exactly once, and the read model catches up exactly.

These tests kill and restart the infrastructure the whole session shares: they run after every
other test (marker run_last, see conftest.py) and leave the stack complete and ready.
"""
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import TOP, env, read_topic, unique, wait_for

pytestmark = pytest.mark.run_last

STACK = os.path.join(TOP, "scripts", "stack.sh")


def stack(*args, timeout=240):
    t0 = time.monotonic()
    subprocess.run([STACK, *args], check=True, timeout=timeout)
    return time.monotonic() - t0


def run_dir():
    return os.path.join(env("ES_STATE"), "run")


def pid_of(role):
    try:
        with open(os.path.join(run_dir(), f"{role}.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def roles():
    """The eventshop roles of the running stack (not MariaDB, Kafka nor the supervisor)."""
    return sorted(f[:-4] for f in os.listdir(run_dir())
                  if f.endswith(".pid") and f[:-4] not in ("mariadb", "kafka", "supervisor"))


def probe_url(role, path):
    """A role's probe URL, from the address its process was started with."""
    if role == "api":
        return env("EVENTSHOP_API_URL") + path
    if role == "registry":
        return env("EVENTSHOP_REGISTRY_URL") + path
    with open(f"/proc/{pid_of(role)}/environ", "rb") as f:
        for kv in f.read().split(b"\0"):
            if kv.startswith(b"EVENTSHOP_METRICS_ADDR="):
                return "http://" + kv.split(b"=", 1)[1].decode() + path
    raise AssertionError(f"{role} has no EVENTSHOP_METRICS_ADDR")


def same_process(role, pid):
    """Asserts that role still runs as process pid (it neither died nor was restarted)."""
    assert pid_of(role) == pid, f"{role} (pid {pid}) died; its last lines:\n" + log_tail(role)
    return True


def assert_roles_running(rs, timeout=60):
    """Every role of rs runs: it survived, or a supervisor restarted it within timeout."""
    try:
        wait_for(lambda: all(pid_of(r) for r in rs), timeout=timeout, what="every role running")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{roles_down(rs)}") from None


def roles_down(rs):
    down = [r for r in rs if not pid_of(r)]
    return "roles not running: " + "".join(f"\n--- {r}:\n{log_tail(r, 6)}" for r in down) \
        if down else "every role runs"


def status(role, path):
    if not pid_of(role):
        return None
    try:
        return requests.get(probe_url(role, path), timeout=5).status_code
    except requests.RequestException:
        return None


def log_tail(role, n=30):
    try:
        with open(os.path.join(env("ES_STATE"), "logs", f"{role}.log"), errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


@pytest.fixture
def restore():
    """Whatever happens in the test, the stack is complete and every role ready afterwards."""
    before = roles()
    yield before
    stack("infra-start")
    for r in before:
        if not pid_of(r):
            stack("role-start", r)
    for r in before:
        stack("role-wait", r, "120", timeout=180)


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


@pytest.fixture
def sku_of_vendor(api_url, token):
    tok = token("vendor", unique("u"), unique("v"))
    sku = unique("FLT")
    r = requests.post(f"{api_url}/v1/products",
                      json={"sku": sku, "name": "Crate", "category": "tools", "currency": "EUR"},
                      headers=auth(tok, Prefer="wait=20"), timeout=30)
    assert r.status_code == 201, r.text
    return sku, tok


class Receipts(threading.Thread):
    """A client sending stock receipts one after another, each with its own Idempotency-Key,
    retrying the same key until the handler's outcome says accepted (200; a 202 only says that
    Kafka has the command, a 503 that it may not: both are retried with the same key, which the
    API maps to the same command id, so a command sent twice is decided once)."""

    def __init__(self, api_url, tok, sku):
        super().__init__(daemon=True)
        self.url = f"{api_url}/v1/inventory/{sku}/receipts"
        self.tok = tok
        self.stop = threading.Event()
        self.abandon = threading.Event()
        self.lock = threading.Lock()
        self.accepted = []  # (monotonic time, key, quantity)
        self.failures = 0
        self.error = None

    def snapshot(self):
        with self.lock:
            return list(self.accepted)

    def total(self):
        return sum(q for _, _, q in self.snapshot())

    def count(self):
        return len(self.snapshot())

    def longest_gap(self, since, until):
        times = [since] + [t for t, _, _ in self.snapshot() if since < t < until] + [until]
        return max(b - a for a, b in zip(times, times[1:]))

    def run(self):
        s = requests.Session()
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                key, qty = unique("rcpt"), 1 + i % 7
                while not self.abandon.is_set():  # even after stop was asked
                    try:
                        r = s.post(self.url, json={"quantity": qty},
                                   headers=auth(self.tok, **{"Idempotency-Key": key,
                                                             "Prefer": "wait=5"}),
                                   timeout=30)
                        if r.status_code == 200:
                            break
                        assert r.status_code in (202, 502, 503, 504), r.text
                    except requests.RequestException:
                        pass
                    self.failures += 1
                    time.sleep(0.2)
                else:
                    return
                with self.lock:
                    self.accepted.append((time.monotonic(), key, qty))
                time.sleep(0.03)
        except Exception as e:  # surfaced by the test
            self.error = e

    def finish(self):
        """Stops after the receipt in flight is accepted (waits up to 120 s, then abandons it:
        the test has failed already, or fails here)."""
        self.stop.set()
        self.join(120)
        if self.is_alive():
            self.abandon.set()
            self.join(60)
        assert self.error is None, repr(self.error)
        assert not self.abandon.is_set(), "a receipt was never accepted"


def receipt_position(api_url, tok, sku):
    """A receipt of 1 whose outcome is awaited: the position ("<partition>:<offset>") of its
    event, for a read that must see it."""
    r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", json={"quantity": 1},
                      headers=auth(tok, **{"Idempotency-Key": unique("ryw"), "Prefer": "wait=15"}),
                      timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()["position"]


def read_at_position(api_url, sku, pos):
    """The stock of sku read past the API's cache once the read model has applied pos: the
    read-your-writes watcher (api/api_positions.c) must have read the stored offsets."""
    return requests.get(f"{api_url}/v1/inventory/{sku}",
                        headers={"X-Min-Position": pos, "Cache-Control": "no-cache"}, timeout=30)


def projected(db, sku):
    """(on_hand, number of movements) of sku in the inventory read model."""
    c = db("inventory")
    try:
        with c.cursor() as cur:
            cur.execute("SELECT on_hand FROM stock WHERE sku = %s", (sku,))
            row = cur.fetchone()
            cur.execute("SELECT COUNT(*) AS n FROM stock_movements WHERE sku = %s", (sku,))
            n = cur.fetchone()["n"]
        return (row["on_hand"] if row else 0), n
    finally:
        c.close()


def test_projector_survives_a_mariadb_kill_and_the_api_degrades_to_503(
        api_url, db, sku_of_vendor, restore):
    sku, tok = sku_of_vendor
    projector = "projector-inventory"
    pid = pid_of(projector)
    assert pid, "the inventory projector is not running"
    client = Receipts(api_url, tok, sku)
    client.start()
    try:
        # mid-work: receipts are flowing and some of them are projected already
        wait_for(lambda: projected(db, sku)[0] > 0 and client.count() >= 10, timeout=60,
                 what="receipts projected before the kill")
        # a read at a position: the watcher's own connection is open when MariaDB dies
        r = read_at_position(api_url, sku, receipt_position(api_url, tok, sku))
        assert r.status_code == 200, r.text
        extra, movements = 1, 1
        before, _ = projected(db, sku)
        stack("infra-kill", "mariadb")
        at_kill = client.count()

        # the projector noticed (its readiness fell) and still runs; the stream goes on: these
        # receipts are decided by the handler (Kafka only) and reach the projector's consumer
        # while it backs off, which is what used to abort it
        wait_for(lambda: same_process(projector, pid) and status(projector, "/readyz") == 503,
                 timeout=30, what="the projector's /readyz to fall without MariaDB")
        wait_for(lambda: same_process(projector, pid) and client.count() >= at_kill + 20,
                 timeout=60, what="receipts accepted while MariaDB is down")
        assert status(projector, "/healthz") == 200

        # the API: Kafka only for readiness and commands; a query answers 503 problem+json
        assert status("api", "/readyz") == 200
        r = requests.get(f"{api_url}/v1/products/{sku}", timeout=30)
        assert r.status_code == 503, r.text
        assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["status"] == 503
        r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", json={"quantity": 1000},
                          headers=auth(tok, **{"Idempotency-Key": unique("direct")}), timeout=30)
        assert r.status_code == 202, r.text
        extra += 1000
        movements += 1

        stack("infra-start")
        # the API reconnects on its own
        wait_for(lambda: requests.get(f"{api_url}/v1/products/{sku}", timeout=30).status_code
                 == 200, timeout=30, what="the product query to answer again")
        wait_for(lambda: same_process(projector, pid) and status(projector, "/readyz") == 200,
                 timeout=60, what="the projector's /readyz after MariaDB's return")
        # the watcher's connection died with the server: it connects again by itself
        pos = receipt_position(api_url, tok, sku)
        extra += 1
        movements += 1
        wait_for(lambda: read_at_position(api_url, sku, pos).status_code == 200, timeout=60,
                 what="a read at a position after MariaDB's return")
        after_restart = client.count()
        wait_for(lambda: client.count() >= after_restart + 10, timeout=60,
                 what="receipts after the restart")
    finally:
        client.finish()

    expected = client.total() + extra
    n = client.count() + movements
    assert 0 < before < expected
    # every accepted receipt applied exactly once: the stock is their sum, one movement each
    wait_for(lambda: projected(db, sku) == (expected, n), timeout=60,
             what=f"the read model to reach on_hand={expected} with {n} movements")
    same_process(projector, pid)
    assert_roles_running(restore)


def test_an_api_started_without_mariadb_answers_reads_at_a_position_once_it_is_back(
        api_url, sku_of_vendor, restore):
    """The read-your-writes watcher's connections are made on their first read and made again by
    es_db (es_db_open_reconnecting, api/api_positions.c): an API started while MariaDB is away
    comes up (Kafka is all its readiness needs), answers a read at a position 503 while the read
    model cannot be read, and the same read once MariaDB is back, in the same process."""
    sku, tok = sku_of_vendor
    stack("infra-kill", "mariadb")
    stack("role-stop", "api")
    stack("role-start", "api")
    stack("role-wait", "api", "120", timeout=180)
    pid = pid_of("api")
    pos = receipt_position(api_url, tok, sku)  # decided and answered through Kafka alone
    r = read_at_position(api_url, sku, pos)
    assert r.status_code == 503, r.text
    stack("infra-start")
    wait_for(lambda: read_at_position(api_url, sku, pos).status_code == 200, timeout=60,
             what="a read at a position once MariaDB is back")
    same_process("api", pid)
    assert_roles_running(restore)


def test_broker_kill_every_command_accepted_exactly_once(api_url, db, sku_of_vendor, restore):
    sku, tok = sku_of_vendor
    pids = {r: pid_of(r) for r in restore}
    client = Receipts(api_url, tok, sku)
    client.start()
    try:
        wait_for(lambda: client.count() >= 10, timeout=60, what="receipts before the kill")
        stack("infra-kill", "kafka")
        t_kill = time.monotonic()
        at_kill = client.count()
        # the outage is seen: the API and a projector say they are not ready
        wait_for(lambda: status("api", "/readyz") == 503, timeout=30,
                 what="the API's /readyz to fall without Kafka")
        wait_for(lambda: status("projector-inventory", "/readyz") == 503, timeout=30,
                 what="the projector's /readyz to fall without Kafka")
        assert status("api", "/healthz") == 200
        broker_ready_s = stack("infra-start")
        t_back = time.monotonic()
        wait_for(lambda: status("api", "/readyz") == 200, timeout=60,
                 what="the API's /readyz after the broker's return")
        try:
            wait_for(lambda: client.count() >= at_kill + 20, timeout=180,
                     what="receipts accepted after the broker's return")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{roles_down(restore)}") from None
    finally:
        client.finish()

    accepted = client.snapshot()
    first_after = min(t for t, _, _ in accepted if t > t_back)
    gap = client.longest_gap(t_kill, accepted[-1][0])
    print(f"\nbroker kill: longest time without an accepted command {gap:.1f} s; broker back "
          f"to ready in {broker_ready_s:.1f} s (infra-start); first acceptance "
          f"{first_after - t_back:.1f} s after it; {client.failures} client retries")
    with open(os.path.join(env("ES_STATE"), "fault-broker.txt"), "w") as f:
        f.write(f"outage_s={gap:.1f} broker_ready_s={broker_ready_s:.1f} "
                f"retries={client.failures}\n")

    keys = [k for _, k, _ in accepted]
    assert len(keys) == len(set(keys))
    expected = sum(q for _, _, q in accepted)
    wait_for(lambda: projected(db, sku) == (expected, len(accepted)), timeout=120,
             what=f"the read model to reach on_hand={expected} with {len(accepted)} movements")
    # every role survived (or, under a supervisor, was restarted and runs again)
    assert_roles_running(restore)
    kept = [r for r in restore if pid_of(r) == pids[r]]
    print(f"roles still in their first process: {len(kept)} of {len(restore)}")


def test_registry_write_reported_failed_but_logged_never_reuses_its_id(brokers, monkeypatch):
    """A write to `_schemas` that times out during a Kafka outage may still be in the log. The
    fault point makes the first write exactly that (delivered, reported failed); the registry
    must re-read its log before the next write, or it gives the logged schema's id to another."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from test_registry import V1, Registry, record, register

    topic = unique("_schemas-fault")
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                  config={"cleanup.policy": "compact"})])[topic].result(timeout=30)
    monkeypatch.setenv("EVENTSHOP_FAULTS", "registry.after_write=fail@1")
    reg = Registry(topic)
    reg.start()
    try:
        other = record("Other", [{"name": "n", "type": "long"}])
        s1, s2 = unique("fault-a") + "-value", unique("fault-b") + "-value"
        r = register(reg, s1, V1)
        assert r.status_code == 500, r.text  # in the log, reported failed
        r = register(reg, s2, other)
        assert r.status_code == 500 and "re-read" in r.json()["message"], r.text
        r = register(reg, s2, other)
        assert r.status_code == 200, r.text
        id_other = r.json()["id"]
        r = register(reg, s1, V1)  # the retry of the first: the logged record, same id
        assert r.status_code == 200, r.text
        id_v1 = r.json()["id"]
        assert id_v1 != id_other
        assert reg.call("GET", f"/subjects/{s1}/versions").json() == [1]
        reg.stop()
        monkeypatch.delenv("EVENTSHOP_FAULTS")
        reg.start()  # the same answers from the log alone
        for sid, text in ((id_v1, V1), (id_other, other)):
            got = reg.call("GET", f"/schemas/ids/{sid}").json()["schema"]
            assert json.loads(got) == json.loads(text)
    finally:
        if reg.proc.poll() is None:
            reg.stop()
        admin.delete_topics([topic])


SUBSCRIBERS = ("subscriber-notifications", "subscriber-shipping", "subscriber-order-saga")


class Orders(threading.Thread):
    """A client placing orders one after another by writing PlaceOrder on orders.commands, as
    the API does once it has sealed the address (the API itself needs MariaDB for the customer's
    key, the orders handler does not): orders are placed before, during and after an outage of
    MariaDB. Each order has its own id; the handler's outcome is not awaited."""

    def __init__(self, brokers, registry, customer_id, sku):
        super().__init__(daemon=True)
        from confluent_kafka.serialization import MessageField, SerializationContext
        from conftest import command_meta, command_serializer, producer
        self.ser = command_serializer(registry, "eventshop.orders.PlaceOrder", "orders.commands")
        self.ctx = SerializationContext("orders.commands", MessageField.VALUE)
        self.meta = command_meta
        self.p = producer(brokers)
        self.customer, self.sku = customer_id, sku
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.placed = []  # (monotonic time, order id)
        self.error = None

    def snapshot(self):
        with self.lock:
            return [oid for _, oid in self.placed]

    def run(self):
        try:
            while not self.stop.is_set():
                oid = unique("flt-ord")
                now = int(time.time() * 1000)
                reserve = int(os.environ.get("EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS", "60000"))
                pay = int(os.environ.get("EVENTSHOP_ORDER_PAY_TIMEOUT_MS", "300000"))
                cmd = {"metadata": self.meta(self.customer, "customer", aggregate_id=oid),
                       "order_id": oid, "customer_id": self.customer,
                       "lines": [{"sku": self.sku, "quantity": 1}], "shipping_address_enc": None,
                       "reserve_by": now + reserve, "pay_by": now + pay}
                self.p.produce("orders.commands", key=oid.encode(), value=self.ser(cmd, self.ctx))
                self.p.flush(30)
                with self.lock:
                    self.placed.append((time.monotonic(), oid))
                self.stop.wait(0.4)
        except Exception as e:  # surfaced by the test
            self.error = e

    def finish(self):
        self.stop.set()
        self.join(60)
        assert self.error is None, repr(self.error)


def bookings():
    """order id -> number of parcels booked with the test carrier."""
    from notify_ship_util import carrier_url
    out = {}
    for b in requests.get(f"{carrier_url()}/_shipments", timeout=10).json():
        out[b["order_id"]] = out.get(b["order_id"], 0) + 1
    return out


def confirmation_ids():
    """order id -> the Message-IDs of its confirmation e-mails, one per e-mail captured."""
    from notify_ship_util import mails
    out = {}
    for m in mails():
        subject = m["Subject"] or ""
        if subject.startswith("Your order ") and subject.endswith(" is confirmed"):
            out.setdefault(subject.split()[2], []).append(m["Message-ID"])
    return out


def test_subscribers_survive_a_mariadb_kill_mid_flow(api_url, db, token, brokers, registry,
                                                     restore):
    """notifications, shipping and the order saga keep their process through a SIGKILL of
    MariaDB and its restart: they reconnect on their own (es_db), their /readyz says MariaDB is
    gone and then back, and every order placed before, during and after the outage ends with one
    confirmation Message-ID and one parcel (or cancelled, with neither)."""
    from test_orders import FINAL, get_order, registered_customer, sku_on_sale
    have = os.environ.get("ES_SUBSCRIBERS", "").split()
    missing = [s for s in ("order-saga", "payments", "notifications", "shipping") if s not in have]
    if missing:
        pytest.skip(f"the stack runs without subscribers {missing}")
    pids = {r: pid_of(r) for r in SUBSCRIBERS}
    assert all(pids.values()), pids
    for r in SUBSCRIBERS:
        assert status(r, "/readyz") == 200, r
    sku, _ = sku_on_sale(api_url, token, stock=1000, price=700)
    customer, _, tok = registered_customer(api_url, db)
    client = Orders(brokers, registry, customer, sku)
    client.start()
    try:
        # mid-work: some orders mailed and shipped already, while more are placed
        wait_for(lambda: len(set(client.snapshot()) & set(confirmation_ids())) >= 2
                 and len(set(client.snapshot()) & set(bookings())) >= 1, timeout=120,
                 what="orders confirmed by mail and shipped before the kill")
        stack("infra-kill", "mariadb")
        before = client.snapshot()
        mailed, shipped = set(confirmation_ids()), set(bookings())
        # taken after the kill: an order still missing here was in flight when MariaDB died
        assert set(before) & mailed and set(before) - mailed, (len(before), len(mailed))
        assert set(before) & shipped and set(before) - shipped, (len(before), len(shipped))

        # each subscriber sees the outage (busy or idle) and stays the same process
        for r in SUBSCRIBERS:
            wait_for(lambda r=r: same_process(r, pids[r]) and status(r, "/readyz") == 503,
                     timeout=30, what=f"{r}'s /readyz to fall without MariaDB")
            assert status(r, "/healthz") == 200, r
        n_down = len(client.snapshot())
        wait_for(lambda: len(client.snapshot()) >= n_down + 5, timeout=30,
                 what="orders placed while MariaDB is down")

        stack("infra-start")
        for r in SUBSCRIBERS:
            wait_for(lambda r=r: same_process(r, pids[r]) and status(r, "/readyz") == 200,
                     timeout=90, what=f"{r}'s /readyz after MariaDB's return")
        n_back = len(client.snapshot())
        wait_for(lambda: len(client.snapshot()) >= n_back + 5, timeout=30,
                 what="orders placed after MariaDB's return")
    finally:
        client.finish()

    orders = client.snapshot()
    finals = {}

    def ended():
        for oid in orders:
            if oid not in finals:
                o = get_order(api_url, tok, oid)
                if o and o["status"] in FINAL:
                    finals[oid] = o["status"]
        return len(finals) == len(orders)

    try:
        wait_for(ended, timeout=240, interval=1, what="every order in a final state")
    except AssertionError:
        raise AssertionError(f"{len(orders) - len(finals)} of {len(orders)} orders never ended"
                             f"\n{roles_down(SUBSCRIBERS)}") from None
    delivered = [o for o in orders if finals[o] == "delivered"]
    cancelled = [o for o in orders if finals[o] == "cancelled"]
    # orders of every phase got through: the subscribers resumed, they did not just survive
    assert set(delivered) & set(before) and set(delivered) - set(before), finals

    # the confirmation mail of a delivered order is committed (NotificationSent) before its
    # event's offset: once every one is there, a second send would be in the capture already
    def all_sent():
        sent = {m["value"]["order_id"] for m in read_topic(brokers, registry,
                                                          "notifications.events")
                if m["value"] and m["value"].get("kind") == "order_confirmed"}
        return set(delivered) <= sent

    wait_for(all_sent, timeout=60, interval=2, what="a NotificationSent per delivered order")
    ids, parcels = confirmation_ids(), bookings()
    for oid in delivered:
        assert len(set(ids.get(oid, []))) == 1, (oid, ids.get(oid))
        assert parcels.get(oid) == 1, (oid, parcels.get(oid))
    for oid in cancelled:
        assert not ids.get(oid) and not parcels.get(oid), oid
    for r in SUBSCRIBERS:
        same_process(r, pids[r])
    print(f"\nmariadb kill: {len(orders)} orders ({len(before)} before the kill), "
          f"{len(delivered)} delivered, {len(cancelled)} cancelled")


def restart_role(role, faults=None):
    """Stops role and starts it again with EVENTSHOP_FAULTS=faults (or none armed)."""
    e = dict(os.environ)
    e.pop("EVENTSHOP_FAULTS", None)
    if faults:
        e["EVENTSHOP_FAULTS"] = faults
    subprocess.run([STACK, "role-stop", role], check=True, timeout=120, env=e)
    subprocess.run([STACK, "role-start", role], check=True, timeout=120, env=e)
    subprocess.run([STACK, "role-wait", role, "90"], check=True, timeout=120, env=e)


def test_saga_transaction_lost_mid_way_is_redone_on_a_new_connection(api_url, db, token):
    """The saga folds an orders event into its table in one MariaDB transaction. The fault point
    db.lost_in_tx shuts the connection down just before the transaction's second statement (a
    real loss: the server rolls the first back). es_db must not reconnect under the transaction:
    the handler fails with ES_EIO, the runtime aborts the Kafka transaction and redoes the batch
    on a new connection, in the same process, and the order completes."""
    from test_orders import FINAL, customer, get_order, place, placed_id, sku_on_sale
    role = "subscriber-order-saga"
    if not pid_of(role):
        pytest.skip("the stack runs without the order saga")
    log = os.path.join(env("ES_STATE"), "logs", f"{role}.log")
    restart_role(role, "db.lost_in_tx=fail@2")
    try:
        pid = pid_of(role)
        sku, _ = sku_on_sale(api_url, token, stock=5)
        start = os.path.getsize(log)
        _, tok = customer(token)
        oid = placed_id(place(api_url, tok, [{"sku": sku, "quantity": 1}]))

        def since():
            with open(log, errors="replace") as f:
                f.seek(start)
                return f.read()

        # positive markers: the loss inside the transaction, the batch aborted, a new connection
        wait_for(lambda: "inside a transaction" in since() and "connected again" in since(),
                 timeout=60, what="the saga's transaction lost and its connection made again")
        assert "aborting a batch" in since(), since()[-3000:]
        o = wait_for(lambda: (lambda o: o if o and o["status"] in FINAL else None)(
            get_order(api_url, tok, oid)), timeout=120, interval=0.5, what=f"order {oid} ended")
        assert o["status"] == "delivered", o
        with db("order_saga").cursor() as c:
            c.execute("SELECT * FROM open_orders WHERE order_id = %s", (oid,))
            assert c.fetchone() is None  # folded to its end: no deadline left
        same_process(role, pid)
    finally:
        restart_role(role)
