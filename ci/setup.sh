#!/usr/bin/env bash
# Installs the system packages leakhound needs on a fresh Debian machine:
#   nftables       the lab's NAT (home router masquerade, provider SNAT)
#   libxml2-utils  xmllint, to validate JUnit reports against Jenkins' schema
#   tcpdump        to read the pcap files (the tests check they open)
#   knot-dnsutils  kdig, an independent DNS/DoT client the scenarios also use
#   curl           an independent DoH client (--doh-url) the scenarios also use
#   wireguard-go, wireguard-tools, dnsmasq-base
#                  the reference gateway built from stock parts
#                  (docker/reference/), which the tests run as a command target;
#                  wireguard-go is also the lab's second provider
#                  (`--provider wireguard-go`, tests/interop.rs)
#   stress-ng      the CPU hog of ci/repeat-suite.sh --hog
#   qbittorrent-nox, nzbget
#                  the real qBittorrent and NZBGet, the dependents on 8080
#                  and 6789 (`run --dependents real`, the default where
#                  installed); no daemon is started in the host's namespace
#                  while installing (policy-rc.d)
#   opentracker, aria2
#                  the lab's BitTorrent swarm on its internet: a tracker and
#                  a seeding peer (the torrent scenarios)
#   chromium       Byparr's stand-in, a headless browser in the gateway's
#                  namespace (the browser-leaks scenario)
#   python3-junitparser
#                  an independent JUnit reader the tests compare counts with
#   yamllint       checks the CI templates in ci/ (a test)
#   prometheus     for promtool, which checks the --prometheus metrics in a
#                  test (its daemon is not started: policy-rc.d)
# With --bench, also the benchmarks' yardsticks:
#   unbound        the resolver `leakhound bench dns` measures beside ours
#   iperf3         the load of `leakhound bench tunnel`
#   target/release/leakhound-gotatun
#                  gotatun (Mullvad's boringtun fork, crates.io) as the second
#                  tunnel yardstick, built by cargo (crates/yardstick-gotatun)
# Idempotent and quiet when everything is already there. Needs root.
set -euo pipefail
need=()
if [ "${1:-}" = "--bench" ]; then
  command -v unbound >/dev/null 2>&1 || need+=(unbound)
  command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
fi
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v kdig >/dev/null 2>&1 || need+=(knot-dnsutils)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v wireguard-go >/dev/null 2>&1 || need+=(wireguard-go)
command -v wg >/dev/null 2>&1 || need+=(wireguard-tools)
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v stress-ng >/dev/null 2>&1 || need+=(stress-ng)
command -v qbittorrent-nox >/dev/null 2>&1 || need+=(qbittorrent-nox)
command -v nzbget >/dev/null 2>&1 || need+=(nzbget)
command -v opentracker >/dev/null 2>&1 || need+=(opentracker)
command -v aria2c >/dev/null 2>&1 || need+=(aria2)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v yamllint >/dev/null 2>&1 || need+=(yamllint)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -d /usr/lib/python3/dist-packages/junitparser ] || need+=(python3-junitparser)
if [ ${#need[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No package may start a daemon in the host's namespace while installing.
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  [ -e "$policy" ] && had_policy=1
  if [ $had_policy = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "${1:-}" = "--bench" ]; then
  cd "$(dirname "$0")/.."
  cargo build --release --quiet -p leakhound-gotatun
fi
