#!/usr/bin/env bash
# Deploy (or only render) the course platform with the Zero-to-JupyterHub chart.
#
#   hub_config/helm/deploy.sh staging              # helm upgrade --install
#   hub_config/helm/deploy.sh production --render  # helm template into rendered/production.yaml
#
# The values files, in this order (later ones win; maps merge, lists are replaced whole):
#   1. values.yaml                  the base every environment shares
#   2. platform.values.yaml         rendered from hub_config/platform.yaml (python -m grader.hub.kubernetes values)
#   3. <env>.values.yaml            the environment's overlay
#   4. <env>.secret.values.yaml     its secrets, sops-encrypted, decrypted on the fly
# tests/hub/kubernetes/test_helm_values.py merges the same list in the same order (values_files below is the one
# place it is written).
set -euo pipefail

CHART_REPO=https://hub.jupyter.org/helm-chart/
CHART_VERSION=4.4.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

values_files() {
    local env=$1
    echo "$HERE/values.yaml"
    echo "$HERE/platform.values.yaml"
    echo "$HERE/$env.values.yaml"
    echo "$HERE/$env.secret.values.yaml"
}

env=${1:?usage: deploy.sh staging|production [--render]}
mode=${2:-}
namespace=${NAMESPACE:-aicourse-$env}
release=${RELEASE:-aicourse}

[[ -f "$HERE/$env.values.yaml" ]] || { echo "deploy.sh: no overlay $HERE/$env.values.yaml" >&2; exit 2; }
secrets="$HERE/$env.secret.values.yaml"
[[ -f "$secrets" ]] || { echo "deploy.sh: no $secrets; copy secret.values.example.yaml and encrypt it with sops" >&2; exit 2; }
grep -q '^sops:' "$secrets" || { echo "deploy.sh: $secrets is not sops-encrypted; run: sops --encrypt --in-place $secrets" >&2; exit 2; }

# The rendered platform values must match platform.yaml as it is now.
"${PYTHON:-python3}" -m grader.hub.kubernetes values --out - | cmp -s - "$HERE/platform.values.yaml" || {
    echo "deploy.sh: platform.values.yaml is stale; run: python -m grader.hub.kubernetes values" >&2; exit 2; }

decrypted=$(mktemp)
trap 'rm -f "$decrypted"' EXIT
sops --decrypt "$secrets" > "$decrypted"

args=()
while read -r file; do
    [[ "$file" == "$secrets" ]] && file=$decrypted
    args+=(--values "$file")
done < <(values_files "$env")

if [[ "$mode" == "--render" ]]; then
    mkdir -p "$HERE/rendered"
    helm template "$release" jupyterhub --repo "$CHART_REPO" --version "$CHART_VERSION" \
        --namespace "$namespace" "${args[@]}" > "$HERE/rendered/$env.yaml"
    echo "rendered $HERE/rendered/$env.yaml (contains secrets: do not commit)"
else
    helm upgrade --install "$release" jupyterhub --repo "$CHART_REPO" --version "$CHART_VERSION" \
        --namespace "$namespace" --create-namespace --wait --timeout 10m "${args[@]}"
fi
