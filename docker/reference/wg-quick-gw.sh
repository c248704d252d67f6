#!/usr/bin/env bash
# A reference gateway built only from stock parts (Debian's wireguard-go,
# wireguard-tools, nftables and dnsmasq), reading the same Gluetun variables
# a Gluetun container gets: what a careful user's own wg-quick-style setup
# looks like. leakhound runs its suite against it to show that it catches
# leaks in gateways it did not write (`leakhound run --target command --
# docker/reference/wg-quick-gw.sh`).
#
#   wg-quick-gw.sh                     the correct one: an inet (IPv4+IPv6)
#                                      kill switch before anything else
#   wg-quick-gw.sh --no-killswitch     deliberately broken: no kill switch
#   wg-quick-gw.sh --ipv4-killswitch   deliberately broken: IPv4 only, IPv6
#                                      is left open
#   wg-quick-gw.sh --dns-hole          deliberately broken: DNS (port 53,
#                                      UDP and TCP) to anywhere is let out
#                                      around the tunnel
#   wg-quick-gw.sh --tcp-udp-killswitch  deliberately broken: the kill
#                                      switch drops only TCP and UDP; ICMP
#                                      and every other IP protocol go out
#   wg-quick-gw.sh --established-hole  deliberately broken: every
#                                      established connection goes on
#                                      around the tunnel (one opened before
#                                      the tunnel went down, or whose route
#                                      changed under it)
#   --late-killswitch SECONDS          deliberately broken: the kill switch
#                                      comes SECONDS after the start (what a
#                                      slow start looks like to dependents
#                                      that start with the gateway)
#   --userspace PROGRAM                the userspace WireGuard to run instead
#                                      of wireguard-go (started as
#                                      `PROGRAM -f IFACE`, configured by wg
#                                      through /var/run/wireguard/IFACE.sock;
#                                      `leakhound bench tunnel` passes the
#                                      gotatun yardstick this way)
#
# Variables read (Gluetun's names): WIREGUARD_PRIVATE_KEY,
# WIREGUARD_PUBLIC_KEY, WIREGUARD_PRESHARED_KEY, WIREGUARD_ADDRESSES (or
# WIREGUARD_ADDRESS), WIREGUARD_MTU, WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL,
# VPN_ENDPOINT_IP, VPN_ENDPOINT_PORT, VPN_INTERFACE, FIREWALL_OUTBOUND_SUBNETS,
# FIREWALL_INPUT_PORTS, FIREWALL_VPN_INPUT_PORTS, DNS_ADDRESS. Anything else
# (health server, control server, port forwarding, blocklists) it does not
# offer. SIGTERM stops it; its kill switch stays in the kernel, as Gluetun's
# does.
set -euo pipefail

mode=full
userspace=wireguard-go
late=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-killswitch) mode=none ;;
    --ipv4-killswitch) mode=ipv4 ;;
    --dns-hole) mode=dns-hole ;;
    --tcp-udp-killswitch) mode=tcp-udp ;;
    --established-hole) mode=established-hole ;;
    --late-killswitch)
      [ $# -ge 2 ] || { echo "wg-quick-gw: --late-killswitch needs seconds" >&2; exit 2; }
      late=$2; shift ;;
    --userspace)
      [ $# -ge 2 ] || { echo "wg-quick-gw: --userspace needs a program" >&2; exit 2; }
      userspace=$2; shift ;;
    *) echo "wg-quick-gw: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

fail() { echo "wg-quick-gw: $*" >&2; exit 2; }
for v in WIREGUARD_PRIVATE_KEY WIREGUARD_PUBLIC_KEY VPN_ENDPOINT_IP; do
  [ -n "${!v:-}" ] || fail "$v is required"
done
iface=${VPN_INTERFACE:-wg0}
addresses=${WIREGUARD_ADDRESSES:-${WIREGUARD_ADDRESS:-}}
[ -n "$addresses" ] || fail "WIREGUARD_ADDRESSES is required"
endpoint=$VPN_ENDPOINT_IP
port=${VPN_ENDPOINT_PORT:-51820}
mtu=${WIREGUARD_MTU:-1420}
outbound=${FIREWALL_OUTBOUND_SUBNETS:-}
input_ports=${FIREWALL_INPUT_PORTS:-}
vpn_input_ports=${FIREWALL_VPN_INPUT_PORTS:-}
dns=${DNS_ADDRESS:-}
keepalive=${WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL:-0}
keepalive=${keepalive%s}
fwmark=51820

# The underlay path to the endpoint, before the tunnel takes the default route.
route=$(ip -o route get "$endpoint")
underlay_dev=$(sed -n 's/.* dev \([^ ]*\).*/\1/p' <<<"$route")
underlay_via=$(sed -n 's/.* via \([^ ]*\).*/\1/p' <<<"$route")
[ -n "$underlay_dev" ] || fail "no route to $endpoint"
# The underlay's own subnet (Docker's network for a container): its peers
# may talk to the gateway, as Gluetun allows.
own_subnet=$(ip -o -4 route show dev "$underlay_dev" scope link proto kernel | awk '{print $1; exit}')

v4_outbound=() v6_outbound=()
IFS=, read -ra nets <<<"$outbound"
for n in "${nets[@]}"; do
  n=${n// /}
  [ -z "$n" ] && continue
  if [[ $n == *:* ]]; then v6_outbound+=("$n"); else v4_outbound+=("$n"); fi
done
join() { local IFS=,; echo "$*"; }

# 1. The kill switch, first: only loopback, the tunnel, WireGuard to the
# endpoint, the outbound subnets and neighbour discovery. The same rules
# again on the underlay's egress hook (netdev), which also sees frames
# written past the IP stack (AF_PACKET) that the output hook never does.
# A broken variant's hole is in both: --dns-hole's port 53, and
# --tcp-udp-killswitch's policy (accept, with only TCP and UDP dropped).
# --established-hole's blanket "ct state established accept" is in the
# output chain only, and it has no egress filter: nft has no conntrack
# state at the netdev hooks, and a wg-quick setup has none there either.
# The egress hook has no conntrack state to tell replies by: there,
# replies to FIREWALL_INPUT_PORTS go out only to the own and outbound
# subnets.
policy=drop
[ "$mode" = tcp-udp ] && policy=accept
holes() {
  [ "$mode" = established-hole ] && echo "    ct state established accept"
  if [ "$mode" = dns-hole ]; then
    echo "    udp dport 53 accept"
    echo "    tcp dport 53 accept"
  fi
}
closing() {
  [ "$mode" = tcp-udp ] && echo "    meta l4proto { tcp, udp } drop"
  true
}
egress() {
  {
    echo "table netdev refgw"
    echo "delete table netdev refgw"
    echo "table netdev refgw {"
    echo "  chain egress {"
    echo "    type filter hook egress device \"$underlay_dev\" priority 0; policy $policy;"
    echo "    ether type arp accept"
    echo "    meta mark $fwmark ip daddr $endpoint udp dport $port accept"
    echo "    udp dport { 1900, 5351 } drop"
    [ -n "$own_subnet" ] && echo "    ip daddr $own_subnet accept"
    [ ${#v4_outbound[@]} -gt 0 ] && echo "    ip daddr { $(join "${v4_outbound[@]}") } accept"
    [ ${#v6_outbound[@]} -gt 0 ] && echo "    ip6 daddr { $(join "${v6_outbound[@]}") } accept"
    echo "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } ip6 daddr { fe80::/10, ff02::/16 } accept"
    holes
    closing
    echo "  }"
    echo "}"
  } | nft -f -
}
killswitch() {
  local family=$1
  {
    echo "table $family refgw"
    echo "delete table $family refgw"
    echo "table $family refgw {"
    echo "  chain output {"
    echo "    type filter hook output priority 0; policy $policy;"
    echo "    oifname \"lo\" accept"
    echo "    oifname \"$iface\" accept"
    # Only the tunnel's own socket (its fwmark) may write to the endpoint:
    # any other process could send plaintext there (TunnelCrack ServerIP,
    # found by leakhound's fuzzer when this rule had no mark).
    echo "    meta mark $fwmark ip daddr $endpoint udp dport $port accept"
    # No port mapping requests to the home router (NAT-PMP/PCP, SSDP),
    # though it is on the own subnet (leakhound's fuzzer found them).
    echo "    udp dport { 1900, 5351 } drop"
    [ -n "$own_subnet" ] && echo "    ip daddr $own_subnet accept"
    # Replies to inbound connections on the input ports, and nothing else
    # established: a blanket "ct state established accept" here would let a
    # connection made through the tunnel out on the underlay once the routes
    # change (leakhound's ipv6-leak scenario caught exactly that).
    [ -n "$input_ports" ] && echo "    tcp sport { $input_ports } ct state established accept"
    [ ${#v4_outbound[@]} -gt 0 ] && echo "    ip daddr { $(join "${v4_outbound[@]}") } accept"
    if [ "$family" = inet ]; then
      [ ${#v6_outbound[@]} -gt 0 ] && echo "    ip6 daddr { $(join "${v6_outbound[@]}") } accept"
      # Neighbour discovery on the link only: to any address it is a way
      # out for a payload (leakhound's fuzzer found that).
      echo "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } ip6 daddr { fe80::/10, ff02::/16 } accept"
    fi
    holes
    closing
    echo "  }"
    echo "  chain input {"
    echo "    type filter hook input priority 0; policy drop;"
    echo "    iifname \"lo\" accept"
    echo "    ct state established,related accept"
    [ -n "$own_subnet" ] && echo "    ip saddr $own_subnet accept"
    [ -n "$input_ports" ] && echo "    tcp dport { $input_ports } accept"
    [ -n "$vpn_input_ports" ] && echo "    iifname \"$iface\" tcp dport { $vpn_input_ports } accept"
    if [ "$family" = inet ]; then
      echo "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept"
    fi
    echo "  }"
    echo "  chain forward {"
    echo "    type filter hook forward priority 0; policy drop;"
    echo "  }"
    echo "}"
  } | nft -f -
}
if [ "$late" != 0 ]; then
  echo "wg-quick-gw: the kill switch comes in $late s (deliberately broken)"
  sleep "$late"
fi
case "$mode" in
  full) killswitch inet; egress; echo "wg-quick-gw: kill switch (inet, and the underlay's egress) in place" ;;
  dns-hole) killswitch inet; egress; echo "wg-quick-gw: kill switch with a DNS hole (deliberately broken)" ;;
  tcp-udp) killswitch inet; egress; echo "wg-quick-gw: kill switch for TCP and UDP only (deliberately broken)" ;;
  established-hole) killswitch inet; echo "wg-quick-gw: kill switch that lets every established connection out (deliberately broken)" ;;
  ipv4) killswitch ip; echo "wg-quick-gw: kill switch (IPv4 only: deliberately broken)" ;;
  none) echo "wg-quick-gw: no kill switch (deliberately broken)" ;;
esac

stop() {
  echo "wg-quick-gw: stopping (the kill switch stays)"
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null || true
  wait || true
  exit 0
}
trap stop TERM INT

# 2. The tunnel: wireguard-go (or --userspace), configured with wg.
WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 "$userspace" -f "$iface" &
for _ in $(seq 1 200); do
  [ -S "/var/run/wireguard/$iface.sock" ] && break
  sleep 0.01
done
[ -S "/var/run/wireguard/$iface.sock" ] || fail "$userspace did not create its socket"
wg set "$iface" fwmark "$fwmark"
peer=(peer "$WIREGUARD_PUBLIC_KEY" endpoint "$endpoint:$port" allowed-ips 0.0.0.0/0,::/0)
[ "$keepalive" != 0 ] && peer+=(persistent-keepalive "$keepalive")
if [ -n "${WIREGUARD_PRESHARED_KEY:-}" ]; then
  wg set "$iface" private-key <(echo "$WIREGUARD_PRIVATE_KEY") "${peer[@]}" preshared-key <(echo "$WIREGUARD_PRESHARED_KEY")
else
  wg set "$iface" private-key <(echo "$WIREGUARD_PRIVATE_KEY") "${peer[@]}"
fi
has_v6=0
IFS=, read -ra addrs <<<"$addresses"
for a in "${addrs[@]}"; do
  a=${a// /}
  ip address add "$a" dev "$iface"
  [[ $a == *:* ]] && has_v6=1
done
ip link set "$iface" mtu "$mtu" up

# 3. Routes: the endpoint and the outbound subnets on the underlay,
# everything else into the tunnel.
via=()
[ -n "$underlay_via" ] && via=(via "$underlay_via")
ip route replace "$endpoint" "${via[@]}" dev "$underlay_dev"
for n in "${v4_outbound[@]}"; do
  # A subnet the underlay is on already has its (connected) route.
  [ -n "$(ip route show exact "$n")" ] && continue
  ip route replace "$n" "${via[@]}" dev "$underlay_dev"
done
ip route replace default dev "$iface"
[ "$has_v6" = 1 ] && ip -6 route replace default dev "$iface"
echo "wg-quick-gw: tunnel $iface up to $endpoint:$port"

# 4. DNS: dnsmasq on 127.0.0.1, asking DNS_ADDRESS through the tunnel.
if [ -n "$dns" ]; then
  dnsmasq --keep-in-foreground --no-resolv --no-hosts --server="$dns" \
    --listen-address=127.0.0.1 --bind-interfaces --user=root \
    --pid-file= --log-facility=- &
  # Only a resolv.conf of its own (a container's, or the one leakhound
  # mounts for a command target): run by hand on a host, this script must
  # not rewrite the host's.
  if grep -q ' /etc/resolv.conf ' /proc/self/mountinfo; then
    echo "nameserver 127.0.0.1" >/etc/resolv.conf
  else
    echo "wg-quick-gw: /etc/resolv.conf is not a mount of its own here: left as it is" >&2
  fi
  echo "wg-quick-gw: dnsmasq on 127.0.0.1 asks $dns"
fi

# Up until SIGTERM; a tunnel that dies stays dead (wg-quick does not
# restart it), closed by the kill switch.
while true; do
  sleep infinity &
  wait $! || true
done
