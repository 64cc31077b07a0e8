#!/usr/bin/env bash
# keygate's benchmark suite: one command, numbers not pass/fail, not in CI.
# The release build of the app on keygate-host, loaded by wrk on 127.0.0.1,
# plus criterion micro-benchmarks of the domain crate. Prints a Markdown
# table and writes it to target/bench/results.md.
#
#   bench/suite.sh [seconds per load run, default 10]      (also: ./dev bench)
#
# Environment: KEYS_MAX (default 100000) and AUDIT_ROWS (default 1000000)
# shrink the largest data sets for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
keys_max=${KEYS_MAX:-100000}
audit_rows=${AUDIT_ROWS:-1000000}
command -v python3 >/dev/null || { echo "needs python3 (to seed the audit table)" >&2; exit 2; }
source bench/lib.sh
build_release health console keys verify user-webhook noop
mkdir -p target/bench
work=$(mktemp -d target/bench/run.XXXXXX)
results=target/bench/results.md
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export BENCH_LUA=$PWD/bench/lua TOKEN=bench-admin-token-0123456789

# The app plus the no-op component at /noop: the runtime's floor, same runner.
sed 's|source = "target/|source = "../../target/|' spin.toml >target/bench/spin.toml
cat >>target/bench/spin.toml <<'TOML'

[[trigger.http]]
route = "/noop"
component = "noop"

[component.noop]
source = "../../target/wasm32-wasip2/release/noop.wasm"
TOML

start() { # state-dir cache-dir log [more flags]
  start_runner "$3" --manifest target/bench/spin.toml --state-dir "$1" --cache-dir "$2" \
    --variable "admin_token=$TOKEN" "${@:4}"
}

out() { printf '%s\n' "$*" | tee -a "$results"; }
row() { out "| $1 | $2 |"; }


key_count() {
  curl -sf -H "Authorization: Bearer $TOKEN" -H "X-Acting-User: bench@example.com" \
    "$url/api/keys?per_page=1" | grep -o '"total":[0-9]*' | cut -d: -f2
}
# Creates keys on 2 connections in timed runs (wrk stops on time, not on a
# count) until at least $1 exist; the secrets go to $work/secrets.*.
grow_to() {
  local n
  n=$(key_count)
  while (( n < $1 )); do
    # About 1,000 creates/s on one connection, more on two.
    local conns=1 run=1
    if (( $1 - n > 2000 )); then conns=2 run=$(( ($1 - n) / 1500 )); fi
    (( run > 20 )) && run=20
    load "$conns" "$run" create.lua EXPECT=201 SECRETS_OUT="$work/secrets"
    n=$(key_count)
  done
}

list_pages() {
  local n q
  n=$(key_count)
  for q in "sort=created_at" "sort=name&order=asc" "sort=created_by" "sort=last_used_at" \
    "name=needle" "name=bench" "status=active" "created_by=bench@example.com"; do
    load 1 3 get.lua BENCH_PATH="/api/keys?$q"
    row "\`GET /api/keys?$q\` at $n keys, 1 conn" "p50 $p50 ms · p99 $p99 ms"
  done
}

: >"$results"
out "## keygate benchmarks: $(uname -m), $(nproc) cores, $(date -u +'%F %H:%M') UTC"
out ""
out "\`bench/suite.sh $secs\` at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)')"
out ""
out "| measure | value |"
out "|---|---|"

for c in console health keys verify user_webhook noop; do
  row "$c.wasm" "$(stat -c %s "target/wasm32-wasip2/release/$c.wasm") bytes"
done

# Start-up, median of 5: an empty compile cache, then the filled one.
cold=() warm=()
for i in 1 2 3 4 5; do
  for kind in cold warm; do
    start "$work/startup-state" "$work/cache-$i" "$work/$kind"
    stop
    ms=$(ready_ms "$work/$kind")
    if [[ $kind == cold ]]; then cold+=("$ms"); else warm+=("$ms"); fi
  done
done
row "runner start-up, cold (compiles $(grep -c '^\[component\.[a-z_-]*\]$' target/bench/spin.toml) components)" "$(median "${cold[@]}") ms"
row "runner start-up, compile cache filled" "$(median "${warm[@]}") ms"

start "$work/state" "$work/cache-1" "$work/app"

# One key the name filter looks for; the bench keys are all `bench-…`.
curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H "X-Acting-User: bench@example.com" \
  -H 'content-type: application/json' -d '{"name":"needle-in-the-haystack"}' "$url/api/keys"
grow_to 1000
list_pages

load 2 "$secs" create.lua EXPECT=201 SECRETS_OUT="$work/secrets"
row "\`POST /api/keys\`, 2 conn" "$(fmt) (creates/s)"
grow_to 10000
list_pages

# Verify over every key created so far (>= 10,000), beside the no-op.
cat "$work"/secrets.* >"$work/valid"
python3 - "$work" <<'PY'
import random, sys, zlib
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
def checksum(random_part):
    v, out = zlib.crc32(random_part.encode()), ""
    for _ in range(6):
        out, v = B62[v % 62] + out, v // 62
    return out
rng = random.Random(7)
with open(sys.argv[1] + "/unknown", "w") as unknown, open(sys.argv[1] + "/malformed", "w") as bad:
    for _ in range(10000):
        part = "".join(rng.choice(B62) for _ in range(32))
        unknown.write(f"kg_{part}{checksum(part)}\n")
        wrong = checksum(part)[:-1] + ("1" if checksum(part)[-1] != "1" else "2")
        bad.write(f"kg_{part}{wrong}\n")
PY
for conns in 1 16; do
  load "$conns" "$secs" get.lua BENCH_PATH=/noop
  noop_rps=$rps noop_p99=$p99 noop_wrk_p99=$wrk_p99
  row "no-op component, $conns conn" "$(fmt) · wrk's corrected p99 $wrk_p99 ms"
  load "$conns" "$secs" verify.lua KEYS="$work/valid"
  row "\`GET /api/verify\` valid key ($(wc -l <"$work/valid") keys), $conns conn" \
    "$(fmt) · **$(ratio "$rps" "$noop_rps")× no-op req/s, $(ratio "$p99" "$noop_p99")× its p99** · wrk's corrected p99 $wrk_p99 ms ($(ratio "$wrk_p99" "$noop_wrk_p99")× no-op's)"
  load "$conns" "$secs" verify.lua KEYS="$work/malformed" EXPECT=401
  row "\`GET /api/verify\` malformed key, $conns conn" "$(fmt) · $(ratio "$rps" "$noop_rps")× no-op"
  load "$conns" "$secs" verify.lua KEYS="$work/unknown" EXPECT=401
  row "\`GET /api/verify\` unknown well-formed key, $conns conn" "$(fmt) · $(ratio "$rps" "$noop_rps")× no-op"
done
row "runner peak memory (VmHWM) after the verify runs" "$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")"

# The Wasm instructions each kind of request runs in its guest: a count (wasmtime
# fuel, `--count-instructions`), which this machine's noise does not move.
# Median over a 2-s run at 1 connection, from the runner's log.
stop
start "$work/state" "$work/cache-1" "$work/count" --count-instructions
instructions() { # component label script [env...]
  local component=$1 label=$2 before
  shift 2
  before=$(wc -l <"$work/count.err")
  load 1 2 "$@"
  row "$label: Wasm instructions per request (median)" "$(tail -n +"$((before + 1))" "$work/count.err" |
    sed -n "s/^keygate-host: $component ran \([0-9]*\) Wasm instructions$/\1/p" | sort -n |
    awk '{ n[NR] = $1 } END { print n[int((NR + 1) / 2)] }')"
}
instructions noop "no-op component" get.lua BENCH_PATH=/noop
instructions verify "\`GET /api/verify\` valid key" verify.lua KEYS="$work/valid"
instructions verify "\`GET /api/verify\` malformed key" verify.lua KEYS="$work/malformed" EXPECT=401
instructions verify "\`GET /api/verify\` unknown well-formed key" verify.lua KEYS="$work/unknown" EXPECT=401
stop
start "$work/state" "$work/cache-1" "$work/app"

grow_to "$keys_max"
list_pages

# The audit trail at $audit_rows rows: the verify runs wrote real entries;
# the rest is seeded straight into the database (plausible users, keys, actions).
stop
python3 - "$work/state/sqlite_db.db" "$audit_rows" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
have = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
need = max(0, int(sys.argv[2]) - have)
now = int(time.time())
db.execute("""
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
    INSERT INTO audit_log (at, user, action, key_id, key_name, details)
    SELECT ?2 - (?1 - i) / 20, 'user' || (i % 97) || '@example.com',
           CASE i % 10 WHEN 0 THEN 'key.created' WHEN 1 THEN 'key.deleted' ELSE 'key.used' END,
           'key_seed' || (i % 5000), 'seed-' || (i % 5000),
           '{"method":"GET","path":"/orders","source_ip":"10.0.0.1"}'
    FROM n""", (need, now))
db.commit()
PY
start "$work/state" "$work/cache-1" "$work/app"
rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM audit_log").fetchone()[0])' "$work/state/sqlite_db.db")
for q in "" "user=user5@example.com" "action=key.deleted" "key_id=key_seed42" \
  "from=$(date -u -d '-1 hour' +%FT%TZ)&to=$(date -u +%FT%TZ)"; do
  load 1 3 get.lua BENCH_PATH="/api/audit?$q"
  row "\`GET /api/audit?$q\` at $rows rows, 1 conn" "p50 $p50 ms · p99 $p99 ms"
done
stop

# Micro-benchmarks of the domain crate (criterion, in its bencher format:
# "test key/parse_valid ... bench:  41 ns/iter (+/- 1)").
while read -r name ns; do
  row "\`$name\` (criterion)" "$ns ns"
done < <(cargo bench -q -p keygate --bench key -- --output-format bencher 2>/dev/null |
  awk '$1 == "test" && $4 == "bench:" { gsub(/,/, "", $5); print $2, $5 }')
out ""

# The same app on real Spin, where users run it (bench/spin.sh), when `spin` is on PATH.
if command -v spin >/dev/null; then
  bench/spin.sh "$(( secs < 5 ? secs : 5 ))" | tee -a "$results"
else
  out "(real Spin: not run, no \`spin\` on PATH; ../shared/tools/real-spin builds it)"
fi
echo "(written to $results)"
