"""Projections as an operator sees them (issue 11, item 4): GET /v1/admin/projections and
eventshop-history projections list them; pause and resume, dead-letter replay and discard are
OperatorAction events on operations.events that every projector replica acts on.

The projectors here are test_projector's: each its own tables (a table suffix), so its key
(catalog_products_<s>) names it alone and an action on it disturbs nothing of the stack. Two
replicas share one key and one consumer group, as two pods of one Deployment do."""
import os
import subprocess
import time

import pytest
import requests

from conftest import env, read_topic, unique, wait_for
from test_projector import Events, changed, listed, produce, projector, query, stored_offsets  # noqa: F401

HISTORY = os.path.join(os.environ.get("ES_BUILD", "/work/main/build"), "history", "eventshop-history")


@pytest.fixture
def admin(token):
    sub = unique("ops-admin")
    return sub, {"Authorization": f"Bearer {token('admin', sub)}"}


@pytest.fixture
def ops_rows(db):
    """Forgets the status and operation rows of the projections a test names."""
    keys = []
    yield keys
    with db() as c, c.cursor() as cur:
        for k in keys:
            cur.execute("DELETE FROM projection_status WHERE projection=%s", (k,))
            cur.execute("DELETE FROM projection_operations WHERE projection=%s", (k,))


def replica_of(p, projector):
    """A second replica of projector p: the same tables, key and group, its own metrics port."""
    q = projector()
    q.suffix, q.key, q.table = p.suffix, p.key, p.table
    q.env = dict(p.env, EVENTSHOP_METRICS_ADDR=f"127.0.0.1:{q.port}")
    q.log = p.log.with_name(p.log.name.replace(".log", "-2.log"))
    return q


def started_replicas(projector, ops_rows):
    """Two replicas of a new test projector, started, its rows forgotten after the test."""
    p1 = projector()
    p2 = replica_of(p1, projector)
    ops_rows.append(p1.key)
    p1.start()
    p2.start()
    return p1, p2


def status(db, key):
    rows = query(db, "SELECT state, detail FROM projection_status WHERE projection=%s", key)
    return rows[0] if rows else None


def listed_in_api(api_url, headers, key):
    r = requests.get(f"{api_url}/v1/admin/projections", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return next((p for p in r.json()["projections"] if p["name"] == key), None)


def history(*args):
    return subprocess.run([HISTORY, "projections", *args], capture_output=True, text=True,
                          timeout=120, env=os.environ)


def logged(p, text):
    return text in p.log.read_text(errors="replace")


def test_pause_is_seen_by_every_replica_within_2s_and_kept_across_a_restart(
        api_url, brokers, registry, db, projector, admin, ops_rows):
    ev = Events(registry)
    p1, p2 = started_replicas(projector, ops_rows)
    first = unique("op-sku")
    produce(brokers, [listed(first)], ev)
    wait_for(lambda: query(db, f"SELECT sku FROM `{p1.table}` WHERE sku=%s", first), timeout=30,
             what="the projectors apply")
    view = listed_in_api(api_url, admin[1], p1.key)
    # (degraded: it reads catalog.events from the start, with the dead letters of other tests)
    assert view and view["state"] in ("running", "degraded") and view["context"] == "catalog", view
    assert view["partitions"] and all(pt["lag_events"] is not None for pt in view["partitions"])

    r = requests.post(f"{api_url}/v1/admin/projections/{p1.key}/pause", headers=admin[1],
                      json={"reason": "test: hold the projection"}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["actor"] == admin[0] and r.json()["action"] == "pause"
    asked = time.monotonic()
    marker = f"projector {p1.key}: paused by {admin[0]}"
    wait_for(lambda: logged(p1, marker) and logged(p2, marker), timeout=2, interval=0.05,
             what="both replicas paused")
    assert time.monotonic() - asked <= 2.5

    def held(procs):
        """events produced while paused: the stored offsets stay while the lag shows them
        waiting, and the status says paused"""
        before = stored_offsets(db, p1.key)
        skus = [unique("op-held") for _ in range(8)]
        produce(brokers, [listed(s) for s in skus], ev)
        wait_for(lambda: (listed_in_api(api_url, admin[1], p1.key) or {}).get("state") == "paused"
                 and sum(pt["lag_events"] or 0 for pt in
                         listed_in_api(api_url, admin[1], p1.key)["partitions"]) >= 8,
                 timeout=10, what="the paused projection's lag counts the new events")
        for _ in range(10):  # 3 s of the replicas running (alive) without applying
            assert all(p.proc.poll() is None for p in procs)
            assert stored_offsets(db, p1.key) == before
            assert status(db, p1.key)["state"] == "paused"
            time.sleep(0.3)
        return skus

    held([p1, p2])
    # across a restart: both come back paused (the topic, read from its start, says so)
    assert p1.stop() == 0 and p2.stop() == 0
    p1.start()
    p2.start()
    for p in (p1, p2):
        wait_for(lambda p=p: logged(p, f"operations.events read, paused by {admin[0]}"),
                 timeout=30, what="the restarted replica is paused")
    skus = held([p1, p2])

    out = history("resume", p1.key, "--reason", "test: go on", "--actor", "ops-cli")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: len(query(db, f"SELECT sku FROM `{p1.table}` WHERE sku IN %s",
                               tuple(skus))) == len(skus),
             timeout=30, what="the resumed projectors apply what was held")
    wait_for(lambda: status(db, p1.key)["state"] == "running", timeout=10, what="running again")
    assert logged(p1, f"projector {p1.key}: resumed by ops-cli") or \
        logged(p2, f"projector {p1.key}: resumed by ops-cli")
    listing = history("list")
    assert listing.returncode == 0, listing.stderr
    assert f"{p1.key} (catalog) version" in listing.stdout


def test_dead_letters_are_replayed_after_a_fix_and_discarded_with_a_reason(
        api_url, brokers, registry, db, projector, admin, ops_rows):
    ev = Events(registry)
    p = projector()
    ops_rows.append(p.key)
    p.start()
    ghost, gone, fine = unique("op-ghost"), unique("op-gone"), unique("op-fine")
    # one event per transaction: produce names where each landed, the dead letter's id
    ghost_id = "%s:%d:%d" % ((p.key,) + next(iter(produce(brokers, [changed(ghost, 2, "fixed later")], ev).items())))
    gone_id = "%s:%d:%d" % ((p.key,) + next(iter(produce(brokers, [changed(gone, 2, "never listed")], ev).items())))
    produce(brokers, [listed(fine)], ev)

    def letters():
        r = requests.get(f"{api_url}/v1/admin/dead-letters", headers=admin[1], timeout=30)
        assert r.status_code == 200, r.text
        return {d["id"]: d for d in r.json()["dead_letters"] if d["projection"] == p.key}

    # (the projector reads catalog.events from its start: earlier runs' dead letters come too)
    wait_for(lambda: {ghost_id, gone_id} <= set(letters()), timeout=30, what="two dead letters")
    # the projector carried on past them
    wait_for(lambda: query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", fine), timeout=30,
             what="the event after the dead letters applied")
    assert listed_in_api(api_url, admin[1], p.key)["state"] == "degraded"

    # the fix: the sku now exists, so the change applies
    produce(brokers, [listed(ghost)], ev)
    wait_for(lambda: query(db, f"SELECT sku FROM `{p.table}` WHERE sku=%s", ghost), timeout=30,
             what="the fix applied")
    r = requests.post(f"{api_url}/v1/admin/dead-letters/{ghost_id}/replay", headers=admin[1],
                      json={"reason": "test: sku listed now"}, timeout=30)
    assert r.status_code == 202, r.text
    wait_for(lambda: ghost_id not in letters(), timeout=30, what="the replayed dead letter gone")
    assert query(db, f"SELECT name FROM `{p.table}` WHERE sku=%s", ghost)[0]["name"] == "fixed later"

    out = history("discard", gone_id, "--reason", "test: sku never existed", "--actor", "ops-cli")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: gone_id not in letters(), timeout=30, what="the discarded dead letter gone")
    done = query(db, "SELECT action, actor, reason FROM projection_operations WHERE projection=%s "
                     "ORDER BY done_at", p.key)
    assert [(d["action"], d["actor"]) for d in done] == [("replay", admin[0]), ("discard", "ops-cli")]
    actions = [m["value"] for m in read_topic(brokers, registry, "operations.events")
               if m["value"] and m["value"]["projection"] == p.key]
    assert {(a["action"], a["actor"], a["reason"]) for a in actions} == {
        ("replay", admin[0], "test: sku listed now"),
        ("discard", "ops-cli", "test: sku never existed")}
    # a restart reads the actions again and does nothing twice
    assert p.stop() == 0
    p.start()
    wait_for(lambda: logged(p, "operations.events read"), timeout=30, what="restarted")
    assert len(query(db, "SELECT 1 FROM projection_operations WHERE projection=%s", p.key)) == 2


def test_an_idle_projector_stands_at_the_high_watermark_past_the_commit_markers(
        api_url, brokers, registry, db, projector, admin, ops_rows):
    """Every Kafka transaction ends with a commit marker that no consumer receives. A caught-up
    projector stores its consumer's position past it, so the operator's lag of an idle
    projection is 0 in events and in seconds, not 1 per partition and growing."""
    ev = Events(registry)
    p = projector()
    ops_rows.append(p.key)
    p.start()
    last = produce(brokers, [listed(unique("idle-sku"))], ev)
    ((part, off),) = last.items()
    # the event at off, its transaction's marker at off + 1: stored past both
    wait_for(lambda: stored_offsets(db, p.key).get(part, -1) >= off + 2, timeout=30,
             what="the stored offset past the commit marker")

    def idle_view():
        view = listed_in_api(api_url, admin[1], p.key)
        return view and view["partitions"] and all(
            pt["lag_events"] == 0 and pt["lag_seconds"] == 0 for pt in view["partitions"])
    wait_for(idle_view, timeout=30, what="no lag on any partition of the idle projection")
