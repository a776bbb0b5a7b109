#!/usr/bin/env bash
# Refresh-token soak (DESIGN §5, issue 17): keyward agent keeps a rotating
# refresh token of oidc-provider in a file and is killed with SIGKILL at
# random moments, half of them aimed at the rotations (see
# test/bench/refreshbench.go), once under oidc-provider's strict rule and
# once with a 30 s reuse grace. Reports lost refresh tokens (must be 0 with
# the grace; under the strict rule only a kill between the server's
# rotation and the write-back can lose one), torn files (must be 0) and the
# exchange time that bounds that window.
#
# Usage: test/bench/refresh.sh [bin/keyward] [kills]
set -euo pipefail
bin="${1:-bin/keyward}"
kills="${2:-60}"
cd "$(dirname "$0")/../.."
exec go run test/bench/refreshbench.go -bin "$bin" -n "$kills"
