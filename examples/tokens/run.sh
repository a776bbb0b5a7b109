#!/usr/bin/env bash
# Runs the example: a local OAuth2 authorization server (oidc-provider,
# installed by test/servers/oauth.sh) on 127.0.0.1:9400 with the demo client,
# and workload.sh under keyward agent. Needs node and npm, and keyward on
# PATH (or KEYWARD=path/to/keyward).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
entry=$(bash "$root/test/servers/oauth.sh" | tail -n 1)
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
echo '[{"client_id":"keyward-demo","client_secret":"demo-client-secret-not-for-production"}]' >"$work/clients.json"
OIDC_PROVIDER=$entry node "$root/test/servers/oauth/server.mjs" 9400 "$work/clients.json" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	curl -sf http://127.0.0.1:9400/.well-known/openid-configuration >/dev/null && break
	sleep 0.2
done
cd "$here"
ROUNDS=${ROUNDS:-20} "${KEYWARD:-keyward}" agent -c keyward.yaml -- ./workload.sh
