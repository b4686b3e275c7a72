"""Projectors commit their positions to Kafka as well, for lag-based autoscaling (issue 9).

A projector's truth is its MariaDB position (projection_offsets, in the transaction of the rows);
it never reads Kafka's committed offsets. But KEDA scales projectors on the lag of a consumer
group (deploy/base/generated/contexts.yaml, the ScaledObject's consumerGroup), so after each
committed batch the projector commits the same positions to its group, asynchronously.

The committed offset may lie past the MariaDB position by transaction markers only (control
records: a read_committed consumer's position passes them, no message is there to apply); that
is what lets the lag reach 0 on topics written in transactions, as every events topic is.
"""
import os
import re
import subprocess

import requests
import yaml
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import TOP, env, mint_token, unique, wait_for
from test_projector import Events, listed, produce, projector  # noqa: F401 (a fixture)

TOPIC = "catalog.events"


def keda_group(context):
    """The consumer group KEDA watches for context's projector, as the manifests say."""
    with open(os.path.join(TOP, "deploy", "base", "generated", "contexts.yaml")) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc["kind"] == "ScaledObject" and \
                    doc["metadata"]["name"] == f"eventshop-projector-{context}":
                (trigger,) = doc["spec"]["triggers"]
                assert trigger["metadata"]["topic"] == f"{context}.events"
                return trigger["metadata"]["consumerGroup"]
    raise AssertionError(f"no ScaledObject for the {context} projector")


def partitions(brokers):
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("pj-offsets-md")})
    try:
        return sorted(c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
    finally:
        c.close()


def committed(brokers, group, parts):
    """{partition: committed offset of group} (negative: none)."""
    admin = AdminClient({"bootstrap.servers": brokers})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(TOPIC, p) for p in parts])
    res = admin.list_consumer_group_offsets([req])[group].result(30)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def stored(db, key):
    with db() as c, c.cursor() as cur:
        cur.execute("SELECT part, next_offset FROM projection_offsets WHERE projection=%s AND "
                    "topic=%s", (key, TOPIC))
        return {r["part"]: r["next_offset"] for r in cur.fetchall()}


def gap_is_markers_only(brokers, part, start, end):
    """Whether offsets [start, end) of the partition hold no message a read_committed reader
    gets: a reader placed at start reaches position end (past the transaction markers) without
    receiving anything."""
    if end <= start:
        return end == start
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("pj-gap"),
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(TOPIC, part, start)])
        got = []

        def reached():
            m = c.poll(0.2)
            if m is not None and not m.error() and m.offset() < end:
                got.append(m.offset())
            return got or c.position([TopicPartition(TOPIC, part)])[0].offset >= end

        wait_for(reached, timeout=30, interval=0, what=f"a reader at {part}:{start} to reach {end}")
        return not got
    finally:
        c.close()


def in_step(brokers, db, group, key, parts):
    """None until, for every partition, the group's committed offset is the high watermark (lag
    0) and the MariaDB position is that offset, or before it by transaction markers only; then
    {partition: (stored, committed, high watermark)}."""
    got = committed(brokers, group, parts)
    pos = stored(db, key)
    c = Consumer({"bootstrap.servers": brokers, "group.id": unique("pj-offsets-wm")})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in parts}
    finally:
        c.close()
    out = {}
    for p in parts:
        s, k, hi = pos.get(p, -1), got.get(p, -1001), ends[p]
        if hi == 0:  # an empty partition: nothing to commit, no lag
            continue
        if k != hi or s < 0 or s > k:
            return None
        out[p] = (s, k, hi)
    return out


def test_the_group_keda_watches_gets_the_projectors_positions(api_url, brokers, db):
    group = keda_group("catalog")
    # the live projector's default group (projections/pj_runtime.c) is the one KEDA watches
    assert group == "eventshop-catalog_products-projector", group
    tok = mint_token("vendor", unique("u"), unique("v"))
    positions = []
    for _ in range(3):
        sku = unique("KEDA")
        r = requests.post(f"{api_url}/v1/products", timeout=30,
                          json={"sku": sku, "name": "Lag", "category": "keda", "currency": "EUR",
                                "attributes": {"k": "v"}},
                          headers={"Authorization": f"Bearer {tok}", "Prefer": "wait=20"})
        assert r.status_code == 201, r.text
        positions.append(r.json()["position"])
        # the projection shows it (read-your-writes at the event's position)
        g = requests.get(f"{api_url}/v1/products/{sku}", timeout=30,
                         headers={"X-Min-Position": positions[-1]})
        assert g.status_code == 200, g.text
    parts = partitions(brokers)
    snap = wait_for(lambda: in_step(brokers, db, group, "catalog_products", parts), timeout=60,
                    what=f"group {group} committed at the projector's positions, lag 0")
    for pos in positions:
        p, off = (int(x) for x in pos.split(":"))
        assert snap[p][0] > off, f"{pos}: stored {snap[p]}"
    for p, (s, k, hi) in snap.items():
        assert gap_is_markers_only(brokers, p, s, k), \
            f"partition {p}: committed {k} passes unapplied events after the stored {s}"


def test_a_projector_into_other_tables_commits_to_its_own_group(brokers, registry, db, projector):
    """A projector with a table suffix (a test's or an operator's experiment) defaults to a group
    of its own: it must neither take partitions from the live projector nor commit positions of
    other tables to the group KEDA watches."""
    ev = Events(registry)
    p = projector()
    del p.env["EVENTSHOP_PROJECTOR_GROUP"]
    own = f"eventshop-{p.key}-projector"
    sku = unique("pj-own")
    last = produce(brokers, [listed(sku)], ev)
    p.start()
    parts = partitions(brokers)
    wait_for(lambda: in_step(brokers, db, own, p.key, parts), timeout=60,
             what=f"group {own} committed at the projector's positions, lag 0")
    (part, off), = last.items()
    assert stored(db, p.key)[part] > off
    admin = AdminClient({"bootstrap.servers": brokers})
    live = keda_group("catalog")
    desc = admin.describe_consumer_groups([live, own])
    live_clients = {m.client_id for m in desc[live].result(30).members}
    own_clients = {m.client_id for m in desc[own].result(30).members}
    assert f"eventshop-projector-{p.key}" in own_clients, own_clients
    assert f"eventshop-projector-{p.key}" not in live_clients, live_clients
    assert p.stop() == 0


def test_a_rebuild_commits_to_no_group(db):
    """A rebuild replays into shadow tables under a one-off group: committing there would only
    leave one orphaned group per rebuild in __consumer_offsets (nobody scales a rebuild), and
    committing to the live group would show KEDA the rebuild's progress as the live lag."""
    brokers = env("EVENTSHOP_KAFKA_BROKERS")
    projector = os.path.join(env("ES_BUILD"), "projections", "eventshop-projector")
    out = subprocess.run([projector, "catalog", "--rebuild"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    logged = out.stdout + out.stderr
    m = re.search(r"rebuild catalog_products: swapped in", logged)
    assert m, logged[-2000:]
    stamp = re.search(r"tables with suffix '_rb(\d+)'", logged).group(1)
    group = f"eventshop-catalog_products-rebuild-{stamp}"
    admin = AdminClient({"bootstrap.servers": brokers})
    groups = {g.group_id for g in admin.list_consumer_groups().result(30).valid}
    assert group not in groups, f"the rebuild committed offsets under {group}"
    # and the live group is unharmed: in step again with the (moved) live position
    parts = partitions(brokers)
    wait_for(lambda: in_step(brokers, db, keda_group("catalog"), "catalog_products", parts),
             timeout=60, what="the live group in step after the rebuild")


def commit_failures(p):
    m = re.search(r'^eventshop_projector_kafka_commit_failures_total\{projection="%s"\} (\S+)$'
                  % p.key, p.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


def commit_warnings(p):
    return p.log.read_text(errors="replace").count("committing its positions to group")


def test_failing_commits_never_stop_the_projector_and_warn_once_a_minute(brokers, registry, db,
                                                                         projector):
    ev = Events(registry)
    p = projector(EVENTSHOP_FAULTS="pj.kafka_commit=fail@1+")  # every commit fails
    group = p.env["EVENTSHOP_PROJECTOR_GROUP"]
    last = produce(brokers, [listed(unique("pj-fail"))], ev)
    p.start()
    wait_for(lambda: all(stored(db, p.key).get(part, -1) > off for part, off in last.items()),
             timeout=60, what="the events applied")
    wait_for(lambda: commit_failures(p) >= 2, timeout=30, what="a commit retried and failed again")
    # the projector goes on applying
    last = produce(brokers, [listed(unique("pj-fail"))], ev)
    wait_for(lambda: all(stored(db, p.key).get(part, -1) > off for part, off in last.items()),
             timeout=60, what="later events applied")
    assert p.proc.poll() is None
    assert commit_warnings(p) == 1, p.log.read_text()[-3000:]
    assert all(o < 0 for o in committed(brokers, group, partitions(brokers)).values())
    assert p.stop() == 0


def test_a_failed_commit_is_made_good_by_a_later_one(brokers, registry, db, projector):
    ev = Events(registry)
    p = projector(EVENTSHOP_FAULTS="pj.kafka_commit=fail@1")  # the first commit fails
    group = p.env["EVENTSHOP_PROJECTOR_GROUP"]
    produce(brokers, [listed(unique("pj-retry"))], ev)
    p.start()
    parts = partitions(brokers)
    wait_for(lambda: in_step(brokers, db, group, p.key, parts), timeout=60,
             what=f"group {group} committed at the projector's positions after a failure")
    assert commit_failures(p) == 1
    assert commit_warnings(p) == 1
    assert p.stop() == 0
