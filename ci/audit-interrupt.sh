#!/usr/bin/env bash
# How fast a live gateway's traffic flows again when a disruptive audit is
# interrupted: SIGINT, SIGTERM and SIGKILL at each phase of
# `leakhound audit --disruptive` against a lab started with `lab up`, each
# timed from the signal until whoami answers from the gateway's namespace
# through the tunnel (curl, 1 s per try). Prints a table (signal x phase ->
# seconds, the audit's exit status, whether the cut's table was left);
# exits 1 if any case took longer than the bound (30 s). Phases:
#   checks  2 s into the audit, during the read-only checks (no cut yet)
#   cut     2 s after the cut appeared in the kernel
#   return  as soon as the cut is lifted, while the audit waits for the
#           tunnel to carry traffic again
# Needs root, curl and nft (only to look at the namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
BOUND=30
cargo build --quiet --bin leakhound
lh="${CARGO_TARGET_DIR:-target}/debug/leakhound"
out=$(mktemp -d)
id=$("$lh" lab up | awk 'NR==1 {print $2}')
trap '"$lh" lab down "$id" >/dev/null; rm -rf "$out"' EXIT
gw="lh-$id-gw"
now() { date +%s.%N; }
cut_in_kernel() { ip netns exec "$gw" nft list set inet leakhound_audit_block cut 2>/dev/null | grep expires >/dev/null; }
table_there() { ip netns exec "$gw" nft list tables | grep leakhound_audit_block >/dev/null; }
traffic() { ip netns exec "$gw" curl -s -m 1 http://192.0.2.80/ | grep 203.0.113.77 >/dev/null; }

# The gateway carries traffic before each case.
wait_traffic() {
    local t0; t0=$(now)
    until traffic; do
        if (( $(echo "$(now) - $t0 > 120" | bc) )); then echo "no traffic before a case" >&2; exit 2; fi
    done
}

printf '%-8s %-7s %8s %6s %s\n' signal phase seconds status "table left"
worst=0
for sig in INT TERM KILL; do
    for phase in checks cut return; do
        wait_traffic
        "$lh" audit --netns "$gw" --profile docs/examples/audit/lab.toml --disruptive \
            --out "$out/$sig-$phase" >"$out/$sig-$phase.log" 2>&1 &
        pid=$!
        case $phase in
            checks) sleep 2 ;;
            cut) until cut_in_kernel; do sleep 0.05; done; sleep 2 ;;
            return) until cut_in_kernel; do sleep 0.05; done
                    while table_there; do sleep 0.02; done ;;
        esac
        kill -s "$sig" "$pid"
        t0=$(now)
        until traffic; do
            if (( $(echo "$(now) - $t0 > 60" | bc) )); then break; fi
        done
        secs=$(echo "$(now) - $t0" | bc)
        status=0; { wait "$pid"; } 2>/dev/null || status=$?
        left=no; table_there && left=yes
        printf '%-8s %-7s %8.1f %6s %s\n' "SIG$sig" "$phase" "$secs" "$status" "$left"
        if (( $(echo "$secs > $worst" | bc) )); then worst=$secs; fi
    done
done
echo "worst: $worst s (bound: $BOUND s)"
(( $(echo "$worst <= $BOUND" | bc) ))
