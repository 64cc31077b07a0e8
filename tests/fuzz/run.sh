#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 30),
# starting from the committed seed corpus fuzz/corpus/<target>/. Part of
# `./dev test` (and so of CI). Needs the nightly toolchain; installs
# cargo-fuzz from crates.io when it is missing.
#
# New interesting inputs go to target/fuzz/corpus/<target>/ (never into the
# repository; `cargo fuzz cmin` them into fuzz/corpus/ by hand when useful).
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
# Writes one line per target and `# pass N` / `# fail M` to $FUZZ_SUMMARY
# (default target/fuzz/summary) for ./dev's closing count.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${FUZZ_SECONDS:-30}
out=$root/target/fuzz
summary=${FUZZ_SUMMARY:-$out/summary}
mkdir -p "$out"
: >"$summary"
targets=(key_parse webhook_signature list_query json_bodies)

fail_all() {
  echo "fuzz: $1" >&2
  echo "# pass 0" >>"$summary"
  echo "# fail ${#targets[@]}" >>"$summary"
  exit 1
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "--- installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal || fail_all "no nightly toolchain: rustup toolchain install nightly"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "--- installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked || fail_all "could not install cargo-fuzz: cargo install cargo-fuzz"
fi

echo "--- fuzz: building ${#targets[@]} targets (nightly, AddressSanitizer)"
build_start=$SECONDS
(cd fuzz && cargo +nightly fuzz build --target-dir "$out/build") || fail_all "the fuzz targets do not build"
echo "fuzz: built in $((SECONDS - build_start)) s"

pass=0 fail=0
for t in "${targets[@]}"; do
  corpus=$out/corpus/$t
  mkdir -p "$corpus"
  log=$out/$t.log
  start=$SECONDS
  # The first corpus dir receives new inputs; the committed seeds are read only.
  if (cd fuzz && cargo +nightly fuzz run --target-dir "$out/build" "$t" "$corpus" "corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1) >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz: $t ok: ${runs:-?} runs in $((SECONDS - start)) s, corpus $(find "$corpus" -type f | wc -l) inputs (seeds $(find "fuzz/corpus/$t" -type f | wc -l))" | tee -a "$summary"
    pass=$((pass + 1))
  else
    echo "fuzz: $t FAILED after $((SECONDS - start)) s; the input is in fuzz/artifacts/$t/" | tee -a "$summary"
    grep -E -A12 "panicked|ERROR: " "$log" | head -40
    echo "reproduce: cd fuzz && cargo +nightly fuzz run $t artifacts/$t/<file>"
    fail=$((fail + 1))
  fi
done
printf '# pass %d\n# fail %d\n' "$pass" "$fail" >>"$summary"
((fail == 0))
