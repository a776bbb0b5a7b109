#!/usr/bin/env bash
# Builds the Kubernetes v1.36.3 binaries the integration tests run —
# kube-apiserver and kubelet — from the Go module proxy into
# $KEYWARD_TEST_CACHE (default .cache/ at the repository root)/kube-1.36.3/
# when they are not there yet, and prints the path of NAME (the first
# argument: kube-apiserver, the default, or kubelet) on the last line of
# stdout. Progress goes to stderr. Idempotent: instant when cached.
# kube-apiserver.sh and kubelet.sh call it with their binary's name.
#
# k8s.io/kubernetes is not meant to be used as a module: its go.mod requires
# every staging module (k8s.io/api, k8s.io/client-go, …) at v0.0.0 and
# replaces them with ./staging/… paths that a module download does not honour.
# The throwaway module in test/servers/kube/ therefore gets one replace per
# such requirement, to the published v0.36.3, generated from the downloaded
# go.mod by test/servers/kube/replaces.awk. Both binaries are built by one
# `go build`, which compiles their shared packages once. Cold build of both:
# about 6 minutes of 2 cores and ~700 MB of module downloads; kube-apiserver
# is ~105 MB, kubelet ~80 MB.
set -euo pipefail

version=1.36.3
staging=v0.36.3
name="${1:-kube-apiserver}"
case "$name" in
kube-apiserver | kubelet) ;;
*)
	echo "kube.sh: unknown binary $name (kube-apiserver or kubelet)" >&2
	exit 2
	;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/kube-$version"
all=(kube-apiserver kubelet)

missing() {
	local b
	for b in "${all[@]}"; do
		[ -x "$dir/$b" ] || echo "$b"
	done
}

if [ -z "$(missing)" ]; then
	echo "$dir/$name"
	exit 0
fi

mkdir -p "$dir"
# Two test packages may ask for a binary at once: build it once.
exec 9>"$dir/.lock"
flock 9
mapfile -t build < <(missing)
if [ "${#build[@]}" -eq 0 ]; then
	echo "$dir/$name"
	exit 0
fi

echo "kube.sh: building ${build[*]} v$version into $dir (a few minutes)…" >&2
src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
cp "$here/kube/go.mod" "$src/"
cd "$src"
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

modfile="$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
if [ -z "$modfile" ] || [ ! -f "$modfile" ]; then
	echo "kube.sh: cannot download the go.mod of k8s.io/kubernetes@v$version" >&2
	exit 1
fi
mapfile -t replaces < <(awk -v to="$staging" -f "$here/kube/replaces.awk" "$modfile")
if [ "${#replaces[@]}" -lt 20 ]; then
	echo "kube.sh: found only ${#replaces[@]} staging modules in $modfile" >&2
	exit 1
fi
echo "kube.sh: replacing ${#replaces[@]} staging modules with $staging" >&2
go mod edit "${replaces[@]}"
nice -n 10 go mod tidy -e >&2

ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $p.gitVersion=v$version -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
pkgs=()
for b in "${build[@]}"; do
	pkgs+=("k8s.io/kubernetes/cmd/$b")
done
out="$dir/.out"
rm -rf "$out"
mkdir -p "$out"
nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" >&2
for b in "${build[@]}"; do
	mv "$out/$b" "$dir/$b"
done
rmdir "$out"
echo "$dir/$name"
