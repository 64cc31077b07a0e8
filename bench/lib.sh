# Shared by the bench scripts (sourced): build, start and stop keygate-host.

# Checks for wrk, then builds keygate-host and the given components in release
# mode (adding the wasm32-wasip2 target, which rustup does not add by itself);
# sets $bin, the runner binary.
build_release() { # component...
  command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
  local packages=() c
  for c in "$@"; do packages+=(-p "$c"); done
  # As ./dev builds them: with link-time optimisation.
  CARGO_PROFILE_RELEASE_LTO=true cargo build -q --release --target wasm32-wasip2 "${packages[@]}"
  cargo build -q --release -p keygate-host
  bin=target/release/keygate-host
}

# Starts the runner in the background with `up --listen 127.0.0.1:0` and the
# given flags, its output in <log>.out and <log>.err; sets $pid and $url once
# it serves.
start_runner() { # log up-flags...
  local log=$1
  shift
  "$bin" up --listen 127.0.0.1:0 "$@" >"$log.out" 2>"$log.err" &
  pid=$!
  url=""
  while [[ -z "$url" ]]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log.err" >&2; exit 1; }
    url=$(sed -n 's/^Serving //p' "$log.out" 2>/dev/null || true)
    [[ -n "$url" ]] || sleep 0.05
  done
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
# Start-up time the runner logged in <log>.err.
ready_ms() { sed -n 's/.*ready in \([0-9]*\) ms/\1/p' "$1.err"; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

# wrk against $url with one of bench/lua's scripts (BENCH_LUA set), one
# connection per thread (so that report.lua can time each request); sets $rps,
# $p50 $p99 $p999 (ms, each request's own time) and $wrk_p99 (wrk's
# coordinated-omission-corrected p99, see report.lua), and fails loudly on
# unexpected answers or socket errors.
load() { # connections seconds script [env...]
  local conns=$1 dur=$2 script=$3 line
  shift 3
  line=$(env "$@" wrk -t"$conns" -c"$conns" -d"${dur}s" \
    -s "bench/lua/$script" "$url" | grep '^RESULT ')
  read -r _ rps p50 p99 p999 bad sock wrk_p99 <<<"$line"
  if (( bad > 0 || sock > 0 )); then
    echo "bench: $script $*: $bad unexpected answers, $sock socket errors" >&2
    exit 1
  fi
}

# ---- real Spin (bench/spin.sh, bench/scale-out.sh) ----

# A free port below the ephemeral range (see ../shared/tools/real-spin/README.md).
free_port() {
  python3 -c 'import socket
for p in range(20000, 32000, 7):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()'
}

# Writes spin.toml with absolute sources to <out>, plus the no-op component at
# /noop and the probe at /probe/... (same stores as keygate's components).
spin_manifest_with_fixtures() { # out
  sed "s|source = \"target/|source = \"$PWD/target/|" spin.toml >"$1"
  cat >>"$1" <<TOML

[[trigger.http]]
route = "/noop"
component = "noop"

[component.noop]
source = "$PWD/target/wasm32-wasip2/release/noop.wasm"

[[trigger.http]]
route = "/probe/..."
component = "probe"

[component.probe]
source = "$PWD/target/wasm32-wasip2/release/probe.wasm"
key_value_stores = ["default"]
sqlite_databases = ["default"]
TOML
}

# `spin up` of <manifest> on a free port in the background, its output in
# <log>.out/.err; sets $pid and $url once /noop answers.
spin_up() { # manifest log [spin up flags...]
  local manifest=$1 log=$2 port
  shift 2
  port=$(free_port)
  SPIN_VARIABLE_ADMIN_TOKEN=$TOKEN spin up --from "$manifest" --listen "127.0.0.1:$port" \
    "$@" >"$log.out" 2>"$log.err" &
  pid=$!
  url=http://127.0.0.1:$port
  until curl -sf -o /dev/null "$url/noop"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log.err" >&2; exit 1; }
    sleep 0.1
  done
}

# Creates keys through $url until <file> holds <count> secrets.
create_keys() { # file count
  : >"$1"
  while (( $(cat "$1".* 2>/dev/null | wc -l) < $2 )); do
    load 2 2 create.lua EXPECT=201 SECRETS_OUT="$1"
  done
  cat "$1".* >"$1"
}

# The probe's table in the `default` database.
create_probe_table() {
  curl -sf -o /dev/null -H 'content-type: application/json' \
    -d '{"statements":[{"sql":"CREATE TABLE IF NOT EXISTS bench_probe (id INTEGER PRIMARY KEY, at INTEGER, v TEXT)"}]}' \
    "$url/probe/sql/default"
}

row() { printf '| %s | %s |\n' "$1" "$2"; }
fmt() { printf '%s req/s · p50 %s ms · p99 %s ms · p99.9 %s ms' "$rps" "$p50" "$p99" "$p999"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
