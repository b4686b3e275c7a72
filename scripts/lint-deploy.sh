#!/usr/bin/env bash
# Static checks of everything that ships (image, compose, Kubernetes, CI), offline, with the
# pinned tools of scripts/setup-deploy-tools.sh. One line per check, then "N passed, N failed".
#   generated   deploy/tools/gen.py output (from deploy/contexts, deploy/subscribers) is up to date
#   kustomize   `kustomize build` of every overlay, and of deploy/jobs/<overlay> (on-demand Jobs)
#   kubeconform every overlay's (and its jobs') objects against the Kubernetes 1.33 strict schemas and the
#               KEDA, prometheus-operator (from their CRDs), Strimzi and external-secrets schemas
#   policy      every Deployment/StatefulSet/Job/CronJob (the overlay's and deploy/jobs'): probes (long-running), requests and limits,
#               non-root, read-only root fs, no privilege escalation; KEDA caps <= partitions;
#               secrets only as *_FILE; every subscriber of deploy/subscribers: Deployment, PDB,
#               metrics probes, <name>.deadletter topic (30 days), KEDA on its group, or exactly
#               1 replica with Recreate and no autoscaler when "singleton"
#   dclint      docker-compose.yml;  hadolint: Dockerfile and the local stand-ins' Dockerfiles;
#               workflows: YAML that parses
#   selftest    kubeconform rejects a manifest with an unknown field (the check can fail)
#   config truth tests/deploy/test_config_truth.py: every env name set is read, every name a role
#               requires is set (compose, overlays, stack.sh); no replicas under an autoscaler,
#               no /metrics on the Ingress, /healthz and /readyz probes
#   image       tests/deploy/test_image.py: no `# syntax=`; the default image holds every shipped
#               add_executable, the `test` stage the stand-ins only; every container runs an
#               executable its image holds
#   stores      tests/deploy/test_stores.py: compose Kafka's log on a named volume; make-secrets.sh
#               modes (run in a throwaway copy); MariaDB 10.11 everywhere; max_connections for the
#               autoscalers' maxima; the backup CronJob and its retention; the schema Job retries
#   kafka security tests/deploy/test_kafka_security.py: every Strimzi pod (brokers, entity
#               operator, Kafka Exporter) has a restricted security context; the listeners admit
#               the clients and KEDA's operator; clients, KEDA and the egress policy use a listener
#               port; dev plaintext; prod: TLS + SCRAM-SHA-512 listener, authorization simple,
#               every Deployment sasl_ssl as its own KafkaUser (password and CA as mounted files),
#               no wildcard topic ACL, ACLs = what the C sources do with Kafka, KEDA's own
#               Describe-only user through a TriggerAuthentication
#   delivery    tests/deploy/test_delivery.py: .github/workflows/ci.yml's `make test` job can run
#               dockerd and runs on every pull request; the image job checks the built image (no
#               pending Debian security update, SBOM by a pinned syft, scan failing on fixable
#               HIGH/CRITICAL) before it pushes; deploy needs it, runs scripts/smoke.sh after the
#               rollout and a rollout undo on failure; every uses: pinned; smoke.sh linted and run
#               against a stand-in API (request bodies per api/openapi.yaml)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/setup-deploy-tools.sh >/dev/null || { echo "FAIL setup-deploy-tools"; echo "0 passed, 1 failed"; exit 1; }
bin=.cache/bin py=.cache/deploy-venv/bin/python
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # name command...: PASS/FAIL line, output shown on failure
    local name=$1; shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "PASS $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; sed 's/^/    /' "$tmp/out" | tail -n 30; failed=$((failed + 1))
    fi
}
K8S_VERSION=1.33.0
kubeconform() {
    "$bin/kubeconform" -strict -summary -kubernetes-version "$K8S_VERSION" \
        -schema-location ".cache/schemas/k8s-standalone/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        -schema-location '.cache/schemas/crd/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json' \
        -schema-location 'deploy/schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json' "$@"
}
generated() {
    mkdir -p "$tmp/gen" && "$py" deploy/tools/gen.py "$tmp/gen" || return 1
    local f rc=0
    for f in $(cd "$tmp/gen" && find . -type f | sed 's|^\./||'); do
        diff -u "$f" "$tmp/gen/$f" || { echo "stale: $f (run deploy/tools/gen.py)"; rc=1; }
    done
    return $rc
}
policy() { # file partitions overlay subscribers-file
    "$py" - "$@" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
parts, bad = int(sys.argv[2]), []
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")
def pod_of(d):  # a CronJob's pod is in its jobTemplate
    return (d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"])["template"]["spec"]
for d in docs:
    kind, name = d["kind"], d["metadata"]["name"]
    if kind in WORKLOADS:
        pod = pod_of(d)
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot"): bad.append(f"{kind}/{name}: runAsNonRoot")
        if pod.get("automountServiceAccountToken") is not False: bad.append(f"{kind}/{name}: service account token mounted")
        for c in pod["containers"]:
            sc, r = c.get("securityContext", {}), c.get("resources", {})
            if sc.get("readOnlyRootFilesystem") is not True: bad.append(f"{kind}/{name}/{c['name']}: root fs writable")
            if sc.get("allowPrivilegeEscalation") is not False: bad.append(f"{kind}/{name}/{c['name']}: privilege escalation")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []): bad.append(f"{kind}/{name}/{c['name']}: capabilities kept")
            if not r.get("requests") or not r.get("limits"): bad.append(f"{kind}/{name}/{c['name']}: requests/limits")
            if kind not in ("Job", "CronJob"):
                for p in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if p not in c: bad.append(f"{kind}/{name}/{c['name']}: no {p}")
    if kind == "ScaledObject" and d["spec"]["maxReplicaCount"] > parts:
        bad.append(f"ScaledObject/{name}: maxReplicaCount above {parts} partitions")
    if kind == "KafkaTopic" and d["spec"]["topicName"] != "_schemas" and d["spec"]["partitions"] != parts:
        bad.append(f"KafkaTopic/{name}: {d['spec']['partitions']} partitions, EVENTSHOP_PARTITIONS is {parts}")
    if kind == "ConfigMap" and name == "eventshop-config" and int(d["data"]["EVENTSHOP_PARTITIONS"]) != parts:
        bad.append(f"ConfigMap/{name}: EVENTSHOP_PARTITIONS {d['data']['EVENTSHOP_PARTITIONS']} != {parts}")
    if kind == "Kafka" and sys.argv[3] == "prod":
        cfg = d["spec"]["kafka"]["config"]
        if cfg.get("min.insync.replicas") != 2: bad.append("Kafka: min.insync.replicas must be 2 in prod")
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
for d in docs:  # secrets reach the roles as mounted files only, never as env values
    if d["kind"] in WORKLOADS:
        for c in pod_of(d)["containers"]:
            for e in c.get("env", []):
                if "value" in e and {"PASSWORD", "SECRET", "KEY"} & set(e["name"].split("_")) and not e["name"].endswith("_FILE"):
                    bad.append(f"{d['kind']}/{d['metadata']['name']}/{c['name']}: secret {e['name']} as an env value")
scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
scaled.update({d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"})
for ln in open(sys.argv[4]):
    w = ln.split("#")[0].split()
    if not w:
        continue
    sub, opts, name = w[0], set(w[1:]), f"eventshop-subscriber-{w[0]}"
    dep = by.get(("Deployment", name))
    if not dep:
        bad.append(f"subscriber {sub}: no Deployment/{name}"); continue
    c = dep["spec"]["template"]["spec"]["containers"][0]
    if c.get("args") != ["eventshop-subscriber", sub]: bad.append(f"Deployment/{name}: args {c.get('args')}")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz": bad.append(f"Deployment/{name}: readiness not on /readyz")
    if {"name": "EVENTSHOP_METRICS_ADDR", "value": "0.0.0.0:9100"} not in c.get("env", []): bad.append(f"Deployment/{name}: metrics not on 9100")
    if ("PodDisruptionBudget", name) not in by: bad.append(f"subscriber {sub}: no PodDisruptionBudget")
    t = by.get(("KafkaTopic", f"{sub}.deadletter"))
    if not t or t["spec"]["config"].get("retention.ms") != 30 * 24 * 3600 * 1000:
        bad.append(f"subscriber {sub}: no KafkaTopic {sub}.deadletter kept 30 days")
    if "singleton" in opts:
        if dep["spec"]["replicas"] != 1 or dep["spec"]["strategy"]["type"] != "Recreate":
            bad.append(f"Deployment/{name}: singleton needs replicas 1 and strategy Recreate")
        if name in scaled: bad.append(f"Deployment/{name}: singleton must not be autoscaled")
    else:
        so = scaled.get(name)
        if not so or so["kind"] != "ScaledObject" or so["spec"]["triggers"][0]["metadata"].get("consumerGroup") != f"eventshop-{sub}-subscriber":
            bad.append(f"subscriber {sub}: no KEDA ScaledObject on group eventshop-{sub}-subscriber")
if sys.argv[3] == "prod":
    n = sum(d["spec"]["replicas"] for d in docs if d["kind"] == "KafkaNodePool" and "broker" in d["spec"]["roles"])
    if n != 3: bad.append(f"prod has {n} brokers, not 3")
print("\n".join(bad)); sys.exit(1 if bad else 0)
PY
}
selftest() { # an unknown field in a Deployment and in a ScaledObject must be rejected
    sed '0,/^  replicas: /s//  replicaz: /' "$tmp/dev.yaml" >"$tmp/bad1.yaml"
    sed '0,/^  minReplicaCount: /s//  minReplicaCnt: /' "$tmp/dev.yaml" >"$tmp/bad2.yaml"
    ! kubeconform "$tmp/bad1.yaml" && ! kubeconform "$tmp/bad2.yaml"
}
workflows() {
    "$py" -c 'import sys, yaml
for f in sys.argv[1:]:
    d = yaml.safe_load(open(f)); assert d.get("jobs"), f + ": no jobs"' .github/workflows/*.yml
}

check generated generated
declare -A parts=([dev]=4 [prod]=12)
for o in dev prod; do
    check "kustomize build overlays/$o" sh -c "'$bin/kustomize' build deploy/overlays/$o >'$tmp/$o.yaml'"
    check "kubeconform overlays/$o" kubeconform "$tmp/$o.yaml"
    check "policy overlays/$o" policy "$tmp/$o.yaml" "${parts[$o]}" "$o" deploy/subscribers
    # the operators' on-demand Jobs (deploy/jobs/<env>), with the overlay they run beside
    check "kustomize build jobs/$o" sh -c "'$bin/kustomize' build deploy/jobs/$o >'$tmp/jobs-$o.yaml'"
    check "kubeconform jobs/$o" kubeconform "$tmp/jobs-$o.yaml"
    { cat "$tmp/$o.yaml"; echo ---; cat "$tmp/jobs-$o.yaml"; } >"$tmp/all-$o.yaml" 2>/dev/null
    check "policy overlays/$o + jobs/$o" policy "$tmp/all-$o.yaml" "${parts[$o]}" "$o" deploy/subscribers
done
check "selftest kubeconform rejects an unknown field" selftest
check "dclint docker-compose.yml" .cache/npm/node_modules/.bin/dclint -q docker-compose.yml
check "hadolint Dockerfile deploy/compose/local/*/Dockerfile" .cache/deploy-venv/bin/hadolint Dockerfile deploy/compose/local/*/Dockerfile
check "workflows parse" workflows
check "config truth" "$py" tests/deploy/test_config_truth.py
check "image contents" "$py" tests/deploy/test_image.py
check "stores (Kafka log, secrets, MariaDB, max_connections, backups, schema Job)" "$py" tests/deploy/test_stores.py
check "kafka security (Strimzi security contexts, listener peers, prod TLS + SCRAM users and ACLs)" "$py" tests/deploy/test_kafka_security.py
check "delivery (CI: dockerd for make test, image checks before the push, smoke test + rollback)" "$py" tests/deploy/test_delivery.py
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
