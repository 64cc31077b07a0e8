# Shared by the bench scripts (sourced): build, start and stop keygate-host.

# Checks for wrk, then builds keygate-host and the given components in release
# mode (adding the wasm32-wasip2 target, which rustup does not add by itself);
# sets $bin, the runner binary.
build_release() { # component...
  command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
  local packages=() c
  for c in "$@"; do packages+=(-p "$c"); done
  cargo build -q --release --target wasm32-wasip2 "${packages[@]}"
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
