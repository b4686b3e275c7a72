"""The authorization matrix: every route of api/api_routes.c x actor x ownership, with the status
each cell must get, against the live API (ES_CONTEXTS must hold catalog, inventory, pricing and
users).

Actors: anon (no token), customer (a registered customer, logged in for real), customer2 (another
registered customer, only used to forget itself), vendor_own (the vendor owning the fixture sku),
vendor_other (another vendor), admin. A vendor's rights over a sku come from the catalog (the
product's vendor_id), so "own" and "other" are the same route with a different token.

Fixtures are made once for the module through the real API. Rows that change state (delisting,
forgetting, releasing...) work on a resource of their own, so the order of rows matters only
where a row says so. Every command is sent with Prefer: wait=10 so that the outcome is decided,
not 202. A failing row prints what it sent and what came back."""
import os
import uuid

import pytest
import requests

from conftest import env, mint_token, unique

NEEDED = {"catalog", "inventory", "pricing", "users"}
SERVED = set(os.environ.get("ES_CONTEXTS", "").split())
pytestmark = pytest.mark.skipif(not NEEDED <= SERVED,
                                reason="the stack does not run every context the matrix covers")
# the context behind a path's first segment; None: served whatever ES_CONTEXTS says
CONTEXT_OF = {"products": "catalog", "users": "users", "vendors": "users", "auth": "users",
              "prices": "pricing", "inventory": "inventory", "orders": "orders",
              "payments": "payments", "shipments": "shipping"}


def context_of(path):
    parts = path.strip("/").split("/")
    return CONTEXT_OF.get(parts[1]) if parts[0] == "v1" and len(parts) > 1 else None


def served(path):
    ctx = context_of(path)
    return ctx is None or ctx in SERVED

WAIT = {"Prefer": "wait=10"}
PASSWORD = "matrix password 123"

# ---------------------------------------------------------------- the table
# (method, path, actor, expected status, body); {name} in a path or a body string is filled from
# the module's world; {new} is a fresh unique token per row. A body of None sends no body.

PRODUCT = {"sku": "{new_sku}", "vendor_id": "{V1}", "name": "Mug", "category": "kitchen",
           "currency": "EUR"}
PATCH = {"name": "Big mug"}
PRICE = {"amount_minor": 1299, "currency": "EUR"}
RULE = {"rule_id": "r-{new}", "kind": "percent_off", "basis_points": 500}
RECEIPT = {"quantity": 5}
ADJUST = {"delta": -1, "reason": "damage"}
RESERVE = {"order_id": "o-{new}", "quantity": 1}
REGISTER = {"email": "m-{new}@example.test", "password": PASSWORD, "name": "Matrix",
            "role": "customer"}
ROLE = {"role": "customer"}
OPS_REASON = {"reason": "authorization matrix"}
LOGIN = {"email": "{cust_email}", "password": PASSWORD}
ORDER = {"lines": [{"sku": "{nosku}", "quantity": 1}],
         "shipping_address": {"name": "M", "line1": "1 St", "city": "C", "postal_code": "1",
                              "country": "FR"}}

MATRIX = [
    # -- catalog: products
    ("POST", "/v1/products", "anon", 401, PRODUCT),
    ("POST", "/v1/products", "customer", 403, PRODUCT),
    ("POST", "/v1/products", "vendor_own", 201, PRODUCT),
    ("POST", "/v1/products", "vendor_other", 403, PRODUCT),  # lists for V1 with V2's token
    ("POST", "/v1/products", "admin", 201, PRODUCT),
    ("PATCH", "/v1/products/{sku}", "anon", 401, PATCH),
    ("PATCH", "/v1/products/{sku}", "customer", 403, PATCH),
    ("PATCH", "/v1/products/{sku}", "vendor_own", 200, PATCH),
    ("PATCH", "/v1/products/{sku}", "vendor_other", 403, PATCH),
    ("PATCH", "/v1/products/{sku}", "admin", 200, PATCH),
    ("PATCH", "/v1/products/{nosku}", "vendor_own", 404, PATCH),
    ("PATCH", "/v1/products/{nosku}", "admin", 404, PATCH),
    ("DELETE", "/v1/products/{del_sku_own}", "anon", 401, None),
    ("DELETE", "/v1/products/{del_sku_own}", "customer", 403, None),
    ("DELETE", "/v1/products/{del_sku_own}", "vendor_other", 403, None),
    ("DELETE", "/v1/products/{del_sku_own}", "vendor_own", 200, None),
    ("DELETE", "/v1/products/{del_sku_admin}", "admin", 200, None),
    ("DELETE", "/v1/products/{nosku}", "admin", 404, None),
    ("GET", "/v1/products/{sku}", "anon", 200, None),
    ("GET", "/v1/products/{sku}", "customer", 200, None),
    ("GET", "/v1/products/{sku}", "vendor_other", 200, None),
    ("GET", "/v1/products/{nosku}", "anon", 404, None),
    ("GET", "/v1/products", "anon", 200, None),
    ("GET", "/v1/products", "vendor_other", 200, None),
    # -- users
    ("POST", "/v1/users", "anon", 201, REGISTER),
    ("POST", "/v1/users", "customer", 201, REGISTER),
    ("GET", "/v1/users/{cust}", "anon", 401, None),
    ("GET", "/v1/users/{cust}", "customer", 200, None),  # its own data
    ("GET", "/v1/users/{cust3}", "customer", 403, None),  # another customer's data
    ("GET", "/v1/users/{nouser}", "customer", 403, None),  # unknown: no existence oracle
    ("GET", "/v1/users/{cust}", "vendor_own", 403, None),
    ("GET", "/v1/users/{cust}", "admin", 200, None),
    ("GET", "/v1/users/{nouser}", "admin", 404, None),
    ("PUT", "/v1/users/{cust3}/role", "anon", 401, ROLE),
    ("PUT", "/v1/users/{cust}/role", "customer", 403, ROLE),  # not even its own
    ("PUT", "/v1/users/{cust3}/role", "vendor_own", 403, ROLE),
    ("PUT", "/v1/users/{cust3}/role", "admin", 200, ROLE),
    ("PUT", "/v1/users/{nouser}/role", "admin", 404, ROLE),
    ("GET", "/v1/vendors", "anon", 401, None),
    ("GET", "/v1/vendors", "customer", 403, None),
    ("GET", "/v1/vendors", "vendor_own", 403, None),
    ("GET", "/v1/vendors?status=pending", "admin", 200, None),
    ("GET", "/v1/vendors?status=nonsense", "admin", 400, None),
    ("POST", "/v1/vendors/{pending}/approval", "anon", 401, None),
    ("POST", "/v1/vendors/{pending}/approval", "customer", 403, None),
    ("POST", "/v1/vendors/{pending}/approval", "vendor_own", 403, None),
    ("POST", "/v1/vendors/{pending}/approval", "vendor_other", 403, None),
    ("POST", "/v1/vendors/{pending}/approval", "admin", 200, None),
    ("POST", "/v1/vendors/{cust3}/approval", "admin", 409, None),  # not a vendor
    ("POST", "/v1/vendors/{nouser}/approval", "admin", 404, None),
    # -- the users open call: the notifications service's credential only, never a token
    ("POST", "/internal/users/{nouser}/contact", "anon", 401, None),
    ("POST", "/internal/users/{nouser}/contact", "customer", 401, None),
    ("POST", "/internal/users/{nouser}/contact", "admin", 401, None),
    ("POST", "/v1/auth/token", "anon", 200, LOGIN),
    ("POST", "/v1/auth/token", "vendor_other", 200, LOGIN),
    ("DELETE", "/v1/users/{cust3}", "anon", 401, None),
    ("DELETE", "/v1/users/{cust3}", "customer", 403, None),  # another customer
    ("DELETE", "/v1/users/{cust3}", "vendor_own", 403, None),
    ("DELETE", "/v1/users/{cust2}", "customer2", 200, None),  # itself
    ("DELETE", "/v1/users/{cust3}", "admin", 200, None),
    ("GET", "/v1/users/{cust3}", "admin", 410, None),  # after the row above
    # -- pricing
    ("PUT", "/v1/prices/{sku}", "anon", 401, PRICE),
    ("PUT", "/v1/prices/{sku}", "customer", 403, PRICE),
    ("PUT", "/v1/prices/{sku}", "vendor_own", 200, PRICE),
    ("PUT", "/v1/prices/{sku}", "vendor_other", 403, PRICE),
    ("PUT", "/v1/prices/{sku}", "admin", 200, PRICE),
    ("PUT", "/v1/prices/{nosku}", "admin", 404, PRICE),
    ("POST", "/v1/prices/{sku}/rules", "anon", 401, RULE),
    ("POST", "/v1/prices/{sku}/rules", "customer", 403, RULE),
    ("POST", "/v1/prices/{sku}/rules", "vendor_own", 201, RULE),
    ("POST", "/v1/prices/{sku}/rules", "vendor_other", 403, RULE),
    ("POST", "/v1/prices/{sku}/rules", "admin", 201, RULE),
    ("POST", "/v1/prices/{nosku}/rules", "vendor_own", 404, RULE),
    ("DELETE", "/v1/prices/{sku}/rules/{rule_own}", "anon", 401, None),
    ("DELETE", "/v1/prices/{sku}/rules/{rule_own}", "customer", 403, None),
    ("DELETE", "/v1/prices/{sku}/rules/{rule_own}", "vendor_other", 403, None),
    ("DELETE", "/v1/prices/{sku}/rules/{rule_own}", "vendor_own", 200, None),
    ("DELETE", "/v1/prices/{sku}/rules/{rule_admin}", "admin", 200, None),
    ("DELETE", "/v1/prices/{sku}/rules/r-none", "admin", 404, None),
    ("GET", "/v1/prices/{sku}", "anon", 200, None),
    ("GET", "/v1/prices/{sku}", "vendor_other", 200, None),
    ("GET", "/v1/prices/{nosku}", "anon", 404, None),
    ("GET", "/v1/prices/{sku}/history", "anon", 200, None),
    ("GET", "/v1/prices/{sku}/history", "customer", 200, None),
    # -- inventory
    ("POST", "/v1/inventory/{sku}/receipts", "anon", 401, RECEIPT),
    ("POST", "/v1/inventory/{sku}/receipts", "customer", 403, RECEIPT),
    ("POST", "/v1/inventory/{sku}/receipts", "vendor_own", 200, RECEIPT),
    ("POST", "/v1/inventory/{sku}/receipts", "vendor_other", 403, RECEIPT),
    ("POST", "/v1/inventory/{sku}/receipts", "admin", 200, RECEIPT),
    ("POST", "/v1/inventory/{nosku}/receipts", "vendor_own", 404, RECEIPT),
    ("POST", "/v1/inventory/{sku}/adjustments", "anon", 401, ADJUST),
    ("POST", "/v1/inventory/{sku}/adjustments", "customer", 403, ADJUST),
    ("POST", "/v1/inventory/{sku}/adjustments", "vendor_own", 200, ADJUST),
    ("POST", "/v1/inventory/{sku}/adjustments", "vendor_other", 403, ADJUST),
    ("POST", "/v1/inventory/{sku}/adjustments", "admin", 200, ADJUST),
    ("POST", "/v1/inventory/{nosku}/adjustments", "admin", 404, ADJUST),
    ("POST", "/v1/inventory/{sku}/reservations", "anon", 401, RESERVE),
    ("POST", "/v1/inventory/{sku}/reservations", "customer", 403, RESERVE),
    ("POST", "/v1/inventory/{sku}/reservations", "vendor_own", 403, RESERVE),
    ("POST", "/v1/inventory/{sku}/reservations", "vendor_other", 403, RESERVE),
    ("POST", "/v1/inventory/{sku}/reservations", "admin", 201, RESERVE),
    ("DELETE", "/v1/inventory/{sku}/reservations/{order_rel}", "anon", 401, None),
    ("DELETE", "/v1/inventory/{sku}/reservations/{order_rel}", "customer", 403, None),
    ("DELETE", "/v1/inventory/{sku}/reservations/{order_rel}", "vendor_own", 403, None),
    ("DELETE", "/v1/inventory/{sku}/reservations/{order_rel}", "vendor_other", 403, None),
    ("DELETE", "/v1/inventory/{sku}/reservations/{order_rel}", "admin", 200, None),
    ("DELETE", "/v1/inventory/{sku}/reservations/o-none", "admin", 404, None),
    ("POST", "/v1/inventory/{sku}/reservations/{order_com}/commit", "anon", 401, None),
    ("POST", "/v1/inventory/{sku}/reservations/{order_com}/commit", "customer", 403, None),
    ("POST", "/v1/inventory/{sku}/reservations/{order_com}/commit", "vendor_own", 403, None),
    ("POST", "/v1/inventory/{sku}/reservations/{order_com}/commit", "vendor_other", 403, None),
    ("POST", "/v1/inventory/{sku}/reservations/{order_com}/commit", "admin", 200, None),
    ("GET", "/v1/inventory/{sku}/movements", "anon", 401, None),
    ("GET", "/v1/inventory/{sku}/movements", "customer", 403, None),
    ("GET", "/v1/inventory/{sku}/movements", "vendor_own", 200, None),
    ("GET", "/v1/inventory/{sku}/movements", "vendor_other", 403, None),
    ("GET", "/v1/inventory/{sku}/movements", "admin", 200, None),
    ("GET", "/v1/inventory/{nosku}/movements", "admin", 404, None),
    ("GET", "/v1/inventory/{sku}", "anon", 200, None),
    ("GET", "/v1/inventory/{sku}", "vendor_other", 200, None),
    ("GET", "/v1/inventory/{nosku}", "anon", 404, None),
    # -- orders: customers place and cancel their own; an unknown order is 404 for everyone
    ("POST", "/v1/orders", "anon", 401, ORDER),
    ("POST", "/v1/orders", "vendor_own", 403, ORDER),
    ("POST", "/v1/orders", "admin", 403, ORDER),
    ("POST", "/v1/orders", "customer", 404, ORDER),
    ("GET", "/v1/orders", "anon", 401, None),
    ("GET", "/v1/orders", "customer", 200, None),
    ("GET", "/v1/orders", "vendor_own", 200, None),
    ("GET", "/v1/orders", "admin", 200, None),
    ("GET", "/v1/orders/o-none", "anon", 401, None),
    ("GET", "/v1/orders/o-none", "customer", 404, None),
    ("GET", "/v1/orders/o-none", "admin", 404, None),
    ("POST", "/v1/orders/o-none/cancel", "anon", 401, None),
    ("POST", "/v1/orders/o-none/cancel", "vendor_own", 403, None),
    ("POST", "/v1/orders/o-none/cancel", "customer", 404, None),
    ("POST", "/v1/orders/o-none/cancel", "admin", 404, None),
    # -- command outcomes: its sender (vendor_own sent {command}) or an admin; anyone else gets
    # the 404 of an unknown id
    ("GET", "/v1/commands/{command}", "anon", 401, None),
    ("GET", "/v1/commands/{command}", "customer", 404, None),
    ("GET", "/v1/commands/{command}", "vendor_other", 404, None),
    ("GET", "/v1/commands/{command}", "vendor_own", 200, None),
    ("GET", "/v1/commands/{command}", "admin", 200, None),
    ("GET", "/v1/commands/{nouser}", "admin", 404, None),  # an id nobody sent
    # -- an aggregate's history: admins any, a vendor its skus, a customer its account (and its
    # orders); another's is the 404 of an unknown aggregate, a context the role never reads 403
    ("GET", "/v1/history/{catalog}/{sku}", "anon", 401, None),
    ("GET", "/v1/history/{catalog}/{sku}", "customer", 403, None),
    ("GET", "/v1/history/{catalog}/{sku}", "vendor_own", 200, None),
    ("GET", "/v1/history/{catalog}/{sku}", "vendor_other", 404, None),
    ("GET", "/v1/history/{catalog}/{sku}", "admin", 200, None),
    ("GET", "/v1/history/{inventory}/{sku}", "vendor_own", 200, None),
    ("GET", "/v1/history/{inventory}/{sku}", "vendor_other", 404, None),
    ("GET", "/v1/history/{pricing}/{sku}", "vendor_own", 200, None),
    ("GET", "/v1/history/{catalog}/{nosku}", "admin", 404, None),
    ("GET", "/v1/history/{users}/{cust}", "customer", 200, None),
    ("GET", "/v1/history/{users}/{cust}", "vendor_own", 403, None),
    ("GET", "/v1/history/{users}/{cust}", "admin", 200, None),
    ("GET", "/v1/history/{users}/{nouser}", "customer", 404, None),
    ("GET", "/v1/history/{weather}/{sku}", "admin", 404, None),
    # -- the event stream (ending once caught up): its contexts are those the role may read; a
    # stream ticket stands for a token, once
    ("GET", "/v1/stream?from=now&until=now", "anon", 401, None),
    ("GET", "/v1/stream?from=now&until=now&ticket=no-such-ticket", "anon", 401, None),
    ("GET", "/v1/stream?from=now&until=now", "customer", 200, None),
    ("GET", "/v1/stream?from=now&until=now&context=catalog", "customer", 403, None),
    ("GET", "/v1/stream?from=now&until=now", "vendor_own", 200, None),
    ("GET", "/v1/stream?from=now&until=now&context=users", "vendor_own", 403, None),
    ("GET", "/v1/stream?from=now&until=now&context=users", "admin", 200, None),
    ("POST", "/v1/stream/tickets", "anon", 401, None),
    ("POST", "/v1/stream/tickets", "customer", 201, None),
    ("POST", "/v1/stream/tickets", "vendor_own", 201, None),
    ("POST", "/v1/stream/tickets", "admin", 201, None),
    # -- projections as an operator sees them: admin only (an unknown projection or dead letter
    # is 404; no row here touches a real projection)
    ("GET", "/v1/admin/projections", "anon", 401, None),
    ("GET", "/v1/admin/projections", "customer", 403, None),
    ("GET", "/v1/admin/projections", "vendor_own", 403, None),
    ("GET", "/v1/admin/projections", "admin", 200, None),
    ("POST", "/v1/admin/projections/{nopj}/pause", "anon", 401, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/pause", "customer", 403, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/pause", "vendor_own", 403, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/pause", "admin", 404, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/resume", "anon", 401, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/resume", "customer", 403, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/resume", "admin", 404, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/rebuild", "anon", 401, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/rebuild", "customer", 403, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/rebuild", "vendor_own", 403, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/rebuild", "admin", 404, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/swap", "anon", 401, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/swap", "customer", 403, OPS_REASON),
    ("POST", "/v1/admin/projections/{nopj}/swap", "admin", 404, OPS_REASON),
    ("GET", "/v1/admin/dead-letters", "anon", 401, None),
    ("GET", "/v1/admin/dead-letters", "customer", 403, None),
    ("GET", "/v1/admin/dead-letters", "vendor_other", 403, None),
    ("GET", "/v1/admin/dead-letters", "admin", 200, None),
    ("POST", "/v1/admin/dead-letters/{nodl}/replay", "anon", 401, OPS_REASON),
    ("POST", "/v1/admin/dead-letters/{nodl}/replay", "customer", 403, OPS_REASON),
    ("POST", "/v1/admin/dead-letters/{nodl}/replay", "admin", 404, OPS_REASON),
    ("POST", "/v1/admin/dead-letters/{nodl}/discard", "anon", 401, OPS_REASON),
    ("POST", "/v1/admin/dead-letters/{nodl}/discard", "customer", 403, OPS_REASON),
    ("POST", "/v1/admin/dead-letters/{nodl}/discard", "admin", 404, OPS_REASON),
    ("GET", "/v1/admin/activity", "anon", 401, None),
    ("GET", "/v1/admin/activity", "customer", 403, None),
    ("GET", "/v1/admin/activity", "vendor_own", 403, None),
    ("GET", "/v1/admin/activity", "admin", 200, None),
    ("GET", "/v1/admin/sagas", "anon", 401, None),
    ("GET", "/v1/admin/sagas", "customer", 403, None),
    ("GET", "/v1/admin/sagas", "vendor_own", 403, None),
    ("GET", "/v1/admin/sagas", "admin", 200, None),
    # -- operations
    ("GET", "/healthz", "anon", 200, None),
    ("GET", "/readyz", "anon", 200, None),
    ("GET", "/metrics", "anon", 200, None),
    ("GET", "/openapi.yaml", "anon", 200, None),
    # -- the pages (web/): anyone, a token or none
    ("GET", "/shop/", "anon", 200, None),
    ("GET", "/shop/", "customer", 200, None),
    ("GET", "/shop/{shop_file}", "anon", 200, None),
    ("GET", "/shop/{shop_file}", "vendor_own", 200, None),
    ("GET", "/console/", "anon", 200, None),
    ("GET", "/console/", "admin", 200, None),
    ("GET", "/console/{console_file}", "anon", 200, None),
    ("GET", "/console/{console_file}", "customer", 200, None),
]


def test_matrix_names_every_route():
    """Each route of api_routes.c is in the table, and the table names no route that does not
    exist: a route added without its rows fails here."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "api", "api_routes.c")) as f:
        src = f.read()
    import re
    routes = set(re.findall(r'\{"(GET|POST|PUT|PATCH|DELETE)", "([^"]+)"', src))
    assert routes, "no route found in api_routes.c"

    def shape(path):
        return re.sub(r"\{[^}]*\}|r-none|o-none", "{}", path.split("?")[0])

    table = {(m, shape(p)) for m, p, *_ in MATRIX}
    # a route of a context the stack does not serve answers 503 and needs no rows yet; its rows
    # are due when the context joins ES_CONTEXTS
    want = {(m, shape(p)) for m, p in routes if served(p)}
    table = {(m, p) for m, p in table if served(p)}
    assert want - table == set(), f"routes without rows: {sorted(want - table)}"
    assert table - want == set(), f"rows without a route: {sorted(table - want)}"
    actors = {a for _, _, a, *_ in MATRIX}
    for m, p in want:
        if m != "GET" and p not in ("/v1/users", "/v1/auth/token"):
            got = {a for mm, pp, a, *_ in MATRIX if (mm, shape(pp)) == (m, p)}
            assert {"anon", "customer", "admin"} <= got, f"{m} {p} lacks a role: {got}"
    assert {"anon", "customer", "customer2", "vendor_own", "vendor_other", "admin"} == actors


# ---------------------------------------------------------------- the world


def auth(tok):
    return {"Authorization": f"Bearer {tok}"} if tok else {}


def must(r, *ok):
    assert r.status_code in ok, f"setup: {r.request.method} {r.request.url} -> {r.status_code} {r.text}"
    return r


def register(api_url, role="customer"):
    addr = f"mx-{uuid.uuid4().hex[:12]}@example.test"
    r = must(requests.post(f"{api_url}/v1/users", headers=WAIT, timeout=30,
                           json={"email": addr, "password": PASSWORD, "name": "Matrix",
                                 "role": role}), 201)
    return addr, r.headers["Location"].rsplit("/", 1)[1], r.json()["position"]


@pytest.fixture(scope="module")
def world(api_url):
    w = {"V1": unique("vend"), "V2": unique("vend")}
    admin = mint_token("admin", unique("adm"))
    tokens = {
        "anon": None,
        "vendor_own": mint_token("vendor", w["V1"], w["V1"]),
        "vendor_other": mint_token("vendor", w["V2"], w["V2"]),
        "admin": admin,
    }
    own = tokens["vendor_own"]

    def send(method, path, tok, body=None):
        return requests.request(method, f"{api_url}{path}", json=body, timeout=30,
                                headers={**auth(tok), **WAIT})

    # users: each registration is read back at its position before anyone logs in
    users = {}
    for name, role in (("cust", "customer"), ("cust2", "customer"), ("cust3", "customer"),
                       ("pending", "vendor")):
        addr, uid, pos = register(api_url, role)
        must(requests.get(f"{api_url}/v1/users/{uid}", timeout=30,
                          headers={**auth(admin), "X-Min-Position": pos}), 200)
        users[name] = (addr, uid)
        w[name] = uid
    w["cust_email"] = users["cust"][0]
    w["nouser"] = str(uuid.uuid4())
    # the contexts of the history rows, as names so that their paths keep the route's shape
    w.update({c: c for c in ("catalog", "inventory", "pricing", "users", "weather")})
    for name, actor in (("cust", "customer"), ("cust2", "customer2")):
        r = must(requests.post(f"{api_url}/v1/auth/token", timeout=30,
                               json={"email": users[name][0], "password": PASSWORD}), 200)
        tokens[actor] = r.json()["access_token"]

    # catalog, stock, prices, rules and reservations of V1's sku
    w["sku"], w["nosku"] = unique("MX"), unique("MXNONE")
    w["nopj"], w["nodl"] = "no_such_pj", "no_such_pj:0:0"  # no projection, no dead letter
    w["shop_file"], w["console_file"] = "shop.js", "console.js"
    w["del_sku_own"], w["del_sku_admin"] = unique("MXDEL"), unique("MXDEL")
    for sku in (w["sku"], w["del_sku_own"], w["del_sku_admin"]):
        r = must(send("POST", "/v1/products", own,
                      {"sku": sku, "name": "Mug", "category": "kitchen", "currency": "EUR"}), 201)
    w["command"] = r.json()["command_id"]
    must(send("POST", f"/v1/inventory/{w['sku']}/receipts", own, {"quantity": 100}), 200)
    must(send("PUT", f"/v1/prices/{w['sku']}", own, PRICE), 200)
    w["rule_own"], w["rule_admin"] = unique("r"), unique("r")
    for rule in (w["rule_own"], w["rule_admin"]):
        must(send("POST", f"/v1/prices/{w['sku']}/rules", own,
                  {"rule_id": rule, "kind": "amount_off", "amount_minor": 10}), 201)
    w["order_rel"], w["order_com"] = unique("o"), unique("o")
    for order in (w["order_rel"], w["order_com"]):
        must(send("POST", f"/v1/inventory/{w['sku']}/reservations", admin,
                  {"order_id": order, "quantity": 2}), 201)
    return w, tokens


def fill(v, w):
    if isinstance(v, dict):
        return {k: fill(x, w) for k, x in v.items()}
    if isinstance(v, list):
        return [fill(x, w) for x in v]
    if isinstance(v, str):
        return v.format(**w, new=uuid.uuid4().hex[:10], new_sku=unique("MXNEW"))
    return v


@pytest.mark.parametrize("method,path,actor,expected,body", MATRIX,
                         ids=[f"{m} {p} as {a}" for m, p, a, *_ in MATRIX])
def test_authz(api_url, world, method, path, actor, expected, body):
    if not served(path):
        pytest.skip(f"the {context_of(path)} context is not served")
    w, tokens = world
    url_path = fill(path, w)
    sent = fill(body, w)
    r = requests.request(method, f"{api_url}{url_path}", json=sent, timeout=30,
                         headers={**auth(tokens[actor]), **WAIT})
    assert r.status_code == expected, (
        f"\n  {method} {path} as {actor}\n  path sent: {url_path}\n  body sent: {sent}\n"
        f"  expected {expected}, got {r.status_code}: {r.text[:400]}")
    if expected in (401, 403, 404, 409, 410):
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers
    if expected == 401:  # a token's challenge; the internal open call's is its service credential
        scheme = "X-Service-Credential" if path.startswith("/internal/") else "Bearer"
        assert r.headers.get("WWW-Authenticate", "").startswith(scheme)
