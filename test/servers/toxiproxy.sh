#!/usr/bin/env bash
# Builds the toxiproxy server (the fault-injecting TCP proxy the fault suite
# in test/faults puts between keyward and its stores) into
# $KEYWARD_TEST_CACHE (default .cache/ at the repository root)/toxiproxy-VERSION/
# when it is not there yet, and prints the binary's path on the last line of
# stdout. Progress goes to stderr. Idempotent: instant when cached.
#
# The version is the one go.mod pins (a `tool` directive for
# github.com/Shopify/toxiproxy/v2/cmd/server, whose client package the tests
# import), so the server and the client always match; `go tool
# github.com/Shopify/toxiproxy/v2/cmd/server` runs the same program.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
version=$(go list -m -f '{{.Version}}' github.com/Shopify/toxiproxy/v2)
cache="${KEYWARD_TEST_CACHE:-$root/.cache}"
dir="$cache/toxiproxy-$version"
bin="$dir/toxiproxy-server"

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

echo "toxiproxy.sh: building toxiproxy $version into $dir…" >&2
GOWORK=off CGO_ENABLED=0 nice -n 10 go build -trimpath \
	-ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=$version" -o "$bin.tmp" github.com/Shopify/toxiproxy/v2/cmd/server >&2
mv "$bin.tmp" "$bin"
"$bin" -version >&2
echo "$bin"
