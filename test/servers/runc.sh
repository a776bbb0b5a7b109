#!/usr/bin/env bash
# Installs runc 1.1.5 (Debian bookworm's package, downloaded and extracted,
# never installed: see node/debs.sh) into $KEYWARD_TEST_CACHE (default .cache/ at
# the repository root)/runc-1.1.5/ when it is not there yet, and prints the
# path of the runc binary on the last line of stdout. Progress goes to
# stderr. Idempotent: instant when cached.
#
# Used by containerd in the real Kubernetes node of the end-to-end tests
# (internal/testenv/node.go). Debian's runc links libseccomp dynamically,
# which Debian installs by default.
set -euo pipefail

version=1.1.5
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/runc-$version"
bin="$dir/root/usr/sbin/runc"

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ ! -x "$bin" ]; then
	echo "runc.sh: downloading Debian's runc $version into $dir…" >&2
	. "$here/node/debs.sh"
	rm -rf "$dir/root" "$dir/debs"
	deb_extract runc "$version" "$dir"
fi
"$bin" --version >&2
echo "$bin"
