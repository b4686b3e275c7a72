"""One figure of `make bench` against its limit measured in the same run (issue 12, item 5).

Every bench script calls record(); each call prints the figure's line and appends it as one JSON
object to $BENCH_RESULTS (default $ES_STATE/bench-results.jsonl), from which scripts/bench.sh
writes bench/results.json and the chart. The ratio is oriented so that higher is better: for a
rate value / reference, for a latency or a size (lower_is_better) reference / value; goal is the
ratio to reach (0.5 on a latency means "within 2x of the limit")."""
import json
import os


def path():
    return os.environ.get("BENCH_RESULTS") or os.path.join(os.environ["ES_STATE"], "bench-results.jsonl")


def record(name, value, unit, reference, reference_name, goal, lower_is_better=False, note=""):
    """Prints and stores one figure; returns its ratio (None when either side is not positive)."""
    ratio = None
    if value > 0 and reference > 0:
        ratio = reference / value if lower_is_better else value / reference
    fig = {"name": name, "value": value, "unit": unit, "reference": reference,
           "reference_name": reference_name, "ratio": ratio, "goal": goal,
           "lower_is_better": lower_is_better, "met": ratio is not None and ratio >= goal,
           "note": note}
    shown = f"{ratio:.2f}" if ratio is not None else "n/a"
    print(f"FIGURE {name}: {value:.6g} {unit} against {reference_name} {reference:.6g} {unit}: "
          f"ratio {shown}, goal >= {goal}: {'met' if fig['met'] else 'NOT met'}"
          + (f" ({note})" if note else ""), flush=True)
    with open(path(), "a") as f:
        f.write(json.dumps(fig) + "\n")
    return ratio
