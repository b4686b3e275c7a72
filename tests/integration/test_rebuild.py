"""Projection rebuild with zero downtime (issue 3, part 5; DESIGN.md §5).

Fills the catalog with a few thousand products through catalog.commands, starts readers that
hammer the query API and the products table directly, runs `eventshop-projector catalog
--rebuild` while more commands arrive, and checks that no reader saw an error or a missing row,
that the rebuilt table says what the events say, and that progress was logged. Then a version
bump (the stored version of the live tables no longer the code's) makes the live projector
rebuild by itself, again under readers.
"""
import json
import os
import random
import re
import subprocess
import threading
import time

import requests
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import command_meta, command_serializer, env, producer, read_topic, unique, wait_for

N = 3000  # products before the rebuild
PROBE = 40  # products of the probe vendor, listed in full by every list read
PROJECTOR = os.path.join(env("ES_BUILD", "/work/main/build"), "projections", "eventshop-projector")


def produce(brokers, registry, full_name, commands):
    ser = command_serializer(registry, full_name)
    p = producer(brokers, **{"linger.ms": 20})
    errors = []
    for key, value in commands:
        data = ser(value, SerializationContext("catalog.commands", MessageField.VALUE))
        p.produce("catalog.commands", key=key, value=data,
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors


def listing(vendor, skus):
    return [(sku, {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku), "sku": sku,
                   "vendor_id": vendor, "name": f"Product {sku}", "description": "rebuild test",
                   "category": "rebuild", "attributes": {"n": sku[-5:]}, "currency": "EUR"})
            for sku in skus]


def renaming(vendor, skus, tag):
    return [(sku, {"metadata": command_meta("u-" + vendor, "vendor", vendor, sku), "sku": sku,
                   "name": f"{tag} {sku}", "description": None, "category": None,
                   "attributes": None}) for sku in skus]


class Readers:
    """Threads reading through the API (one sku, a vendor's full list) and straight from MariaDB;
    every failure is recorded with what was read."""

    def __init__(self, api_url, db, skus, probe_vendor, probe_skus):
        self.api, self.db, self.skus = api_url, db, list(skus)
        self.probe_vendor, self.probe_skus = probe_vendor, set(probe_skus)
        self.stop = threading.Event()
        self.errors, self.reads = [], 0
        self.threads = [threading.Thread(target=self.api_reads, daemon=True),
                        threading.Thread(target=self.api_reads, daemon=True),
                        threading.Thread(target=self.sql_reads, daemon=True)]

    def fail(self, what):
        if len(self.errors) < 50:
            self.errors.append(what)

    def api_reads(self):
        s = requests.Session()
        while not self.stop.is_set():
            try:
                sku = random.choice(self.skus)
                r = s.get(f"{self.api}/v1/products/{sku}", timeout=10)
                if r.status_code != 200 or r.json().get("sku") != sku:
                    self.fail(f"GET {sku}: {r.status_code} {r.text[:200]}")
                r = s.get(f"{self.api}/v1/products",
                          params={"vendor": self.probe_vendor, "limit": 200}, timeout=10)
                got = {i["sku"] for i in r.json().get("items", [])} if r.status_code == 200 else set()
                if r.status_code != 200 or not self.probe_skus <= got:
                    self.fail(f"GET list: {r.status_code}, missing {len(self.probe_skus - got)}")
                self.reads += 2
            except Exception as e:  # a refused connection is a failure too
                self.fail(f"api: {e!r}")

    def sql_reads(self):
        conn = self.db("catalog")
        while not self.stop.is_set():
            try:
                with conn.cursor() as cur:
                    batch = random.sample(self.skus, 50)
                    cur.execute("SELECT sku FROM products WHERE sku IN %s", (batch,))
                    got = {r["sku"] for r in cur.fetchall()}
                    if got != set(batch):
                        self.fail(f"SELECT: missing {sorted(set(batch) - got)[:3]}")
                self.reads += 1
            except Exception as e:
                self.fail(f"sql: {e!r}")
                time.sleep(0.05)
        conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def progress_lines(text):
    out = []
    for line in text.splitlines():
        try:
            msg = json.loads(line)["msg"]
        except (ValueError, KeyError):
            continue
        m = re.search(r"progress phase=(\w+) applied=(\d+) remaining=(-?\d+) events_per_s=(\d+) "
                      r"eta_s=(-?[\d.]+)", msg)
        if m:
            out.append(m.groups())
    return out


def rows_where(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def check_table_matches_events(conn, brokers, registry, prefix):
    """Every row of the prefix has seen exactly its events, once each."""
    counts = {}
    for m in read_topic(brokers, registry, "catalog.events", timeout=60, decode=False):
        if m["key"] and m["key"].startswith(prefix):
            counts[m["key"]] = counts.get(m["key"], 0) + 1
    rows = rows_where(conn, "SELECT sku, version, applied_events FROM products WHERE sku LIKE %s",
                      (prefix + "%",))
    assert len(rows) == len(counts)
    bad = [r for r in rows if not r["version"] == r["applied_events"] == counts[r["sku"]]]
    assert not bad, bad[:5]


def test_rebuild_under_live_queries_and_on_version_bump(stack, brokers, registry, api_url, db):
    prefix = unique("rb") + "-"
    vendor, probe_vendor = unique("v"), unique("vp")
    skus = [f"{prefix}{i:05d}" for i in range(N)]
    probe = [f"{prefix}p{i:04d}" for i in range(PROBE)]
    conn = db("catalog")

    def count(where="", args=()):
        return rows_where(conn, "SELECT COUNT(*) AS n FROM products WHERE sku LIKE %s " + where,
                          (prefix + "%",) + args)[0]["n"]

    produce(brokers, registry, "eventshop.catalog.ListProduct",
            listing(vendor, skus) + listing(probe_vendor, probe))
    wait_for(lambda: count() == N + PROBE, timeout=90, interval=0.5, what="the first products")
    total_before = rows_where(conn, "SELECT COUNT(*) AS n FROM products")[0]["n"]
    code_version = rows_where(conn, "SELECT version FROM projection_versions "
                                    "WHERE projection='catalog_products'")[0]["version"]

    with Readers(api_url, db, skus + probe, probe_vendor, probe) as readers:
        rebuild = subprocess.Popen([PROJECTOR, "catalog", "--rebuild", "catalog_products"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, EVENTSHOP_PROJECTOR_BATCH="500"))
        # more commands while it runs: new products and changes to existing ones
        extra = [f"{prefix}x{i:04d}" for i in range(300)]
        changed = skus[:500]
        for i in range(0, 300, 60):
            produce(brokers, registry, "eventshop.catalog.ListProduct",
                    listing(vendor, extra[i:i + 60]))
            produce(brokers, registry, "eventshop.catalog.ChangeProductDetails",
                    renaming(vendor, changed[i * 5 // 3:(i + 60) * 5 // 3], "renamed"))
            time.sleep(0.3)
        out, _ = rebuild.communicate(timeout=90)
        assert rebuild.returncode == 0, out[-3000:]
        wait_for(lambda: count() == N + PROBE + len(extra) and
                 count("AND name LIKE 'renamed %%'") == len(changed),
                 timeout=60, interval=0.5, what="the commands sent during the rebuild")
        time.sleep(1)
        reads_during = readers.reads
    assert not readers.errors, readers.errors[:10]
    assert reads_during > 50, f"only {reads_during} reads during the rebuild"

    # the rebuilt (now live) table says what the events say; nothing lost, nothing added
    assert rows_where(conn, "SELECT COUNT(*) AS n FROM products")[0]["n"] == \
        total_before + len(extra)
    check_table_matches_events(conn, brokers, registry, prefix)
    assert count("AND applied_events <> version") == 0
    # the swap moved the offsets to the live name and dropped the old tables
    tables = {list(r.values())[0] for r in rows_where(conn, "SHOW TABLES LIKE 'products%%'")}
    assert tables == {"products"}, tables
    keys = {r["projection"] for r in rows_where(conn, "SELECT DISTINCT projection FROM "
                                                      "projection_offsets")}
    assert not [k for k in keys if k.startswith("catalog_products_rb")], keys
    # progress: JSON lines with a rate and an estimate of the time left
    prog = progress_lines(out)
    assert prog, out[-2000:]
    assert any(int(p[1]) > 0 and int(p[3]) > 0 for p in prog), prog
    assert prog[-1][0] == "swap" and prog[-1][2] == "0", prog[-1]
    assert "swapped in" in out

    # a version bump: the live projector finds tables of another version and rebuilds them
    with conn.cursor() as cur:
        cur.execute("UPDATE projection_versions SET version = version - 1 "
                    "WHERE projection='catalog_products'")
    log = os.path.join(env("ES_STATE"), "logs", "projector-catalog.log")
    size = os.path.getsize(log)
    with Readers(api_url, db, skus + probe, probe_vendor, probe) as readers:
        stack.stop("projector-catalog")
        stack.start("projector-catalog")
        more = [f"{prefix}y{i:04d}" for i in range(50)]
        produce(brokers, registry, "eventshop.catalog.ListProduct", listing(vendor, more))
        wait_for(lambda: count() == N + PROBE + len(extra) + len(more), timeout=60,
                 interval=0.5, what="products after the version rebuild")
    assert not readers.errors, readers.errors[:10]
    with open(log) as f:
        f.seek(size)
        text = f.read()
    assert "need a rebuild" in text and "swapped in" in text, text[-2000:]
    assert rows_where(conn, "SELECT version FROM projection_versions "
                            "WHERE projection='catalog_products'")[0]["version"] == code_version
    check_table_matches_events(conn, brokers, registry, prefix)
