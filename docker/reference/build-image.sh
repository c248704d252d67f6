#!/usr/bin/env bash
# Builds the reference gateway as a container image with no registry: a
# minimal Debian root made with debootstrap from Debian's packages
# (wireguard-go, wireguard-tools, nftables, dnsmasq-base, iproute2, bash),
# docker-imported, with docker/reference/wg-quick-gw.sh as its entrypoint.
# This is how a user's own gateway image (a Gluetun build, say) is run by
# `leakhound run --target container --image ...`.
#
#   bash docker/reference/build-image.sh [TAG]   default: leakhound/reference-gateway:local
#
# Takes a few minutes (debootstrap); the root is cached in
# target/reference-root and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-leakhound/reference-gateway:local}
root=target/reference-root
command -v debootstrap >/dev/null 2>&1 || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
if [ ! -x "$root/usr/bin/wireguard-go" ]; then
  rm -rf "$root"
  mkdir -p "$root"
  debootstrap --variant=minbase \
    --include=wireguard-go,wireguard-tools,nftables,dnsmasq-base,iproute2,procps \
    bookworm "$root" http://deb.debian.org/debian >/dev/null
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
fi
install -m 0755 docker/reference/wg-quick-gw.sh "$root/usr/local/bin/wg-quick-gw"
tar -C "$root" -c . | docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/wg-quick-gw"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
docker image inspect "$tag" --format "$tag: {{.Size}} bytes"
