#!/usr/bin/env bash
# keygate scaled out, as tested before a release and before closing work on
# it (`./dev test --scale-out`; not in CI: it needs sqld, libSQL's server,
# which is built from source by ../shared/tools/libsql/, and Redis):
#
# 1. the runner's redis and libsql backends and what two instances sharing
#    them do under races and when one is killed (tests/scale_out/*.rs);
# 2. the black-box API tests with every app served by two instances sharing
#    one Redis and one sqld behind a round-robin proxy (keygate-host-pair):
#    each request goes to the other instance than the one before.
#
#   tests/scale_out/run.sh [cargo test filters for part 2...]
#
# Environment: SQLD_BIN (default ~/libsql/bin/sqld); PAIR_INSTANCE_BIN to run
# part 2 on other instances (tests/real-spin/keygate-host-as-spin: real Spin).
set -euo pipefail
cd "$(dirname "$0")/../.."
sqld=${SQLD_BIN:-$HOME/libsql/bin/sqld}
[[ -x "$sqld" ]] || { echo "tests/scale_out/run.sh: no sqld at $sqld (build it with ../shared/tools/libsql/build.sh, or set SQLD_BIN)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "tests/scale_out/run.sh: no redis-server (apt-get install redis-server)" >&2; exit 2; }
export SQLD_BIN=$sqld
CARGO_PROFILE_RELEASE_LTO=true cargo build -q --release --target wasm32-wasip2 -p health -p console -p keys -p verify -p user-webhook -p okta-hook -p ssf-receiver -p scim -p probe -p noop
cargo build -q --release -p keygate-host -p keygate-tests

status=0
echo "--- scale-out: backends, races, an instance killed"
cargo test --release --no-fail-fast --features keygate-tests/scale-out -p keygate-tests \
  --test scale_out_backends --test scale_out_instances || status=$?

echo "--- scale-out: the black-box API tests through two instances"
source tests/black-box-targets.sh
KEYGATE_HOST_BIN=$PWD/tests/scale_out/keygate-host-pair KEYGATE_NO_FAULT_INJECTION=1 \
  cargo test --release --no-fail-fast -p keygate-tests "${black_box_targets[@]}" -- "$@" || status=$?
exit "$status"
