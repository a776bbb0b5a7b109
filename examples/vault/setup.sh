#!/usr/bin/env sh
# Prepares a Vault dev server for examples/vault/keyward.yaml:
#
#   vault server -dev -dev-root-token-id=root &
#   export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root
#   sh examples/vault/setup.sh
#   keyward render --once -c examples/vault/keyward.yaml
#
# It writes demo secrets, a read-only policy and an AppRole, and the role's
# role_id and secret_id into role-id and secret-id next to this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

vault kv put secret/payments/db username=payments password=demo-db-password >/dev/null
vault kv put secret/payments/stripe api_key=sk_test_first webhook_secret=whsec_demo >/dev/null
vault kv put secret/payments/stripe api_key=sk_test_second webhook_secret=whsec_demo >/dev/null

vault policy write payments-read - >/dev/null <<'POLICY'
path "secret/data/payments/*"     { capabilities = ["read"] }
path "secret/metadata/payments/*" { capabilities = ["read"] }
POLICY

vault auth list -format=json | grep -q '"approle/"' || vault auth enable approle >/dev/null
vault write auth/approle/role/payments token_policies=payments-read token_ttl=1h token_max_ttl=24h >/dev/null
vault read -field=role_id auth/approle/role/payments/role-id >"$here/role-id"
(umask 077 && vault write -f -field=secret_id auth/approle/role/payments/secret-id >"$here/secret-id")
echo "ready: keyward render --once -c $here/keyward.yaml" >&2
