#!/usr/bin/env bash
# Builds helm-unittest v1.1.2 (the helm plugin's binary, run directly: it
# embeds helm's chart engine) into $KEYWARD_TEST_CACHE (default .cache/ at the
# repository root)/helm-unittest-1.1.2/ when it is not there yet, and prints
# the binary's path on the last line of stdout. Progress goes to stderr.
# Idempotent: instant when cached.
#
# helm-unittest needs github.com/vmware-labs/yaml-jsonpath v0.3.2 replaced by
# its fork github.com/helm-unittest/yaml-jsonpath v0.4.0 (TESTING.md), so it is
# built from a throwaway module rather than with go install.
set -euo pipefail

version=1.1.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/helm-unittest-$version"
bin="$dir/helm-unittest"

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

echo "helm-unittest.sh: building helm-unittest v$version into $dir (a few minutes)…" >&2
src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
cd "$src"
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
cat >go.mod <<'MOD'
module keyward.test/helm-unittest

go 1.26
MOD
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
GO
go get "github.com/helm-unittest/helm-unittest@v$version" >&2
go mod edit -replace github.com/vmware-labs/yaml-jsonpath@v0.3.2=github.com/helm-unittest/yaml-jsonpath@v0.4.0
nice -n 10 go mod tidy -e >&2
nice -n 10 go build -trimpath -ldflags '-s -w' -o "$bin.tmp" github.com/helm-unittest/helm-unittest/cmd/helm-unittest >&2
mv "$bin.tmp" "$bin"
echo "$bin"
