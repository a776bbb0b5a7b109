#!/usr/bin/env bash
# Installs oidc-provider (the OAuth2 authorization server the token tests of
# rotate/ run against) with `npm ci` from test/servers/oauth/package-lock.json
# into .cache/oauth-VERSION/, and prints the path of the module's entry file on
# the last line of stdout. The server itself is test/servers/oauth/server.mjs,
# run from the repository as: OIDC_PROVIDER=ENTRY node server.mjs ARGS… (so
# that a change to it needs no reinstall). Progress goes to stderr.
# Idempotent: a complete installation of the same lockfile is reused.
#
# Environment: KEYWARD_TEST_CACHE overrides the cache directory.
set -euo pipefail

VERSION=9.13.3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KEYWARD_TEST_CACHE:-$root/.cache}
dest=$cache/oauth-$VERSION

log() { echo "oauth.sh: $*" >&2; }

command -v node >/dev/null || { log "node is not installed (Node 20 or later is needed)"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.oauth-$VERSION.lock"
flock 9

stamp=$dest/.installed
if [ ! -f "$stamp" ] || ! cmp -s "$here/oauth/package-lock.json" "$dest/package-lock.json"; then
	log "installing oidc-provider $VERSION into $dest"
	tmp=$(mktemp -d "$cache/.oauth-XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	cp "$here/oauth/package.json" "$here/oauth/package-lock.json" "$tmp/"
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
	got=$(node -p "require('$tmp/node_modules/oidc-provider/package.json').version")
	[ "$got" = "$VERSION" ] || { log "installed oidc-provider $got, want $VERSION"; exit 1; }
	touch "$tmp/.installed"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	trap - EXIT
fi
log "oidc-provider $VERSION"
entry=$(cd "$dest" && node --input-type=module -e "console.log(new URL(import.meta.resolve('oidc-provider')).pathname)")
echo "$entry"
