#!/usr/bin/env bash
# es-fetch.sh fetches the Elasticsearch that Faultline's tests run: Elastic's
# integration-test distribution from Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip),
# unpacks it once into a cache directory outside the clone, and prints that
# home directory as the last line of stdout. Progress goes to stderr.
#
#   export FAULTLINE_ES_HOME="$(scripts/es-fetch.sh)"
#
# The home is ${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/elasticsearch/<version>.
# A present home is reused as is (a second run takes milliseconds); the
# first run takes a few seconds (a 107 MB download through Maven, which also
# keeps a copy in its local repository). Needs mvn and unzip (installed with
# apt-get when missing) and, to run the server, a JDK 17 or newer
# (internal/testes finds it). See docs/testing.md.
#
# FAULTLINE_ES_VERSION overrides the version (any that Maven Central has for
# this artifact; 9.x needs a JDK 21 or newer).
set -euo pipefail

version="${FAULTLINE_ES_VERSION:-8.19.21}"
artifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip"
cache="${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/elasticsearch"
home="$cache/$version"

log() { printf 'es-fetch: %s\n' "$*" >&2; }

complete() {
	[[ -x "$1/bin/elasticsearch" && -x "$1/bin/elasticsearch-keystore" && -f "$1/lib/elasticsearch-$version.jar" ]]
}

if complete "$home"; then
	log "reusing $home"
	printf '%s\n' "$home"
	exit 0
fi

# Maven and unzip are on the project's machines; install them from Debian's
# packages where they are not (as root, or with sudo).
missing=()
command -v mvn >/dev/null || missing+=(maven)
command -v unzip >/dev/null || missing+=(unzip)
if ((${#missing[@]})); then
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || { log "needs ${missing[*]}: apt-get install ${missing[*]} (as root)"; exit 1; }
		sudo=(sudo)
	fi
	log "installing Debian's ${missing[*]}"
	{ "${sudo[@]}" apt-get update -qq &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 ||
		{ log "installing ${missing[*]} failed"; exit 1; }
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.fetch-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

log "fetching $artifact from Maven Central"
start=$SECONDS
# -q keeps Maven to errors; everything it prints goes to stderr so that the
# last line of stdout stays the home directory.
mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$artifact" -DoutputDirectory="$tmp/zip" >&2 ||
	{ log "mvn could not fetch $artifact"; exit 1; }
zip="$tmp/zip/elasticsearch-$version.zip"
[[ -f "$zip" ]] || { log "mvn reported success but $zip is missing"; exit 1; }

log "unpacking into $home"
unzip -q "$zip" -d "$tmp/unpacked"
[[ -d "$tmp/unpacked/elasticsearch-$version" ]] || { log "the zip has no elasticsearch-$version/ directory"; exit 1; }
mv -T "$tmp/unpacked/elasticsearch-$version" "$tmp/home"
complete "$tmp/home" || { log "unpacked, but bin/elasticsearch or lib/elasticsearch-$version.jar is missing"; exit 1; }

# Publish atomically; a concurrent fetch of the same version may have won.
if ! mv -T "$tmp/home" "$home" 2>/dev/null; then
	complete "$home" || { log "cannot move the unpacked distribution to $home"; exit 1; }
fi
log "fetched and unpacked in $((SECONDS - start))s"
printf '%s\n' "$home"
