#!/bin/sh
# A workload using the tokens keyward keeps fresh, both ways: the token file
# (read it again before each call, it is replaced atomically) and the local
# endpoint (KEYWARD_TOKEN_ENDPOINT; on a TCP listener add the header
# X-Keyward-Token with the content of $KEYWARD_TOKEN_GUARD_FILE). It never
# prints a token, only its length.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
sock=${KEYWARD_TOKEN_ENDPOINT#unix:}
rounds=${ROUNDS:-3}

i=0
while [ "$i" -lt "$rounds" ]; do
	tok=$(cat "$dir/out/partner-token")
	json=$(curl -sf --unix-socket "$sock" http://keyward/v1/tokens/partner-api)
	from_endpoint=$(printf '%s' "$json" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
	expires_in=$(printf '%s' "$json" | sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p')
	same=no
	[ "$tok" = "$from_endpoint" ] && same=yes
	echo "round $i: file token ${#tok} bytes, endpoint token expires in ${expires_in}s, same=$same"
	# Here the workload would call the API with "Authorization: Bearer $tok".
	i=$((i + 1))
	[ "$i" -lt "$rounds" ] && sleep "${PAUSE:-1}"
done

# After a 401 from the API: ask keyward for a new token now (rate-limited,
# shared by concurrent callers).
curl -sf -X POST --unix-socket "$sock" http://keyward/v1/tokens/partner-api/refresh >/dev/null
echo "refreshed on demand"
