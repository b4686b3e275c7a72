"""make bench, the export part (scripts/bench.sh runs it after rebuild_bench.py, on the same
private stack, so catalog.events holds the BENCH_EVENTS it loaded).

Measures, in the same run and over the same topics (every context's events, HI_DEFAULT_CONTEXTS):
  - raw: eventshop-bench-raw-consume (bench/raw_consumer.c), a plain librdkafka read_committed
    consumer from every partition's start to its high watermark, all partitions at once, no
    decoding: the same client library, settings and broker as export, without Python in the
    way (a Python consumer would be the slower side and flatter the ratio);
  - export: `eventshop-history export --out <tmp>` of the same topics (decode, upcast, the
    envelope, Avro files, manifest with SHA-256), process wall time.
Prints records, seconds and events/s for each, and records export over raw against its goal
(>= 0.7, issue 11 item 5) through bench/results.py. Runs alone on any stack too (it loads
nothing; to load the events rebuild_bench.py measures with, call its load())."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from results import record

CONTEXTS = "catalog,inventory,pricing,orders,payments,shipping,users"  # history/hi.h
BUILD = os.environ["ES_BUILD"]
HISTORY = os.path.join(BUILD, "history", "eventshop-history")
RAW = os.path.join(BUILD, "bench", "eventshop-bench-raw-consume")
LOGS = os.path.join(os.environ["ES_STATE"], "logs")


def raw_run(topics):
    out = subprocess.run([RAW, *topics], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench: raw consume failed ({out.returncode}): {out.stderr.strip()}")
    _, records, secs = out.stdout.split()
    return int(records), float(secs)


def export_run():
    """(records exported, process wall time), from a fresh --out"""
    d = tempfile.mkdtemp(prefix="export-bench-", dir=os.environ["ES_STATE"])
    path = os.path.join(LOGS, "bench-export.log")
    try:
        t0 = time.time()
        out = subprocess.run([HISTORY, "export", "--out", d, "--contexts", CONTEXTS],
                             capture_output=True, text=True)
        wall = time.time() - t0
        with open(path, "a") as f:
            f.write(out.stderr)
        if out.returncode:
            raise SystemExit(f"bench: export failed ({out.returncode}), see {path}")
        with open(os.path.join(d, "manifest.json")) as f:
            m = json.load(f)
        records = sum(p["records"] for t in m["topics"].values() for p in t["partitions"].values())
        return records, wall
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    topics = [f"{c}.events" for c in CONTEXTS.split(",")]
    print(f"export: {', '.join(topics)}; raw = {os.path.basename(RAW)} (librdkafka, read_committed)")
    print(f"{'run':>8} {'events':>8} {'seconds':>8} {'events/s':>9}")
    raw_n, raw_s = raw_run(topics)
    print(f"{'raw':>8} {raw_n:>8} {raw_s:>8.1f} {raw_n / raw_s:>9.0f}", flush=True)
    exp_n, exp_s = export_run()
    print(f"{'export':>8} {exp_n:>8} {exp_s:>8.1f} {exp_n / exp_s:>9.0f}  (process wall time)", flush=True)
    if exp_n != raw_n:
        print(f"bench: export wrote {exp_n} records, the raw consumer read {raw_n}", file=sys.stderr)
    record("export events/s", exp_n / exp_s, "events/s", raw_n / raw_s,
           "raw read_committed consume", 0.7, note="export in process wall time")


if __name__ == "__main__":
    main()
