"""Fixtures for the integration and end-to-end suites.

They run against the stack that scripts/test.sh starts (real Kafka, MariaDB, registry and every
role); its settings come from the environment ($ES_STATE/env). Nothing here stands in for Kafka
or MySQL: Kafka is reached with the confluent-kafka client (librdkafka) and our registry through
confluent-kafka's own SchemaRegistryClient, i.e. as a third-party reader would.
"""
import json
import os
import re
import subprocess
import time
import uuid

import pymysql
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        raise RuntimeError(f"{name} is not set: run the suite through scripts/test.sh")
    return v


class Stack:
    """Starts, stops and kills roles of the running stack through scripts/stack.sh."""

    def _run(self, *args, timeout=120):
        subprocess.run([os.path.join(TOP, "scripts", "stack.sh"), *args], check=True, timeout=timeout)

    def start(self, role, **faults):
        """Starts role and waits until it is ready. Extra keyword arguments are environment
        variables for this start: with EVENTSHOP_FAULTS=... (fault points armed) the role is held
        (the supervisor leaves it down once the fault has crashed it) and not waited for, as it
        may crash before it is ready: wait for the crash with wait_crashed."""
        subprocess.run([os.path.join(TOP, "scripts", "stack.sh"), "role-start", role], check=True,
                       timeout=120, env={**os.environ, **faults})
        if "EVENTSHOP_FAULTS" not in faults:
            self._run("role-wait", role, "90")

    def url(self, role):
        """Base URL of role's /metrics, /healthz and /readyz."""
        out = subprocess.run([os.path.join(TOP, "scripts", "stack.sh"), "roles"], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            name, _, base = line.partition(" ")
            if name == role:
                return base.strip()
        raise KeyError(role)

    def projector_lag(self, role):
        """Events of the projector's partitions not yet applied (its lag gauges), or None."""
        try:
            text = requests.get(self.url(role) + "/metrics", timeout=5).text
        except requests.RequestException:
            return None
        lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("eventshop_projector_lag{")]
        return sum(lags) if lags else None

    def pid(self, role):
        try:
            with open(os.path.join(env("ES_STATE"), "run", f"{role}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def wait_crashed(self, role, point, timeout=120):
        """Waits until role's process is gone after the fault `point` fired in it."""
        pid = self.pid(role)
        log = os.path.join(env("ES_STATE"), "logs", f"{role}.log")

        def gone():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ", 1)[1].startswith("Z"):
                        return True
            except (OSError, IndexError):
                return True
            return False

        wait_for(gone, timeout=timeout, interval=0.05, what=f"{role} crashed at {point}")
        with open(log, errors="replace") as f:
            assert f"fault '{point}' fired" in f.read(), f"{role} died, but not at {point}"

    def stop(self, role):
        self._run("role-stop", role)

    def hold(self, role):
        """The supervisor leaves role down once it exits (until the next start)."""
        self._run("role-hold", role)

    def kill(self, role):
        self._run("role-kill", role)


def pytest_configure(config):
    config.addinivalue_line("markers", "run_last: runs after every other test (it kills and "
                            "restarts the shared infrastructure, e.g. test_faults.py)")


def pytest_collection_modifyitems(config, items):
    """Tests marked run_last go to the end, in their order (the sort is stable)."""
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)


@pytest.fixture(scope="session")
def stack():
    return Stack()


@pytest.fixture(scope="session")
def brokers():
    return env("EVENTSHOP_KAFKA_BROKERS")


@pytest.fixture(scope="session")
def api_url():
    return env("EVENTSHOP_API_URL")


@pytest.fixture(scope="session")
def registry():
    return SchemaRegistryClient({"url": env("EVENTSHOP_REGISTRY_URL")})


def mint_token(role, sub, vendor=None, ttl=None):
    cmd = [os.path.join(env("ES_BUILD"), "api", "eventshop-token"), "--role", role, "--sub", sub]
    if vendor:
        cmd += ["--vendor", vendor]
    if ttl is not None:
        cmd += ["--ttl", str(ttl)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="session")
def token():
    return mint_token


def unique(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def uid():
    return unique


@pytest.fixture(scope="session")
def db():
    """A root connection over the private instance's socket, for checking read models."""

    def connect(context="catalog"):
        return pymysql.connect(unix_socket=env("EVENTSHOP_MYSQL_ROOT_SOCKET"), user="root",
                               database=f"eventshop_{context}", autocommit=True,
                               cursorclass=pymysql.cursors.DictCursor)

    return connect


def producer(brokers, **extra):
    # murmur2_random: the Java-compatible partitioner every eventshop producer uses (DESIGN.md §2)
    conf = {"bootstrap.servers": brokers, "partitioner": "murmur2_random", "enable.idempotence": True}
    conf.update(extra)
    return Producer(conf)


def produce_all(p, topic, records, flush_s=120, what="records"):
    """Produces every (key, value) of records (any iterable) on topic through producer p, waiting
    while its queue is full, then flushes: SystemExit when not all were delivered in flush_s."""
    for i, (key, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(flush_s):
        raise SystemExit(f"bench: {what} not all delivered")


def command_serializer(registry, full_name, topic="catalog.commands"):
    """An AvroSerializer for one of our command types, using the schema the engine registered
    under the TopicRecordNameStrategy subject (no auto-registration)."""
    subject = f"{topic}-{full_name}"
    schema = registry.get_latest_version(subject).schema
    return AvroSerializer(registry, schema.schema_str,
                          conf={"auto.register.schemas": False, "use.latest.version": True,
                                "subject.name.strategy": lambda ctx, name: subject})


def plain(v):
    """The deserializer gives uuid.UUID for logicalType uuid; tests compare strings."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return str(v) if isinstance(v, uuid.UUID) else v


def read_topic(brokers, registry, topic, timeout=30, decode=True):
    """Every committed message of topic (all partitions, read_committed), decoded with
    confluent-kafka's AvroDeserializer through our registry: list of dicts with partition,
    offset, key, value, headers."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("reader"),
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10).topics[topic]
    parts = sorted(md.partitions)
    ends = {}
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = (lo, hi)
    todo = {p for p in parts if ends[p][1] > ends[p][0]}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    deser = AvroDeserializer(registry) if decode else None
    out = []
    deadline = time.time() + timeout
    while todo and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                todo.discard(m.partition())
                continue
            raise RuntimeError(str(m.error()))
        v = m.value()
        if decode and v is not None:
            v = plain(deser(v, SerializationContext(topic, MessageField.VALUE)))
        out.append({"partition": m.partition(), "offset": m.offset(),
                    "key": m.key().decode() if m.key() else None, "value": v,
                    "headers": dict(m.headers() or [])})
        if m.offset() + 1 >= ends[m.partition()][1]:
            todo.discard(m.partition())
    c.close()
    if todo:
        raise RuntimeError(f"reading {topic} timed out on partitions {sorted(todo)}")
    return out


def chromium(width, height):
    """Debian's headless Chromium through its chromedriver, a window of width x height, the
    browser's console kept for the pages' tests (test_web*.py) to read. The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def screenshot(driver, file):
    """Saves what the browser shows as the test artifact $ES_STATE/artifacts/web/<file>."""
    out = os.path.join(env("ES_STATE"), "artifacts", "web")
    os.makedirs(out, exist_ok=True)
    driver.save_screenshot(os.path.join(out, file))


def browser_checked(driver, name):
    """A page test's browser (a generator for its fixture to `yield from`): after the test, a
    screenshot of how it was left, $ES_STATE/artifacts/web/<name>.png, and the check that the
    page logged no error on the browser's console (no script error, no resource or inline code
    the Content-Security-Policy refused)."""
    driver.get_log("browser")  # what earlier tests left
    yield driver
    screenshot(driver, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".png")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def browser_wait(driver, what, pred, timeout=30):
    """pred(driver), polled in the browser until it is true (its value) or timeout s pass. A
    stale element means the page re-rendered the part pred was reading (the console replaces a
    table's rows or a cell's content on each refresh): pred reads again at the next poll."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(pred, message=what)


def admin_credentials():
    """The e-mail and password of the admin `stack.sh up` bootstrapped."""
    with open(os.path.join(env("ES_STATE"), "secrets", "admin.password")) as f:
        password = f.read().strip("\r\n")
    return os.environ.get("EVENTSHOP_ADMIN_EMAIL", "admin@eventshop.local"), password


def needs(kind, names):
    """Skips the test when the stack runs without one of names in $kind (ES_CONTEXTS,
    ES_SUBSCRIBERS)."""
    missing = [n for n in names if n not in os.environ.get(kind, "").split()]
    if missing:
        pytest.skip(f"the stack runs without {kind} {missing}")


def wait_for(pred, timeout=60, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def command_meta(actor, role, vendor=None, aggregate_id="", command_id=None, expected=None):
    return {"command_id": command_id or str(uuid.uuid4()), "correlation_id": unique("corr"),
            "aggregate_id": aggregate_id, "issued_at": int(time.time() * 1000), "actor": actor,
            "actor_role": role, "actor_vendor": vendor, "expected_version": expected}


def api_json(resp):
    try:
        return resp.json()
    except ValueError:
        return {"_raw": resp.text}


__all__ = ["producer", "command_serializer", "read_topic", "wait_for", "command_meta", "unique",
           "mint_token", "api_json", "requests", "json"]
