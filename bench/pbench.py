"""A/B driver for the projector figures of rebuild_bench.py on a private stack: alternates
the builds given as arguments (each a build dir holding projections/eventshop-projector) in
the same rounds. Env: LOAD (events to load first), ROUNDS (2), REBUILD (1). The rebuild ratio
printed is over the raw upsert alone (make bench: over min(raw consume, raw upsert))."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rebuild_bench as rb  # noqa: E402

builds = sys.argv[1:]
if int(os.environ.get("LOAD", "0")):
    print("loaded in", rb.load(int(os.environ["LOAD"])), flush=True)
hw = rb.high_watermarks()
total = sum(hw.values())
rb.wait_caught_up("catalog_products", hw)
for rnd in range(int(os.environ.get("ROUNDS", "2"))):
    up_rows, up_secs = rb.raw([rb.RAW_UPSERT, str(total), "500", "500"], "raw_upsert")
    up = up_rows / up_secs
    for b in builds:
        rb.PROJECTOR = os.path.join(b, "projections", "eventshop-projector")
        ev, s = rb.live_run()
        line = f"round {rnd} {os.path.basename(b):10} live {ev/s:7.0f} ({ev/s/up:.2f})"
        if int(os.environ.get("REBUILD", "1")):
            rbe, rbs, wall = rb.rebuild_run()
            line += f" rebuild {rbe/rbs:7.0f} ({rbe/rbs/up:.2f})"
        print(line + f" upsert {up:7.0f} load {os.getloadavg()[0]:.1f}", flush=True)
