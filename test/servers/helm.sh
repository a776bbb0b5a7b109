#!/usr/bin/env bash
# Installs helm v3.22.0 from the Go module proxy into
# $KEYWARD_TEST_CACHE (default .cache/ at the repository root)/helm-3.22.0/
# when it is not there yet, and prints the binary's path on the last line of
# stdout. Progress goes to stderr. Idempotent: instant when cached.
#
# Used by the chart's tests (charts/keyward, internal/webhook's integration
# tests): helm lint and helm template work offline. Cold install: about
# 2.5 minutes of 2 cores.
set -euo pipefail

version=3.22.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/helm-$version"
bin="$dir/helm"

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

echo "helm.sh: installing helm v$version into $dir (a few minutes)…" >&2
GOWORK=off GOBIN="$dir" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags '-s -w' "helm.sh/helm/v3/cmd/helm@v$version" >&2
"$bin" version --short >&2
echo "$bin"
