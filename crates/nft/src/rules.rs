//! Rules as values, before the kernel sees them: a base chain ([`Hook`]),
//! typed matches ([`M`]), all ANDed, a verdict ([`V`]) and a comment naming
//! why the rule exists ([`R`], built with its chained methods). Lists in a
//! match (several nets, ports or ICMPv6 types) match any of their items.
//! [`crate::nfnl`] lowers them to the kernel's expressions. Pure: no I/O.

use ipnet::IpNet;

/// The base chain a rule is in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hook {
    Input,
    Output,
    Forward,
    Egress,
    /// nat, before routing: only port redirects.
    Prerouting,
}

/// The nat chain's name.
pub const PREROUTING: &str = "prerouting";

impl Hook {
    /// The chain's name.
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Input => "input",
            Hook::Output => "output",
            Hook::Forward => "forward",
            Hook::Egress => "egress",
            Hook::Prerouting => PREROUTING,
        }
    }
}

/// A rule before compilation: all matches are ANDed.
#[derive(Debug, Clone)]
pub struct R {
    pub hook: Hook,
    pub matches: Vec<M>,
    pub verdict: V,
    pub comment: String,
}

/// One match of a rule; lists match any of their items. Lowered to
/// nf_tables netlink expressions by [`crate::nfnl`].
#[derive(Debug, Clone, PartialEq)]
pub enum M {
    /// Input interface is (or with `false`, is not) this one.
    Iif(String, bool),
    Oif(String),
    /// Source (or with `true`, destination) in these nets, all of one family.
    Addr {
        dst: bool,
        nets: Vec<IpNet>,
    },
    L4(L4),
    /// Source (or destination) port of this protocol.
    Port {
        proto: L4,
        dst: bool,
        ports: Vec<u16>,
    },
    /// Conntrack state in this list.
    Ct(Vec<CtState>),
    /// A nat rule rewrote the destination (ct status dnat).
    Dnatted,
    /// The packet's firewall mark.
    Mark(u32),
    /// Ethernet type ARP (netdev only).
    Arp,
    /// ICMPv6 type in this list.
    Icmpv6(Vec<Icmpv6>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp,
    Udp,
    Icmpv6,
}

impl std::fmt::Display for L4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl L4 {
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmpv6 => "ipv6-icmp",
        }
    }
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
            L4::Icmpv6 => 58,
        }
    }
    /// The protocol name of its header fields in nft.
    pub fn header(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmpv6 => "icmpv6",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    Invalid,
    Established,
    Related,
}

impl CtState {
    /// Its name in nft.
    pub fn name(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::Established => "established",
            CtState::Related => "related",
        }
    }
    /// The kernel's state bit (NF_CT_STATE_*).
    pub fn bit(self) -> u32 {
        match self {
            CtState::Invalid => 1,
            CtState::Established => 2,
            CtState::Related => 4,
        }
    }
}

/// The ICMPv6 types IPv6 needs on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6 {
    RouterSolicit,
    RouterAdvert,
    NeighborSolicit,
    NeighborAdvert,
    MldQuery,
    MldReport,
    Mld2Report,
}

impl Icmpv6 {
    /// Its name in nft.
    pub fn name(self) -> &'static str {
        match self {
            Icmpv6::RouterSolicit => "nd-router-solicit",
            Icmpv6::RouterAdvert => "nd-router-advert",
            Icmpv6::NeighborSolicit => "nd-neighbor-solicit",
            Icmpv6::NeighborAdvert => "nd-neighbor-advert",
            Icmpv6::MldQuery => "mld-listener-query",
            Icmpv6::MldReport => "mld-listener-report",
            Icmpv6::Mld2Report => "mld2-listener-report",
        }
    }
    pub fn number(self) -> u8 {
        match self {
            Icmpv6::RouterSolicit => 133,
            Icmpv6::RouterAdvert => 134,
            Icmpv6::NeighborSolicit => 135,
            Icmpv6::NeighborAdvert => 136,
            Icmpv6::MldQuery => 130,
            Icmpv6::MldReport => 131,
            Icmpv6::Mld2Report => 143,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum V {
    Accept,
    Drop,
    /// Refused with an ICMP error, so applications fail at once.
    Reject,
    /// To this local port (nat prerouting only).
    Redirect(u16),
}

impl R {
    /// A rule in `hook` that accepts everything, until matches and another
    /// verdict are added.
    pub fn new(hook: Hook, comment: impl Into<String>) -> R {
        R {
            hook,
            matches: Vec::new(),
            verdict: V::Accept,
            comment: comment.into(),
        }
    }
    pub fn m(mut self, m: M) -> R {
        self.matches.push(m);
        self
    }
    pub fn iif(self, name: &str) -> R {
        self.m(M::Iif(name.to_string(), true))
    }
    pub fn oif(self, name: &str) -> R {
        self.m(M::Oif(name.to_string()))
    }
    pub fn not_iif(self, name: &str) -> R {
        self.m(M::Iif(name.to_string(), false))
    }
    /// Source (or destination) in `nets`, which must be of one family.
    pub fn addr(self, dst: bool, nets: &[IpNet]) -> R {
        self.m(M::Addr {
            dst,
            nets: nets.to_vec(),
        })
    }
    pub fn l4(self, proto: L4) -> R {
        self.m(M::L4(proto))
    }
    pub fn port(self, proto: L4, dst: bool, ports: &[u16]) -> R {
        self.m(M::Port {
            proto,
            dst,
            ports: ports.to_vec(),
        })
    }
    pub fn ct(self, states: &[CtState]) -> R {
        self.m(M::Ct(states.to_vec()))
    }
    pub fn drop(mut self) -> R {
        self.verdict = V::Drop;
        self
    }
    pub fn reject(mut self) -> R {
        self.verdict = V::Reject;
        self
    }
    /// Only packets whose destination a nat rule rewrote.
    pub fn dnatted(self) -> R {
        self.m(M::Dnatted)
    }
    pub fn redirect(mut self, port: u16) -> R {
        self.verdict = V::Redirect(port);
        self
    }
}
