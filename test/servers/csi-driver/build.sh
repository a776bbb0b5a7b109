#!/usr/bin/env bash
# Builds the Secrets Store CSI Driver v1.5.4 (cmd/secrets-store-csi-driver)
# into $KEYWARD_TEST_CACHE (default .cache/ at the repository root)/
# csi-driver-1.5.4/ when it is not there yet, and prints the binary's path on
# the last line of stdout. Progress goes to stderr. Idempotent: instant when
# cached.
#
# The driver imports monis.app/mlog, which the module proxy refuses in every
# version (TESTING.md); it uses six of its names, so the build replaces it
# with the klog-backed stand-in of ./mlog. Test infrastructure only: the
# stand-in ignores the log level and format flags. About 8 minutes and 65 MB
# cold on a busy 2-core machine, 4 warm.
#
# It is not one of test/servers/*.sh (make servers builds those for every
# run): no test runs the driver yet. The next step is an end-to-end test on
# the real node (internal/testenv/kubenode) that runs this driver beside
# keyward csi-provider, registers it with the kubelet through
# k8s.io/kubelet/pkg/apis/pluginregistration/v1 (GetInfo,
# NotifyRegistrationStatus on a socket in the kubelet's plugins_registry),
# applies the driver's CRDs (config/crd/bases of the module) and a CSIDriver
# object with podInfoOnMount and tokenRequests, and mounts a pod's volume.
set -euo pipefail

version=1.5.4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/csi-driver-$version"
bin="$dir/secrets-store-csi-driver"

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
cp -r "$here/mlog" "$dir/mlog"
cd "$src"
go mod edit -replace monis.app/mlog=../mlog
sed -i '/^monis.app\/mlog /d' go.sum
nice -n 10 go build -trimpath -ldflags '-s -w' -o "$bin.tmp" ./cmd/secrets-store-csi-driver >&2
mv "$bin.tmp" "$bin"
echo "$bin"
