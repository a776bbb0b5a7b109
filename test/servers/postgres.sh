#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages when it is missing (the Vault
# database secrets engine's integration tests run it) and prints the path of
# the `postgres` server binary on the last line of stdout; initdb, pg_ctl,
# pg_isready and psql are in the same directory. Progress goes to stderr.
#
# The version is the one of the machine's Debian release (15 on bookworm):
# the tests use only what every supported release has (roles with
# passwords and VALID UNTIL, scram-sha-256). The server is not started
# here; internal/testenv starts a private one per test run, as a non-root
# user, on a free loopback port.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_postgres() {
	local b
	b=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -n "$b" ] && [ -x "$b" ] && [ -x "$(dirname "$b")/initdb" ] && [ -x "$(dirname "$b")/psql" ]; then
		echo "$b"
	fi
}

bin=$(find_postgres)
if [ -z "$bin" ]; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			log "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
			exit 1
		fi
		sudo=(sudo)
	fi
	log "installing postgresql from the Debian packages"
	export DEBIAN_FRONTEND=noninteractive
	if ! "${sudo[@]}" apt-get install -y --no-install-recommends postgresql postgresql-client >&2; then
		"${sudo[@]}" apt-get update >&2
		"${sudo[@]}" apt-get install -y --no-install-recommends postgresql postgresql-client >&2
	fi
	bin=$(find_postgres)
	if [ -z "$bin" ]; then
		log "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/postgres was found"
		exit 1
	fi
fi
echo "$bin"
