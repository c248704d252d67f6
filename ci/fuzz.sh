#!/usr/bin/env bash
# Runs every cargo-fuzz target instrumented for a fixed time and prints, per
# target: executions, coverage (libFuzzer's `cov:`), corpus size and crashes.
#
#   bash ci/fuzz.sh [SECONDS-PER-TARGET]     default 60
#
# On this stable toolchain RUSTC_BOOTSTRAP=1 makes cargo-fuzz's sanitizer
# flags work (the toolchain ships the ASan runtime). Installs cargo-fuzz if
# missing. Crashes land in fuzz/artifacts/TARGET/; each one found becomes a
# unit test. Not part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
RUSTC_BOOTSTRAP=1 cargo fuzz build >/dev/null 2>&1
printf '%-16s %12s %10s %8s %8s\n' target executions coverage corpus crashes
for t in $targets; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  set +e
  cargo fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  corpus=$(ls "corpus/$t" | wc -l)
  crashes=$(ls "artifacts/$t" 2>/dev/null | grep -c '^crash-' || true)
  printf '%-16s %12s %10s %8s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "$corpus" "$crashes"
  if grep -q 'SUMMARY: \|panicked at' "$log"; then
    grep -m3 'panicked at\|SUMMARY:' "$log" | sed 's/^/    /'
  fi
  rm -f "$log"
done
