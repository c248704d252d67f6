#!/usr/bin/env bash
# Proof of no false alarms: runs the full default suite N times in a row
# (a plain `leakhound run`, release build) and counts failures by scenario.
#
#   bash ci/repeat-suite.sh [N] [--hog] [-- extra leakhound run arguments]
#
#   N       how many runs (default 10)
#   --hog   also keep one core busy with stress-ng for the whole time (a
#           machine under load; installs stress-ng from Debian if missing)
#
# Prints one line per run (wall time, exit status, failed scenarios) and a
# table of failures by scenario; each run's reports stay in
# reports/repeat/run-K. Exits 1 if any run did not exit 0. Not part of
# .ci/run (it takes N full suites).
set -euo pipefail
cd "$(dirname "$0")/.."
n=10
hog=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hog) hog=1 ;;
    --) shift; extra=("$@"); break ;;
    *) n="$1" ;;
  esac
  shift
done
bash ci/setup.sh
cargo build --release --quiet
bin=./target/release/leakhound
out=reports/repeat
rm -rf "$out"
mkdir -p "$out"
hog_pid=
if [ "$hog" = 1 ]; then
  if ! command -v stress-ng >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
  fi
  stress-ng --cpu 1 --cpu-method matrixprod --quiet &
  hog_pid=$!
  trap 'kill $hog_pid 2>/dev/null || true' EXIT
  echo "load: stress-ng --cpu 1 (pid $hog_pid) for the whole time"
fi
bad=0
for i in $(seq 1 "$n"); do
  start=$(date +%s.%N)
  set +e
  "$bin" run --quiet --out "$out/run-$i" "${extra[@]}" >"$out/run-$i.log" 2>&1
  code=$?
  set -e
  end=$(date +%s.%N)
  failed=$(python3 - "$out/run-$i/summary.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"(no summary: {e})")
    sys.exit()
bad = [r["name"] for r in s["results"]
       if any(c["outcome"]["status"] in ("failed", "error") for c in r["cases"])]
print(" ".join(bad) if bad else "-")
EOF
)
  printf 'run %2d  %6.1f s  exit %d  failed: %s\n' "$i" "$(awk "BEGIN{print $end - $start}")" "$code" "$failed"
  [ "$code" = 0 ] || bad=$((bad + 1))
done
echo
echo "runs: $n, runs not passing: $bad"
python3 - "$out" "$n" <<'EOF'
import json, sys, collections
out, n = sys.argv[1], int(sys.argv[2])
fails = collections.Counter()
for i in range(1, n + 1):
    try:
        s = json.load(open(f"{out}/run-{i}/summary.json"))
    except Exception:
        fails["(no summary)"] += 1
        continue
    for r in s["results"]:
        if any(c["outcome"]["status"] in ("failed", "error") for c in r["cases"]):
            fails[r["name"]] += 1
print("failures by scenario:", "none" if not fails else "")
for name, k in fails.most_common():
    print(f"  {name:<32} {k}/{n}")
EOF
[ "$bad" = 0 ]
