#!/usr/bin/env bash
# Installs containerd 1.6.20 (Debian bookworm's package, downloaded and
# extracted, never installed: see node/debs.sh) into $KEYWARD_TEST_CACHE (default
# .cache/ at the repository root)/containerd-1.6.20/ when it is not there
# yet, and prints the path of the containerd binary on the last line of
# stdout (containerd-shim-runc-v2 and ctr are beside it). Progress goes to
# stderr. Idempotent: instant when cached.
#
# Used by the real Kubernetes node of the end-to-end tests
# (internal/testenv/node.go), with runc from runc.sh.
set -euo pipefail

version=1.6.20
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/containerd-$version"
bin="$dir/root/usr/bin/containerd"

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ ! -x "$bin" ]; then
	echo "containerd.sh: downloading Debian's containerd $version into $dir…" >&2
	. "$here/node/debs.sh"
	rm -rf "$dir/root" "$dir/debs"
	deb_extract containerd "$version" "$dir"
fi
for b in containerd containerd-shim-runc-v2 ctr; do
	[ -x "$dir/root/usr/bin/$b" ] || {
		echo "containerd.sh: $b is missing from Debian's containerd package" >&2
		exit 1
	}
done
echo "$bin"
