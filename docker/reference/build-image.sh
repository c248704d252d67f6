#!/usr/bin/env bash
# Builds the reference gateway as a container image with no registry: a
# minimal Debian root made with debootstrap from Debian's packages
# (wireguard-go, wireguard-tools, nftables, iptables, dnsmasq-base, iproute2, bash),
# docker-imported, with docker/reference/wg-quick-gw.sh as its entrypoint.
# This is how a user's own gateway image (a Gluetun build, say) is run by
# `leakhound run --target container --image ...`.
#
#   bash docker/reference/build-image.sh [TAG]   default: leakhound/reference-gateway:local
#   bash docker/reference/build-image.sh --gluetun-faithful [TAG]
#                                   the Gluetun-faithful reference
#                                   (gluetun-faithful-gw.sh; default tag
#                                   leakhound/gluetun-faithful:local)
#
# Takes a few minutes (debootstrap); the root is cached in
# target/reference-root and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
script=wg-quick-gw.sh
tag=leakhound/reference-gateway:local
if [ "${1:-}" = --gluetun-faithful ]; then
  script=gluetun-faithful-gw.sh
  tag=leakhound/gluetun-faithful:local
  shift
fi
tag=${1:-$tag}
root=target/reference-root
command -v debootstrap >/dev/null 2>&1 || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
if [ ! -x "$root/usr/bin/wireguard-go" ] || [ ! -x "$root/usr/sbin/iptables-nft" ]; then
  rm -rf "$root"
  mkdir -p "$root"
  debootstrap --variant=minbase \
    --include=wireguard-go,wireguard-tools,nftables,iptables,dnsmasq-base,iproute2,procps \
    bookworm "$root" http://deb.debian.org/debian >/dev/null
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
fi
install -m 0755 "docker/reference/$script" "$root/usr/local/bin/${script%.sh}"
tar -C "$root" -c . | docker import \
  --change "ENTRYPOINT [\"/usr/local/bin/${script%.sh}\"]" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
docker image inspect "$tag" --format "$tag: {{.Size}} bytes"
