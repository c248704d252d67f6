#!/usr/bin/env bash
# Builds the gateway image (docker/Dockerfile) on a machine with a Docker
# engine and no registry: a static gateway binary (it applies its kill
# switch over netlink itself, no `nft` needed) and busybox for a shell, in a
# FROM-scratch image.
#
#   bash docker/build.sh [--from BINARY] [TAG]
#                                  default tag: leakhound/gateway:local
#   bash docker/build.sh --audit [--from BINARY] [TAG]
#                                  the audit image (leakhound itself, for
#                                  `leakhound audit` as a sidecar),
#                                  default tag: leakhound/leakhound:local
#   bash docker/build.sh --audit-prove [--from BINARY] [TAG]
#                                  the audit image with Debian's nft, ip
#                                  and conntrack and their libraries
#                                  beside leakhound, for `audit --prove`
#                                  (which reads the ruleset with nft),
#                                  default tag: leakhound/leakhound:prove
#
# --from BINARY packs an already built, dynamically linked binary that
# answers `gateway`, `gateway healthcheck` and `hold` (e.g. the test build's
# target/debug/leakhound) with the libraries it loads, instead of building
# the static gateway: quicker, for tests.
#
# Prints the image's size. Needs: a Rust toolchain, docker, and
# busybox-static for the gateway image, nftables, iproute2 and conntrack
# for the prove image (each installed here if missing, from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
audit=0
tools=0
case "${1:-}" in
  --audit) audit=1; shift ;;
  --audit-prove) audit=1; tools=1; shift ;;
esac
from=
if [ "${1:-}" = "--from" ]; then
  from=$2
  shift 2
fi
if [ $tools = 1 ]; then
  tag=${1:-leakhound/leakhound:prove}
elif [ $audit = 1 ]; then
  tag=${1:-leakhound/leakhound:local}
else
  tag=${1:-leakhound/gateway:local}
fi
need=()
# busybox is the gateway image's shell; the audit images have none.
[ $audit = 1 ] || [ -x /bin/busybox ] || need+=(busybox-static)
if [ $tools = 1 ]; then
  command -v nft >/dev/null || need+=(nftables)
  command -v ip >/dev/null || need+=(iproute2)
  command -v conntrack >/dev/null || need+=(conntrack)
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
ctx=target/docker-context-${tag//[^a-zA-Z0-9]/_}
rm -rf "$ctx"
copy_libs() {
  for lib in $(ldd "$1" | awk '/=>/ {print $3} /^[[:space:]]*\// {print $1}'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
}
if [ $audit = 1 ]; then
  # leakhound itself, static, and nothing else: the audit reads the live
  # ruleset and cuts a tunnel over netlink, so no nft (and no GPL tool) is
  # needed; no shell either.
  mkdir -p "$ctx/rootfs/tmp" "$ctx/rootfs/etc" "$ctx/rootfs/run" "$ctx/rootfs/var/lib/leakhound" \
    "$ctx/rootfs/usr/share/doc/leakhound"
  if [ -n "$from" ]; then
    objcopy --strip-debug "$from" "$ctx/rootfs/leakhound"
    copy_libs "$from"
  else
    RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release --quiet -p leakhound --bin leakhound --target x86_64-unknown-linux-gnu
    cp target/x86_64-unknown-linux-gnu/release/leakhound "$ctx/rootfs/leakhound"
  fi
  cp LICENSE LICENSE-MIT LICENSE-APACHE "$ctx/rootfs/usr/share/doc/leakhound/"
  if [ $tools = 1 ]; then
    # Separate programs leakhound runs (never links): nft (nftables,
    # GPL-2.0) and its xtables extensions, which name iptables-nft's
    # matches; ip (iproute2, GPL-2.0); conntrack (conntrack-tools,
    # GPL-2.0), which builds an established witness's connection. Each
    # Debian package's copyright notice goes in, and which source package
    # it was built from (docker/README.md says how to get that source).
    mkdir -p "$ctx/rootfs/usr/sbin"
    files=()
    for prog in nft ip conntrack; do
      bin=$(readlink -f "$(command -v "$prog")")
      cp "$bin" "$ctx/rootfs/usr/sbin/$prog"
      copy_libs "$bin"
      files+=("$bin" $(ldd "$bin" | awk '/=>/ {print $3}'))
    done
    xt=$(dirname "$(readlink -f "$(ldd "$(command -v nft)" | awk '/libxtables/ {print $3}')")")/xtables
    if [ -d "$xt" ]; then
      mkdir -p "$ctx/rootfs$xt"
      cp -L "$xt"/*.so "$ctx/rootfs$xt/"
      for so in "$xt"/*.so; do copy_libs "$so"; done
      files+=("$xt")
    fi
    # dpkg knows a file by the path its package ships (/bin or /usr/bin
    # on a merged /usr): each is asked for.
    for f in "${files[@]}"; do
      r=$(readlink -f "$f")
      { dpkg -S "$r" || dpkg -S "${r#/usr}"; } 2>/dev/null | head -n1 | cut -d: -f1 || true
    done | sort -u | while read -r pkg; do
      [ -n "$pkg" ] || continue
      mkdir -p "$ctx/rootfs/usr/share/doc/$pkg"
      cp "/usr/share/doc/$pkg/copyright" "$ctx/rootfs/usr/share/doc/$pkg/copyright"
      dpkg-query -W -f='${Package} ${Version}, built from the Debian source package ${source:Package} ${source:Version}\n' "$pkg" \
        >"$ctx/rootfs/usr/share/doc/$pkg/SOURCE"
    done
  fi
  touch "$ctx/rootfs/etc/resolv.conf"
  chmod 1777 "$ctx/rootfs/tmp"
  cp docker/Dockerfile.audit "$ctx/Dockerfile"
  docker build --quiet -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.err" || { cat "$ctx/build.err" >&2; exit 1; }
  docker image inspect "$tag" --format "$tag: {{.Size}} bytes"
  exit 0
fi
mkdir -p "$ctx/rootfs/usr/sbin" "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc" "$ctx/rootfs/run" \
  "$ctx/rootfs/etc/leakhound/blocklists" "$ctx/rootfs/usr/share/doc/busybox" "$ctx/rootfs/usr/share/doc/leakhound"
if [ -n "$from" ]; then
  objcopy --strip-debug "$from" "$ctx/rootfs/leakhound-gateway"
  copy_libs "$from"
else
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --quiet -p leakhound-gateway --target x86_64-unknown-linux-gnu
  cp target/x86_64-unknown-linux-gnu/release/leakhound-gateway "$ctx/rootfs/leakhound-gateway"
fi
# Every file the gateway reads by default: the blocklists of
# BLOCK_MALICIOUS, BLOCK_SURVEILLANCE and BLOCK_ADS (DNS_BLOCKLIST_DIR's
# default); tests/it/container.rs checks that the image holds them.
cp scenarios/blocklists/*.txt "$ctx/rootfs/etc/leakhound/blocklists/"
cp LICENSE LICENSE-MIT LICENSE-APACHE "$ctx/rootfs/usr/share/doc/leakhound/"
# busybox (GPL-2.0) for a shell: its copyright notice and the Debian
# source package it was built from go into the image (docker/README.md says
# how to get that source).
cp /bin/busybox "$ctx/rootfs/bin/busybox"
ln -s busybox "$ctx/rootfs/bin/sh"
cp /usr/share/doc/busybox-static/copyright "$ctx/rootfs/usr/share/doc/busybox/copyright"
dpkg-query -W -f='busybox-static ${Version}, built from the Debian source package ${source:Package} ${source:Version}\n' busybox-static \
  >"$ctx/rootfs/usr/share/doc/busybox/SOURCE"
touch "$ctx/rootfs/etc/resolv.conf"
chmod 1777 "$ctx/rootfs/tmp"
cp docker/Dockerfile "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.err" || { cat "$ctx/build.err" >&2; exit 1; }
docker image inspect "$tag" --format "$tag: {{.Size}} bytes"
