#!/usr/bin/env bash
# Runs every cargo-fuzz target instrumented for a fixed time and prints, per
# target: executions, coverage (libFuzzer's `cov:`), corpus size, and what
# this run found (crashes, timeouts over 10 s per input, out-of-memory).
#
#   bash ci/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]    default 60, all
#
# On this stable toolchain RUSTC_BOOTSTRAP=1 makes cargo-fuzz's sanitizer
# flags work (the toolchain ships the ASan runtime). Installs cargo-fuzz if
# missing. Each target starts from fuzz/corpus/TARGET/ (the committed
# seed-* files and whatever earlier runs kept there, which git ignores);
# findings land in fuzz/artifacts/TARGET/, and each one becomes a unit test
# and a seed. `cargo test` replays the corpora without cargo-fuzz; this
# script is not part of .ci/run. Exits 1 when a run found something.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=${*:-$(cargo fuzz list)}
cargo fuzz build >/dev/null 2>&1 || cargo fuzz build
found_any=0
printf '%-16s %12s %10s %8s %8s\n' target executions coverage corpus found
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(ls "artifacts/$t" | sort)
  log=$(mktemp)
  set +e
  cargo fuzz run "$t" -- -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  corpus=$(ls "corpus/$t" | wc -l)
  new=$(comm -13 <(echo "$before") <(ls "artifacts/$t" | sort) | grep -c . || true)
  printf '%-16s %12s %10s %8s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "$corpus" "$new"
  if [ "$new" -gt 0 ]; then
    found_any=1
    comm -13 <(echo "$before") <(ls "artifacts/$t" | sort) | sed "s|^|    fuzz/artifacts/$t/|"
    grep -m3 'panicked at\|SUMMARY:\|ERROR: libFuzzer' "$log" | sed 's/^/    /' || true
  fi
  rm -f "$log"
done
exit "$found_any"
