#!/usr/bin/env bash
# The black-box API tests against real Spin instead of keygate-host: the same
# tests, the same built .wasm files, each test's app started by `spin up`
# through keygate-host-as-spin. Needs `spin` on PATH
# (../shared/tools/real-spin builds it); not in CI, where there is no Spin.
#
#   tests/real-spin/run.sh [cargo test filters...]
#
# Runs the tests of the contract (tests/api/*, the health route, the
# concurrency and secrets checks); the runner's own tests and those that
# inject faults through runner-only flags have no Spin equivalent.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v spin >/dev/null || { echo "tests/real-spin/run.sh: no spin on PATH" >&2; exit 2; }
CARGO_PROFILE_RELEASE_LTO=true cargo build -q --release --target wasm32-wasip2 -p health -p console -p keys -p verify -p user-webhook -p okta-hook -p ssf-receiver -p scim -p probe -p noop
source tests/black-box-targets.sh
KEYGATE_HOST_BIN=$PWD/tests/real-spin/keygate-host-as-spin KEYGATE_NO_FAULT_INJECTION=1 \
  cargo test --release --no-fail-fast "${black_box_targets[@]}" -- "$@"
