#!/usr/bin/env bash
# Installs the system packages leakhound uses, on Debian 12/13 or Ubuntu
# 22.04/24.04, as root. Idempotent, and quiet when everything is there.
#
#   bash ci/setup.sh            everything: the main job's needs and the tests'
#   bash ci/setup.sh --main     only what `leakhound run` needs
#   bash ci/setup.sh --bench    everything, plus the benchmarks' yardsticks
#   bash ci/setup.sh --dry-run  say what would be installed and skipped
#
# It never aborts on an optional package the archive lacks: it names it and
# goes on, and the scenarios that need it are skipped with the reason when
# leakhound runs. Only a missing *required* package (nftables, iproute2,
# gcc) fails it. A package it installs that ships a daemon (prometheus,
# unbound, opentracker...) gets it disabled: nothing of leakhound's may run
# in the host's own namespace, now or after a reboot.
#
# Each row of the table: group, the command that shows it is installed, the
# package(s), and what it is for. Groups: main (the main job needs it),
# main? (the main job uses it if present: scenarios needing it are skipped
# without it), tests (only the tests), bench (only --bench).
#
# Simulation, for the tests of this script (nothing is installed then):
#   SETUP_OS=ubuntu-24.04     the distribution to plan for (default: /etc/os-release)
#   SETUP_AVAILABLE="a b c"   the packages the archive has (default: apt-cache)
#   SETUP_INSTALLED="x y"     the commands already installed (default: command -v)
set -uo pipefail

table() {
  cat <<'EOF'
main   nft              nftables          the lab's NAT and forwarding rules (the gateway itself speaks netlink)
main   ss               iproute2          ip and ss: the lab's hosts and their sockets (missing from a minimal Debian root)
main   cc               gcc               the C compiler and linker driver rustc and ring's build need (missing from a minimal Debian root)
main?  kdig             knot-dnsutils     an independent DNS/DoT client beside leakhound's own
main?  curl             curl,ca-certificates  an independent DoH client
main?  wget             wget              the HTTP client of the scenarios' port-forwarding UP commands, as Gluetun's wiki writes them
main?  qbittorrent-nox  qbittorrent-nox   the real qBittorrent as a dependent (else a stand-in)
main?  nzbget           nzbget            the real NZBGet as a dependent (else a stand-in)
main?  opentracker      opentracker       the lab's BitTorrent tracker (torrent scenarios)
main?  aria2c           aria2             the lab's seeding peer (torrent scenarios)
main?  chromium         chromium          Byparr's stand-in, a headless browser (browser-leaks)
main?  conntrack        conntrack         builds the connection a prove witness in conntrack state established needs (else it stays model-only)
tests  xmllint          libxml2-utils     validates JUnit against Jenkins' schema
tests  tcpdump          tcpdump           reads the pcap files back
tests  wireguard-go     wireguard-go      the reference gateway and the second provider
tests  wg               wireguard-tools   the reference gateway's configuration
tests  dnsmasq          dnsmasq-base      the reference gateway's resolver
tests  stress-ng        stress-ng         the CPU hog of ci/repeat-suite.sh --hog
tests  promtool         prometheus        checks the Prometheus metrics (daemon not started)
tests  yamllint         yamllint          checks the CI templates
tests  systemd-analyze  systemd           checks the systemd templates
tests  py:junitparser   python3-junitparser  an independent JUnit reader
tests  py:jsonschema    python3-jsonschema   validates summary.json and the JSON Lines against docs/schemas
bench  unbound          unbound           the resolver `bench dns` measures beside ours
bench  iperf3           iperf3            the load of `bench tunnel`
EOF
}

mode=all
case "${1:-}" in
  --main) mode=main ;;
  --bench) mode=bench ;;
  --dry-run) mode=dry ;;
  "") ;;
  *) echo "ci/setup.sh: unknown option $1 (--main, --bench or --dry-run)" >&2; exit 2 ;;
esac

os="${SETUP_OS:-}"
if [ -z "$os" ] && [ -r /etc/os-release ]; then
  os=$(. /etc/os-release; echo "${ID:-unknown}-${VERSION_ID:-}")
fi

installed() {
  local cmd=$1
  if [ -n "${SETUP_INSTALLED+x}" ]; then
    [[ " $SETUP_INSTALLED " == *" $cmd "* ]]
    return
  fi
  case "$cmd" in
    py:*) [ -d "/usr/lib/python3/dist-packages/${cmd#py:}" ] ;;
    chromium) command -v chromium || command -v chromium-browser || command -v google-chrome-stable || command -v google-chrome ;;
    *) command -v "$cmd" ;;
  esac >/dev/null 2>&1
}

updated=0
available() {
  local pkg=$1
  if [ -n "${SETUP_AVAILABLE+x}" ]; then
    [[ " $SETUP_AVAILABLE " == *" $pkg "* ]]
    return
  fi
  if [ $updated = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    updated=1
  fi
  # Not `| grep -q`: under pipefail, grep's early exit can kill apt-cache
  # with SIGPIPE and make an available package look missing (seen in a
  # Debian 13 root).
  local policy
  policy=$(apt-cache policy "$pkg" 2>/dev/null)
  [[ "$policy" == *"Candidate: "[!\(]* ]]
}

# Why a package is not to be installed on this distribution, if it is not.
unfit_here() {
  case "$os:$1" in
    ubuntu-*:chromium)
      echo "Ubuntu's chromium is a snap, which does not run in the lab's mount namespaces; install Google Chrome (google-chrome-stable) or a chromium .deb by hand, and leakhound finds it" ;;
  esac
}

want=()
skipped=()
failed=()
while read -r group cmd pkgs why; do
  [ -z "$group" ] && continue
  case "$mode:$group" in
    main:main|main:main\?) ;;
    main:*) continue ;;
    all:bench|dry:bench) continue ;;
  esac
  installed "$cmd" && continue
  IFS=, read -r -a list <<<"$pkgs"
  missing=""
  for p in "${list[@]}"; do
    reason=$(unfit_here "$p")
    if [ -n "$reason" ]; then missing="$p ($why): $reason"; break; fi
    available "$p" || { missing="$p ($why): not in this system's package archive"; break; }
  done
  if [ -n "$missing" ]; then
    if [ "$group" = main ]; then
      failed+=("$missing")
    else
      skipped+=("$missing")
    fi
    continue
  fi
  want+=("${list[@]}")
done < <(table)

for s in "${skipped[@]}"; do echo "ci/setup.sh: skipped $s"; done
if [ ${#failed[@]} -gt 0 ]; then
  for f in "${failed[@]}"; do echo "ci/setup.sh: cannot install $f" >&2; done
  exit 1
fi
if [ ${#want[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${want[*]}"
  if [ "$mode" = dry ] || [ -n "${SETUP_AVAILABLE+x}" ]; then
    exit 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "ci/setup.sh: installing packages needs root: run it as root (sudo bash ci/setup.sh)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # No package may start a daemon in the host's namespace while installing.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  if ! apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; then
    # One at a time, so that one broken package costs only itself.
    for p in "${want[@]}"; do
      apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
        || echo "ci/setup.sh: skipped $p: apt-get could not install it"
    done
    command -v nft >/dev/null 2>&1 || { echo "ci/setup.sh: nftables is required" >&2; exit 1; }
  fi
  # The daemons of what it installed stay off (policy-rc.d kept them from
  # starting; this keeps them from starting at the next boot). Only this
  # run's packages: a daemon the machine had before is not leakhound's.
  for p in "${want[@]}"; do
    [ "$p" = systemd ] && continue
    dpkg -L "$p" 2>/dev/null \
      | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.(service|socket|timer)$' \
      | while read -r unit; do
          u=${unit##*/}
          # systemctl works without a running systemd; deb-systemd-helper
          # (what the package's own script enabled it with) only as dpkg's.
          if systemctl disable "$u" >/dev/null 2>&1 \
            || DPKG_MAINTSCRIPT_PACKAGE=$p deb-systemd-helper disable "$u" >/dev/null 2>&1; then
            echo "ci/setup.sh: disabled $u (installed for leakhound's tests, not to run on the host)"
          fi
        done
  done
fi
if [ "$mode" = bench ]; then
  cd "$(dirname "$0")/.." || exit 1
  cargo build --release --quiet -p leakhound-gotatun || exit 1
fi
exit 0
