# Shared by the bench scripts (sourced): start and stop keygate-host.
# Expects $bin (the runner binary).

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
