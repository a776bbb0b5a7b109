#!/usr/bin/env bash
# Builds kube-apiserver v1.36.3 from the Go module proxy into
# $KEYWARD_TEST_CACHE (default .cache/ at the repository root)/kube-1.36.3/
# when it is not there yet, and prints the binary's path on the last line of
# stdout. Progress goes to stderr. Idempotent: instant when cached.
#
# k8s.io/kubernetes is not meant to be used as a module: its go.mod requires
# every staging module (k8s.io/api, k8s.io/client-go, …) at v0.0.0 and
# replaces them with ./staging/… paths that a module download does not honour.
# The throwaway module in test/servers/kube/ therefore gets one replace per
# such requirement, to the published v0.36.3, generated from the downloaded
# go.mod by test/servers/kube/replaces.awk. Cold build: about 4 minutes of
# 2 cores and ~700 MB of module downloads; the binary is ~105 MB.
set -euo pipefail

version=1.36.3
staging=v0.36.3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/kube-$version"
bin="$dir/kube-apiserver"

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
# Two test packages may ask for the server at once: build it once.
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

echo "kube-apiserver.sh: building kube-apiserver v$version into $dir (a few minutes)…" >&2
src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
cp "$here/kube/go.mod" "$src/"
cd "$src"
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

modfile="$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
if [ -z "$modfile" ] || [ ! -f "$modfile" ]; then
	echo "kube-apiserver.sh: cannot download the go.mod of k8s.io/kubernetes@v$version" >&2
	exit 1
fi
mapfile -t replaces < <(awk -v to="$staging" -f "$here/kube/replaces.awk" "$modfile")
if [ "${#replaces[@]}" -lt 20 ]; then
	echo "kube-apiserver.sh: found only ${#replaces[@]} staging modules in $modfile" >&2
	exit 1
fi
echo "kube-apiserver.sh: replacing ${#replaces[@]} staging modules with $staging" >&2
go mod edit "${replaces[@]}"
nice -n 10 go mod tidy -e >&2

pkg=k8s.io/component-base/version
cgo=k8s.io/client-go/pkg/version
ldflags="-s -w"
for p in "$pkg" "$cgo"; do
	ldflags="$ldflags -X $p.gitVersion=v$version -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$bin.tmp" "$bin"
echo "$bin"
