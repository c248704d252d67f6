#!/usr/bin/env bash
# The full comparison behind the targets issue's proof: builds both images
# (leakhound's gateway, and the reference gateway from a debootstrapped
# Debian root: a few minutes the first time), then runs the whole default
# suite against every target of ci/targets.toml and prints the scenario x
# target table (also in reports/compare/compare.md), the images' sizes, and
# what is left of containers and namespaces before and after. Not part of
# .ci/run (it takes the suite six times).
#
#   bash ci/compare-targets.sh [extra leakhound compare arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
cargo build --release --quiet
bash docker/build.sh
bash docker/reference/build-image.sh
echo "before: $(docker ps -aq | wc -l) container(s), $(ip netns list | wc -l) namespace(s)"
set +e
start=$(date +%s)
./target/release/leakhound compare --quiet --targets ci/targets.toml --out reports/compare "$@" \
  >reports/compare.log 2>&1
code=$?
set -e
echo "compare exited $code after $(( $(date +%s) - start )) s (0 all passed, 1 findings, 2 harness)"
cat reports/compare/compare.md
echo "after: $(docker ps -aq | wc -l) container(s), $(ip netns list | wc -l) namespace(s)"
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep leakhound
