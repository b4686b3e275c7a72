"""The shop front (/shop/, web/shop/) in a real browser, Debian's headless Chromium driven by
Selenium through chromium-driver, against the live stack: a customer registers, logs in, finds a
product by full-text search, puts it in the cart, buys it and watches the order reach delivered
in the page without reloading it, fed by the order's stream (GET /v1/stream with a ticket); the
stack's payments (test gateway) and shipping (test carrier) subscribers move the order on.

The screenshot of the end of the journey is $ES_STATE/artifacts/web/order-tracking.png (the
README shows it). The page logs no error on the browser's console. Every wait is for a positive
marker in the page, never a sleep."""
import uuid

import pytest
import requests
from selenium.webdriver.common.by import By

from conftest import browser_checked, chromium, mint_token, needs, screenshot, unique, wait_for
from conftest import browser_wait as wait

WAIT = {"Prefer": "wait=20"}


@pytest.fixture(scope="module")
def shop_driver():
    """A phone-width window (the page must work there) with the browser's console captured."""
    d = chromium(420, 900)
    yield d
    d.quit()


@pytest.fixture
def shop_page(shop_driver, request):
    yield from browser_checked(shop_driver, request.node.name)


def fill(driver, element_id, text):
    e = driver.find_element(By.ID, element_id)
    e.clear()
    e.send_keys(text)


def product_on_sale(api_url, word, category):
    """A listed product whose description holds word, with a price and stock."""
    vendor = unique("shopv")
    tok = {"Authorization": f"Bearer {mint_token('vendor', unique('u'), vendor)}", **WAIT}
    sku = unique("SHOP").upper()
    r = requests.post(f"{api_url}/v1/products", headers=tok, timeout=30,
                      json={"sku": sku, "name": "Walnut desk lamp", "category": category,
                            "description": f"Warm light, catalogue mark {word}", "currency": "EUR"})
    assert r.status_code == 201, r.text
    pos = r.json()["position"]
    r = requests.put(f"{api_url}/v1/prices/{sku}", headers=tok, timeout=30,
                     json={"amount_minor": 4990, "currency": "EUR"})
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{api_url}/v1/inventory/{sku}/receipts", headers=tok, timeout=30,
                      json={"quantity": 3})
    assert r.status_code in (200, 201), r.text
    assert requests.get(f"{api_url}/v1/products/{sku}", headers={"X-Min-Position": pos},
                        timeout=30).status_code == 200
    return sku


def test_a_customer_buys_and_follows_the_order_to_delivered(shop_page, api_url, db):
    needs("ES_CONTEXTS", ["catalog", "pricing", "inventory", "users", "orders", "payments", "shipping"])
    needs("ES_SUBSCRIBERS", ["order-saga", "payments", "shipping"])
    page = shop_page
    word = f"shop{uuid.uuid4().hex[:10]}"
    sku = product_on_sale(api_url, word, "lighting")
    email, password = f"{unique('buyer')}@example.test", "correct horse battery staple"

    page.get(f"{api_url}/shop/")
    wait(page, "the first listing", lambda d: d.find_elements(By.CSS_SELECTOR, "#status[data-loaded]"))
    # the page is never reloaded from here on: this mark would be gone
    page.execute_script("window.shopJourneyMark = 'same page';")

    # registers, then logs in once the account is readable (the login reads the users' read model)
    page.find_element(By.ID, "show-auth").click()
    fill(page, "reg-name", "Zoë Buyer")
    fill(page, "reg-email", email)
    fill(page, "reg-password", password)
    page.find_element(By.ID, "register-submit").click()
    user_id = wait(page, "the account created", lambda d: d.find_element(
        By.ID, "auth-status").get_attribute("data-registered"))

    def projected():
        with db("users").cursor() as c:
            c.execute("SELECT user_id FROM users WHERE user_id = %s", (user_id,))
            return c.fetchone()

    wait_for(projected, timeout=30, what=f"user {user_id} in the users read model")
    assert page.find_element(By.ID, "login-email").get_attribute("value") == email
    fill(page, "login-password", password)
    page.find_element(By.ID, "login-submit").click()
    wait(page, "logged in", lambda d: d.find_element(By.ID, "logout").is_displayed())
    assert page.execute_script("return sessionStorage.getItem('eventshop.token')")

    # finds the product by a word of its description
    fill(page, "find", word)
    page.find_element(By.ID, "find").submit()
    # (only a search's answer says "found")
    wait(page, "the search's answer", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#status[data-loaded]") and "found" in d.find_element(By.ID, "status").text)
    assert page.find_element(By.ID, "status").text == "1 product found"
    item = f'li.product[data-sku="{sku}"]'
    assert len(page.find_elements(By.CSS_SELECTOR, "li.product")) == 1
    li = page.find_element(By.CSS_SELECTOR, item)
    assert li.get_attribute("data-price") == "4990" and li.get_attribute("data-available") == "3"
    li.find_element(By.CSS_SELECTOR, "button.add").click()
    wait(page, "one item in the cart", lambda d: d.find_element(By.ID, "cart-count").text == "1")

    # the cart, the address, the order
    page.find_element(By.ID, "show-cart").click()
    wait(page, "the cart's line", lambda d: d.find_elements(
        By.CSS_SELECTOR, f'#cart-lines li.line[data-sku="{sku}"]'))
    assert "49.90" in page.find_element(By.ID, "cart-total").text
    for field, text in (("ship-name", "Zoë Buyer"), ("ship-line1", "1 Analytical St"),
                        ("ship-city", "London"), ("ship-postal", "N1 9GU"), ("ship-country", "GB")):
        fill(page, field, text)
    page.find_element(By.ID, "place-order").click()

    # the order's steps fill in live, up to delivered
    wait(page, "the order tracked", lambda d: d.find_element(By.ID, "tracking").is_displayed()
         and d.find_element(By.ID, "track-id").text)
    order_id = page.find_element(By.ID, "track-id").text
    wait(page, "the order delivered", lambda d: d.find_element(
        By.ID, "track-status").get_attribute("data-status") == "delivered", timeout=150)
    done = [e.get_attribute("data-step") for e in page.find_elements(By.CSS_SELECTOR, "#track-steps li.done")]
    assert done == ["placed", "reserved", "paid", "confirmed", "shipped", "delivered"], done
    log = page.find_element(By.ID, "track-log").text
    assert "OrderShipped" in log and "OrderDelivered" in log, log
    assert page.execute_script("return window.shopJourneyMark") == "same page"
    assert page.execute_script("return localStorage.getItem('eventshop.cart')") == "[]"
    screenshot(page, "order-tracking.png")

    # it is among the customer's past orders
    page.find_element(By.ID, "show-orders").click()
    wait(page, "the order in the list", lambda d: d.find_elements(
        By.CSS_SELECTOR, f'#order-list li.order[data-order-id="{order_id}"][data-status="delivered"]'))
