#!/usr/bin/env python3
"""One source of configuration truth (issue 9, item 3) and the Kubernetes checks of item 4 that
need only the rendered manifests. Static: reads the C sources, docker-compose.yml, the output of
`kustomize build` of each overlay and scripts/stack.sh; starts nothing.

What the code reads: the first argument of es_env_str / es_env_long / es_env_secret / getenv in
the role sources (a literal, or a variable whose last assignment before the call names it, e.g.
runtime/es_db.c's snprintf of "EVENTSHOP_MYSQL_%s_USER", expanded for every database the code
opens); es_env_secret(NAME) reads NAME_FILE or NAME. A name is required when read with no default
(NULL, getenv, a secret) unless listed in OPTIONAL. A role (binary) reads the names of its own
directory's sources, of its subscriber's source for eventshop-subscriber, and of runtime/ and
events/ (linked into every role); `sh -c` scripts in the manifests read the $NAMEs they use.

What the deployments set: each compose service's environment; each container's env and envFrom
ConfigMaps/Secrets in `kustomize build deploy/overlays/{dev,prod}`; scripts/stack.sh's export
lines (one environment for all its roles: its env file plus every role's own exports). Our images'
ENV (Dockerfile: the last stage for image eventshop, stage `test` for eventshop-test, each with the
stages it is built FROM) counts as set for its containers when checking what a role requires.

Checks, one PASS/FAIL line each: every name set is read (or allow-listed below, with who reads
it); every role gets the names it requires, including the user and password of every database
it opens; the API serves every context of deploy/contexts (ES_CONTEXTS); every *_FILE a role reads
points into a mounted secret or volume; and on the Kubernetes output: no `replicas:` on a
Deployment an HPA or a KEDA ScaledObject scales, the Ingress routes /v1 but not /metrics, and
our long-running roles probe /healthz for liveness and /readyz for readiness.

usage: .cache/deploy-venv/bin/python tests/deploy/test_config_truth.py"""
import os
import re
import shlex
import sys

import yaml

from deploylib import check, summary, IMAGES, TOP, dockerfile_stages, image_cmd, image_env, image_name, kustomize, pod_spec, stage_of

OVERLAYS = ("dev", "prod")
SRC_DIRS = ("api", "command-handlers", "events", "history", "projections", "runtime", "schema-registry",
            "subscribers", "tests/stand-ins")
SHARED_DIRS = ("runtime", "events")  # linked into every role binary
# role binary -> (its source directory, its main file, whether it links the directory's other
# sources: the roles do, the admin tool and the stand-ins are their main file and the shared dirs)
BINARIES = {
    "eventshop-api": ("api", "api_main.c", True),
    "eventshop-handler": ("command-handlers", "handler_main.c", True),
    "eventshop-projector": ("projections", "projector_main.c", True),
    "eventshop-subscriber": ("subscribers", "subscriber_main.c", True),
    "eventshop-registry": ("schema-registry", "registry_main.c", True),
    "eventshop-admin": ("runtime", "admin_main.c", False),
    "eventshop-test-gateway": ("tests/stand-ins", "test_gateway_main.c", False),
    "eventshop-test-carrier": ("tests/stand-ins", "test_carrier_main.c", False),
}
LONG_RUNNING = {"eventshop-api", "eventshop-handler", "eventshop-projector", "eventshop-subscriber",
                "eventshop-registry"}
# databases opened from a run-time name rather than a literal es_db_open("...")
DB_FROM_ARG = {"eventshop-projector"}  # projections/pj_runtime.c: es_db_open(p->context)
DB_FROM_CONTEXTS = {"eventshop-api"}  # api/api_server.c: es_db_open_timeout(ctx) per ES_CONTEXTS

# Read with no default in the call, yet fine unset: what the code does then.
OPTIONAL = {
    "EVENTSHOP_MYSQL_SOCKET": "TCP to EVENTSHOP_MYSQL_HOST when unset",
    "EVENTSHOP_FAULTS": "fault points, armed by tests only",
    "EVENTSHOP_HEALTH_STALL_S": "runtime/es_metrics.c falls back to STALL_DEFAULT_S",
    "EVENTSHOP_INSTANCE_ID": "the host name (the pod's name in Kubernetes)",
    "EVENTSHOP_PROJECTOR_GROUP": "the projector's own group; set for rebuilds and tests",
    "EVENTSHOP_PROJECTOR_TABLE_SUFFIX": "no suffix; set for rebuilds and tests",
    "EVENTSHOP_JWT_SECRET": "HS256 only; every deployment signs with RS256 key files",
    # runtime/es_kafka.c: plaintext unless EVENTSHOP_KAFKA_SECURITY_PROTOCOL says otherwise; the
    # prod overlay sets them all (tests/deploy/test_kafka_security.py), compose and dev none
    "EVENTSHOP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512 with sasl_ssl, unused otherwise",
    "EVENTSHOP_KAFKA_SASL_USERNAME": "needed with sasl_ssl only",
    "EVENTSHOP_KAFKA_SASL_PASSWORD_FILE": "needed with sasl_ssl only",
    "EVENTSHOP_KAFKA_SSL_CA_FILE": "the system's CAs (ssl and sasl_ssl only)",
}
# Read with a default, yet required: the default fits no deployment.
REQUIRED_DESPITE_DEFAULT = {
    "EVENTSHOP_MYSQL_%s_USER": "the default eventshop_<db> is no user of a context's database (_rw, _ro)",
    "ES_CONTEXTS": "the default serves the catalog alone; every other route answers 503",
}
# Set but not read by our C code: who reads it (checked: the name occurs in that file).
READ_ELSEWHERE = {
    "EVENTSHOP_HEALTH_URL": "Dockerfile",  # the image's HEALTHCHECK
    "MYSQL_HOST": "deploy/compose/mysql-init.sh",  # the generated init script (also in the Job's ConfigMap)
    "ES_STATE": "scripts/stack.sh",  # stack.sh, scripts and tests: the local stack's state folder
    "ES_BUILD": "scripts/stack.sh",
    "ES_PORT_OFFSET": "scripts/stack.sh",
    "ES_SUBSCRIBERS": "scripts/stack.sh",
    "EVENTSHOP_API_URL": "tests/integration/conftest.py",
    "EVENTSHOP_MYSQL_ROOT_SOCKET": "tests/integration/conftest.py",
    "EVENTSHOP_MAIL_CAPTURE_DIR": "tests/integration/notify_ship_util.py",
    "EVENTSHOP_SMTP_CAPTURE_ADDR": "tests/tools/smtp_capture.py",
    "EVENTSHOP_SMTP_CAPTURE_DIR": "tests/tools/smtp_capture.py",
}
# Set on third-party images only, read by that software: MariaDB's entrypoint (MARIADB_*, and the
# MYSQL_* names it also accepts; the client reads MYSQL_HOST and MYSQL_PWD), Apache Kafka's image
# (KAFKA_*), Grafana (GF_*).
THIRD_PARTY_PREFIXES = ("MARIADB_", "MYSQL_", "KAFKA_", "GF_")

NAME = re.compile(r"[A-Z][A-Z0-9_]*(?:%s[A-Z0-9_]*)?")


def read(path):
    with open(os.path.join(TOP, path)) as f:
        return f.read()


def deploy_contexts():
    """the first word of each line (the context; options such as views= follow it)"""
    return [ln.split("#")[0].split()[0] for ln in read("deploy/contexts").splitlines() if ln.split("#")[0].strip()]


# ---------------------------------------------------------------- what the code reads
def strip_comments(text):
    keep = lambda m: m.group(0) if m.group(0)[0] in "\"'" else " "
    return re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', keep, text, flags=re.S)


def call_args(text, i):
    """the top-level arguments of the call whose '(' ends at text[i - 1]"""
    out, cur, depth = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            m = re.compile(r'"(?:\\.|[^"\\])*"').match(text, i)
            cur, i = cur + m.group(0), m.end()
            continue
        if ch == ")" and depth == 0:
            return out + [cur.strip()]
        if ch == "," and depth == 0:
            out, cur = out + [cur.strip()], ""
        else:
            depth += (ch in "([{") - (ch in ")]}")
            cur += ch
        i += 1
    return out


def names_of(text, pos, arg):
    """the env names arg stands for at pos: a literal, or the literals of the variable's last
    assignment before pos (snprintf(var, ...) or var = ...)"""
    if arg.startswith('"'):
        return [arg[1:-1]]
    if not re.fullmatch(r"[A-Za-z_]\w*", arg):
        return []
    last = None
    for m in re.finditer(r"\bsnprintf\s*\(\s*%s\b|\b%s\s*=(?!=)" % (arg, arg), text[:pos]):
        last = m
    if not last:
        return []
    stmt = text[last.start():text.index(";", last.end())]
    return [s for s in re.findall(r'"((?:\\.|[^"\\])*)"', stmt) if NAME.fullmatch(s)]


def scan_c(path):
    """[(name, required)] read by one C file, and the databases it opens by literal name"""
    text = strip_comments(read(path))
    reads = []
    for m in re.finditer(r"\b(es_env_str|es_env_long|es_env_secret|getenv)\s*\(", text):
        args = call_args(text, m.end())
        if not args:
            continue
        no_default = m.group(1) in ("getenv", "es_env_secret") or (len(args) > 1 and args[1] == "NULL")
        for n in names_of(text, m.start(), args[0]):
            if m.group(1) == "es_env_secret":  # the secret from NAME_FILE's file, else NAME
                reads.append((n + "_FILE", False))
            reads.append((n, no_default))
    dbs = re.findall(r'\bes_db_open(?:_timeout|_as)?\s*\(\s*"([^"]+)"', text)
    return reads, dbs


def role_files(binary, arg=None):
    d, main, whole = BINARIES[binary]
    files = [f"{d}/{main}"]
    for sd in ((d,) if whole else ()) + SHARED_DIRS:
        for f in sorted(os.listdir(os.path.join(TOP, sd))):
            if not f.endswith(".c") or f.endswith("_main.c") or f"{sd}/{f}" in files:
                continue
            if binary == "eventshop-subscriber" and sd == d:  # only its own subscriber's source
                m = re.search(r'sb_subscriber_t\s+\w+\s*=\s*\{[^}]*?\.name\s*=\s*"([^"]+)"', read(f"{sd}/{f}"), re.S)
                if m and m.group(1) != arg:
                    continue
            files.append(f"{sd}/{f}")
    return files


class Code:
    def __init__(self):
        self.cache = {}
        files = [f"{d}/{f}" for d in SRC_DIRS for f in sorted(os.listdir(os.path.join(TOP, d))) if f.endswith(".c")]
        self.dbs = sorted(set(deploy_contexts()).union(*(self.scan(f)[1] for f in files)))
        self.read = {x for f in files for n, _ in self.scan(f)[0] for x in self.expand(n, self.dbs)}
        self.templates = {n for f in files for n, _ in self.scan(f)[0] if "%s" in n}

    def scan(self, f):
        if f not in self.cache:
            self.cache[f] = scan_c(f)
        return self.cache[f]

    @staticmethod
    def expand(name, dbs):
        return [name.replace("%s", db.upper()) for db in dbs] if "%s" in name else [name]

    def role_reads(self, binary, arg):
        """{name: required} of a role, templates expanded for every database"""
        out = {}
        for f in role_files(binary, arg):
            for n, req in self.scan(f)[0]:
                for x in self.expand(n, self.dbs):
                    out[x] = out.get(x, False) or req
        return out

    def requires(self, binary, arg, env):
        """[[alternatives]] the role must be given (one name of each inner list)"""
        reads, dbs = {}, set()
        for f in role_files(binary, arg):
            r, d = self.scan(f)
            for n, req in r:
                reads[n] = reads.get(n, False) or req
            dbs.update(d)
        if binary in DB_FROM_ARG and arg:
            dbs.add(arg)
        if binary in DB_FROM_CONTEXTS:
            dbs.update((env.get("ES_CONTEXTS") or "").split())
        out = []
        for n, req in reads.items():
            if n in OPTIONAL or not (req or n in REQUIRED_DESPITE_DEFAULT):
                continue
            alts = [n, n + "_FILE"] if (n + "_FILE") in reads else [n]
            out += [[a.replace("%s", db.upper()) for a in alts] for db in sorted(dbs)] if "%s" in n else [alts]
        return out


# ---------------------------------------------------------------- what the deployments set
class Container:
    def __init__(self, name, ours, argv, env, files=None, image_env=None):
        self.name, self.ours, self.argv = name, ours, argv
        self.set = env  # name -> value (None when not a plain value)
        self.env = dict(image_env or {}, **env) if ours else env
        self.files = files  # [(path, exact)] readable in the container; None: not modelled
        self.binary = os.path.basename(argv[0]) if argv else None
        self.arg = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None

    def script_reads(self):
        if self.binary in ("sh", "bash") and "-c" in self.argv:
            return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", self.argv[self.argv.index("-c") + 1]))
        return set()


def dockerfile():
    """{our image: (its ENV, its CMD)}, from the Dockerfile stage each is built from"""
    stages, out = dockerfile_stages(), {}
    for name in IMAGES:
        st = stage_of(stages, name)
        out[name] = (image_env(st), image_cmd(st)) if st else ({}, [])
    return out


def ours(image):
    return image_name(image) is not None


def default_cmd(images, image):
    return images[image_name(image)][1] if ours(image) else []


def env_of(images, image):
    return images[image_name(image)][0] if ours(image) else None


def compose_containers(images):
    out = []
    for name, svc in yaml.safe_load(read("docker-compose.yml"))["services"].items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict((e.split("=", 1) + [None])[:2] for e in env)
        for f in [svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file", []):
            env.update(dict(ln.split("=", 1) for ln in read(f).splitlines() if "=" in ln and not ln.startswith("#")))
        argv = svc.get("command") or default_cmd(images, svc.get("image", ""))
        argv = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
        files = [("/run/secrets/" + (s if isinstance(s, str) else s.get("target", s["source"])), True)
                 for s in svc.get("secrets", [])]
        files += [(v.split(":")[1], True) for v in svc.get("volumes", []) if isinstance(v, str) and ":" in v]
        files += [(t, False) for t in svc.get("tmpfs", [])]
        out.append(Container(name, ours(svc.get("image", "")), argv,
                             {k: None if v is None else str(v) for k, v in env.items()}, files,
                             env_of(images, svc.get("image", ""))))
    return out


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def k8s_containers(docs, images, problems):
    data = {(d["kind"], d["metadata"]["name"]): dict(d.get("data") or {}, **(d.get("stringData") or {}))
            for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    out = []
    for d in docs:
        if d["kind"] not in WORKLOADS:
            continue
        pod = pod_spec(d)
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{d['kind']}/{d['metadata']['name']}/{c['name']}"
            env = {}
            for ef in c.get("envFrom", []):
                kind, ref = ("ConfigMap", ef["configMapRef"]) if "configMapRef" in ef else ("Secret", ef["secretRef"])
                if (kind, ref["name"]) not in data:
                    problems.append(f"{where}: envFrom {kind} {ref['name']} is not in the build")
                    continue
                env.update({ef.get("prefix", "") + k: str(v) for k, v in data[(kind, ref["name"])].items()})
            for e in c.get("env", []):
                env[e["name"]] = str(e["value"]) if "value" in e else None
            files = []
            for m in c.get("volumeMounts", []):
                v = vols.get(m["name"], {})
                src = v.get("secret") or v.get("configMap") or {}
                if m.get("subPath"):
                    files.append((m["mountPath"], True))
                elif src.get("items"):
                    files += [(f"{m['mountPath']}/{i['path']}", True) for i in src["items"]]
                else:
                    files.append((m["mountPath"], False))
            argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            out.append(Container(where, ours(c["image"]), argv or default_cmd(images, c["image"]),
                                 env, files, env_of(images, c["image"])))
    return out


def stack_containers(image_env):
    """scripts/stack.sh: one environment (its env file and every role's exports) for each role"""
    text = read("scripts/stack.sh")
    ctxs = re.search(r'ES_CONTEXTS:-([^}"]*)\}', text).group(1).split()
    subs = re.search(r'ES_SUBSCRIBERS-([^}"]*)\}', text).group(1).split()
    env = {}
    for ln in re.findall(r'^\s*(?:echo\s+")?export\s+(.*)$', text, re.M):
        for n in re.findall(r'(?:^|\s)"?([A-Za-z_][A-Za-z0-9_]*(?:\$\{C\}[A-Za-z0-9_]*)?)=', ln):
            for c in (ctxs if "${C}" in n else [""]):
                env[n.replace("${C}", c.upper())] = None
    env["ES_CONTEXTS"] = " ".join(ctxs)
    roles = ([["eventshop-registry"], ["eventshop-api"], ["eventshop-test-gateway"], ["eventshop-test-carrier"]]
             + [[b, c] for c in ctxs for b in ("eventshop-handler", "eventshop-projector")]
             + [["eventshop-subscriber", s] for s in subs])
    return [Container(" ".join(r), True, r, dict(env), None, image_env) for r in roles]


# ---------------------------------------------------------------- the checks
def set_never_read(containers, code):
    script = set().union(*(c.script_reads() for c in containers))
    bad = []
    for c in containers:
        for n in c.set:
            if n in code.read or n in script or n in READ_ELSEWHERE:
                continue
            if not c.ours and n.startswith(THIRD_PARTY_PREFIXES):
                continue
            bad.append(f"{c.name}: {n} is set but nothing reads it")
    return bad


def required_unset(containers, code):
    bad = []
    for c in containers:
        if c.binary in BINARIES:
            for alts in code.requires(c.binary, c.arg, c.env):
                if not any(a in c.env for a in alts):
                    bad.append(f"{c.name}: {' or '.join(alts)} required by {c.binary} but not set")
        for n in c.script_reads() - set(c.env):
            bad.append(f"{c.name}: ${n} used by its script but not set")
    return bad


def api_contexts(containers):
    want, bad, apis = set(deploy_contexts()), [], [c for c in containers if c.binary == "eventshop-api"]
    for c in apis:
        got = set((c.env.get("ES_CONTEXTS") or "catalog").split())  # api/api_server.c's default
        if got != want:
            bad.append(f"{c.name}: ES_CONTEXTS serves {sorted(got)}, deploy/contexts has {sorted(want)}")
    return bad or ([] if apis else ["no eventshop-api container"])


def files_mounted(containers, code):
    bad = []
    for c in containers:
        if c.binary not in BINARIES or c.files is None:
            continue
        reads = code.role_reads(c.binary, c.arg)
        for n, v in c.set.items():
            if not n.endswith("_FILE") or v is None or n not in reads:
                continue
            if not any(v == p if exact else v.startswith(p.rstrip("/") + "/") for p, exact in c.files):
                bad.append(f"{c.name}: {n}={v} is not a mounted file")
    return bad


def allow_list_true():
    return [f"{n}: not found in {f}, its named reader" for n, f in READ_ELSEWHERE.items() if n not in read(f)]


def autoscaled_replicas(docs):
    targets = {d["spec"]["scaleTargetRef"]["name"] for d in docs
               if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
               and d["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"}
    return [f"Deployment/{d['metadata']['name']}: replicas {d['spec']['replicas']} while an autoscaler owns the count"
            for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in targets and "replicas" in d["spec"]]


def routes(path, rule):
    """does an Ingress path rule send path to its backend (networking.k8s.io/v1 matching)"""
    p, kind = rule["path"], rule["pathType"]
    if kind == "Exact":
        return path == p
    if kind == "Prefix":  # element-wise: /v1 matches /v1 and /v1/x, not /v10
        pe, qe = [e for e in p.split("/") if e], [e for e in path.split("/") if e]
        return qe[:len(pe)] == pe
    return path.startswith(p)  # ImplementationSpecific (nginx): a plain prefix at worst


def ingress(docs):
    """/v1 routed and /metrics not; /v1/stream by an Ingress with response buffering off"""
    bad, n, v1, stream = [], 0, False, False
    for d in docs:
        if d["kind"] != "Ingress":
            continue
        n += 1
        paths = [p for r in d["spec"].get("rules", []) for p in r.get("http", {}).get("paths", [])]
        for probe in ("/metrics",):
            if any(routes(probe, p) for p in paths):
                bad.append(f"Ingress/{d['metadata']['name']}: routes {probe}")
        v1 = v1 or any(routes("/v1/products", p) for p in paths)
        # the longest matching path wins: the stream's own rule, whichever Ingress holds it
        if any(routes("/v1/stream", p) and p["path"].startswith("/v1/stream") for p in paths):
            notes = d["metadata"].get("annotations", {})
            stream = notes.get("nginx.ingress.kubernetes.io/proxy-buffering") == "off"
            if not stream:
                bad.append(f"Ingress/{d['metadata']['name']}: buffers /v1/stream")
    if not v1:
        bad.append("no Ingress routes /v1")
    if not stream and not bad:
        bad.append("no Ingress routes /v1/stream with proxy-buffering off")
    return bad if n else ["no Ingress"]


def probes(docs, images):
    bad = []
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        for c in pod_spec(d)["containers"]:
            argv = (c.get("command") or []) + (c.get("args") or []) or default_cmd(images, c["image"])
            if not ours(c["image"]) or argv[0] not in LONG_RUNNING:
                continue
            where = f"{d['kind']}/{d['metadata']['name']}/{c['name']}"
            for p, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                got = c.get(p, {}).get("httpGet", {}).get("path")
                if got != path:
                    bad.append(f"{where}: {p} on {got}, not {path}")
    return bad


def main():
    code = Code()
    images = dockerfile()
    req = {n for f in code.cache for n, r in code.cache[f][0] if r}
    check(f"code: {len(code.read)} names read ({len(req)} with no default), databases {' '.join(code.dbs)}",
          [] if len(code.read) > 30 and code.templates and set(code.dbs) - set(deploy_contexts())
          else ["the C scan found too little: no names, no %s template or no es_db_open(\"...\")"])
    check("allow-list: every name read elsewhere occurs in its reader", allow_list_true())
    k8s = {}
    for o in OVERLAYS:
        problems = []
        docs = kustomize(o)
        k8s[o] = (docs, k8s_containers(docs, images, problems))
        check(f"{o}: every envFrom source is in the build", problems)
    deployments = [("compose", compose_containers(images))] + [(o, k8s[o][1]) for o in OVERLAYS] + \
                  [("stack", stack_containers(images["eventshop"][0]))]
    for where, cs in deployments:
        check(f"{where}: every name set is read", set_never_read(cs, code))
        check(f"{where}: every role gets the names it requires", required_unset(cs, code))
        check(f"{where}: the API serves every context of deploy/contexts (ES_CONTEXTS)", api_contexts(cs))
        if where != "stack":
            check(f"{where}: every *_FILE a role reads is a mounted file", files_mounted(cs, code))
    for o in OVERLAYS:
        docs = k8s[o][0]
        check(f"{o}: no replicas on a Deployment an autoscaler scales", autoscaled_replicas(docs))
        check(f"{o}: the Ingress routes /v1 and /v1/stream unbuffered, not /metrics", ingress(docs))
        check(f"{o}: long-running roles: liveness /healthz, readiness /readyz", probes(docs, images))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
