#!/bin/sh
# Stands for a job's deploy script: it needs the secrets in its environment
# and, carelessly, prints some of them. Run through `keyward exec --mask`,
# what it prints reaches the log as ***.
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
