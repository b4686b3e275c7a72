"""Crypto-shredding, end to end, where test_users.py stops: after DELETE /v1/users/{id} not one
row of any table of any eventshop_* database holds the user's e-mail, name or phone in plaintext
(a scan, with a control proving the scan finds what is there), the key row is gone, no log of
the stack holds them, and the user's events, decoded with the Python client, hold only sealed
values that no key of the key store opens."""
import glob
import os
import uuid

import pytest
import requests

from conftest import env, mint_token, read_topic, wait_for
from test_users import sodium_open

pytestmark = pytest.mark.skipif("users" not in os.environ.get("ES_CONTEXTS", "").split(),
                                reason="the stack does not run the users context")

WAIT = {"Prefer": "wait=15"}
TEXT_TYPES = ("char", "varchar", "text", "tinytext", "mediumtext", "longtext", "blob",
              "tinyblob", "mediumblob", "longblob", "binary", "varbinary", "json")


def scan(db, needles):
    """Every (database.table.column, needle) of the eventshop_* databases where a needle occurs
    in a text or binary column (server-side LIKE, so large tables cost no transfer)."""
    hits = []
    with db("catalog").cursor() as cur:
        cur.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema LIKE 'eventshop\\_%%' AND data_type IN %s", (TEXT_TYPES,))
        cols = cur.fetchall()
        assert any(c["table_schema"] == "eventshop_users" for c in cols), "no users table found"
        for c in cols:
            where = " OR ".join(["CAST(`{}` AS BINARY) LIKE %s".format(c["column_name"])] * len(needles))
            cur.execute(f"SELECT COUNT(*) AS n FROM `{c['table_schema']}`.`{c['table_name']}` "
                        f"WHERE {where}", [b"%" + n.encode() + b"%" for n in needles])
            if cur.fetchone()["n"]:
                hits.append(f"{c['table_schema']}.{c['table_name']}.{c['column_name']}")
    return hits


def test_the_scan_finds_plaintext_that_is_there(api_url, db):
    """The control: a product name is plaintext in eventshop_catalog, and the scan sees it."""
    vendor = f"v-{uuid.uuid4().hex[:8]}"
    marker = f"Marker {uuid.uuid4().hex}"
    sku = f"SHR-{uuid.uuid4().hex[:8]}"
    r = requests.post(f"{api_url}/v1/products", timeout=30,
                      headers={"Authorization": f"Bearer {mint_token('vendor', vendor, vendor)}", **WAIT},
                      json={"sku": sku, "name": marker, "category": "k", "currency": "EUR"})
    assert r.status_code == 201, r.text
    requests.get(f"{api_url}/v1/products/{sku}", headers={"X-Min-Position": r.json()["position"]},
                 timeout=30)
    assert "eventshop_catalog.products.name" in scan(db, [marker])


def test_forgetting_leaves_no_plaintext_anywhere(api_url, brokers, registry, db):
    tag = uuid.uuid4().hex[:10]
    email = f"shred-{tag}@example.test"
    name = f"Shred Name {tag}"
    phone = f"+44 20 {int(tag[:8], 16) % 10**8:08d}"
    password = f"shred password {tag}"
    r = requests.post(f"{api_url}/v1/users", headers=WAIT, timeout=30,
                      json={"email": email, "password": password, "name": name, "role": "customer",
                            "phone": phone})
    assert r.status_code == 201, r.text
    uid = r.headers["Location"].rsplit("/", 1)[1]
    admin = {"Authorization": f"Bearer {mint_token('admin', 'shred-suite')}"}
    g = requests.get(f"{api_url}/v1/users/{uid}", timeout=30,
                     headers={**admin, "X-Min-Position": r.json()["position"]})
    assert g.status_code == 200 and g.json()["phone"] == phone, g.text  # readable before

    r = requests.delete(f"{api_url}/v1/users/{uid}", headers={**admin, **WAIT}, timeout=30)
    assert r.status_code == 200, r.text
    g = requests.get(f"{api_url}/v1/users/{uid}", timeout=30,
                     headers={**admin, "X-Min-Position": r.json()["position"]})
    assert g.status_code == 410, g.text

    # the key row is gone, and so is every plaintext from every read model
    with db("keys").cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM user_keys WHERE user_id = %s", (uid,))
        assert cur.fetchone()["n"] == 0, "the key row survived"
        cur.execute("SELECT user_id, key_material FROM user_keys")
        keys = [bytes(k["key_material"]) for k in cur.fetchall()]
    needles = [email, email.lower(), name, phone, password]
    assert scan(db, needles) == [], "plaintext personal data in a read model"

    # no log line of any role holds them either
    logs = glob.glob(os.path.join(env("ES_STATE"), "logs", "*.log"))
    assert any(p.endswith("api.log") for p in logs), logs
    for path in logs:
        with open(path, "rb") as f:
            text = f.read()
        for n in needles:
            assert n.encode() not in text, f"{n!r} in {path}"

    # the events stay; decoded, they show only sealed values nothing left opens
    evs = [m["value"] for m in read_topic(brokers, registry, "users.events")
           if m["key"] == uid and m["value"]]
    assert any("email_enc" in e for e in evs), "the UserRegistered event is gone"
    for ev in evs:
        flat = repr(ev)
        for n in needles:
            assert n not in flat, f"{n!r} in a decoded event"
        for field in ("email", "name", "phone", "password_hash"):
            sealed = ev.get(f"{field}_enc")
            if sealed is None:
                continue
            assert isinstance(sealed, (bytes, str)) and len(sealed) > 24
            for k in keys:
                assert sodium_open(sealed, k, uid, field) is None, f"a key still opens {field}"


def test_registering_again_after_forgetting_leaves_the_old_events_unreadable_not_failing(api_url):
    """A user id is derived from the e-mail: registering again after being forgotten gives the
    same id a new key, which cannot open the events sealed under the destroyed one. Their history
    shows those events' personal fields null (shredded, unreadable) and the new registration
    opened, instead of failing the whole answer."""
    email = f"again-{uuid.uuid4().hex[:8]}@example.test"
    body = {"email": email, "password": "a long enough password", "name": "First Life",
            "role": "customer"}
    r = requests.post(f"{api_url}/v1/users", json=body, headers=WAIT, timeout=30)
    assert r.status_code == 201, r.text
    uid = r.headers["Location"].rsplit("/", 1)[1]
    admin = {"Authorization": f"Bearer {mint_token('admin', 'again-suite')}"}
    r = requests.delete(f"{api_url}/v1/users/{uid}", headers={**admin, **WAIT}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(f"{api_url}/v1/users", json=dict(body, name="Second Life"), headers=WAIT,
                      timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["Location"].rsplit("/", 1)[1] == uid  # the same id, a new key

    def history():
        r = requests.get(f"{api_url}/v1/history/users/{uid}", headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        return items if len(items) >= 3 else None
    items = wait_for(history, timeout=30, what="the three events in the user's history")
    first, second = items[0], items[-1]
    assert first["type"].endswith("UserRegistered") and second["type"].endswith("UserRegistered")
    assert first.get("unreadable") is True and first.get("shredded") is True, first
    assert first["payload"]["name"] is None and first["payload"]["email"] is None, first
    assert second["payload"]["name"] == "Second Life" and not second.get("unreadable"), second
