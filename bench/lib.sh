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
