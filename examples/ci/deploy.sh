#!/bin/sh
# Stands for a job's deploy script: it needs the secrets in its environment
# and, carelessly, prints some of them. Run it through keyward exec:
#   keyward exec --mask -c examples/ci/keyward.yaml -- ./examples/ci/deploy.sh
# The config has no env: section, so exec hands it every secret under its
# own name (as keyward ci hands them to the job), and with --mask (the
# default when CI is set) what it prints of them reaches the log as ***.
set -eu
: "${DB_PASSWORD:?DB_PASSWORD is not set}"
: "${API_TOKEN:?API_TOKEN is not set}"
: "${SIGNING_KEY:?SIGNING_KEY is not set}"
echo "deploying with a ${#DB_PASSWORD}-byte database password"
echo "debug: Authorization: Bearer $API_TOKEN"
printf 'basic auth header: %s\n' "$(printf 'deploy:%s' "$DB_PASSWORD" | base64)"
printf '%s\n' "$SIGNING_KEY" | sed -n 2p
mkdir -p dist
echo "build ok" >dist/build-info.txt
