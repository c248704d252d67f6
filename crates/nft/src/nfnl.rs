//! nf_tables over netlink: rules ([`crate::rules`]) lowered to the kernel's
//! expressions (the bytecode `nft --debug=netlink` shows) and encoded as one
//! batch of nf_tables messages, the transaction `nft -f` would send; and
//! the kernel's dumps of chains, rules and set elements decoded again for
//! the read-back. Pure: values in, bytes out and back; [`crate::apply`]
//! owns the socket.
//!
//! Lists in a match (several nets, ports or ICMPv6 types) become one rule
//! per item rather than an anonymous set: the same verdict for any item, no
//! set messages or interval encoding in the transaction, and every rule
//! reads back as plain expressions. The policies are small (tens of rules).
//!
//! Also here: the audit's self-expiring cut of a live gateway's tunnel
//! ([`Cut`]), a table whose only dropping rule matches a set with a
//! timeout, so that the kernel lifts the cut by itself once the audit stops
//! renewing it.
//!
//! The constants are the kernel's uapi numbers (linux/netlink.h,
//! linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::rules::{Hook, L4, M, R, V};

// Netlink and nfnetlink.
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;

// nf_tables message types.
pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_DELTABLE: u16 = 2;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_NEWSET: u16 = 9;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_GETSETELEM: u16 = 13;
pub const NFT_MSG_DELSETELEM: u16 = 14;

// Families.
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_NETDEV: u8 = 5;
pub const NFPROTO_IPV6: u8 = 10;

// Attributes.
pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_CHAIN_TYPE: u16 = 7;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NFTA_HOOK_PRIORITY: u16 = 2;
pub const NFTA_HOOK_DEV: u16 = 3;
pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_RULE_USERDATA: u16 = 7;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_EXPR_NAME: u16 = 1;
pub const NFTA_EXPR_DATA: u16 = 2;
pub const NFTA_DATA_VALUE: u16 = 1;
pub const NFTA_DATA_VERDICT: u16 = 2;
pub const NFTA_VERDICT_CODE: u16 = 1;
pub const NFTA_SET_TABLE: u16 = 1;
pub const NFTA_SET_NAME: u16 = 2;
pub const NFTA_SET_FLAGS: u16 = 3;
pub const NFTA_SET_KEY_TYPE: u16 = 4;
pub const NFTA_SET_KEY_LEN: u16 = 5;
pub const NFTA_SET_ID: u16 = 10;
pub const NFTA_SET_TIMEOUT: u16 = 11;
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub const NFTA_SET_ELEM_KEY: u16 = 1;
pub const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
pub const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
/// Elements expire (NFT_SET_TIMEOUT).
pub const NFT_SET_TIMEOUT: u32 = 0x10;
/// nft's data types, for `nft list` (the kernel only checks the length).
pub const TYPE_IPADDR: u32 = 7;
pub const TYPE_IP6ADDR: u32 = 8;
/// libnftnl's rule comment in the rule's user data (what `nft` shows).
pub const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// nft's longest comment.
pub const COMMENT_MAX: usize = 127;

// Registers and verdicts.
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;

// Hooks.
pub const NF_INET_PRE_ROUTING: u32 = 0;
pub const NF_INET_LOCAL_IN: u32 = 1;
pub const NF_INET_FORWARD: u32 = 2;
pub const NF_INET_LOCAL_OUT: u32 = 3;
pub const NF_NETDEV_EGRESS: u32 = 1;

// Expression keys.
pub const META_PROTOCOL: u32 = 1;
pub const META_MARK: u32 = 3;
pub const META_IIFNAME: u32 = 6;
pub const META_OIFNAME: u32 = 7;
pub const META_IIFTYPE: u32 = 8;
pub const META_NFPROTO: u32 = 15;
pub const META_L4PROTO: u32 = 16;
pub const CT_STATE: u32 = 0;
pub const CT_STATUS: u32 = 2;
pub const IPS_DST_NAT: u32 = 1 << 5;
pub const PAYLOAD_LL: u32 = 0;
pub const PAYLOAD_NETWORK: u32 = 1;
pub const PAYLOAD_TRANSPORT: u32 = 2;
pub const CMP_EQ: u32 = 0;
pub const CMP_NEQ: u32 = 1;
pub const REJECT_ICMP_UNREACH: u32 = 0;
pub const REJECT_ICMPX_UNREACH: u32 = 2;
pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

/// One kernel expression (only those the kill switch uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: u32,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// reg 1 = reg 1 & mask (xor 0).
    Bitwise {
        mask: Vec<u8>,
    },
    Ct {
        key: u32,
    },
    Verdict(u32),
    /// reg 1 = data.
    Immediate(Vec<u8>),
    Counter,
    Log {
        prefix: String,
    },
    Reject {
        kind: u32,
        code: u8,
    },
    /// Redirect to the port in reg 1.
    Redir,
    /// Whether reg 1 is in the named set (found by name, also when the
    /// set is created in the same batch).
    Lookup {
        set: String,
    },
}

/// A rule as the kernel keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KRule {
    pub chain: &'static str,
    pub comment: String,
    pub exprs: Vec<Expr>,
}

/// A base chain as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KChain {
    pub family: u8,
    pub table: &'static str,
    pub name: String,
    pub hook: u32,
    pub priority: i32,
    pub dev: Option<String>,
    pub policy: u32,
    pub kind: &'static str,
}

/// An interface name as the kernel compares it: 16 bytes, NUL-padded
/// (IFNAMSIZ), cut to 15.
pub fn ifname(name: &str) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

/// A single-valued match: lists are expanded before lowering.
#[derive(Debug, Clone, PartialEq)]
enum One {
    Iif(String, bool),
    Oif(String),
    Addr { dst: bool, net: IpNet },
    L4(L4),
    Port { proto: L4, dst: bool, port: u16 },
    Ct(u32),
    Dnatted,
    Mark(u32),
    Arp,
    Icmpv6(u8),
}

/// Every combination of the rule's list items: one list of single matches
/// per kernel rule.
fn expand(matches: &[M]) -> Vec<Vec<One>> {
    let mut out: Vec<Vec<One>> = vec![Vec::new()];
    for m in matches {
        let items: Vec<One> = match m {
            M::Iif(n, is) => vec![One::Iif(n.clone(), *is)],
            M::Oif(n) => vec![One::Oif(n.clone())],
            M::Addr { dst, nets } => nets
                .iter()
                .map(|n| One::Addr { dst: *dst, net: *n })
                .collect(),
            M::L4(p) => vec![One::L4(*p)],
            M::Port { proto, dst, ports } => ports
                .iter()
                .map(|p| One::Port {
                    proto: *proto,
                    dst: *dst,
                    port: *p,
                })
                .collect(),
            M::Ct(states) => vec![One::Ct(
                states.iter().map(|s| s.bit()).fold(0, |a, b| a | b),
            )],
            M::Dnatted => vec![One::Dnatted],
            M::Mark(v) => vec![One::Mark(*v)],
            M::Arp => vec![One::Arp],
            M::Icmpv6(types) => types.iter().map(|t| One::Icmpv6(t.number())).collect(),
        };
        out = out
            .into_iter()
            .flat_map(|prefix| {
                items.iter().map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i.clone());
                    p
                })
            })
            .collect();
    }
    out
}

fn load_cmp(load: Expr, op: u32, data: Vec<u8>) -> [Expr; 2] {
    [load, Expr::Cmp { op, data }]
}

/// The expressions of one expanded rule in `family`, with the protocol
/// dependencies nft would add (network protocol before an address, layer 4
/// protocol before a port or ICMPv6 type, link type before an ether type).
fn lower(family: u8, ones: &[One], verdict: V, debug: bool) -> Vec<Expr> {
    let mut l = Lowering {
        family,
        e: Vec::new(),
        net: None,
        l4: None,
    };
    for one in ones {
        l.one(one);
    }
    if debug {
        l.e.push(Expr::Counter);
    }
    l.verdict(verdict);
    l.e
}

/// One rule being lowered: its expressions so far and the protocols they
/// already fixed.
struct Lowering {
    family: u8,
    e: Vec<Expr>,
    /// Some(v6) once the network protocol is known.
    net: Option<bool>,
    l4: Option<L4>,
}

impl Lowering {
    fn need_net(&mut self, v6: bool) {
        if self.net == Some(v6) {
            return;
        }
        if self.family == NFPROTO_NETDEV {
            let proto: u16 = if v6 { 0x86dd } else { 0x0800 };
            self.e.extend(load_cmp(
                Expr::Meta { key: META_PROTOCOL },
                CMP_EQ,
                proto.to_be_bytes().to_vec(),
            ));
        } else {
            self.e.extend(load_cmp(
                Expr::Meta { key: META_NFPROTO },
                CMP_EQ,
                vec![if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }],
            ));
        }
        self.net = Some(v6);
    }

    fn need_l4(&mut self, p: L4) {
        if self.l4 != Some(p) {
            self.e.extend(load_cmp(
                Expr::Meta { key: META_L4PROTO },
                CMP_EQ,
                vec![p.number()],
            ));
            self.l4 = Some(p);
        }
    }

    fn one(&mut self, one: &One) {
        let e = &mut self.e;
        match one {
            One::Iif(name, is) => e.extend(load_cmp(
                Expr::Meta { key: META_IIFNAME },
                if *is { CMP_EQ } else { CMP_NEQ },
                ifname(name),
            )),
            One::Oif(name) => e.extend(load_cmp(
                Expr::Meta { key: META_OIFNAME },
                CMP_EQ,
                ifname(name),
            )),
            One::Addr { dst, net } => self.addr(*dst, *net),
            One::L4(p) => self.need_l4(*p),
            One::Port { proto, dst, port } => {
                self.need_l4(*proto);
                self.e.extend(load_cmp(
                    Expr::Payload {
                        base: PAYLOAD_TRANSPORT,
                        offset: if *dst { 2 } else { 0 },
                        len: 2,
                    },
                    CMP_EQ,
                    port.to_be_bytes().to_vec(),
                ));
            }
            One::Icmpv6(t) => {
                self.need_l4(L4::Icmpv6);
                self.e.extend(load_cmp(
                    Expr::Payload {
                        base: PAYLOAD_TRANSPORT,
                        offset: 0,
                        len: 1,
                    },
                    CMP_EQ,
                    vec![*t],
                ));
            }
            One::Ct(bits) => ct_bits(e, CT_STATE, *bits),
            One::Dnatted => ct_bits(e, CT_STATUS, IPS_DST_NAT),
            One::Mark(v) => e.extend(load_cmp(
                Expr::Meta { key: META_MARK },
                CMP_EQ,
                v.to_ne_bytes().to_vec(),
            )),
            One::Arp => {
                // ARPHRD_ETHER: an ether type only means something on Ethernet.
                e.extend(load_cmp(
                    Expr::Meta { key: META_IIFTYPE },
                    CMP_EQ,
                    1u16.to_ne_bytes().to_vec(),
                ));
                e.extend(load_cmp(
                    Expr::Payload {
                        base: PAYLOAD_LL,
                        offset: 12,
                        len: 2,
                    },
                    CMP_EQ,
                    0x0806u16.to_be_bytes().to_vec(),
                ));
            }
        }
    }

    /// A source (or destination) address in `n`, after its network
    /// protocol.
    fn addr(&mut self, dst: bool, n: IpNet) {
        self.need_net(n.addr().is_ipv6());
        let (offset, bytes): (u32, Vec<u8>) = match (n.network(), dst) {
            (IpAddr::V4(a), false) => (12, a.octets().to_vec()),
            (IpAddr::V4(a), true) => (16, a.octets().to_vec()),
            (IpAddr::V6(a), false) => (8, a.octets().to_vec()),
            (IpAddr::V6(a), true) => (24, a.octets().to_vec()),
        };
        let bits = usize::from(n.prefix_len());
        if bits % 8 == 0 {
            // Byte-aligned: compare only the prefix's bytes.
            let len = bits / 8;
            if len == 0 {
                return; // /0 matches any address of the family
            }
            self.e.extend(load_cmp(
                Expr::Payload {
                    base: PAYLOAD_NETWORK,
                    offset,
                    len: len as u32,
                },
                CMP_EQ,
                bytes[..len].to_vec(),
            ));
        } else {
            let mask: Vec<u8> = match n.netmask() {
                IpAddr::V4(m) => m.octets().to_vec(),
                IpAddr::V6(m) => m.octets().to_vec(),
            };
            self.e.push(Expr::Payload {
                base: PAYLOAD_NETWORK,
                offset,
                len: bytes.len() as u32,
            });
            self.e.push(Expr::Bitwise { mask });
            self.e.push(Expr::Cmp {
                op: CMP_EQ,
                data: bytes,
            });
        }
    }

    fn verdict(&mut self, verdict: V) {
        match verdict {
            V::Accept => self.e.push(Expr::Verdict(NF_ACCEPT)),
            V::Drop => self.e.push(Expr::Verdict(NF_DROP)),
            // As nft: port unreachable in the packet's own ICMP when the rule
            // fixed the network protocol, ICMPx (either) otherwise.
            V::Reject => self.e.push(match self.net {
                Some(false) => Expr::Reject {
                    kind: REJECT_ICMP_UNREACH,
                    code: 3,
                },
                Some(true) => Expr::Reject {
                    kind: REJECT_ICMP_UNREACH,
                    code: 4,
                },
                None => Expr::Reject {
                    kind: REJECT_ICMPX_UNREACH,
                    code: 1,
                },
            }),
            V::Redirect(port) => {
                self.e.push(Expr::Immediate(port.to_be_bytes().to_vec()));
                self.e.push(Expr::Redir);
            }
        }
    }
}

/// A conntrack key (`key`) with any of these bits set.
fn ct_bits(e: &mut Vec<Expr>, key: u32, bits: u32) {
    e.push(Expr::Ct { key });
    e.push(Expr::Bitwise {
        mask: bits.to_ne_bytes().to_vec(),
    });
    e.push(Expr::Cmp {
        op: CMP_NEQ,
        data: vec![0; 4],
    });
}

/// The two tables a [`Ruleset`] fills, each replaced as a whole by its
/// batch: an inet table for the filter chains (and the nat chain), a netdev
/// table for the egress chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tables {
    pub inet: &'static str,
    pub netdev: &'static str,
}

impl Tables {
    /// Both, as (family, table), inet first.
    pub fn both(self) -> [(u8, &'static str); 2] {
        [(NFPROTO_INET, self.inet), (NFPROTO_NETDEV, self.netdev)]
    }

    /// (family, table) of the chain of `hook`.
    pub fn of(self, hook: Hook) -> (u8, &'static str) {
        if hook == Hook::Egress {
            (NFPROTO_NETDEV, self.netdev)
        } else {
            (NFPROTO_INET, self.inet)
        }
    }
}

fn comment(c: &str) -> String {
    let mut c = c.to_string();
    while c.len() > COMMENT_MAX {
        c.pop();
    }
    c
}

/// The kernel rules of `rules` in `tables`, in order: (family, table,
/// rule), one per combination of the rule's list items; with `debug`, each
/// counts what it matches.
pub fn kernel_rules(tables: Tables, rules: &[R], debug: bool) -> Vec<(u8, &'static str, KRule)> {
    let mut out = Vec::new();
    for r in rules {
        let (family, table) = tables.of(r.hook);
        for ones in expand(&r.matches) {
            out.push((
                family,
                table,
                KRule {
                    chain: r.hook.chain(),
                    comment: comment(&r.comment),
                    exprs: lower(family, &ones, r.verdict, debug),
                },
            ));
        }
    }
    out
}

fn hook_number(h: Hook) -> u32 {
    match h {
        Hook::Input => NF_INET_LOCAL_IN,
        Hook::Output => NF_INET_LOCAL_OUT,
        Hook::Forward => NF_INET_FORWARD,
        Hook::Prerouting => NF_INET_PRE_ROUTING,
        Hook::Egress => NF_NETDEV_EGRESS,
    }
}

impl KChain {
    /// The base chain of `hook` in `tables`: the nat chain (prerouting)
    /// only rewrites ports, so it accepts, at nat priority (-100); every
    /// filter chain drops what no rule lets through, at priority 0. `dev`
    /// is the device of an egress chain.
    pub fn base(tables: Tables, hook: Hook, dev: Option<String>) -> KChain {
        let (family, table) = tables.of(hook);
        let nat = hook == Hook::Prerouting;
        KChain {
            family,
            table,
            name: hook.chain().to_string(),
            hook: hook_number(hook),
            priority: if nat { -100 } else { 0 },
            dev,
            policy: if nat { NF_ACCEPT } else { NF_DROP },
            kind: if nat { "nat" } else { "filter" },
        }
    }
}

/// What the kernel holds once a batch is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// The tables the batch replaces and the read-back dumps.
    pub tables: Tables,
    pub chains: Vec<KChain>,
    /// (family, table, rule) in order.
    pub rules: Vec<(u8, &'static str, KRule)>,
}

impl Ruleset {
    /// Everything but loopback dropped, on every interface, raw frames
    /// included (an egress chain per device in `devices`).
    pub fn lockdown(tables: Tables, devices: &[String]) -> Ruleset {
        let mut chains: Vec<KChain> = [Hook::Input, Hook::Output, Hook::Forward]
            .into_iter()
            .map(|h| KChain {
                family: NFPROTO_INET,
                table: tables.inet,
                name: h.chain().to_string(),
                hook: hook_number(h),
                priority: 0,
                dev: None,
                policy: NF_DROP,
                kind: "filter",
            })
            .collect();
        for dev in devices.iter().filter(|d| d.as_str() != "lo") {
            chains.push(KChain {
                family: NFPROTO_NETDEV,
                table: tables.netdev,
                name: format!("egress_{dev}"),
                hook: NF_NETDEV_EGRESS,
                priority: 0,
                dev: Some(dev.clone()),
                policy: NF_DROP,
                kind: "filter",
            });
        }
        let rules = [
            (Hook::Input, "loopback in", One::Iif("lo".into(), true)),
            (Hook::Output, "loopback out", One::Oif("lo".into())),
        ]
        .into_iter()
        .map(|(h, c, m)| {
            (
                NFPROTO_INET,
                tables.inet,
                KRule {
                    chain: h.chain(),
                    comment: c.into(),
                    exprs: lower(NFPROTO_INET, &[m], V::Accept, false),
                },
            )
        })
        .collect();
        Ruleset {
            tables,
            chains,
            rules,
        }
    }

    /// One atomic batch: both tables deleted (created first, so the delete
    /// never fails) and created again with this ruleset. `seq` numbers the
    /// messages from there on; returns the bytes and (sequence number, what
    /// it does) of every message that asks for an acknowledgement.
    pub fn batch(&self, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
        let mut w = Writer::new(seq);
        w.begin_batch();
        for (family, table) in self.tables.both() {
            for (ty, flags) in [
                (NFT_MSG_NEWTABLE, NLM_F_CREATE),
                (NFT_MSG_DELTABLE, 0),
                (NFT_MSG_NEWTABLE, NLM_F_CREATE),
            ] {
                let verb = if ty == NFT_MSG_DELTABLE {
                    "deleting"
                } else {
                    "creating"
                };
                let m = w.msg(ty, flags, family, format!("{verb} table {table}"));
                w.str(NFTA_TABLE_NAME, table);
                w.end(m);
            }
        }
        for c in &self.chains {
            let m = w.msg(
                NFT_MSG_NEWCHAIN,
                NLM_F_CREATE,
                c.family,
                format!("creating chain {} {}", c.table, c.name),
            );
            w.str(NFTA_CHAIN_TABLE, c.table);
            w.str(NFTA_CHAIN_NAME, &c.name);
            let h = w.nest(NFTA_CHAIN_HOOK);
            w.u32(NFTA_HOOK_HOOKNUM, c.hook);
            w.u32(NFTA_HOOK_PRIORITY, c.priority as u32);
            if let Some(d) = &c.dev {
                w.str(NFTA_HOOK_DEV, d);
            }
            w.close(h);
            w.u32(NFTA_CHAIN_POLICY, c.policy);
            w.str(NFTA_CHAIN_TYPE, c.kind);
            w.end(m);
        }
        for (family, table, r) in &self.rules {
            let m = w.msg(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                *family,
                format!("adding rule {:?} to chain {table} {}", r.comment, r.chain),
            );
            w.str(NFTA_RULE_TABLE, table);
            w.str(NFTA_RULE_CHAIN, r.chain);
            let list = w.nest(NFTA_RULE_EXPRESSIONS);
            for e in &r.exprs {
                encode_expr(&mut w, e);
            }
            w.close(list);
            let mut ud = vec![NFTNL_UDATA_RULE_COMMENT, (r.comment.len() + 1) as u8];
            ud.extend_from_slice(r.comment.as_bytes());
            ud.push(0);
            w.attr(NFTA_RULE_USERDATA, &ud);
            w.end(m);
        }
        w.end_batch();
        (w.buf, w.acked)
    }
}

/// Both tables removed, atomically (each created first, so the delete never
/// fails).
pub fn removal_batch(tables: Tables, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut w = Writer::new(seq);
    w.begin_batch();
    for (family, table) in tables.both() {
        for (ty, flags) in [(NFT_MSG_NEWTABLE, NLM_F_CREATE), (NFT_MSG_DELTABLE, 0)] {
            let m = w.msg(ty, flags, family, format!("removing table {table}"));
            w.str(NFTA_TABLE_NAME, table);
            w.end(m);
        }
    }
    w.end_batch();
    (w.buf, w.acked)
}

/// The audit's table: its only chain drops the tunnel's packets to an
/// endpoint while that endpoint is an element of its set, and accepts
/// everything else; empty, it changes nothing.
pub const CUT_TABLE: &str = "leakhound_audit_block";
/// The set of endpoint addresses currently cut.
pub const CUT_SET: &str = "cut";
/// The output chain, ahead of every other (the gateway's kill switch is at 0).
pub const CUT_CHAIN: &str = "out";
pub const CUT_PRIORITY: i32 = -400;

/// A self-expiring cut of the tunnel to `endpoint`: its packets (UDP to
/// the endpoint's address and port, leaving the namespace) are dropped
/// while the endpoint's address is in [`CUT_SET`], an element the kernel
/// removes by itself `timeout` after it was last (re)added. The set's own
/// default timeout is the same, so no element of it can live forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub endpoint: SocketAddr,
    pub timeout: Duration,
}

impl Cut {
    fn key(&self) -> Vec<u8> {
        match self.endpoint.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    fn timeout_ms(&self) -> u64 {
        // The kernel refuses a zero timeout; a cut of less than 1 ms is none.
        (self.timeout.as_millis() as u64).max(1)
    }

    /// The chain's one rule: `meta nfproto ipv4|ipv6 meta l4proto udp udp
    /// dport PORT ip[6] daddr @cut drop`.
    pub fn rule(&self) -> KRule {
        let v6 = self.endpoint.is_ipv6();
        let mut exprs = Vec::new();
        exprs.extend(load_cmp(
            Expr::Meta { key: META_NFPROTO },
            CMP_EQ,
            vec![if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }],
        ));
        exprs.extend(load_cmp(
            Expr::Meta { key: META_L4PROTO },
            CMP_EQ,
            vec![L4::Udp.number()],
        ));
        exprs.extend(load_cmp(
            Expr::Payload {
                base: PAYLOAD_TRANSPORT,
                offset: 2,
                len: 2,
            },
            CMP_EQ,
            self.endpoint.port().to_be_bytes().to_vec(),
        ));
        exprs.push(Expr::Payload {
            base: PAYLOAD_NETWORK,
            offset: if v6 { 24 } else { 16 },
            len: if v6 { 16 } else { 4 },
        });
        exprs.push(Expr::Lookup {
            set: CUT_SET.into(),
        });
        exprs.push(Expr::Verdict(NF_DROP));
        KRule {
            chain: CUT_CHAIN,
            comment: format!("leakhound audit: tunnel to {} cut", self.endpoint),
            exprs,
        }
    }

    /// One atomic batch: any earlier cut table removed, the table made
    /// again with its set, chain and rule, and the endpoint added to the
    /// set with the timeout. From the commit on, the tunnel is cut until
    /// the element expires or is renewed.
    pub fn arm_batch(&self, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
        let mut w = Writer::new(seq);
        w.begin_batch();
        for (ty, flags) in [
            (NFT_MSG_NEWTABLE, NLM_F_CREATE),
            (NFT_MSG_DELTABLE, 0),
            (NFT_MSG_NEWTABLE, NLM_F_CREATE),
        ] {
            let verb = if ty == NFT_MSG_DELTABLE {
                "deleting"
            } else {
                "creating"
            };
            let m = w.msg(ty, flags, NFPROTO_INET, format!("{verb} table {CUT_TABLE}"));
            w.str(NFTA_TABLE_NAME, CUT_TABLE);
            w.end(m);
        }
        let key = self.key();
        let m = w.msg(
            NFT_MSG_NEWSET,
            NLM_F_CREATE,
            NFPROTO_INET,
            format!("creating set {CUT_TABLE} {CUT_SET}"),
        );
        w.str(NFTA_SET_TABLE, CUT_TABLE);
        w.str(NFTA_SET_NAME, CUT_SET);
        w.u32(NFTA_SET_FLAGS, NFT_SET_TIMEOUT);
        w.u32(
            NFTA_SET_KEY_TYPE,
            if key.len() == 16 {
                TYPE_IP6ADDR
            } else {
                TYPE_IPADDR
            },
        );
        w.u32(NFTA_SET_KEY_LEN, key.len() as u32);
        w.u32(NFTA_SET_ID, 1);
        w.attr(NFTA_SET_TIMEOUT, &self.timeout_ms().to_be_bytes());
        w.end(m);
        let m = w.msg(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            NFPROTO_INET,
            format!("creating chain {CUT_TABLE} {CUT_CHAIN}"),
        );
        w.str(NFTA_CHAIN_TABLE, CUT_TABLE);
        w.str(NFTA_CHAIN_NAME, CUT_CHAIN);
        let h = w.nest(NFTA_CHAIN_HOOK);
        w.u32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
        w.u32(NFTA_HOOK_PRIORITY, CUT_PRIORITY as u32);
        w.close(h);
        w.u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
        w.str(NFTA_CHAIN_TYPE, "filter");
        w.end(m);
        let r = self.rule();
        let m = w.msg(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            NFPROTO_INET,
            format!(
                "adding rule {:?} to chain {CUT_TABLE} {CUT_CHAIN}",
                r.comment
            ),
        );
        w.str(NFTA_RULE_TABLE, CUT_TABLE);
        w.str(NFTA_RULE_CHAIN, CUT_CHAIN);
        let list = w.nest(NFTA_RULE_EXPRESSIONS);
        for e in &r.exprs {
            encode_expr(&mut w, e);
        }
        w.close(list);
        let mut ud = vec![NFTNL_UDATA_RULE_COMMENT, (r.comment.len() + 1) as u8];
        ud.extend_from_slice(r.comment.as_bytes());
        ud.push(0);
        w.attr(NFTA_RULE_USERDATA, &ud);
        w.end(m);
        self.element(&mut w, NFT_MSG_NEWSETELEM, true);
        w.end_batch();
        (w.buf, w.acked)
    }

    /// One atomic batch that gives the element its full timeout again:
    /// deleted and added with the timeout. Fails (ENOENT, and the batch is
    /// void) when the element has expired or the table is gone, so that a
    /// renewal never brings back a cut that was lifted.
    pub fn renew_batch(&self, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
        let mut w = Writer::new(seq);
        w.begin_batch();
        self.element(&mut w, NFT_MSG_DELSETELEM, false);
        self.element(&mut w, NFT_MSG_NEWSETELEM, true);
        w.end_batch();
        (w.buf, w.acked)
    }

    /// A set element message for the endpoint's address.
    fn element(&self, w: &mut Writer, ty: u16, with_timeout: bool) {
        let (flags, verb) = match ty {
            NFT_MSG_DELSETELEM => (0, "removing"),
            _ => (NLM_F_CREATE, "adding"),
        };
        let m = w.msg(
            ty,
            flags,
            NFPROTO_INET,
            format!("{verb} {} in set {CUT_TABLE} {CUT_SET}", self.endpoint.ip()),
        );
        w.str(NFTA_SET_ELEM_LIST_TABLE, CUT_TABLE);
        w.str(NFTA_SET_ELEM_LIST_SET, CUT_SET);
        let list = w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        let el = w.nest(NFTA_LIST_ELEM);
        let k = w.nest(NFTA_SET_ELEM_KEY);
        w.attr(NFTA_DATA_VALUE, &self.key());
        w.close(k);
        if with_timeout {
            w.attr(NFTA_SET_ELEM_TIMEOUT, &self.timeout_ms().to_be_bytes());
        }
        w.close(el);
        w.close(list);
        w.end(m);
    }
}

/// The cut's table removed (created first, so the delete never fails):
/// whatever it cut flows again from the commit on.
pub fn cut_removal_batch(seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut w = Writer::new(seq);
    w.begin_batch();
    for (ty, flags) in [(NFT_MSG_NEWTABLE, NLM_F_CREATE), (NFT_MSG_DELTABLE, 0)] {
        let m = w.msg(
            ty,
            flags,
            NFPROTO_INET,
            format!("removing table {CUT_TABLE}"),
        );
        w.str(NFTA_TABLE_NAME, CUT_TABLE);
        w.end(m);
    }
    w.end_batch();
    (w.buf, w.acked)
}

/// A dump request for every element of the cut's set.
pub fn cut_dump_request(seq: u32) -> Vec<u8> {
    let mut w = Writer::new(seq);
    let m = w.start(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
        NLM_F_REQUEST | NLM_F_DUMP,
        NFPROTO_INET,
        0,
    );
    w.str(NFTA_SET_ELEM_LIST_TABLE, CUT_TABLE);
    w.str(NFTA_SET_ELEM_LIST_SET, CUT_SET);
    w.end(m);
    w.buf
}

/// A set element as the kernel dumps it (or as it was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedElem {
    pub key: Vec<u8>,
    pub timeout: Option<Duration>,
    /// How long until the kernel removes it.
    pub expires_in: Option<Duration>,
}

fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// The table, set and elements of an NFT_MSG_NEWSETELEM message (a dump's
/// reply, or a message of a batch).
pub fn decode_set_elems(r: &Reply<'_>) -> Option<(String, String, Vec<DumpedElem>)> {
    if r.ty != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM || r.payload.len() < 4 {
        return None;
    }
    let a = attrs(&r.payload[4..]);
    let elems = get(&a, NFTA_SET_ELEM_LIST_ELEMENTS)
        .map(|l| {
            attrs(l)
                .into_iter()
                .filter(|(t, _)| *t == NFTA_LIST_ELEM)
                .filter_map(|(_, el)| {
                    let e = attrs(el);
                    let key = get(&attrs(get(&e, NFTA_SET_ELEM_KEY)?), NFTA_DATA_VALUE)?.to_vec();
                    let ms = |ty| get(&e, ty).and_then(be64).map(Duration::from_millis);
                    Some(DumpedElem {
                        key,
                        timeout: ms(NFTA_SET_ELEM_TIMEOUT),
                        expires_in: ms(NFTA_SET_ELEM_EXPIRATION),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some((
        cstr(get(&a, NFTA_SET_ELEM_LIST_TABLE)?),
        cstr(get(&a, NFTA_SET_ELEM_LIST_SET)?),
        elems,
    ))
}

/// A dump request: every chain of `family`, or every rule of `table`.
pub fn dump_request(seq: u32, family: u8, rules_of: Option<&str>) -> Vec<u8> {
    let mut w = Writer::new(seq);
    let ty = if rules_of.is_some() {
        NFT_MSG_GETRULE
    } else {
        NFT_MSG_GETCHAIN
    };
    let m = w.start(
        (NFNL_SUBSYS_NFTABLES << 8) | ty,
        NLM_F_REQUEST | NLM_F_DUMP,
        family,
        0,
    );
    if let Some(t) = rules_of {
        w.str(NFTA_RULE_TABLE, t);
    }
    w.end(m);
    w.buf
}

fn encode_expr(w: &mut Writer, e: &Expr) {
    let el = w.nest(NFTA_LIST_ELEM);
    let name = match e {
        Expr::Meta { .. } => "meta",
        Expr::Payload { .. } => "payload",
        Expr::Cmp { .. } => "cmp",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Ct { .. } => "ct",
        Expr::Verdict(_) | Expr::Immediate(_) => "immediate",
        Expr::Counter => "counter",
        Expr::Log { .. } => "log",
        Expr::Reject { .. } => "reject",
        Expr::Redir => "redir",
        Expr::Lookup { .. } => "lookup",
    };
    w.str(NFTA_EXPR_NAME, name);
    let d = w.nest(NFTA_EXPR_DATA);
    for (ty, a) in expr_attrs(e) {
        match a {
            A::U32(v) => w.u32(ty, v),
            A::U64(v) => w.attr(ty, &v.to_be_bytes()),
            A::U8(v) => w.attr(ty, &[v]),
            A::Str(s) => w.str(ty, &s),
            A::Data(b) => {
                let n = w.nest(ty);
                w.attr(NFTA_DATA_VALUE, &b);
                w.close(n);
            }
            A::Verdict(code) => {
                let n = w.nest(ty);
                let v = w.nest(NFTA_DATA_VERDICT);
                w.u32(NFTA_VERDICT_CODE, code);
                w.close(v);
                w.close(n);
            }
        }
    }
    w.close(d);
    w.close(el);
}

/// An expression attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum A {
    U32(u32),
    U64(u64),
    U8(u8),
    Str(String),
    /// Nested NFTA_DATA_VALUE.
    Data(Vec<u8>),
    /// Nested NFTA_DATA_VERDICT / NFTA_VERDICT_CODE.
    Verdict(u32),
}

/// The attributes an expression is sent with (the kernel's numbering for
/// each expression type).
fn expr_attrs(e: &Expr) -> Vec<(u16, A)> {
    match e {
        // NFTA_META_DREG 1, KEY 2
        Expr::Meta { key } => vec![(2, A::U32(*key)), (1, A::U32(REG_1))],
        // NFTA_PAYLOAD_DREG 1, BASE 2, OFFSET 3, LEN 4
        Expr::Payload { base, offset, len } => vec![
            (1, A::U32(REG_1)),
            (2, A::U32(*base)),
            (3, A::U32(*offset)),
            (4, A::U32(*len)),
        ],
        // NFTA_CMP_SREG 1, OP 2, DATA 3
        Expr::Cmp { op, data } => vec![
            (1, A::U32(REG_1)),
            (2, A::U32(*op)),
            (3, A::Data(data.clone())),
        ],
        // NFTA_BITWISE_SREG 1, DREG 2, LEN 3, MASK 4, XOR 5
        Expr::Bitwise { mask } => vec![
            (1, A::U32(REG_1)),
            (2, A::U32(REG_1)),
            (3, A::U32(mask.len() as u32)),
            (4, A::Data(mask.clone())),
            (5, A::Data(vec![0; mask.len()])),
        ],
        // NFTA_CT_DREG 1, KEY 2
        Expr::Ct { key } => vec![(2, A::U32(*key)), (1, A::U32(REG_1))],
        // NFTA_IMMEDIATE_DREG 1, DATA 2
        Expr::Verdict(code) => vec![(1, A::U32(REG_VERDICT)), (2, A::Verdict(*code))],
        Expr::Immediate(data) => vec![(1, A::U32(REG_1)), (2, A::Data(data.clone()))],
        // NFTA_COUNTER_BYTES 1, PACKETS 2
        Expr::Counter => vec![(1, A::U64(0)), (2, A::U64(0))],
        // NFTA_LOG_PREFIX 2
        Expr::Log { prefix } => vec![(2, A::Str(prefix.clone()))],
        // NFTA_REJECT_TYPE 1, ICMP_CODE 2
        Expr::Reject { kind, code } => vec![(1, A::U32(*kind)), (2, A::U8(*code))],
        // NFTA_REDIR_REG_PROTO_MIN 1, MAX 2, FLAGS 3
        Expr::Redir => vec![
            (1, A::U32(REG_1)),
            (2, A::U32(REG_1)),
            (3, A::U32(NF_NAT_RANGE_PROTO_SPECIFIED)),
        ],
        // NFTA_LOOKUP_SET 1, SREG 2
        Expr::Lookup { set } => vec![(1, A::Str(set.clone())), (2, A::U32(REG_1))],
    }
}

/// Builds netlink messages with attributes.
struct Writer {
    buf: Vec<u8>,
    seq: u32,
    /// (sequence number, what the message does) of every acknowledged one.
    acked: Vec<(u32, String)>,
}

impl Writer {
    fn new(seq: u32) -> Writer {
        Writer {
            buf: Vec::with_capacity(16 * 1024),
            seq,
            acked: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Starts a message (header and nfgenmsg); returns where it starts.
    fn start(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.seq += 1;
        at
    }

    /// An nf_tables message inside a batch, acknowledged.
    fn msg(&mut self, ty: u16, flags: u16, family: u8, what: String) -> usize {
        self.acked.push((self.seq, what));
        self.start(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            family,
            0,
        )
    }

    fn begin_batch(&mut self) {
        let m = self.start(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end(m);
    }

    fn end_batch(&mut self) {
        let m = self.start(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end(m);
    }

    /// Ends a message started at `at`: writes its length.
    fn end(&mut self, at: usize) {
        let len = self.buf.len() - at;
        self.buf[at..at + 4].copy_from_slice(&(len as u32).to_ne_bytes());
        self.pad();
    }

    /// Ends a nested attribute started at `at`: writes its length.
    fn close(&mut self, at: usize) {
        let len = self.buf.len() - at;
        self.buf[at..at + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self.pad();
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn str(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(ty, &b);
    }

    fn u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// Starts a nested attribute; [`Writer::close`] ends it.
    fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }
}

/// One netlink message from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// After the netlink header.
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a netlink message runs past the end of what was received")]
    Truncated,
}

/// Splits what one `recv` returned into messages.
pub fn replies(buf: &[u8]) -> Result<Vec<Reply<'_>>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || at + len > buf.len() {
            return Err(DecodeError::Truncated);
        }
        out.push(Reply {
            ty: u16::from_ne_bytes([buf[at + 4], buf[at + 5]]),
            flags: u16::from_ne_bytes([buf[at + 6], buf[at + 7]]),
            seq: u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes")),
            payload: &buf[at + 16..at + len],
        });
        at += len.next_multiple_of(4);
    }
    Ok(out)
}

/// For an NLMSG_ERROR: (errno, the sequence number it answers); errno 0 is
/// an acknowledgement.
pub fn error_of(r: &Reply<'_>) -> Option<(i32, u32)> {
    if r.ty != NLMSG_ERROR || r.payload.len() < 4 + 16 {
        return None;
    }
    let err = i32::from_ne_bytes(r.payload[0..4].try_into().ok()?);
    let seq = u32::from_ne_bytes(r.payload[12..16].try_into().ok()?);
    Some((-err, seq))
}

/// True for the last message of a dump.
pub fn is_done(r: &Reply<'_>) -> bool {
    r.ty == NLMSG_DONE || (r.flags & NLM_F_MULTI == 0 && r.ty != NLMSG_ERROR)
}

/// Attributes: (type without flags, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

fn get<'a>(a: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    a.iter().find(|(t, _)| *t == ty).map(|(_, v)| *v)
}

fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(b)).into_owned()
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// A chain as dumped: (family, table, name, hook number, policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedChain {
    pub family: u8,
    pub table: String,
    pub name: String,
    pub hook: Option<u32>,
    pub policy: Option<u32>,
}

/// A chain from an NFT_MSG_NEWCHAIN message of a dump.
pub fn decode_chain(r: &Reply<'_>) -> Option<DumpedChain> {
    if r.ty != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN || r.payload.len() < 4 {
        return None;
    }
    let a = attrs(&r.payload[4..]);
    let hook = get(&a, NFTA_CHAIN_HOOK).and_then(|h| be32(get(&attrs(h), NFTA_HOOK_HOOKNUM)?));
    Some(DumpedChain {
        family: r.payload[0],
        table: cstr(get(&a, NFTA_CHAIN_TABLE)?),
        name: cstr(get(&a, NFTA_CHAIN_NAME)?),
        hook,
        policy: get(&a, NFTA_CHAIN_POLICY).and_then(be32),
    })
}

/// An expression as bytes: its name and its attributes (nests kept raw).
pub type RawExpr = (String, Vec<(u16, Vec<u8>)>);

/// A rule as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedRule {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub comment: Option<String>,
    pub exprs: Vec<RawExpr>,
}

fn raw_exprs(list: &[u8]) -> Vec<RawExpr> {
    attrs(list)
        .into_iter()
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .map(|(_, el)| {
            let a = attrs(el);
            let name = get(&a, NFTA_EXPR_NAME).map(cstr).unwrap_or_default();
            let data = get(&a, NFTA_EXPR_DATA)
                .map(|d| attrs(d).into_iter().map(|(t, v)| (t, v.to_vec())).collect())
                .unwrap_or_default();
            (name, data)
        })
        .collect()
}

/// A rule from an NFT_MSG_NEWRULE message of a dump.
pub fn decode_rule(r: &Reply<'_>) -> Option<DumpedRule> {
    if r.ty != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE || r.payload.len() < 4 {
        return None;
    }
    let a = attrs(&r.payload[4..]);
    let comment = get(&a, NFTA_RULE_USERDATA).and_then(|ud| {
        // TLVs: type, length, value.
        let mut at = 0;
        while at + 2 <= ud.len() {
            let (t, l) = (ud[at], usize::from(ud[at + 1]));
            let v = ud.get(at + 2..at + 2 + l)?;
            if t == NFTNL_UDATA_RULE_COMMENT {
                return Some(cstr(v));
            }
            at += 2 + l;
        }
        None
    });
    Some(DumpedRule {
        family: r.payload[0],
        table: cstr(get(&a, NFTA_RULE_TABLE)?),
        chain: cstr(get(&a, NFTA_RULE_CHAIN)?),
        comment,
        exprs: get(&a, NFTA_RULE_EXPRESSIONS)
            .map(raw_exprs)
            .unwrap_or_default(),
    })
}

/// `rule` as the kernel should dump it: what it was sent with, as raw
/// expressions.
pub fn expected_raw(rule: &KRule) -> Vec<RawExpr> {
    let mut w = Writer::new(0);
    let list = w.nest(NFTA_RULE_EXPRESSIONS);
    for e in &rule.exprs {
        encode_expr(&mut w, e);
    }
    w.close(list);
    let a = attrs(&w.buf);
    raw_exprs(a[0].1)
}

/// Whether a dumped expression is the one sent: the same name and every
/// attribute sent there with the same bytes (the kernel may add its own,
/// such as a bitwise operation or a log level); a counter's values are
/// whatever it has counted.
pub fn same_expr(sent: &RawExpr, dumped: &RawExpr) -> bool {
    sent.0 == dumped.0
        && (sent.0 == "counter"
            || sent
                .1
                .iter()
                .all(|(t, v)| dumped.1.iter().any(|(dt, dv)| dt == t && dv == v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tables, named for the tests.
    const TABLES: Tables = Tables {
        inet: "t",
        netdev: "t_egress",
    };

    #[test]
    fn long_comments_are_cut_to_what_nft_keeps() {
        let c = comment(&"x".repeat(300));
        assert_eq!(c.len(), COMMENT_MAX);
    }

    #[test]
    fn garbage_from_the_socket_is_an_error_not_a_panic() {
        assert!(replies(&[1, 0, 0]).unwrap().is_empty());
        let mut b = vec![0u8; 20];
        b[0] = 200;
        assert_eq!(replies(&b), Err(DecodeError::Truncated));
        for m in leakhound_proto::dns_corpus::mutated_queries(500) {
            if let Ok(rs) = replies(&m) {
                for r in rs {
                    let _ = (
                        decode_rule(&r),
                        decode_chain(&r),
                        decode_set_elems(&r),
                        error_of(&r),
                    );
                }
            }
        }
    }

    fn cut() -> Cut {
        Cut {
            endpoint: "203.0.113.10:51820".parse().unwrap(),
            timeout: Duration::from_secs(15),
        }
    }

    #[test]
    fn the_cut_is_one_batch_a_fresh_table_its_set_with_a_timeout_and_one_element() {
        let (bytes, acked) = cut().arm_batch(7);
        let msgs = replies(&bytes).unwrap();
        assert_eq!(msgs.first().unwrap().ty, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs.last().unwrap().ty, NFNL_MSG_BATCH_END);
        let inner = &msgs[1..msgs.len() - 1];
        let types: Vec<u16> = inner.iter().map(|m| m.ty & 0xff).collect();
        assert_eq!(
            types,
            [
                NFT_MSG_NEWTABLE,
                NFT_MSG_DELTABLE,
                NFT_MSG_NEWTABLE,
                NFT_MSG_NEWSET,
                NFT_MSG_NEWCHAIN,
                NFT_MSG_NEWRULE,
                NFT_MSG_NEWSETELEM
            ]
        );
        assert!(inner.iter().all(|m| m.flags & NLM_F_ACK != 0));
        assert!(inner.iter().all(|m| m.payload[0] == NFPROTO_INET));
        assert_eq!(
            acked.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            inner.iter().map(|m| m.seq).collect::<Vec<_>>()
        );
        // The set: named, with timeouts, keyed by an IPv4 address, and a
        // default timeout of 15000 ms (big-endian u64).
        let set = attrs(&inner[3].payload[4..]);
        assert_eq!(cstr(get(&set, NFTA_SET_TABLE).unwrap()), CUT_TABLE);
        assert_eq!(cstr(get(&set, NFTA_SET_NAME).unwrap()), CUT_SET);
        assert_eq!(be32(get(&set, NFTA_SET_FLAGS).unwrap()), Some(0x10));
        assert_eq!(be32(get(&set, NFTA_SET_KEY_LEN).unwrap()), Some(4));
        assert_eq!(be32(get(&set, NFTA_SET_KEY_TYPE).unwrap()), Some(7));
        assert_eq!(
            get(&set, NFTA_SET_TIMEOUT).unwrap(),
            15_000u64.to_be_bytes()
        );
        // The chain: output, priority -400, accepting what the rule leaves.
        let chain = decode_chain(&inner[4]).unwrap();
        assert_eq!(
            (chain.table.as_str(), chain.name.as_str()),
            (CUT_TABLE, CUT_CHAIN)
        );
        assert_eq!(chain.hook, Some(NF_INET_LOCAL_OUT));
        assert_eq!(chain.policy, Some(NF_ACCEPT));
        let hook = attrs(get(&attrs(&inner[4].payload[4..]), NFTA_CHAIN_HOOK).unwrap());
        assert_eq!(
            get(&hook, NFTA_HOOK_PRIORITY).unwrap(),
            (-400i32).to_be_bytes()
        );
        // The rule decodes back to what was sent: the only drop, behind a
        // lookup in the set (so an empty set drops nothing).
        let rule = decode_rule(&inner[5]).unwrap();
        let want = expected_raw(&cut().rule());
        assert_eq!(rule.exprs.len(), want.len());
        assert!(want.iter().zip(&rule.exprs).all(|(w, g)| same_expr(w, g)));
        let names: Vec<&str> = rule.exprs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "meta",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "payload",
                "lookup",
                "immediate"
            ]
        );
        assert_eq!(
            rule.exprs[5].1,
            vec![
                (1, REG_1.to_be_bytes().to_vec()),
                (2, CMP_EQ.to_be_bytes().to_vec()),
                (3, {
                    let mut d = 6u16.to_ne_bytes().to_vec();
                    d.extend_from_slice(&NFTA_DATA_VALUE.to_ne_bytes());
                    d.extend_from_slice(&51820u16.to_be_bytes());
                    d.extend_from_slice(&[0, 0]);
                    d
                })
            ]
        );
        // The element: the endpoint's address, with its own timeout.
        let (table, set, elems) = decode_set_elems(&inner[6]).unwrap();
        assert_eq!((table.as_str(), set.as_str()), (CUT_TABLE, CUT_SET));
        assert_eq!(
            elems,
            vec![DumpedElem {
                key: vec![203, 0, 113, 10],
                timeout: Some(Duration::from_secs(15)),
                expires_in: None,
            }]
        );
    }

    #[test]
    fn an_ipv6_cut_keys_the_set_by_16_bytes_of_destination() {
        let c = Cut {
            endpoint: "[2001:db8::10]:51820".parse().unwrap(),
            timeout: Duration::from_millis(2500),
        };
        let r = c.rule();
        assert!(r.exprs.contains(&Expr::Payload {
            base: PAYLOAD_NETWORK,
            offset: 24,
            len: 16
        }));
        assert_eq!(
            r.exprs[1],
            Expr::Cmp {
                op: CMP_EQ,
                data: vec![NFPROTO_IPV6]
            }
        );
        let (bytes, _) = c.arm_batch(1);
        let msgs = replies(&bytes).unwrap();
        let set = attrs(&msgs[4].payload[4..]);
        assert_eq!(be32(get(&set, NFTA_SET_KEY_LEN).unwrap()), Some(16));
        let (_, _, elems) = msgs.iter().find_map(decode_set_elems).unwrap();
        assert_eq!(elems[0].key.len(), 16);
        assert_eq!(elems[0].timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn renewing_replaces_the_element_with_its_full_timeout_and_never_adds_one() {
        let (bytes, acked) = cut().renew_batch(40);
        let msgs = replies(&bytes).unwrap();
        let inner = &msgs[1..msgs.len() - 1];
        let types: Vec<u16> = inner.iter().map(|m| m.ty & 0xff).collect();
        assert_eq!(types, [NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM]);
        assert_eq!(acked.len(), 2);
        assert_eq!(acked[0].0, 41);
        assert_eq!(inner[0].flags & NLM_F_CREATE, 0);
        let (_, _, last) = decode_set_elems(&inner[1]).unwrap();
        assert_eq!(last[0].timeout, Some(Duration::from_secs(15)));
        // The removal: created then deleted, nothing else.
        let (bytes, acked) = cut_removal_batch(1);
        let msgs = replies(&bytes).unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(acked.len(), 2);
        assert_eq!(msgs[2].ty & 0xff, NFT_MSG_DELTABLE);
        // The dump asks for the set's elements.
        let d = cut_dump_request(9);
        let m = &replies(&d).unwrap()[0];
        assert_eq!(m.ty & 0xff, NFT_MSG_GETSETELEM);
        assert_eq!(m.flags & NLM_F_DUMP, NLM_F_DUMP);
    }

    #[test]
    fn a_dumped_element_says_when_it_expires() {
        // As the kernel answers a GETSETELEM dump.
        let mut w = Writer::new(5);
        let m = w.start(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM,
            NLM_F_MULTI,
            NFPROTO_INET,
            0,
        );
        w.str(NFTA_SET_ELEM_LIST_TABLE, CUT_TABLE);
        w.str(NFTA_SET_ELEM_LIST_SET, CUT_SET);
        let list = w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        let el = w.nest(NFTA_LIST_ELEM);
        let k = w.nest(NFTA_SET_ELEM_KEY);
        w.attr(NFTA_DATA_VALUE, &[203, 0, 113, 10]);
        w.close(k);
        w.attr(NFTA_SET_ELEM_TIMEOUT, &15_000u64.to_be_bytes());
        w.attr(NFTA_SET_ELEM_EXPIRATION, &12_345u64.to_be_bytes());
        w.close(el);
        w.close(list);
        w.end(m);
        let r = &replies(&w.buf).unwrap()[0];
        let (_, _, elems) = decode_set_elems(r).unwrap();
        assert_eq!(elems[0].expires_in, Some(Duration::from_millis(12_345)));
        // Not an element message: none.
        assert!(decode_set_elems(&replies(&cut_dump_request(1)).unwrap()[0]).is_none());
    }

    #[test]
    fn lockdown_keeps_loopback_and_drops_every_device() {
        let rs = Ruleset::lockdown(TABLES, &["lo".into(), "eth0".into(), "eth1".into()]);
        assert_eq!(rs.chains.len(), 5);
        assert!(rs.chains.iter().all(|c| c.policy == NF_DROP));
        assert_eq!(rs.rules.len(), 2);
        let (bytes, acked) = removal_batch(TABLES, 1);
        assert_eq!(replies(&bytes).unwrap().len(), 6);
        assert_eq!(acked.len(), 4);
    }
}
