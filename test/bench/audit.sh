#!/usr/bin/env bash
# Measures keyward audit's throughput (MB/s of files read, wall time):
#   1. over this repository's tree (.gitignore honoured, as in CI);
#   2. over a synthetic tree of TREE_MiB (default 1024) of mixed files:
#      copies of the repository's sources (dense in rule keywords), base64
#      logs and binary blobs, with credentials of four kinds planted, which
#      must all be found.
# The synthetic tree lives in a temporary directory removed at the end.
# Usage: test/bench/audit.sh [path/to/keyward] [TREE_MiB]
set -euo pipefail
bin="${1:-bin/keyward}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
tree_mib="${2:-1024}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now_ns() { date +%s%N; }

# audit_mbps DIR: runs keyward audit over DIR and prints "BYTES MBPS FINDINGS".
audit_mbps() {
	local t0 t1 code bytes
	t0=$(now_ns)
	set +e
	"$bin" audit --log-level info "$1" >"$work/found.txt" 2>"$work/audit.err"
	code=$?
	set -e
	t1=$(now_ns)
	if [ "$code" -gt 1 ]; then
		echo "bench: keyward audit exit $code" >&2
		cat "$work/audit.err" >&2
		exit 1
	fi
	bytes=$(sed -n 's/.*msg=audited .*bytes=\([0-9]*\).*/\1/p' "$work/audit.err")
	echo "$bytes $(awk -v b="$bytes" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", b * 1000 / ns }') $(wc -l <"$work/found.txt")"
}

read -r repo_bytes repo_mbps repo_found < <(audit_mbps "$repo")

echo "generating a ${tree_mib} MiB tree of mixed files…" >&2
tree="$work/tree"
mkdir -p "$tree"
src="$work/src.tar"
(cd "$repo" && git ls-files -z -- '*.go' '*.md' '*.yaml' '*.sh' '*.json' | tar --null -T - -cf "$src")
src_mib=$(( $(stat -c %s "$src") / 1048576 + 1 ))
i=0
while [ "$(du -sm "$tree" | cut -f1)" -lt "$tree_mib" ]; do
	i=$((i + 1))
	case $((i % 4)) in
	0 | 1) mkdir -p "$tree/src$i" && tar -xf "$src" -C "$tree/src$i" ;;
	2) mkdir -p "$tree/logs" && head -c $((src_mib * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 120 >"$tree/logs/log$i.txt" ;;
	3) mkdir -p "$tree/bin" && head -c $((src_mib * 1024 * 1024)) /dev/urandom >"$tree/bin/blob$i.bin" ;;
	esac
done
rnd() { tr -dc "$1" </dev/urandom | head -c "$2"; }
{
	echo "aws_access_key_id = AKIA$(rnd 'A-Z2-7' 16)"
	echo "token = \"ghp_$(rnd 'A-Za-z0-9' 36)\""
	echo "STRIPE = 'sk_live_$(rnd 'A-Za-z0-9' 24)'"
	echo "dsn: postgres://app:$(rnd 'A-Za-z0-9' 16)@db:5432/app"
} >"$tree/logs/planted.txt"
read -r tree_bytes tree_mbps tree_found < <(audit_mbps "$tree")
if ! grep -q "planted.txt:1: aws-access-token" "$work/found.txt" || ! grep -q "planted.txt:2: github-pat" "$work/found.txt" ||
	! grep -q "planted.txt:3: stripe-access-token" "$work/found.txt" || ! grep -q "planted.txt:4: url-password" "$work/found.txt"; then
	echo "bench: a planted credential was not found" >&2
	grep planted "$work/found.txt" >&2 || true
	exit 1
fi

printf '%-60s %10s %10s\n' "measurement" "MB/s" "findings"
printf '%-60s %10s %10d\n' "keyward audit, this repository ($((repo_bytes / 1048576)) MiB read)" "$repo_mbps" "$repo_found"
printf '%-60s %10s %10d\n' "keyward audit, $((tree_bytes / 1048576)) MiB synthetic tree read (${tree_mib} MiB on disk)" "$tree_mbps" "$tree_found"
