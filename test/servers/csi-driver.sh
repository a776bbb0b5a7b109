#!/usr/bin/env bash
# Builds the Secrets Store CSI Driver v1.5.4 (cmd/secrets-store-csi-driver)
# into $KEYWARD_TEST_CACHE (default .cache/ at the repository root)/
# csi-driver-1.5.4/ when it is not there yet, and prints the binary's path on
# the last line of stdout. Progress goes to stderr. Idempotent: instant when
# cached.
#
# The driver imports monis.app/mlog, which the module proxy refuses in every
# version (TESTING.md); it uses six of its names, so the build replaces it
# with the klog-backed stand-in of ./csi-driver/mlog. Test infrastructure only: the
# stand-in ignores the log level and format flags. About 8 minutes and 65 MB
# cold on a busy 2-core machine, 4 warm.
#
# The module's source stays in src/: the end-to-end tests (test/e2e, on the
# real node of internal/testenv/kubenode) apply the CRDs of its
# config/crd/bases and the CSIDriver object its chart
# (charts/secrets-store-csi-driver) renders, and run this binary beside
# keyward csi-provider.
set -euo pipefail

version=1.5.4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/csi-driver-$version"
bin="$dir/secrets-store-csi-driver"

if [ -x "$bin" ] && [ -d "$dir/src/config/crd/bases" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ] && [ -d "$dir/src/config/crd/bases" ]; then
	echo "$bin"
	exit 0
fi

echo "csi-driver.sh: building the Secrets Store CSI Driver v$version into $dir…" >&2
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
mod="$(cd "$root" && go mod download -json "sigs.k8s.io/secrets-store-csi-driver@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$mod" ] || [ ! -d "$mod" ]; then
	echo "csi-driver.sh: sigs.k8s.io/secrets-store-csi-driver@v$version: not downloaded" >&2
	exit 1
fi
src="$dir/src"
rm -rf "$src" "$dir/mlog"
cp -r "$mod" "$src"
chmod -R u+w "$src"
cp -r "$here/csi-driver/mlog" "$dir/mlog"
cd "$src"
go mod edit -replace monis.app/mlog=../mlog
sed -i '/^monis.app\/mlog /d' go.sum
nice -n 10 go build -trimpath -ldflags '-s -w' -o "$bin.tmp" ./cmd/secrets-store-csi-driver >&2
mv "$bin.tmp" "$bin"
echo "$bin"
