#!/usr/bin/env bash
# render-manifests.sh renders the plain manifests from the Helm chart
# deploy/helm/faultline, so the chart is their one source:
#
#   deploy/manifests/faultline.yaml   the chart's defaults, release "faultline"
#                                     in namespace "faultline", the Namespace
#                                     included (namespace.create=true)
#   deploy/rbac/injector.yaml         the injector's ServiceAccount and RBAC
#                                     alone (the RoleBindings of target
#                                     namespaces are made per cluster)
#
#   scripts/render-manifests.sh           write them (make manifests)
#   scripts/render-manifests.sh --check   fail when the checked-in files
#                                         differ from a fresh render
#                                         (make check-manifests, test.sh)
#
# Helm comes from $HELM, else scripts/helm-build.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$repo/deploy/helm/faultline"
helm="${HELM:-$("$repo/scripts/helm-build.sh" | tail -n 1)}"

# The header joins the first document (Helm's output starts with ---), so
# every "---"-separated part of a file is one object.
render() {
	local out=$1
	mkdir -p "$out/deploy/manifests" "$out/deploy/rbac"
	"$helm" lint --strict --quiet "$chart" >&2
	"$helm" lint --strict --quiet "$chart" -f "$chart/values-production.yaml" >&2
	{
		printf '# Generated from deploy/helm/faultline by scripts/render-manifests.sh (make manifests). Do not edit.\n'
		"$helm" template faultline "$chart" --namespace faultline --set namespace.create=true | sed '1{/^---$/d}'
	} >"$out/deploy/manifests/faultline.yaml"
	{
		printf '# Generated from deploy/helm/faultline by scripts/render-manifests.sh (make manifests). Do not edit.\n'
		"$helm" template faultline "$chart" --namespace faultline \
			--set collectorAudit.enabled=false,collectorEvents.enabled=false,analyzer.enabled=false,injector.enabled=true \
			--show-only templates/serviceaccounts.yaml --show-only templates/rbac-injector.yaml | sed '1{/^---$/d}'
	} >"$out/deploy/rbac/injector.yaml"
}

case "${1:-}" in
"")
	render "$repo"
	echo "render-manifests: wrote deploy/manifests/faultline.yaml and deploy/rbac/injector.yaml" >&2
	;;
--check)
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	render "$tmp"
	status=0
	for f in deploy/manifests/faultline.yaml deploy/rbac/injector.yaml; do
		if ! diff -u "$repo/$f" "$tmp/$f" >&2; then
			echo "render-manifests: $f is not what the chart renders: run make manifests" >&2
			status=1
		fi
	done
	exit $status
	;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac
