#!/usr/bin/env bash
# fluentrecv-build.sh builds the Fluent Forward receiver the tests of
# sinks/fluent send to (the OpenTelemetry Collector's fluentforward receiver,
# wrapped by the nested Go module test/fluentrecv) into a cache directory
# outside the clone, and prints the binary's path as the last line of
# stdout. Progress goes to stderr.
#
#   export FAULTLINE_FLUENTRECV_BIN="$(scripts/fluentrecv-build.sh | tail -n1)"
#
# The cache lives in ${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/fluentrecv/<key>/fluentrecv
# where <key> hashes test/fluentrecv's go.mod, go.sum and sources, the Go
# version and the build flags. A present key is reused as is; a cold build
# takes about a minute on 2 cores and needs only the Go module proxy. See
# docs/fluentd.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$repo/test/fluentrecv"

log() { printf 'fluentrecv-build: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

buildflags=(-mod=readonly -buildvcs=false -trimpath -ldflags "-s -w")
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
cache="${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/fluentrecv"
dest="$cache/$hash"

if [[ -x "$dest/fluentrecv" ]]; then
	log "reusing $dest/fluentrecv"
	printf '%s\n' "$dest/fluentrecv"
	exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

version="$(awk '$1 ~ /fluentforwardreceiver$/ && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod")"
log "building the OpenTelemetry fluentforward receiver ${version:-?} into $dest"
start=$SECONDS
(cd "$mod" && go mod download) >&2
(cd "$mod" && go build "${buildflags[@]}" -o "$tmp/fluentrecv" .) >&2
[[ -x "$tmp/fluentrecv" ]] || { log "build finished but $tmp/fluentrecv is missing"; exit 1; }

# Publish atomically; a concurrent build of the same key may have won.
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
	[[ -x "$dest/fluentrecv" ]] || { log "cannot move the build to $dest"; exit 1; }
fi
log "built in $((SECONDS - start))s"
printf '%s\n' "$dest/fluentrecv"
