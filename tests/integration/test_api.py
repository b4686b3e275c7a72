"""eventshop-api end to end: commands over HTTP through Kafka and the catalog handler, queries on
the projected read model, on the running stack (conftest.py's api_url, token and uid fixtures)."""
import json
import os
import time
import uuid

import pytest
import requests

WAIT = {"Prefer": "wait=20"}


def auth(tok, **extra):
    return {"Authorization": f"Bearer {tok}", **extra}


def product(sku, **over):
    body = {"sku": sku, "name": "Mug", "category": "kitchen", "attributes": {"color": "red"},
            "currency": "EUR"}
    body.update(over)
    return body


def is_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    return r.json()


def test_list_change_delist_query(api_url, token, uid):
    vendor = uid("v")
    tok = token("vendor", uid("u"), vendor)
    sku = uid("SKU")

    r = requests.post(f"{api_url}/v1/products", json=product(sku), timeout=30,
                      headers=auth(tok, **WAIT))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "accepted" and out["sku"] == sku and out["aggregate_version"] == 1
    assert r.headers["Location"] == f"/v1/products/{sku}"
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Preference-Applied"] == "wait=20"

    r = requests.get(f"{api_url}/v1/products/{sku}", timeout=10,
                     headers={"X-Min-Position": out["position"]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["vendor_id"] == vendor and got["attributes"] == {"color": "red"}
    assert got["status"] == "listed" and got["version"] == 1 and got["description"] == ""
    assert r.headers["ETag"] == '"1"'

    r = requests.patch(f"{api_url}/v1/products/{sku}", json={"name": "Big mug"}, timeout=30,
                       headers=auth(tok, **WAIT, **{"If-Match": '"1"'}))
    assert r.status_code == 200, r.text
    pos = r.json()["position"]
    assert r.json()["aggregate_version"] == 2
    r = requests.get(f"{api_url}/v1/products/{sku}", params={"min_position": pos}, timeout=10)
    assert r.json()["name"] == "Big mug"

    # conditional reads: the version's tag answers 304 without a body, an older one the product
    for inm in ('"2"', 'W/"2"', '"1", "2"', "*"):
        r = requests.get(f"{api_url}/v1/products/{sku}", timeout=10,
                         headers={"If-None-Match": inm})
        assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == '"2"', (inm, r)
        assert "Content-Length" not in r.headers, r.headers  # it could only be the 200's
    r = requests.get(f"{api_url}/v1/products/{sku}", headers={"If-None-Match": '"1"'}, timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "Big mug" and r.headers["ETag"] == '"2"'

    # a stale If-Match is a version conflict
    r = requests.patch(f"{api_url}/v1/products/{sku}", json={"name": "x"}, timeout=30,
                       headers=auth(tok, **WAIT, **{"If-Match": "1"}))
    assert is_problem(r, 412)["type"] == "urn:eventshop:problem:version_conflict"

    r = requests.delete(f"{api_url}/v1/products/{sku}", timeout=30, headers=auth(tok, **WAIT))
    assert r.status_code == 200, r.text
    r = requests.get(f"{api_url}/v1/products/{sku}", timeout=10,
                     headers={"X-Min-Position": r.json()["position"]})
    assert r.json()["status"] == "delisted"

    r = requests.get(f"{api_url}/v1/products", params={"vendor": vendor, "status": "any"},
                     timeout=10)
    assert [p["sku"] for p in r.json()["items"]] == [sku]
    r = requests.get(f"{api_url}/v1/products", params={"vendor": vendor}, timeout=10)
    assert r.json() == {"items": [], "next_cursor": None}


def test_without_wait_answers_pending_then_the_outcome(api_url, token, uid):
    tok = token("vendor", uid("u"), uid("v"))
    r = requests.post(f"{api_url}/v1/products", json=product(uid("SKU")), headers=auth(tok),
                      timeout=10)
    assert r.status_code == 202, r.text
    cid = r.json()["command_id"]
    assert r.json()["status"] == "pending"
    assert r.headers["Location"] == f"/v1/commands/{cid}"
    for _ in range(100):
        r = requests.get(f"{api_url}/v1/commands/{cid}", headers=auth(tok), timeout=10)
        if r.status_code != 202:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    r = requests.get(f"{api_url}/v1/commands/{uuid.uuid4()}", headers=auth(tok), timeout=10)
    assert is_problem(r, 404)["type"] == "urn:eventshop:problem:unknown_command"


def test_a_creating_commands_202_names_what_it_creates(api_url, token, uid):
    """Location stays the command's URL; the body names the sku and Link points at the product."""
    tok = token("vendor", uid("u"), uid("v"))
    sku = uid("SKU")
    r = requests.post(f"{api_url}/v1/products", json=product(sku), headers=auth(tok), timeout=10)
    assert r.status_code == 202, r.text
    assert r.json()["sku"] == sku
    assert r.headers["Location"] == f"/v1/commands/{r.json()['command_id']}"
    assert r.headers["Link"] == f'</v1/products/{sku}>; rel="related"'
    # a command that creates nothing links nowhere
    r = requests.patch(f"{api_url}/v1/products/{sku}", json={"name": "x"}, headers=auth(tok),
                       timeout=10)
    assert r.status_code == 202 and "Link" not in r.headers, (r.status_code, r.headers)


def test_a_registrations_202_names_the_user_id(api_url, uid):
    """The API derives the user id from the e-mail before the outcome: its 202 names it."""
    if "users" not in os.environ.get("ES_CONTEXTS", "").split():
        pytest.skip("the users context is not served")
    r = requests.post(f"{api_url}/v1/users", timeout=30,
                      json={"email": f"{uid('r')}@example.test", "password": "long enough pass 1",
                            "name": "R", "role": "customer"})
    assert r.status_code == 202, r.text
    user_id = r.json()["user_id"]
    assert r.headers["Location"] == f"/v1/commands/{r.json()['command_id']}"
    assert r.headers["Link"] == f'</v1/users/{user_id}>; rel="related"'


def test_a_command_is_told_only_to_its_sender_or_an_admin(api_url, token, uid):
    """Another principal gets the 404 of an unknown id, pending or decided: the id is no oracle."""
    vendor = uid("v")
    tok = token("vendor", uid("u"), vendor)
    other = token("vendor", uid("u"), uid("v"))
    same_vendor_other_user = token("vendor", uid("u"), vendor)
    customer = token("customer", uid("c"))
    admin = token("admin", uid("a"))
    r = requests.post(f"{api_url}/v1/products", json=product(uid("SKU")), headers=auth(tok),
                      timeout=10)
    assert r.status_code == 202, r.text
    cid = r.json()["command_id"]
    strangers = (other, same_vendor_other_user, customer)
    for stranger in strangers:  # right after sending, before or after the outcome
        r = requests.get(f"{api_url}/v1/commands/{cid}", headers=auth(stranger), timeout=10)
        assert is_problem(r, 404)["type"] == "urn:eventshop:problem:unknown_command"
    for _ in range(100):
        r = requests.get(f"{api_url}/v1/commands/{cid}", headers=auth(tok), timeout=10)
        if r.status_code != 202:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    r = requests.get(f"{api_url}/v1/commands/{cid}", headers=auth(admin), timeout=10)
    assert r.status_code == 200 and r.json()["command_id"] == cid, r.text
    for stranger in strangers:  # decided: still nobody else's business
        r = requests.get(f"{api_url}/v1/commands/{cid}", headers=auth(stranger), timeout=10)
        assert is_problem(r, 404)["type"] == "urn:eventshop:problem:unknown_command"


def test_vendor_cannot_touch_another_vendors_product(api_url, token, uid):
    owner, other = uid("v"), uid("v")
    tok_owner = token("vendor", uid("u"), owner)
    tok_other = token("vendor", uid("u"), other)
    sku = uid("SKU")
    r = requests.post(f"{api_url}/v1/products", json=product(sku), timeout=30,
                      headers=auth(tok_owner, **WAIT))
    assert r.status_code == 201, r.text

    r = requests.patch(f"{api_url}/v1/products/{sku}", json={"name": "mine now"}, timeout=30,
                       headers=auth(tok_other, **WAIT))
    assert is_problem(r, 403)["type"] == "urn:eventshop:problem:not_owner"
    r = requests.delete(f"{api_url}/v1/products/{sku}", timeout=30,
                        headers=auth(tok_other, **WAIT))
    is_problem(r, 403)
    # listing in another vendor's name
    r = requests.post(f"{api_url}/v1/products", json=product(uid("SKU"), vendor_id=owner),
                      timeout=30, headers=auth(tok_other, **WAIT))
    is_problem(r, 403)
    # a customer may not list at all
    r = requests.post(f"{api_url}/v1/products", json=product(uid("SKU")), timeout=30,
                      headers=auth(token("customer", uid("u"))))
    is_problem(r, 403)


def test_retry_with_the_same_idempotency_key_gets_the_first_outcome(api_url, token, uid):
    tok = token("vendor", uid("u"), uid("v"))
    sku = uid("SKU")
    key = uid("key")
    first = requests.post(f"{api_url}/v1/products", json=product(sku), timeout=30,
                          headers=auth(tok, **WAIT, **{"Idempotency-Key": key}))
    assert first.status_code == 201, first.text
    again = requests.post(f"{api_url}/v1/products", json=product(sku, name="Other"), timeout=30,
                          headers=auth(tok, **WAIT, **{"Idempotency-Key": key}))
    assert again.status_code == 201, again.text
    assert again.json()["command_id"] == first.json()["command_id"]
    assert again.json()["aggregate_version"] == 1
    # a new key for the same sku is a new command, rejected as already listed
    r = requests.post(f"{api_url}/v1/products", json=product(sku), timeout=30,
                      headers=auth(tok, **WAIT, **{"Idempotency-Key": uid("key")}))
    assert is_problem(r, 409)["type"] == "urn:eventshop:problem:already_listed"


def test_cursor_paging(api_url, token, uid):
    vendor = uid("v")
    tok = token("vendor", uid("u"), vendor)
    skus = sorted(uid("SKU") for _ in range(3))
    positions = []
    for sku in skus:
        r = requests.post(f"{api_url}/v1/products", json=product(sku), timeout=30,
                          headers=auth(tok, **WAIT))
        assert r.status_code == 201, r.text
        positions.append(r.json()["position"])
    # each product may sit on another partition: read-your-writes on every position
    for sku, pos in zip(skus, positions):
        r = requests.get(f"{api_url}/v1/products/{sku}", headers={"X-Min-Position": pos},
                         timeout=10)
        assert r.status_code == 200, r.text
    seen, cursor = [], None
    for _ in range(3):
        params = {"vendor": vendor, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{api_url}/v1/products", params=params, timeout=10).json()
        assert len(page["items"]) <= 2
        seen += [p["sku"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == skus
    is_problem(requests.get(f"{api_url}/v1/products", params={"cursor": "!!"}, timeout=10), 400)
    is_problem(requests.get(f"{api_url}/v1/products", params={"limit": 500}, timeout=10), 400)


def test_bad_requests_get_problems(api_url, token, uid):
    tok = token("vendor", uid("u"), uid("v"))
    url = f"{api_url}/v1/products"
    r = requests.post(url, json=product(uid("SKU")), timeout=10)
    is_problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    is_problem(requests.post(url, json=product(uid("SKU")), headers=auth("not.a.token"),
                             timeout=10), 401)
    is_problem(requests.post(url, data="sku=x", timeout=10,
                             headers=auth(tok, **{"Content-Type": "text/plain"})), 415)

    def post(raw):
        return requests.post(url, data=raw, timeout=10,
                             headers=auth(tok, **{"Content-Type": "application/json"}))

    sku = uid("SKU")
    assert "duplicate" in is_problem(post(f'{{"sku":"{sku}","sku":"x"}}'), 400)["detail"]
    assert is_problem(post(json.dumps(product(sku, price=3))), 422)["field"] == "price"
    assert is_problem(post(json.dumps(product(sku, name=7))), 422)["field"] == "name"
    assert is_problem(post(json.dumps(product(sku, currency="euro"))), 422)["field"] == "currency"
    assert is_problem(post(json.dumps(product("a b"))), 422)["field"] == "sku"
    is_problem(post(json.dumps(product(sku, attributes={"a": {"b": {"c": "d"}}}))), 400)
    is_problem(post("{" + " " * (70 * 1024) + "}"), 413)
    is_problem(post("{not json"), 400)
    is_problem(requests.patch(f"{url}/{sku}", json={}, headers=auth(tok), timeout=10), 422)
    is_problem(requests.patch(f"{url}/{sku}", json={"name": "n"}, timeout=10,
                              headers=auth(tok, **{"If-Match": "abc"})), 400)
    is_problem(requests.get(f"{url}/{uid('nope')}", timeout=10), 404)
    is_problem(requests.get(f"{url}/{sku}", headers={"X-Min-Position": "x"}, timeout=10), 400)


def test_probes_and_metrics(api_url):
    assert requests.get(f"{api_url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{api_url}/readyz", timeout=5).status_code == 200
    text = requests.get(f"{api_url}/metrics", timeout=5).text
    assert "eventshop_api_pending_waiters" in text


def test_full_text_search_over_name_and_description(api_url, token, uid):
    """GET /v1/products?q=: every word required, each a prefix, over the catalog read model's
    FULLTEXT index (name, description); the client's boolean operators are only separators;
    the other filters and the cursor apply as without q."""
    vendor = uid("v")
    tok = token("vendor", uid("u"), vendor)
    w1, w2 = (f"srch{uuid.uuid4().hex[:10]}" for _ in range(2))
    skus = [uid("FTA"), uid("FTB"), uid("FTC")]
    bodies = [product(skus[0], name=f"Oak lamp {w1}"),
              product(skus[1], name="Mug", description=f"a {w1} mug, glazed in {w2}"),
              product(skus[2], name=f"{w2} stool", category="furniture")]
    for b in bodies:
        r = requests.post(f"{api_url}/v1/products", json=b, timeout=30, headers=auth(tok, **WAIT))
        assert r.status_code == 201, r.text
        assert requests.get(f"{api_url}/v1/products/{b['sku']}", timeout=10,
                            headers={"X-Min-Position": r.json()["position"]}).status_code == 200

    def found(**params):
        r = requests.get(f"{api_url}/v1/products", params=params, timeout=10)
        assert r.status_code == 200, r.text
        return [p["sku"] for p in r.json()["items"]]

    assert found(q=w1) == sorted(skus[:2])
    assert found(q=w1[:-3].upper()) == sorted(skus[:2])  # a prefix, any case
    assert found(q=f"{w1} {w2}") == [skus[1]]
    assert found(q=f'+{w1} -{w2} "x"') == [skus[1]]  # not "without w2": both required
    assert found(q=w2, category="furniture") == [skus[2]]
    assert found(q=w2, vendor=vendor) == sorted(skus[1:])
    assert found(q=f"of {w2}") == sorted(skus[1:])  # a word under 3 characters is ignored
    assert found(q="tv") == []
    # paging under q
    r = requests.get(f"{api_url}/v1/products", params={"q": w1, "limit": 1}, timeout=10).json()
    assert len(r["items"]) == 1 and r["next_cursor"]
    rest = found(q=w1, cursor=r["next_cursor"])
    assert [r["items"][0]["sku"]] + rest == sorted(skus[:2])
    # the index follows changes and delisting
    r = requests.patch(f"{api_url}/v1/products/{skus[2]}", json={"description": f"pairs with {w1}"},
                       timeout=30, headers=auth(tok, **WAIT))
    assert r.status_code == 200, r.text
    requests.get(f"{api_url}/v1/products/{skus[2]}", timeout=10,
                 headers={"X-Min-Position": r.json()["position"]})
    assert found(q=w1) == sorted(skus)
    r = requests.delete(f"{api_url}/v1/products/{skus[0]}", timeout=30, headers=auth(tok, **WAIT))
    assert r.status_code == 200, r.text
    requests.get(f"{api_url}/v1/products/{skus[0]}", timeout=10,
                 headers={"X-Min-Position": r.json()["position"]})
    assert found(q=w1) == sorted(skus[1:])
    assert found(q=w1, status="any") == sorted(skus)


def test_a_bad_search_is_a_problem(api_url):
    for q in ("", "x" * 101, "lamp\udcff"):
        raw = q.encode("utf-8", "surrogateescape")
        r = requests.get(f"{api_url}/v1/products", params={"q": raw}, timeout=10)
        p = is_problem(r, 400)
        assert p["field"] == "q", p
    assert requests.get(f"{api_url}/v1/products", params={"q": "é" * 100},
                        timeout=10).status_code == 200  # characters, not bytes


def test_a_listing_carries_each_products_current_price_and_stock(api_url, token, uid):
    """Each product of GET /v1/products has the price GET /v1/prices/{sku} gives now (the
    dynamic rules applied) and its available stock; null for what is not known yet."""
    vendor = uid("v")
    tok = token("vendor", uid("u"), vendor)
    priced, bare = uid("OFA"), uid("OFB")
    for sku in (priced, bare):
        r = requests.post(f"{api_url}/v1/products", json=product(sku), timeout=30,
                          headers=auth(tok, **WAIT))
        assert r.status_code == 201, r.text
        assert requests.get(f"{api_url}/v1/products/{sku}", timeout=10,
                            headers={"X-Min-Position": r.json()["position"]}).status_code == 200
    r = requests.put(f"{api_url}/v1/prices/{priced}", json={"amount_minor": 2000, "currency": "EUR"},
                     timeout=30, headers=auth(tok, **WAIT))
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{api_url}/v1/prices/{priced}/rules", timeout=30, headers=auth(tok, **WAIT),
                      json={"rule_id": "quarter", "kind": "percent_off", "basis_points": 2500})
    assert r.status_code == 201, r.text
    pos = r.json()["position"]
    r = requests.post(f"{api_url}/v1/inventory/{priced}/receipts", json={"quantity": 7},
                      timeout=30, headers=auth(tok, **WAIT))
    assert r.status_code in (200, 201), r.text
    requests.get(f"{api_url}/v1/inventory/{priced}", timeout=10,
                 headers={"X-Min-Position": r.json()["position"]})
    want = requests.get(f"{api_url}/v1/prices/{priced}", params={"min_position": pos}, timeout=10).json()
    assert want["amount_minor"] == 1500

    items = requests.get(f"{api_url}/v1/products", params={"vendor": vendor}, timeout=10).json()["items"]
    got = {p["sku"]: p for p in items}
    assert got[priced]["price"] == {"amount_minor": 1500, "list_amount_minor": 2000, "currency": "EUR"}
    assert got[priced]["available"] == 7
    assert got[bare]["price"] is None and got[bare]["available"] is None
