"""Two rebuilds of one projection at once (review of the per-batch lock): a rebuild's batches skip
the live projector's named lock, so the rebuild lock taken at start-up (pj_rb_start,
eventshop.<ctx>.<key>.rebuild) alone keeps a second rebuild off the same shadow tables.

Two `eventshop-projector catalog --rebuild catalog_products` start together: one takes the lock
and replays; the test freezes it there (SIGSTOP, so that it cannot finish before the other has
tried) and the other must exit non-zero saying a rebuild already runs. Let go, the first swaps its
tables in, and the rebuilt tables hold exactly what the live ones held."""
import os
import signal
import subprocess
import threading

import requests

from conftest import unique, wait_for
from test_operator import admin, logged, ops_rows, started_replicas, status  # noqa: F401
from test_operator_rebuild import shadow_tables
from test_projector import Events, listed, projector, query  # noqa: F401
from test_projector import produce as produce_events
from test_rebuild import PROJECTOR, listing, produce, rows_where

N = 1500  # enough events that a replay outlasts the start of a second process many times over
TABLES = ("products", "event_index")
RUNNING = "replaying catalog.events from offset 0"
REFUSED = "a rebuild of 'catalog_products' is already running"


def snapshot(conn):
    """Every row of the projection's tables, in a stable order."""
    return {t: sorted(tuple(str(v) for v in r.values())
                      for r in rows_where(conn, f"SELECT * FROM `{t}`")) for t in TABLES}


def test_two_rebuilds_at_once_one_runs_the_other_is_refused(stack, brokers, registry, db, tmp_path):
    prefix = unique("rbx") + "-"
    vendor = unique("v")
    skus = [f"{prefix}{i:05d}" for i in range(N)]
    conn = db("catalog")
    produce(brokers, registry, "eventshop.catalog.ListProduct", listing(vendor, skus))
    wait_for(lambda: rows_where(conn, "SELECT COUNT(*) AS n FROM products WHERE sku LIKE %s",
                                (prefix + "%",))[0]["n"] == N,
             timeout=120, interval=0.5, what="the products listed")
    before = snapshot(conn)

    logs = [tmp_path / f"rebuild-{i}.log" for i in (1, 2)]
    env = dict(os.environ, EVENTSHOP_PROJECTOR_BATCH="50")
    procs = [subprocess.Popen([PROJECTOR, "catalog", "--rebuild", "catalog_products"], env=env,
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT) for log in logs]
    try:
        def text(i):
            return logs[i].read_text(errors="replace")

        # the one holding the rebuild lock says so before it replays a single event
        (first,) = wait_for(lambda: [i for i in (0, 1) if RUNNING in text(i)][:1],
                            timeout=60, what="one rebuild replaying")
        procs[first].send_signal(signal.SIGSTOP)
        other = 1 - first
        try:
            rc = procs[other].wait(60)
        except subprocess.TimeoutExpired:
            rc = None
        assert rc is not None and rc != 0, \
            f"the second rebuild ran beside the first (exit {rc}): {text(other)[-2000:]}"
        assert REFUSED in text(other), text(other)[-2000:]
        assert RUNNING not in text(other), text(other)[-2000:]
        procs[first].send_signal(signal.SIGCONT)
        assert procs[first].wait(120) == 0, text(first)[-3000:]
        assert "swapped in" in text(first), text(first)[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(10)

    # the rebuilt tables, swapped in, hold exactly what the live ones held; none is left over
    assert snapshot(conn) == before
    left = rows_where(conn, "SELECT table_name AS t FROM information_schema.tables WHERE "
                            "table_schema=DATABASE() AND table_name REGEXP "
                            "'^(products|event_index)_(rb|old)[0-9]+$'")
    assert not left, left
    keys = {r["projection"] for r in rows_where(conn, "SELECT DISTINCT projection FROM "
                                                      "projection_offsets")}
    assert not [k for k in keys if k.startswith("catalog_products_rb")], keys
    conn.close()


def test_two_rebuild_requests_at_once_run_one_shadow(api_url, brokers, registry, db, projector,
                                                    admin, ops_rows):
    """The admin API's two rebuilds of one projection at once, two replicas reading both: one
    shadow rebuild runs, compares equal with the live tables and swaps in; no second one runs,
    then or at a restart."""
    ev = Events(registry)
    p1, p2 = started_replicas(projector, ops_rows)
    skus = [unique("rbx-api") for _ in range(20)]
    produce_events(brokers, [listed(s) for s in skus], ev)
    wait_for(lambda: len(query(db, f"SELECT sku FROM `{p1.table}` WHERE sku IN %s", skus)) == 20,
             timeout=30, what="the projectors apply")
    before = {t: query(db, f"SELECT * FROM `{t}` ORDER BY 1")
              for t in (p1.table, f"event_index{p1.suffix}")}

    url = f"{api_url}/v1/admin/projections/{p1.key}/rebuild"
    answers = []

    def ask(i):
        answers.append(requests.post(url, headers=admin[1], timeout=30,
                                     json={"reason": f"test: two at once ({i})",
                                           "swap": "when_equal"}))
    threads = [threading.Thread(target=ask, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    wait_for(lambda: (status(db, p1.key) or {}).get("detail", "").startswith(
                 "shadow rebuild swapped in"), timeout=120, what="the shadow swapped in")

    def ran():
        return sum(p.log.read_text(errors="replace").count(f"rebuild {p1.key}: shadow rebuild "
                                                           "asked by") for p in (p1, p2))
    assert ran() == 1
    assert logged(p1, "shadow compared with the live tables") or \
        logged(p2, "shadow compared with the live tables")
    after = {t: query(db, f"SELECT * FROM `{t}` ORDER BY 1") for t in before}
    assert after == before
    assert not shadow_tables(db, p1.table)
    # the other action is recorded refused (by the replica running the rebuild, under its lock)
    ops = query(db, "SELECT action, reason FROM projection_operations WHERE projection=%s",
                p1.key)
    assert sorted(o["action"] for o in ops) == ["rebuild", "rebuild_refused"], ops
    # restarted, the replicas read both actions again and run neither
    for p in (p1, p2):
        assert p.stop() == 0
    p1.start()
    wait_for(lambda: p1.log.read_text(errors="replace").count(
        f"{p1.key}: operations.events read") >= 2, timeout=30, what="restarted")
    assert ran() == 1, (status(db, p1.key), p1.log.read_text(errors="replace")[-3000:])
    assert (status(db, p1.key) or {}).get("state") != "rebuilding"
