"""The pages the API serves, /shop/ and /console/ (api/api_web.c, files from web/), checked over
HTTP and in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromium-driver, against the live stack.

Each browser test saves a screenshot of the page as it ended (passed or not) as a test artifact:
$ES_STATE/artifacts/web/<test name>.png. Every wait is for a positive marker in the page
(WebDriverWait on a row's state, a price filled in), never a sleep."""
import http.client
import os
import re
import signal
import threading
import time
import urllib.parse

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import TOP, admin_credentials, browser_checked, chromium, mint_token, needs, screenshot, unique, wait_for
from conftest import browser_wait as wait
from test_operator import ops_rows  # noqa: F401
from test_projector import Events, changed, listed, produce, projector, query  # noqa: F401

WEB = os.path.join(TOP, "web")
XSS = "<img src=x onerror=alert(1)>"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def web_files():
    """(area, name) of every file of web/ (the pages' folder)."""
    return sorted((area, name) for area in ("shop", "console")
                  for name in os.listdir(os.path.join(WEB, area)) if not name.startswith("."))


def assert_page_headers(r):
    assert "default-src 'self'" in r.headers.get("Content-Security-Policy", ""), r.headers
    assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers


# ---------------------------------------------------------------- over HTTP


@pytest.mark.parametrize("area,name", web_files())
def test_every_file_is_served_with_its_type_and_security_headers(api_url, area, name):
    r = requests.get(f"{api_url}/{area}/{name}", timeout=10)
    assert r.status_code == 200, r.text
    assert_page_headers(r)
    with open(os.path.join(WEB, area, name), "rb") as f:
        assert r.content == f.read()
    assert r.headers["Content-Type"].startswith(TYPES[os.path.splitext(name)[1]])
    assert r.headers["Cache-Control"] == "no-cache"
    # revalidation: the same file is not sent again
    again = requests.get(f"{api_url}/{area}/{name}", timeout=10,
                         headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert_page_headers(again)


@pytest.mark.parametrize("area", ["shop", "console"])
def test_the_folder_answers_its_index(api_url, area):
    r = requests.get(f"{api_url}/{area}/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert_page_headers(r)
    with open(os.path.join(WEB, area, "index.html"), "rb") as f:
        assert r.content == f.read()


def test_a_missing_file_is_a_problem_with_the_same_headers(api_url):
    r = requests.get(f"{api_url}/shop/no-such-file.js", timeout=10)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json()["status"] == 404
    assert_page_headers(r)


def test_pages_have_nothing_inline_and_fetch_nothing_from_elsewhere():
    """The CSP (default-src 'self') would block inline scripts, styles and handlers: none is
    written, so none is silently lost; and no file names another origin."""
    for area, name in web_files():
        with open(os.path.join(WEB, area, name), encoding="utf-8") as f:
            text = f.read()
        # (an SVG's namespace is a name, not a fetch)
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\")", text), f"{area}/{name} names another origin"
        if name.endswith(".html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {name}"
            assert "<style" not in text and not re.search(r"\sstyle=", text), f"inline style in {name}"
            assert not re.search(r"\son[a-z]+=", text), f"inline handler in {name}"
        if name.endswith(".js"):
            assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text
            assert "eval(" not in text and "document.write" not in text


TRAVERSALS = [
    "/shop/../../etc/passwd",
    "/shop/../../../../../../etc/passwd",
    "/shop/..%2f..%2f..%2fetc%2fpasswd",
    "/shop/%2e%2e/%2e%2e/etc/passwd",
    "/shop/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/shop/%252e%252e%252fetc%252fpasswd",
    "/console/..%5c..%5c..%5cetc%5cpasswd",
    "/console/..%2fshop%2findex.html",
    "/console/../../api/api_web.c",
    "/shop/..",
    "/shop/.",
    "/shop/%2e%2e",
    "/shop//etc/passwd",
    "/shop/.%00./etc/passwd",
    "/shop/index.html%00.js",
    "/shop/%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_reaches_a_file_outside_the_folder(api_url, path):
    """Raw request lines (no client-side normalization of dot segments): 400 or 404, never a
    file outside web/<area>/."""
    u = urllib.parse.urlsplit(api_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.putrequest("GET", path, skip_accept_encoding=True)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    assert r.status in (400, 404), (path, r.status, body[:200])
    assert b"root:" not in body and b"#include" not in body
    assert b"<html" not in body.lower()


# ---------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def driver():
    d = chromium(1280, 900)
    yield d
    d.quit()


@pytest.fixture
def page(driver, request):
    yield from browser_checked(driver, request.node.name)


def partitions_of(driver, name):
    """[(data-position, text)] of a projection's partition lines, read in one script: the
    console replaces them on each refresh, so element by element reads could meet a stale one."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => [e.dataset.position, e.textContent]);",
        f'#projections tr[data-projection="{name}"] td.parts div[data-position]')


def state_of(driver, name):
    rows = driver.find_elements(By.CSS_SELECTOR, f'#projections tr[data-projection="{name}"]')
    return rows[0].get_attribute("data-state") if rows else None


def test_console_admin_pauses_and_resumes_a_projection(page, api_url):
    name = "catalog_products"
    login_console(page, api_url)
    try:
        wait(page, "the board instead of the login form", lambda d: d.find_element(
            By.ID, "board").is_displayed() and not d.find_element(By.ID, "login").is_displayed())
        # its positions: one line per partition of catalog.events, with a stored position
        parts = wait(page, f"{name}'s partitions", lambda d: partitions_of(d, name))
        assert all(pos.isdigit() for pos, _ in parts), parts
        assert re.match(r"p\d+: \d+ / \d+, lag \d+", parts[0][1]), parts
        # live: running, or degraded when other suites' malformed events left it dead letters
        live = ("running", "degraded")
        wait(page, f"{name} live", lambda d: state_of(d, name) in live, timeout=60)

        row = page.find_element(By.CSS_SELECTOR, f'#projections tr[data-projection="{name}"]')
        row.find_element(By.CSS_SELECTOR, "button.pause").click()
        wait(page, f"{name} paused", lambda d: state_of(d, name) == "paused", timeout=60)
        assert "paused" in row.find_element(By.CSS_SELECTOR, "td.state").text

        wait(page, "the resume button", lambda d: row.find_element(By.CSS_SELECTOR, "button.resume").is_displayed())
        row.find_element(By.CSS_SELECTOR, "button.resume").click()
        wait(page, f"{name} live again", lambda d: state_of(d, name) in live, timeout=60)
    finally:
        # whatever happened above, the stack's projector is not left paused for the next tests
        requests.post(f"{api_url}/v1/admin/projections/{name}/resume", timeout=10,
                      json={"reason": "test_web cleanup"},
                      headers={"Authorization": f"Bearer {mint_token('admin', 'test-web')}"})


def test_shop_shows_a_hostile_product_name_as_text_and_runs_nothing(page, api_url):
    vendor = unique("webv")
    sku = unique("WEBXSS").upper()
    tok = {"Authorization": f"Bearer {mint_token('vendor', vendor, vendor)}", "Prefer": "wait=20"}
    r = requests.post(f"{api_url}/v1/products", headers=tok, timeout=30,
                      json={"sku": sku, "name": XSS, "category": "web", "currency": "EUR"})
    assert r.status_code == 201, r.text
    pos = r.json()["position"]
    r = requests.put(f"{api_url}/v1/prices/{sku}", headers=tok, timeout=30,
                     json={"amount_minor": 1299, "currency": "EUR"})
    assert r.status_code == 200, r.text
    price_pos = r.json()["position"]
    r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", headers=tok, timeout=30,
                      json={"quantity": 5})
    assert r.status_code == 200, r.text
    # the catalog's, pricing's and inventory's read models have the product, its price and its
    # stock before the page asks for them: the listing joins all three once, at its load (the
    # catalog's alone was waited for, and a pricing projector a moment behind left the page at
    # "no price yet" for good)
    for path, at in ((f"/v1/products/{sku}", pos), (f"/v1/prices/{sku}", price_pos),
                     (f"/v1/inventory/{sku}", r.json()["position"])):
        wait_for(lambda: requests.get(f"{api_url}{path}", headers={"X-Min-Position": at},
                                      timeout=30).status_code == 200,
                 timeout=60, what=f"{path} read at its command's position")

    page.get(f"{api_url}/shop/?vendor={vendor}")
    item = f'li.product[data-sku="{sku}"]'
    wait(page, "the product with its price and stock", lambda d: d.find_elements(
        By.CSS_SELECTOR, f"{item}[data-price][data-available]"))
    li = page.find_element(By.CSS_SELECTOR, item)
    assert li.find_element(By.CSS_SELECTOR, ".name").text == XSS
    assert li.get_attribute("data-price") == "1299"
    assert "12.99" in li.find_element(By.CSS_SELECTOR, ".price").text
    assert li.get_attribute("data-available") == "5"
    assert "5 in stock" in li.find_element(By.CSS_SELECTOR, ".stock").text
    assert page.find_elements(By.TAG_NAME, "img") == []
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text


# ---------------------------------------------------------------- the console's live parts


def admin_headers():
    return {"Authorization": f"Bearer {mint_token('admin', unique('web-admin'))}"}


def login_console(page, api_url):
    """The console, logged in (the tab keeps an earlier test's session: then no form)."""
    email, password = admin_credentials()
    page.get(f"{api_url}/console/")
    shown = wait(page, "the login form or the board", lambda d: (
        d.find_element(By.ID, "login").is_displayed() and "login") or (
        d.find_element(By.ID, "board").is_displayed() and "board"))
    if shown == "login":
        page.find_element(By.ID, "email").send_keys(email)
        page.find_element(By.ID, "password").send_keys(password)
        page.find_element(By.ID, "login-submit").click()
    wait(page, "the board instead of the login form", lambda d: d.find_element(
        By.ID, "board").is_displayed() and not d.find_element(By.ID, "login").is_displayed())


ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London",
           "postal_code": "N1 9GU", "country": "GB"}


@pytest.fixture
def open_order(api_url):
    """An order the saga keeps open for a while: the test gateway answers its payment 25 s late
    (under the pay deadline scripts/test.sh sets, 30 s), so the order waits in stock_reserved on
    pay_by. Listed by GET /v1/admin/sagas before the test gets it: (order id, customer token)."""
    needs("ES_CONTEXTS", ["orders", "inventory", "pricing", "payments"])
    needs("ES_SUBSCRIBERS", ["order-saga", "payments"])
    gateway = os.environ["EVENTSHOP_PAYMENTS_GATEWAY_URL"]
    vendor = unique("webv")
    vtok = {"Authorization": f"Bearer {mint_token('vendor', unique('u'), vendor)}", "Prefer": "wait=20"}
    sku = unique("WEBORD").upper()
    for method, path, body in [
            ("POST", "/v1/products", {"sku": sku, "name": "Console mug", "category": "web", "currency": "EUR"}),
            ("PUT", f"/v1/prices/{sku}", {"amount_minor": 990, "currency": "EUR"}),
            ("POST", f"/v1/inventory/{sku}/receipts", {"quantity": 3})]:
        r = requests.request(method, f"{api_url}{path}", headers=vtok, json=body, timeout=30)
        assert r.status_code in (200, 201), (path, r.text)
    ctok = mint_token("customer", unique("webc"))
    requests.post(f"{gateway}/_control", json={"delay_ms": 25000}, timeout=10).raise_for_status()
    try:
        r = requests.post(f"{api_url}/v1/orders", timeout=60,
                          headers={"Authorization": f"Bearer {ctok}", "Prefer": "wait=20"},
                          json={"lines": [{"sku": sku, "quantity": 1}], "shipping_address": ADDRESS})
        assert r.status_code in (200, 201, 202), r.text
        oid = r.json().get("order_id") or r.json().get("aggregate_id")

        def listed_open():
            r = requests.get(f"{api_url}/v1/admin/sagas?limit=200", headers=admin_headers(), timeout=30)
            assert r.status_code == 200, r.text
            return next((o for o in r.json()["open_orders"] if o["order_id"] == oid), None)

        row = wait_for(listed_open, timeout=30, what=f"order {oid} among the saga's open orders")
        yield oid, ctok, row
    finally:
        requests.post(f"{gateway}/_control", json={"delay_ms": 0}, timeout=10)


def test_admin_sagas_lists_open_orders_with_their_deadlines_paged(api_url, open_order):
    oid, _, row = open_order
    assert row["status"] in ("placed", "stock_reserved"), row
    assert row["waits_on"] == {"placed": "reserve_by", "stock_reserved": "pay_by"}[row["status"]]
    assert row["deadline"] == row[row["waits_on"]] and row["deadline"] > 0
    assert isinstance(row["partition"], int)
    # paged: one order a page, soonest deadline first, each page's cursor where the last ended
    h = admin_headers()
    r = requests.get(f"{api_url}/v1/admin/sagas?limit=1", headers=h, timeout=30)
    assert r.status_code == 200, r.text
    seen, pages = [], 0
    body = r.json()
    while True:
        pages += 1
        seen += body["open_orders"]
        assert len(body["open_orders"]) <= 1
        if not body["next"]:
            assert "Link" not in r.headers
            break
        assert r.headers["Link"] == f'<{body["next"]}>; rel="next"'
        r = requests.get(f"{api_url}{body['next']}", headers=h, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert pages < 500
    keys = [(o["deadline"], o["order_id"]) for o in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert oid in [o["order_id"] for o in seen] or body["total"] >= 1  # (it may have closed since)
    for bad in ("x", "12", "12:", ":x", "-1:x", "1" * 19 + ":x", "1:" + "x" * 141, "1:a\nb"):
        r = requests.get(f"{api_url}/v1/admin/sagas", params={"after": bad}, headers=h, timeout=30)
        assert r.status_code == 400, (bad, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    r = requests.get(f"{api_url}/v1/admin/sagas?limit=0", headers=h, timeout=30)
    assert r.status_code == 400


def test_admin_activity_counts_commands_and_handler_positions(api_url):
    h = admin_headers()
    before = {c["context"]: c for c in requests.get(f"{api_url}/v1/admin/activity", headers=h,
                                                    timeout=30).json()["contexts"]}
    assert set(before) == set(os.environ.get("ES_CONTEXTS", "catalog").split())
    vendor = unique("webv")
    vtok = {"Authorization": f"Bearer {mint_token('vendor', unique('u'), vendor)}", "Prefer": "wait=20"}
    sku = unique("WEBACT").upper()
    r = requests.post(f"{api_url}/v1/products", headers=vtok, timeout=30,
                      json={"sku": sku, "name": "A", "category": "web", "currency": "EUR"})
    assert r.status_code == 201, r.text
    r = requests.post(f"{api_url}/v1/products", headers=vtok, timeout=30,
                      json={"sku": sku, "name": "A", "category": "web", "currency": "EUR"})
    assert r.status_code == 409, r.text  # the same sku again: rejected

    def moved():
        c = next(c for c in requests.get(f"{api_url}/v1/admin/activity", headers=h, timeout=30)
                 .json()["contexts"] if c["context"] == "catalog")
        b = before["catalog"]
        return c if (c["commands"] >= b["commands"] + 2 and c["accepted"] >= b["accepted"] + 1
                     and c["rejected"] >= b["rejected"] + 1
                     and c["handler_position"] >= b["handler_position"] + 2) else None

    c = wait_for(moved, timeout=30, what="the catalog's commands, outcomes and handler position moved")
    assert c["handler_lag"] == max(0, c["commands"] - c["handler_position"])


def test_admin_activity_holds_no_loop_thread_while_the_broker_is_slow(api_url, stack):
    """The activity's broker requests wait up to a second each: with the broker paused, requests
    on other connections are answered at once while an activity request is still waiting (on a
    loop thread they waited with it), and the activity answers nulls, then numbers again."""
    h = admin_headers()
    kafka = stack.pid("kafka")
    assert kafka, "no kafka pid in the stack's run folder"
    out = {}

    def activity():
        out["response"] = requests.get(f"{api_url}/v1/admin/activity", headers=h, timeout=60)
        out["done"] = time.monotonic()

    os.kill(kafka, signal.SIGSTOP)
    try:
        t = threading.Thread(target=activity)
        t.start()
        slowest = 0.0
        for _ in range(8):  # new connections: the kernel spreads them over the loop threads
            t0 = time.monotonic()
            assert requests.get(f"{api_url}/healthz", timeout=30).status_code == 200
            slowest = max(slowest, time.monotonic() - t0)
        answered = time.monotonic()
        t.join(timeout=60)
    finally:
        os.kill(kafka, signal.SIGCONT)
    assert slowest < 0.9, f"a request waited {slowest:.2f} s behind the activity's broker requests"
    assert out["done"] > answered, "the activity came back before the other requests: no overlap"
    r = out["response"]
    assert r.status_code == 200, r.text
    assert all(c["commands"] is None for c in r.json()["contexts"])

    def numbers():
        cs = requests.get(f"{api_url}/v1/admin/activity", headers=h, timeout=30).json()["contexts"]
        return all(c["commands"] is not None for c in cs)

    wait_for(numbers, timeout=60, what="the activity's numbers once the broker answers again")


def card_value(page, ctx, attr):
    cards = page.find_elements(By.CSS_SELECTOR, f'#activity article[data-context="{ctx}"]')
    v = cards[0].get_attribute(attr) if cards else None
    return int(v) if v and v.isdigit() else None


def test_console_admin_sees_positions_move_live(page, api_url):
    login_console(page, api_url)
    wait(page, "the live feed (the event stream)", lambda d: d.find_element(
        By.ID, "feed-state").get_attribute("data-state") == "live")
    wait(page, "the catalog's positions", lambda d: card_value(d, "catalog", "data-projector-position")
         is not None and card_value(d, "catalog", "data-commands") is not None)
    pos = card_value(page, "catalog", "data-projector-position")
    cmds = card_value(page, "catalog", "data-commands")
    vendor = unique("webv")
    vtok = {"Authorization": f"Bearer {mint_token('vendor', unique('u'), vendor)}"}
    for _ in range(3):
        r = requests.post(f"{api_url}/v1/products", headers=vtok, timeout=30,
                          json={"sku": unique("WEBLIVE").upper(), "name": "Live", "category": "web",
                                "currency": "EUR"})
        assert r.status_code == 202, r.text
    wait(page, "the catalog's commands counted", lambda d: (card_value(d, "catalog", "data-commands") or 0) >= cmds + 3)
    wait(page, "the catalog's projector position moved", lambda d: (card_value(d, "catalog", "data-projector-position") or 0) >= pos + 3)
    # the projection's own row moved too, and the chart has drawn its readings
    wait(page, "the catalog_products row's positions moved", lambda d: sum(
        int(p) for p, _ in partitions_of(d, "catalog_products")) >= pos + 3)
    wait(page, "the chart's lines", lambda d: d.find_element(
        By.CSS_SELECTOR, '#activity article[data-context="catalog"] polyline.k-commands').get_attribute("points").count(",") >= 2)
    screenshot(page, "console.png")


def test_console_admin_replays_a_dead_letter(page, api_url, brokers, registry, db, projector, ops_rows):
    """A test projector of the catalog (tables of its own, as test_operator's) dead-letters a
    change of a sku it never saw; once the sku is listed, the console's Replay applies it and the
    dead letter goes. (The stack's catalog projector dead-letters the change too: that one stays,
    as other suites' do, since replaying it out of order would leave catalog_products unequal to
    a rebuild of it.)"""
    ev = Events(registry)
    p = projector()
    ops_rows.append(p.key)
    p.start()
    ghost = unique("web-ghost")
    dl_id = "%s:%d:%d" % ((p.key,) + next(iter(produce(brokers, [changed(ghost, 2, "replayed from the console")], ev).items())))
    row = f'#dead-letters tr[data-dead-letter="{dl_id}"]'
    login_console(page, api_url)
    wait(page, "the dead letter listed", lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=60)
    produce(brokers, [listed(ghost)], ev)  # the fix: the sku exists now
    wait_for(lambda: query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", ghost), timeout=30,
             what="the fix applied")
    page.find_element(By.CSS_SELECTOR, f"{row} button.replay").send_keys(Keys.ENTER)  # by keyboard
    wait(page, "the dead letter gone", lambda d: not d.find_elements(By.CSS_SELECTOR, row), timeout=60)
    assert query(db, f"SELECT name FROM `{p.table}` WHERE sku=%s", ghost)[0]["name"] == "replayed from the console"


def smallest_live_projection(api_url):
    r = requests.get(f"{api_url}/v1/admin/projections", headers=admin_headers(), timeout=30)
    live = [p for p in r.json()["projections"] if p["name"] and p["state"] in ("running", "degraded")
            and p["name"].count("_") == 1]  # the stack's own (a test projector's key has a suffix)
    return min(live, key=lambda p: sum(x["high_watermark"] or 0 for x in p["partitions"]))["name"]


def test_console_admin_follows_a_rebuild_to_the_end_and_swaps(page, api_url):
    name = smallest_live_projection(api_url)
    login_console(page, api_url)
    sel = f'#projections tr[data-projection="{name}"]'
    wait(page, f"{name} listed", lambda d: d.find_elements(By.CSS_SELECTOR, f"{sel} button.rebuild"))
    page.find_element(By.CSS_SELECTOR, f"{sel} button.rebuild").click()
    try:
        follow_rebuild_and_swap(page, name, sel)
    finally:  # a failure leaves no shadow waiting for a swap behind it, for the suites after
        r = requests.get(f"{api_url}/v1/admin/projections", headers=admin_headers(), timeout=30)
        if any(p["name"] == name and p["state"] == "shadow_ready" for p in r.json()["projections"]):
            requests.post(f"{api_url}/v1/admin/projections/{name}/swap", headers=admin_headers(),
                          timeout=30)


def follow_rebuild_and_swap(page, name, sel):
    seen = []

    def progressed(d):
        # One script reads the row whole: the console renders a row in one task, so separate
        # WebDriver reads could straddle two renders (state and progress from one, bar from the
        # next) and disagree though each render agrees with itself.
        state, progress, shown, value = d.execute_script(
            "const r = document.querySelector(arguments[0]);"
            "const b = r.querySelector('td.rebuild progress');"
            "return [r.dataset.state, r.dataset.progress, !b.hidden && b.offsetParent !== null,"
            " b.value];", sel)
        if state in ("rebuilding", "shadow_ready") and progress:
            seen.append(float(progress))
            assert shown and float(value) == float(progress), (state, progress, shown, value)
        return state == "shadow_ready" and progress == "1.000"

    wait(page, f"{name}'s rebuild at the end of its bar", progressed, timeout=300)
    assert seen and seen[-1] == 1.0, seen
    row = page.find_element(By.CSS_SELECTOR, sel)
    assert row.get_attribute("data-compare") == "true"
    assert "equal to the live tables" in row.find_element(By.CSS_SELECTOR, "td.rebuild .note").text
    screenshot(page, "console-rebuild.png")
    swap = row.find_element(By.CSS_SELECTOR, "button.swap")
    assert swap.is_displayed()
    swap.click()
    wait(page, f"{name} swapped in and live", lambda d: d.find_element(By.CSS_SELECTOR, sel).get_attribute(
        "data-state") in ("running", "degraded") and "swapped in" in d.find_element(
        By.CSS_SELECTOR, f"{sel} td.rebuild .note").text, timeout=120)


def test_console_shows_an_open_order_its_history_and_its_live_stream(page, api_url, open_order):
    oid, _, _ = open_order
    login_console(page, api_url)
    sel = f'#sagas tr[data-order="{oid}"]'
    wait(page, "the open order with its deadline", lambda d: d.find_elements(By.CSS_SELECTOR, sel))
    # the table's rows are made anew on each refresh: one script reads the row whole
    status, waits_on = wait(page, "the open order's row", lambda d: d.execute_script(
        "const r = document.querySelector(arguments[0]);"
        "return r && [r.dataset.status, r.cells[2].textContent];", sel))
    assert status in ("placed", "stock_reserved", "confirmed")
    assert waits_on in ("reserve_by", "pay_by", "dispatch_at")
    screenshot(page, "console-sagas.png")
    # its history, one keyboard press away (pressed again if a refresh replaced the button first)
    wait(page, "the history button pressed", lambda d: d.find_element(
        By.CSS_SELECTOR, f"{sel} button.look").send_keys(Keys.ENTER) or True)
    wait(page, "the order's history", lambda d: d.find_element(By.ID, "history").get_attribute(
        "data-aggregate") == oid and d.find_elements(By.CSS_SELECTOR, '#history tr[data-type="OrderPlaced"]'))
    first = page.find_element(By.CSS_SELECTOR, "#history tbody tr")
    assert first.get_attribute("data-version") == "1" and "OrderPlaced" in first.text
    # the live stream, filtered on this order from the start: its events, and only its
    Select(page.find_element(By.ID, "stream-context")).select_by_value("orders")
    page.find_element(By.ID, "stream-aggregate").send_keys(oid)
    Select(page.find_element(By.ID, "stream-from")).select_by_value("earliest")
    page.find_element(By.ID, "stream-start").click()
    wait(page, "the order's events on the stream", lambda d: d.find_elements(
        By.CSS_SELECTOR, '#stream tr[data-type="OrderPlaced"]'), timeout=60)
    wait(page, "the stream caught up", lambda d: d.find_element(By.ID, "stream-state").get_attribute(
        "data-state") == "caught up, live", timeout=60)
    assert all(oid in r.text for r in page.find_elements(By.CSS_SELECTOR, "#stream tbody tr"))
    screenshot(page, "console-events.png")
    page.find_element(By.ID, "stream-stop").click()
    wait(page, "the stream stopped", lambda d: d.find_element(By.ID, "stream-state").get_attribute(
        "data-state") == "not following")
