#!/usr/bin/env bash
# keygate's API under load on keygate-host, with wrk on 127.0.0.1: verify
# beside a no-op component on the same runner in the same run, creates per
# second, and the overview at about 1,100 and 100,000 keys. Not part of CI.
#
#   bench/api.sh [seconds per load run, default 10] [large key count, default 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
large=${2:-100000}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build -q --release --target wasm32-wasip2 -p health -p keys -p verify -p user-webhook -p noop
cargo build -q --release -p keygate-host
mkdir -p target/bench
work=$(mktemp -d target/bench/run.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# The app plus the no-op component at /noop, in one manifest.
sed 's|source = "target/|source = "../../target/|' spin.toml >target/bench/spin.toml
cat >>target/bench/spin.toml <<'TOML'

[[trigger.http]]
route = "/noop"
component = "noop"

[component.noop]
source = "../../target/wasm32-wasip2/release/noop.wasm"
TOML

export TOKEN=bench-admin-token-0123456789
"target/release/keygate-host" up --manifest target/bench/spin.toml --listen 127.0.0.1:0 \
  --state-dir "$work/state" --variable "admin_token=$TOKEN" >"$work/out" 2>"$work/err" &
url=""
while [[ -z "$url" ]]; do
  kill -0 $! 2>/dev/null || { cat "$work/err" >&2; exit 1; }
  url=$(sed -n 's/^Serving //p' "$work/out"); [[ -n "$url" ]] || sleep 0.05
done

row() { printf '| %s | %s |\n' "$1" "$2"; }
# wrk -> "req/s | p50 | p99"
measure() { # connections duration url [lua]
  local out
  out=$(wrk -t"$(( $1 < 2 ? 1 : 2 ))" -c"$1" -d"$2" --latency ${4:+-s "$4"} "$3")
  printf '%s req/s, p50 %s, p99 %s' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}
key_count() {
  curl -sf -H "Authorization: Bearer $TOKEN" -H "X-Acting-User: bench@example.com" \
    "$url/api/keys?per_page=1" | grep -o '"total":[0-9]*' | cut -d: -f2
}
# Creates keys on 2 connections in timed wrk runs until at least $1 exist
# (wrk cannot stop after a request count); prints "keys seconds".
create_keys() { # at-least-count
  local before=$SECONDS n
  n=$(key_count)
  while (( n < $1 )); do
    local left=$(( $1 - n )) run
    run=$(( left / 1500 + 1 )); (( run > 20 )) && run=20
    wrk -t2 -c2 -d"${run}s" -s bench/lua/create.lua "$url" >/dev/null
    n=$(key_count)
  done
  echo "$n $(( SECONDS - before ))"
}

printf '\n## keygate API on keygate-host, %s (%s cores), %s\n\n' "$(uname -m)" "$(nproc)" "$(date -u +%F)"
printf '| measure | value |\n|---|---|\n'
for c in keys verify user_webhook health; do
  row "$c.wasm" "$(( $(stat -c %s "target/wasm32-wasip2/release/$c.wasm") / 1024 )) KiB"
done

# 1,000 keys to start with; verify spreads over 100 more.
create_keys 1000 >/dev/null
for i in $(seq 1 100); do
  curl -sf -H "Authorization: Bearer $TOKEN" -H "X-Acting-User: bench@example.com" \
    -H 'content-type: application/json' -d "{\"name\":\"verify-$i\"}" "$url/api/keys" |
    grep -o '"secret":"[^"]*"' | cut -d'"' -f4
done >"$work/secrets"
export SECRETS=$work/secrets

row "no-op component, 16 conn" "$(measure 16 "${secs}s" "$url/noop")"
row "GET /api/verify valid key, 16 conn" "$(measure 16 "${secs}s" "$url" bench/lua/verify.lua)"
row "no-op component, 1 conn" "$(measure 1 "${secs}s" "$url/noop")"
row "GET /api/verify valid key, 1 conn" "$(measure 1 "${secs}s" "$url" bench/lua/verify.lua)"

list_pages() { # label
  for q in "sort=created_at" "sort=name&order=asc" "sort=last_used_at" "sort=created_by" "name=verify-5"; do
    row "GET /api/keys?$q at $1 keys, 1 conn" "$(PATH_QUERY="/api/keys?$q" measure 1 3s "$url" bench/lua/mgmt.lua)"
  done
}
list_pages "$(key_count)"

row "POST /api/keys, 2 conn" "$(measure 2 "${secs}s" "$url" bench/lua/create.lua) (creates)"
read -r n t < <(create_keys "$large")
row "bulk-create up to $n keys (2 conn)" "${t}s"
list_pages "$n"
echo
