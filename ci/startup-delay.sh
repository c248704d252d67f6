#!/usr/bin/env bash
# The delay from a gateway's start to the first probe of killswitch-startup
# (its `start-gateway` step with `storm-from` prints it), over N starts:
#   ci/startup-delay.sh [N] [-- TARGET ARGS...]
# Default: 20 starts of the stock reference gateway as a command target
# (it does not report its kill switch, so the probes start at its exec).
# Prints each delay and the median. Needs root and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
shift || true
[ "${1:-}" = "--" ] && shift
target=("$@")
[ ${#target[@]} -gt 0 ] || target=(--target command -- docker/reference/wg-quick-gw.sh)
bin=target/release/leakhound
[ -x "$bin" ] || cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
delays=()
for i in $(seq 1 "$n"); do
  "$bin" run --quiet --only killswitch-startup --out "$out/$i" "${target[@]}" >/dev/null 2>&1 || true
  d=$(python3 - "$out/$i/summary.json" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
def walk(o):
    if isinstance(o, dict):
        for line in o.get("log", []) if isinstance(o.get("log"), list) else []:
            m = re.match(r"the first probe went out ([0-9.]+) ms after", str(line))
            if m:
                print(m.group(1)); sys.exit(0)
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
walk(doc)
PY
)
  echo "start $i: ${d:-none} ms"
  [ -n "$d" ] && delays+=("$d")
done
printf '%s\n' "${delays[@]}" | sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "no delays measured"; exit 1}; m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "median over %d starts: %.1f ms (min %.1f, max %.1f)\n", NR, m, a[1], a[NR]}'
