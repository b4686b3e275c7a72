"""Issue 8, item 4: local supervision (scripts/stack.sh).

- A role that dies outside the stack's own commands (a plain SIGKILL) is restarted by the stack's
  supervisor: a new pid, its restart counter one higher, /healthz and /readyz OK, a log line, and
  `stack.sh status` showing it running, ready, with its restarts and (projectors) its lag.
- A role stopped on purpose (role-kill, used by the kill-and-restart tests) is held: the
  supervisor notices it and leaves it down until role-start.
- `stack.sh down` returns only once every process it started has exited, roles missing from
  today's ES_CONTEXTS/ES_SUBSCRIBERS and a broker that takes its time included, and a role that
  ignores SIGTERM is killed. This one runs `down` on a scratch state directory holding stand-in
  processes, so that the shared test stack stays up.
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest
import requests

from conftest import TOP, env, wait_for

STACK = os.path.join(TOP, "scripts", "stack.sh")
ROLE = "projector-shipping"  # cheap to restart; a restarted projector applies nothing twice


def run(*args, extra_env=None, timeout=120):
    e = dict(os.environ, **(extra_env or {}))
    return subprocess.run([STACK, *args], check=True, capture_output=True, text=True,
                          timeout=timeout, env=e).stdout


def state(*parts):
    return os.path.join(env("ES_STATE"), *parts)


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def alive(pid):
    stat = read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def role_pid(role):
    try:
        pid = int(read(state("run", f"{role}.pid")).strip())
    except ValueError:
        return None
    return pid if alive(pid) else None


def restarts(role):
    return int(read(state("run", f"{role}.restarts"), "0").strip() or 0)


def role_url(role):
    return dict(line.split() for line in run("roles").splitlines())[role]


def ok(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def status_row(role):
    out = run("status")
    head = out.splitlines()[0].split()
    for line in out.splitlines()[1:]:
        cols = line.split()
        if cols and cols[0] == role:
            return dict(zip(head, cols))
    raise AssertionError(f"no line for {role} in stack.sh status:\n{out}")


@pytest.fixture
def supervised():
    sup = role_pid("supervisor")
    assert sup, "no supervisor: the stack was not brought up by `stack.sh up`"
    assert role_pid(ROLE), f"{ROLE} is not running"
    yield sup
    # whatever happened, leave the role running for the tests after this one
    if not role_pid(ROLE):
        run("role-start", ROLE)
    run("role-wait", ROLE, "90")


def test_a_role_killed_with_sigkill_is_restarted_and_counted(supervised):
    old, before = role_pid(ROLE), restarts(ROLE)
    log_at = len(read(state("logs", "supervisor.log")))
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not alive(old), timeout=10, what=f"{ROLE} (pid {old}) to die")

    new = wait_for(lambda: (p := role_pid(ROLE)) and p != old and p, timeout=60,
                   what=f"a new {ROLE} process")
    wait_for(lambda: restarts(ROLE) == before + 1, timeout=10, what="the restart counter")
    url = role_url(ROLE)
    wait_for(lambda: ok(f"{url}/healthz") and ok(f"{url}/readyz"), timeout=90,
             what=f"the restarted {ROLE} healthy and ready")
    assert role_pid("supervisor") == supervised
    line = f"{ROLE} restarted (pid {new}, restart {before + 1})"
    wait_for(lambda: line in read(state("logs", "supervisor.log"))[log_at:], timeout=10,
             what=f"the supervisor's line '{line}'")

    row = wait_for(lambda: (r := status_row(ROLE))["READY"] == "yes" and r, timeout=30,
                   what=f"status showing {ROLE} ready")
    assert row["STATE"] == "running" and row["PID"] == str(new), row
    assert row["RESTARTS"] == str(before + 1), row
    assert row["LAG"].isdigit(), row  # a projector has a lag; the sum of its partitions'
    assert status_row("supervisor")["STATE"] == "running"


def test_a_role_stopped_with_role_kill_is_held_until_role_start(supervised):
    old, before = role_pid(ROLE), restarts(ROLE)
    log_at = len(read(state("logs", "supervisor.log")))
    run("role-kill", ROLE)
    assert not alive(old), "role-kill returned before the process exited"
    # the positive marker: the supervisor saw the role down and said it leaves it alone
    wait_for(lambda: f"{ROLE} is held" in read(state("logs", "supervisor.log"))[log_at:],
             timeout=15, what="the supervisor noticing the held role")
    assert role_pid(ROLE) is None and restarts(ROLE) == before
    assert status_row(ROLE)["STATE"] == "held"

    run("role-start", ROLE)
    run("role-wait", ROLE, "90")
    assert not os.path.exists(state("run", f"{ROLE}.held"))
    assert status_row(ROLE)["STATE"] == "running" and restarts(ROLE) == before


FAKE = textwrap.dedent("""
    import signal, sys, time
    mode = sys.argv[1]
    def term(*_):
        if mode == "slow":  # a role's clean stop
            time.sleep(1)
        if mode == "broker":  # a broker's shutdown, longer than a role may take
            time.sleep(6)
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else term)
    print("up", flush=True)
    while True:
        time.sleep(60)
""")


def test_down_returns_only_once_every_process_has_exited():
    with tempfile.TemporaryDirectory(prefix="es-down-") as st:
        run_dir = os.path.join(st, "run")
        os.makedirs(run_dir)
        fakes = {"kafka": "broker", "test-carrier": "plain", "smtp-capture": "plain",
                 "api": "plain", "handler-catalog": "stubborn", "projector-orders": "slow"}
        procs = {}
        for name, mode in fakes.items():
            p = subprocess.Popen([sys.executable, "-c", FAKE, mode], stdout=subprocess.PIPE,
                                 text=True)
            assert p.stdout.readline().strip() == "up"  # its SIGTERM handler is in place
            procs[name] = p
            with open(os.path.join(run_dir, f"{name}.pid"), "w") as f:
                f.write(f"{p.pid}\n")
        # a stack of one context and no subscribers: the stand-ins and the orders projector are
        # not in its ROLES, as when `down` runs with other settings than `up` did
        small = {"ES_STATE": st, "ES_CONTEXTS": "catalog", "ES_SUBSCRIBERS": "",
                 "ES_STOP_TIMEOUT": "4", "ES_PORT_OFFSET": "29000"}
        sup = subprocess.Popen([STACK, "supervise"], env=dict(os.environ, **small),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: read(os.path.join(run_dir, "supervisor.pid")).strip() == str(sup.pid),
                 timeout=10, what="the scratch supervisor")
        try:
            run("down", extra_env=small, timeout=60)
            # each process has exited (a zombie waiting for us to reap it counts as exited)
            for name, p in procs.items():
                assert not alive(p.pid), f"{name} (pid {p.pid}) still running after down"
            assert not alive(sup.pid), "the supervisor still running after down"
            assert procs["handler-catalog"].wait(5) == -signal.SIGKILL
            assert procs["kafka"].wait(5) == 0 and procs["projector-orders"].wait(5) == 0
            assert sup.wait(5) == 0
            assert not [f for f in os.listdir(run_dir) if f.endswith(".pid")]
        finally:
            for p in [*procs.values(), sup]:
                if p.poll() is None:
                    p.kill()
                    p.wait()
