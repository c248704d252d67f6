#!/usr/bin/env bash
# The prove engine held to the kernel at length: N random small nftables
# rulesets, each with a random packet, answered by the engine and sent
# through a throwaway namespace's kernel (tests/it/prove_kernel.rs), in
# batches of 1,000 with a fresh seed each; every disagreement fails the
# batch and prints the case (its ruleset, its packet, the seed to replay
# it with LEAKHOUND_PROVE_SEED).
#
#   bash ci/prove-vs-kernel.sh [N]     N cases (default 5000)
#
# Root. Not part of .ci/run, which runs the same test with 200 cases.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
bash ci/setup.sh
cargo build --release --test it --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT
done_=0 left=0 stopped=0
t0=$(date +%s)
while [ "$done_" -lt "$n" ]; do
  batch=$(( n - done_ < 1000 ? n - done_ : 1000 ))
  if ! LEAKHOUND_PROVE_CASES=$batch cargo test --release --quiet --test it -- \
      prove_kernel:: --nocapture >"$out" 2>&1; then
    cat "$out" >&2
    echo "prove-vs-kernel: a batch failed after $done_ cases" >&2
    exit 1
  fi
  # Counted only from the test's own tally: a batch that ran nothing
  # does not count.
  line=$(grep -E "^prove vs kernel: $batch cases in .* 0 disagreements" "$out" || true)
  if [ -z "$line" ]; then
    cat "$out" >&2
    echo "prove-vs-kernel: the batch printed no tally" >&2
    exit 1
  fi
  grep -E '^prove vs kernel: [0-9]+ cases, LEAKHOUND_PROVE_SEED' "$out" || true
  echo "$line"
  left=$(( left + $(sed -E 's/.* ([0-9]+) packets left.*/\1/' <<<"$line") ))
  stopped=$(( stopped + $(sed -E 's/.* ([0-9]+) stopped.*/\1/' <<<"$line") ))
  done_=$(( done_ + batch ))
done
echo "prove-vs-kernel: $done_ cases, 0 disagreements ($left packets let out, $stopped stopped), $(( $(date +%s) - t0 )) s"
