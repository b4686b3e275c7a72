"""The handler's pipeline when the batch in flight fails (command-handlers/hd_runtime.c,
docs/ARCHITECTURE.md "The handler's pipeline"): batch n+1 is decided from what batch n staged
while n's transaction runs on the transaction thread; when n fails, n+1 (decided on top of it) is
dropped and both are read again. Nothing in a healthy stack fails a commit, so the failure is
forced with the fault point txn.before_commit (see test_txn_abort.py), and the drop is made
certain rather than hoped for: every command is on catalog.commands before the handler starts, so
the batches are full (BATCH commands) and each is decided while the one before it is in flight.
The positive marker that the drop path ran is the handler's own
eventshop_handler_batches_dropped_total."""
import os

from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import command_serializer, producer, read_topic, unique, wait_for
from test_handler import change, listing, results_for
from test_orders import murmur2_partition
from test_txn_abort import metric

BATCH = 3
N = 3 * BATCH + 1  # commands per aggregate: a ListProduct, then N - 1 ChangeProductDetails


def produce_in_order(brokers, registry, commands):
    """commands: (full_name, value), produced in order (keyed by sku) and flushed once."""
    p = producer(brokers, **{"linger.ms": 20})
    sers, errors = {}, []
    for full_name, value in commands:
        ser = sers.get(full_name) or sers.setdefault(full_name,
                                                     command_serializer(registry, full_name))
        p.produce("catalog.commands", key=value["sku"],
                  value=ser(value, SerializationContext("catalog.commands", MessageField.VALUE)),
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors


def aggregate_commands(sku, vendor):
    return [listing(sku, vendor)] + [change(sku, vendor, name=f"name {i}") for i in range(1, N)]


def test_a_batch_decided_on_a_failed_one_is_dropped_and_both_are_decided_again(stack, brokers,
                                                                               registry):
    """Two aggregates of N commands each, on two partitions. The handler's first fetch holds the
    two partitions' commands one partition after the other (in either order), so with
    N = 1 mod BATCH the batches are: three of the first aggregate's, then its last command with
    the first two of the second's, ... The fault fails the commit of the third batch: the fourth,
    decided on top of it, is dropped, and it is the one batch that reached into the second
    partition. So the test sees each part of the rewind (each was broken once to see it fail):
    a dropped batch not read again loses the second aggregate's first two commands (no result;
    its changes then rejected as unknown_sku); no rewind at all loses the first aggregate's last
    command (its result never comes); a dropped batch committed anyway gives its commands two
    results."""
    vendor = unique("v")
    n = int(os.environ.get("EVENTSHOP_PARTITIONS", "4"))
    first = unique("drop")  # with one partition, both on it: the rewind's halves then coincide
    second = next(s for s in (unique("drop") for _ in range(1000))
                  if n < 2 or murmur2_partition(s, n) != murmur2_partition(first, n))
    skus = [first, second]
    commands = {sku: aggregate_commands(sku, vendor) for sku in skus}
    ids = {sku: [v["metadata"]["command_id"] for _, v in cmds] for sku, cmds in commands.items()}
    role = "handler-catalog"
    stack.stop(role)
    try:
        produce_in_order(brokers, registry, commands[first] + commands[second])
        os.environ.update(EVENTSHOP_FAULTS=f"txn.before_commit=fail@{N // BATCH}",
                          EVENTSHOP_HANDLER_BATCH=str(BATCH))
        try:
            stack.start(role)
        finally:
            del os.environ["EVENTSHOP_FAULTS"], os.environ["EVENTSHOP_HANDLER_BATCH"]
        url = stack.url(role) + "/metrics"

        # the positive marker: the results of both aggregates' last commands (an aggregate's
        # commands are decided in order on one partition; results are read read_committed)
        last = {ids[sku][-1] for sku in skus}
        wait_for(lambda: len(results_for(brokers, registry, last)) == 2, timeout=30,
                 interval=0.3, what="the results of both aggregates' last commands")
        results = results_for(brokers, registry, {i for sku in skus for i in ids[sku]})
        # the commit failed once, and the batch decided on top of it was dropped
        assert metric(url, "eventshop_txn_aborts_total") == 1
        dropped = metric(url, "eventshop_handler_batches_dropped_total")
        assert dropped > 0, "no batch was dropped: the drop path did not run"

        events = read_topic(brokers, registry, "catalog.events")
        for sku in skus:
            counts = [len(results.get(i, [])) for i in ids[sku]]
            assert counts == [1] * N, f"{sku}: results per command, in order: {counts}"
            got = [(results[i][0]["status"], results[i][0]["reason"],
                    results[i][0]["aggregate_version"]) for i in ids[sku]]
            assert got == [("ACCEPTED", None, v) for v in range(1, N + 1)], f"{sku}: {got}"
            evs = sorted((m for m in events if m["key"] == sku), key=lambda m: m["offset"])
            versions = [m["value"]["metadata"]["aggregate_version"] for m in evs]
            assert versions == list(range(1, N + 1)), f"{sku}: a gap or a duplicate: {versions}"
            assert [str(m["value"]["metadata"]["command_id"]) for m in evs] == ids[sku]
            for i, m in zip(ids[sku], evs):
                assert results[i][0]["offset"] == m["offset"], "a result points at another event"
        print(f"2 x {N} commands in batches of {BATCH}: {dropped:.0f} batch(es) dropped")
    finally:
        stack.stop(role)
        stack.start(role)
