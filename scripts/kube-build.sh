#!/usr/bin/env bash
# kube-build.sh builds the test control plane (kube-apiserver, etcd,
# kube-controller-manager, kube-scheduler) from the nested Go module test/kube
# into a cache directory outside the clone, and prints that bin directory as
# the last line of stdout. Progress goes to stderr.
#
#   export FAULTLINE_KUBE_BIN="$(scripts/kube-build.sh)"
#
# The cache lives in ${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/kube/<key>/bin
# where <key> is the Kubernetes version plus a hash of test/kube's go.mod,
# go.sum and sources, the Go version and the build flags. A present key is
# reused as is (a second run takes about a second); a cold build takes about
# 8 minutes on 2 cores and needs only the Go module proxy. See docs/testing.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$repo/test/kube"
bins=(kube-apiserver etcd kube-controller-manager kube-scheduler)

log() { printf 'kube-build: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod")"
if [[ -z "$version" ]]; then
	log "cannot read the k8s.io/kubernetes version from $mod/go.mod"
	exit 1
fi
# v1.33.13 -> major 1, minor 33
IFS=. read -r major minor _ <<<"${version#v}"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
buildflags=(-mod=readonly -buildvcs=false -ldflags "$ldflags")
export CGO_ENABLED=0

key_input() {
	(
		cd "$mod"
		find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -print | LC_ALL=C sort |
			while IFS= read -r f; do
				printf '%s ' "$f"
				sha256sum <"$f"
			done
	)
	go env GOVERSION GOOS GOARCH
	printf 'CGO_ENABLED=%s\n' "$CGO_ENABLED"
	printf '%s\n' "${buildflags[@]}"
}
hash="$(key_input | sha256sum | cut -c1-16)"
cache="${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/kube"
dest="$cache/$version-$hash"

complete() {
	local b
	for b in "${bins[@]}"; do
		[[ -x "$1/bin/$b" ]] || return 1
	done
}

if complete "$dest"; then
	log "reusing $dest/bin"
	printf '%s\n' "$dest/bin"
	exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
heartbeat=""
cleanup() {
	if [[ -n "$heartbeat" ]]; then
		kill "$heartbeat" 2>/dev/null || true
		wait "$heartbeat" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

log "building Kubernetes $version control plane into $dest/bin"
log "a cold build takes about 8 minutes and 2.5 GB of memory on 2 cores; later runs reuse it"
start=$SECONDS

log "downloading modules"
(cd "$mod" && go mod download) >&2

# The go command prints nothing while it compiles; say that it is alive.
# Neither the loop nor its sleep may hold stdout open: "$(kube-build.sh)"
# would wait for them.
(
	nap=""
	trap '[[ -n "$nap" ]] && kill "$nap" 2>/dev/null; exit 0' TERM
	while :; do
		sleep 30 </dev/null >/dev/null 2>&1 &
		nap=$!
		wait "$nap"
		log "still building ($((SECONDS - start))s)"
	done
) >/dev/null &
heartbeat=$!

(cd "$mod" && go build "${buildflags[@]}" -o "$tmp/bin/" ./cmd/...) >&2

kill "$heartbeat" 2>/dev/null || true
wait "$heartbeat" 2>/dev/null || true
heartbeat=""

complete "$tmp" || { log "build finished but a binary is missing in $tmp/bin"; exit 1; }
"$tmp/bin/kube-apiserver" --version >&2

# Publish atomically; a concurrent build of the same key may have won.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
	complete "$dest" || { log "cannot move the build to $dest"; exit 1; }
fi
log "built in $((SECONDS - start))s"
printf '%s\n' "$dest/bin"
