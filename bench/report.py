"""The end of `make bench` (issue 12, item 5): from the figures the bench scripts stored through
bench/results.py's record() ($BENCH_RESULTS, one JSON object a line) it writes

  - bench/results.json: {"machine": {...}, "figures": [...]}, the machine line (CPU model, cores,
    RAM, kernel, date, git commit) and every figure (name, value, unit, reference, reference_name,
    ratio, goal, met, lower_is_better, note);
  - bench/results.png: the ratio of each figure as a bar (green when its goal is met, red when
    not) and its goal as a mark, on a log scale (gnuplot from Debian);
  - a table of every figure with its ratio and goal, on stdout;
  - the same table in Markdown, with the machine line, between the markers
    <!-- bench:table --> and <!-- /bench:table --> of docs/BENCHMARKS.md (when the file has them),
    so that committing a run's outputs publishes its figures.

  report.py [OUT_DIR [DOC]]    (default: bench/ beside this file, docs/BENCHMARKS.md)
Exits non-zero when there is no figure to report."""
import re
import datetime
import json
import os
import platform
import subprocess
import sys

import results

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN, END = "<!-- bench:table -->", "<!-- /bench:table -->"


def machine():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    git = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": git + ("-dirty" if dirty else "")}


def machine_line(m):
    return (f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
            f"{m['date']}, commit {m['commit']}")


def load():
    figs = []
    try:
        with open(results.path()) as f:
            figs = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass
    return figs


def num(v):
    """A value as a person reads it: whole above 100, three significant digits below."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def shown(ratio):
    return f"{ratio:.2f}" if ratio is not None else "n/a"


def table(figs):
    w = max(len(f["name"]) for f in figs)
    u = max(len(f["unit"]) for f in figs)
    lines = [f"{'figure':<{w}}  {'value':>10}  {'reference':>10}  {'unit':<{u}}  {'ratio':>6}  "
             f"{'goal':>5}  met"]
    for f in figs:
        lines.append(f"{f['name']:<{w}}  {num(f['value']):>10}  {num(f['reference']):>10}  "
                     f"{f['unit']:<{u}}  {shown(f['ratio']):>6}  {f['goal']:>5}  "
                     f"{'yes' if f['met'] else 'NO'}")
    met = sum(1 for f in figs if f["met"])
    lines.append(f"{met} of {len(figs)} figures meet their goal")
    return "\n".join(lines)


def markdown(figs, m):
    rows = [f"Measured on {machine_line(m)}.", "",
            "| figure | value | reference (limit, same run) | ratio | goal | met |",
            "| --- | --- | --- | --- | --- | --- |"]
    for f in figs:
        ref = f"{f['reference_name']}: {num(f['reference'])} {f['unit']}"
        note = f" ({f['note']})" if f.get("note") else ""
        rows.append(f"| {f['name']}{note} | {num(f['value'])} {f['unit']} | {ref} | "
                    f"{shown(f['ratio'])} | {f['goal']} | {'yes' if f['met'] else '**no**'} |")
    return "\n".join(rows)


def publish(doc, figs, m):
    """Replaces the table between the markers of doc; False when doc has no markers."""
    try:
        text = open(doc).read()
    except FileNotFoundError:
        return False
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    text = pattern.sub(lambda _: f"{BEGIN}\n{markdown(figs, m)}\n{END}", text)
    with open(doc, "w") as f:
        f.write(text)
    return True


def chart(figs, m, png):
    """Horizontal bars, one row a figure (first on top); a figure without a ratio gets no bar."""
    data = png + ".dat"
    with open(data, "w") as d:
        for i, f in enumerate(figs):
            y = len(figs) - i
            ratio = f["ratio"] if f["ratio"] is not None else 0.0
            label = f["name"].replace('"', "'")
            d.write(f'{y} {max(ratio, 1e-3):.6g} {f["goal"]:.6g} {1 if f["met"] else 0} "{label}"\n')
    height = 120 + 22 * len(figs)
    script = f"""
set terminal pngcairo size 1100,{height} font ",9"
set output "{png}"
set title "make bench: ratio to the limit measured in the same run (higher is better)\\n{machine_line(m)}"
set logscale x
set xrange [0.01:100]
set yrange [0.3:{len(figs) + 0.7}]
set ytics scale 0
set grid xtics
set xlabel "ratio (log scale); the mark is the goal"
set key outside below center horizontal
set bmargin 5
set style fill solid 0.8 noborder
plot "{data}" using (sqrt($2 * 0.01)):1:(0.01):2:($1 - 0.35):($1 + 0.35):($4 == 1 ? 0x2e8b57 : 0xc0392b):ytic(5) \\
        with boxxyerror lc rgb variable notitle, \\
     "" using 3:1 with points pt 7 ps 1.2 lc rgb "black" title "goal", \\
     "" using (NaN):(NaN) with boxes lc rgb 0x2e8b57 title "met", \\
     "" using (NaN):(NaN) with boxes lc rgb 0xc0392b title "not met"
"""
    out = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    os.unlink(data)
    if out.returncode:
        print(f"bench: gnuplot failed: {out.stderr.strip()}", file=sys.stderr)
        return False
    return True


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
    doc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "docs", "BENCHMARKS.md")
    figs = load()
    if not figs:
        print(f"bench: no figures in {results.path()}", file=sys.stderr)
        return 1
    m = machine()
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"machine": m, "figures": figs}, f, indent=1)
        f.write("\n")
    drawn = chart(figs, m, os.path.join(out_dir, "results.png"))
    print(f"\nmake bench: {machine_line(m)}")
    print(table(figs))
    written = [os.path.join(out_dir, "results.json")]
    if drawn:
        written.append(os.path.join(out_dir, "results.png"))
    if publish(doc, figs, m):
        written.append(os.path.normpath(doc) + " (its table)")
    print("written: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
