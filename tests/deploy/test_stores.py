#!/usr/bin/env python3
"""Where the data lives and how it survives (issue 9, items 2 and 4), on docker-compose.yml and
`kustomize build` of each overlay; it runs deploy/compose/make-secrets.sh in a throwaway copy
(openssl only), nothing else.

- compose: Kafka's KAFKA_LOG_DIRS is set and every log dir lies on a named volume of the service
  (the image's default is /tmp in the container, lost when it is re-created);
- compose: make-secrets.sh leaves its directory 0700 and every secret file readable by the
  containers' other users (0644: the roles run as uid 10001, Grafana as 472) and writable by
  its owner only, also over files an older version made 0600; every secret file compose names
  is one it writes;
- the database server is MariaDB 10.11 (the server the tests run) in compose and the overlays,
  no MySQL image anywhere;
- max_connections (the StatefulSet's --max-connections) covers the connections the overlay's
  autoscaler maxima can open, recomputed from the rendered Deployments (HPA/KEDA maximum + the
  rollout's surge, times what a pod of each role opens: for the API, its loop threads times its
  contexts plus the key-store and saga connections of each thread's state, struct api_tls, plus a
  pool of EVENTSHOP_API_DB_POOL non-blocking connections per context whose reads use one, found by
  their api_query_async calls, plus its cache's loader connection per cached context served,
  api_cache.c) with HEADROOM;
- a backup CronJob dumps every eventshop_* database with mariadb-dump (the backup user granted
  on each database the init script makes), daily, onto a PVC, with a bounded retention
  (BACKUP_RETENTION_DAYS, 1 to MAX_RETENTION_DAYS, used by its script and stated in
  deploy/README.md as "Retention: N days"), its password from a mounted Secret file;
- the schema Job retries (backoffLimit > 0) within a bounded activeDeadlineSeconds.

usage: .cache/deploy-venv/bin/python tests/deploy/test_stores.py"""
import glob
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import yaml

from deploylib import check, summary, TOP, kustomize, pod_spec, read

OVERLAYS = ("dev", "prod")
DB_IMAGE = "mariadb:10.11"
HEADROOM = 1.3  # connections of killed pods the server has not dropped yet, operators
# what a pod of a role opens at most (es_db_open calls; the API's come from the code, below)
PER_POD = {
    "projector": 2,  # the live connection, and a rebuild's control connection at a version change
    "subscriber": 2,  # its database, and one more while a reconnect overlaps
}
JOB_CONNECTIONS = 1  # each Job/CronJob labelled eventshop.io/mysql-client (init, backup)
OTHER_CONNECTIONS = 8  # eventshop-users bootstrap, the healthcheck probes, operators' sessions
MAX_RETENTION_DAYS = 35  # a forgotten user's key must not outlive that in backups
MAX_SCHEMA_DEADLINE_S = 3600



# ---------------------------------------------------------------- compose
def compose():
    return yaml.safe_load(read("docker-compose.yml"))


def kafka_log_dirs(c):
    bad = []
    kafka = [(n, s) for n, s in c["services"].items() if s.get("image", "").split(":")[0].endswith("kafka")]
    if not kafka:
        return ["no Kafka service in docker-compose.yml"]
    named = set(c.get("volumes") or {})
    for name, svc in kafka:
        dirs = str((svc.get("environment") or {}).get("KAFKA_LOG_DIRS") or "")
        if not dirs:
            bad.append(f"{name}: KAFKA_LOG_DIRS unset (the image logs to /tmp/kraft-combined-logs, lost on re-creation)")
            continue
        mounts = []
        for v in svc.get("volumes", []):
            src, dst = (v.split(":")[:2] if isinstance(v, str) else (v.get("source"), v.get("target")))
            mounts.append((src, dst.rstrip("/")))
        for d in dirs.split(","):
            d = d.strip().rstrip("/")
            on = [src for src, dst in mounts if d == dst or d.startswith(dst + "/")]
            if not on:
                bad.append(f"{name}: log dir {d} is on no volume")
            elif on[-1] not in named:
                bad.append(f"{name}: log dir {d} is on {on[-1]}, not a named volume of the file")
    return bad


def secrets_modes(c):
    """run make-secrets.sh twice in a throwaway copy (the second time over files made 0600)"""
    bad = []
    tmp = tempfile.mkdtemp(prefix="eventshop-secrets-")
    try:
        os.makedirs(os.path.join(tmp, "deploy", "compose"))
        for f in ("deploy/compose/make-secrets.sh", "deploy/contexts", "deploy/subscribers"):
            shutil.copy2(os.path.join(TOP, f), os.path.join(tmp, f))
        script = os.path.join(tmp, "deploy", "compose", "make-secrets.sh")
        d = os.path.join(tmp, "deploy", "compose", "secrets")
        for run in ("first run", "run over 0600 files"):
            if run != "first run":
                for f in glob.glob(os.path.join(d, "*")):
                    os.chmod(f, 0o600)
            p = subprocess.run(["sh", script], capture_output=True, text=True)
            if p.returncode:
                return [f"make-secrets.sh ({run}) failed: {p.stderr.strip()}"]
            mode = stat.S_IMODE(os.stat(d).st_mode)
            if mode != 0o700:
                bad.append(f"{run}: secrets/ is {mode:04o}, not 0700 (other host users could reach the files)")
            files = sorted(glob.glob(os.path.join(d, "*")))
            if not files:
                bad.append(f"{run}: no secret written")
            for f in files:
                m = stat.S_IMODE(os.stat(f).st_mode)
                if not m & stat.S_IROTH:
                    bad.append(f"{run}: {os.path.basename(f)} is {m:04o}: unreadable by the containers' users (10001, Grafana 472)")
                if m & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
                    bad.append(f"{run}: {os.path.basename(f)} is {m:04o}: more than 0644")
        for name, s in (c.get("secrets") or {}).items():
            f = s.get("file", "")
            if f and not os.path.exists(os.path.join(tmp, f)):
                bad.append(f"compose secret {name}: make-secrets.sh writes no {f}")
    finally:
        shutil.rmtree(tmp)
    return bad


def db_images_compose(c):
    bad, n = [], 0
    for name, svc in c["services"].items():
        img = svc.get("image", "")
        if re.match(r"(.*/)?(mysql|mariadb)(:|$)", img):
            n += 1
            if img != DB_IMAGE:
                bad.append(f"compose {name}: {img}, not {DB_IMAGE}")
    return bad if n else ["compose: no database service"]


# ---------------------------------------------------------------- Kubernetes
def containers(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            pod = pod_spec(d)
            for c in pod.get("initContainers", []) + pod["containers"]:
                yield d, pod, c


def db_images_k8s(docs, o):
    bad, n = [], 0
    for d, _, c in containers(docs):
        if re.match(r"(.*/)?(mysql|mariadb)(:|$)", c["image"]):
            n += 1
            if c["image"] != DB_IMAGE:
                bad.append(f"{o} {d['kind']}/{d['metadata']['name']}/{c['name']}: {c['image']}, not {DB_IMAGE}")
    return bad if n else [f"{o}: no database container"]


def env_of(docs, c):
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    env = {}
    for ef in c.get("envFrom", []):
        if "configMapRef" in ef:
            env.update(cms.get(ef["configMapRef"]["name"], {}))
    env.update({e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e})
    return env


def api_code():
    """(the API's default loop threads, the key-store connections each thread keeps, the default
    size of a thread's pool of non-blocking connections per context, the contexts whose reads
    use such a pool) from api/*.c"""
    threads, nonblocking = None, set()
    for f in sorted(glob.glob(os.path.join(TOP, "api", "*.c"))):
        text = read(os.path.relpath(f, TOP))
        m = re.search(r'es_env_long\(\s*"EVENTSHOP_API_THREADS"\s*,\s*(\d+)\s*\)', text)
        if m:
            threads = int(m.group(1))
        ctx = re.search(r'#define CTX\s+"(\w+)"', text)
        for m in re.finditer(r'api_query_async(?:_or_reply)?\(\s*r,\s*(?:CTX|"(\w+)")', text):
            nonblocking.add(m.group(1) or (ctx.group(1) if ctx else None))
    # the key store's connection lives in each loop thread's state (struct api_tls, api_app.h)
    app = read("api/api_app.h")
    tls = re.search(r"struct api_tls \{(.*?)\n\};", app, re.S)
    # every single connection a thread keeps beside its per-context ones: the key store's, the saga's
    keys = len(re.findall(r"^\s*es_db_t\s*\*\s*\w+;", tls.group(1), re.M)) if tls else 0
    pool = re.search(r"#define API_DB_POOL_DEFAULT\s+(\d+)", app)
    return threads, keys, int(pool.group(1)) if pool else None, nonblocking - {None}


def api_cached_contexts():
    """the contexts whose rows the API's cache loads, each on a connection of its loader thread
    (the table of api/api_cache.c: {"<context>", "<projection>", {<tables>}})"""
    return set(re.findall(r'^\s*\{"(\w+)", "\w+", \{', read("api/api_cache.c"), re.M))


def max_pods(docs, d):
    """the most pods of a Deployment at once: its autoscaler's maximum (or replicas) + surge"""
    name, top = d["metadata"]["name"], None
    for a in docs:
        if a["kind"] == "HorizontalPodAutoscaler" and a["spec"]["scaleTargetRef"]["name"] == name:
            top = a["spec"]["maxReplicas"]
        if a["kind"] == "ScaledObject" and a["spec"]["scaleTargetRef"]["name"] == name:
            top = a["spec"]["maxReplicaCount"]
    top = d["spec"].get("replicas", 1) if top is None else top
    st = d["spec"].get("strategy", {})
    if st.get("type") == "Recreate":
        return top
    surge = st.get("rollingUpdate", {}).get("maxSurge", "25%")
    surge = math.ceil(top * int(surge[:-1]) / 100) if isinstance(surge, str) else int(surge)
    return top + surge


def connections(docs):
    """(the connections the overlay can open at its maxima, [problems], [lines of the sum])"""
    threads_default, keys, pool_default, nonblocking = api_code()
    if threads_default is None or not keys or pool_default is None:
        return 0, ["api/*.c: no EVENTSHOP_API_THREADS default, no thread-local key-store connection or no API_DB_POOL_DEFAULT found"], []
    total, bad, lines = OTHER_CONNECTIONS, [], []
    for d in docs:
        if d["kind"] in ("Job", "CronJob") and \
                (d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"])["template"]["metadata"].get("labels", {}).get("eventshop.io/mysql-client") == "true":
            total += JOB_CONNECTIONS
            lines.append(f"{d['kind']}/{d['metadata']['name']}: {JOB_CONNECTIONS}")
        if d["kind"] != "Deployment":
            continue
        lb = d["spec"]["template"]["metadata"].get("labels", {})
        if lb.get("eventshop.io/mysql-client") != "true":
            continue
        role, pods = lb.get("eventshop.io/role"), max_pods(docs, d)
        if role == "api":
            env = env_of(docs, d["spec"]["template"]["spec"]["containers"][0])
            threads = int(env.get("EVENTSHOP_API_THREADS", threads_default))
            pool = int(env.get("EVENTSHOP_API_DB_POOL", pool_default))
            ctxs = set(env.get("ES_CONTEXTS", "catalog").split())
            per = threads * (len(ctxs) + keys + pool * len(ctxs & nonblocking)) + \
                len(api_cached_contexts() & ctxs)
        elif role in PER_POD:
            per = PER_POD[role]
        else:
            bad.append(f"Deployment/{d['metadata']['name']}: a MySQL client of role {role!r}, whose connections this check does not know")
            continue
        total += pods * per
        lines.append(f"Deployment/{d['metadata']['name']}: {pods} pods x {per}")
    return total, bad, lines


def max_connections(docs, o):
    need, bad, _ = connections(docs)
    got = None
    for d, _, c in containers(docs):
        if d["kind"] == "StatefulSet" and c["image"].startswith("mariadb:"):
            for a in (c.get("command") or []) + (c.get("args") or []):
                m = re.fullmatch(r"--max[-_]connections=(\d+)", str(a))
                if m:
                    got = int(m.group(1))
    want = math.ceil(need * HEADROOM)
    if got is None:
        bad.append(f"{o}: the MariaDB StatefulSet sets no --max-connections (default 151; the maxima need {need})")
    elif got < want:
        bad.append(f"{o}: max_connections {got} < {want} ({need} at the autoscalers' maxima x {HEADROOM} headroom)")
    return bad, need


def backup(docs, o, init_dbs):
    bad = []
    cjs = [d for d in docs if d["kind"] == "CronJob" and
           any("mariadb-dump" in " ".join(map(str, (c.get("command") or []) + (c.get("args") or [])))
               for c in pod_spec(d)["containers"])]
    if not cjs:
        return [f"{o}: no CronJob runs mariadb-dump"]
    readme = read("deploy/README.md")
    for cj in cjs:
        w = f"{o} CronJob/{cj['metadata']['name']}"
        f = cj["spec"]["schedule"].split()
        if len(f) != 5 or f[2:] != ["*", "*", "*"] or not f[0].isdigit() or not f[1].isdigit():
            bad.append(f"{w}: schedule {cj['spec']['schedule']!r} is not once a day")
        if cj["spec"].get("concurrencyPolicy") != "Forbid":
            bad.append(f"{w}: concurrencyPolicy is not Forbid (two runs would race on the retention)")
        pod = pod_spec(cj)
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            env = {e["name"]: str(e.get("value")) for e in c.get("env", [])}
            script = " ".join(map(str, (c.get("command") or []) + (c.get("args") or [])))
            mounts = {m["mountPath"].rstrip("/"): vols.get(m["name"], {}) for m in c.get("volumeMounts", [])}
            days = env.get("BACKUP_RETENTION_DAYS", "")
            if not days.isdigit() or not 1 <= int(days) <= MAX_RETENTION_DAYS:
                bad.append(f"{w}: BACKUP_RETENTION_DAYS {days or 'unset'}: not 1 to {MAX_RETENTION_DAYS} days")
            else:
                if not re.search(r"\$\{?BACKUP_RETENTION_DAYS\b", script) or "rm " not in script:
                    bad.append(f"{w}: its script neither uses BACKUP_RETENTION_DAYS nor deletes anything: no retention")
                stated = set(re.findall(r"Retention: (\d+) days", readme))
                if "BACKUP_RETENTION_DAYS" not in readme or stated != {days}:
                    bad.append(f"{w}: deploy/README.md states the retention as {sorted(stated) or 'nothing'}"
                               f" ('Retention: N days'), the CronJob keeps {days} days")
            if "persistentVolumeClaim" not in mounts.get(env.get("BACKUP_DIR", "").rstrip("/"), {}):
                bad.append(f"{w}: BACKUP_DIR {env.get('BACKUP_DIR')} is not a PVC mount")
            pw = env.get("BACKUP_PASSWORD_FILE", "")
            if not any(pw.startswith(p + "/") and "secret" in v for p, v in mounts.items()):
                bad.append(f"{w}: BACKUP_PASSWORD_FILE {pw or 'unset'} is not in a mounted Secret")
            if c["image"] != DB_IMAGE:
                bad.append(f"{w}: image {c['image']}, not {DB_IMAGE} (its mariadb-dump)")
            user = env.get("BACKUP_USER", "")
            granted = init_dbs.get("grants", {}).get(user, set())
            missing = init_dbs["databases"] - granted
            if not user or missing:
                bad.append(f"{w}: backup user {user or 'unset'} has no grant on {sorted(missing)} (eventshop-mysql-init)")
    return bad


def init_script(docs):
    """the databases the init script creates and, per user, the databases it is granted"""
    text = next((d["data"]["init.sh"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "eventshop-mysql-init"), "")
    grants = {}
    for db, user in re.findall(r"GRANT [^;]*? ON (\w+)\.\* TO '(\w+)'@", text):
        grants.setdefault(user, set()).add(db)
    return {"databases": set(re.findall(r"CREATE DATABASE IF NOT EXISTS (\w+)", text)), "grants": grants}


def schema_job(docs, o):
    jobs = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "eventshop-schemas"]
    if not jobs:
        return [f"{o}: no Job eventshop-schemas"]
    s, bad = jobs[0]["spec"], []
    if not s.get("backoffLimit", 6) > 0:
        bad.append(f"{o}: Job/eventshop-schemas backoffLimit {s.get('backoffLimit')}: a first install before the registry is up fails for good")
    if not 0 < s.get("activeDeadlineSeconds", 0) <= MAX_SCHEMA_DEADLINE_S:
        bad.append(f"{o}: Job/eventshop-schemas activeDeadlineSeconds {s.get('activeDeadlineSeconds')}: not 1 to {MAX_SCHEMA_DEADLINE_S}")
    return bad


def main():
    c = compose()
    check("compose: Kafka's KAFKA_LOG_DIRS lies on a named volume", kafka_log_dirs(c))
    check("compose: make-secrets.sh: directory 0700, files 0644 (readable in the containers), every compose secret made",
          secrets_modes(c))
    check(f"compose: the database server is {DB_IMAGE}", db_images_compose(c))
    for o in OVERLAYS:
        docs = kustomize(o)
        check(f"{o}: the database server and its jobs run {DB_IMAGE}", db_images_k8s(docs, o))
        bad, need = max_connections(docs, o)
        check(f"{o}: max_connections covers the autoscalers' maxima ({need} connections x {HEADROOM})", bad)
        check(f"{o}: a daily mariadb-dump CronJob of every database to a PVC, with a bounded, documented retention",
              backup(docs, o, init_script(docs)))
        check(f"{o}: the schema Job retries (backoffLimit > 0) within activeDeadlineSeconds", schema_job(docs, o))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
