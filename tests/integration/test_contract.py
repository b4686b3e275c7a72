"""The API contract, api/openapi.yaml: it lints clean (redocly, pinned, scripts/setup-api-tools.sh),
the API serves exactly that file at /openapi.yaml, and schemathesis (4.x, pinned, in its own venv
.cache/st4-venv) runs every one of its checks against the live API and finds nothing: no 5xx, no
response outside the contract, no schema-valid request refused and no schema-violating one
accepted (the schemas are exactly as strict as the API), no ignored auth, no missing 405; its
stateful phase follows the contract's OpenAPI links (command -> its outcome, created resource ->
its reads and commands) and must have run scenarios.

Bounded and deterministic: a fixed number of examples per operation, schemathesis' deterministic
generation, every phase (examples, coverage, fuzzing, stateful). Read-your-writes positions are
not generated: a random position is never reached (504 after 5 s), so each query gets a real
position of its context as X-Min-Position, made by one command per context before the run.
POST /v1/auth/token gets only a few examples: its failed logins spend the per-address budget that
the users tests need. tests/integration/contract_hooks.py drops the generated bodies that break
the two rules no JSON Schema can say (see there)."""
import os
import re
import subprocess

from conftest import TOP, api_json, requests, unique

SPEC = os.path.join(TOP, "api", "openapi.yaml")
REDOCLY = os.path.join(TOP, ".cache", "npm", "node_modules", ".bin", "redocly")
SCHEMATHESIS = os.path.join(TOP, ".cache", "st4-venv", "bin", "schemathesis")
HOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contract_hooks.py")
EXAMPLES = 20  # per operation and phase (coverage makes its own, every case the schema defines)
SCENARIOS = 100  # stateful scenarios, each up to 6 linked calls
# Routes landed while the contract was written (the orders context, being built beside it): to
# be described in api/openapi.yaml by their author, then removed from here. Keep this empty.
NOT_YET_DESCRIBED = set()
# which read-model queries belong to which context (for their X-Min-Position)
QUERY_NAMES = {
    "catalog": "^GET /v1/products/",
    "inventory": "^GET /v1/inventory/",
    "pricing": "^GET /v1/prices/",
    "users": "^GET /v1/users/",
    "orders": "^GET /v1/orders/",
}
# the query names whose {id} is given a real id (positions' key for it)
ID_OF = {"users": "user_id", "orders": "order_id"}


def test_spec_lints_clean():
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true")
    r = subprocess.run([REDOCLY, "lint", "--config", os.path.join(TOP, "api", "redocly.yaml"),
                        "--format", "stylish", SPEC], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_spec_has_every_route_with_its_roles():
    """Every route of api/api_routes.c is an operation of the spec whose x-roles are the route's
    roles, and the spec has no operation the API lacks."""
    import re

    import yaml

    bits = {"API_PUBLIC": {"public"}, "API_ADMIN": {"admin"}, "API_VENDOR": {"vendor"},
            "API_CUSTOMER": {"customer"}, "API_AUTHENTICATED": {"admin", "vendor", "customer"},
            "API_TICKET": set()}  # a stream ticket instead of a token: no role of its own
    with open(os.path.join(TOP, "api", "api_routes.c")) as f:
        routes = {}
        for m in re.finditer(r'\{"([A-Z]+)", "([^"]+)", \w+, ([A-Z_ |]+)\}', f.read()):
            routes[(m[1], m[2])] = set().union(*(bits[b.strip()] for b in m[3].split("|")))
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    ops = {(method.upper(), path): set(op.get("x-roles", []))
           for path, item in spec["paths"].items() for method, op in item.items()
           if method in ("get", "put", "post", "patch", "delete")}
    assert len(routes) > 20
    for key in NOT_YET_DESCRIBED:
        routes.pop(key, None)
    assert sorted(set(routes) - set(ops)) == [], "routes missing from api/openapi.yaml"
    assert sorted(set(ops) - set(routes)) == [], "operations the API does not have"
    assert {k: v for k, v in ops.items() if v != routes[k]} == {}, "x-roles differ from the routes"


def test_api_serves_the_spec(api_url):
    r = requests.get(f"{api_url}/openapi.yaml", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/yaml")
    with open(SPEC, "rb") as f:
        assert r.content == f.read(), "the API serves another openapi.yaml than api/openapi.yaml"


def command(api_url, method, path, tok, body=None):
    """One command with Prefer: wait; the accepted outcome's position."""
    headers = {"Prefer": "wait=20"}
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    r = requests.request(method, f"{api_url}{path}", json=body, headers=headers, timeout=30)
    assert r.status_code in (200, 201), (method, path, r.status_code, api_json(r))
    pos = r.json()["position"]
    assert pos, (method, path, r.json())
    return pos


def positions(api_url, admin, customer):
    sku = unique("contract").upper()
    out = {
        "catalog": command(api_url, "POST", "/v1/products", admin,
                           {"sku": sku, "vendor_id": "contract-vendor", "name": "contract probe",
                            "category": "probe", "currency": "EUR"}),
        "inventory": command(api_url, "POST", f"/v1/inventory/{sku}/receipts", admin,
                             {"quantity": 5}),
        "pricing": command(api_url, "PUT", f"/v1/prices/{sku}", admin,
                           {"amount_minor": 1000, "currency": "EUR"}),
    }
    r = requests.post(f"{api_url}/v1/users", headers={"Prefer": "wait=20"}, timeout=30,
                      json={"email": f"{unique('contract')}@example.org", "password": "contract-pw-1",
                            "name": "Contract Probe", "role": "customer"})
    assert r.status_code == 201, api_json(r)
    out["users"] = r.json()["position"]
    out["user_id"] = r.json()["user_id"]
    r = requests.post(f"{api_url}/v1/orders", timeout=30,
                      headers={"Prefer": "wait=20", "Authorization": f"Bearer {customer}"},
                      json={"lines": [{"sku": sku, "quantity": 1}],
                            "shipping_address": {"name": "Contract Probe", "line1": "1 Probe St",
                                                 "city": "Lyon", "postal_code": "69001",
                                                 "country": "FR"}})
    assert r.status_code == 201, api_json(r)
    out["orders"] = r.json()["position"]
    out["order_id"] = r.json()["order_id"]
    return out


# Answers that say what the state of an aggregate refuses, not that the request is malformed:
# beside schemathesis' defaults (401, 403, 404, 409, 429), 410 (a forgotten user) and 412 (an
# If-Match version the aggregate is not at) answer schema-valid requests too; and 413, a body
# over 64 KiB, which no JSON Schema can bound (50 attributes of 500 characters can pass it).
POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "410", "412", "413", "429", "5xx"]


def config_toml(pos, customer, vendor):
    lines = [
        "[generation]",
        f"max-examples = {EXAMPLES}",
        "deterministic = true",
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {POSITIVE_OK!r}".replace("'", '"'),
        "[phases.stateful]",
        "max-steps = 6",
        "inference = { algorithms = [] }",  # the links are ours (api/openapi.yaml)
        "[phases.stateful.generation]",
        f"max-examples = {SCENARIOS}",
    ]
    # Each query waits for a real position of its context, given as X-Min-Position (which wins
    # over min_position: the generated min_position is then checked, 400 when malformed, and
    # ignored).
    for ctx, regex in QUERY_NAMES.items():
        lines += [
            "[[operations]]",  # (several include-* of one entry would be or-ed)
            f'include-name-regex = "{regex}"',
            f'parameters = {{ "header.X-Min-Position" = "{pos[ctx]}"'
            # GET /v1/users/{id}, /v1/orders/{id}: one that exists, so its 200 is checked too
            + (f', "path.id" = "{pos[ID_OF[ctx]]}"' if ctx in ID_OF else "") + " }",
        ]
    lines += [
        "[[operations]]",
        'include-name = "GET /v1/orders"',
        f'parameters = {{ "header.X-Min-Position" = "{pos["orders"]}" }}',
        "[[operations]]",
        'include-name = "GET /v1/products"',
        f'parameters = {{ "header.X-Min-Position" = "{pos["catalog"]}" }}',
        "[[operations]]",
        'include-name = "GET /v1/vendors"',
        f'parameters = {{ "header.X-Min-Position" = "{pos["users"]}" }}',
        # a query ignores query parameters it does not know (as HTTP APIs do), which no
        # OpenAPI document can declare: schemathesis must not send them as invalid input
        "[[operations]]",
        'include-method = "GET"',
        "generation = { allow-extra-parameters = false }",
        "[[operations]]",  # only customers place orders: fuzz it as one
        'include-name = "POST /v1/orders"',
        f'headers = {{ Authorization = "Bearer {customer}" }}',
        # a vendor lists for itself (vendor_id optional, as the schema says); an admin must name
        # the vendor, which no schema of one body for both roles can say
        "[[operations]]",
        'include-name = "POST /v1/products"',
        f'headers = {{ Authorization = "Bearer {vendor}" }}',
        # the creating commands wait for their outcome (Prefer takes any value, so there is
        # nothing to fuzz in it): a 201 feeds the links to what they created
        "[[operations]]",
        'include-name-regex = "^POST /v1/(products|users|orders|prices/[^/]+/rules|inventory/[^/]+/reservations)$"',
        'parameters = { "header.Prefer" = "wait=10" }',
        # the operator's actions act on the stack's own projections: fuzz their bodies against a
        # projection and a dead letter that do not exist (404), never a real name a response
        # showed (a pause would stop the stack's projector for every later test)
        "[[operations]]",
        'include-name-regex = "^POST /v1/admin/projections/"',
        'parameters = { "path.name" = "no_such_pj" }',
        "[[operations]]",
        'include-name-regex = "^POST /v1/admin/dead-letters/"',
        'parameters = { "path.id" = "no_such_pj:0:0" }',
        # a stream runs until its token expires: here it starts now and ends once caught up (the
        # catch-up from older positions is tests/integration/test_stream.py's)
        "[[operations]]",
        'include-name = "GET /v1/stream"',
        'parameters = { "query.from" = "now", "query.until" = "now" }',
        "[[operations]]",
        'include-name = "POST /v1/auth/token"',
        "generation = { max-examples = 3 }",
        "phases = { coverage = { enabled = false } }",
    ]
    return "\n".join(lines) + "\n"


def test_schemathesis_with_every_check_and_its_stateful_phase_finds_nothing(api_url, token,
                                                                           tmp_path):
    admin = token("admin", unique("contract-admin"))
    customer = token("customer", unique("contract-customer"))
    vendor = token("vendor", unique("contract-vendor"), "contract-vendor")
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(config_toml(positions(api_url, admin, customer), customer, vendor))
    cmd = [SCHEMATHESIS, "--config-file", str(cfg), "--no-color", "run", SPEC, "--url", api_url,
           "--header", f"Authorization: Bearer {admin}", "--checks", "all",
           "--continue-on-failure", "--request-timeout", "20"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false",
                                SCHEMATHESIS_HOOKS=HOOKS))
    out = r.stdout + r.stderr
    print(out[-6000:])
    # any failure (a check that found something) or error makes the exit code non-zero; the
    # warnings it may print are hints (e.g. many 404 for generated skus), not findings
    assert r.returncode == 0, out[-15000:]
    assert "Failures:" not in out and "Errors:" not in out, out[-15000:]
    # the stateful phase ran scenarios along our links, not "No tests were run"
    scenarios = re.search(r"Scenarios:\s+(\d+)", out)
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", out)
    assert scenarios and int(scenarios[1]) > 0, out[-6000:]
    # every link is selected; how many a run follows depends on what the generated data hits
    # (0 to 9 of 59 seen), so only their selection is asserted
    assert links and int(links[2]) >= 50, out[-6000:]
    assert "✅ Stateful" in out, out[-6000:]


def test_a_path_quoted_in_a_problem_is_made_utf8(api_url, token):
    """Found by schemathesis: a 404 detail quoting "%.64s" of a long multibyte sku cut a character
    in two, jansson refused the string and the API crashed on the NULL body."""
    admin = token("admin", unique("contract-admin"))
    long_sku = "पन्ह" * 10  # 120 bytes: "%.64s" cuts the 22nd character
    for method, path in [("GET", f"/v1/products/{long_sku}"),
                         ("DELETE", f"/v1/inventory/{long_sku}/reservations/o-1"),
                         ("DELETE", "/v1/inventory/ok/reservations/%FF%FE"),
                         ("GET", "/v1/prices/%C3")]:
        r = requests.request(method, f"{api_url}{path}", timeout=10,
                             headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["status"] == 404
    assert requests.get(f"{api_url}/healthz", timeout=10).status_code == 200
