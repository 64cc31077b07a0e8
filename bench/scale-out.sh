#!/usr/bin/env bash
# keygate scaled out on real Spin (`spin` on PATH): the README's deployment,
# Redis (Debian's redis-server) for key-value and libSQL's server (sqld, built
# by ../shared/tools/libsql/) for SQL, started here on loopback.
#
# 1. One Spin instance on them: verify beside a no-op component and the probe
#    doing verify's SQL floor (one INSERT), at 1 and 16 connections.
# 2. Two Spin instances behind tests/scale_out/keygate-host-pair's round-robin
#    proxy: MIXED_SECONDS (default 60) of bench/lua/mixed.lua (90 % verify,
#    creates, lists, deletes) at 16 connections; every answer that is not the
#    one the request must get (a 503, say) is counted.
#
#   bench/scale-out.sh [seconds per load run, default 5]      Prints Markdown rows; not in CI.
#
# Environment: SQLD_BIN (default ~/libsql/bin/sqld), KEYS_N (default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
mixed_secs=${MIXED_SECONDS:-60}
nkeys=${KEYS_N:-200}
sqld_bin=${SQLD_BIN:-$HOME/libsql/bin/sqld}
for tool in spin redis-server "$sqld_bin"; do
  command -v "$tool" >/dev/null || { echo "bench/scale-out.sh: needs $tool" >&2; exit 2; }
done
source bench/lib.sh
build_release health console keys verify user-webhook noop probe
mkdir -p target/bench
work=$(mktemp -d "$PWD/target/bench/scale-out.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export BENCH_LUA=$PWD/bench/lua TOKEN=bench-admin-token-0123456789

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
sqld_port=$((redis_port + 1))
"$sqld_bin" --db-path "$work/data.sqld" --http-listen-addr "127.0.0.1:$sqld_port" \
  >"$work/sqld.log" 2>&1 &
until redis-cli -p "$redis_port" ping >/dev/null 2>&1 &&
  curl -s -o /dev/null "http://127.0.0.1:$sqld_port/health"; do sleep 0.1; done
cat >"$work/runtime-config.toml" <<TOML
[key_value_store.default]
type = "redis"
url = "redis://127.0.0.1:$redis_port"

[sqlite_database.default]
type = "libsql"
url = "http://127.0.0.1:$sqld_port"
token = "unused-by-a-local-sqld"
TOML
manifest=$work/spin.toml
spin_manifest_with_fixtures "$manifest"

# The probe's request: verify's one SQL statement's floor, one INSERT (libSQL
# refuses connection settings, so verify sends none there).
probe_body='{"statements":[{"sql":"INSERT INTO bench_probe (at, v) VALUES (?, ?)","params":[{"integer":1},{"text":"GET /orders 203.0.113.9"}]}]}'
select_body='{"statements":[{"sql":"SELECT 1"}]}'

echo "| measure (\`bench/scale-out.sh $secs\`, $(spin --version | head -1), sqld + Redis) | value |"
echo "|---|---|"
spin_up "$manifest" "$work/one" --state-dir "$work/state-one" \
  --runtime-config-file "$work/runtime-config.toml"
create_keys "$work/valid" "$nkeys"
create_probe_table
for conns in 1 16; do
  load "$conns" "$secs" get.lua BENCH_PATH=/noop
  noop_rps=$rps
  row "one instance: no-op component, $conns conn" "$(fmt)"
  load "$conns" "$secs" post.lua BENCH_PATH=/probe/sql/default BENCH_BODY="$select_body"
  row "one instance: probe, \`SELECT 1\`, $conns conn" "$(fmt)"
  load "$conns" "$secs" post.lua BENCH_PATH=/probe/sql/default BENCH_BODY="$probe_body"
  probe_rps=$rps probe_p50=$p50 probe_p99=$p99
  row "one instance: probe, one INSERT, $conns conn" "$(fmt)"
  load "$conns" "$secs" verify.lua KEYS="$work/valid"
  row "one instance: \`GET /api/verify\` valid key, $conns conn" \
    "$(fmt) · **$(ratio "$rps" "$probe_rps")× the probe's req/s, p50 $(ratio "$p50" "$probe_p50")× and p99 $(ratio "$p99" "$probe_p99")× the probe's** · $(ratio "$rps" "$noop_rps")× no-op"
done
kill -TERM "$pid"; wait "$pid" || true

# Two instances behind the round-robin proxy (it starts its own Redis and
# sqld; PAIR_INSTANCE_BIN makes its instances real Spin).
PAIR_INSTANCE_BIN=$PWD/tests/real-spin/keygate-host-as-spin SQLD_BIN=$sqld_bin \
  tests/scale_out/keygate-host-pair up --manifest "$PWD/spin.toml" --state-dir "$work/pair" \
  --variable "admin_token=$TOKEN" >"$work/pair.out" 2>"$work/pair.err" &
pair_pid=$!
until url=$(sed -n 's/^Serving //p' "$work/pair.out") && [[ -n "$url" ]]; do
  kill -0 "$pair_pid" 2>/dev/null || { cat "$work/pair.err" "$work/pair/pair.log" >&2; exit 1; }
  sleep 0.2
done
create_keys "$work/pair-valid" "$nkeys"
line=$(KEYS=$work/pair-valid wrk -t16 -c16 -d"${mixed_secs}s" -s bench/lua/mixed.lua "$url" | grep '^RESULT ')
read -r _ rps p50 p99 p999 bad sock _ <<<"$line"
row "two instances behind the proxy: ${mixed_secs} s mixed load (90 % verify), 16 conn" \
  "$(fmt) · **$bad unexpected answers** (503 or any other), $sock socket errors"
kill -TERM "$pair_pid"; wait "$pair_pid" || true
