#!/usr/bin/env bash
# Builds HashiCorp Vault 1.21.4 (the real server, run in dev mode by the
# integration tests of providers/vault) into .cache/vault-1.21.4/vault and
# prints the binary's path on the last line of stdout. Progress goes to stderr.
#
# `go install github.com/hashicorp/vault@v1.21.4` does not work (its go.mod
# has replace directives) and no published vault/sdk matches the tag, so this
# follows the recipe of TESTING.md: a throwaway module requiring the vault
# module, whose source is copied out of the module cache, with replaces for
# the sdk (v0.21.0) and two renamed forks, and a patch adapting three call
# sites to sdk v0.21.0 (test/servers/vault/sdk-v0.21.0.patch). A patch that no
# longer applies fails the script.
#
# Cost from a cold cache: about 10 minutes of 2 cores, ~4.6 GB of memory,
# ~700 MB of module downloads. The build runs under nice. When the binary
# exists the script only prints its path.
#
# Environment: KEYWARD_TEST_CACHE overrides the cache directory; GO the go
# command.
set -euo pipefail

VERSION=1.21.4
SDK_VERSION=v0.21.0
GO=${GO:-go}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KEYWARD_TEST_CACHE:-$root/.cache}
out=$cache/vault-$VERSION
bin=$out/vault

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

log() { echo "vault.sh: $*" >&2; }

mkdir -p "$out"
# One build at a time (two test runs may ask at once); the second waits and
# then finds the binary.
exec 9>"$out/.lock"
flock 9
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
work=$(mktemp -d "$out/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

# Module downloads and the build must not pick up the repository's settings.
export GOFLAGS=-mod=mod GOWORK=off GO111MODULE=on

log "downloading github.com/hashicorp/vault@v$VERSION"
# Downloaded from an empty module of its own, so that no enclosing go.mod
# (the build directory is inside the repository) is read or touched.
mkdir dl
printf 'module keyward.test/vaultdownload\n' >dl/go.mod
src=$(cd dl && $GO mod download -json "github.com/hashicorp/vault@v$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
	log "go mod download did not report the module's directory"
	exit 1
fi
cp -R "$src" vault-src
chmod -R u+w vault-src

log "patching the source for sdk $SDK_VERSION"
if ! patch -d vault-src -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch \
	<"$here/vault/sdk-$SDK_VERSION.patch" >&2; then
	log "test/servers/vault/sdk-$SDK_VERSION.patch no longer applies to vault v$VERSION"
	exit 1
fi

cat >go.mod <<EOF
module keyward.test/vaultbuild

go 1.25.3

require github.com/hashicorp/vault v$VERSION

replace github.com/hashicorp/vault => ./vault-src

replace github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk $SDK_VERSION

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
EOF
cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "github.com/hashicorp/vault"
EOF

log "resolving dependencies (go mod tidy -e; ~700 MB of downloads when cold)"
nice -n 19 $GO mod tidy -e >&2

log "building (about 10 minutes of 2 cores when cold)"
CGO_ENABLED=0 nice -n 19 $GO build -buildvcs=false -trimpath -ldflags='-s -w' \
	-o "$work/vault" github.com/hashicorp/vault

"$work/vault" version >&2
mv "$work/vault" "$bin"
echo "$bin"
