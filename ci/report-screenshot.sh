#!/usr/bin/env bash
# Makes docs/report-screenshot.png: a run of two scenarios against the
# built-in gateway with its kill switch disabled on purpose
# (FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off), so the report
# shows a pass, a failure and a timeline with leaks; then headless chromium
# photographs report.html. Needs root (the run) and chromium (ci/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Exit status 1 is the expected finding.
"${CARGO_TARGET_DIR:-target}"/release/leakhound run --quiet --dependents stand-in \
    --only baseline --only killswitch-tunnel-down \
    --env FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off \
    --out "$out" || [ $? -eq 1 ]
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1100,1400 --screenshot="$PWD/docs/report-screenshot.png" \
    "file://$out/report.html" 2>/dev/null
echo "wrote docs/report-screenshot.png"
