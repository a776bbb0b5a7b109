#!/usr/bin/env bash
# Installs the SARIF multitool (Microsoft's SARIF SDK; its validate command
# checks a log against the SARIF 2.1.0 schema and the SDK's rules) with
# `npm ci` from test/servers/sarif/package-lock.json into
# .cache/sarif-multitool-VERSION/, and prints the path of its executable on
# the last line of stdout (run it as: EXE validate FILE.sarif --output OUT).
# Progress goes to stderr. Idempotent: a complete installation is reused.
# Linux x64 only (the package ships a self-contained .NET program).
#
# Environment: KEYWARD_TEST_CACHE overrides the cache directory.
set -euo pipefail

VERSION=5.7.0
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KEYWARD_TEST_CACHE:-$root/.cache}
dest=$cache/sarif-multitool-$VERSION
exe=$dest/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool

log() { echo "sarif-multitool.sh: $*" >&2; }

[ "$(uname -s)/$(uname -m)" = "Linux/x86_64" ] || { log "the multitool package ships only for linux x86_64 here"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

stamp=$dest/.installed
if [ ! -f "$stamp" ] || ! cmp -s "$here/sarif/package-lock.json" "$dest/package-lock.json"; then
	log "installing @microsoft/sarif-multitool $VERSION into $dest"
	tmp=$(mktemp -d "$cache/.sarif-XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/.sarif-XXXXXX"; })
	trap 'rm -rf "$tmp"' EXIT
	cp "$here/sarif/package.json" "$here/sarif/package-lock.json" "$tmp/"
	# --ignore-scripts: the package's only script makes the program
	# executable, which is done here.
	(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
	chmod u+x "$tmp/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
	touch "$tmp/.installed"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	trap - EXIT
fi
log "sarif-multitool $VERSION"
echo "$exe"
