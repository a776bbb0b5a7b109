#!/usr/bin/env bash
# Runs every fuzz target of the repository (each `func FuzzXxx` in a
# *_test.go file) for a bounded time, one after the other, and prints one
# summary line; a failure prints the target's output (the failing input is
# saved by go test under the package's testdata/fuzz/ for a regression
# test) and exits 1.
#
#   test/fuzz.sh                 split FUZZ_BUDGET (default 60s) between the targets,
#                                at least 5s each (make test)
#   FUZZTIME=5m test/fuzz.sh     FUZZTIME per target (make fuzz)
#   test/fuzz.sh REGEXP          only the targets whose "package Name" matches
#
# FUZZ_PARALLEL sets the fuzzing workers per target (default 1: the machine
# is shared). New fuzz targets are picked up without editing this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
GO=${GO:-go}
filter=${1:-}

# "./pkg FuzzName" for every target, sorted.
mapfile -t targets < <(
	git ls-files --cached --others --exclude-standard '*_test.go' |
		xargs grep -H -o -E '^func Fuzz[A-Za-z0-9_]*\(' |
		sed -E 's#^(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\($#./\1 \2#; s#^[^/]*:func (Fuzz[A-Za-z0-9_]*)\($#. \1#' |
		sort -u | { if [ -n "$filter" ]; then grep -E -- "$filter" || true; else cat; fi; }
)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz target matches ${filter:-anything}" >&2
	exit 1
fi

if [ -n "${FUZZTIME:-}" ]; then
	per=$FUZZTIME
else
	budget=${FUZZ_BUDGET:-60s}
	secs=${budget%s}
	per=$((secs / ${#targets[@]}))
	[ "$per" -ge 5 ] || per=5
	per=${per}s
fi
parallel=${FUZZ_PARALLEL:-1}

failed=0
total=0
start=$(date +%s)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	log=$(mktemp)
	if ! $GO test -run='^$' -fuzz="^${name}\$" -fuzztime="$per" -parallel="$parallel" "$pkg" >"$log" 2>&1; then
		cat "$log"
		echo "fuzz: $pkg $name FAILED (the failing input is in $pkg/testdata/fuzz/$name/)"
		failed=$((failed + 1))
	fi
	execs=$(grep -o -E 'execs: [0-9]+' "$log" | tail -n1 | grep -o -E '[0-9]+' || echo 0)
	total=$((total + execs))
	rm -f "$log"
done
echo "fuzz: ${#targets[@]} targets, $per each, $total inputs run in $(($(date +%s) - start))s, $failed failed"
[ "$failed" -eq 0 ]
