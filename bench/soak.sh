#!/usr/bin/env bash
# Soak: N minutes (default 10) of steady mixed traffic against the release
# build of the app on keygate-host. Not in CI. Prints, per minute, the
# throughput, p50/p99/p99.9 latency and errors of the main traffic, the
# webhook cycles and the runner's resident memory; writes the table to
# target/soak/results.md. Exits non-zero if any request got an unexpected
# answer or a socket error, or if a secret shows up in the runner's log.
#
#   bench/soak.sh [minutes]
#
# Traffic: wrk (bench/lua/mixed.lua) on CONNS connections (default 4) paced
# to RATE requests/s (default 800): 90 % verify over SEED_KEYS keys (default
# 2000), 4 % create, 3 % list, 3 % delete; beside it bench/soak.py at 2 % of
# RATE: create a key for a fresh user, remove the user with a signed webhook,
# check the key now fails with revoked_key. Memory: VmRSS of the runner from
# /proc every 10 s; disk: the state directory (databases and WAL files).
# HOSTILE=1 adds bench/hostile.py in the background: 200 MB bodies announced,
# 20 MiB chunked bodies, bodies sent a byte a second (the runner then runs with
# --request-timeout 5); its answers must all be 413 / 408.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
rate=${RATE:-800}
conns=${CONNS:-4}
seed_keys=${SEED_KEYS:-2000}
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
source bench/lib.sh
build_release health console keys verify user-webhook
mkdir -p target/soak
work=$(mktemp -d target/soak/run.XXXXXX)
results=target/soak/results.md
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
export BENCH_LUA=$PWD/bench/lua
TOKEN=soak-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
webhook_secret=whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')
export TOKEN

hostile=${HOSTILE:-0}
limits=()
(( hostile )) && limits=(--request-timeout 5)
start_runner "$work/app" --state-dir "$work/state" --cache-dir "$work/cache" \
  --variable "admin_token=$TOKEN" --variable "webhook_secret=$webhook_secret" "${limits[@]}"
runner_pid=$pid
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$runner_pid/status"; }
# Databases with their WAL files, and the WAL files alone: a log that is never
# started over shows here.
state_mib() { du -sm "$work/state" | cut -f1; }
wal_mib() { du -cm "$work"/state/*-wal 2>/dev/null | tail -1 | cut -f1; }

echo "soak: seeding $seed_keys keys"
while (( $(cat "$work"/secrets.* 2>/dev/null | wc -l) < seed_keys )); do
  # create.lua writes the secrets it is given to $SECRETS_OUT.<thread>.
  SECRETS_OUT=$work/secrets EXPECT=201 wrk -t2 -c2 -d2s -s bench/lua/create.lua "$url" | awk '$1 == "RESULT" && $6 == 0 && $7 == 0 { ok = 1 } END { exit !ok }' \
    || { echo "soak: seeding failed" >&2; exit 1; }
done
awk -v n="$seed_keys" 'NR <= n' "$work"/secrets.* >"$work/keys"
wh_rate=$(awk -v r="$rate" 'BEGIN { printf "%.2f", r * 0.02 }')
delay_ms=$(( conns * 1000 / rate ))

{
  printf '\n## Soak, %s: %s min, %s req/s target (%s connections, %s ms pacing) + %s webhook cycles/s, %s cores, load before %s\n\n' \
    "$(date -u +%FT%TZ)" "$minutes" "$rate" "$conns" "$delay_ms" "$wh_rate" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "| minute | req/s | p50 ms | p99 ms | p99.9 ms | errors | webhook cycles | webhook errors | webhook p99 ms | runner RSS MiB | state on disk MiB | of it WAL MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} | tee -a "$results"

start_rss=$(rss_kib)
(while kill -0 "$runner_pid" 2>/dev/null; do echo "$SECONDS $(rss_kib)"; sleep 10; done) >"$work/rss" &
python3 bench/soak.py "$url" "$TOKEN" "$webhook_secret" "$wh_rate" $(( minutes * 60 )) >"$work/webhooks" 2>"$work/webhooks.err" &
webhooks_pid=$!
if (( hostile )); then
  python3 bench/hostile.py "$url" $(( minutes * 60 )) >"$work/hostile" 2>"$work/hostile.err" &
  hostile_pid=$!
fi

total_bad=0
for ((m = 1; m <= minutes; m++)); do
  line=$(KEYS=$work/keys DELAY_MS=$delay_ms wrk -t"$conns" -c"$conns" -d60s -s bench/lua/mixed.lua "$url" 2>>"$work/wrk.err" | grep '^RESULT ')
  read -r _ rps p50 p99 p999 bad sock _ <<<"$line"
  total_bad=$(( total_bad + bad + sock ))
  # The webhook side reports each minute a moment after wrk's minute ends.
  wh=""
  for _ in $(seq 50); do
    wh=$(awk -v m="$m" '$1 == "WEBHOOKS" && $2 == m { print $3, $4, $5 }' "$work/webhooks")
    [[ -n $wh ]] && break
    sleep 0.1
  done
  read -r wh_n wh_bad wh_p99 <<<"${wh:-? ? ?}"
  printf '| %d | %s | %s | %s | %s | %d | %s | %s | %s | %.1f | %s | %s |\n' "$m" "$rps" "$p50" "$p99" "$p999" \
    $(( bad + sock )) "$wh_n" "$wh_bad" "$wh_p99" "$(awk -v k="$(rss_kib)" 'BEGIN { print k / 1024 }')" "$(state_mib)" "$(wal_mib)" | tee -a "$results"
done
wait "$webhooks_pid" || true
wh_errors=$(awk '$1 == "WEBHOOKS" { s += $4 } END { print s + 0 }' "$work/webhooks")
hostile_bad=0
if (( hostile )); then
  wait "$hostile_pid" || true
  hostile_bad=$(awk '$1 == "HOSTILE" { s += $4 } END { print s + 0 }' "$work/hostile")
  printf 'Hostile background: %s; unexpected answers: %d.\n' \
    "$(awk '$1 == "HOSTILE" { printf "%s%s %s", sep, $3, $2; sep = ", " }' "$work/hostile")" "$hostile_bad" | tee -a "$results"
fi
end_rss=$(rss_kib)
read -r min_rss max_rss < <(awk '{ if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 } END { print min, max }' "$work/rss")
stop
rm -rf "$work/state" "$work/cache"

# No secret in the runner's complete log (admin token, webhook secret, any key).
leaks=0
grep -qF "$TOKEN" "$work/app.err" && leaks=$((leaks + 1))
grep -qF "${webhook_secret#whsec_}" "$work/app.err" && leaks=$((leaks + 1))
grep -qF -f "$work/keys" "$work/app.err" && leaks=$((leaks + 1))
{
  echo
  printf 'Errors: %d (main traffic) + %d (webhook cycles). Runner RSS: %.1f MiB after seeding, %.1f MiB at the end; min %.1f, max %.1f MiB over %d samples. Requests logged: %d; secrets in the log: %d.\n' \
    "$total_bad" "$wh_errors" "$(awk -v k="$start_rss" 'BEGIN { print k / 1024 }')" "$(awk -v k="$end_rss" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$min_rss" 'BEGIN { print k / 1024 }')" "$(awk -v k="$max_rss" 'BEGIN { print k / 1024 }')" \
    "$(wc -l <"$work/rss")" "$(grep -c '^keygate-host: ' "$work/app.err")" "$leaks"
} | tee -a "$results"
[[ -s $work/wrk.err ]] && head -5 "$work/wrk.err"
[[ -s $work/webhooks.err ]] && head -5 "$work/webhooks.err"
[[ -s $work/hostile.err ]] && head -5 "$work/hostile.err"
(( total_bad == 0 && wh_errors == 0 && leaks == 0 && hostile_bad == 0 ))
