"""make bench, the idle part (issue 12, item 5): what every eventshop role costs when nothing
happens. scripts/bench.sh runs it first, on the freshly started stack, after BENCH_IDLE_SETTLE
(15) s without load; over a window of BENCH_IDLE_SECONDS (20) s it reads each role's
utime + stime from /proc/<pid>/stat at both ends, and VmRSS at the end.

Two figures per role, both lower is better, against the goal itself as the reference (the goal
ratio is 1.0): idle RSS <= 20 MiB and idle CPU <= 1 % of one core. The stand-ins for the outside
world (test gateway, test carrier, SMTP capture) are not eventshop roles and are left out. A role
that used no CPU tick in the window is recorded at one tick over the window (the resolution of
/proc), with a note."""
import os
import subprocess
import time

from results import record

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SETTLE = float(os.environ.get("BENCH_IDLE_SETTLE", "15"))
WINDOW = float(os.environ.get("BENCH_IDLE_SECONDS", "20"))
RSS_GOAL_MIB = 20.0
CPU_GOAL_PCT = 1.0
STAND_INS = {"test-gateway", "test-carrier", "smtp-capture"}
TICK = os.sysconf("SC_CLK_TCK")


def roles():
    out = subprocess.run([os.path.join(TOP, "scripts", "stack.sh"), "roles"], check=True,
                         capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n not in STAND_INS]


def pid_of(role):
    try:
        return int(open(os.path.join(os.environ["ES_STATE"], "run", role + ".pid")).read())
    except (OSError, ValueError):
        return None


def cpu_ticks(pid):
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    pids = {r: pid_of(r) for r in roles()}
    pids = {r: p for r, p in pids.items() if p and os.path.exists(f"/proc/{p}")}
    time.sleep(SETTLE)
    t0, start = time.monotonic(), {r: cpu_ticks(p) for r, p in pids.items()}
    time.sleep(WINDOW)
    end, secs = {r: cpu_ticks(p) for r, p in pids.items()}, time.monotonic() - t0
    floor = 100.0 / (TICK * secs)
    print(f"idle: {len(pids)} roles, {SETTLE:.0f} s settled, {secs:.1f} s window "
          f"(CPU resolution {floor:.3f} %)", flush=True)
    for role in sorted(pids):
        ticks = end[role] - start[role]
        pct = 100.0 * ticks / (TICK * secs)
        note = "" if ticks else "no CPU tick in the window: recorded at the resolution"
        record(f"idle RSS {role}", rss_mib(pids[role]), "MiB", RSS_GOAL_MIB, "goal", 1.0,
               lower_is_better=True)
        record(f"idle CPU {role}", pct if ticks else floor, "% of a core", CPU_GOAL_PCT, "goal",
               1.0, lower_is_better=True, note=note)


if __name__ == "__main__":
    main()
