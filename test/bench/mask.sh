#!/usr/bin/env bash
# Measures what output masking and the leak scan cost:
#   1. throughput of `cat BIGFILE` alone and through `keyward exec --mask`
#      with 10 and with 500 secrets (target: >= 300 MB/s with 500);
#   2. throughput of `keyward scan` over a 1 GiB tree of mixed files with
#      500 secrets (files just written, so read from the page cache).
# Everything lives in a temporary directory that is removed at the end.
# Usage: test/bench/mask.sh [path/to/keyward] [BIGFILE_MiB] [TREE_MiB]
set -euo pipefail
bin="${1:-bin/keyward}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
big_mib="${2:-1024}"
tree_mib="${3:-1024}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# secrets N: a file provider source with N random API-key-like values and a
# config referencing all of them.
secrets() {
	local n="$1" dir="$work/s$1"
	mkdir -p "$dir"
	{
		echo "version: 1"
		echo "secrets:"
		for i in $(seq 1 "$n"); do echo "  S$i: file:values.yaml#s$i"; done
	} >"$dir/keyward.yaml"
	for i in $(seq 1 "$n"); do
		printf 's%d: tok_%s\n' "$i" "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	done >"$dir/values.yaml"
	echo "$dir"
}

# now_ns prints a monotonic-enough timestamp in nanoseconds.
now_ns() { date +%s%N; }

# best_mbps BYTES CMD...: runs CMD 3 times (stdout to /dev/null) and prints
# the best throughput in MB/s.
best_mbps() {
	local bytes="$1" best=0 t0 t1 mbps
	shift
	for _ in 1 2 3; do
		t0=$(now_ns)
		"$@" >/dev/null
		t1=$(now_ns)
		mbps=$((bytes * 1000 / (t1 - t0)))
		((mbps > best)) && best=$mbps
	done
	echo "$best"
}

echo "generating a ${big_mib} MiB file of base64 text (76-column lines)…" >&2
big="$work/big.txt"
head -c $((big_mib * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 76 >"$big"
size=$(stat -c %s "$big")
s10="$(secrets 10)"
s500="$(secrets 500)"

cat_mbps=$(best_mbps "$size" cat "$big")
m10=$(best_mbps "$size" "$bin" exec --mask -c "$s10/keyward.yaml" -- cat "$big")
m500=$(best_mbps "$size" "$bin" exec --mask -c "$s500/keyward.yaml" -- cat "$big")
rm -f "$big"

# Masking is exact: a file that is one secret per line comes out as ***.
printf '%s\n' "$(sed -n 's/^s[0-9]*: //p' "$s500/values.yaml")" >"$work/leaky.txt"
if "$bin" exec --mask -c "$s500/keyward.yaml" -- cat "$work/leaky.txt" | grep -qv '^\*\*\*$'; then
	echo "bench: a secret survived the mask" >&2
	exit 1
fi

echo "generating a ${tree_mib} MiB tree of mixed files…" >&2
tree="$work/tree"
files=$((tree_mib / 4))
for i in $(seq 1 "$files"); do
	d="$tree/d$((i % 16))/e$((i % 7))"
	mkdir -p "$d"
	if ((i % 8 == 0)); then
		head -c $((4 * 1024 * 1024)) /dev/urandom >"$d/blob$i.bin"
	else
		head -c $((3 * 1024 * 1024)) /dev/urandom | base64 -w 120 >"$d/log$i.txt"
	fi
done
# Plant three secrets: raw, base64 and hex.
v1=$(sed -n 's/^s1: //p' "$s500/values.yaml")
v2=$(sed -n 's/^s250: //p' "$s500/values.yaml")
v3=$(sed -n 's/^s500: //p' "$s500/values.yaml")
echo "token=$v1" >>"$tree/d1/e1/log1.txt"
printf '%s' "$v2" | base64 >>"$tree/d2/e2/log2.txt"
printf '%s' "$v3" | od -An -tx1 | tr -d ' \n' >>"$tree/d3/e3/log3.txt"
tree_bytes=$(du -sb "$tree" | cut -f1)

best=0
for _ in 1 2 3; do
	t0=$(now_ns)
	set +e
	"$bin" scan --log-level warn -c "$s500/keyward.yaml" "$tree" >"$work/hits.txt" 2>"$work/scan.err"
	code=$?
	set -e
	t1=$(now_ns)
	if [ "$code" != 1 ] || [ "$(wc -l <"$work/hits.txt")" != 3 ]; then
		echo "bench: scan exit $code, $(wc -l <"$work/hits.txt") hits (want 1 and 3)" >&2
		cat "$work/scan.err" >&2
		exit 1
	fi
	mbps=$((tree_bytes * 1000 / (t1 - t0)))
	((mbps > best)) && best=$mbps
done

printf '%-52s %10s\n' "measurement" "MB/s"
printf '%-52s %10d\n' "cat BIGFILE (${big_mib} MiB)" "$cat_mbps"
printf '%-52s %10d\n' "keyward exec --mask -- cat BIGFILE, 10 secrets" "$m10"
printf '%-52s %10d\n' "keyward exec --mask -- cat BIGFILE, 500 secrets" "$m500"
printf '%-52s %10d\n' "keyward scan, $((tree_bytes / 1048576)) MiB tree of $files files, 500 secrets" "$best"
if ((m500 < 300)); then
	echo "bench: masking with 500 secrets is below the 300 MB/s target" >&2
	exit 1
fi
