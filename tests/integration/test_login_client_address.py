"""The failed-login limiter per client address behind a trusted proxy (EVENTSHOP_TRUSTED_PROXIES).

Behind the Kubernetes Ingress every TCP peer is the ingress, so a limiter keyed on the peer puts
all users in one bucket. With the peer in EVENTSHOP_TRUSTED_PROXIES the client is the right-most
X-Forwarded-For entry that is not itself trusted (runtime/es_http.c, es_http_client_addr; its
parsing and walk are unit-tested in tests/unit/runtime/test_http_client_addr.c). Unset, nobody is
trusted and the header is ignored: a client may write it itself.

Each test restarts the stack's API with a per-IP bucket of 2 (EVENTSHOP_LOGIN_IP_BURST) and puts
the usual API back afterwards. Every login uses a new unknown e-mail, so only the per-IP bucket
can trip (an unknown e-mail is refused like a wrong password, test_login.py)."""
import os
import socket
import subprocess
import time
import uuid

import pytest
import requests

from conftest import TOP, env

pytestmark = pytest.mark.skipif("users" not in os.environ.get("ES_CONTEXTS", "").split(),
                                reason="the stack does not run the users context")

STACK = os.path.join(TOP, "scripts", "stack.sh")
BURST = 2
A, B = "203.0.113.10", "198.51.100.20"


def stack(*args, environ=None):
    subprocess.run([STACK, *args], check=True, timeout=180, env=environ or os.environ)


@pytest.fixture
def restart_api():
    """Restarts the API with the stack's environment minus EVENTSHOP_TRUSTED_PROXIES, plus the
    given variables; the plain API comes back at the end."""

    def restart(**extra):
        environ = {k: v for k, v in os.environ.items() if k != "EVENTSHOP_TRUSTED_PROXIES"}
        environ.update(EVENTSHOP_LOGIN_IP_BURST=str(BURST), EVENTSHOP_LOGIN_IP_PER_MIN="1",
                       **extra)
        stack("role-stop", "api")
        stack("role-start", "api", environ=environ)
        stack("role-wait", "api", "90")

    yield restart
    stack("role-stop", "api")
    stack("role-start", "api")
    stack("role-wait", "api", "90")


def failed_login(api_url, xff):
    """A login with a new unknown e-mail from the given X-Forwarded-For: its status (401 while
    the address's bucket has tokens, then 429)."""
    r = requests.post(f"{api_url}/v1/auth/token", timeout=30,
                      headers={"X-Forwarded-For": xff} if xff is not None else {},
                      json={"email": f"nobody-{uuid.uuid4().hex[:12]}@example.test",
                            "password": "not the password"})
    assert r.status_code in (401, 429), r.text
    return r.status_code


def test_without_trusted_proxies_the_header_is_ignored_and_localhost_is_one_bucket(
        api_url, restart_api):
    restart_api()
    # two different X-Forwarded-For values, one TCP peer (127.0.0.1): one bucket
    assert [failed_login(api_url, A), failed_login(api_url, B)] == [401] * BURST
    assert failed_login(api_url, A) == 429
    assert failed_login(api_url, B) == 429
    assert failed_login(api_url, "192.0.2.99") == 429, "a new header value escaped the bucket"


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(api_url, restart_api):
    restart_api(EVENTSHOP_TRUSTED_PROXIES="127.0.0.1/32")
    assert [failed_login(api_url, A) for _ in range(BURST)] == [401] * BURST
    assert failed_login(api_url, A) == 429
    # another client behind the same proxy still has its tokens
    assert failed_login(api_url, B) == 401
    # a client cannot leave its bucket by writing addresses left of what the proxy appended
    assert failed_login(api_url, f"192.0.2.99, {A}") == 429
    assert failed_login(api_url, f"{B}:51234") == 401  # the same client, with a port
    assert failed_login(api_url, B) == 429
    # the proxy's own requests (no header) are the proxy's bucket, apart from both
    assert failed_login(api_url, None) == 401


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_malformed_trusted_proxies_value_stops_the_api_at_start(tmp_path):
    """A clear error and a non-zero exit, not an API that silently trusts nobody (or everybody)."""
    port = free_port()
    log = tmp_path / "api.log"
    environ = dict(os.environ, EVENTSHOP_TRUSTED_PROXIES="10.0.0.0/8, 10.1.0.0/33",
                   EVENTSHOP_API_ADDR=f"127.0.0.1:{port}", EVENTSHOP_INSTANCE_ID="bad-proxies")
    with open(log, "wb") as out:
        p = subprocess.Popen([os.path.join(env("ES_BUILD"), "api", "eventshop-api")], env=environ,
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while p.poll() is None and time.time() < deadline:
            try:  # an API that started anyway fails the test at once
                up = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
            except requests.RequestException:
                up = None
            assert up is None, "the API started with a malformed EVENTSHOP_TRUSTED_PROXIES"
            time.sleep(0.1)
        assert p.poll() is not None, "the API neither started nor exited in 60 s"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    text = log.read_text(errors="replace")
    assert p.returncode != 0, text[-2000:]
    assert "EVENTSHOP_TRUSTED_PROXIES: '10.1.0.0/33': the prefix length must be 0-32" in text, \
        text[-2000:]
