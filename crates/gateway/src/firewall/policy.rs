//! The kill switch as a value: what the gateway lets through, built from its
//! configuration as rules of typed matches (`leakhound_nft::rules`).
//! `leakhound_nft::nfnl` lowers them to the kernel's nf_tables expressions
//! (what runs, see [`super::ruleset`]); in tests they are also rendered as
//! nft's JSON (via the `nftables` crate), a readable form the unit tests
//! check. Pure: no I/O.
//!
//! Two tables, both leakhound's own and replaced atomically as a whole:
//! * `inet leakhound`: input, output and forward filter chains, policy drop,
//!   for IPv4 and IPv6 alike.
//! * `netdev leakhound_egress`: an egress filter on the underlay device, so
//!   even frames written straight to it with an AF_PACKET socket (which skip
//!   the inet hooks) cannot leave except to the endpoint and allowed subnets.
//!
//! Every rule carries a comment naming why it exists; the verifier reads the
//! table back and checks each of them is there.

#[cfg(test)]
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use leakhound_nft::nfnl::Tables;
pub use leakhound_nft::rules::PREROUTING;
#[cfg(test)]
use leakhound_nft::rules::V;
use leakhound_nft::rules::{CtState, Hook, Icmpv6, L4, M, R};
#[cfg(test)]
use nftables::batch::Batch;
#[cfg(test)]
use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem,
};
#[cfg(test)]
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
#[cfg(test)]
use nftables::stmt::{Counter, Log, Match, Operator, Statement};
#[cfg(test)]
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

pub const TABLE: &str = "leakhound";
/// The firewall mark on the tunnel's own UDP socket (51820, as Gluetun
/// marks its WireGuard traffic). Only datagrams carrying it may go to the
/// endpoint: a dependent writing to the endpoint's address and port, by a
/// plain socket or a raw one, is refused (TunnelCrack's ServerIP).
pub const TUNNEL_MARK: u32 = 51_820;
pub const EGRESS_TABLE: &str = "leakhound_egress";
/// Both, as the nf_tables codec takes them.
pub const TABLES: Tables = Tables {
    inet: TABLE,
    netdev: EGRESS_TABLE,
};

/// Ports open to one LAN subnet (leakhound's per-subnet inbound rules).
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetPorts {
    pub subnet: IpNet,
    pub ports: Vec<u16>,
}

/// Everything the kill switch needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct FirewallPolicy {
    /// The underlay interface (towards the endpoint), e.g. eth0.
    pub underlay: String,
    /// The tunnel interface, e.g. wg0.
    pub tunnel: String,
    /// The tunnel's own addresses (nothing from the underlay may reach them).
    pub tunnel_addrs: Vec<IpAddr>,
    pub endpoint: SocketAddr,
    /// FIREWALL_OUTBOUND_SUBNETS: reachable outside the tunnel, both ways for
    /// connections the gateway side opens.
    pub outbound_subnets: Vec<IpNet>,
    /// FIREWALL_INPUT_PORTS: TCP/UDP ports open on the underlay to anyone.
    pub input_ports: Vec<u16>,
    /// FIREWALL_VPN_INPUT_PORTS: ports open on the tunnel interface.
    pub vpn_input_ports: Vec<u16>,
    /// FIREWALL_INPUT_SUBNET_PORTS: TCP ports open to one subnet each.
    pub subnet_ports: Vec<SubnetPorts>,
    /// FIREWALL_DEBUG: counters on every rule and a log line per drop.
    pub debug: bool,
    /// The gateway resolver's upstreams (reached through the tunnel, from
    /// its marked sockets only): with their ports (53, 853 for DoT, 443 for
    /// DoH), the only DNS destinations besides loopback.
    pub dns_upstreams: Vec<SocketAddr>,
    /// DNS_SERVER=off: the plain upstreams the namespace's resolv.conf
    /// names, whose port 53 anyone may reach, through the tunnel only.
    pub dns_direct: Vec<IpAddr>,
    /// DoH endpoints: their 443 (TCP and UDP) is rejected.
    pub doh_addresses: Vec<IpAddr>,
    /// VPN_PORT_FORWARDING_LISTENING_PORT: (forwarded port, local port)
    /// pairs; TCP and UDP arriving on the tunnel for the first are
    /// redirected to the second (a nat `prerouting` chain, the only chain
    /// whose policy is accept: it changes ports, it never lets anything in),
    /// and only redirected packets may reach the local port.
    pub redirects: Vec<(u16, u16)>,
}

/// The nat chain only rewrites ports, so it accepts; every filter chain
/// drops what no rule lets through.
#[cfg(test)]
fn chain_policy(hook: Hook) -> NfChainPolicy {
    if hook == Hook::Prerouting {
        NfChainPolicy::Accept
    } else {
        NfChainPolicy::Drop
    }
}

#[cfg(test)]
fn named(n: NamedExpression<'static>) -> Expression<'static> {
    Expression::Named(n)
}

#[cfg(test)]
fn meta(key: MetaKey) -> Expression<'static> {
    named(NamedExpression::Meta(Meta { key }))
}

#[cfg(test)]
fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

#[cfg(test)]
fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

#[cfg(test)]
fn net_expr(n: &IpNet) -> Expression<'static> {
    let max = if n.addr().is_ipv4() { 32 } else { 128 };
    if n.prefix_len() == max {
        Expression::String(n.addr().to_string().into())
    } else {
        named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(n.network().to_string().into())),
            len: n.prefix_len() as u32,
        }))
    }
}

#[cfg(test)]
fn set_or_one(mut items: Vec<Expression<'static>>) -> Expression<'static> {
    if items.len() == 1 {
        items.remove(0)
    } else {
        named(NamedExpression::Set(
            items.into_iter().map(SetItem::Element).collect(),
        ))
    }
}

#[cfg(test)]
fn ports_expr(ports: &[u16]) -> Expression<'static> {
    set_or_one(
        ports
            .iter()
            .map(|p| Expression::Number(*p as u32))
            .collect(),
    )
}

/// A match as nft JSON.
#[cfg(test)]
fn statement(m: &M) -> Statement<'static> {
    match m {
        M::Iif(name, is) => Statement::Match(Match {
            left: meta(MetaKey::Iifname),
            right: Expression::String(name.clone().into()),
            op: if *is { Operator::EQ } else { Operator::NEQ },
        }),
        M::Oif(name) => eq(
            meta(MetaKey::Oifname),
            Expression::String(name.clone().into()),
        ),
        M::Addr { dst, nets } => {
            let v6 = nets[0].addr().is_ipv6();
            let proto = if v6 { "ip6" } else { "ip" };
            let field = if *dst { "daddr" } else { "saddr" };
            eq(
                payload(proto, field),
                set_or_one(nets.iter().map(net_expr).collect()),
            )
        }
        M::L4(p) => eq(meta(MetaKey::L4proto), Expression::String(p.name().into())),
        M::Port { proto, dst, ports } => eq(
            payload(proto.header(), if *dst { "dport" } else { "sport" }),
            ports_expr(ports),
        ),
        M::Ct(states) => Statement::Match(Match {
            left: named(NamedExpression::CT(CT {
                key: "state".into(),
                family: None,
                dir: None,
            })),
            right: Expression::List(
                states
                    .iter()
                    .map(|s| Expression::String(s.name().into()))
                    .collect(),
            ),
            op: Operator::IN,
        }),
        M::Dnatted => Statement::Match(Match {
            left: named(NamedExpression::CT(CT {
                key: "status".into(),
                family: None,
                dir: None,
            })),
            right: Expression::String("dnat".into()),
            op: Operator::IN,
        }),
        M::Mark(v) => eq(meta(MetaKey::Mark), Expression::Number(*v)),
        M::Arp => eq(payload("ether", "type"), Expression::String("arp".into())),
        M::Icmpv6(types) => eq(
            payload("icmpv6", "type"),
            set_or_one(
                types
                    .iter()
                    .map(|t| Expression::String(t.name().into()))
                    .collect(),
            ),
        ),
    }
}

/// Splits nets by family: (IPv4, IPv6).
fn by_family(nets: &[IpNet]) -> [Vec<IpNet>; 2] {
    let v4 = nets
        .iter()
        .filter(|n| n.addr().is_ipv4())
        .copied()
        .collect();
    let v6 = nets
        .iter()
        .filter(|n| n.addr().is_ipv6())
        .copied()
        .collect();
    [v4, v6]
}

/// ICMPv6 that IPv6 needs on a link: neighbour and router discovery, MLD.
const ICMPV6_LINK: [Icmpv6; 7] = [
    Icmpv6::RouterSolicit,
    Icmpv6::RouterAdvert,
    Icmpv6::NeighborSolicit,
    Icmpv6::NeighborAdvert,
    Icmpv6::MldQuery,
    Icmpv6::MldReport,
    Icmpv6::Mld2Report,
];

impl FirewallPolicy {
    /// The base chains this policy needs: the four filter chains, and the
    /// nat chain only when a port is redirected.
    pub(crate) fn hooks(&self) -> Vec<Hook> {
        let mut hooks = vec![Hook::Input, Hook::Output, Hook::Forward, Hook::Egress];
        if !self.redirects.is_empty() {
            hooks.push(Hook::Prerouting);
        }
        hooks
    }

    /// (chain name, policy) of every base chain, sorted: what the verifier
    /// expects to read back.
    #[cfg(test)]
    pub fn chains(&self) -> Vec<(&'static str, NfChainPolicy)> {
        let mut c: Vec<_> = self
            .hooks()
            .into_iter()
            .map(|h| (h.chain(), chain_policy(h)))
            .collect();
        c.sort_by_key(|(name, _)| *name);
        c
    }

    pub(crate) fn rules(&self) -> Vec<R> {
        let mut r = self.loopback_and_tunnel_addresses();
        r.extend(self.wireguard());
        r.extend(self.dns());
        r.extend(self.port_mapping_on_the_underlay());
        r.extend(self.tunnel_and_subnets());
        r.extend(self.inbound_ports());
        r.extend(self.icmpv6_housekeeping());
        r.extend(self.egress());
        r
    }

    /// Loopback, invalid packets, and CVE-2019-14899: nothing from outside
    /// the tunnel may reach the tunnel's addresses.
    fn loopback_and_tunnel_addresses(&self) -> Vec<R> {
        use Hook::*;
        let tun = self.tunnel.as_str();
        let mut r = vec![
            R::new(Input, "loopback in").iif("lo"),
            R::new(Output, "loopback out").oif("lo"),
            R::new(Input, "drop invalid").ct(&[CtState::Invalid]).drop(),
        ];
        for fam in by_family(
            &self
                .tunnel_addrs
                .iter()
                .map(|a| IpNet::from(*a))
                .collect::<Vec<_>>(),
        ) {
            if !fam.is_empty() {
                r.push(
                    R::new(Input, "tunnel address only via the tunnel")
                        .not_iif(tun)
                        .not_iif("lo")
                        .addr(true, &fam)
                        .drop(),
                );
            }
        }
        r
    }

    /// WireGuard's UDP between the underlay and the endpoint.
    fn wireguard(&self) -> [R; 2] {
        use Hook::*;
        let ul = self.underlay.as_str();
        let ep = IpNet::from(self.endpoint.ip());
        let ep_port = [self.endpoint.port()];
        [
            R::new(Output, "wireguard to the endpoint")
                .m(M::Mark(TUNNEL_MARK))
                .oif(ul)
                .addr(true, &[ep])
                .l4(L4::Udp)
                .port(L4::Udp, true, &ep_port),
            R::new(Input, "wireguard from the endpoint")
                .iif(ul)
                .addr(false, &[ep])
                .l4(L4::Udp)
                .port(L4::Udp, false, &ep_port),
        ]
    }

    /// DNS only through the gateway's own resolver: its upstream through
    /// the tunnel; every other port 53, DoT (853) and DoH to known
    /// endpoints is refused.
    fn dns(&self) -> Vec<R> {
        use Hook::*;
        let tun = self.tunnel.as_str();
        let mut r = Vec::new();
        for up in &self.dns_upstreams {
            for proto in [L4::Udp, L4::Tcp] {
                r.push(
                    R::new(Output, format!("dns {proto} to the resolver's upstream"))
                        .m(M::Mark(crate::dns::UPSTREAM_MARK))
                        .oif(tun)
                        .addr(true, &[IpNet::from(up.ip())])
                        .l4(proto)
                        .port(proto, true, &[up.port()]),
                );
            }
        }
        for up in &self.dns_direct {
            for proto in [L4::Udp, L4::Tcp] {
                r.push(
                    R::new(
                        Output,
                        format!("dns {proto} to a plain upstream (DNS_SERVER=off)"),
                    )
                    .oif(tun)
                    .addr(true, &[IpNet::from(*up)])
                    .l4(proto)
                    .port(proto, true, &[53]),
                );
            }
        }
        for proto in [L4::Udp, L4::Tcp] {
            r.push(
                R::new(Output, format!("no other dns ({proto} 53)"))
                    .l4(proto)
                    .port(proto, true, &[53])
                    .reject(),
            );
            r.push(
                R::new(Output, format!("no dns over tls or quic ({proto} 853)"))
                    .l4(proto)
                    .port(proto, true, &[853])
                    .reject(),
            );
        }
        r.extend(self.doh());
        r
    }

    /// No DNS over HTTPS to the known endpoints (443, TCP and UDP).
    fn doh(&self) -> Vec<R> {
        let mut r = Vec::new();
        for fam in by_family(
            &self
                .doh_addresses
                .iter()
                .map(|a| IpNet::from(*a))
                .collect::<Vec<_>>(),
        ) {
            if fam.is_empty() {
                continue;
            }
            let v = if fam[0].addr().is_ipv6() {
                "ipv6"
            } else {
                "ipv4"
            };
            for proto in [L4::Tcp, L4::Udp] {
                r.push(
                    R::new(Hook::Output, format!("no dns over https ({v} {proto} 443)"))
                        .addr(true, &fam)
                        .l4(proto)
                        .port(proto, true, &[443])
                        .reject(),
                );
            }
        }
        r
    }

    /// Asking a router on the LAN to expose a dependent (NAT-PMP and PCP
    /// on 5351, UPnP's SSDP discovery on 1900) would publish the home
    /// address: refused on the underlay whatever subnets are allowed (a
    /// torrent client at its defaults asks the home router at once).
    /// Through the tunnel, NAT-PMP with the provider stays possible.
    fn port_mapping_on_the_underlay(&self) -> Vec<R> {
        let ul = self.underlay.as_str();
        [("nat-pmp/pcp", 5351), ("upnp ssdp", 1900)]
            .into_iter()
            .map(|(what, port)| {
                R::new(
                    Hook::Output,
                    format!("no {what} requests on the underlay (udp {port})"),
                )
                .oif(ul)
                .l4(L4::Udp)
                .port(L4::Udp, true, &[port])
                .reject()
            })
            .collect()
    }

    /// Anything into the tunnel and its replies; the outbound subnets and
    /// FIREWALL_INPUT_SUBNET_PORTS on the underlay.
    fn tunnel_and_subnets(&self) -> Vec<R> {
        use Hook::*;
        let ul = self.underlay.as_str();
        let tun = self.tunnel.as_str();
        let mut r = vec![
            R::new(Output, "anything into the tunnel").oif(tun),
            R::new(Input, "replies from the tunnel")
                .iif(tun)
                .ct(&[CtState::Established, CtState::Related]),
        ];
        for fam in by_family(&self.outbound_subnets) {
            if fam.is_empty() {
                continue;
            }
            r.push(
                R::new(Output, "to outbound subnets")
                    .oif(ul)
                    .addr(true, &fam),
            );
            r.push(
                R::new(Input, "replies from outbound subnets")
                    .iif(ul)
                    .addr(false, &fam)
                    .ct(&[CtState::Established, CtState::Related]),
            );
        }
        for sp in &self.subnet_ports {
            let c = format!("tcp {:?} from {}", sp.ports, sp.subnet);
            r.push(
                R::new(Input, c.clone())
                    .iif(ul)
                    .addr(false, &[sp.subnet])
                    .l4(L4::Tcp)
                    .port(L4::Tcp, true, &sp.ports),
            );
            r.push(
                R::new(Output, format!("replies: {c}"))
                    .oif(ul)
                    .addr(true, &[sp.subnet])
                    .l4(L4::Tcp)
                    .port(L4::Tcp, false, &sp.ports)
                    .ct(&[CtState::Established]),
            );
        }
        r
    }

    /// FIREWALL_INPUT_PORTS, FIREWALL_VPN_INPUT_PORTS and the forwarded
    /// port's redirects, for TCP then UDP.
    fn inbound_ports(&self) -> Vec<R> {
        use Hook::*;
        let ul = self.underlay.as_str();
        let tun = self.tunnel.as_str();
        let mut r = Vec::new();
        for proto in [L4::Tcp, L4::Udp] {
            if !self.input_ports.is_empty() {
                r.push(
                    R::new(Input, format!("FIREWALL_INPUT_PORTS {proto}"))
                        .iif(ul)
                        .l4(proto)
                        .port(proto, true, &self.input_ports),
                );
                r.push(
                    R::new(Output, format!("replies: FIREWALL_INPUT_PORTS {proto}"))
                        .oif(ul)
                        .l4(proto)
                        .port(proto, false, &self.input_ports)
                        .ct(&[CtState::Established]),
                );
            }
            if !self.vpn_input_ports.is_empty() {
                r.push(
                    R::new(Input, format!("FIREWALL_VPN_INPUT_PORTS {proto}"))
                        .iif(tun)
                        .l4(proto)
                        .port(proto, true, &self.vpn_input_ports),
                );
            }
            for &(from, to) in &self.redirects {
                r.push(
                    R::new(
                        Prerouting,
                        format!("VPN_PORT_FORWARDING_LISTENING_PORT {proto} {from} to {to}"),
                    )
                    .iif(tun)
                    .l4(proto)
                    .port(proto, true, &[from])
                    .redirect(to),
                );
                r.push(
                    R::new(
                        Input,
                        format!("VPN_PORT_FORWARDING_LISTENING_PORT {proto} {to} redirected"),
                    )
                    .iif(tun)
                    .dnatted()
                    .l4(proto)
                    .port(proto, true, &[to]),
                );
            }
        }
        r
    }

    /// The ICMPv6 IPv6 needs on the underlay's link, in and out.
    fn icmpv6_housekeeping(&self) -> Vec<R> {
        let ul = self.underlay.as_str();
        let icmpv6 = M::Icmpv6(ICMPV6_LINK.to_vec());
        [Hook::Input, Hook::Output]
            .into_iter()
            .map(|hook| {
                let dir = if hook == Hook::Input {
                    R::new(hook, "icmpv6 link housekeeping in").iif(ul)
                } else {
                    R::new(hook, "icmpv6 link housekeeping out").oif(ul)
                };
                dir.l4(L4::Icmpv6).m(icmpv6.clone())
            })
            .collect()
    }

    /// The egress filter: what may be written to the underlay device at all,
    /// by the stack or by a raw socket.
    fn egress(&self) -> Vec<R> {
        use Hook::Egress;
        let ep = IpNet::from(self.endpoint.ip());
        let ep_port = [self.endpoint.port()];
        let mut r = vec![
            R::new(Egress, "arp").m(M::Arp),
            R::new(Egress, "wireguard to the endpoint")
                .m(M::Mark(TUNNEL_MARK))
                .addr(true, &[ep])
                .port(L4::Udp, true, &ep_port),
        ];
        // Port mapping requests stay off the underlay here too, before the
        // allowed subnets (the home router is in one): a raw socket passes
        // the output chain's refusal.
        for (what, port) in [("nat-pmp/pcp", 5351), ("upnp ssdp", 1900)] {
            r.push(
                R::new(
                    Egress,
                    format!("no {what} requests written to the underlay (udp {port})"),
                )
                .l4(L4::Udp)
                .port(L4::Udp, true, &[port])
                .drop(),
            );
        }
        let mut lan: Vec<IpNet> = self.outbound_subnets.clone();
        lan.extend(self.subnet_ports.iter().map(|s| s.subnet));
        for fam in by_family(&lan) {
            if !fam.is_empty() {
                r.push(R::new(Egress, "to allowed subnets").addr(true, &fam));
            }
        }
        if !self.input_ports.is_empty() {
            for proto in [L4::Tcp, L4::Udp] {
                r.push(
                    R::new(Egress, format!("replies: FIREWALL_INPUT_PORTS {proto}")).port(
                        proto,
                        false,
                        &self.input_ports,
                    ),
                );
            }
        }
        let link_local: IpNet = "fe80::/10".parse().expect("net");
        r.push(
            R::new(Egress, "icmpv6 link housekeeping")
                .addr(false, &[link_local])
                .m(M::Icmpv6(ICMPV6_LINK.to_vec())),
        );
        r
    }

    /// (chain, comment) of every rule: what the verifier looks for.
    pub fn comments(&self) -> Vec<(String, String)> {
        self.rules()
            .into_iter()
            .map(|r| (r.hook.chain().to_string(), r.comment))
            .collect()
    }

    /// One atomic batch: (re)create both tables with all chains and rules.
    /// Existing tables are deleted in the same transaction, so there is no
    /// moment without a kill switch.
    #[cfg(test)]
    pub fn compile(&self) -> Nftables<'static> {
        let mut b = Batch::new();
        let inet = NfFamily::INet;
        let netdev = NfFamily::NetDev;
        recreate_tables(&mut b);
        for hook in self.hooks() {
            let (family, table, nfhook, dev) = match hook {
                Hook::Input => (inet, TABLE, NfHook::Input, None),
                Hook::Output => (inet, TABLE, NfHook::Output, None),
                Hook::Forward => (inet, TABLE, NfHook::Forward, None),
                Hook::Prerouting => (inet, TABLE, NfHook::Prerouting, None),
                Hook::Egress => (
                    netdev,
                    EGRESS_TABLE,
                    NfHook::Egress,
                    Some(self.underlay.clone().into()),
                ),
            };
            let (kind, prio) = if hook == Hook::Prerouting {
                (NfChainType::NAT, -100)
            } else {
                (NfChainType::Filter, 0)
            };
            let policy = chain_policy(hook);
            b.add(NfListObject::Chain(Chain {
                family,
                table: table.into(),
                name: hook.chain().into(),
                _type: Some(kind),
                hook: Some(nfhook),
                prio: Some(prio),
                dev,
                policy: Some(policy),
                ..Default::default()
            }));
        }
        let rules = self.rules();
        for rule in &rules {
            let (family, table) = if rule.hook == Hook::Egress {
                (netdev, EGRESS_TABLE)
            } else {
                (inet, TABLE)
            };
            let mut expr: Vec<Statement<'static>> = rule.matches.iter().map(statement).collect();
            if self.debug {
                expr.push(Statement::Counter(Counter::Anonymous(None)));
            }
            expr.push(match rule.verdict {
                V::Accept => Statement::Accept(None),
                V::Drop => Statement::Drop(None),
                V::Reject => Statement::Reject(None),
                V::Redirect(port) => Statement::Redirect(Some(nftables::stmt::NAT {
                    addr: None,
                    family: None,
                    port: Some(Expression::Number(u32::from(port))),
                    flags: None,
                })),
            });
            b.add(NfListObject::Rule(Rule {
                family,
                table: table.into(),
                chain: rule.hook.chain().into(),
                expr: expr.into(),
                comment: Some(rule.comment.clone().into()),
                ..Default::default()
            }));
        }
        if self.debug {
            for hook in [Hook::Input, Hook::Output, Hook::Forward, Hook::Egress] {
                let (family, table) = if hook == Hook::Egress {
                    (netdev, EGRESS_TABLE)
                } else {
                    (inet, TABLE)
                };
                b.add(NfListObject::Rule(Rule {
                    family,
                    table: table.into(),
                    chain: hook.chain().into(),
                    expr: vec![
                        Statement::Counter(Counter::Anonymous(None)),
                        Statement::Log(Some(Log {
                            prefix: Some(format!("leakhound-drop-{}: ", hook.chain()).into()),
                            ..Log::new(None)
                        })),
                    ]
                    .into(),
                    comment: Some("debug: count and log what the policy drops".into()),
                    ..Default::default()
                }));
            }
        }
        b.to_nftables()
    }

    /// The kill switch for a gateway that cannot start (bad configuration):
    /// everything but loopback dropped, on every interface, including raw
    /// frames (an egress chain per device in `devices`).
    #[cfg(test)]
    pub fn lockdown(devices: &[String]) -> Nftables<'static> {
        let mut b = Batch::new();
        recreate_tables(&mut b);
        for (hook, nfhook) in [
            (Hook::Input, NfHook::Input),
            (Hook::Output, NfHook::Output),
            (Hook::Forward, NfHook::Forward),
        ] {
            b.add(NfListObject::Chain(Chain {
                family: NfFamily::INet,
                table: TABLE.into(),
                name: hook.chain().into(),
                _type: Some(NfChainType::Filter),
                hook: Some(nfhook),
                prio: Some(0),
                policy: Some(NfChainPolicy::Drop),
                ..Default::default()
            }));
        }
        for r in [
            R::new(Hook::Input, "loopback in").iif("lo"),
            R::new(Hook::Output, "loopback out").oif("lo"),
        ] {
            let mut expr: Vec<Statement<'static>> = r.matches.iter().map(statement).collect();
            expr.push(Statement::Accept(None));
            b.add(NfListObject::Rule(Rule {
                family: NfFamily::INet,
                table: TABLE.into(),
                chain: r.hook.chain().into(),
                expr: expr.into(),
                comment: Some(r.comment.into()),
                ..Default::default()
            }));
        }
        for dev in devices.iter().filter(|d| d.as_str() != "lo") {
            b.add(NfListObject::Chain(Chain {
                family: NfFamily::NetDev,
                table: EGRESS_TABLE.into(),
                name: format!("egress_{dev}").into(),
                _type: Some(NfChainType::Filter),
                hook: Some(NfHook::Egress),
                prio: Some(0),
                dev: Some(dev.clone().into()),
                policy: Some(NfChainPolicy::Drop),
                ..Default::default()
            }));
        }
        b.to_nftables()
    }

    /// A batch that removes both tables (FIREWALL_ENABLED...=off, or a
    /// requested cleanup on exit).
    #[cfg(test)]
    pub fn removal() -> Nftables<'static> {
        let mut b = Batch::new();
        for t in tables() {
            b.add(NfListObject::Table(t.clone()));
            b.delete(NfListObject::Table(t));
        }
        b.to_nftables()
    }
}

/// leakhound's two tables (inet and netdev), as batch objects.
#[cfg(test)]
fn tables() -> [Table<'static>; 2] {
    [(NfFamily::INet, TABLE), (NfFamily::NetDev, EGRESS_TABLE)].map(|(family, name)| Table {
        family,
        name: name.into(),
        handle: None,
    })
}

/// Both of leakhound's tables, deleted and created again in the same batch
/// (adding first, so the delete never fails): one transaction, no moment
/// without a kill switch.
#[cfg(test)]
fn recreate_tables(b: &mut Batch<'static>) {
    for t in tables() {
        b.add(NfListObject::Table(t.clone()));
        b.delete(NfListObject::Table(t.clone()));
        b.add(NfListObject::Table(t));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn seed_policy() -> FirewallPolicy {
        FirewallPolicy {
            underlay: "eth0".into(),
            tunnel: "wg0".into(),
            tunnel_addrs: vec!["10.64.0.2".parse().unwrap()],
            endpoint: "203.0.113.10:51820".parse().unwrap(),
            outbound_subnets: vec![
                "172.21.0.0/16".parse().unwrap(),
                "172.20.0.0/16".parse().unwrap(),
            ],
            input_ports: vec![],
            vpn_input_ports: vec![],
            subnet_ports: vec![
                SubnetPorts {
                    subnet: "192.168.10.0/24".parse().unwrap(),
                    ports: vec![8080, 9696, 6789],
                },
                SubnetPorts {
                    subnet: "192.168.40.0/24".parse().unwrap(),
                    ports: vec![8080, 9696],
                },
            ],
            debug: false,
            dns_upstreams: vec!["10.64.0.1:53".parse().unwrap()],
            dns_direct: Vec::new(),
            doh_addresses: vec![
                "1.1.1.1".parse().unwrap(),
                "2606:4700:4700::1111".parse().unwrap(),
            ],
            redirects: vec![],
        }
    }

    fn json(p: &FirewallPolicy) -> serde_json::Value {
        serde_json::to_value(p.compile()).unwrap()
    }

    fn chains_in(v: &serde_json::Value) -> Vec<serde_json::Value> {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("add")?.get("chain").cloned())
            .collect()
    }

    fn rules_in(v: &serde_json::Value, chain: &str) -> Vec<serde_json::Value> {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("add")?.get("rule").cloned())
            .filter(|r| r["chain"] == chain)
            .collect()
    }

    #[test]
    fn a_listening_port_redirect_lets_in_only_redirected_packets() {
        let p = FirewallPolicy {
            vpn_input_ports: vec![40000],
            redirects: vec![(40000, 6881)],
            ..seed_policy()
        };
        let v = json(&p);
        let chains = chains_in(&v);
        let nat = chains.iter().find(|c| c["name"] == "prerouting").unwrap();
        assert_eq!(nat["type"], "nat");
        assert_eq!(nat["hook"], "prerouting");
        assert_eq!(nat["policy"], "accept");
        let pre = rules_in(&v, "prerouting");
        assert_eq!(pre.len(), 2, "{pre:#?}");
        for r in &pre {
            let t = r.to_string();
            assert!(t.contains(r#""iifname""#) && t.contains(r#""wg0""#), "{t}");
            assert!(t.contains(r#""redirect":{"port":6881}"#), "{t}");
            assert!(t.contains("40000"), "{t}");
        }
        let input: Vec<String> = rules_in(&v, "input")
            .iter()
            .map(|r| r.to_string())
            .filter(|t| t.contains("6881"))
            .collect();
        assert_eq!(input.len(), 2, "{input:#?}");
        for t in &input {
            assert!(
                t.contains(r#""key":"status""#) && t.contains(r#""dnat""#),
                "{t}"
            );
        }
        // Without a redirect there is no nat chain at all.
        assert!(rules_in(&json(&seed_policy()), "prerouting").is_empty());
    }

    #[test]
    fn every_base_chain_drops_by_default() {
        let v = json(&seed_policy());
        let chains = chains_in(&v);
        assert_eq!(chains.len(), 4);
        for c in &chains {
            assert_eq!(c["policy"], "drop", "{c}");
        }
        let egress = chains.iter().find(|c| c["name"] == "egress").unwrap();
        assert_eq!(egress["family"], "netdev");
        assert_eq!(egress["dev"], "eth0");
        assert_eq!(egress["hook"], "egress");
    }

    #[test]
    fn tables_are_replaced_atomically_in_one_batch() {
        let v = json(&seed_policy());
        let objs = v["nftables"].as_array().unwrap();
        // add, delete, add for each table, before anything else.
        assert!(objs[0]["add"]["table"].is_object());
        assert!(objs[1]["delete"]["table"].is_object());
        assert!(objs[2]["add"]["table"].is_object());
    }

    #[test]
    fn the_seeds_inbound_rules_are_per_subnet() {
        let v = json(&seed_policy());
        let input = rules_in(&v, "input");
        let admin = input
            .iter()
            .find(|r| r["comment"] == "tcp [8080, 9696, 6789] from 192.168.10.0/24")
            .expect("admin rule");
        let s = admin.to_string();
        assert!(
            s.contains(r#""prefix":{"addr":"192.168.10.0","len":24}"#),
            "{s}"
        );
        assert!(
            s.contains("8080") && s.contains("9696") && s.contains("6789"),
            "{s}"
        );
        let media = input
            .iter()
            .find(|r| r["comment"] == "tcp [8080, 9696] from 192.168.40.0/24")
            .expect("media rule");
        assert!(!media.to_string().contains("6789"));
        // No rule opens anything to 192.168.30.0/24.
        assert!(!v.to_string().contains("192.168.30"));
    }

    #[test]
    fn port_mapping_requests_are_refused_on_the_underlay_before_any_lan_is_allowed() {
        let v = json(&seed_policy());
        let output = rules_in(&v, "output");
        let at = |c: &str| {
            output
                .iter()
                .position(|r| r["comment"].as_str().is_some_and(|x| x.starts_with(c)))
                .unwrap_or_else(|| panic!("no rule {c}"))
        };
        let pcp = at("no nat-pmp/pcp requests on the underlay (udp 5351)");
        let ssdp = at("no upnp ssdp requests on the underlay (udp 1900)");
        assert!(pcp < at("to outbound subnets") && ssdp < at("to outbound subnets"));
        for i in [pcp, ssdp] {
            let r = output[i].to_string();
            assert!(
                r.contains(r#""right":"eth0""#) && r.contains("reject"),
                "{r}"
            );
        }
    }

    #[test]
    fn the_tunnel_address_is_unreachable_from_outside_the_tunnel() {
        let v = json(&seed_policy());
        let input = rules_in(&v, "input");
        let r = input
            .iter()
            .find(|r| r["comment"] == "tunnel address only via the tunnel")
            .unwrap();
        let s = r.to_string();
        assert!(
            s.contains(r#""right":"10.64.0.2""#) && s.contains(r#""drop":null"#),
            "{s}"
        );
        // It comes before any accept rule that could match underlay traffic.
        let pos = |c: &str| input.iter().position(|r| r["comment"] == c).unwrap();
        assert!(pos("tunnel address only via the tunnel") < pos("wireguard from the endpoint"));
    }

    #[test]
    fn egress_allows_only_arp_the_endpoint_allowed_subnets_and_link_icmpv6_but_no_port_mapping() {
        let v = json(&seed_policy());
        let egress: Vec<String> = rules_in(&v, "egress")
            .iter()
            .map(|r| r["comment"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            egress,
            vec![
                "arp",
                "wireguard to the endpoint",
                "no nat-pmp/pcp requests written to the underlay (udp 5351)",
                "no upnp ssdp requests written to the underlay (udp 1900)",
                "to allowed subnets",
                "icmpv6 link housekeeping"
            ]
        );
    }

    #[test]
    fn ipv6_subnets_get_ip6_matches() {
        let mut p = seed_policy();
        p.outbound_subnets.push("2001:db8:21::/64".parse().unwrap());
        let v = json(&p);
        let out = rules_in(&v, "output");
        let v6: Vec<_> = out
            .iter()
            .filter(|r| r.to_string().contains(r#""protocol":"ip6""#))
            .collect();
        assert!(
            v6.iter().any(|r| r.to_string().contains("2001:db8:21::")),
            "{v6:?}"
        );
    }

    #[test]
    fn lockdown_drops_everything_but_loopback_on_every_device() {
        let v = serde_json::to_value(FirewallPolicy::lockdown(&[
            "lo".into(),
            "eth0".into(),
            "eth1".into(),
        ]))
        .unwrap();
        let chains = chains_in(&v);
        assert_eq!(chains.len(), 5, "{chains:?}");
        assert!(chains.iter().all(|c| c["policy"] == "drop"));
        let devs: Vec<_> = chains.iter().filter_map(|c| c["dev"].as_str()).collect();
        assert_eq!(devs, vec!["eth0", "eth1"]);
        let rules: Vec<_> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("add")?.get("rule").cloned())
            .collect();
        assert_eq!(rules.len(), 2);
        assert!(
            rules
                .iter()
                .all(|r| r.to_string().contains(r#""right":"lo""#))
        );
    }

    #[test]
    fn dns_goes_only_to_the_upstream_through_the_tunnel() {
        let v = json(&seed_policy());
        let out = rules_in(&v, "output");
        let pos = |c: &str| {
            out.iter()
                .position(|r| r["comment"] == c)
                .unwrap_or_else(|| panic!("no rule {c}"))
        };
        // The upstream exception comes first, then the refusals, then the
        // tunnel's blanket accept.
        assert!(pos("dns udp to the resolver's upstream") < pos("no other dns (udp 53)"));
        assert!(pos("no other dns (tcp 53)") < pos("anything into the tunnel"));
        assert!(pos("no dns over tls or quic (tcp 853)") < pos("anything into the tunnel"));
        assert!(pos("no dns over https (ipv6 tcp 443)") < pos("anything into the tunnel"));
        let up = out[pos("dns udp to the resolver's upstream")].to_string();
        assert!(
            up.contains(r#""right":"wg0""#) && up.contains("10.64.0.1"),
            "{up}"
        );
        // Only the gateway's resolver (its marked sockets) may use it.
        assert!(
            up.contains(r#""key":"mark""#) && up.contains(&crate::dns::UPSTREAM_MARK.to_string()),
            "{up}"
        );
        assert!(
            out[pos("no other dns (udp 53)")]
                .to_string()
                .contains(r#""reject""#)
        );
        // The same refusals come before the outbound-subnet accept, so a LAN
        // resolver is no way around them either.
        assert!(pos("no other dns (udp 53)") < pos("to outbound subnets"));
    }

    #[test]
    fn only_the_tunnels_marked_socket_may_write_to_the_endpoint() {
        let v = json(&seed_policy());
        for chain in ["output", "egress"] {
            let rules = rules_in(&v, chain);
            let wg: Vec<String> = rules
                .iter()
                .map(|r| r.to_string())
                .filter(|r| r.contains("wireguard to the endpoint"))
                .collect();
            assert_eq!(wg.len(), 1, "{chain}: {rules:#?}");
            assert!(
                wg[0].contains(r#""key":"mark""#)
                    && wg[0].contains(&format!(r#""right":{TUNNEL_MARK}"#)),
                "{chain}: {}",
                wg[0]
            );
        }
    }

    #[test]
    fn debug_adds_counters_and_logged_drops() {
        let mut p = seed_policy();
        assert!(!json(&p).to_string().contains("counter"));
        p.debug = true;
        let s = json(&p).to_string();
        assert!(
            s.contains("counter") && s.contains("leakhound-drop-output: "),
            "{s}"
        );
    }

    #[test]
    fn comments_are_unique_per_chain() {
        let p = seed_policy();
        let rules = p.rules();
        for r in &rules {
            let same = rules
                .iter()
                .filter(|o| o.hook == r.hook && o.comment == r.comment)
                .count();
            assert_eq!(same, 1, "duplicate comment {:?} in {:?}", r.comment, r.hook);
        }
    }
}
