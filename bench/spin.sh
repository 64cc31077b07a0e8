#!/usr/bin/env bash
# keygate on real Spin (`spin` on PATH; ../shared/tools/real-spin builds it):
# verify beside a no-op component and a one-INSERT probe with the same
# connection settings, in the same database, at 1 and 16 connections; first
# with Spin's default local key-value store, then with Redis for it (Debian's
# redis-server, started here on loopback). Prints Markdown rows; not in CI.
#
#   bench/spin.sh [seconds per load run, default 5]     (bench/suite.sh runs it too)
#
# Environment: SPIN_KEYS (default 2000) keys to verify with.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
nkeys=${SPIN_KEYS:-2000}
command -v spin >/dev/null || { echo "bench/spin.sh: no spin on PATH" >&2; exit 2; }
source bench/lib.sh
build_release health console keys verify user-webhook noop probe
mkdir -p target/bench
work=$(mktemp -d "$PWD/target/bench/spin.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export BENCH_LUA=$PWD/bench/lua TOKEN=bench-admin-token-0123456789

# The app, the no-op at /noop and the probe at /probe/... (same database).
manifest=$work/spin.toml
spin_manifest_with_fixtures "$manifest"

# The probe's request: the connection setting verify makes, then one INSERT.
probe_body='{"statements":[{"sql":"PRAGMA synchronous = NORMAL"},{"sql":"INSERT INTO bench_probe (at, v) VALUES (?, ?)","params":[{"integer":1},{"text":"GET /orders 203.0.113.9"}]}]}'

probe_full_body='{"statements":[{"sql":"INSERT INTO bench_probe (at, v) VALUES (?, ?)","params":[{"integer":1},{"text":"GET /orders 203.0.113.9"}]}]}'

run_on() { # label [spin up flags...]
  label=$1
  shift
  spin_up "$manifest" "$work/$label" --state-dir "$work/state-$label" "$@"
  # Keys to verify (creating them migrates the schema: WAL from then on).
  create_keys "$work/valid.$label" "$nkeys"
  create_probe_table
  local conns
  for conns in 1 16; do
    load "$conns" "$secs" get.lua BENCH_PATH=/noop
    local noop_rps=$rps
    row "Spin ($label): no-op component, $conns conn" "$(fmt)"
    load "$conns" "$secs" post.lua BENCH_PATH=/probe/sql/default BENCH_BODY="$probe_body"
    local probe_rps=$rps probe_p50=$p50 probe_p99=$p99
    row "Spin ($label): probe, \`PRAGMA synchronous = NORMAL\` + one INSERT, $conns conn" "$(fmt)"
    load "$conns" "$secs" post.lua BENCH_PATH=/probe/sql/default BENCH_BODY="$probe_full_body"
    row "Spin ($label): probe, one INSERT at SQLite's default \`synchronous = FULL\`, $conns conn" "$(fmt)"
    load "$conns" "$secs" verify.lua KEYS="$work/valid.$label"
    row "Spin ($label): \`GET /api/verify\` valid key ($(wc -l <"$work/valid.$label") keys), $conns conn" \
      "$(fmt) · **$(ratio "$rps" "$probe_rps")× the probe's req/s, p50 $(ratio "$p50" "$probe_p50")× and p99 $(ratio "$p99" "$probe_p99")× the probe's** · $(ratio "$rps" "$noop_rps")× no-op"
  done
  kill -TERM "$pid"; wait "$pid" || true
}

echo "| measure (\`bench/spin.sh $secs\`, $(spin --version | head -1)) | value |"
echo "|---|---|"
run_on local-kv

if command -v redis-server >/dev/null; then
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
  printf '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:%s"\n' "$redis_port" \
    >"$work/redis.toml"
  run_on redis-kv --runtime-config-file "$work/redis.toml"
else
  row "Spin (redis-kv)" "not run: no redis-server (apt-get install redis-server)"
fi
