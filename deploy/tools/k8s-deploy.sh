#!/usr/bin/env bash
# Deploys an overlay: topics and migrations first, then the services, and waits until they are rolled out.
#
# Usage: deploy/tools/k8s-deploy.sh dev|prod [image tag]
#   With a tag, deploys that tag of all four service images instead of the overlay's own.
# Needs kubectl pointed at the cluster; kustomize comes from deploy/tools/install-kustomize.sh.
set -euo pipefail

overlay="${1:?usage: k8s-deploy.sh dev|prod [image tag]}"
tag="${2:-}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$repo_root/deploy/k8s/overlays/$overlay"
kustomize="$("$repo_root/deploy/tools/install-kustomize.sh" | tail -n1)"
namespace="$(sed -n 's/^namespace: *//p' "$dir/kustomization.yaml")"
services=(gateway sessions handoffs analytics)

target="$dir"
if [ -n "$tag" ]; then
    # A throwaway overlay on top of the chosen one sets the release tag, leaving the repository untouched.
    target="$(mktemp -d)"
    trap 'rm -rf "$target"' EXIT
    {
        # kustomize wants a relative path to another kustomization
        echo "resources: [\"$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$dir" "$target")\"]"
        echo "images:"
        for s in "${services[@]}"; do echo "  - {name: resolutionflow/$s, newTag: \"$tag\"}"; done
    } > "$target/kustomization.yaml"
fi
if [ "$overlay" = dev ] && [ ! -f "$dir/secrets/private.pem" ]; then
    # The workspace environment has `cryptography` (pyjwt[crypto]).
    (cd "$repo_root" && uv run --frozen python deploy/tools/make-jwt-keys.py "$dir/secrets")
fi

# A Job's pod template is immutable: remove the previous runs so that this deploy's Jobs are created anew.
kubectl -n "$namespace" delete job --ignore-not-found \
    -l 'app.kubernetes.io/part-of=resolutionflow,app.kubernetes.io/component in (migration,topics)' 2>/dev/null || true

"$kustomize" build "$target" | kubectl apply --server-side --field-manager=resolutionflow-deploy -f -

jobs=(job/kafka-topics)
for s in "${services[@]}"; do jobs+=("job/$s-migrate"); done
kubectl -n "$namespace" wait --for=condition=complete --timeout=15m "${jobs[@]}"
for s in "${services[@]}"; do
    kubectl -n "$namespace" rollout status "deployment/$s" --timeout=10m
done
echo "resolutionflow ($overlay) deployed to namespace $namespace"
