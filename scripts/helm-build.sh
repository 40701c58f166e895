#!/usr/bin/env bash
# helm-build.sh builds the Helm CLI from the Go module proxy into a cache
# directory outside the clone, and prints the binary's path as the last line
# of stdout. Progress goes to stderr. The chart in deploy/helm/faultline is
# rendered with it (make manifests, the tests of ./deploy).
#
#   export FAULTLINE_HELM_BIN="$(scripts/helm-build.sh | tail -n1)"
#
# Helm is not added to the project's go.mod: `go install pkg@version` builds
# it from its own module graph. The cache lives in
# ${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/helm/<version>-<hash>/helm
# where <hash> covers the Go version and the build flags. A present key is
# reused as is; a cold build takes about 4 minutes on 2 cores.
set -euo pipefail

version="v3.22.0"

log() { printf 'helm-build: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

# As Helm's own Makefile does: the version, and the Kubernetes version that
# `helm template` and `helm lint` assume (from Helm's client-go v0.37: 1.37;
# without it Helm assumes 1.20).
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=37"
done
buildflags=(-trimpath -ldflags "$ldflags")
export CGO_ENABLED=0

hash="$({
	go env GOVERSION GOOS GOARCH
	printf 'CGO_ENABLED=%s\n' "$CGO_ENABLED"
	printf '%s\n' "${buildflags[@]}"
} | sha256sum | cut -c1-16)"
cache="${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/helm"
dest="$cache/$version-$hash"

if [[ -x "$dest/helm" ]]; then
	log "reusing $dest/helm"
	printf '%s\n' "$dest/helm"
	exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

log "building helm $version into $dest (about 4 minutes the first time)"
start=$SECONDS
# Outside any module, so the project's go.mod plays no part.
(cd "$tmp" && GOBIN="$tmp" go install "${buildflags[@]}" "helm.sh/helm/v3/cmd/helm@$version") >&2
[[ -x "$tmp/helm" ]] || { log "build finished but $tmp/helm is missing"; exit 1; }
"$tmp/helm" version --short >&2

# Publish atomically; a concurrent build of the same key may have won.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
	[[ -x "$dest/helm" ]] || { log "cannot move the build to $dest"; exit 1; }
fi
log "built in $((SECONDS - start))s"
printf '%s\n' "$dest/helm"
