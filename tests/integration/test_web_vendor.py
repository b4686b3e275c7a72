"""The vendors' page, /shop/vendor.html (web/shop/vendor.js), in a real browser: Debian's headless
Chromium driven by Selenium through Debian's chromium-driver, against the live stack.

One journey, as people would go through it in one browser: a vendor registers and is told it
awaits approval; the administrator logs in on the same page, sees it among the vendors waiting
and approves it; the vendor logs in, lists a product, sets its price, adds a price rule, receives
and adjusts stock, edits the product's name, and the page shows each result without a reload
(the commands' positions are read back with X-Min-Position). Names typed by users are shown as
text. The page logs no error on the browser's console (no failed request, no script error, no
refusal of the Content-Security-Policy). Screenshots: $ES_STATE/artifacts/web/vendor.png (a wide
window, the vendor's product), vendor-phone.png (the same at a phone's width), vendor-pending.png
and vendor-admin.png (the steps before). Every wait is for a positive marker in the page,
never a sleep."""
import os
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import admin_credentials, browser_checked, chromium, screenshot, unique
from conftest import browser_wait as wait

NEEDED = {"catalog", "inventory", "pricing", "users", "orders"}
pytestmark = pytest.mark.skipif(not NEEDED <= set(os.environ.get("ES_CONTEXTS", "").split()),
                                reason="the stack does not run every context the page uses")

HOSTILE_NAME = "Vendor <b>bold</b> & <img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def vendor_browser():
    d = chromium(1280, 1000)
    yield d
    d.quit()


@pytest.fixture
def vendor_page(vendor_browser, request):
    yield from browser_checked(vendor_browser, request.node.name)


def shown(d, id_):
    return d.find_element(By.ID, id_).is_displayed()


def type_into(element, text):
    element.clear()
    element.send_keys(text)


def log_in(d, email, password, section):
    type_into(d.find_element(By.ID, "email"), email)
    type_into(d.find_element(By.ID, "password"), password)
    d.find_element(By.ID, "password").send_keys(Keys.ENTER)  # the keyboard's way
    wait(d, f"the {section} section after logging in", lambda d: shown(d, section))


def submit(card, form_class, **values):
    form = card.find_element(By.CSS_SELECTOR, f"form.{form_class}")
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            field.find_element(By.CSS_SELECTOR, f'option[value="{value}"]').click()
        else:
            type_into(field, value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_vendor_registers_is_approved_and_sells_a_product(vendor_page, api_url):
    d = vendor_page
    email = f"web-vendor-{uuid.uuid4().hex[:10]}@example.test"
    password = "vendor password 123"
    sku = unique("WEBV").upper()
    d.get(f"{api_url}/shop/vendor.html")

    # the vendor registers: awaiting approval
    type_into(d.find_element(By.ID, "reg-name"), HOSTILE_NAME)
    type_into(d.find_element(By.ID, "reg-email"), email)
    type_into(d.find_element(By.ID, "reg-password"), password)
    d.find_element(By.ID, "register-submit").click()
    wait(d, "awaiting approval", lambda d: shown(d, "pending")
         and d.find_element(By.ID, "pending-email").text == email)
    assert "awaiting approval" in d.find_element(By.ID, "pending").text.lower()
    screenshot(d, "vendor-pending.png")

    # the administrator, on the same page, approves it
    log_in(d, *admin_credentials(), "admin")
    assert not shown(d, "pending") and not shown(d, "signed-out")
    item = wait(d, "the new vendor among those waiting", lambda d: [
        li for li in d.find_elements(By.CSS_SELECTOR, "#vendors li.vendor")
        if li.find_element(By.CSS_SELECTOR, ".email").text == email])[0]
    uid = item.get_attribute("data-user-id")
    assert item.find_element(By.CSS_SELECTOR, ".name").text == HOSTILE_NAME
    assert d.find_elements(By.CSS_SELECTOR, "#vendors b, #vendors img") == []
    screenshot(d, "vendor-admin.png")
    item.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait(d, "the approval said, the vendor no longer waiting", lambda d: d.find_element(
        By.ID, "vendors-status").get_attribute("data-approved") == uid and not d.find_elements(
        By.CSS_SELECTOR, f'#vendors li[data-user-id="{uid}"]'))
    d.find_element(By.ID, "logout").click()
    wait(d, "logged out", lambda d: shown(d, "signed-out"))

    # the vendor logs in: its (empty) products and order lines
    log_in(d, email, password, "vendor")
    assert not shown(d, "pending")
    wait(d, "the vendor's name in the header", lambda d: d.find_element(By.ID, "who").text == HOSTILE_NAME)
    wait(d, "the vendor's products loaded", lambda d: d.find_element(
        By.ID, "products-status").get_attribute("data-loaded") == "true")
    wait(d, "the vendor's order lines loaded", lambda d: d.find_element(
        By.ID, "orders-status").get_attribute("data-loaded") == "true")
    assert d.find_elements(By.CSS_SELECTOR, "#products li.product") == []

    # lists a product
    d.find_element(By.CSS_SELECTOR, "#new-product-box summary").click()
    form = d.find_element(By.ID, "new-product")
    type_into(form.find_element(By.NAME, "sku"), sku)
    type_into(form.find_element(By.NAME, "name"), "Web mug")
    type_into(form.find_element(By.NAME, "category"), "kitchen")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    card_css = f'#products li.product[data-sku="{sku}"]'
    card = wait(d, "the listed product", lambda d: d.find_elements(By.CSS_SELECTOR, card_css))[0]
    assert card.find_element(By.CSS_SELECTOR, ".name").text == "Web mug"
    assert card.get_attribute("data-status") == "listed"
    wait(d, "no price yet", lambda d: card.find_element(By.CSS_SELECTOR, ".price").text == "no price yet")

    # sets its price, receives stock
    submit(card, "price", amount="12.99")
    wait(d, "the price shown", lambda d: card.get_attribute("data-price") == "1299")
    assert "12.99" in card.find_element(By.CSS_SELECTOR, ".price").text
    submit(card, "receive", quantity="7")
    wait(d, "the stock shown", lambda d: card.get_attribute("data-available") == "7")
    assert card.find_element(By.CSS_SELECTOR, ".stock").text.startswith("7 available")

    # a rule (1.00 off), an adjustment (2 damaged), a new name
    submit(card, "rule", kind="amount_off", amount="1")
    wait(d, "the rule applied", lambda d: card.get_attribute("data-price") == "1199"
         and card.find_elements(By.CSS_SELECTOR, 'ul.rules li[data-applied="true"]'))
    assert "12.99" in card.find_element(By.CSS_SELECTOR, ".price s").text
    submit(card, "adjust", delta="-2", reason="damage")
    wait(d, "the adjusted stock", lambda d: card.get_attribute("data-available") == "5")
    submit(card, "details", name="Web mug, blue")
    wait(d, "the new name", lambda d: card.find_element(By.CSS_SELECTOR, ".name").text == "Web mug, blue")

    assert "11.99" in card.find_element(By.CSS_SELECTOR, ".price").text
    assert card.find_element(By.CSS_SELECTOR, ".stock").text.startswith("5 available")
    d.find_element(By.CSS_SELECTOR, f"{card_css} details.manage summary").click()  # closed
    d.execute_script("window.scrollTo(0, 0)")
    screenshot(d, "vendor.png")

    # at a phone's width nothing is wider than the screen
    d.set_window_size(390, 900)
    try:
        wait(d, "the page at a phone's width", lambda d: d.execute_script(
            "return window.innerWidth") <= 400)
        assert d.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"), "sideways scroll"
        screenshot(d, "vendor-phone.png")
    finally:
        d.set_window_size(1280, 1000)
