#!/usr/bin/env bash
# Measures keygate-host itself: start-up (cold and with the compile cache) and
# requests/second for a no-op component and for /api/health, with wrk on 127.0.0.1.
# Not part of CI; numbers, not pass/fail.
#
#   bench/runner.sh [seconds per load run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
source bench/lib.sh
build_release health probe noop
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

start() { # manifest cache-dir log
  start_runner "$3" --manifest "$1" --state-dir "$work/state" --cache-dir "$2" \
    --runtime-config-file "$work/runtime-config.toml"
}

# The probe app is granted a second key-value store.
printf '[key_value_store.other]\ntype = "spin"\n' > "$work/runtime-config.toml"
export SPIN_VARIABLE_SECRET_THING=bench SPIN_VARIABLE_ADMIN_TOKEN=bench-admin-token-0123456789
printf '\n## keygate-host on %s (%s cores), %s\n\n' "$(uname -m)" "$(nproc)" "$(date -u +%F)"
printf '| measure | value |\n|---|---|\n'
for c in health probe noop; do
  printf '| %s.wasm | %s KiB |\n' "$c" $(( $(stat -c %s "target/wasm32-wasip2/release/$c.wasm") / 1024 ))
done

cold=() warm=()
for i in 1 2 3 4 5; do
  start tests/fixtures/spin.toml "$work/cache-$i" "$work/cold"; stop; cold+=("$(ready_ms "$work/cold")")
  start tests/fixtures/spin.toml "$work/cache-$i" "$work/warm"; stop; warm+=("$(ready_ms "$work/warm")")
done
printf '| start-up, cold (compile 3 components, median of 5) | %s ms |\n' "$(median "${cold[@]}")"
printf '| start-up, warm compile cache (median of 5) | %s ms |\n' "$(median "${warm[@]}")"

# Latencies are each request's own time (bench/lua/report.lua).
export BENCH_LUA=$PWD/bench/lua
measure() { # label path connections
  load "$3" "$secs" get.lua BENCH_PATH="$2"
  printf '| %s, %s conn: req/s | %s |\n' "$1" "$3" "$rps"
  printf '| %s, %s conn: p50 / p99 | %s ms / %s ms |\n' "$1" "$3" "$p50" "$p99"
}
start tests/fixtures/spin.toml "$work/cache-1" "$work/load"
measure "no-op component" /noop 1
measure "no-op component" /noop 16
stop
start spin.toml "$work/cache-1" "$work/app"
measure "GET /api/health (KV + SQLite + variable)" /api/health 16
stop
echo
