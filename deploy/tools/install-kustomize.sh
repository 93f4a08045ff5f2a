#!/usr/bin/env bash
# Installs the pinned kustomize into <repo>/.tools/bin from the Go module proxy; a no-op when it is already there.
#
# Usage: deploy/tools/install-kustomize.sh        prints the path of the kustomize binary on its last line
# Env:   KUSTOMIZE_VERSION (default below), RF_TOOLS_BIN (default <repo>/.tools/bin)
set -euo pipefail

# v5.8.3 needs Go >= 1.27; v5.8.2 builds with the Go 1.26 toolchain of our machines.
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="${RF_TOOLS_BIN:-$repo_root/.tools/bin}"
kustomize="$bin_dir/kustomize"

installed_version() {
    if [ -x "$kustomize" ]; then
        "$kustomize" version 2>/dev/null | head -n1 | tr -d '[:space:]' || true
    fi
}

if [ "$(installed_version)" = "$KUSTOMIZE_VERSION" ]; then
    echo "$kustomize"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "install-kustomize: 'go' is not on PATH; install Go (>= 1.24) or put kustomize $KUSTOMIZE_VERSION at $kustomize" >&2
    exit 1
fi

mkdir -p "$bin_dir"
echo "install-kustomize: building kustomize $KUSTOMIZE_VERSION into $bin_dir" >&2
# GOTOOLCHAIN=local: build with the Go that is installed rather than fetching another toolchain.
GOBIN="$bin_dir" GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2

if [ "$(installed_version)" != "$KUSTOMIZE_VERSION" ]; then
    echo "install-kustomize: $kustomize does not report $KUSTOMIZE_VERSION after installing" >&2
    exit 1
fi
echo "$kustomize"
