#!/usr/bin/env bash
# Measures what `keyward exec` adds to starting a process: the median wall
# time of /bin/true alone, and of keyward exec -- /bin/true resolving 50
# file:// references (50 distinct files, so no fetch is deduplicated), on
# the execve path and on the --supervise path. Uses hyperfine (Debian).
set -euo pipefail
bin="${1:-bin/keyward}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

if ! command -v hyperfine >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing hyperfine (Debian package)…" >&2
		(apt-get install -y -qq hyperfine >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq hyperfine >/dev/null; })
	else
		echo "bench: hyperfine is required (apt-get install hyperfine)" >&2
		exit 1
	fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
envfile="$work/refs.env"
for i in $(seq 1 50); do
	printf 'value-%02d: %s\n' "$i" "$(head -c 24 /dev/urandom | base64)" >"$work/s$i.yaml"
	printf 'export SECRET_%02d=file://%s/s%d.yaml#value-%02d\n' "$i" "$work" "$i" "$i" >>"$envfile"
done
# shellcheck disable=SC1090
. "$envfile"

hyperfine -N --style basic --warmup 20 --runs 300 \
	--export-json "$work/result.json" \
	-n 'true' '/bin/true' \
	-n 'keyward exec (execve), 50 refs' "$bin exec --env-file-refs -- /bin/true" \
	-n 'keyward exec --supervise, 50 refs' "$bin exec --env-file-refs --supervise -- /bin/true" >"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt"; exit 1; }

python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["median"]
print(f"{'command':40s} {'median':>10s} {'added':>10s}")
for x in r:
    print(f"{x['command']:40s} {x['median']*1e3:8.2f}ms {(x['median']-base)*1e3:+8.2f}ms")
PY
