#!/usr/bin/env bash
# A reference gateway that rebuilds Gluetun's own firewall and routing, as
# Gluetun (qdm12/gluetun at b1193252, 2026) sets them up for a WireGuard
# custom provider, from stock parts: iptables and ip6tables (the nf_tables
# backend, as in Gluetun's image), iproute2, wireguard-go and wg, dnsmasq.
# Rebuilt from reading Gluetun's source (internal/firewall, internal/routing,
# internal/wireguard, cmd/gluetun/main.go), in the order Gluetun runs it; no
# code is copied. leakhound runs its suite against it to show which of
# Gluetun's known leaks it reproduces (docs/gluetun-findings.md):
#
#   leakhound compare --target builtin --target command -- docker/reference/gluetun-faithful-gw.sh
#
# What Gluetun does, step by step, and what this script does for it:
#
#  1. Finds the default routes of the main table (interface, gateway, the
#     interface's first address of that family) and the "local networks":
#     main-table routes without a gateway on Ethernet links (here
#     172.21.0.0/16, 2001:db8:21::/64 and fe80::/64 on eth0).
#  2. The firewall (internal/firewall/enable.go), before anything else:
#     policy DROP on INPUT, OUTPUT and FORWARD, IPv4 and IPv6; then appended
#     in this order: lo in and out; ESTABLISHED,RELATED in and out (for any
#     interface: Gluetun issue #2621); output from the interface's address
#     to each local network; IPv6 multicast ff02::1:ff00:0/104 out of each
#     local interface; input to each local network from any source.
#  3. (Gluetun flushes conntrack here; this script has no conntrack tool:
#     leakhound gives each scenario a fresh namespace state anyway.)
#  4. Routing: `from <eth0's address> lookup 200` (priority 100), table 200
#     holding the default route via the home router, so answers to inbound
#     connections leave on eth0.
#  5. FIREWALL_OUTBOUND_SUBNETS: output from eth0's address to each subnet
#     (no check that the subnet is private: TunnelCrack LocalNet), a route
#     in table 199 and `to <subnet> lookup 199` (priority 99).
#  6. `to <local network> lookup main` (priority 98).
#  7. FIREWALL_INPUT_PORTS: TCP and UDP input on eth0 to each port, from any
#     source (Gluetun issue #2772).
#  8. The VPN connection: output on eth0 to the endpoint's address, UDP, its
#     port, for any process (no mark: TunnelCrack ServerIP); output on the
#     tunnel interface.
#  9. WireGuard: the interface, its addresses (IPv6 ones only where IPv6 is
#     supported: any IPv6 route not to loopback), the peer with fwmark
#     51820, up; WIREGUARD_ALLOWED_IPS routed in table 51820; `not fwmark
#     51820 lookup 51820` (priority 101), IPv6 (where supported) and IPv4.
#     MTU: WIREGUARD_MTU, else 1320 (Gluetun's start value; its path-MTU
#     discovery after the tunnel is up is not rebuilt).
# 10. Tunnel up: FIREWALL_VPN_INPUT_PORTS, TCP and UDP input on the tunnel.
#
# Not rebuilt either: the probe of which iptables binary works, the
# conntrack flush, the IPv6 check's dial to public addresses, the user's
# post-rules file, kernel WireGuard (wireguard-go is used).
# Then DNS (Gluetun's own server stands on 127.0.0.1:53; here dnsmasq, asking
# the plain upstreams), and nothing else of Gluetun's (no health or control server,
# no port forwarding, no restart when the tunnel dies: leakhound's "tunnel
# down" deletes the tunnel's link, as Gluetun's own stop does). SIGTERM stops
# it; the firewall stays.
set -euo pipefail
trap 'echo "gluetun-faithful: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

fail() { echo "gluetun-faithful: $*" >&2; exit 2; }
# The items of a comma- or space-separated list, one per line.
items() { local IFS=', '; read -ra out <<<"$1"; for x in "${out[@]}"; do [ -n "$x" ] && echo "$x"; done; return 0; }
[ $# -eq 0 ] || fail "takes no options (got $1)"
# A custom provider needs the endpoint's port too (Gluetun refuses without).
for v in WIREGUARD_PRIVATE_KEY WIREGUARD_PUBLIC_KEY VPN_ENDPOINT_IP VPN_ENDPOINT_PORT; do
  [ -n "${!v:-}" ] || fail "$v is required"
done
iface=${VPN_INTERFACE:-wg0}
addresses=${WIREGUARD_ADDRESSES:-${WIREGUARD_ADDRESS:-}}
[ -n "$addresses" ] || fail "WIREGUARD_ADDRESSES is required"
endpoint=$VPN_ENDPOINT_IP
port=$VPN_ENDPOINT_PORT
# Gluetun starts at 1320 and, with WIREGUARD_MTU unset, runs path-MTU
# discovery once the tunnel is up; that is not rebuilt: 1320 stays.
mtu=${WIREGUARD_MTU:-1320}
[ "$mtu" = 0 ] && mtu=1320
keepalive=${WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL:-0}
keepalive=${keepalive%s}
# DNS (master's names): DNS_UPSTREAM_PLAIN_ADDRESSES (IP:PORT list), and
# the retired DNS_ADDRESS appended as ADDRESS:53 (127.0.0.1 ignored).
mapfile -t dns_servers < <(items "${DNS_UPSTREAM_PLAIN_ADDRESSES:-}")
if [ -n "${DNS_ADDRESS:-}" ] && [ "${DNS_ADDRESS}" != 127.0.0.1 ]; then
  dns_servers+=("$DNS_ADDRESS:53")
fi
dns_type=${DNS_UPSTREAM_RESOLVER_TYPE:-dot}
[ ${#dns_servers[@]} -gt 0 ] && [ -n "${DNS_ADDRESS:-}" ] && dns_type=plain
fwmark=51820
mapfile -t outbound < <(items "${FIREWALL_OUTBOUND_SUBNETS:-}")
mapfile -t input_ports < <(items "${FIREWALL_INPUT_PORTS:-}")
mapfile -t vpn_input_ports < <(items "${FIREWALL_VPN_INPUT_PORTS:-}")
mapfile -t allowed_ips < <(items "${WIREGUARD_ALLOWED_IPS:-0.0.0.0/0,::/0}")
is6() { [[ $1 == *:* ]]; }
v4() { iptables -w "$@"; }
v6() { ip6tables -w "$@"; }
both() { v4 "$@"; v6 "$@"; }

# 1. Default routes (family, interface, gateway, assigned address) and local
# networks (subnet, interface, assigned address), from the main table.
first_addr() { ip -o "-$1" addr show dev "$2" | awk '{split($4, a, "/"); print a[1]; exit}'; }
default_routes=() # "family iface gateway address"
for fam in 4 6; do
  while read -r line; do
    dev=$(sed -n 's/.* dev \([^ ]*\).*/\1/p' <<<"$line")
    gw=$(sed -n 's/.* via \([^ ]*\).*/\1/p' <<<"$line")
    [ -n "$dev" ] || continue
    # The assigned address's family is the gateway's (IPv6 without one).
    afam=6
    [[ -n $gw && $gw != *:* ]] && afam=4
    a=$(first_addr "$afam" "$dev")
    [ -n "$a" ] || fail "getting assigned IP of $dev: no IPv$fam address"
    default_routes+=("$fam $dev ${gw:--} $a")
  done < <(ip "-$fam" route show table main default)
done
[ ${#default_routes[@]} -gt 0 ] || fail "default route not found"
local_networks=() # "family subnet iface address"
for fam in 4 6; do
  while read -r dst rest; do
    [ "$dst" = default ] && continue
    [[ $rest == *" via "* || $rest == "via "* ]] && continue
    dev=$(sed -n 's/.*dev \([^ ]*\).*/\1/p' <<<" $rest")
    # Ethernet links only (ARPHRD_ETHER: veth, a container's eth0).
    [ "$(cat "/sys/class/net/$dev/type" 2>/dev/null)" = 1 ] || continue
    a=$(first_addr "$fam" "$dev")
    [ -n "$a" ] || fail "IP address not found for interface $dev (IPv$fam)"
    local_networks+=("$fam $dst $dev $a")
  done < <(ip "-$fam" route show table main)
done
[ ${#local_networks[@]} -gt 0 ] || fail "local subnet not found"
# IPv6 counts as supported when any IPv6 route exists that is not to
# loopback (Gluetun's internal/netlink/ipv6.go; its extra dial to public
# check addresses for a default route is not made: the lab's traffic stays
# in the lab, and a failed dial counts as supported anyway).
has_v6=0
if ip -6 route show table all | awk '$1 != "::1" && !($1 == "local" && $2 == "::1")' | grep . >/dev/null; then
  has_v6=1
fi

# 2. The firewall, in Gluetun's order.
for t in v4 v6; do
  $t --policy INPUT DROP
  $t --policy OUTPUT DROP
  $t --policy FORWARD DROP
done
both --append INPUT -i lo -j ACCEPT
both --append OUTPUT -o lo -j ACCEPT
both --append OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
both --append INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
seen_ifaces=" "
for n in "${local_networks[@]}"; do
  read -r fam dst dev a <<<"$n"
  if [ "$fam" = 4 ]; then t=v4; else t=v6; fi
  $t --append OUTPUT -o "$dev" -s "$a" -d "$dst" -j ACCEPT
  if [[ $seen_ifaces != *" $dev "* ]]; then
    seen_ifaces+="$dev "
    v6 --append OUTPUT -o "$dev" -d ff02::1:ff00:0/104 -j ACCEPT
  fi
done
for n in "${local_networks[@]}"; do
  read -r fam dst dev _ <<<"$n"
  if [ "$fam" = 4 ]; then t=v4; else t=v6; fi
  $t --append INPUT -i "$dev" -d "$dst" -j ACCEPT
done
echo "gluetun-faithful: firewall enabled (Gluetun's rules, iptables $(iptables -V | awk '{print $2, $3}'))"

# Gluetun's shutdown, in its order: the VPN's cleanups (the VPN input
# ports' rules; rule 101, IPv6 and IPv4; the link down, then deleted), its
# DNS, then the routing teardown (table 200's routes, then rule 100; table
# 199's, then rule 99). The local-network rules (98) and the firewall stay.
dnsmasq_pid=
stop() {
  echo "gluetun-faithful: stopping (the firewall stays)"
  for p in "${vpn_input_ports[@]}"; do
    both --delete INPUT -i "$iface" -p tcp -m tcp --dport "$p" -j ACCEPT 2>/dev/null || true
    both --delete INPUT -i "$iface" -p udp -m udp --dport "$p" -j ACCEPT 2>/dev/null || true
  done
  ip -6 rule del not fwmark "$fwmark" lookup "$fwmark" pref 101 2>/dev/null || true
  ip -4 rule del not fwmark "$fwmark" lookup "$fwmark" pref 101 2>/dev/null || true
  ip link set "$iface" down 2>/dev/null || true
  ip link del "$iface" 2>/dev/null || true
  if [ -n "$dnsmasq_pid" ]; then kill "$dnsmasq_pid" 2>/dev/null || true; fi
  for r in "${default_routes[@]}"; do
    read -r fam _ _ _ <<<"$r"
    ip "-$fam" route flush table 200 2>/dev/null || true
  done
  for r in "${default_routes[@]}"; do
    read -r fam _ _ a <<<"$r"
    ip "-$fam" rule del from "$a" lookup 200 pref 100 2>/dev/null || true
  done
  for s in "${outbound[@]}"; do
    sfam=4; is6 "$s" && sfam=6
    ip "-$sfam" route flush table 199 2>/dev/null || true
    ip "-$sfam" rule del to "$s" lookup 199 pref 99 2>/dev/null || true
  done
  # shellcheck disable=SC2046
  kill $(jobs -p) 2>/dev/null || true
  wait || true
  exit 0
}
trap stop TERM INT

# A rule is added only when no identical one exists (Gluetun lists the
# rules first for its routing rules; its WireGuard rule it adds blindly).
add_rule() {
  local fam=$1; shift
  local pref=$1; shift
  local want
  want="$pref:	$*"
  # (no grep -q: with pipefail, ip killed by SIGPIPE would read as "absent")
  if ip "-$fam" rule show | grep -xF -- "$want" >/dev/null; then return 0; fi
  ip "-$fam" rule add "$@" pref "$pref" || fail "ip -$fam rule add $* pref $pref failed"
}

# 4. Inbound routing: answers from eth0's address leave on eth0 (every
# rule, then every route).
for r in "${default_routes[@]}"; do
  read -r fam _ _ a <<<"$r"
  add_rule "$fam" 100 from "$a" lookup 200
done
for r in "${default_routes[@]}"; do
  read -r fam dev gw _ <<<"$r"
  via=(); [ "$gw" != - ] && via=(via "$gw")
  ip "-$fam" route replace default "${via[@]}" dev "$dev" table 200
done

# 5. Outbound subnets: firewall, then routes and rules.
for s in "${outbound[@]}"; do
  sfam=4; is6 "$s" && sfam=6
  for r in "${default_routes[@]}"; do
    read -r fam dev gw a <<<"$r"
    [ "$fam" = "$sfam" ] || continue
    if [ "$fam" = 4 ]; then t=v4; else t=v6; fi
    $t --append OUTPUT -o "$dev" -s "$a" -d "$s" -j ACCEPT
  done
done
for s in "${outbound[@]}"; do
  sfam=4; is6 "$s" && sfam=6
  added=0
  for r in "${default_routes[@]}"; do
    read -r fam dev gw a <<<"$r"
    [ "$fam" = "$sfam" ] || continue
    via=(); [ "$gw" != - ] && via=(via "$gw")
    ip "-$fam" route replace "$s" "${via[@]}" dev "$dev" table 199
    added=1
  done
  if [ "$added" = 1 ]; then add_rule "$sfam" 99 from all to "$s" lookup 199; fi
done

# 6. Local networks stay in the main table.
for n in "${local_networks[@]}"; do
  read -r fam dst _ _ <<<"$n"
  add_rule "$fam" 98 from all to "$dst" lookup main
done

# 7. Input ports on each default route's interface, from any source (each
# port and interface once).
seen_ports=" "
for p in "${input_ports[@]}"; do
  for r in "${default_routes[@]}"; do
    read -r _ dev _ _ <<<"$r"
    [[ $seen_ports == *" $p/$dev "* ]] && continue
    seen_ports+="$p/$dev "
    both --append INPUT -i "$dev" -p tcp -m tcp --dport "$p" -j ACCEPT
    both --append INPUT -i "$dev" -p udp -m udp --dport "$p" -j ACCEPT
  done
done

# 8. The VPN connection, before the tunnel runs.
for r in "${default_routes[@]}"; do
  read -r _ dev _ _ <<<"$r"
  if is6 "$endpoint"; then t=v6; else t=v4; fi
  $t --append OUTPUT -d "$endpoint" -o "$dev" -p udp -m udp --dport "$port" -j ACCEPT
done
both --append OUTPUT -o "$iface" -j ACCEPT

# 9. WireGuard (userspace: wireguard-go, as Gluetun without the kernel module).
WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go -f "$iface" &
for _ in $(seq 1 200); do
  [ -S "/var/run/wireguard/$iface.sock" ] && break
  sleep 0.01
done
[ -S "/var/run/wireguard/$iface.sock" ] || fail "wireguard-go did not create its socket"
mapfile -t addrs < <(items "$addresses")
for a in "${addrs[@]}"; do
  is6 "$a" && [ "$has_v6" = 0 ] && continue
  ip address add "$a" dev "$iface"
done
peer=(peer "$WIREGUARD_PUBLIC_KEY" endpoint "$endpoint:$port" allowed-ips 0.0.0.0/0,::/0)
[ "$keepalive" != 0 ] && peer+=(persistent-keepalive "$keepalive")
if [ -n "${WIREGUARD_PRESHARED_KEY:-}" ]; then
  wg set "$iface" fwmark "$fwmark" private-key <(echo "$WIREGUARD_PRIVATE_KEY") "${peer[@]}" preshared-key <(echo "$WIREGUARD_PRESHARED_KEY")
else
  wg set "$iface" fwmark "$fwmark" private-key <(echo "$WIREGUARD_PRIVATE_KEY") "${peer[@]}"
fi
ip link set "$iface" mtu "$mtu" up
# The allowed IPs (WIREGUARD_ALLOWED_IPS, IPv6 ones only where IPv6 is
# supported) routed in table 51820; the peer itself allows everything.
for n in "${allowed_ips[@]}"; do
  if is6 "$n"; then
    if [ "$has_v6" = 1 ]; then ip -6 route add "$n" dev "$iface" table "$fwmark" proto static; fi
  else
    ip -4 route add "$n" dev "$iface" table "$fwmark" proto static
  fi
done
if [ "$has_v6" = 1 ]; then
  ip -6 rule add not fwmark "$fwmark" lookup "$fwmark" pref 101
fi
ip -4 rule add not fwmark "$fwmark" lookup "$fwmark" pref 101
echo "gluetun-faithful: tunnel $iface up to $endpoint:$port"

# 10. Tunnel up: the VPN input ports.
for p in "${vpn_input_ports[@]}"; do
  both --append INPUT -i "$iface" -p tcp -m tcp --dport "$p" -j ACCEPT
  both --append INPUT -i "$iface" -p udp -m udp --dport "$p" -j ACCEPT
done

# DNS: on 127.0.0.1, asking the plain upstreams (through the tunnel, by the
# routes). Gluetun's DoT and DoH upstreams, and its own DNS server's
# filtering (rebinding protection, blocklists), are not rebuilt here.
if [ "$dns_type" = plain ] && [ ${#dns_servers[@]} -gt 0 ]; then
  servers=()
  for d in "${dns_servers[@]}"; do
    host=${d%:*} port=${d##*:}
    host=${host#[}; host=${host%]}
    servers+=("--server=$host#$port")
  done
  dnsmasq --keep-in-foreground --no-resolv --no-hosts "${servers[@]}" \
    --listen-address=127.0.0.1 --bind-interfaces --user=root \
    --pid-file= --log-facility=- &
  dnsmasq_pid=$!
  # Only a resolv.conf of its own (a container's, or the one leakhound
  # mounts for a command target): run by hand on a host, this script must
  # not rewrite the host's.
  if grep -q ' /etc/resolv.conf ' /proc/self/mountinfo; then
    echo "nameserver 127.0.0.1" >/etc/resolv.conf
  else
    echo "gluetun-faithful: /etc/resolv.conf is not a mount of its own here: left as it is" >&2
  fi
  echo "gluetun-faithful: dnsmasq on 127.0.0.1 asks ${dns_servers[*]}"
else
  echo "gluetun-faithful: DNS upstream type $dns_type is not rebuilt here (plain only): no DNS server"
fi

while true; do
  sleep infinity &
  wait $! || true
done
