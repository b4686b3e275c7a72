"""The catalog handler's state store (command-handlers/hd_store.c, LMDB under
EVENTSHOP_HANDLER_STATE_DIR): a restart replays only the changelog tail since the offsets the
store kept and decides against the same states; a deleted store, an unreadable one and one a
machine crash may have torn (written, unsynced, in another boot) are recovered whole from the
changelog; a command decided before a restart is still recognised as a duplicate after it.
Needs the running stack's catalog handler (restarted here)."""
import os
import re
import shutil
import uuid

import pytest

from conftest import Stack, env, unique
from test_handler import change, duplicate_gets_the_first_outcome, listing, send, wait_results

ROLE = "handler-catalog"
RECOVERED = re.compile(r"recovered partition (\d+): replayed (\d+) changelog records from offset "
                       r"(\d+) and (\d+) results from offset (\d+)")
stack = Stack()


def log_path():
    return os.path.join(env("ES_STATE"), "logs", ROLE + ".log")


def store_dir():
    return os.path.join(env("ES_STATE"), "handler-state", ROLE)


def delete_store():
    shutil.rmtree(store_dir())


def garble_store():
    """an unreadable file: what a torn write can leave"""
    with open(os.path.join(store_dir(), "data.mdb"), "r+b") as f:
        f.write(os.urandom(64 * 1024))


def unsynced_in_another_boot():
    """what a machine crash leaves: the marker of a boot whose page cache held the last commits"""
    with open(os.path.join(store_dir(), "unsynced"), "w") as f:
        f.write(str(uuid.uuid4()) + "\n")


def restart(spoil=None):
    """Restarts the catalog handler (its store spoiled first, when asked) and returns, per
    partition, (changelog records replayed, from offset) of the recovery it logged, and the log's
    lines of that start."""
    stack.stop(ROLE)
    if spoil:
        spoil()
    start = os.path.getsize(log_path())
    stack.start(ROLE)
    with open(log_path(), errors="replace") as f:
        f.seek(start)
        lines = f.read()
    got = {int(m[1]): (int(m[2]), int(m[3])) for m in RECOVERED.finditer(lines)}
    assert got, "the restarted handler logged no recovery"
    return got, lines


def list_some(brokers, registry, n):
    """Lists n new products of a new vendor: (vendor, skus), every listing decided."""
    vendor = unique("v")
    skus = [unique("st") for _ in range(n)]
    sent = send(brokers, registry, [listing(s, vendor) for s in skus])
    res = wait_results(brokers, registry, [s[0] for s in sent])
    assert all(r[0]["status"] == "ACCEPTED" for r in res.values())
    return vendor, skus


def changes_see_version_1(brokers, registry, vendor, skus):
    """A change expecting version 1 of each sku is accepted into version 2 (the recovered state
    knows the product, its owner and its version)."""
    sent = send(brokers, registry, [change(s, vendor, expected=1, name="Renamed") for s in skus])
    res = wait_results(brokers, registry, [s[0] for s in sent])
    for cid, _, _ in sent:
        r = res[cid][0]
        assert (r["status"], r["reason"], r["aggregate_version"]) == ("ACCEPTED", None, 2), r


def test_a_restart_replays_only_the_tail_and_decides_on_the_same_states(brokers, registry):
    vendor, skus = list_some(brokers, registry, 12)
    replayed, lines = restart()
    assert "discarded" not in lines, "a clean stop keeps the store"
    # every listing above is in the store already: the recovery reads past none of them again
    assert sum(n for n, _ in replayed.values()) < len(skus), replayed
    assert any(frm > 0 for _, frm in replayed.values()), replayed
    changes_see_version_1(brokers, registry, vendor, skus)


@pytest.mark.parametrize("spoil", [delete_store, garble_store, unsynced_in_another_boot],
                         ids=["deleted", "unreadable", "unsynced-in-another-boot"])
def test_a_lost_or_untrusted_store_is_recovered_from_the_changelog(brokers, registry, spoil):
    vendor, skus = list_some(brokers, registry, 8)
    replayed, lines = restart(spoil)
    if spoil is not delete_store:
        assert "discarded" in lines, "the handler did not say it discarded its store"
    assert all(frm == 0 for _, frm in replayed.values()), replayed
    assert sum(n for n, _ in replayed.values()) >= len(skus), replayed
    changes_see_version_1(brokers, registry, vendor, skus)


def test_a_duplicate_sent_after_a_restart_is_still_a_duplicate(brokers, registry):
    duplicate_gets_the_first_outcome(brokers, registry, between=restart)
