"""Observability as an operator sees it, against the running stack:

- a real Prometheus (Debian's package) scrapes every role that `stack.sh endpoints` lists, loads
  deploy/monitoring/rules.yml, and gives back a metric of each role through its HTTP API;
- one request's W3C trace id is followed through the JSON log lines of the API, the handler and
  the projector ($ES_STATE/logs/<role>.log);
- with EVENTSHOP_ZIPKIN_URL set, the roles export Zipkin v2 spans whose parent ids chain the API
  request span -> the handler's decide span -> the projector's apply span;
- no log line of any role contains a secret from $ES_STATE/secrets.
"""
import base64
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import TOP, env, mint_token, unique, wait_for

STACK = os.path.join(TOP, "scripts", "stack.sh")
WAIT = {"Prefer": "wait=20"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running_roles():
    out = subprocess.run([STACK, "status"], check=True, capture_output=True, text=True).stdout
    return {ln.split()[0] for ln in out.splitlines() if ln.split()[1:2] == ["running"]}


def metrics_targets():
    """role -> host:port of its /metrics, from `stack.sh endpoints` (what `make up` prints), for
    the roles that are running."""
    out = subprocess.run([STACK, "endpoints"], check=True, capture_output=True, text=True).stdout
    names = {"API": "api", "schema registry": "registry"}
    targets = {}
    for ln in out.splitlines():
        m = re.match(r"^\s+(\S+(?: registry)?)\s+.*?http://(127\.0\.0\.1:\d+)/metrics", ln)
        if m:
            targets[names.get(m.group(1), m.group(1))] = m.group(2)
    up = running_roles()
    return {r: t for r, t in targets.items() if r in up}


def contexts():
    return env("ES_CONTEXTS", "catalog").split()


def product(sku):
    return {"sku": sku, "name": "Mug", "category": "kitchen", "attributes": {"color": "red"},
            "currency": "EUR"}


def traced_post(api_url):
    """Lists a product with a client traceparent; (trace id, client span id, command id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    tok = mint_token("vendor", unique("u"), unique("v"))
    r = requests.post(f"{api_url}/v1/products", json=product(unique("SKU")), timeout=30,
                      headers={"Authorization": f"Bearer {tok}",
                               "traceparent": f"00-{trace_id}-{span_id}-01", **WAIT})
    assert r.status_code == 201, r.text
    return trace_id, span_id, r.json()["command_id"]


def log_lines(role):
    path = os.path.join(env("ES_STATE"), "logs", f"{role}.log")
    with open(path, errors="replace") as f:
        return f.readlines()


def json_lines_with(role, trace_id):
    out = []
    for ln in log_lines(role):
        if trace_id in ln:
            out.append(json.loads(ln))  # a line about the trace must be one JSON object
    return out


# ------------------------------------------------------------------------- Prometheus


# one metric each role always exports once it is up (and that the alert rules build on)
ROLE_METRIC = [("registry", "eventshop_registry_schemas"), ("api", "eventshop_http_requests_total"),
               ("handler-", "eventshop_txn_commits_total"),
               ("projector-", "eventshop_projector_events_total")]


@pytest.fixture(scope="module")
def prometheus():
    exe = shutil.which("prometheus")
    assert exe, "prometheus is not installed: run scripts/setup.sh"
    targets = metrics_targets()
    d = tempfile.mkdtemp(prefix="es-prom-")
    port = free_port()
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [os.path.join(TOP, "deploy", "monitoring", "rules.yml")],
           "scrape_configs": [{"job_name": "eventshop", "scrape_timeout": "1s",
                               "static_configs": [{"targets": [t], "labels": {"role": r}}
                                                  for r, t in sorted(targets.items())]}]}
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    log = open(os.path.join(d, "prometheus.log"), "w")
    p = subprocess.Popen([exe, f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                         stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: p.poll() is not None or _ok(f"{url}/-/ready"), timeout=30,
                 what="prometheus ready")
        assert p.poll() is None, open(os.path.join(d, "prometheus.log")).read()[-2000:]
        yield url, targets
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def _ok(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def query(url, q):
    r = requests.get(f"{url}/api/v1/query", params={"query": q}, timeout=5)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_every_role(prometheus, api_url):
    url, targets = prometheus
    traced_post(api_url)  # so that the per-command series exist
    roles = set(targets)
    # every role of the stack is a target: registry, API, a handler and a projector per context
    expected = {"registry", "api"} | {f"{k}-{c}" for c in contexts() for k in ("handler", "projector")}
    assert expected <= roles, f"not scraped: {expected - roles}"

    def all_up():
        active = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        health = {t["labels"]["role"]: (t["health"], t.get("lastError")) for t in active}
        return health if all(h == "up" for h, _ in health.values()) and set(health) == roles \
            else False
    wait_for(all_up, timeout=30, interval=0.5, what="every target up")

    for role in sorted(roles):
        name = next((m for prefix, m in ROLE_METRIC if role.startswith(prefix)), None)
        q = f'{name}{{role="{role}"}}' if name else \
            f'count({{role="{role}",__name__=~"eventshop_.+"}})'
        res = wait_for(lambda: query(url, q), timeout=10, what=f"{q} through prometheus")
        assert all(float(s["value"][1]) >= 0 for s in res), res

    # the metrics the alert rules use exist under those names
    for q in ["eventshop_projector_lag", "eventshop_http_request_duration_seconds_bucket",
              "eventshop_txn_aborts_total", "eventshop_projector_dead_letters_total",
              "eventshop_commands_total"]:
        wait_for(lambda: query(url, q), timeout=10, what=f"a series {q}")
    lag = query(url, "max by (projection, partition) (eventshop_projector_lag)")
    assert {s["metric"]["partition"] for s in lag} == {str(p) for p in range(
        int(env("EVENTSHOP_PARTITIONS", "4")))}, lag

    # rules.yml loads and evaluates
    groups = wait_for(lambda: requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"],
                      timeout=10, what="rules loaded")
    rules = [r for g in groups for r in g["rules"]]
    assert rules and all(r.get("health") in ("ok", "unknown") for r in rules), rules


# ------------------------------------------------------------------------- logs and traces


def test_a_trace_id_goes_from_the_api_log_through_handler_and_projector(api_url):
    trace_id, _, command_id = traced_post(api_url)

    def found():
        api = json_lines_with("api", trace_id)
        handler = json_lines_with("handler-catalog", trace_id)
        projector = json_lines_with("projector-catalog", trace_id)
        return (api, handler, projector) if api and handler and projector else None
    api, handler, projector = wait_for(found, timeout=20, what="log lines of the trace in every role")
    assert any(ln.get("command_id") == command_id for ln in api), api
    assert any(ln.get("command_id") == command_id and ln.get("status") == "accepted"
               for ln in handler), handler
    assert all(ln["trace_id"] == trace_id and ln["role"] and ln["level"]
               for ln in api + handler + projector)
    assert any(ln.get("event_id") and ln.get("command_id") == command_id for ln in projector), \
        projector
    # subscribers, when the stack runs them, carry the same trace id on their lines
    for role in running_roles():
        if role.startswith("subscriber-"):
            for ln in json_lines_with(role, trace_id):
                assert ln["trace_id"] == trace_id


def test_an_order_trace_reaches_the_saga_subscriber(api_url, token):
    """The trace of POST /v1/orders goes API -> orders handler -> OrderPlaced -> the order
    saga's log line (and on to the commands the saga sends)."""
    if "order-saga" not in os.environ.get("ES_SUBSCRIBERS", "").split():
        pytest.skip("the stack runs without the order saga")
    from test_orders import ADDRESS, auth, customer, sku_on_sale
    sku, _ = sku_on_sale(api_url, token, stock=5)
    _, tok = customer(token)
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    r = requests.post(f"{api_url}/v1/orders", timeout=60,
                      headers=auth(tok, traceparent=f"00-{trace_id}-{span_id}-01", **WAIT),
                      json={"lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS})
    assert r.status_code in (200, 201, 202), r.text
    saga = wait_for(lambda: json_lines_with("subscriber-order-saga", trace_id), timeout=30,
                    what="the saga's log line of the order's trace")
    assert any(ln.get("event_type", "").endswith("OrderPlaced") for ln in saga), saga
    assert json_lines_with("api", trace_id) and json_lines_with("handler-orders", trace_id)


def test_no_secret_in_any_log():
    sdir = os.path.join(env("ES_STATE"), "secrets")
    needles = []
    for name in os.listdir(sdir):
        if "public" in name:
            continue
        raw = open(os.path.join(sdir, name), "rb").read()
        text = raw.decode("utf-8", "replace")
        if "-----BEGIN" in text:  # key material: every full base64 line of the body
            needles += [ln.strip() for ln in text.splitlines()
                        if ln.strip() and not ln.startswith("-----") and len(ln.strip()) >= 16]
        elif len(text.strip()) >= 8:
            needles.append(text.strip())
            needles.append(base64.b64encode(raw.strip()).decode())
    assert needles
    logs = os.path.join(env("ES_STATE"), "logs")
    for f in os.listdir(logs):
        if not f.endswith(".log"):
            continue
        with open(os.path.join(logs, f), errors="replace") as fh:
            content = fh.read()
        for n in needles:
            assert n not in content, f"a secret appears in {f}"


# ------------------------------------------------------------------------- zipkin


class Collector(http.server.BaseHTTPRequestHandler):
    spans = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.path == "/api/v2/spans" and \
            self.headers.get("Content-Type", "").startswith("application/json")
        if ok:
            with Collector.lock:
                Collector.spans.extend(json.loads(body))
        self.send_response(202 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ZIPKIN_ROLES = ["api", "handler-catalog", "projector-catalog"]


def restart(roles, zipkin_url):
    if zipkin_url:
        os.environ["EVENTSHOP_ZIPKIN_URL"] = zipkin_url
    else:
        os.environ.pop("EVENTSHOP_ZIPKIN_URL", None)
    def each(*args):  # in parallel: a handler's clean stop alone takes seconds
        procs = [subprocess.Popen([STACK, args[0], r, *args[1:]]) for r in roles]
        assert all(p.wait(timeout=90) == 0 for p in procs), f"stack.sh {args[0]} failed"
    each("role-stop")
    for r in roles:
        subprocess.run([STACK, "role-start", r], check=True, timeout=60)
    each("role-wait", "60")


def test_spans_are_exported_to_zipkin_with_parents_across_roles(api_url):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Collector.spans = []
    try:
        restart(ZIPKIN_ROLES, f"http://127.0.0.1:{srv.server_address[1]}")
        trace_id, client_span, command_id = traced_post(api_url)

        def spans():
            with Collector.lock:
                mine = [s for s in Collector.spans if s["traceId"] == trace_id]
            kinds = {s["localEndpoint"]["serviceName"] for s in mine}
            return mine if {"eventshop-api", "handler", "projector"} <= kinds else None
        mine = wait_for(spans, timeout=20, what="spans of the trace from api, handler, projector")
        by = {s["localEndpoint"]["serviceName"]: s for s in mine}
        api, handler, projector = by["eventshop-api"], by["handler"], by["projector"]
        assert api["parentId"] == client_span and api["kind"] == "SERVER"
        assert handler["parentId"] == api["id"] and handler["tags"]["command_id"] == command_id
        assert projector["parentId"] == handler["id"]
        for s in (api, handler, projector):
            assert re.fullmatch(r"[0-9a-f]{16}", s["id"]) and s["duration"] > 0
            assert s["timestamp"] > (time.time() - 120) * 1e6
    finally:
        restart(ZIPKIN_ROLES, None)
        srv.shutdown()


# ------------------------------------------------------------------------- schema Job contract


def test_check_schemas_registers_and_refuses_an_incompatible_change(tmp_path):
    """deploy/base/schema-job.yaml runs `eventshop-handler <ctx> --check-schemas`."""
    exe = os.path.join(env("ES_BUILD"), "command-handlers", "eventshop-handler")
    ok = subprocess.run([exe, "catalog", "--check-schemas"], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # BACKWARD-incompatible: a new field without a default
    schemas = tmp_path / "schemas"
    shutil.copytree(env("EVENTSHOP_SCHEMA_DIR"), schemas)
    f = schemas / "catalog" / "events" / "ProductDelisted.avsc"
    doc = json.loads(f.read_text())
    doc["fields"].append({"name": f"required_{secrets.token_hex(4)}", "type": "string"})
    f.write_text(json.dumps(doc))
    bad = subprocess.run([exe, "catalog", "--check-schemas"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "EVENTSHOP_SCHEMA_DIR": str(schemas)})
    # 3, not 1: the schema Job's podFailurePolicy fails at once on a rejection, retries the rest
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "catalog.events-eventshop.catalog.ProductDelisted" in bad.stdout + bad.stderr, bad.stdout
    assert "incompatible" in bad.stdout + bad.stderr
