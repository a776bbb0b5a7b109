#!/usr/bin/env bash
# Installs oidc-provider (the OAuth2 authorization server the token tests of
# rotate/ run against) with `npm ci` from test/servers/oauth/package-lock.json
# into .cache/oauth-VERSION/, and prints the path of its server script on the
# last line of stdout (run it as: node SCRIPT PORT CLIENTS_JSON). Progress goes
# to stderr. Idempotent: a complete installation is reused.
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

stamp=$dest/.installed
if [ ! -f "$stamp" ] || ! cmp -s "$here/oauth/package-lock.json" "$dest/package-lock.json" ||
	! cmp -s "$here/oauth/server.mjs" "$dest/server.mjs"; then
	log "installing oidc-provider $VERSION into $dest"
	tmp=$(mktemp -d "$cache/.oauth-XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/.oauth-XXXXXX"; })
	trap 'rm -rf "$tmp"' EXIT
	cp "$here/oauth/package.json" "$here/oauth/package-lock.json" "$here/oauth/server.mjs" "$tmp/"
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
	got=$(node -p "require('$tmp/node_modules/oidc-provider/package.json').version")
	[ "$got" = "$VERSION" ] || { log "installed oidc-provider $got, want $VERSION"; exit 1; }
	touch "$tmp/.installed"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	trap - EXIT
fi
log "oidc-provider $VERSION"
echo "$dest/server.mjs"
