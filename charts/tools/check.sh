#!/usr/bin/env bash
# The chart and image checks of `make chart-check`: helm lint and helm template of the chart with
# its default values and with ci/gpu-keda-values.yaml, every rendered object validated (strict:
# unknown fields fail) against the Kubernetes API schemas and the KEDA / prometheus-operator
# CRDs, and hadolint on the Dockerfile. Tools come from charts/tools/install.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=$("$repo/charts/tools/install.sh")
kube=$(sed -n 's/^KUBE_VERSION=//p' "$repo/charts/tools/install.sh")
chart="$repo/charts/tampertrace"
out="$tools/rendered" && mkdir -p "$out"
helm="$tools/bin/helm"

for profile in default gpu-keda; do
  args=()
  [[ $profile == default ]] || args=(-f "$chart/ci/$profile-values.yaml")
  echo "[chart-check] helm lint ($profile values)"
  "$helm" lint --strict --kube-version "$kube" "$chart" "${args[@]}"
  echo "[chart-check] helm template + kubeconform -strict, Kubernetes $kube ($profile values)"
  "$helm" template tampertrace "$chart" --namespace tampertrace --kube-version "$kube" "${args[@]}" >"$out/$profile.yaml"
  "$tools/bin/kubeconform" -strict -summary -kubernetes-version "$kube" \
    -schema-location "$tools/schemas/v$kube-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$tools/schemas/crds/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$out/$profile.yaml"
done

echo "[chart-check] hadolint deploy/docker/Dockerfile"
"$tools/bin/hadolint" "$repo/deploy/docker/Dockerfile"
echo "[chart-check] ok"
