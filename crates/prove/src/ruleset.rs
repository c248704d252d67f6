//! nft's JSON (`nft -j list ruleset`) read into tables, chains, rules and
//! sets, and each rule's statements compiled to operations on header space
//! ([`Op`]). What the model does not understand becomes [`Op::Cannot`]
//! naming the expression: the proof then says "cannot prove", never
//! "pass".

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::space::{CT_STATES, Constraint, Field, Set, Union, one, range};

/// Why a ruleset could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not nft's JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not nft's JSON: no top-level \"nftables\" array")]
    NoNftables,
    #[error("{what} without its {field}: {object}")]
    Missing {
        what: &'static str,
        field: &'static str,
        object: String,
    },
}

/// A base chain's place in the packet path.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    pub hook: String,
    pub prio: i64,
    pub policy_drop: bool,
    /// `filter`, `nat` or `route`.
    pub kind: String,
    /// The devices of a netdev chain.
    pub devices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub base: Option<Base>,
    pub rules: Vec<Rule>,
}

impl Chain {
    pub fn key(&self) -> ChainKey {
        (self.family.clone(), self.table.clone(), self.name.clone())
    }
}

/// family, table, chain.
pub type ChainKey = (String, String, String);

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub handle: u64,
    pub comment: Option<String>,
    pub exprs: Vec<Value>,
}

/// A named set's elements (family, table, name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    pub chains: BTreeMap<ChainKey, Chain>,
    pub sets: BTreeMap<ChainKey, Vec<Value>>,
}

fn s(v: &Value, what: &'static str, field: &'static str) -> Result<String, ReadError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ReadError::Missing {
            what,
            field,
            object: v.to_string(),
        })
}

impl Ruleset {
    /// Reads `nft -j list ruleset`.
    pub fn from_json(text: &str) -> Result<Ruleset, ReadError> {
        let v: Value = serde_json::from_str(text)?;
        let items = v
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or(ReadError::NoNftables)?;
        let mut rs = Ruleset::default();
        let mut rules: Vec<(ChainKey, Rule)> = Vec::new();
        for item in items {
            if let Some(c) = item.get("chain") {
                let family = s(c, "chain", "family")?;
                let table = s(c, "chain", "table")?;
                let name = s(c, "chain", "name")?;
                let base = c.get("hook").and_then(Value::as_str).map(|hook| Base {
                    hook: hook.to_string(),
                    prio: c.get("prio").and_then(Value::as_i64).unwrap_or(0),
                    policy_drop: c.get("policy").and_then(Value::as_str) == Some("drop"),
                    kind: c
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("filter")
                        .to_string(),
                    devices: match c.get("dev") {
                        Some(Value::String(d)) => vec![d.clone()],
                        Some(Value::Array(ds)) => ds
                            .iter()
                            .filter_map(|d| d.as_str().map(str::to_string))
                            .collect(),
                        _ => Vec::new(),
                    },
                });
                let chain = Chain {
                    family,
                    table,
                    name,
                    base,
                    rules: Vec::new(),
                };
                rs.chains.insert(chain.key(), chain);
            } else if let Some(r) = item.get("rule") {
                let key = (
                    s(r, "rule", "family")?,
                    s(r, "rule", "table")?,
                    s(r, "rule", "chain")?,
                );
                rules.push((
                    key,
                    Rule {
                        handle: r.get("handle").and_then(Value::as_u64).unwrap_or(0),
                        comment: r.get("comment").and_then(Value::as_str).map(str::to_string),
                        exprs: r
                            .get("expr")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    },
                ));
            } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
                let key = (
                    s(set, "set", "family")?,
                    s(set, "set", "table")?,
                    s(set, "set", "name")?,
                );
                let elems = match set.get("elem") {
                    Some(Value::Array(e)) => e.clone(),
                    Some(other) => vec![other.clone()],
                    None => Vec::new(),
                };
                rs.sets.insert(key, elems);
            }
        }
        for (key, rule) in rules {
            if let Some(c) = rs.chains.get_mut(&key) {
                c.rules.push(rule);
            }
        }
        Ok(rs)
    }

    /// The netdev base chains whose devices nft's JSON left out (nft
    /// before 1.0.7 does), by key.
    pub fn netdev_without_devices(&self) -> Vec<ChainKey> {
        self.chains
            .values()
            .filter(|c| {
                c.family == "netdev" && c.base.as_ref().is_some_and(|b| b.devices.is_empty())
            })
            .map(Chain::key)
            .collect()
    }

    /// Fills in netdev base chains' devices from nft's text listing
    /// (`nft list ruleset`): `device "eth0"` or `devices = { "a", "b" }` on
    /// the chain's `type ... hook ...` line.
    pub fn devices_from_text(&mut self, text: &str) {
        let mut table: Option<String> = None;
        let mut chain: Option<String> = None;
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["table", "netdev", name, "{"] => {
                    table = Some((*name).to_string());
                    chain = None;
                }
                ["table", ..] => table = None,
                ["chain", name, "{"] => chain = Some((*name).to_string()),
                _ if line.contains(" hook ")
                    && (line.contains("device") || line.contains("devices")) =>
                {
                    let (Some(t), Some(c)) = (&table, &chain) else {
                        continue;
                    };
                    let devices: Vec<String> = line
                        .split('"')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect();
                    let key = ("netdev".to_string(), t.clone(), c.clone());
                    if let Some(b) = self.chains.get_mut(&key).and_then(|ch| ch.base.as_mut())
                        && b.devices.is_empty()
                    {
                        b.devices = devices;
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a rule does with the packets that reach a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept,
    Drop,
    Jump(String),
    Goto(String),
    Return,
    Continue,
}

/// One statement of a rule, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Only the packets in the union go on.
    Match(Union),
    /// The packets in `sure` go on; those in `maybe` both go on and skip
    /// the rule's remainder (a `th` port read from a transport header
    /// without ports: the bytes are an ICMP checksum or a GRE header; a
    /// masked value beyond what is computed exactly), with a note for the
    /// answer's assumptions.
    MatchMaybe {
        sure: Union,
        maybe: Union,
        note: String,
    },
    Verdict(Verdict),
    /// A rate or quota: some packets go on, the rest skip the rule's
    /// remainder; both are kept.
    Maybe,
    /// A match whose meaning the ruleset does not show: as [`Op::Maybe`],
    /// and named in the answer's assumptions.
    Unknown(String),
    /// A field is set (`meta mark set`).
    SetField(Field, Set),
    /// A verdict map: the first entry whose key matches decides; the
    /// packets of the second union may take any entry or none (a `th`
    /// key on a transport header without ports).
    Vmap(Vec<(Union, Verdict)>, Union),
    /// Changes nothing the proof looks at (a counter, a log, a ct mark).
    Nop,
    /// Not understood: the expression, as nft wrote it, and why.
    Cannot(String),
}

/// What compiling needs to know of the namespace: its interfaces (name,
/// index) and which one is the underlay.
#[derive(Debug, Clone, PartialEq)]
pub struct Links {
    pub names: Vec<(String, u32)>,
    pub underlay: String,
    /// The underlay's own addresses (a witness's source where it can be).
    pub underlay_addrs: Vec<IpAddr>,
}

impl Links {
    /// The underlay's interface index, if listed.
    pub fn underlay_index(&self) -> Option<u32> {
        self.names
            .iter()
            .find(|(n, _)| *n == self.underlay)
            .map(|(_, i)| *i)
    }

    /// The Iif values (one more than the place in the list) of the
    /// interfaces whose name matches `pattern` (a trailing `*` is a glob).
    fn iif_values(&self, pattern: &str) -> Set {
        let mut set = Set::new();
        for (pos, (name, _)) in self.names.iter().enumerate() {
            if name_matches(pattern, name) {
                set |= one(pos as u128 + 1);
            }
        }
        set
    }

    fn iif_by_index(&self, index: u128) -> Set {
        let mut set = Set::new();
        for (pos, (_, i)) in self.names.iter().enumerate() {
            if u128::from(*i) == index {
                set |= one(pos as u128 + 1);
            }
        }
        set
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The context of one rule's compilation.
pub struct Compiler<'a> {
    pub rs: &'a Ruleset,
    pub links: &'a Links,
    pub family: &'a str,
    pub table: &'a str,
    /// Set while an `icmpv6` field's values are read: its names are
    /// ICMPv6's whatever the chain's family (`echo-request` is 128 there,
    /// 8 for `icmp`).
    pub icmpv6: std::cell::Cell<bool>,
}

/// A match's left side, resolved.
enum Left {
    Field {
        field: Field,
        implied: Constraint,
        /// IPv4 addresses (mapped into IPv6 space).
        v4: bool,
    },
    /// The output interface by name or index: known statically.
    Oif {
        by_index: bool,
    },
    Iif {
        by_index: bool,
    },
}

const V4_MAPPED: u128 = 0xffff_0000_0000;

/// An address as a value of [`Field::Saddr`]/[`Field::Daddr`].
pub fn addr_value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => V4_MAPPED | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Every IPv4 address, mapped.
pub fn v4_space() -> Set {
    range(V4_MAPPED, V4_MAPPED | u128::from(u32::MAX))
}

pub const ETH_IP: u128 = 0x0800;
pub const ETH_IP6: u128 = 0x86dd;
pub const ETH_ARP: u128 = 0x0806;
/// The transport protocols with ports at the start of their header.
pub const PORTED: [u128; 5] = [6, 17, 33, 132, 136];

/// Whether `left` is a `th` field (the kernel reads the transport header's
/// bytes whatever the protocol).
fn is_th(left: Option<&Value>) -> bool {
    left.and_then(|l| l.get("payload"))
        .and_then(|p| p.get("protocol"))
        .and_then(Value::as_str)
        == Some("th")
}

/// The packets whose `th` ports are bytes of another header: IP, a
/// transport header (not a later fragment), and no ports.
fn th_portless() -> Union {
    let mut ported = Set::new();
    for p in PORTED {
        ported |= one(p);
    }
    Union::one(
        Constraint::on(Field::EtherType, one(ETH_IP) | one(ETH_IP6))
            .and(Field::L4, Field::L4.domain() - ported)
            .and(Field::Frag, one(0)),
    )
}

fn l4_name(n: &str) -> Option<u128> {
    Some(match n {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "dccp" => 33,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        "udplite" => 136,
        _ => return None,
    })
}

fn icmp_name(n: &str) -> Option<u128> {
    Some(match n {
        "echo-reply" => 0,
        "destination-unreachable" => 3,
        "source-quench" => 4,
        "redirect" => 5,
        "echo-request" => 8,
        "router-advertisement" => 9,
        "router-solicitation" => 10,
        "time-exceeded" => 11,
        "parameter-problem" => 12,
        "timestamp-request" => 13,
        "timestamp-reply" => 14,
        "info-request" => 15,
        "info-reply" => 16,
        "address-mask-request" => 17,
        "address-mask-reply" => 18,
        _ => return None,
    })
}

fn icmpv6_name(n: &str) -> Option<u128> {
    Some(match n {
        "destination-unreachable" => 1,
        "packet-too-big" => 2,
        "time-exceeded" => 3,
        "parameter-problem" => 4,
        "echo-request" => 128,
        "echo-reply" => 129,
        "mld-listener-query" => 130,
        "mld-listener-report" => 131,
        "mld-listener-done" | "mld-listener-reduction" => 132,
        "nd-router-solicit" => 133,
        "nd-router-advert" => 134,
        "nd-neighbor-solicit" => 135,
        "nd-neighbor-advert" => 136,
        "nd-redirect" => 137,
        "router-renumbering" => 138,
        "ind-neighbor-solicit" => 141,
        "ind-neighbor-advert" => 142,
        "mld2-listener-report" => 143,
        _ => return None,
    })
}

/// nft's DSCP names: the class selectors, assured forwarding, expedited
/// forwarding and lower effort.
fn dscp_name(n: &str) -> Option<u128> {
    if let Some(c) = n.strip_prefix("cs") {
        return c.parse::<u128>().ok().filter(|c| *c < 8).map(|c| c << 3);
    }
    if let Some(af) = n.strip_prefix("af") {
        let mut d = af.chars().map(|c| c.to_digit(10));
        return match (d.next(), d.next(), d.next()) {
            (Some(Some(class @ 1..=4)), Some(Some(drop @ 1..=3)), None) => {
                Some(u128::from(class * 8 + drop * 2))
            }
            _ => None,
        };
    }
    match n {
        "ef" => Some(46),
        "va" => Some(44),
        "le" => Some(1),
        _ => None,
    }
}

fn tcp_flag(n: &str) -> Option<u128> {
    Some(match n {
        "fin" => 1,
        "syn" => 2,
        "rst" => 4,
        "psh" => 8,
        "ack" => 16,
        "urg" => 32,
        "ecn" => 64,
        "cwr" => 128,
        _ => return None,
    })
}

impl Compiler<'_> {
    /// Compiles one statement of a rule.
    pub fn op(&self, e: &Value) -> Op {
        let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            return Op::Cannot(format!("{e} (not a statement)"));
        };
        match kind.as_str() {
            "match" => self
                .match_op(body)
                .unwrap_or_else(|why| Op::Cannot(format!("{e}: {why}"))),
            "accept" => Op::Verdict(Verdict::Accept),
            "drop" | "reject" => Op::Verdict(Verdict::Drop),
            "return" => Op::Verdict(Verdict::Return),
            "continue" => Op::Verdict(Verdict::Continue),
            "jump" | "goto" => match body.get("target").and_then(Value::as_str) {
                Some(t) if kind == "jump" => Op::Verdict(Verdict::Jump(t.into())),
                Some(t) => Op::Verdict(Verdict::Goto(t.into())),
                None => Op::Cannot(format!("{e}: no target")),
            },
            "counter" | "log" | "notrack" | "set" | "ct helper" | "synproxy" => Op::Nop,
            "limit" | "quota" => Op::Maybe,
            // Source NAT changes only the source address, which the leak
            // question does not look at; it ends the nat chain.
            "snat" | "masquerade" => Op::Verdict(Verdict::Accept),
            "mangle" => self
                .mangle(body)
                .unwrap_or_else(|why| Op::Cannot(format!("{e}: {why}"))),
            "vmap" => self
                .vmap(body)
                .unwrap_or_else(|why| Op::Cannot(format!("{e}: {why}"))),
            "dnat" | "redirect" => Op::Cannot(format!(
                "{e}: destination NAT changes where the packet goes (not modelled)"
            )),
            "queue" => Op::Cannot(format!("{e}: a userspace program decides (queue)")),
            "dup" | "fwd" => Op::Cannot(format!("{e}: the packet is sent elsewhere too")),
            // An iptables match nft cannot show (iptables-nft writes its
            // conntrack match so): its meaning is not in the ruleset, so
            // packets are taken both to match it and not; a target of that
            // kind decides what happens, which the model cannot follow.
            "xt" if body.get("type").and_then(Value::as_str) == Some("match") => {
                Op::Unknown(format!(
                    "xt match {}",
                    body.get("name").and_then(Value::as_str).unwrap_or("?")
                ))
            }
            "xt" => Op::Cannot(format!(
                "{e}: an iptables target nft cannot show (xt): what it does is not in the ruleset"
            )),
            _ => Op::Cannot(format!("{e}: unknown statement {kind:?}")),
        }
    }

    fn mangle(&self, body: &Value) -> Result<Op, String> {
        let key = body.get("key").ok_or("no key")?;
        if key.pointer("/ct/key").and_then(Value::as_str) == Some("mark") {
            return Ok(Op::Nop);
        }
        if key.pointer("/meta/key").and_then(Value::as_str) == Some("mark") {
            let value = body.get("value").ok_or("no value")?;
            return Ok(match value.as_u64() {
                Some(v) => Op::SetField(Field::Mark, one(u128::from(v))),
                // From the conntrack entry or another field: any mark.
                None => Op::SetField(Field::Mark, Field::Mark.domain()),
            });
        }
        Err("sets a field the model does not follow".into())
    }

    fn vmap(&self, body: &Value) -> Result<Op, String> {
        let left = self.left(body.get("key").ok_or("no key")?)?;
        let data = body.get("data").ok_or("no data")?;
        let entries: Vec<Value> = match data {
            Value::Object(o) if o.contains_key("set") => o["set"]
                .as_array()
                .cloned()
                .ok_or("a map that is not a list")?,
            Value::String(name) if name.starts_with('@') => self.named(&name[1..])?,
            _ => return Err(format!("map {data}")),
        };
        let mut out = Vec::new();
        for entry in entries {
            let (k, v) = match &entry {
                Value::Array(kv) if kv.len() == 2 => (kv[0].clone(), kv[1].clone()),
                _ => return Err(format!("map entry {entry}")),
            };
            let verdict = match self.op(&v) {
                Op::Verdict(verdict) => verdict,
                _ => return Err(format!("map verdict {v}")),
            };
            out.push((self.compare(&left, "==", &k)?, verdict));
        }
        let maybe = if is_th(body.get("key")) {
            th_portless()
        } else {
            Union::none()
        };
        Ok(Op::Vmap(out, maybe))
    }

    fn named(&self, name: &str) -> Result<Vec<Value>, String> {
        let key = (
            self.family.to_string(),
            self.table.to_string(),
            name.to_string(),
        );
        self.rs
            .sets
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("no set @{name} in table {} {}", self.family, self.table))
    }

    fn match_op(&self, body: &Value) -> Result<Op, String> {
        let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
        let left = body.get("left").ok_or("no left side")?;
        let right = body.get("right").ok_or("no right side")?;
        if let Some(parts) = left.get("&").and_then(Value::as_array) {
            let [inner, mask] = parts.as_slice() else {
                return Err("a mask of other than two parts".into());
            };
            let l = self.left(inner)?;
            let Left::Field { field, implied, v4 } = l else {
                return Err("a mask on an interface".into());
            };
            let mask = self.values(field, mask)?;
            let m = mask.iter().fold(0u128, |a, v| a | v);
            let want = self.values(field, right)?;
            let mut set = Set::new();
            let mut unsure = Set::new();
            for x in want.iter() {
                let (s, u) = masked(field, m, x);
                set |= s;
                unsure |= u;
            }
            let set = match op {
                "==" => set,
                "!=" => field.domain() - &unsure - set,
                _ => return Err(format!("op {op:?} on a masked value")),
            };
            let v4_only = |s: Set| {
                if v4 && matches!(field, Field::Saddr | Field::Daddr) {
                    s & v4_space()
                } else {
                    s
                }
            };
            let sure = Union::one(implied.clone().and(field, v4_only(set)));
            if unsure.is_empty() {
                return Ok(Op::Match(sure));
            }
            let from = unsure.first().unwrap_or(0);
            return Ok(Op::MatchMaybe {
                sure,
                maybe: Union::one(implied.and(field, v4_only(unsure))),
                note: format!(
                    "a match on {field:?} & {m:#x}: exact below {from:#x}, taken both ways from there (too many value ranges)"
                ),
            });
        }
        let l = self.left(left)?;
        let sure = self.compare(&l, op, right)?;
        Ok(if is_th(Some(left)) {
            Op::MatchMaybe {
                sure,
                maybe: th_portless(),
                note: "a `th` port on a packet without ports (its bytes are another header's)"
                    .into(),
            }
        } else {
            Op::Match(sure)
        })
    }

    fn compare(&self, l: &Left, op: &str, right: &Value) -> Result<Union, String> {
        match l {
            Left::Oif { by_index } => {
                let hit = if *by_index {
                    let want = self.values(Field::Iif, right)?;
                    self.links
                        .underlay_index()
                        .is_some_and(|i| want.contains(u128::from(i)))
                } else {
                    self.names(right)?
                        .iter()
                        .any(|p| name_matches(p, &self.links.underlay))
                };
                let hit = match op {
                    "==" | "in" => hit,
                    "!=" => !hit,
                    _ => return Err(format!("op {op:?} on an interface")),
                };
                Ok(if hit { Union::all() } else { Union::none() })
            }
            Left::Iif { by_index } => {
                let set = if *by_index {
                    let mut set = Set::new();
                    for i in self.values(Field::Iif, right)?.iter() {
                        set |= self.links.iif_by_index(i);
                    }
                    set
                } else {
                    let mut set = Set::new();
                    for p in self.names(right)? {
                        set |= self.links.iif_values(&p);
                    }
                    set
                };
                let set = match op {
                    "==" | "in" => set,
                    // A locally generated packet has no input interface:
                    // value 0, which no name matches.
                    "!=" => Field::Iif.domain() - set,
                    _ => return Err(format!("op {op:?} on an interface")),
                };
                Ok(Union::one(Constraint::on(Field::Iif, set)))
            }
            Left::Field { field, implied, v4 } => {
                let icmpv6 = implied
                    .0
                    .iter()
                    .any(|(f, s)| *f == Field::EtherType && *s == one(ETH_IP6));
                self.icmpv6.set(icmpv6 && *field == Field::IcmpType);
                let vals = self.values(*field, right);
                self.icmpv6.set(false);
                let vals = vals?;
                let bitmask = matches!(field, Field::CtState | Field::TcpFlags);
                let set = match op {
                    "in" if bitmask => {
                        let m = vals.iter().fold(0u128, |a, v| a | v);
                        bits_any(*field, m)
                    }
                    "==" | "in" => vals,
                    "!=" => field.domain() - vals,
                    "<" | "<=" | ">" | ">=" => {
                        let v = vals.first().ok_or("no value")?;
                        let max = Field::max(*field);
                        match op {
                            "<" if v == 0 => Set::new(),
                            "<" => range(0, v - 1),
                            "<=" => range(0, v),
                            ">" if v == max => Set::new(),
                            ">" => range(v + 1, max),
                            _ => range(v, max),
                        }
                    }
                    _ => return Err(format!("op {op:?}")),
                };
                let set = if *v4 && matches!(field, Field::Saddr | Field::Daddr) {
                    set & v4_space()
                } else {
                    set
                };
                Ok(Union::one(implied.clone().and(*field, set)))
            }
        }
    }

    fn names(&self, right: &Value) -> Result<Vec<String>, String> {
        match right {
            Value::String(n) if n.starts_with('@') => {
                let mut out = Vec::new();
                for e in self.named(&n[1..])? {
                    out.extend(self.names(&e)?);
                }
                Ok(out)
            }
            Value::String(n) => Ok(vec![n.clone()]),
            Value::Object(o) if o.contains_key("set") => {
                let mut out = Vec::new();
                for e in o["set"].as_array().ok_or("a set that is not a list")? {
                    out.extend(self.names(e)?);
                }
                Ok(out)
            }
            Value::Object(o) if o.contains_key("elem") => self.names(&o["elem"]["val"]),
            _ => Err(format!("interface name {right}")),
        }
    }

    fn left(&self, left: &Value) -> Result<Left, String> {
        let l = self.left_unfragmented(left)?;
        // A match on the transport header fails on a fragment that is not
        // the first: it needs one.
        // Transport fields (the protocol included) exist only in an IP
        // packet: on another frame (a netdev chain) every match on them
        // fails.
        let ip = one(ETH_IP) | one(ETH_IP6);
        Ok(match l {
            Left::Field { field, implied, v4 }
                if matches!(
                    field,
                    Field::Sport
                        | Field::Dport
                        | Field::IcmpType
                        | Field::IcmpCode
                        | Field::TcpFlags
                ) =>
            {
                Left::Field {
                    field,
                    implied: implied.and(Field::Frag, one(0)).and(Field::EtherType, ip),
                    v4,
                }
            }
            Left::Field {
                field: Field::L4,
                implied,
                v4,
            } => Left::Field {
                field: Field::L4,
                implied: implied.and(Field::EtherType, ip),
                v4,
            },
            other => other,
        })
    }

    fn left_unfragmented(&self, left: &Value) -> Result<Left, String> {
        let field = |field, implied| {
            Ok(Left::Field {
                field,
                implied,
                v4: false,
            })
        };
        let l4 = |p: u128| Constraint::on(Field::L4, one(p));
        if let Some(m) = left.get("meta") {
            let key = m.get("key").and_then(Value::as_str).unwrap_or("");
            return match key {
                "l4proto" => field(Field::L4, Constraint::default()),
                "nfproto" | "protocol" => field(Field::EtherType, Constraint::default()),
                "mark" => field(Field::Mark, Constraint::default()),
                "skuid" => field(Field::SkUid, Constraint::default()),
                "skgid" => field(Field::SkGid, Constraint::default()),
                "length" => field(Field::Length, Constraint::default()),
                "oifname" => Ok(Left::Oif { by_index: false }),
                "oif" => Ok(Left::Oif { by_index: true }),
                "iifname" => Ok(Left::Iif { by_index: false }),
                "iif" => Ok(Left::Iif { by_index: true }),
                other => Err(format!("meta {other} is not modelled")),
            };
        }
        if let Some(c) = left.get("ct") {
            if c.get("dir").is_some() {
                return Err("a conntrack direction's field is not modelled".into());
            }
            return match c.get("key").and_then(Value::as_str).unwrap_or("") {
                "state" => field(Field::CtState, Constraint::default()),
                "mark" => field(Field::CtMark, Constraint::default()),
                other => Err(format!("ct {other} is not modelled")),
            };
        }
        if let Some(p) = left.get("payload") {
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .ok_or("raw payload offsets are not modelled")?;
            let f = p.get("field").and_then(Value::as_str).unwrap_or("");
            let ip = Constraint::on(Field::EtherType, one(ETH_IP));
            let ip6 = Constraint::on(Field::EtherType, one(ETH_IP6));
            let ported = || {
                let mut s = Set::new();
                for p in PORTED {
                    s |= one(p);
                }
                Constraint::on(Field::L4, s)
            };
            return match (proto, f) {
                ("ip", "saddr") => Ok(Left::Field {
                    field: Field::Saddr,
                    implied: ip,
                    v4: true,
                }),
                ("ip", "daddr") => Ok(Left::Field {
                    field: Field::Daddr,
                    implied: ip,
                    v4: true,
                }),
                ("ip", "protocol") => field(Field::L4, ip),
                ("ip", "dscp") => field(Field::Dscp, ip),
                ("ip", "ttl") => field(Field::Ttl, ip),
                ("ip", "length") => field(Field::Length, ip),
                ("ip6", "saddr") => field(Field::Saddr, ip6),
                ("ip6", "daddr") => field(Field::Daddr, ip6),
                ("ip6", "nexthdr") => field(Field::NextHdr, ip6),
                ("ip6", "dscp") => field(Field::Dscp, ip6),
                ("ip6", "hoplimit") => field(Field::Ttl, ip6),
                ("tcp", "sport") => field(Field::Sport, l4(6)),
                ("tcp", "dport") => field(Field::Dport, l4(6)),
                ("tcp", "flags") => field(Field::TcpFlags, l4(6)),
                ("udp", "sport") => field(Field::Sport, l4(17)),
                ("udp", "dport") => field(Field::Dport, l4(17)),
                ("udplite", "sport") => field(Field::Sport, l4(136)),
                ("udplite", "dport") => field(Field::Dport, l4(136)),
                ("sctp", "sport") => field(Field::Sport, l4(132)),
                ("sctp", "dport") => field(Field::Dport, l4(132)),
                ("dccp", "sport") => field(Field::Sport, l4(33)),
                ("dccp", "dport") => field(Field::Dport, l4(33)),
                ("th", "sport") => field(Field::Sport, ported()),
                ("th", "dport") => field(Field::Dport, ported()),
                ("icmp", "type") => {
                    field(Field::IcmpType, l4(1).and(Field::EtherType, one(ETH_IP)))
                }
                ("icmp", "code") => {
                    field(Field::IcmpCode, l4(1).and(Field::EtherType, one(ETH_IP)))
                }
                ("icmpv6", "type") => {
                    field(Field::IcmpType, l4(58).and(Field::EtherType, one(ETH_IP6)))
                }
                ("icmpv6", "code") => {
                    field(Field::IcmpCode, l4(58).and(Field::EtherType, one(ETH_IP6)))
                }
                ("ether", "type") => field(Field::EtherType, Constraint::default()),
                _ => Err(format!("{proto} {f} is not modelled")),
            };
        }
        Err(format!("{left} is not modelled"))
    }

    /// The set of values `right` names for `field`.
    fn values(&self, field: Field, right: &Value) -> Result<Set, String> {
        match right {
            Value::Number(n) => {
                let v = n.as_u64().ok_or_else(|| format!("number {n}"))?;
                Ok(one(u128::from(v)))
            }
            Value::String(name) if name.starts_with('@') => {
                let mut set = Set::new();
                for e in self.named(&name[1..])? {
                    set |= self.values(field, &e)?;
                }
                Ok(set)
            }
            Value::String(text) => self.word(field, text).map(one),
            Value::Array(items) => {
                let mut set = Set::new();
                for i in items {
                    set |= self.values(field, i)?;
                }
                Ok(set)
            }
            Value::Object(o) => {
                if let Some(items) = o.get("set") {
                    return self.values(field, items);
                }
                if let Some(e) = o.get("elem") {
                    return self.values(field, e.get("val").ok_or("an element without val")?);
                }
                if let Some(r) = o.get("range").and_then(Value::as_array) {
                    let [lo, hi] = r.as_slice() else {
                        return Err(format!("range {right}"));
                    };
                    let lo = self.values(field, lo)?.first().ok_or("empty range")?;
                    let hi = self.values(field, hi)?.last().ok_or("empty range")?;
                    return Ok(if lo <= hi { range(lo, hi) } else { Set::new() });
                }
                if let Some(p) = o.get("prefix") {
                    let addr: IpAddr = p
                        .get("addr")
                        .and_then(Value::as_str)
                        .and_then(|a| a.parse().ok())
                        .ok_or_else(|| format!("prefix {right}"))?;
                    let len = p
                        .get("len")
                        .and_then(Value::as_u64)
                        .ok_or("prefix length")? as u32;
                    let net = ipnet::IpNet::new(addr, len as u8).map_err(|e| e.to_string())?;
                    return Ok(range(
                        addr_value(net.network()),
                        addr_value(net.broadcast()),
                    ));
                }
                Err(format!("value {right} is not modelled"))
            }
            _ => Err(format!("value {right} is not modelled")),
        }
    }

    /// A word on the right of a match: an address, a number, or a name of
    /// the field's type.
    fn word(&self, field: Field, text: &str) -> Result<u128, String> {
        if matches!(field, Field::Saddr | Field::Daddr) {
            return text
                .parse::<IpAddr>()
                .map(addr_value)
                .map_err(|_| format!("address {text:?}"));
        }
        if let Some(hex) = text.strip_prefix("0x") {
            return u128::from_str_radix(hex, 16).map_err(|_| format!("number {text:?}"));
        }
        if let Ok(n) = text.parse::<u128>() {
            return Ok(n);
        }
        let found = match field {
            Field::L4 => l4_name(text),
            Field::EtherType => match text {
                "ip" | "ipv4" => Some(ETH_IP),
                "ip6" | "ipv6" => Some(ETH_IP6),
                "arp" => Some(ETH_ARP),
                _ => None,
            },
            Field::CtState => CT_STATES.iter().find(|(n, _)| *n == text).map(|(_, v)| *v),
            Field::Dscp => dscp_name(text),
            Field::TcpFlags => tcp_flag(text),
            Field::IcmpType => {
                // The family decides which names; both tables are tried,
                // ICMPv6's first where the chain is ip6.
                if self.family == "ip6" || self.icmpv6.get() {
                    icmpv6_name(text).or_else(|| icmp_name(text))
                } else {
                    icmp_name(text).or_else(|| icmpv6_name(text))
                }
            }
            _ => None,
        };
        found.ok_or_else(|| format!("{text:?} for {field:?}"))
    }
}

/// The values `v` of `field` with some bit of `m` set.
fn bits_any(field: Field, m: u128) -> Set {
    let mut set = Set::new();
    for v in field.domain().iter() {
        if v & m != 0 {
            set |= one(v);
        }
    }
    set
}

/// The values `v` of `field` with `v & m == x`, as intervals: exact below
/// a bound (the first result), and the values from the bound up (the
/// second, empty when the first is exact everywhere) where more than
/// 4,096 intervals would be needed, which the caller takes both ways.
fn masked(field: Field, m: u128, x: u128) -> (Set, Set) {
    if x & !m != 0 {
        return (Set::new(), Set::new());
    }
    let width = 128 - field.max().leading_zeros();
    let full = field.max();
    let m = m & full;
    let low = if m == 0 { width } else { m.trailing_zeros() };
    let low_mask = if low >= 128 {
        u128::MAX
    } else {
        (1u128 << low) - 1
    } & full;
    let high_free: Vec<u32> = (low..width).filter(|b| m & (1u128 << b) == 0).collect();
    let (exact, unsure) = if high_free.len() > 12 {
        (&high_free[..12], range(1u128 << high_free[12], full))
    } else {
        (&high_free[..], Set::new())
    };
    let mut set = Set::new();
    for combo in 0u128..(1u128 << exact.len()) {
        let mut base = x;
        for (i, b) in exact.iter().enumerate() {
            if combo & (1 << i) != 0 {
                base |= 1u128 << b;
            }
        }
        set |= range(base, base | low_mask);
    }
    (&set - &unsure, unsure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_values_are_exact() {
        // mark & 0xffff0000 == 0x10000: one range.
        let (s, u) = masked(Field::Mark, 0xffff_0000, 0x1_0000);
        assert_eq!(s, range(0x1_0000, 0x1_ffff));
        assert!(u.is_empty());
        // mark & 0xff00 == 0x1200 is 65,536 ranges: exact below 2^28, and
        // from there taken both ways, not guessed.
        let (s, u) = masked(Field::Mark, 0xff00, 0x1200);
        assert_eq!(s.ranges().count(), 4096);
        assert!(s.contains(0x1200) && s.contains(0x0fff_12ff) && !s.contains(0x1300));
        assert_eq!(u, range(1 << 28, 0xffff_ffff));
        // dport & 0xff00 == 0x1200: 0x1200..0x12ff.
        assert_eq!(
            masked(Field::Dport, 0xff00, 0x1200).0,
            range(0x1200, 0x12ff)
        );
        // TCP flags & (syn|ack) == syn.
        let f = masked(Field::TcpFlags, 0x12, 0x02).0;
        assert!(f.contains(0x02) && f.contains(0x03) && !f.contains(0x12));
        assert_eq!(f.iter().count(), 64);
        // Nothing has bits outside the mask.
        assert!(masked(Field::TcpFlags, 0x02, 0x04).0.is_empty());
    }
}
