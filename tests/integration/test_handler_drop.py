"""The handler's pipeline when the batch in flight fails (command-handlers/hd_runtime.c,
docs/ARCHITECTURE.md "The handler's pipeline"): batch n+1 is decided from what batch n staged
while n's transaction runs on the transaction thread; when n fails, n+1 (decided on top of it) is
dropped and both are read again. Nothing in a healthy stack fails a commit, so the failure is
forced with the fault point txn.before_commit=fail@1 (see test_txn_abort.py), and the drop is made
certain rather than hoped for: every command is on catalog.commands before the handler starts, so
its first fetch holds them all and, with batches of BATCH commands, the second batch is decided
while the first one is in flight. The positive marker that the drop path ran is the handler's own
eventshop_handler_batches_dropped_total."""
import os

from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import command_serializer, producer, read_topic, unique, wait_for
from test_handler import change, listing, results_for
from test_txn_abort import metric

BATCH = 3
K = 20  # ChangeProductDetails after the ListProduct: seven batches of BATCH on one aggregate


def produce_in_order(brokers, registry, commands):
    """commands: (full_name, value) of one aggregate, produced in order (keyed by sku) and flushed
    once; returns their command ids in that order."""
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
    return [value["metadata"]["command_id"] for _, value in commands]


def test_a_batch_decided_on_a_failed_one_is_dropped_and_both_are_decided_again(stack, brokers,
                                                                               registry):
    vendor, sku = unique("v"), unique("drop")
    commands = [listing(sku, vendor)] + [change(sku, vendor, name=f"name {i}") for i in range(K)]
    role = "handler-catalog"
    stack.stop(role)
    try:
        ids = produce_in_order(brokers, registry, commands)
        os.environ.update(EVENTSHOP_FAULTS="txn.before_commit=fail@1",
                          EVENTSHOP_HANDLER_BATCH=str(BATCH))
        try:
            stack.start(role)
        finally:
            del os.environ["EVENTSHOP_FAULTS"], os.environ["EVENTSHOP_HANDLER_BATCH"]
        url = stack.url(role) + "/metrics"

        # the positive marker: the last command's result (one aggregate, one partition: the
        # commands are decided in order, and results are read read_committed)
        wait_for(lambda: results_for(brokers, registry, {ids[-1]}), timeout=60, interval=0.3,
                 what="the result of the last command")
        results = results_for(brokers, registry, set(ids))
        # the first commit failed, and the batch decided on top of it was dropped
        assert metric(url, "eventshop_txn_aborts_total") == 1
        dropped = metric(url, "eventshop_handler_batches_dropped_total")
        assert dropped > 0, "no batch was dropped: the drop path did not run"

        counts = [len(results.get(i, [])) for i in ids]
        assert counts == [1] * (K + 1), f"results per command, in order: {counts}"
        got = [(results[i][0]["status"], results[i][0]["aggregate_version"]) for i in ids]
        assert got == [("ACCEPTED", v) for v in range(1, K + 2)], got

        events = sorted((m for m in read_topic(brokers, registry, "catalog.events")
                         if m["key"] == sku), key=lambda m: m["offset"])
        versions = [m["value"]["metadata"]["aggregate_version"] for m in events]
        assert versions == list(range(1, K + 2)), f"versions with a gap or a duplicate: {versions}"
        assert [str(m["value"]["metadata"]["command_id"]) for m in events] == ids
        for i, m in zip(ids, events):
            assert results[i][0]["offset"] == m["offset"], "a result points at another event"
        print(f"{K + 1} commands in batches of {BATCH}: {dropped:.0f} batch(es) dropped")
    finally:
        stack.stop(role)
        stack.start(role)
