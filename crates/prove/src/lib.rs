//! `leakhound prove`'s engine: which packets can a gateway's namespace put
//! on its underlay, by its nftables ruleset? Pure: it reads nft's JSON and
//! the namespace's interfaces as text, and answers with a proof that no
//! packet other than the policy's leaves, or a concrete witness packet, or
//! "cannot prove" naming the expression it does not understand.
//!
//! * [`space`]: header space (cubes of per-field value sets).
//! * [`ruleset`]: nft's JSON read and compiled to operations on it.
//! * [`eval`]: the walk through hooks, chains and rules.
//!
//! The question, for each path a packet can take to the underlay
//! ([`Path`]): of the packets every hook on that path lets through, is any
//! not the policy's ([`Policy`]: the endpoint over UDP, the allowed
//! subnets, the link's own housekeeping)? docs/prove.md states what is
//! assumed and how it differs from the kernel.

pub mod eval;
pub mod ruleset;
pub mod space;

use std::net::IpAddr;

use ipnet::IpNet;
use ruleset::addr_value;
use space::{Constraint, Cube, Field, Set, Union, one, range};

pub use eval::Cannot;
pub use ruleset::{Links, ReadError, Ruleset};

/// What may leave on the underlay.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The VPN endpoints, each over UDP to its port.
    pub endpoints: Vec<(IpAddr, u16)>,
    /// Subnets the gateway may reach around the tunnel (outbound subnets,
    /// the LANs it answers).
    pub allow: Vec<IpNet>,
}

/// A way for a packet to reach the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Sent by a process in the namespace: the output and postrouting
    /// hooks, then the underlay's egress.
    Output,
    /// Routed through the namespace from another interface (only where
    /// forwarding is on): prerouting, forward, postrouting, egress.
    Forward,
    /// A frame written to the underlay with an AF_PACKET socket: only the
    /// underlay's egress hook sees it.
    Raw,
}

impl Path {
    pub fn describe(self) -> &'static str {
        match self {
            Path::Output => "sent by a process in the namespace",
            Path::Forward => "forwarded from another interface",
            Path::Raw => "written to the underlay as a raw frame (AF_PACKET)",
        }
    }

    pub fn hooks(self) -> &'static [&'static str] {
        match self {
            Path::Output => &["output", "postrouting", "egress"],
            Path::Forward => &["prerouting", "forward", "postrouting", "egress"],
            Path::Raw => &["egress"],
        }
    }
}

/// The namespace's forwarding switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forwarding {
    pub v4: bool,
    pub v6: bool,
}

/// A concrete packet of a witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub path: Path,
    /// 0x0800, 0x86dd, or another EtherType for a raw frame.
    pub ether_type: u16,
    pub l4: u8,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// Ports, for TCP, UDP, SCTP, DCCP and UDP-Lite.
    pub ports: Option<(u16, u16)>,
    pub icmp: Option<(u8, u8)>,
    pub tcp_flags: Option<u8>,
    pub mark: u32,
    /// Conntrack state by name.
    pub ct_state: &'static str,
    pub fragment: bool,
    pub dscp: u8,
    /// The input interface of a forwarded packet.
    pub iif: Option<String>,
}

impl std::fmt::Display for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match (self.ether_type, self.l4) {
            (0x0800 | 0x86dd, 6) => "TCP".to_string(),
            (0x0800 | 0x86dd, 17) => "UDP".to_string(),
            (0x0800, 1) => "ICMP".to_string(),
            (0x86dd, 58) => "ICMPv6".to_string(),
            (0x0800 | 0x86dd, p) => format!("IP protocol {p}"),
            (t, _) => {
                return write!(
                    f,
                    "a frame of EtherType {t:#06x} ({})",
                    self.path.describe()
                );
            }
        };
        let addr = |a: IpAddr, port: Option<u16>| match (a, port) {
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        write!(
            f,
            "{proto} {} -> {}",
            addr(self.saddr, self.ports.map(|p| p.0)),
            addr(self.daddr, self.ports.map(|p| p.1))
        )?;
        if let Some((t, c)) = self.icmp {
            write!(f, " type {t} code {c}")?;
        }
        if let Some(flags) = self.tcp_flags {
            write!(f, " flags {flags:#04x}")?;
        }
        if self.fragment {
            write!(f, " (a fragment, not the first)")?;
        }
        write!(f, ", ct state {}, mark {}", self.ct_state, self.mark)?;
        if self.dscp != 0 {
            write!(f, ", dscp {}", self.dscp)?;
        }
        if let Some(i) = &self.iif {
            write!(f, ", in on {i}")?;
        }
        write!(f, "; {}", self.path.describe())
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// No packet outside the policy leaves; under these assumptions.
    Proof {
        assumptions: Vec<String>,
    },
    /// This one does (the first found, with the assumptions it rests on).
    Witness {
        packet: Packet,
        assumptions: Vec<String>,
    },
    Cannot(Cannot),
}

impl Answer {
    pub fn is_proof(&self) -> bool {
        matches!(self, Answer::Proof { .. })
    }
}

/// The link's own housekeeping, which an IPv6 link needs: neighbour
/// discovery and multicast listener messages from a link-local (or, for
/// duplicate address detection, the unspecified) source, or to a
/// link-scope destination (fe80::/10, ff02::/16) from any.
pub const HOUSEKEEPING_ICMPV6: [u8; 7] = [130, 131, 133, 134, 135, 136, 143];

fn eth(a: IpAddr) -> u128 {
    if a.is_ipv4() {
        ruleset::ETH_IP
    } else {
        ruleset::ETH_IP6
    }
}

/// What the policy lets out, as header space.
fn allowed(policy: &Policy) -> Union {
    let mut u = vec![Constraint::on(Field::EtherType, one(ruleset::ETH_ARP))];
    for (a, port) in &policy.endpoints {
        u.push(
            Constraint::on(Field::EtherType, one(eth(*a)))
                .and(Field::L4, one(17))
                .and(Field::Frag, one(0))
                .and(Field::Daddr, one(addr_value(*a)))
                .and(Field::Dport, one(u128::from(*port))),
        );
    }
    for net in &policy.allow {
        u.push(Constraint::on(Field::EtherType, one(eth(net.addr()))).and(
            Field::Daddr,
            range(addr_value(net.network()), addr_value(net.broadcast())),
        ));
    }
    let mut types = Set::new();
    for t in HOUSEKEEPING_ICMPV6 {
        types |= one(u128::from(t));
    }
    let net = |n: &str| {
        let n: IpNet = n.parse().expect("literal");
        range(addr_value(n.network()), addr_value(n.broadcast()))
    };
    let housekeeping = Constraint::on(Field::EtherType, one(ruleset::ETH_IP6))
        .and(Field::L4, one(58))
        .and(Field::Frag, one(0))
        .and(Field::IcmpType, types);
    // From a link-local (or the unspecified) source, anywhere; from any
    // source (neighbour solicitations for a global neighbour carry the
    // global source), to a link-scope destination, which no router
    // forwards off the link.
    u.push(
        housekeeping
            .clone()
            .and(Field::Saddr, net("fe80::/10") | one(0)),
    );
    u.push(housekeeping.and(Field::Daddr, net("fe80::/10") | net("ff02::/16")));
    Union(u)
}

/// The packets that may start down `path`.
fn start(path: Path, links: &Links, fwd: Forwarding) -> Vec<Cube> {
    let lo = links.names.iter().position(|(n, _)| n == "lo");
    let mut iifs = Set::new();
    for pos in 0..links.names.len() {
        if Some(pos) != lo {
            iifs |= one(pos as u128 + 1);
        }
    }
    let v4 = Cube::any()
        .with(Field::EtherType, &one(ruleset::ETH_IP))
        .with(Field::Saddr, &ruleset::v4_space())
        .with(Field::Daddr, &ruleset::v4_space());
    let v6 = Cube::any().with(Field::EtherType, &one(ruleset::ETH_IP6));
    match path {
        Path::Output => vec![v4, v6]
            .into_iter()
            .map(|c| c.with(Field::Iif, &one(0)))
            .collect(),
        Path::Forward => {
            let mut out = Vec::new();
            if fwd.v4 {
                out.push(v4);
            }
            if fwd.v6 {
                out.push(v6);
            }
            out.into_iter()
                .map(|c| c.with(Field::Iif, &iifs).with(Field::Mark, &one(0)))
                .collect()
        }
        Path::Raw => {
            // Any EtherType; an IP frame's addresses of its own family. A
            // frame written past the IP stack has no conntrack entry: `ct
            // state` reads it as invalid (nft_ct's "no ct, not untracked").
            let other = Field::EtherType.domain() - (one(ruleset::ETH_IP) | one(ruleset::ETH_IP6));
            vec![v4, v6, Cube::any().with(Field::EtherType, &other)]
                .into_iter()
                .map(|c| {
                    c.with(Field::Iif, &one(0))
                        .with(Field::CtState, &one(space::CT_INVALID))
                })
                .collect()
        }
    }
}

/// The assumptions every answer rests on.
fn assumptions(links: &Links, fwd: Forwarding) -> Vec<String> {
    let mut a = vec![
        format!(
            "every packet's output interface is the underlay ({}): any socket can be bound to it (SO_BINDTODEVICE) and any frame written to it (AF_PACKET; Docker grants CAP_NET_RAW by default), so the routes are no protection",
            links.underlay
        ),
        "a locally sent or forwarded packet's conntrack state treated as any (new, established, related, invalid, untracked); a raw frame's is invalid (it has no conntrack entry)".into(),
        "a locally sent packet's mark treated as any (CAP_NET_ADMIN in the namespace sets any); a forwarded packet's starts at 0".into(),
        "source addresses treated as any (a raw socket writes any)".into(),
        "nat chains: source NAT changes only the source; destination NAT cannot be proven".into(),
        "IPv6 extension headers: `ip6 nexthdr` and the transport protocol are independent".into(),
        "fragments: a fragment that is not the first has no ports, ICMP type or TCP flags (matches on them fail)".into(),
    ];
    a.push(match (fwd.v4, fwd.v6) {
        (false, false) => "forwarding is off for IPv4 and IPv6: no forwarded packets".into(),
        (v4, v6) => format!(
            "forwarding is on for {}: packets forwarded from every interface but lo",
            match (v4, v6) {
                (true, true) => "IPv4 and IPv6",
                (true, false) => "IPv4 (off for IPv6)",
                _ => "IPv6 (off for IPv4)",
            }
        ),
    });
    a
}

/// Proves that no packet outside `policy` leaves on the underlay, or finds
/// one.
pub fn prove(rs: &Ruleset, links: &Links, policy: &Policy, fwd: Forwarding) -> Answer {
    let walker = eval::Walker {
        rs,
        links,
        unknown: Default::default(),
    };
    let allowed = allowed(policy);
    let assumptions = assumptions(links, fwd);
    let with_unknown = |mut a: Vec<String>| {
        a.extend(walker.unknown.borrow().iter().cloned());
        a
    };
    for path in [Path::Output, Path::Raw, Path::Forward] {
        let space = match walker.path(path, start(path, links, fwd)) {
            Ok(s) => s,
            Err(c) => return Answer::Cannot(c),
        };
        let (_, leaks) = allowed.split(space);
        if let Some(packet) = pick(path, &leaks, links) {
            return Answer::Witness {
                packet,
                assumptions: with_unknown(assumptions),
            };
        }
    }
    Answer::Proof {
        assumptions: with_unknown(assumptions),
    }
}

/// One witness for each path that has leaks, the output path's first: the
/// packets to try on the wire where the first one rests on a match the
/// model took both ways (an iptables `xt` match) and the kernel stops it.
pub fn witnesses(
    rs: &Ruleset,
    links: &Links,
    policy: &Policy,
    fwd: Forwarding,
) -> Result<Vec<Packet>, Cannot> {
    let allowed = allowed(policy);
    let mut out = Vec::new();
    for path in [Path::Output, Path::Raw, Path::Forward] {
        let space = survivors(rs, links, path, start(path, links, fwd))?;
        let (_, leaks) = allowed.split(space);
        out.extend(pick(path, &leaks, links));
    }
    Ok(out)
}

/// Of the packets `space`, those that reach the underlay down `path`: the
/// question for a set of packets the caller picks (a single packet, for
/// the comparison with the kernel).
pub fn survivors(
    rs: &Ruleset,
    links: &Links,
    path: Path,
    space: Vec<Cube>,
) -> Result<Vec<Cube>, Cannot> {
    let walker = eval::Walker {
        rs,
        links,
        unknown: Default::default(),
    };
    walker.path(path, space)
}

/// A concrete packet from the leaking space: the plainest one there (a
/// new TCP SYN to a lab address, mark 0, a whole packet), where the space
/// allows it.
fn pick(path: Path, leaks: &[Cube], links: &Links) -> Option<Packet> {
    // The most ordinary cubes first: whole packets, mark 0, ct state new.
    let score = |c: &Cube| {
        let mut s = 0;
        if c.get(Field::Frag).contains(0) {
            s += 8;
        }
        if c.get(Field::Mark).contains(0) {
            s += 4;
        }
        if c.get(Field::CtState).contains(8) {
            s += 2;
        }
        if c.get(Field::L4).contains(6) || c.get(Field::L4).contains(17) {
            s += 1;
        }
        // IPv4 before IPv6 where both leak; the first of equals.
        (s, c.get(Field::EtherType).contains(ruleset::ETH_IP))
    };
    let cube = leaks.iter().rev().max_by_key(|c| score(c))?;
    let v6_cube = cube.get(Field::EtherType).contains(ruleset::ETH_IP6)
        && !cube.get(Field::EtherType).contains(ruleset::ETH_IP);
    let prefer = |f: Field, wanted: &[u128]| -> u128 {
        let mut set = cube.get(f).clone();
        if v6_cube && matches!(f, Field::Saddr | Field::Daddr) {
            let native = &set - &ruleset::v4_space();
            if !native.is_empty() {
                set = native;
            }
        }
        wanted
            .iter()
            .copied()
            .find(|v| set.contains(*v))
            .or_else(|| set.first())
            .unwrap_or(0)
    };
    let ether_type = prefer(Field::EtherType, &[ruleset::ETH_IP, ruleset::ETH_IP6]) as u16;
    let v6 = ether_type == 0x86dd;
    let l4 = prefer(Field::L4, &[6, 17, 1, 58]) as u8;
    let addr = |f: Field, wanted: &[IpAddr]| -> IpAddr {
        let v = prefer(
            f,
            &wanted.iter().map(|a| addr_value(*a)).collect::<Vec<_>>(),
        );
        if v6 {
            IpAddr::V6(v.into())
        } else {
            IpAddr::V4(std::net::Ipv4Addr::from((v & 0xffff_ffff) as u32))
        }
    };
    // TEST-NET addresses where allowed (the lab's whoami), else the first;
    // an IPv6 packet's outside the IPv4-mapped range where it can be.
    let whoami: IpAddr = if v6 {
        "2001:db8:80::80".parse().expect("literal")
    } else {
        "192.0.2.80".parse().expect("literal")
    };
    let own: Vec<IpAddr> = links
        .underlay_addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv6() == v6)
        .collect();
    let daddr = addr(Field::Daddr, &[whoami]);
    let saddr = addr(Field::Saddr, &own);
    let fragment = prefer(Field::Frag, &[0]) == 1;
    let ported = ruleset::PORTED.contains(&u128::from(l4)) && !fragment;
    let iif = prefer(Field::Iif, &[]);
    let ct_state = {
        let v = prefer(Field::CtState, &[8, 2, 4, 64, 1]);
        space::CT_STATES
            .iter()
            .find(|(_, s)| *s == v)
            .map_or("new", |(n, _)| n)
    };
    // A SYN opens a connection; in one already established, an ACK is
    // what conntrack takes as part of it.
    let flags: &[u128] = if matches!(ct_state, "established" | "related") {
        &[0x10, 0x18, 0x02]
    } else {
        &[0x02, 0x10, 0x18]
    };
    Some(Packet {
        path,
        ether_type,
        l4,
        saddr,
        daddr,
        ports: ported.then(|| {
            (
                prefer(Field::Sport, &[40000, 1024]) as u16,
                prefer(Field::Dport, &[80, 443, 53]) as u16,
            )
        }),
        icmp: (matches!((ether_type, l4), (0x0800, 1) | (0x86dd, 58)) && !fragment).then(|| {
            (
                prefer(Field::IcmpType, &[8, 128]) as u8,
                prefer(Field::IcmpCode, &[0]) as u8,
            )
        }),
        tcp_flags: (l4 == 6 && !fragment).then(|| prefer(Field::TcpFlags, flags) as u8),
        mark: prefer(Field::Mark, &[0]) as u32,
        ct_state,
        fragment,
        dscp: prefer(Field::Dscp, &[0]) as u8,
        iif: (iif > 0)
            .then(|| links.names.get(iif as usize - 1).map(|(n, _)| n.clone()))
            .flatten(),
    })
}

/// The interfaces of `ip -j addr` (or `ip -j link`): name and index.
pub fn links_from_ip_json(text: &str, underlay: &str) -> Result<Links, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Addr {
        local: Option<IpAddr>,
    }
    #[derive(serde::Deserialize)]
    struct Link {
        ifindex: u32,
        ifname: String,
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    let links: Vec<Link> = serde_json::from_str(text)?;
    let underlay_addrs = links
        .iter()
        .filter(|l| l.ifname == underlay)
        .flat_map(|l| l.addr_info.iter().filter_map(|a| a.local))
        .collect();
    Ok(Links {
        names: links.into_iter().map(|l| (l.ifname, l.ifindex)).collect(),
        underlay: underlay.to_string(),
        underlay_addrs,
    })
}
