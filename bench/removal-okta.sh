#!/usr/bin/env bash
# Removal of a user through the Okta Event Hook (/webhooks/okta): how long
# the hook takes to answer for a user with N keys, on keygate-host and (when
# `spin` is on PATH) on real Spin; then that every key refuses verify with
# revoked_key. Last, for the largest N, a client that gives up after 1 s (as
# Okta does after 3 s): does the removal still finish without any retry?
# Prints Markdown rows; not in CI.
#
#   bench/removal-okta.sh [N ...]        (default: 1 100 1000 10000)
#
# Needs curl and the release build (built here). The same numbers on
# keygate-host, with Okta's retry and a crash part-way, come from
# `cargo test --release -p keygate-tests --test api_okta -- --ignored --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
((${#sizes[@]})) || sizes=(1 100 1000 10000)
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
CARGO_PROFILE_RELEASE_LTO=true cargo build -q --release --target wasm32-wasip2 \
  -p health -p console -p keys -p verify -p user-webhook -p okta-hook
cargo build -q --release -p keygate-host
mkdir -p target/bench
work=$(mktemp -d "$PWD/target/bench/removal-okta.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

export SPIN_VARIABLE_ADMIN_TOKEN=bench-admin-token-0123456789abcdef
export SPIN_VARIABLE_OKTA_HOOK_SECRET="Basic YmVuY2g6b2t0YS1ob29r"
mgmt=(-H "Authorization: Bearer $SPIN_VARIABLE_ADMIN_TOKEN" -H "X-Acting-User: bench-operator@example.com")
sed "s|source = \"target/|source = \"$PWD/target/|" spin.toml >"$work/spin.toml"

start() { # runner state-dir: sets $pid and $url
  if [[ $1 == keygate-host ]]; then
    target/release/keygate-host up --listen 127.0.0.1:0 --state-dir "$2" >"$2.out" 2>"$2.err" &
    pid=$!
    url=""
    until [[ -n $url ]]; do
      kill -0 "$pid" 2>/dev/null || { cat "$2.err" >&2; exit 1; }
      url=$(sed -n 's/^Serving //p' "$2.out")
      [[ -n $url ]] || sleep 0.05
    done
  else
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    spin up --from "$work/spin.toml" --listen "127.0.0.1:$port" --state-dir "$2" >"$2.out" 2>"$2.err" &
    pid=$!
    url=http://127.0.0.1:$port
    until curl -s -o /dev/null "$url/api/health"; do
      kill -0 "$pid" 2>/dev/null || { cat "$2.err" >&2; exit 1; }
      sleep 0.1
    done
  fi
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; }

create_keys() { # user n file: the secrets, one a line
  seq 1 "$2" | xargs -P 4 -I{} curl -s "${mgmt[@]/bench-operator@example.com/$1}" \
    -H 'content-type: application/json' -d '{"name":"k-{}"}' -w '\n' "$url/api/keys" |
    grep -o '"secret":"[^"]*"' | cut -d'"' -f4 >"$3"
}
delivery() { # user uuid
  printf '{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","data":{"events":[{"uuid":"%s","published":"2026-11-26T17:00:00.000Z","eventType":"user.lifecycle.deactivate","outcome":{"result":"SUCCESS","reason":null},"target":[{"id":"00u3m90rxKjGQ0G6L1d6","type":"User","alternateId":"%s","displayName":"Bench"}]}]},"contentType":"application/json"}' "$2" "$1"
}
okta() { # body [curl flags...]: prints "status seconds"
  local body=$1
  shift
  curl -s -o "$work/answer" -w '%{http_code} %{time_total}\n' "$@" -H 'accept: application/json' \
    -H "authorization: $SPIN_VARIABLE_OKTA_HOOK_SECRET" -H 'content-type: application/json' \
    -d "$body" "$url/webhooks/okta" || true
}
revoked() { curl -s "${mgmt[@]}" "$url/api/keys?status=revoked&per_page=1" | grep -o '"total":[0-9]*' | cut -d: -f2; }

runners=(keygate-host)
command -v spin >/dev/null && runners+=(spin)
echo "| runner | keys | hook answer | answer | keys refusing verify (revoked_key) |"
echo "|---|---:|---:|---|---:|"
for runner in "${runners[@]}"; do
  for n in "${sizes[@]}"; do
    state=$work/$runner-$n
    start "$runner" "$state"
    user=bench-$n@example.com
    create_keys "$user" "$n" "$work/secrets"
    have=$(wc -l <"$work/secrets")
    read -r status secs < <(okta "$(delivery "$user" "bench-$runner-$n")")
    refused=$(xargs -P 4 -I{} curl -s -H 'Authorization: Bearer {}' "$url/api/verify" <"$work/secrets" |
      grep -o '"code":"revoked_key"' | wc -l)
    printf '| %s | %s | %.0f ms | %s %s | %s of %s |\n' "$runner" "$have" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')" \
      "$status" "$(grep -o '"revoked_keys":[0-9]*' "$work/answer" || true)" "$refused" "$have"
    stop
  done
done

n=${sizes[-1]}
echo
echo "A client giving up after 1 s, no retry: revoked keys (of $n) as time passes"
for runner in "${runners[@]}"; do
  state=$work/$runner-disconnect
  start "$runner" "$state"
  user=bench-disconnect@example.com
  create_keys "$user" "$n" "$work/secrets"
  have=$(wc -l <"$work/secrets")
  began=$(date +%s.%N)
  read -r status _ < <(okta "$(delivery "$user" "bench-disconnect-$runner")" -m 1)
  line="$runner: the client saw ${status/000/no answer}"
  while :; do
    got=$(revoked)
    elapsed=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    line+="; ${elapsed} s: $got"
    [[ $got -ge $have ]] && break
    awk -v e="$elapsed" 'BEGIN { exit !(e > 120) }' && { line+=" (gave up waiting)"; break; }
    sleep 1
  done
  echo "- $line"
  stop
done
