"""Shadow rebuild, compare and swap (issue 11, item 4): POST /v1/admin/projections/{name}/rebuild
makes the live projector build the projection again beside its live tables, which keep serving;
it compares the two (row counts, checksums) and waits for POST .../swap, or swaps at once when
the comparison passes and the rebuild said "swap": "when_equal".

The first test rebuilds the stack's own catalog projection (what the API reads) under readers of
the API; the second a test projector's tables (test_projector's, a suffix of their own)."""
import time

import requests

from conftest import command_meta, unique, wait_for
from test_operator import admin, history, listed_in_api, logged, ops_rows, status  # noqa: F401
from test_projector import Events, listed, produce, projector, query  # noqa: F401
from test_rebuild import Readers, check_table_matches_events, listing, renaming
from test_rebuild import produce as command

N = 300
PROBE = 40


def table_id(db, name):
    """The InnoDB id of a table of catalog: a RENAME keeps it, so it tells the table that was the
    shadow from the one it replaced."""
    rows = query(db, "SELECT table_id FROM information_schema.innodb_sys_tables WHERE "
                     "name=CONCAT(DATABASE(), '/', %s)", name)
    return rows[0]["table_id"] if rows else None


def shadow_tables(db, table):
    rows = query(db, "SELECT table_name AS t FROM information_schema.tables WHERE "
                     "table_schema=DATABASE() AND table_name LIKE %s", f"{table}\\_rb%")
    return [r["t"] for r in rows]


def test_shadow_rebuild_under_live_reads_compares_equal_and_swaps_on_request(
        brokers, registry, api_url, db, admin):
    vendor, probe_vendor = unique("v-shadow"), unique("v-probe")
    prefix = unique("sh-") + "-"
    skus = [f"{prefix}{i:05d}" for i in range(N)]
    probe = [f"{prefix}p{i:03d}" for i in range(PROBE)]
    command(brokers, registry, "eventshop.catalog.ListProduct",
            listing(vendor, skus) + listing(probe_vendor, probe))
    wait_for(lambda: len(query(db, "SELECT sku FROM products WHERE sku LIKE %s", prefix + "%"))
             == N + PROBE, timeout=120, what="the products listed")
    live_id = table_id(db, "products")

    with Readers(api_url, db, skus, probe_vendor, probe) as readers:
        r = requests.post(f"{api_url}/v1/admin/projections/catalog_products/rebuild",
                          headers=admin[1], json={"reason": "test: shadow rebuild"}, timeout=30)
        assert r.status_code == 202, r.text
        assert r.json()["action"] == "rebuild" and r.json()["swap"] is None

        def ready():
            v = listed_in_api(api_url, admin[1], "catalog_products") or {}
            return v if v.get("state") == "shadow_ready" else None

        view = wait_for(ready, timeout=300, interval=0.5, what="the shadow ready and compared")
        cmp = view["compare"]
        assert cmp["equal"] is True, cmp
        tables = {t["table"]: t for t in cmp["tables"]}
        assert set(tables) == {"products", "event_index"}, cmp
        for t in tables.values():
            assert t["live_rows"] == t["shadow_rows"] and t["checksum"] == "equal", t
        assert tables["products"]["live_rows"] >= N + PROBE
        listing_out = history("list")
        assert listing_out.returncode == 0, listing_out.stderr
        assert "catalog_products (catalog) version" in listing_out.stdout
        assert "compared with the live tables: equal" in listing_out.stdout
        assert "compare event_index" in listing_out.stdout

        # waiting for its swap, the shadow follows the log while the live tables keep serving
        (shadow,) = shadow_tables(db, "products")
        shadow_id = table_id(db, shadow)
        assert shadow_id and live_id and shadow_id != live_id
        command(brokers, registry, "eventshop.catalog.ChangeProductDetails",
                renaming(vendor, skus[:50], "Shadowed"))
        wait_for(lambda: len(query(db, f"SELECT sku FROM `{shadow}` WHERE name LIKE %s",
                                   "Shadowed %")) >= 50,
                 timeout=60, what="the shadow follows the events that came after it was ready")
        assert table_id(db, "products") == live_id

        r = requests.post(f"{api_url}/v1/admin/projections/catalog_products/swap",
                          headers=admin[1], json={"reason": "test: swap it in"}, timeout=30)
        assert r.status_code == 202, r.text
        wait_for(lambda: (status(db, "catalog_products") or {}).get("detail", "").startswith(
                     "shadow rebuild swapped in"),
                 timeout=60, what="the swap done")
        # readers went on across the swap
        reads = readers.reads
        wait_for(lambda: readers.reads >= reads + 20, timeout=30, what="reads after the swap")
    assert not readers.errors, readers.errors[:10]
    assert readers.reads > 0
    # the live table is the rebuilt one (its InnoDB id), with every row the events make
    assert table_id(db, "products") == shadow_id
    assert not shadow_tables(db, "products") and not shadow_tables(db, "event_index")
    assert not query(db, "SELECT table_name FROM information_schema.tables WHERE "
                         "table_schema=DATABASE() AND table_name LIKE 'products\\_old%%'")
    conn = db("catalog")
    try:
        check_table_matches_events(conn, brokers, registry, prefix)
    finally:
        conn.close()
    done = query(db, "SELECT action, actor FROM projection_operations WHERE projection=%s AND "
                     "actor=%s", "catalog_products", admin[0])
    assert [(d["action"], d["actor"]) for d in done] == [("rebuild", admin[0])]
    wait_for(lambda: (listed_in_api(api_url, admin[1], "catalog_products") or {}).get("state")
             in ("running", "degraded"), timeout=30, what="the projection running again")


def test_shadow_rebuild_when_equal_swaps_by_itself(brokers, registry, db, projector, ops_rows):
    ev = Events(registry)
    p = projector(EVENTSHOP_HEALTH_STALL_S="3")  # the shadow's thread must not stay a loop
    ops_rows.append(p.key)
    p.start()
    sku = unique("sh-eq")
    produce(brokers, [listed(sku)], ev)
    wait_for(lambda: query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", sku), timeout=30,
             what="the projector applies")
    before = table_id(db, p.table)
    out = history("rebuild", p.key, "--when-equal", "--reason", "test: rebuild, swap if equal",
                  "--actor", "ops-cli")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: (status(db, p.key) or {}).get("detail", "").startswith(
                 "shadow rebuild swapped in"), timeout=120, what="the shadow swapped in by itself")
    assert logged(p, f"rebuild {p.key}: shadow compared with the live tables")
    after = table_id(db, p.table)
    assert after and after != before
    assert query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", sku)
    assert not shadow_tables(db, p.table)
    # liveness: the shadow's thread, over, is no silent loop (stall limit 3 s)
    ended = time.monotonic()
    wait_for(lambda: time.monotonic() - ended > 4 and requests.get(
        f"http://127.0.0.1:{p.port}/healthz", timeout=2).status_code == 200,
        timeout=15, what="the projector live after the shadow's thread ended")
    # a restart reads the action again and does not rebuild twice
    assert p.stop() == 0
    p.start()
    wait_for(lambda: p.log.read_text(errors="replace").count(f"{p.key}: operations.events read")
             >= 2, timeout=30, what="restarted")
    assert table_id(db, p.table) == after
    assert len(query(db, "SELECT 1 FROM projection_operations WHERE projection=%s", p.key)) == 1


def test_a_shadow_left_by_a_killed_projector_is_dropped_at_its_restart(
        brokers, registry, db, projector, ops_rows):
    ev = Events(registry)
    p = projector()
    ops_rows.append(p.key)
    p.start()
    sku = unique("sh-kill")
    produce(brokers, [listed(sku)], ev)
    wait_for(lambda: query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", sku), timeout=30,
             what="the projector applies")
    out = history("rebuild", p.key, "--reason", "test: killed mid-shadow", "--actor", "ops-cli")
    assert out.returncode == 0, out.stderr
    index = f"event_index{p.suffix}"

    def mid_shadow():
        st = status(db, p.key) or {}
        return (shadow_tables(db, p.table) and shadow_tables(db, index)
                and st.get("state") in ("rebuilding", "shadow_ready"))
    wait_for(mid_shadow, timeout=120, what="the shadow's tables made and its progress recorded")
    (left,) = shadow_tables(db, p.table)
    p.kill()
    assert shadow_tables(db, p.table) == [left], "the kill itself dropped nothing"
    p.start()
    wait_for(lambda: not shadow_tables(db, p.table) and not shadow_tables(db, index),
             timeout=60, what="the abandoned shadow's tables dropped at the restart")
    assert logged(p, f"dropped '{left}', left by a rebuild that did not finish")
    assert not query(db, "SELECT projection FROM projection_offsets WHERE projection LIKE %s",
                     p.key + "\\_rb%")
    # the action was done once (claimed): the restarted projector does not start it again
    assert len(query(db, "SELECT 1 FROM projection_operations WHERE projection=%s", p.key)) == 1
    assert query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", sku)
