"""The users context end to end on the running stack (ES_CONTEXTS must hold "users"):
registration, login (RS256 tokens), failed-login limits, vendor approval, and crypto-shredding:
after DELETE /v1/users/{id} the events stay on users.events but no key left anywhere opens their
sealed fields, and the read model keeps nothing personal."""
import base64
import ctypes
import json
import os
import time
import uuid

import pytest
import requests

from conftest import env, mint_token, read_topic, wait_for

pytestmark = pytest.mark.skipif("users" not in os.environ.get("ES_CONTEXTS", "").split(),
                                reason="the stack does not run the users context")

WAIT = {"Prefer": "wait=15"}
PASSWORD = "correct horse battery staple"


def email():
    return f"user-{uuid.uuid4().hex[:12]}@Example.test"


def register(api_url, addr, role="customer", password=PASSWORD, phone="+33 1 23 45 67 89"):
    body = {"email": addr, "password": password, "name": "Zoë Tester", "role": role}
    if phone:
        body["phone"] = phone
    return requests.post(f"{api_url}/v1/users", json=body, headers=WAIT, timeout=30)


def login(api_url, addr, password=PASSWORD):
    return requests.post(f"{api_url}/v1/auth/token", json={"email": addr, "password": password},
                         timeout=30)


def claims(token):
    head, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)
    return (json.loads(base64.urlsafe_b64decode(pad(head))),
            json.loads(base64.urlsafe_b64decode(pad(payload))))


def user_id_of(resp):
    assert resp.status_code == 201, resp.text
    return resp.headers["Location"].rsplit("/", 1)[1]


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


def login_ok(api_url, addr, password=PASSWORD):
    # the projector applies the registration shortly after the handler accepted it
    r = wait_for(lambda: (lambda x: x if x.status_code == 200 else None)(login(api_url, addr, password)),
                 timeout=30, interval=0.5, what=f"a token for {addr}")
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def admin_token(api_url):
    """The bootstrapped admin's own login (stack.sh up runs eventshop-users bootstrap-admin)."""
    pw_file = os.path.join(env("ES_STATE"), "secrets", "admin.password")
    with open(pw_file) as f:
        pw = f.read().strip("\r\n")
    return login_ok(api_url, os.environ.get("EVENTSHOP_ADMIN_EMAIL", "admin@eventshop.local"), pw)


def test_bootstrapped_admin_logs_in_as_admin(admin_token):
    head, c = claims(admin_token)
    assert head["alg"] == "RS256"
    assert c["role"] == "admin"


def test_register_login_and_read_own_data(api_url):
    addr = email()
    uid = user_id_of(register(api_url, addr))
    tok = login_ok(api_url, addr.upper())  # e-mails are case-blind
    head, c = claims(tok)
    assert head["alg"] == "RS256"
    assert c["sub"] == uid and c["role"] == "customer" and "vendor_id" not in c
    assert c["iss"] == "eventshop" and c["aud"] in ("eventshop-api", ["eventshop-api"])
    assert c["exp"] - c["iat"] == 900
    me = requests.get(f"{api_url}/v1/users/{uid}", headers=bearer(tok), timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == addr.lower()
    assert me.json()["name"] == "Zoë Tester" and me.json()["phone"] == "+33 1 23 45 67 89"
    addr2 = email()
    user_id_of(register(api_url, addr2))
    other = login_ok(api_url, addr2)
    r = requests.get(f"{api_url}/v1/users/{uid}", headers=bearer(other), timeout=10)
    assert r.status_code == 403, "a customer must not read another customer's data"


def test_same_email_twice_is_409(api_url):
    addr = email()
    user_id_of(register(api_url, addr))
    r = register(api_url, addr.upper(), password="another password 1")
    assert r.status_code == 409, r.text
    assert r.json()["title"] == "already_registered"


def test_bad_registration_is_422(api_url):
    for body in ({"email": "nope", "password": PASSWORD, "name": "x", "role": "customer"},
                 {"email": email(), "password": "short", "name": "x", "role": "customer"},
                 {"email": email(), "password": PASSWORD, "name": "x", "role": "admin"}):
        r = requests.post(f"{api_url}/v1/users", json=body, timeout=10)
        assert r.status_code == 422, (body, r.text)
        assert PASSWORD not in r.text


def test_wrong_password_and_unknown_email_look_the_same(api_url):
    addr = email()
    user_id_of(register(api_url, addr))
    login_ok(api_url, addr)
    wrong = login(api_url, addr, "not the password")
    unknown = login(api_url, email(), "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_failed_logins_are_rate_limited(api_url):
    addr = email()
    user_id_of(register(api_url, addr))
    login_ok(api_url, addr)
    statuses = [login(api_url, addr, "wrong password!").status_code for _ in range(5)]
    assert statuses == [401] * 5
    r = login(api_url, addr, "wrong password!")
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    # while limited even the right password waits: guessing cannot go on by luck
    assert login(api_url, addr).status_code == 429


def test_vendor_pending_then_approved_lists_a_product(api_url, admin_token, db):
    addr = email()
    uid = user_id_of(register(api_url, addr, role="vendor", phone=None))

    def projected_pending():  # a 401 before the user is known would pass by luck
        with db("users").cursor() as cur:
            cur.execute("SELECT status FROM users WHERE user_id = %s", (uid,))
            row = cur.fetchone()
            return row and row["status"] == "pending"

    wait_for(projected_pending, timeout=30, what=f"vendor {uid} projected as pending")
    r = login(api_url, addr)
    assert r.status_code == 401, "a pending vendor gets no token"
    cust = mint_token("customer", str(uuid.uuid4()))
    r = requests.post(f"{api_url}/v1/vendors/{uid}/approval", headers={**bearer(cust), **WAIT},
                      timeout=30)
    assert r.status_code == 403
    r = requests.post(f"{api_url}/v1/vendors/{uid}/approval",
                      headers={**bearer(admin_token), **WAIT}, timeout=30)
    assert r.status_code in (200, 201), r.text
    tok = wait_for(lambda: (lambda t: t if claims(t)[1].get("vendor_id") else None)(login_ok(api_url, addr)),
                   timeout=30, interval=0.5, what="a vendor token")
    assert claims(tok)[1]["vendor_id"] == uid and claims(tok)[1]["role"] == "vendor"
    sku = f"USR-{uuid.uuid4().hex[:8]}"
    r = requests.post(f"{api_url}/v1/products", headers={**bearer(tok), **WAIT}, timeout=30,
                      json={"sku": sku, "vendor_id": uid, "name": "Mug", "category": "kitchen",
                            "currency": "EUR"})
    assert r.status_code in (200, 201), r.text


def test_admin_lists_pending_vendors_until_approved(api_url, admin_token):
    """GET /v1/vendors: the pending vendors with their name and e-mail opened, read at the
    registration's position; once approved (read at the approval's position) the vendor is
    active and no longer pending. Customers are never listed."""
    addr = email()
    r = register(api_url, addr, role="vendor", phone=None)
    uid, pos = user_id_of(r), r.json()["position"]
    cust = user_id_of(register(api_url, email()))
    admin = bearer(admin_token)

    def listed(status, position):
        r = requests.get(f"{api_url}/v1/vendors", params={"status": status, "limit": 200},
                         headers={**admin, "X-Min-Position": position}, timeout=30)
        assert r.status_code == 200, r.text
        return {v["user_id"]: v for v in r.json()["items"]}

    pending = listed("pending", pos)
    assert uid in pending and cust not in pending
    assert pending[uid]["status"] == "pending" and pending[uid]["vendor_id"] is None
    assert pending[uid]["name"] == "Zoë Tester" and pending[uid]["email"] == addr.lower()
    assert isinstance(pending[uid]["registered_at"], int)
    r = requests.post(f"{api_url}/v1/vendors/{uid}/approval", headers={**admin, **WAIT}, timeout=30)
    assert r.status_code == 200, r.text
    pos = r.json()["position"]
    assert uid not in listed("pending", pos)
    assert listed("active", pos)[uid]["vendor_id"] == uid
    r = requests.get(f"{api_url}/v1/vendors?status=forgotten", headers=admin, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "status"


def sodium_open(sealed, key, user_id, field):
    """Opens a sealed field with libsodium (XChaCha20-Poly1305 IETF); None if it does not open."""
    na = ctypes.CDLL("libsodium.so.23")
    assert na.sodium_init() >= 0
    nonce, box = sealed[:24], sealed[24:]
    out = ctypes.create_string_buffer(len(box))
    outlen = ctypes.c_ulonglong(0)
    ad = f"eventshop-user:{user_id}:{field}".encode()
    rc = na.crypto_aead_xchacha20poly1305_ietf_decrypt(out, ctypes.byref(outlen), None, box,
                                                       ctypes.c_ulonglong(len(box)), ad,
                                                       ctypes.c_ulonglong(len(ad)), nonce, key)
    return out.raw[:outlen.value].decode() if rc == 0 else None


def all_keys(db):
    with db("keys").cursor() as cur:
        cur.execute("SELECT user_id, key_material FROM user_keys")
        return {r["user_id"]: bytes(r["key_material"]) for r in cur.fetchall()}


def test_forget_shreds_personal_data(api_url, brokers, registry, db, admin_token):
    addr = email()
    uid = user_id_of(register(api_url, addr))
    tok = login_ok(api_url, addr)

    def registered():
        evs = [m for m in read_topic(brokers, registry, "users.events")
               if m["key"] == uid and m["value"] and "email_enc" in m["value"]]
        return evs[-1]["value"] if evs else None

    ev = wait_for(registered, timeout=30, what="the UserRegistered event")
    keys = all_keys(db)
    assert sodium_open(ev["email_enc"], keys[uid], uid, "email") == addr.lower(), \
        "before forgetting the user's key opens its e-mail"

    r = requests.delete(f"{api_url}/v1/users/{uid}", headers={**bearer(tok), **WAIT}, timeout=30)
    assert r.status_code in (200, 202), r.text
    assert uid not in all_keys(db), "the key is destroyed"

    wait_for(lambda: login(api_url, addr).status_code == 401, timeout=30, what="login refused")
    # a Response of status >= 400 is falsy: wait on a list holding it
    g = wait_for(lambda: (lambda x: [x] if x.status_code == 410 else None)(
        requests.get(f"{api_url}/v1/users/{uid}", headers=bearer(admin_token), timeout=10)),
        timeout=30, what="410 for a forgotten user")[0]
    assert addr.lower() not in g.text

    # the events stay, but nothing left opens them
    ev = registered()
    assert ev is not None
    for k in all_keys(db).values():
        for field in ("email", "name", "phone", "password_hash"):
            sealed = ev[f"{field}_enc"]
            if sealed is not None:
                assert sodium_open(sealed, k, uid, field) is None
    for topic in ("users.events", "users.commands"):
        for m in read_topic(brokers, registry, topic, decode=False):
            raw = m["value"] or b""
            assert addr.lower().encode() not in raw and PASSWORD.encode() not in raw
            assert b"Tester" not in raw and b"$argon2id$" not in raw

    with db("users").cursor() as cur:
        cur.execute("SELECT * FROM users WHERE user_id = %s", (uid,))
        row = cur.fetchone()
    assert row["status"] == "forgotten"
    for col in ("email_index", "email_enc", "name_enc", "phone_enc", "password_hash_enc"):
        assert row[col] is None, col


def test_only_self_or_admin_may_forget(api_url):
    addr = email()
    uid = user_id_of(register(api_url, addr))
    other = mint_token("customer", str(uuid.uuid4()))
    r = requests.delete(f"{api_url}/v1/users/{uid}", headers=bearer(other), timeout=10)
    assert r.status_code == 403
    login_ok(api_url, addr)  # and the key is still there
