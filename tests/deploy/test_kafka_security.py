#!/usr/bin/env python3
"""Kafka's security in Kubernetes (issue 9, item 4), on `kustomize build` of each overlay and on
the C sources that say what each role does with Kafka. Static: starts nothing but kustomize.

Both overlays:
- every pod Strimzi makes (brokers and controllers of every node pool, the entity operator's
  topic and user operators, Kafka Exporter, Cruise Control when enabled) gets, through the Kafka's
  (or its node pool's) `template`, what Pod Security `restricted` asks: pod runAsNonRoot and a
  RuntimeDefault seccomp profile; containers runAsNonRoot, no privilege escalation, every
  capability dropped (none added but NET_BIND_SERVICE), RuntimeDefault seccomp, not privileged;
- every Kafka listener's networkPolicyPeers admit the eventshop clients (label
  eventshop.io/kafka-client) and KEDA's operator (namespace KEDA_NAMESPACE, pods KEDA_POD: the
  assumption stated in deploy/base/kafka.yaml) and nothing wider;
- the clients' EVENTSHOP_KAFKA_BROKERS, KEDA's bootstrapServers and the kafka-clients-egress
  NetworkPolicy all use the port of a listener of the Kafka's bootstrap service.

dev stays plaintext: no TLS or authentication on any listener, no authorization, no KafkaUser,
no TriggerAuthentication, no EVENTSHOP_KAFKA_SECURITY_PROTOCOL but plaintext, no SASL/CA setting.

prod:
- every listener is TLS with SCRAM-SHA-512 authentication, `authorization: simple`, the user
  operator runs;
- every Deployment, and every Job of deploy/jobs/prod running a role of JOB_ROLES (the export
  Job's eventshop-history), sets EVENTSHOP_KAFKA_SECURITY_PROTOCOL=sasl_ssl, SCRAM-SHA-512, and a
  EVENTSHOP_KAFKA_SASL_USERNAME that names a KafkaUser of the cluster (SCRAM-SHA-512, simple
  authorization), its password file mounted from that user's Secret (key `password`) and the CA
  file from `<cluster>-cluster-ca-cert` (key ca.crt); no two Deployments share a user, every user
  is a Deployment's or KEDA's; the users, node pools, Deployments, ScaledObjects and KEDA's
  TriggerAuthentication and ConfigMap are in the Kafka's namespace;
- the ACLs' shape: no wildcard and no prefixed topic rule (JUSTIFIED_TOPIC_RULES lists the
  exceptions, none now), no cluster rule, no operation beyond Read/Write/Describe (Create only on
  a subscriber's own dead-letter topic), KEDA's user Describe only, and no user's prefix reaching
  a group or transactional id granted to another user;
- the ACLs allow what the code does and no more: per role, the topics it reads and writes, its
  consumer groups and transactional ids, as the C sources name them (es_topic kinds of the
  runtimes, the handlers' views, the subscribers' .topics, sb_out_command and sb_out_event, the
  snprintf/xasprintf formats of groups and transactional ids, the projections' names, the
  registry's topic; eventshop-history: the events of its --contexts, else of hi.h's default, and
  users.events' UserForgotten, in the group it names); every topic rule is one of those;
- KEDA: every ScaledObject's trigger authenticates through a TriggerAuthentication giving sasl
  scram_sha512, tls enable, KEDA's own KafkaUser and its password, and the cluster CA; that user
  may Describe the trigger's group and its topics (the trigger's topic, else those its group reads).

usage: .cache/deploy-venv/bin/python tests/deploy/test_kafka_security.py"""
import glob
import os
import re
import sys

from deploylib import check, summary, TOP, kustomize, pod_spec, read

OVERLAYS = ("dev", "prod")
CLIENT_PEER = {"podSelector": {"matchLabels": {"eventshop.io/kafka-client": "true"}}}
# KEDA installed by its Helm chart into namespace keda: the chart labels the operator's pods
# app=keda-operator (its Deployment's selector); deploy/base/kafka.yaml and deploy/README.md say so
KEDA_NAMESPACE, KEDA_POD = "keda", {"app": "keda-operator"}
# the roles' image: our containers are the ones that read EVENTSHOP_KAFKA_*
OUR_IMAGE = re.compile(r"(^|/)eventshop(:|@|$)")
# topic rules that may be prefixed or "*": {(user, name): why}; none is needed now
JUSTIFIED_TOPIC_RULES = {}
IMPLIES_DESCRIBE = {"Read", "Write", "Delete", "Alter"}
SAMPLE = "pod-0"  # stands for a run-time part of a name (pod name, uuid, time)
JOB_ROLES = {"eventshop-history"}  # Jobs that are Kafka clients as a KafkaUser of their own


# ---------------------------------------------------------------- manifests
def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def kafka_of(docs):
    k = by_kind(docs, "Kafka")
    return k[0] if len(k) == 1 else None


def env_of(docs, c):
    """a container's environment: env values over its envFrom ConfigMaps (None: not a value)"""
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind(docs, "ConfigMap")}
    env = {}
    for ef in c.get("envFrom", []):
        if "configMapRef" in ef:
            env.update({k: str(v) for k, v in cms.get(ef["configMapRef"]["name"], {}).items()})
    for e in c.get("env", []):
        env[e["name"]] = str(e["value"]) if "value" in e else None
    return env


def mounted_file(pod, c, path):
    """(secret name, key) of the Secret item mounted at path in container c, or None"""
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        sec = vols.get(m["name"], {}).get("secret")
        if not sec:
            continue
        if m.get("subPath") and m["mountPath"] == path:
            return sec["secretName"], m["subPath"]
        d = m["mountPath"].rstrip("/") + "/"
        if path.startswith(d):
            rel = path[len(d):]
            items = sec.get("items")
            if items is None:
                return sec["secretName"], rel
            for i in items:
                if i["path"] == rel:
                    return sec["secretName"], i["key"]
    return None


def our_containers(docs, kinds=("Deployment",)):
    for d in docs:
        if d["kind"] in kinds:
            pod = pod_spec(d)
            for c in pod["containers"]:
                if OUR_IMAGE.search(c["image"]):
                    yield d, pod, c


def kafka_clients(docs):
    """our containers that connect to Kafka as a KafkaUser: every Deployment's, and a Job's that
    runs one of JOB_ROLES"""
    for d, pod, c in our_containers(docs, ("Deployment", "Job")):
        if d["kind"] == "Deployment" or role_of(c)[0] in JOB_ROLES:
            yield d, pod, c


# ---------------------------------------------------------------- Strimzi security contexts
def restricted_pod(where, sc):
    bad = []
    if not sc:
        return [f"{where}: no pod securityContext"]
    if sc.get("runAsNonRoot") is not True:
        bad.append(f"{where}: pod runAsNonRoot not true")
    if sc.get("runAsUser") == 0:
        bad.append(f"{where}: pod runAsUser 0")
    if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        bad.append(f"{where}: pod seccompProfile not RuntimeDefault")
    return bad


def restricted_container(where, sc):
    bad = []
    if not sc:
        return [f"{where}: no container securityContext"]
    if sc.get("runAsNonRoot") is not True:
        bad.append(f"{where}: runAsNonRoot not true")
    if sc.get("runAsUser") == 0:
        bad.append(f"{where}: runAsUser 0")
    if sc.get("allowPrivilegeEscalation") is not False:
        bad.append(f"{where}: allowPrivilegeEscalation not false")
    if sc.get("privileged"):
        bad.append(f"{where}: privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        bad.append(f"{where}: capabilities not all dropped")
    if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
        bad.append(f"{where}: capabilities added {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})}")
    if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        bad.append(f"{where}: seccompProfile not RuntimeDefault")
    return bad


def strimzi_security(docs):
    k = kafka_of(docs)
    if not k:
        return ["not exactly one Kafka"]
    name, spec, bad = k["metadata"]["name"], k["spec"], []
    kt = spec["kafka"].get("template") or {}
    pools = [p for p in by_kind(docs, "KafkaNodePool") if p["metadata"].get("labels", {}).get("strimzi.io/cluster") == name]
    # a node pool's template part replaces the Kafka's for its pods
    for where, t in [(f"KafkaNodePool/{p['metadata']['name']}", dict(kt, **(p["spec"].get("template") or {}))) for p in pools] or \
                    [(f"Kafka/{name} brokers", kt)]:
        bad += restricted_pod(where, (t.get("pod") or {}).get("securityContext"))
        bad += restricted_container(f"{where}/kafka", (t.get("kafkaContainer") or {}).get("securityContext"))
        if spec["kafka"].get("rack"):  # rack awareness adds an init container
            bad += restricted_container(f"{where}/init", (t.get("initContainer") or {}).get("securityContext"))
    eo = spec.get("entityOperator")
    if eo is not None:
        t = eo.get("template") or {}
        bad += restricted_pod(f"Kafka/{name} entity operator", (t.get("pod") or {}).get("securityContext"))
        for op, ctr in (("topicOperator", "topicOperatorContainer"), ("userOperator", "userOperatorContainer")):
            if op in eo:
                bad += restricted_container(f"Kafka/{name} entity operator/{op}", (t.get(ctr) or {}).get("securityContext"))
    ke = spec.get("kafkaExporter")
    if ke is not None:
        t = ke.get("template") or {}
        bad += restricted_pod(f"Kafka/{name} Kafka Exporter", (t.get("pod") or {}).get("securityContext"))
        bad += restricted_container(f"Kafka/{name} Kafka Exporter", (t.get("container") or {}).get("securityContext"))
    cc = spec.get("cruiseControl")
    if cc is not None:
        t = cc.get("template") or {}
        bad += restricted_pod(f"Kafka/{name} Cruise Control", (t.get("pod") or {}).get("securityContext"))
        bad += restricted_container(f"Kafka/{name} Cruise Control", (t.get("cruiseControlContainer") or {}).get("securityContext"))
    return bad


# ---------------------------------------------------------------- listeners, ports
def is_keda(peer):
    return (peer.get("namespaceSelector") or {}).get("matchLabels") == {"kubernetes.io/metadata.name": KEDA_NAMESPACE} \
        and (peer.get("podSelector") or {}).get("matchLabels") == KEDA_POD


def listener_peers(docs):
    k = kafka_of(docs)
    if not k:
        return ["not exactly one Kafka"]
    bad = []
    for li in k["spec"]["kafka"]["listeners"]:
        where = f"listener {li['name']}"
        peers = li.get("networkPolicyPeers")
        if not peers:
            bad.append(f"{where}: no networkPolicyPeers (Strimzi then admits every pod)")
            continue
        if CLIENT_PEER not in peers:
            bad.append(f"{where}: eventshop's clients (eventshop.io/kafka-client) not admitted")
        if not any(is_keda(p) for p in peers):
            bad.append(f"{where}: KEDA's operator (namespace {KEDA_NAMESPACE}, pods {KEDA_POD}) not admitted")
        for p in peers:
            if p != CLIENT_PEER and not is_keda(p):
                bad.append(f"{where}: peer {p} is neither the clients nor KEDA")
            if p.get("ipBlock") or any(s is not None and not (s.get("matchLabels") or s.get("matchExpressions"))
                                       for s in (p.get("podSelector"), p.get("namespaceSelector"))):
                bad.append(f"{where}: peer {p} selects too much")
    return bad


def ports(docs):
    """the brokers the clients are given, KEDA's bootstrapServers and the egress policy: a listener's port"""
    k = kafka_of(docs)
    if not k:
        return ["not exactly one Kafka"]
    host = f"{k['metadata']['name']}-kafka-bootstrap"
    lports = {li["port"] for li in k["spec"]["kafka"]["listeners"]}
    bad = []

    def server(where, s):
        for hp in s.split(","):
            h, _, p = hp.strip().rpartition(":")
            if h.split(".")[0] != host or not p.isdigit() or int(p) not in lports:
                bad.append(f"{where}: {hp} is not {host} on a listener port {sorted(lports)}")

    for d, pod, c in our_containers(docs, ("Deployment", "StatefulSet", "Job", "CronJob")):
        b = env_of(docs, c).get("EVENTSHOP_KAFKA_BROKERS")
        if b:
            server(f"{d['kind']}/{d['metadata']['name']} EVENTSHOP_KAFKA_BROKERS", b)
    for so in by_kind(docs, "ScaledObject"):
        for t in so["spec"]["triggers"]:
            if t["type"] == "kafka":
                server(f"ScaledObject/{so['metadata']['name']} bootstrapServers", t["metadata"]["bootstrapServers"])
    egress = [np for np in by_kind(docs, "NetworkPolicy") if np["metadata"]["name"] == "kafka-clients-egress"]
    if not egress:
        bad.append("no NetworkPolicy kafka-clients-egress")
    for np in egress:
        allowed = {p["port"] for r in np["spec"].get("egress", [])
                   if any((t.get("podSelector") or {}).get("matchLabels", {}).get("strimzi.io/cluster") == k["metadata"]["name"]
                          for t in r.get("to", []))
                   for p in r.get("ports", [])}
        if not lports <= allowed:
            bad.append(f"kafka-clients-egress: allows ports {sorted(allowed)} to Kafka, the listeners use {sorted(lports)}")
    return bad


def dev_plaintext(docs):
    k, bad = kafka_of(docs), []
    if not k:
        return ["not exactly one Kafka"]
    for li in k["spec"]["kafka"]["listeners"]:
        if li.get("tls") or li.get("authentication"):
            bad.append(f"listener {li['name']}: TLS or authentication in dev")
    if k["spec"]["kafka"].get("authorization"):
        bad.append("Kafka: authorization in dev")
    bad += [f"{d['kind']}/{d['metadata']['name']} in dev" for d in docs if d["kind"] in ("KafkaUser", "TriggerAuthentication")]
    bad += [f"ScaledObject/{so['metadata']['name']}: authenticationRef in dev"
            for so in by_kind(docs, "ScaledObject") for t in so["spec"]["triggers"] if t.get("authenticationRef")]
    for d, pod, c in our_containers(docs, ("Deployment", "StatefulSet", "Job", "CronJob")):
        env = env_of(docs, c)
        p = env.get("EVENTSHOP_KAFKA_SECURITY_PROTOCOL")
        if p not in (None, "plaintext"):
            bad.append(f"{d['kind']}/{d['metadata']['name']}: EVENTSHOP_KAFKA_SECURITY_PROTOCOL={p}")
        bad += [f"{d['kind']}/{d['metadata']['name']}: {n} set in dev" for n in env
                if n.startswith("EVENTSHOP_KAFKA_SASL_") or n == "EVENTSHOP_KAFKA_SSL_CA_FILE"]
    return bad


# ---------------------------------------------------------------- prod: listener, clients
def prod_listener(docs):
    k, bad = kafka_of(docs), []
    if not k:
        return ["not exactly one Kafka"]
    for li in k["spec"]["kafka"]["listeners"]:
        if li.get("tls") is not True:
            bad.append(f"listener {li['name']}: not TLS")
        if (li.get("authentication") or {}).get("type") != "scram-sha-512":
            bad.append(f"listener {li['name']}: authentication {li.get('authentication')}, not scram-sha-512")
    if (k["spec"]["kafka"].get("authorization") or {}).get("type") != "simple":
        bad.append(f"Kafka: authorization {k['spec']['kafka'].get('authorization')}, not simple")
    if "userOperator" not in (k["spec"].get("entityOperator") or {}):
        bad.append("Kafka: no user operator (nobody makes the KafkaUsers)")
    return bad


def kafka_users(docs):
    k = kafka_of(docs)
    return {u["metadata"]["name"]: u for u in by_kind(docs, "KafkaUser")
            if k and u["metadata"].get("labels", {}).get("strimzi.io/cluster") == k["metadata"]["name"]}


def keda_user(docs):
    """the KafkaUser KEDA's TriggerAuthentications name (their ConfigMap's or Secret's username)"""
    names = set()
    for ta in by_kind(docs, "TriggerAuthentication"):
        for ref in ta["spec"].get("configMapTargetRef", []):
            if ref["parameter"] == "username":
                cm = next((d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == ref["name"]), None)
                names.add(((cm or {}).get("data") or {}).get(ref["key"]))
    return names


def prod_clients(docs):
    k = kafka_of(docs)
    if not k:
        return ["not exactly one Kafka"]
    ca = f"{k['metadata']['name']}-cluster-ca-cert"
    users, bad, used = kafka_users(docs), [], {}
    deps = [(d, pod, c) for d, pod, c in kafka_clients(docs)]
    if not deps:
        return ["no Deployment runs our image"]
    for d, pod, c in deps:
        where = f"{d['kind']}/{d['metadata']['name']}/{c['name']}"
        env = env_of(docs, c)
        if env.get("EVENTSHOP_KAFKA_SECURITY_PROTOCOL") != "sasl_ssl":
            bad.append(f"{where}: EVENTSHOP_KAFKA_SECURITY_PROTOCOL={env.get('EVENTSHOP_KAFKA_SECURITY_PROTOCOL')}, not sasl_ssl")
        if env.get("EVENTSHOP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper() != "SCRAM-SHA-512":
            bad.append(f"{where}: EVENTSHOP_KAFKA_SASL_MECHANISM={env['EVENTSHOP_KAFKA_SASL_MECHANISM']}, the listener takes SCRAM-SHA-512")
        if "EVENTSHOP_KAFKA_SASL_PASSWORD" in env:
            bad.append(f"{where}: a password in the environment")
        user = env.get("EVENTSHOP_KAFKA_SASL_USERNAME")
        u = users.get(user)
        if not u:
            bad.append(f"{where}: EVENTSHOP_KAFKA_SASL_USERNAME={user} names no KafkaUser of {k['metadata']['name']}")
        else:
            used.setdefault(user, []).append(d["metadata"]["name"])
            if (u["spec"].get("authentication") or {}).get("type") != "scram-sha-512":
                bad.append(f"KafkaUser/{user}: authentication not scram-sha-512")
        for var, want in (("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE", (user, "password")), ("EVENTSHOP_KAFKA_SSL_CA_FILE", (ca, "ca.crt"))):
            path = env.get(var)
            got = mounted_file(pod, c, path) if path else None
            if got != want:
                bad.append(f"{where}: {var}={path} is {got or 'no mounted Secret item'}, not Secret {want[0]} key {want[1]}")
    bad += [f"KafkaUser/{u}: shared by {sorted(ds)}" for u, ds in used.items() if len(ds) > 1]
    # the User Operator sees the KafkaUsers of the Kafka's namespace only, pods mount Secrets and
    # KEDA reads TriggerAuthentications and their ConfigMaps of their own namespace
    ns = k["metadata"].get("namespace")
    keda_cms = {r["name"] for ta in by_kind(docs, "TriggerAuthentication") for r in ta["spec"].get("configMapTargetRef", [])}
    bad += [f"{d['kind']}/{d['metadata']['name']}: namespace {d['metadata'].get('namespace')}, the Kafka's is {ns}"
            for d in docs if (d["kind"] in ("KafkaUser", "KafkaNodePool", "TriggerAuthentication", "ScaledObject", "Deployment", "Job")
                              or (d["kind"] == "ConfigMap" and d["metadata"]["name"] in keda_cms))
            and d["metadata"].get("namespace") != ns]
    keda = keda_user(docs)
    bad += [f"KafkaUser/{u}: no Deployment, Job or KEDA connects as it" for u in users if u not in used and u not in keda]
    return bad


# ---------------------------------------------------------------- ACLs
def rules(u):
    return (u["spec"].get("authorization") or {}).get("acls") or []


def matches(rule, rtype, name):
    r = rule["resource"]
    if r["type"] != rtype:
        return False
    if rtype == "cluster":
        return True
    if r.get("name") == "*":
        return True
    return name.startswith(r["name"]) if r.get("patternType") == "prefix" else name == r.get("name")


def allows(user, rtype, name, op):
    """Kafka's simple authorizer: a deny wins; Read, Write, Delete, Alter imply Describe"""
    def grants(rule):
        ops = set(rule["operations"])
        return op in ops or "All" in ops or (op == "Describe" and ops & IMPLIES_DESCRIBE)
    rs = [r for r in rules(user) if matches(r, rtype, name) and grants(r)]
    if any(r.get("type") == "deny" for r in rs):
        return False
    return any(r.get("type", "allow") == "allow" for r in rs)


def acl_shape(docs):
    users, bad = kafka_users(docs), []
    if not users:
        return ["no KafkaUser"]
    keda = keda_user(docs)
    for n, u in users.items():
        if (u["spec"].get("authorization") or {}).get("type") != "simple" or not rules(u):
            bad.append(f"KafkaUser/{n}: no simple authorization with ACLs")
        for r in rules(u):
            res, ops = r["resource"], set(r["operations"])
            what = f"KafkaUser/{n}: {res['type']} {res.get('name')} ({res.get('patternType', 'literal')})"
            if res["type"] == "cluster":
                bad.append(f"{what}: a cluster rule")
                continue
            if res["type"] == "topic" and (res.get("name") == "*" or res.get("patternType") == "prefix") \
                    and (n, res.get("name")) not in JUSTIFIED_TOPIC_RULES:
                bad.append(f"{what}: a wildcard or prefixed topic rule (justify it in JUSTIFIED_TOPIC_RULES)")
            if res.get("name") == "*" or (res.get("patternType") == "prefix" and len(res.get("name", "")) <= len("eventshop-") + 2):
                bad.append(f"{what}: covers (nearly) every name")
            extra = ops - {"Read", "Write", "Describe", "Create"}
            if extra:
                bad.append(f"{what}: operations {sorted(extra)}")
            if "Create" in ops and not (res["type"] == "topic" and res.get("name", "").endswith(".deadletter")):
                bad.append(f"{what}: Create beyond a subscriber's own dead-letter topic")
            if n in keda and ops != {"Describe"}:
                bad.append(f"{what}: KEDA's user may do more than Describe")
    # isolation: no user's prefix reaches a group or transactional id granted to another
    # (a Describe-only grant, as the API's of the handlers' groups, shares the group, not its use)
    named = [(n, r["resource"]["type"], r["resource"]["name"]) for n, u in users.items() for r in rules(u)
             if r["resource"]["type"] in ("group", "transactionalId") and set(r["operations"]) != {"Describe"}]
    for n, u in users.items():
        for r in rules(u):
            res = r["resource"]
            if res["type"] in ("group", "transactionalId") and res.get("patternType") == "prefix":
                for m, t, name in named:
                    if m != n and t == res["type"] and name.startswith(res["name"]) and m not in keda:
                        bad.append(f"KafkaUser/{n}: {t} prefix {res['name']} reaches {m}'s {name}")
    return bad


# ---------------------------------------------------------------- what the code does with Kafka
def c_text(path):
    keep = lambda m: m.group(0) if m.group(0)[0] == '"' else " "
    return re.sub(r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*', keep, read(path), flags=re.S)


def defines(text):
    return dict(re.findall(r'#define\s+(\w+)\s+"([^"]*)"', text))


def literal(text, arg):
    """a string literal or a #define'd one, else None"""
    arg = arg.strip()
    if arg.startswith('"'):
        return arg[1:-1]
    return defines(text).get(arg)


def name_formats(paths):
    """{"group": [...], "txn": [...]}: the printf formats assigned to variables named *group* and
    *txn* (snprintf(var, ...) or var = ... xasprintf(...)) in the files"""
    out = {"group": [], "txn": [], "described": []}
    for p in paths:
        t = c_text(p)
        pairs = re.findall(r'\bsnprintf\s*\(\s*([\w>.-]+)\s*,\s*sizeof[^,]*,\s*"([^"]*)"', t)
        pairs += re.findall(r'([\w>.-]+)\s*=[^;=]*?\bxasprintf\s*\(\s*"([^"]*)"', t)
        for var, fmt in pairs:
            if "described" in var:  # a group whose committed offsets are fetched, never joined
                out["described"].append(fmt)
                continue
            for k in ("group", "txn"):
                if k in var:
                    out[k].append(fmt)
    return out


def fill(fmt, first):
    """a name from a printf format: the first %s is first, any other conversion SAMPLE"""
    out, n = "", 0
    for part in re.split(r"(%[-.0-9]*(?:ll|l)?[sdu])", fmt):
        if part.startswith("%"):
            out += first if (n == 0 and part.endswith("s")) else SAMPLE
            n += 1
        else:
            out += part
    return out


def topic_kinds(paths):
    return {k for p in paths for k in re.findall(r'\bes_topic\s*\([^;]*?,\s*"([a-z]+)"\s*\)', c_text(p))}


def reads_partitions(paths):
    """whether the files read a partition outside the group: es_kafka_read_partition(_from), or the
    subscriber runtime's sb_runtime_read_history (which calls it for the subscriber)"""
    call = r"\b(?:es_kafka_read_partition(?:_from)?|sb_runtime_read_history)\s*\("
    return any(re.search(call, c_text(p)) for p in paths)


def reader_group():
    """the group es_kafka_read_partition reads in: its "group.id" setting, or the client id it
    gives es_kafka_reader_new (whose group.id is the client id)"""
    m = re.search(r'int es_kafka_read_partition\b.*?(?:"group\.id",\s*|\bes_kafka_reader_new\s*\(\s*)"([^"]+)"',
                  c_text("runtime/es_kafka.c"), re.S)
    return m.group(1) if m else "?"  # unknown: no ACL grants it, the test says so


def c_files(d, exclude_main=True):
    return sorted(os.path.relpath(p, TOP) for p in glob.glob(os.path.join(TOP, d, "*.c"))
                  if not (exclude_main and p.endswith("_main.c")))


# What each runtime does with the topics of its context: {es_topic kind: operations}. The test
# fails when a runtime names a kind this table does not know (a new topic of a role).
HANDLER_TOPICS = {  # command-handlers/hd_runtime.c: subscribes to commands; reads changelog and
    # results back at assignment (es_kafka_read_partition); produces events, changelog, results
    "commands": {"Read"}, "events": {"Write"}, "changelog": {"Read", "Write"}, "results": {"Read", "Write"}}
PROJECTOR_TOPICS = {"events": {"Read"}}  # projections/pj_runtime.c
API_TOPICS = {  # api/: sends commands, reads results (api_results.c), reads events (high
    # watermarks, an aggregate's history, the event stream)
    "commands": {"Write"}, "results": {"Read"}, "events": {"Read"}}


def ops_topics(paths):
    """the operators' action topic a role's sources name (#define <X>_OPS_TOPIC "...": the
    projector reads it, pj_ops.c; the API writes it, api_admin.c)"""
    return {t for p in paths for t in re.findall(r'#define\s+\w*OPS_TOPIC\s+"([^"]+)"', c_text(p))}


class Need:
    """what one role does: topics {name: ops}, groups and transactional ids (sample names)"""
    def __init__(self):
        self.topics, self.groups, self.txns, self.problems = {}, set(), set(), []
        self.described = set()  # groups it only Describes (OffsetFetch of another role's group)
        self.subscribed = set()  # the topics its consumer group reads (what KEDA sums the lag of)

    def topic(self, name, *ops):
        self.topics.setdefault(name, set()).update(ops)


def kinds_known(where, paths, table, need):
    unknown = topic_kinds(paths) - set(table)
    if unknown:
        need.problems.append(f"{where}: es_topic kinds {sorted(unknown)} unknown to this test (add what the role does with them)")


def handler_views():
    """{context: [topics its views read]} from command-handlers/*.c"""
    out = {}
    for p in c_files("command-handlers"):
        t = c_text(p)
        # the one table of contexts (hd_context.c): rows {"name", state record, decide, evolve,
        # VIEWS(array)} or {..., NULL, 0}
        for table in re.findall(r"\bhd_context_t\s+\w+\s*\[\]\s*=\s*\{(.*)\};", t, re.S):
            for name, rest in re.findall(r'\{\s*"([^"]+)"\s*,([^{}]*)\}', table):
                views = re.search(r"\bVIEWS\s*\(\s*(\w+)\s*\)", rest)
                arr = re.search(r"\b%s\s*\[\]\s*=\s*\{(.*?)\};" % views.group(1), t, re.S) if views else None
                if views and not arr:
                    out[name] = [None]
                else:
                    out[name] = [literal(t, a) for a in re.findall(r"\{\s*([^,{}]+?)\s*,", arr.group(1))] if arr else []
    return out


def projections():
    """{context: [projection names]} from projections/*.c"""
    out = {}
    for p in c_files("projections"):
        # each descriptor is pj_runtime.h's PJ_PROJECTION(name, "context", version)
        for n, c in re.findall(r"\bpj_projection_t\s+\w+\s*=\s*PJ_PROJECTION\(\s*(\w+)\s*,\s*\"([^\"]+)\"", c_text(p)):
            out.setdefault(c, []).append(n)
    return out


def subscriber_source(name):
    for p in c_files("subscribers"):
        t = c_text(p)
        for body in re.findall(r"\bsb_subscriber_t\s+\w+\s*=\s*\{(.*?)\};", t, re.S):
            m = re.search(r'\.name\s*=\s*"([^"]+)"', body)
            if m and m.group(1) == name:
                return p, t, body
    return None, None, None


def need_of(role, arg, env):
    n, reader = Need(), reader_group()
    if role == "eventshop-handler":
        paths = c_files("command-handlers")
        kinds_known("command-handlers", paths, HANDLER_TOPICS, n)
        for kind, ops in HANDLER_TOPICS.items():
            n.topic(f"{arg}.{kind}", *ops)
        n.subscribed.add(f"{arg}.commands")
        views = handler_views()
        if arg not in views:
            n.problems.append(f"handler {arg}: no hd_context_t named {arg} in command-handlers/")
        for t in views.get(arg, []):
            if t is None:
                n.problems.append(f"handler {arg}: a view topic that is not a string literal")
            else:
                n.topic(t, "Read")
    elif role == "eventshop-projector":
        paths = c_files("projections")
        kinds_known("projections", paths, PROJECTOR_TOPICS, n)
        for kind, ops in PROJECTOR_TOPICS.items():
            n.topic(f"{arg}.{kind}", *ops)
        n.subscribed.add(f"{arg}.events")
        for t in ops_topics(paths):
            n.topic(t, "Read")
        names = projections().get(arg, [])
        if not names:
            n.problems.append(f"projector {arg}: no pj_projection_t of context {arg} in projections/")
        fm = name_formats(paths)
        n.groups |= {fill(f, p) for f in fm["group"] for p in names}
        n.txns |= {fill(f, p) for f in fm["txn"] for p in names}
    elif role == "eventshop-api":
        paths = c_files("api")
        kinds_known("api", paths, API_TOPICS, n)
        for c in (env.get("ES_CONTEXTS") or "").split():
            for kind, ops in API_TOPICS.items():
                n.topic(f"{c}.{kind}", *ops)
        for t in ops_topics(paths):
            n.topic(t, "Write")
        for p in paths:  # consumers with a literal group (the stream's, assign only): a
            # "group.id" setting, or es_kafka_read_committed_conf's group (client id, group, ...)
            n.groups |= set(re.findall(r'"group\.id",\s*"([^"]+)"', c_text(p)))
            n.groups |= set(re.findall(
                r'\bes_kafka_read_committed_conf\s*\(\s*"[^"]*"\s*,\s*"([^"]+)"', c_text(p)))
        # the handlers' committed offsets (GET /v1/admin/activity): each served context's group
        for f in name_formats(paths)["described"]:
            n.described |= {fill(f, c) for c in (env.get("ES_CONTEXTS") or "").split()}
    elif role == "eventshop-registry":
        paths = c_files("schema-registry", exclude_main=False)
        m = re.search(r'es_env_str\s*\(\s*"EVENTSHOP_REGISTRY_TOPIC"\s*,\s*"([^"]+)"', c_text("schema-registry/registry_main.c"))
        n.topic(env.get("EVENTSHOP_REGISTRY_TOPIC") or (m.group(1) if m else "?"), "Read", "Write")
    elif role == "eventshop-history":
        paths = c_files("history")
        argv = env.get("argv", [])
        ctxs = argv[argv.index("--contexts") + 1] if "--contexts" in argv else defines(c_text("history/hi.h")).get("HI_DEFAULT_CONTEXTS", "")
        for c in ctxs.split(","):
            n.topic(f"{c}.events", "Read")
        for p in paths:  # its own reader's group (es_kafka_reader_new's client id), UserForgotten
            t = c_text(p)
            n.groups |= {g for g in re.findall(r'\bes_kafka_reader_new\s*\(\s*"([^"]+)"', t)}
            for a in re.findall(r"\bes_kafka_read_partition\s*\(\s*([^,]+),", t):
                tp = literal(t, a)
                if tp is None:
                    n.problems.append(f"history: es_kafka_read_partition({a.strip()}) is not a string literal")
                else:
                    n.topic(tp, "Read")
    elif role == "eventshop-subscriber":
        src, t, body = subscriber_source(arg)
        if not src:
            n.problems.append(f"subscriber {arg}: no sb_subscriber_t named {arg} in subscribers/")
            return n
        paths = ["subscribers/sb_runtime.c", "subscribers/sb_out.c", src]
        arr = re.search(r"\.topics\s*=\s*(\w+)", body)
        items = re.search(r"\b%s\s*\[\]\s*=\s*\{(.*?)\};" % arr.group(1), t, re.S) if arr else None
        if not items:
            n.problems.append(f"subscriber {arg}: its .topics array is not found in {src}")
        for a in (items.group(1).split(",") if items else []):
            if a.strip() != "NULL":
                tp = literal(t, a)
                if tp is None:
                    n.problems.append(f"subscriber {arg}: topic {a.strip()} is not a string literal")
                else:
                    n.topic(tp, "Read")
                    n.subscribed.add(tp)
        for fn, suffix in (("sb_out_command", ".commands"), ("sb_out_event", "")):
            for a in re.findall(r"\b%s\s*\(\s*\w+\s*,\s*([^,]+)," % fn, t):
                v = literal(t, a)
                if v is None:
                    n.problems.append(f"subscriber {arg}: {fn}({a.strip()}) is not a string literal")
                else:
                    n.topic(v + suffix, "Write")
        rt = c_text("subscribers/sb_runtime.c")
        m = re.search(r'snprintf\s*\(\s*rt->t_dead\s*,[^,]*,\s*"([^"]+)"', rt)
        dead = fill(m.group(1), arg) if m else f"{arg}.deadletter"
        # in its transactions; created at start when missing; read by --replay-dead-letters
        n.topic(dead, "Write", "Read", "Create")
    else:
        n.problems.append(f"unknown role {role}")
        return n
    if role != "eventshop-projector":
        fm = name_formats(paths)
        n.groups |= {fill(f, arg or SAMPLE) for f in fm["group"]}
        n.txns |= {fill(f, arg or SAMPLE) for f in fm["txn"]}
    # sb_runtime.c reads a partition only for a subscriber that calls sb_runtime_read_history
    if reads_partitions([p for p in paths if not p.startswith("runtime/") and p != "subscribers/sb_runtime.c"]):
        n.groups.add(reader)
    return n


def role_of(c):
    argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    return (argv[0], argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None) if argv else (None, None)


def acl_cover(docs):
    users, bad = kafka_users(docs), []
    for d, pod, c in kafka_clients(docs):
        env = env_of(docs, c)
        env["argv"] = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        u = users.get(env.get("EVENTSHOP_KAFKA_SASL_USERNAME"))
        if not u:
            continue  # prod_clients says so
        role, arg = role_of(c)
        need = need_of(role, arg, env)
        who = f"{d['metadata']['name']} (KafkaUser/{u['metadata']['name']})"
        bad += [f"{who}: {p}" for p in need.problems]
        for t, ops in sorted(need.topics.items()):
            for op in sorted(ops | {"Describe"}):
                if not allows(u, "topic", t, op):
                    bad.append(f"{who}: may not {op} topic {t}, which the code uses")
        for g in sorted(need.groups):
            if not allows(u, "group", g, "Read"):
                bad.append(f"{who}: may not Read group {g}, which the code uses")
        for g in sorted(need.described):
            if not allows(u, "group", g, "Describe"):
                bad.append(f"{who}: may not Describe group {g}, whose offsets the code fetches")
        for x in sorted(need.txns):
            for op in ("Write", "Describe"):
                if not allows(u, "transactionalId", x, op):
                    bad.append(f"{who}: may not {op} transactional id {x}, which the code uses")
        # no more than that: every rule serves a need
        for r in rules(u):
            res = r["resource"]
            if res["type"] == "topic":
                hits = [t for t in need.topics if matches(r, "topic", t)]
                if not hits:
                    bad.append(f"{who}: topic rule {res.get('name')}: the code uses no such topic")
                elif set(r["operations"]) - {"Describe"} - set().union(*(need.topics[t] for t in hits)):
                    bad.append(f"{who}: topic {res.get('name')}: {sorted(set(r['operations']))}, the code needs "
                               f"{sorted(set().union(*(need.topics[t] for t in hits)) | {'Describe'})}")
            elif res["type"] == "group" and not any(matches(r, "group", g) for g in need.groups):
                if not any(matches(r, "group", g) for g in need.described):
                    bad.append(f"{who}: group rule {res.get('name')}: the code uses no such group")
                elif set(r["operations"]) != {"Describe"}:
                    bad.append(f"{who}: group {res.get('name')}: {sorted(r['operations'])}, the code only describes it")
            elif res["type"] == "transactionalId" and not any(matches(r, "transactionalId", x) for x in need.txns):
                bad.append(f"{who}: transactional id rule {res.get('name')}: the code uses no such id")
    return bad


# ---------------------------------------------------------------- KEDA
def keda_auth(docs):
    k = kafka_of(docs)
    if not k:
        return ["not exactly one Kafka"]
    ca = f"{k['metadata']['name']}-cluster-ca-cert"
    users, bad = kafka_users(docs), []
    tas = {t["metadata"]["name"]: t for t in by_kind(docs, "TriggerAuthentication")}
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind(docs, "ConfigMap")}
    deps = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    sos = by_kind(docs, "ScaledObject")
    if not sos:
        return ["no ScaledObject"]
    for so in sos:
        for t in so["spec"]["triggers"]:
            if t["type"] != "kafka":
                continue
            where = f"ScaledObject/{so['metadata']['name']}"
            ref = (t.get("authenticationRef") or {}).get("name")
            ta = tas.get(ref)
            if not ta or (t.get("authenticationRef") or {}).get("kind", "TriggerAuthentication") != "TriggerAuthentication":
                bad.append(f"{where}: no TriggerAuthentication ({ref})")
                continue
            params = {r["parameter"]: ("configMap", r["name"], r["key"]) for r in ta["spec"].get("configMapTargetRef", [])}
            params.update({r["parameter"]: ("secret", r["name"], r["key"]) for r in ta["spec"].get("secretTargetRef", [])})
            val = lambda p: cms.get(params[p][1], {}).get(params[p][2]) if params.get(p, ("",))[0] == "configMap" else None
            meta = t["metadata"]
            sasl, tls = meta.get("sasl") or val("sasl"), meta.get("tls") or val("tls")
            if sasl != "scram_sha512":
                bad.append(f"{where}: sasl {sasl}, not scram_sha512")
            if tls != "enable":
                bad.append(f"{where}: tls {tls}, not enable")
            user = val("username")
            if user not in users:
                bad.append(f"{where}: username {user} (TriggerAuthentication/{ref}) names no KafkaUser")
                continue
            if params.get("password") != ("secret", user, "password"):
                bad.append(f"{where}: password {params.get('password')}, not Secret {user} key password")
            if params.get("ca") != ("secret", ca, "ca.crt"):
                bad.append(f"{where}: ca {params.get('ca')}, not Secret {ca} key ca.crt")
            if any(env_of(docs, c).get("EVENTSHOP_KAFKA_SASL_USERNAME") == user for _, _, c in our_containers(docs)):
                bad.append(f"{where}: KEDA connects as {user}, a role's user")
            u = users[user]
            group = meta.get("consumerGroup")
            if not allows(u, "group", group, "Describe"):
                bad.append(f"{where}: {user} may not Describe group {group}")
            topics = [meta["topic"]] if meta.get("topic") else None
            if topics is None:  # the topics its group reads: those of the target's role
                dep = deps.get(so["spec"]["scaleTargetRef"]["name"])
                c = pod_spec(dep)["containers"][0] if dep else None
                topics = sorted(need_of(*role_of(c), env_of(docs, c)).subscribed) if c else []
                if not topics:
                    bad.append(f"{where}: no topic, and its target's group reads none")
            for tp in topics:
                if not allows(u, "topic", tp, "Describe"):
                    bad.append(f"{where}: {user} may not Describe topic {tp}")
    return bad


def strimzi_network(docs):
    """default-deny selects Strimzi's pods (they carry the Kafka resource's labels): some policy
    must let them reach each other, both ways"""
    k = kafka_of(docs)
    if not k:
        return ["no Kafka resource"]
    labels = {**k["metadata"].get("labels", {}), "strimzi.io/cluster": k["metadata"]["name"]}
    sel = lambda p: all(labels.get(a) == b for a, b in p["spec"]["podSelector"].get("matchLabels", {}).items())
    pols = [p for p in by_kind(docs, "NetworkPolicy") if sel(p)]
    if not any("Ingress" in p["spec"].get("policyTypes", []) and not p["spec"].get("ingress") for p in pols):
        return []  # no deny selects them: nothing to give back
    cluster = {"strimzi.io/cluster": k["metadata"]["name"]}
    peer = lambda r, key: any(x.get("podSelector", {}).get("matchLabels") == cluster and "namespaceSelector" not in x
                              for x in r.get(key, [])) and "ports" not in r
    bad = []
    if not any(peer(r, "from") for p in pols for r in p["spec"].get("ingress", [])):
        bad.append("default-deny selects Strimzi's pods and no policy admits them from each other")
    if not any(peer(r, "to") for p in pols for r in p["spec"].get("egress", [])):
        bad.append("default-deny selects Strimzi's pods and no policy lets them reach each other")
    return bad


def main():
    for o in OVERLAYS:
        docs = kustomize(o) + kustomize(o, under="jobs")  # the overlay and its on-demand Jobs
        check(f"{o}: every Strimzi pod (brokers, entity operator, Kafka Exporter) has a restricted security context",
              strimzi_security(docs))
        check(f"{o}: every Kafka listener admits eventshop's clients and KEDA's operator, nothing wider", listener_peers(docs))
        check(f"{o}: the clients' brokers, KEDA's bootstrapServers and the egress policy use a listener's port", ports(docs))
        check(f"{o}: Strimzi's pods, which default-deny selects, may reach each other", strimzi_network(docs))
        if o == "dev":
            check("dev: Kafka stays plaintext (no TLS, authentication, authorization, KafkaUser or client security)",
                  dev_plaintext(docs))
        else:
            check("prod: every listener TLS + SCRAM-SHA-512, authorization simple, the user operator on", prod_listener(docs))
            check("prod: every Deployment: sasl_ssl as its own KafkaUser, password and cluster CA as mounted files, one namespace",
                  prod_clients(docs))
            check("prod: ACLs: no wildcard or prefixed topic rule, no cluster rule, KEDA Describe only, roles isolated",
                  acl_shape(docs))
            check("prod: ACLs allow what the code does with Kafka, and no more", acl_cover(docs))
            check("prod: KEDA triggers use TLS + SCRAM as KEDA's own user, who may Describe their groups and topics",
                  keda_auth(docs))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
