"""Logins and bearer tokens on the live API, beyond what test_users.py covers (a wrong password and
an unknown e-mail look alike; five failures then 429 even for the right password):

- every way a login can fail gets the same 401 (status, problem type, title, detail, headers);
- the failed-login lock is per e-mail (normalised), tells nothing about unknown addresses, and
  does not lock out other accounts behind the same client IP;
- a token that is expired (beyond the leeway), not yet valid, for another audience or issuer,
  signed by another key, unsigned, HS256 with the public key as secret, or altered, is a 401.

Failures are few on purpose: the per-IP bucket (30, then 20 a minute) is shared by the whole
session. Users are read back at their registration position before logging in, so no login is
ever tried before the read model has the user."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from conftest import env, mint_token

pytestmark = pytest.mark.skipif("users" not in os.environ.get("ES_CONTEXTS", "").split(),
                                reason="the stack does not run the users context")

WAIT = {"Prefer": "wait=15"}
PASSWORD = "login suite password"
LEEWAY = 60  # API_JWT_LEEWAY of api/jwt.h


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


def new_email():
    return f"login-{uuid.uuid4().hex[:12]}@Example.test"


def register(api_url, role="customer", addr=None):
    """Registers and waits (read-your-writes) until the read model has the user: (email, id)."""
    addr = addr or new_email()
    r = requests.post(f"{api_url}/v1/users", headers=WAIT, timeout=30,
                      json={"email": addr, "password": PASSWORD, "name": "Login Tester",
                            "role": role})
    assert r.status_code == 201, r.text
    uid = r.headers["Location"].rsplit("/", 1)[1]
    g = requests.get(f"{api_url}/v1/users/{uid}", timeout=30,
                     headers={**bearer(mint_token("admin", "login-suite")),
                              "X-Min-Position": r.json()["position"]})
    assert g.status_code == 200, g.text
    return addr, uid


def login(api_url, addr, password=PASSWORD):
    return requests.post(f"{api_url}/v1/auth/token", json={"email": addr, "password": password},
                         timeout=30)


def shape(r):
    """What a failed login may show: nothing that differs between the causes."""
    body = r.json()
    return (r.status_code, r.headers.get("Content-Type"), r.headers.get("WWW-Authenticate"),
            body.get("type"), body.get("title"), body.get("detail"), sorted(body))


def test_every_failed_login_looks_the_same(api_url, token):
    addr, _ = register(api_url)
    pending, _ = register(api_url, role="vendor")
    gone, gone_id = register(api_url)
    tok = login(api_url, gone).json()["access_token"]
    r = requests.delete(f"{api_url}/v1/users/{gone_id}", headers={**bearer(tok), **WAIT},
                        timeout=30)
    assert r.status_code == 200, r.text
    cases = {
        "wrong password": login(api_url, addr, "not the password at all"),
        "unknown e-mail": login(api_url, new_email()),
        "not an e-mail": login(api_url, "not-an-email"),
        "overlong password": login(api_url, addr, "x" * 5000),
        "vendor not yet approved (right password)": login(api_url, pending),
        "forgotten user (right password)": login(api_url, gone),
    }
    ref = shape(cases["wrong password"])
    assert ref[0] == 401 and ref[1].startswith("application/problem+json") and ref[2] == "Bearer"
    for why, r in cases.items():
        assert shape(r) == ref, f"{why}: {shape(r)} differs from {ref}"
        assert "access_token" not in r.text and addr.lower() not in r.text.lower()
    # and the right password still works for the account whose password was guessed wrong
    assert login(api_url, addr).status_code == 200


def test_the_lock_is_per_email_case_insensitive_and_spares_other_accounts(api_url):
    addr, _ = register(api_url)
    other, _ = register(api_url)
    assert [login(api_url, addr, "wrong password #%d" % i).status_code for i in range(5)] == [401] * 5
    for variant in (addr, addr.upper(), addr.lower()):
        r = login(api_url, variant)  # the right password, while locked
        assert r.status_code == 429, f"{variant}: {r.status_code} {r.text}"
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["type"] == "urn:eventshop:problem:too_many_failed_logins"
        assert 1 <= int(r.headers["Retry-After"]) <= 60, r.headers["Retry-After"]
        assert "access_token" not in r.text
    r = login(api_url, other)
    assert r.status_code == 200, f"another account behind the same IP is locked out: {r.text}"


def test_an_unknown_email_is_locked_like_a_known_one(api_url):
    """Otherwise the lock would tell which addresses are registered."""
    addr = new_email()
    assert [login(api_url, addr, "guess %d" % i).status_code for i in range(5)] == [401] * 5
    r = login(api_url, addr, "guess 6")
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1


# ---------------------------------------------------------------- tokens


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def cli_token(sub, *extra, **env_over):
    cmd = [os.path.join(env("ES_BUILD"), "api", "eventshop-token"), "--role", "customer",
           "--sub", sub, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env_over})
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="module")
def me(api_url):
    """A registered customer, its id and a real token from POST /v1/auth/token."""
    addr, uid = register(api_url)
    r = login(api_url, addr)
    assert r.status_code == 200, r.text
    return uid, r


def whoami(api_url, uid, tok):
    return requests.get(f"{api_url}/v1/users/{uid}", headers=bearer(tok), timeout=30)


def test_a_real_token_is_what_it_says(api_url, me):
    uid, r = me
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert r.headers.get("Cache-Control") == "no-store"
    head, claims, _ = body["access_token"].split(".")
    head, claims = json.loads(unb64(head)), json.loads(unb64(claims))
    assert head["alg"] == "RS256"
    assert claims["sub"] == uid and claims["role"] == "customer"
    assert claims["iss"] == os.environ.get("EVENTSHOP_JWT_ISSUER", "eventshop")
    assert claims["aud"] == os.environ.get("EVENTSHOP_JWT_AUDIENCE", "eventshop-api")
    assert claims["exp"] - claims["iat"] == 900 and abs(claims["iat"] - time.time()) < 120
    assert whoami(api_url, uid, body["access_token"]).status_code == 200


def forged(uid, other_key_file):
    """Tokens for uid that must all be refused, by name."""
    now = int(time.time())
    good = cli_token(uid)
    h, p, s = good.split(".")
    claims = json.loads(unb64(p))
    pub = open(env("EVENTSHOP_JWT_PUBLIC_KEY_FILE"), "rb").read()
    hs_head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    hs_body = b64(json.dumps(claims).encode())
    hs_sig = b64(hmac.new(pub, f"{hs_head}.{hs_body}".encode(), hashlib.sha256).digest())
    none_head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    admin_body = b64(json.dumps({**claims, "role": "admin"}).encode())
    return {
        "expired beyond the leeway": cli_token(uid, "--exp", str(now - LEEWAY - 60)),
        "expired long ago": cli_token(uid, "--exp", str(now - 86400)),
        "not yet valid": cli_token(uid, "--ttl", "60", "--exp", str(now + 3 * 3600)),
        "another audience": cli_token(uid, EVENTSHOP_JWT_AUDIENCE="another-api"),
        "another issuer": cli_token(uid, EVENTSHOP_JWT_ISSUER="someone-else"),
        "signed by another key": cli_token(uid, EVENTSHOP_JWT_PRIVATE_KEY_FILE=other_key_file),
        "alg none": f"{none_head}.{p}.",
        "HS256 with the public key as secret": f"{hs_head}.{hs_body}.{hs_sig}",
        "role changed, signature kept": f"{h}.{admin_body}.{s}",
        "signature cut": f"{h}.{p}.",
        "signature of another token": f"{h}.{p}.{cli_token(uid).split('.')[2]}",
        "garbage": "not.a.token",
    }


@pytest.fixture(scope="module")
def other_key(tmp_path_factory):
    f = tmp_path_factory.mktemp("jwt") / "other-private.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(f)], check=True, capture_output=True)
    return str(f)


def test_bad_tokens_are_401(api_url, me, other_key):
    uid, _ = me
    # the control: the same CLI, the stack's key, the right claims -> accepted
    assert whoami(api_url, uid, cli_token(uid)).status_code == 200
    assert whoami(api_url, uid, cli_token(uid, "--exp", str(int(time.time()) + 120))).status_code == 200
    failures = []
    for why, tok in forged(uid, other_key).items():
        r = whoami(api_url, uid, tok)
        ok = (r.status_code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer")
              and r.headers.get("Content-Type", "").startswith("application/problem+json"))
        if not ok:
            failures.append(f"{why}: {r.status_code} {r.text[:200]}")
    assert not failures, "tokens not refused:\n" + "\n".join(failures)


def test_an_expired_token_says_so(api_url, me):
    uid, _ = me
    r = whoami(api_url, uid, cli_token(uid, "--exp", str(int(time.time()) - 3600)))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]
