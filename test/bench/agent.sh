#!/usr/bin/env bash
# Benchmarks keyward agent (DESIGN §6): propagation latency of a rotated,
# watched file secret to the rendered file and to the child's SIGHUP
# (p50/p99 over 200 rotations; target p99 <= 100 ms), and the idle cost of
# an agent holding 100 secrets rendered into 20 files (RSS and CPU over
# 60 s; targets <= 20 MiB and <= 1 ms CPU per second).
#
# Usage: test/bench/agent.sh [bin/keyward] [rotations] [idle-seconds]
set -euo pipefail
bin="${1:-bin/keyward}"
rotations="${2:-200}"
idle="${3:-60}"
cd "$(dirname "$0")/../.."
exec go run test/bench/agentbench.go -bin "$bin" -n "$rotations" -idle "${idle}s"
