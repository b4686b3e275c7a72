"""Concurrent order placement against one API process, run by scripts/races.sh (not by the main
suite): ES_STRESS_ROUNDS rounds (default 5) of 200 orders placed at once by 64 client threads,
the same 200 customers in every round.
Every placement must be accepted with its order id, and every accepted order must become
readable: nothing accepted is lost, and the API process is the same one throughout (races.sh
checks its pid; a plain, non-sanitized build once segfaulted under this kind of load)."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import wait_for
from test_orders import customer, get_order, place, placed_id, sku_on_sale

pytestmark = pytest.mark.skipif(not os.environ.get("ES_RACES"), reason="run by scripts/races.sh")

ROUNDS = int(os.environ.get("ES_STRESS_ROUNDS", "5"))
ORDERS = 200


@pytest.fixture(scope="module")
def buyers(token):
    """The ORDERS customers, each with a token, for every round: minting one is a process
    (eventshop-token), 200 of them one after another took ~10 s of each round's ~20 s, half the
    stage, and a customer's second order in a later round is no different a placement. Minted
    a few at a time, which uses both cores."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda _: customer(token), range(ORDERS)))


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_concurrent_placements_are_all_accepted(api_url, token, buyers, round_no):
    # a sku with less stock than orders, so the saga both confirms and cancels under the load
    sku, _ = sku_on_sale(api_url, token, stock=ORDERS // 4, price=500 + round_no)
    other, _ = sku_on_sale(api_url, token, stock=ORDERS, price=700 + round_no)
    local = threading.local()

    def buy(i):
        if not hasattr(local, "s"):
            local.s = requests.Session()
        lines = [{"sku": sku, "quantity": 1}]
        if i % 3 == 0:
            lines.append({"sku": other, "quantity": 1 + i % 2})
        tok = buyers[i][1]
        r = place(api_url, tok, lines, local.s)
        assert r.status_code < 500, (r.status_code, r.text)
        return tok, placed_id(r)

    with ThreadPoolExecutor(max_workers=64) as pool:
        placed = list(pool.map(buy, range(ORDERS)))
    assert len({oid for _, oid in placed}) == ORDERS
    unread = dict((oid, tok) for tok, oid in placed)

    def all_readable():
        for oid, tok in list(unread.items()):
            if get_order(api_url, tok, oid):
                del unread[oid]
        return not unread

    wait_for(all_readable, timeout=120, interval=0.5, what=f"{ORDERS} placed orders readable")
    r = requests.get(f"{api_url}/healthz", timeout=10)
    assert r.status_code == 200, r.text
