"""The pages the API serves, /shop/ and /console/ (api/api_web.c, files from web/), checked over
HTTP and in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromium-driver, against the live stack.

Each browser test saves a screenshot of the page as it ended (passed or not) as a test artifact:
$ES_STATE/artifacts/web/<test name>.png. Every wait is for a positive marker in the page
(WebDriverWait on a row's state, a price filled in), never a sleep."""
import http.client
import os
import re
import urllib.parse

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import TOP, env, mint_token, unique

WEB = os.path.join(TOP, "web")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
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
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield d
    d.quit()


@pytest.fixture
def page(driver, request):
    """The browser, with a screenshot of how the test left it saved as its artifact. The page
    logged no error on the browser's console: no script error, no resource or inline code the
    Content-Security-Policy refused."""
    driver.get_log("browser")  # what earlier tests left
    yield driver
    out = os.path.join(env("ES_STATE"), "artifacts", "web")
    os.makedirs(out, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    driver.save_screenshot(os.path.join(out, f"{name}.png"))
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def wait(driver, what, pred, timeout=30):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(pred, message=what)


def admin_credentials():
    with open(os.path.join(env("ES_STATE"), "secrets", "admin.password")) as f:
        password = f.read().strip("\r\n")
    return os.environ.get("EVENTSHOP_ADMIN_EMAIL", "admin@eventshop.local"), password


def state_of(driver, name):
    rows = driver.find_elements(By.CSS_SELECTOR, f'#projections tr[data-projection="{name}"]')
    return rows[0].get_attribute("data-state") if rows else None


def test_console_admin_pauses_and_resumes_a_projection(page, api_url):
    name = "catalog_products"
    email, password = admin_credentials()
    page.get(f"{api_url}/console/")
    page.find_element(By.ID, "email").send_keys(email)
    page.find_element(By.ID, "password").send_keys(password)
    page.find_element(By.ID, "login-submit").click()
    try:
        wait(page, "the board instead of the login form", lambda d: d.find_element(
            By.ID, "board").is_displayed() and not d.find_element(By.ID, "login").is_displayed())
        # its positions: one line per partition of catalog.events, with a stored position
        parts = wait(page, f"{name}'s partitions", lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#projections tr[data-projection="{name}"] td.parts div[data-position]'))
        assert all(p.get_attribute("data-position").isdigit() for p in parts)
        assert re.match(r"p\d+: \d+ / \d+, lag \d+", parts[0].text), parts[0].text
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
    r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", headers=tok, timeout=30,
                      json={"quantity": 5})
    assert r.status_code == 200, r.text
    # the catalog's read model has the product before the page asks for it
    assert requests.get(f"{api_url}/v1/products/{sku}", headers={"X-Min-Position": pos},
                        timeout=30).status_code == 200

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
