#!/usr/bin/env bash
# Locates moto_server, the AWS emulator the integration tests of
# providers/aws run Secrets Manager against, and prints its path on the last
# line of stdout. Progress and warnings go to stderr.
#
# moto is a Python program that comes preinstalled on the machine image
# (pinned: moto 5.2.1). It cannot be installed from here (PyPI is not
# reachable), so this script only finds it: when it is missing the script
# fails, and with it `make test`; the tests never skip silently.
#
# Environment: MOTO_SERVER names the program to use instead of the one on
# PATH.
set -euo pipefail

WANT_VERSION=5.2.1

log() { echo "moto.sh: $*" >&2; }

bin=${MOTO_SERVER:-}
if [ -z "$bin" ]; then
	bin=$(command -v moto_server || true)
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	if [ -n "${MOTO_SERVER:-}" ]; then
		log "MOTO_SERVER=$MOTO_SERVER is not an executable."
	else
		log "moto_server not found on PATH (set MOTO_SERVER to its path)."
	fi
	log "moto $WANT_VERSION must be preinstalled: pip install 'moto[server]==$WANT_VERSION'"
	exit 1
fi

# With pyenv, moto_server on PATH is a shim: resolve it to the real script,
# whose interpreter also tells the installed version.
if command -v pyenv >/dev/null 2>&1 && real=$(pyenv which moto_server 2>/dev/null); then
	bin=$real
fi

if ! "$bin" --help >/dev/null 2>&1; then
	log "$bin --help failed: the moto installation is broken"
	exit 1
fi

version=""
interp=$(head -n 1 "$bin" | sed -n 's/^#! *//p')
if [ -n "$interp" ]; then
	# shellcheck disable=SC2086 # the shebang may carry arguments
	version=$($interp -c 'import moto; print(moto.__version__)' 2>/dev/null || true)
fi
if [ -z "$version" ]; then
	log "warning: cannot tell moto's version (want $WANT_VERSION)"
elif [ "$version" != "$WANT_VERSION" ]; then
	log "warning: moto $version found, the tests are written against $WANT_VERSION"
else
	log "moto $version"
fi

echo "$bin"
