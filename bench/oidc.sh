#!/usr/bin/env bash
# What signing in with the identity provider costs a management call: the same
# `GET /api/keys?per_page=10` with a JWT (RS256, the issuer's JWKS already in
# the key-value store's cache) and with the admin token, at 1 and 16
# connections, on keygate-host and, when `spin` is installed, on real Spin.
# The provider is the tests' (target/release/keygate-test-idp, 127.0.0.1).
# Not part of CI; numbers, not pass/fail.
#
#   bench/oidc.sh [seconds per load run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
source bench/lib.sh
build_release health console keys verify user-webhook noop probe
cargo build -q --release -p keygate-tests --bin keygate-test-idp
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

coproc IDP { exec target/release/keygate-test-idp bench@example.com; }
read -r _ issuer <&"${IDP[0]}"
read -r _ jwt <&"${IDP[0]}"
export BENCH_LUA=$PWD/bench/lua TOKEN=bench-admin-token-0123456789
export SPIN_VARIABLE_ADMIN_TOKEN=$TOKEN SPIN_VARIABLE_OIDC_ISSUER=$issuer \
  SPIN_VARIABLE_OIDC_ORIGIN=$issuer SPIN_VARIABLE_OIDC_CLIENT_ID=keygate-console
path='/api/keys?per_page=10'

compare() { # host
  local i c admin_rps admin_p50 admin_p99
  for i in $(seq 10); do
    curl -sf -o /dev/null -H "authorization: Bearer $TOKEN" -H 'x-acting-user: bench@example.com' \
      -H 'content-type: application/json' -d "{\"name\": \"bench-$i\"}" "$url/api/keys"
  done
  # Fills the JWKS cache; from here on no request reaches the provider.
  curl -sf -o /dev/null -H "authorization: Bearer $jwt" "$url$path"
  for c in 1 16; do
    load "$c" "$secs" get.lua BENCH_PATH="$path" TOKEN="$TOKEN"
    admin_rps=$rps admin_p50=$p50 admin_p99=$p99
    load "$c" "$secs" get.lua BENCH_PATH="$path" TOKEN="$jwt"
    printf '| %s | %s | %s req/s · p50 %s ms · p99 %s ms | %s req/s · p50 %s ms · p99 %s ms | %s |\n' \
      "$1" "$c" "$admin_rps" "$admin_p50" "$admin_p99" "$rps" "$p50" "$p99" "$(ratio "$rps" "$admin_rps")×"
  done
}

printf '\n## OIDC sign-in vs the admin token (%s, %s cores, %s s runs)\n\n' "$(date -u +%F)" "$(nproc)" "$secs"
printf '| host | conn | admin token | JWT (warm JWKS cache) | JWT / admin req/s |\n|---|---|---|---|---|\n'
start_runner "$work/runner" --manifest spin.toml --state-dir "$work/runner-state"
compare keygate-host
stop
if command -v spin >/dev/null; then
  spin_manifest_with_fixtures "$work/spin.toml"
  spin_up "$work/spin.toml" "$work/spin" --state-dir "$work/spin-state"
  compare "Spin $(spin --version | cut -d' ' -f2)"
  stop
fi
printf '\nkeys.wasm: %s bytes\n' "$(stat -c %s target/wasm32-wasip2/release/keys.wasm)"
