"""The catalog command handler (command-handlers/, DESIGN.md §2 and §4), black-box on the real
broker and registry: commands produced with confluent-kafka's AvroSerializer are decided; events
land on the command's partition with full metadata and the command's traceparent; one result per
command lands on the same results partition and points at the command's last event; a duplicate
command id gets the first outcome and no new event; If-Match conflicts are rejected; the state in
the changelog equals the state replayed from the events. Needs the running stack's handler."""
import os
import shutil
import subprocess
import uuid

from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import command_meta, command_serializer, producer, read_topic, unique, wait_for

NS = "eventshop.catalog."


def send(brokers, registry, commands):
    """commands: list of (full_name, value). Produces them in order (keyed by sku), each with a
    traceparent; returns a list of (command_id, partition, traceparent)."""
    p = producer(brokers)
    sers = {}
    out = []
    for full_name, value in commands:
        ser = sers.get(full_name) or sers.setdefault(full_name, command_serializer(registry, full_name))
        data = ser(value, SerializationContext("catalog.commands", MessageField.VALUE))
        tp = "00-%s-%s-01" % (uuid.uuid4().hex, uuid.uuid4().hex[:16])
        slot = {}
        p.produce("catalog.commands", key=value["sku"], value=data, headers=[("traceparent", tp)],
                  on_delivery=lambda err, msg, slot=slot: slot.update(err=err, part=msg.partition()))
        assert p.flush(30) == 0
        assert slot["err"] is None, slot["err"]
        out.append((value["metadata"]["command_id"], slot["part"], tp))
    return out


def results_for(brokers, registry, ids):
    res = {}
    for m in read_topic(brokers, registry, "catalog.results"):
        v = m["value"]
        # fastavro gives logicalType uuid as uuid.UUID
        if v and str(v["command_id"]) in ids:
            res.setdefault(str(v["command_id"]), []).append(dict(v, _partition=m["partition"],
                                                            _headers=m["headers"]))
    return res


def wait_results(brokers, registry, ids, per_command=1, timeout=60):
    def done():
        r = results_for(brokers, registry, ids)
        return r if all(len(r.get(i, [])) >= per_command for i in ids) else None

    return wait_for(done, timeout=timeout, interval=0.5, what=f"results of {len(ids)} commands")


def events_of(brokers, registry, skus):
    return [m for m in read_topic(brokers, registry, "catalog.events") if m["key"] in skus]


def listing(sku, vendor, role="vendor", actor_vendor=None, name="Mug", cid=None, expected=None):
    return (NS + "ListProduct",
            {"metadata": command_meta("u-" + vendor, role,
                                      actor_vendor if role != "vendor" else (actor_vendor or vendor),
                                      sku, command_id=cid, expected=expected),
             "sku": sku, "vendor_id": vendor, "name": name, "description": "", "category": "kitchen",
             "attributes": {"colour": "blue"}, "currency": "EUR"})


def change(sku, vendor, expected=None, **fields):
    value = {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku, expected=expected),
             "sku": sku, "name": None, "description": None, "category": None, "attributes": None}
    value.update(fields)
    return (NS + "ChangeProductDetails", value)


def delist(sku, vendor):
    return (NS + "DelistProduct",
            {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku), "sku": sku})


def test_commands_are_decided_with_events_on_the_command_partition(brokers, registry):
    vendor = unique("v")
    skus = [unique("hs") for _ in range(6)]
    sent = send(brokers, registry, [listing(s, vendor) for s in skus]
                + [change(skus[0], vendor, name="Big mug"), delist(skus[1], vendor),
                   listing(unique("hs"), vendor, role="customer"),
                   change(skus[2], unique("other"), name="Stolen")])
    ids = [s[0] for s in sent]
    res = wait_results(brokers, registry, ids)
    by_id = {cid: res[cid][0] for cid in ids}
    for cid, part, tp in sent:
        assert by_id[cid]["_partition"] == part, "result not on the command's partition"
        assert by_id[cid]["partition"] == part
    statuses = [(by_id[c]["status"], by_id[c]["reason"]) for c in ids]
    assert statuses[:8] == [("ACCEPTED", None)] * 8
    assert statuses[8] == ("REJECTED", "not_owner")
    assert statuses[9] == ("REJECTED", "not_owner")
    assert by_id[ids[6]]["aggregate_version"] == 2 and by_id[ids[6]]["event_count"] == 1
    assert by_id[ids[9]]["offset"] == -1 and by_id[ids[9]]["event_count"] == 0

    events = events_of(brokers, registry, set(skus))
    assert len(events) == 8
    at = {(m["partition"], m["offset"]): m for m in events}
    for cid, part, tp in sent[:8]:
        r = by_id[cid]
        ev = at.get((part, r["offset"]))
        assert ev is not None, f"result of {cid} points at no event of partition {part}"
        md = ev["value"]["metadata"]
        assert str(md["command_id"]) == cid
        assert md["aggregate_id"] == ev["key"] == ev["value"]["sku"]
        assert md["aggregate_version"] == r["aggregate_version"]
        assert md["actor"] == "u-" + vendor
        # the event's span is the next hop of the command's: same trace id
        assert ev["headers"].get("traceparent", b"").decode()[:35] == tp[:35]
    # event ids are derived from the command, never reused across commands
    assert len({m["value"]["metadata"]["event_id"] for m in events}) == 8


def duplicate_gets_the_first_outcome(brokers, registry, between=lambda: None):
    """A listing, then between(), then the same command id again with another payload: the
    second result repeats the first and no event was added."""
    vendor, sku, cid = unique("v"), unique("hd"), str(uuid.uuid4())
    send(brokers, registry, [listing(sku, vendor, name="First", cid=cid)])
    first = wait_results(brokers, registry, [cid])[cid][0]
    assert first["status"] == "ACCEPTED"
    between()
    send(brokers, registry, [listing(sku, vendor, name="Second", cid=cid)])
    both = wait_results(brokers, registry, [cid], per_command=2)[cid]
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("_")}
    assert strip(both[1]) == strip(both[0])
    events = events_of(brokers, registry, {sku})
    assert len(events) == 1
    assert events[0]["value"]["name"] == "First"


def test_duplicate_command_id_gets_the_first_outcome_and_no_new_event(brokers, registry):
    duplicate_gets_the_first_outcome(brokers, registry)


def test_expected_version_conflict_is_rejected(brokers, registry):
    vendor, sku = unique("v"), unique("hv")
    sent = send(brokers, registry, [listing(sku, vendor), change(sku, vendor, expected=5, name="X"),
                                    change(sku, vendor, expected=1, name="Y")])
    res = wait_results(brokers, registry, [s[0] for s in sent])
    conflict, ok = res[sent[1][0]][0], res[sent[2][0]][0]
    assert (conflict["status"], conflict["reason"]) == ("REJECTED", "version_conflict")
    assert conflict["aggregate_version"] == 1
    assert (ok["status"], ok["aggregate_version"]) == ("ACCEPTED", 2)


def replay(events):
    """The catalog's evolve, written again independently: the changelog must agree with it."""
    state = None
    for m in sorted(events, key=lambda m: m["value"]["metadata"]["aggregate_version"]):
        v = m["value"]
        kind = _kind(v)
        if kind == "listed":
            state = {k: v[k] for k in ("sku", "vendor_id", "name", "description", "category",
                                       "attributes", "currency")}
            state["status"] = "LISTED"
        elif kind == "changed":
            state.update({k: v[k] for k in ("name", "description", "category", "attributes")})
        else:
            state["status"] = "DELISTED"
        state["version"] = v["metadata"]["aggregate_version"]
    return state


def _kind(v):
    if "vendor_id" in v:
        return "listed"
    return "changed" if "name" in v else "delisted"


def test_changelog_equals_replayed_events(brokers, registry):
    vendor = unique("v")
    skus = [unique("hr") for _ in range(4)]
    cmds = [listing(s, vendor) for s in skus]
    cmds += [change(skus[0], vendor, name="Renamed", attributes={"size": "L"}),
             change(skus[0], vendor, description="longer"), delist(skus[0], vendor),
             change(skus[1], vendor, category="home"), delist(skus[2], vendor),
             change(skus[3], vendor)]  # a no-op: accepted, no event
    sent = send(brokers, registry, cmds)
    wait_results(brokers, registry, [s[0] for s in sent])
    changelog = {}
    for m in read_topic(brokers, registry, "catalog.changelog"):
        if m["key"] in skus:
            changelog[m["key"]] = (m["partition"], m["value"])
    events = events_of(brokers, registry, set(skus))
    for sku in skus:
        evs = [m for m in events if m["key"] == sku]
        assert {m["partition"] for m in evs} == {changelog[sku][0]}, "changelog not co-partitioned"
        assert changelog[sku][1] == replay(evs), sku
    assert changelog[skus[0]][1]["version"] == 4 and changelog[skus[3]][1]["version"] == 1


def test_handler_refuses_to_start_with_an_incompatible_schema(tmp_path):
    """A changed .avsc that the registry rejects as incompatible cannot be deployed: the handler
    exits non-zero with a clear message before it consumes anything."""
    schemas = tmp_path / "schemas"
    shutil.copytree(os.environ["EVENTSHOP_SCHEMA_DIR"], schemas)
    state = schemas / "catalog" / "changelog" / "ProductState.avsc"
    text = state.read_text()
    assert '{"name": "version", "type": "long"}' in text
    state.write_text(text.replace('{"name": "version", "type": "long"}',
                                  '{"name": "version", "type": "string"}'))
    env = dict(os.environ, EVENTSHOP_SCHEMA_DIR=str(schemas), EVENTSHOP_INSTANCE_ID=unique("bad"))
    env.pop("EVENTSHOP_METRICS_ADDR", None)
    binary = os.path.join(os.environ["ES_BUILD"], "command-handlers", "eventshop-handler")
    run = subprocess.run([binary, "catalog"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "refusing to start" in run.stdout and "ProductState" in run.stdout


def test_a_result_points_at_its_event_after_another_producer_wrote_to_the_partition(brokers,
                                                                                    registry):
    """The handler guesses where its events land (it is their only writer: after its last
    event, one offset for the commit marker) so that a batch's results travel with its events.
    Another producer's transaction on the same partition of catalog.events (aborted: no
    read_committed reader ever sees it, but its record and its marker take offsets) makes the
    guess wrong: the delivery must catch that before the commit, and the result must still point
    at the command's own event, not two records before it."""
    vendor, sku = unique("v"), unique("hg")
    (cid1, part, _), = send(brokers, registry, [listing(sku, vendor)])
    wait_results(brokers, registry, [cid1])  # committed: the handler knows where `part` goes on
    log = os.path.join(os.environ["ES_STATE"], "logs", "handler-catalog.log")
    with open(log, "rb") as f:
        log_start = f.seek(0, os.SEEK_END)
    foreign = Producer({"bootstrap.servers": brokers, "transactional.id": unique("foreign")})
    foreign.init_transactions(30)
    foreign.begin_transaction()
    foreign.produce("catalog.events", key=sku, value=b"not an event", partition=part)
    assert foreign.flush(30) == 0
    foreign.abort_transaction(30)
    (cid2, part2, _), = send(brokers, registry, [change(sku, vendor, name="Renamed")])
    assert part2 == part  # the same sku: the same partition
    res = wait_results(brokers, registry, [cid2])[cid2][0]
    assert res["status"] == "ACCEPTED"
    at = {(m["partition"], m["offset"]): m for m in events_of(brokers, registry, {sku})}
    ev = at.get((part, res["offset"]))
    assert ev is not None, f"the result points at offset {res['offset']}: no event of ours there"
    assert str(ev["value"]["metadata"]["command_id"]) == cid2
    assert ev["value"]["name"] == "Renamed"
    with open(log, "rb") as f:  # the guess was made, and caught before the commit
        f.seek(log_start)
        assert b"was written by another producer" in f.read()


def test_a_burst_that_repeats_its_commands_adds_no_event(brokers, registry):
    """600 listings, then the same 600 commands again, produced in one go: the handler takes
    them in batches of what it has fetched (up to 500), so a repeat is decided in the batch of
    its first or in a batch decided while its first is still in flight, before that one is
    committed. Every repeat must get its first outcome and add no event."""
    vendor = unique("v")
    cmds = [listing(unique("hb"), vendor) for _ in range(600)]
    p = producer(brokers)
    ser = command_serializer(registry, NS + "ListProduct")
    for _ in range(2):
        for _, v in cmds:
            p.produce("catalog.commands", key=v["sku"],
                      value=ser(v, SerializationContext("catalog.commands", MessageField.VALUE)))
    assert p.flush(60) == 0
    ids = [v["metadata"]["command_id"] for _, v in cmds]
    res = wait_results(brokers, registry, ids, per_command=2, timeout=120)
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("_")}
    for cid in ids:
        first, again = res[cid][:2]
        assert first["status"] == "ACCEPTED"
        assert strip(again) == strip(first), f"{cid}: the repeat got another outcome"
    events = events_of(brokers, registry, {v["sku"] for _, v in cmds})
    assert len(events) == len(cmds), f"{len(events) - len(cmds)} events for repeated commands"
