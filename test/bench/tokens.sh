#!/usr/bin/env bash
# Token soak (DESIGN §5, issue 4): against the real authorization server
# (oidc-provider, test/servers/oauth.sh), a workload reads a 15 s token from
# keyward's endpoint every 100 ms for 10 minutes and the server introspects
# every token read (targets: zero expired, zero inactive); reports exchanges
# per token lifetime (target <= 1.6), then the endpoint's throughput and p99
# on loopback for 10 s with 4 keep-alive clients in the same process
# (targets >= 20,000 req/s, p99 <= 2 ms). The load generator shares the
# machine's cores with keyward: more clients add queueing, not throughput.
#
# Usage: test/bench/tokens.sh [soak-duration] [load-duration] [clients]
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/servers/oauth.sh >/dev/null
KEYWARD_SOAK_DURATION="${1:-10m}" KEYWARD_SOAK_LOAD="${2:-10s}" KEYWARD_SOAK_CLIENTS="${3:-4}" \
	exec go test -tags integration -run '^$' -bench '^BenchmarkTokenSoak$' -benchtime=1x -count=1 -timeout 60m ./rotate/
