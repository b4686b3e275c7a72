"""DESIGN.md §4, exactly-once effect: a handler or projector killed with SIGKILL in the middle of
a batch and restarted leaves no duplicate and no lost event, and every row applied exactly once.
Also: state recovered from the changelog equals state rebuilt from the events, events land on the
command's partition, and a duplicate command id gets the first outcome and no new event."""
import uuid

from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import command_meta, command_serializer, producer, read_topic, unique, wait_for

N = 2000


def produce_commands(brokers, registry, full_name, commands):
    """Produces (key, value) commands; returns {command_id: partition}."""
    ser = command_serializer(registry, full_name)
    p = producer(brokers, **{"linger.ms": 20})
    parts, errors = {}, []

    def report(cid):
        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                parts[cid] = msg.partition()
        return on_delivery

    for key, value in commands:
        data = ser(value, SerializationContext("catalog.commands", MessageField.VALUE))
        tp = "00-%s-%s-01" % (uuid.uuid4().hex, uuid.uuid4().hex[:16])
        p.produce("catalog.commands", key=key, value=data, headers=[("traceparent", tp)],
                  on_delivery=report(value["metadata"]["command_id"]))
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors
    return parts


def results_by_command(brokers, registry, ids):
    res = {}
    for m in read_topic(brokers, registry, "catalog.results"):
        v = m["value"]
        if v["command_id"] in ids:
            res.setdefault(v["command_id"], []).append((m["partition"], v))
    return res


def count_results(brokers, registry, ids):
    return len(results_by_command(brokers, registry, ids))


def list_commands(prefix, vendor, n):
    out = []
    for i in range(n):
        sku = f"{prefix}-{i:05d}"
        out.append((sku, {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku),
                          "sku": sku, "vendor_id": vendor, "name": f"Product {i}",
                          "description": "made in a crash test", "category": "crash",
                          "attributes": {"i": str(i)}, "currency": "EUR"}))
    return out


def test_handler_killed_mid_batch_loses_and_duplicates_nothing(stack, brokers, registry):
    prefix, vendor = unique("kh"), unique("v")
    cmds = list_commands(prefix, vendor, N)
    ids = {c[1]["metadata"]["command_id"] for c in cmds}
    # the handler crashes (SIGKILL) at its 3rd commit of batches of at most 200, with that
    # batch's events produced and its transaction open: mid-burst by construction, not by timing
    stack.kill("handler-catalog")
    stack.start("handler-catalog", EVENTSHOP_FAULTS="txn.before_commit@3",
                EVENTSHOP_HANDLER_BATCH="200")
    parts = produce_commands(brokers, registry, "eventshop.catalog.ListProduct", cmds)
    stack.wait_crashed("handler-catalog", "txn.before_commit")
    decided_before = count_results(brokers, registry, ids)
    assert 0 < decided_before <= 400, f"{decided_before} decided at the crash: not mid-burst"
    stack.start("handler-catalog")
    wait_for(lambda: count_results(brokers, registry, ids) == N, timeout=120, interval=1,
             what=f"all {N} results (had {decided_before} at the kill)")

    results = results_by_command(brokers, registry, ids)
    assert all(len(r) == 1 for r in results.values()), "a command was decided twice"
    assert all(r[0][1]["status"] == "ACCEPTED" for r in results.values())
    events = [m for m in read_topic(brokers, registry, "catalog.events")
              if m["key"] and m["key"].startswith(prefix + "-")]
    skus = [m["key"] for m in events]
    assert len(skus) == N, f"{len(skus)} events for {N} commands"
    assert len(set(skus)) == N, "duplicate events"
    assert len({m["value"]["metadata"]["event_id"] for m in events}) == N
    for m in events:
        meta = m["value"]["metadata"]
        assert meta["aggregate_version"] == 1
        # the handler writes a command's events to the command's partition (DESIGN.md §2)
        assert m["partition"] == parts[meta["command_id"]]
        # the result's position points at the event
        (rp, r), = results[meta["command_id"]]
        assert (rp, r["partition"], r["offset"]) == (m["partition"], m["partition"], m["offset"])


def test_changelog_state_equals_replayed_events(stack, brokers, registry):
    prefix, vendor = unique("cl"), unique("v")
    cmds = list_commands(prefix, vendor, 40)
    ids = {c[1]["metadata"]["command_id"] for c in cmds}
    produce_commands(brokers, registry, "eventshop.catalog.ListProduct", cmds)
    changes = []
    for i, (sku, _) in enumerate(cmds[:20]):
        changes.append((sku, {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku),
                              "sku": sku, "name": f"Renamed {i}", "description": None,
                              "category": None, "attributes": {"colour": "red"}}))
    ids |= {c[1]["metadata"]["command_id"] for c in changes}
    produce_commands(brokers, registry, "eventshop.catalog.ChangeProductDetails", changes)
    delists = [(sku, {"metadata": command_meta("admin-1", "admin", None, sku), "sku": sku})
               for sku, _ in cmds[30:]]
    ids |= {c[1]["metadata"]["command_id"] for c in delists}
    produce_commands(brokers, registry, "eventshop.catalog.DelistProduct", delists)
    wait_for(lambda: count_results(brokers, registry, ids) == len(ids), timeout=60,
             what="all results")

    # replay: fold the events per sku, the way a fresh reader would
    replayed = {}
    for m in read_topic(brokers, registry, "catalog.events"):
        k, v = m["key"], m["value"]
        if not k or not k.startswith(prefix + "-"):
            continue
        s = replayed.setdefault(k, {})
        if "vendor_id" in v:  # ProductListed
            s.update({f: v[f] for f in ("sku", "vendor_id", "name", "description", "category",
                                        "attributes", "currency")})
            s["status"] = "LISTED"
        elif "name" in v:  # ProductDetailsChanged
            s.update({f: v[f] for f in ("name", "description", "category", "attributes")})
        else:
            s["status"] = "DELISTED"
        s["version"] = v["metadata"]["aggregate_version"]
    changelog = {}
    for m in read_topic(brokers, registry, "catalog.changelog"):
        if m["key"] and m["key"].startswith(prefix + "-"):
            changelog[m["key"]] = m["value"]
    assert len(replayed) == 40
    assert changelog == replayed
    assert changelog[cmds[0][0]]["version"] == 2 and changelog[cmds[35][0]]["status"] == "DELISTED"


def test_duplicate_command_id_gets_first_outcome_and_no_event(brokers, registry):
    prefix, vendor = unique("dup"), unique("v")
    cmds = list_commands(prefix, vendor, 1)
    cid = cmds[0][1]["metadata"]["command_id"]
    produce_commands(brokers, registry, "eventshop.catalog.ListProduct", cmds)
    first = wait_for(lambda: results_by_command(brokers, registry, {cid}).get(cid), what="result")
    # the same command again, and a different command reusing its id: both get the first outcome
    again = [(cmds[0][0], dict(cmds[0][1], name="changed"))]
    produce_commands(brokers, registry, "eventshop.catalog.ListProduct", again)
    two = wait_for(lambda: len(results_by_command(brokers, registry, {cid}).get(cid, [])) >= 2 and
                   results_by_command(brokers, registry, {cid})[cid], what="second result")
    assert two[1][1]["status"] == first[0][1]["status"] == "ACCEPTED"
    assert two[1][1]["aggregate_version"] == first[0][1]["aggregate_version"] == 1
    # the second result is committed in the same transaction as any event of the retry: reading
    # the events now (read_committed) sees all there will ever be of it
    events = [m for m in read_topic(brokers, registry, "catalog.events") if m["key"] == cmds[0][0]]
    assert len(events) == 1


def test_projector_killed_mid_batch_applies_every_event_once(stack, brokers, registry, db):
    prefix, vendor = unique("kp"), unique("v")
    cmds = list_commands(prefix, vendor, N)
    ids = {c[1]["metadata"]["command_id"] for c in cmds}
    conn = db("catalog")

    def rows(where=""):
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM products WHERE sku LIKE %s " + where,
                        (prefix + "-%",))
            return cur.fetchone()["n"]

    # the projector crashes at its 4th batch of at most 100 events, with the batch applied and
    # not committed: the kill lands mid-burst by construction, not by timing. It must have
    # nothing else to apply first (the handler test's burst), so that those batches are ours.
    wait_for(lambda: stack.projector_lag("projector-catalog") == 0, timeout=120,
             what="the catalog projector caught up")
    stack.kill("projector-catalog")
    stack.start("projector-catalog", EVENTSHOP_FAULTS="pj.before_commit@4",
                EVENTSHOP_PROJECTOR_BATCH="100")
    produce_commands(brokers, registry, "eventshop.catalog.ListProduct", cmds)
    stack.wait_crashed("projector-catalog", "pj.before_commit")
    at_kill = rows()
    assert 0 < at_kill <= 300, f"{at_kill} rows at the crash: not mid-burst"
    changes = [(sku, {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku), "sku": sku,
                      "name": "v2 " + sku, "description": None, "category": None,
                      "attributes": None}) for sku, _ in cmds]
    ids |= {c[1]["metadata"]["command_id"] for c in changes}
    produce_commands(brokers, registry, "eventshop.catalog.ChangeProductDetails", changes)
    # and once more, right after a commit in the middle of the rest
    stack.start("projector-catalog", EVENTSHOP_FAULTS="pj.after_commit@3",
                EVENTSHOP_PROJECTOR_BATCH="100")
    stack.wait_crashed("projector-catalog", "pj.after_commit")
    progressed = rows() - at_kill + rows("AND version = 2")
    assert 0 < progressed <= 300, f"{progressed} events applied at the crash: not mid-burst"
    stack.start("projector-catalog")
    wait_for(lambda: rows("AND version = 2") == N, timeout=180, interval=0.5,
             what=f"all {N} rows at version 2 ({at_kill} rows at the first kill)")
    assert rows() == N
    assert rows("AND applied_events <> version") == 0, "an event was applied twice or lost"
