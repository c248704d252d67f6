#!/usr/bin/env bash
# The gateway image as users build it, under the default suite: builds the
# static gateway image exactly as docker/README.md says (`bash
# docker/build.sh`, no --from), then runs `leakhound run --target container
# --image leakhound/gateway:local` (the image's capabilities come from its
# own label) and prints the totals, the slowest scenarios, how long each
# part took and what is left of containers and namespaces. Not part of
# .ci/run: a static release build of the gateway and a suite with one lab
# (a container target runs one scenario at a time) take longer than CI's
# budget allows; its figures go into closing notes.
#
#   bash ci/image-suite.sh [extra leakhound run arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
t0=$(date +%s)
bash docker/build.sh
t1=$(date +%s)
echo "image built in $(( t1 - t0 )) s"
cargo build --release --quiet --bin leakhound
echo "before: $(docker ps -aq | wc -l) container(s), $(ip netns list | wc -l) namespace(s)"
mkdir -p reports
set +e
./target/release/leakhound run --target container --image leakhound/gateway:local \
  --out reports/image-suite "$@" >reports/image-suite.log 2>&1
code=$?
set -e
t2=$(date +%s)
echo "run exited $code after $(( t2 - t1 )) s (0 all passed, 1 findings, 2 harness)"
grep -E '^(  FAIL|  ERROR|[0-9]+ passed|timings:)' reports/image-suite.log || true
sed -n '/^scenario times, slowest first:/,/^reports in/p' reports/image-suite.log | head -12
echo "after: $(docker ps -aq | wc -l) container(s), $(ip netns list | wc -l) namespace(s)"
exit "$code"
