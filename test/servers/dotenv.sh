#!/usr/bin/env bash
# Installs the dotenv package of npm (the reader of keyward's node dotenv
# dialect, which render's tests write files for) with `npm ci` from
# test/servers/dotenv/package-lock.json into .cache/dotenv-VERSION/, and
# prints the path of its reader script on the last line of stdout (run it
# as: node SCRIPT, then one file path per line on stdin, one line of JSON
# per file on stdout). Progress goes to stderr. Idempotent: a complete
# installation is reused.
#
# Environment: KEYWARD_TEST_CACHE overrides the cache directory.
set -euo pipefail

VERSION=18.0.10
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KEYWARD_TEST_CACHE:-$root/.cache}
dest=$cache/dotenv-$VERSION

log() { echo "dotenv.sh: $*" >&2; }

command -v node >/dev/null || { log "node is not installed (Node 20 or later is needed)"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

stamp=$dest/.installed
if [ ! -f "$stamp" ] || ! cmp -s "$here/dotenv/package-lock.json" "$dest/package-lock.json" ||
	! cmp -s "$here/dotenv/read.cjs" "$dest/read.cjs"; then
	log "installing dotenv $VERSION into $dest"
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.dotenv-XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	cp "$here/dotenv/package.json" "$here/dotenv/package-lock.json" "$here/dotenv/read.cjs" "$tmp/"
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
	got=$(node -p "require('$tmp/node_modules/dotenv/package.json').version")
	[ "$got" = "$VERSION" ] || { log "installed dotenv $got, want $VERSION"; exit 1; }
	touch "$tmp/.installed"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	trap - EXIT
fi
log "dotenv $VERSION"
echo "$dest/read.cjs"
