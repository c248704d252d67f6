//! The leak fuzzer's spray: a seeded, reproducible list of packets (every
//! TCP flag combination, UDP, ICMP and ICMPv6 types, other IP protocols,
//! fragments, IPv4 options and IPv6 extension headers; to every class of lab
//! address; with various TTLs, hop limits and DSCP/ECN values), the bytes of
//! each, and the marker that ties a frame seen on a wire back to the packet
//! that made it. Which of its frames leaked is judged here too, with the
//! same classifier as every other frame. Pure: the sending is the runner's.
//!
//! Two sides send. The dependents' side uses what a container has with
//! Docker's default capabilities: raw sockets, with the source address the
//! kernel's routing would choose (no marks, no foreign sources, no device
//! binding). The root side (`Side::Root`) adds what only root in the
//! gateway's namespace can do: a firewall mark, a socket bound to the
//! underlay, a spoofed source. Its findings are a class of their own.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::classify::{LeakPolicy, Nonces, classify_with};
use crate::verdict::Frame;

/// What a destination is to the gateway: the classes the spray covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddrClass {
    /// An internet host (the lab's TEST-NET ranges).
    Public,
    /// The VPN server's own address (any port, its WireGuard port included).
    Endpoint,
    /// The provider's side of the tunnel.
    TunnelPeer,
    /// A LAN the policy allows.
    AllowedLan,
    /// A LAN the policy does not allow.
    DeniedLan,
    Multicast,
    Broadcast,
    LinkLocal,
    /// An IPv4 address written as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), sent
    /// from a dual-stack socket.
    Mapped,
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrClass::Public => "public",
            AddrClass::Endpoint => "the endpoint",
            AddrClass::TunnelPeer => "the tunnel's peer",
            AddrClass::AllowedLan => "allowed LAN",
            AddrClass::DeniedLan => "denied LAN",
            AddrClass::Multicast => "multicast",
            AddrClass::Broadcast => "broadcast",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Mapped => "IPv4-mapped IPv6",
        })
    }
}

/// The destinations the spray may use: lab addresses only.
#[derive(Debug, Clone)]
pub struct SprayTargets {
    pub addrs: Vec<(AddrClass, IpAddr)>,
    /// The endpoint's WireGuard port (sent to with plaintext, too).
    pub endpoint_port: u16,
}

/// Which side sent a packet, and with what only root may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A dependent: raw sockets, the kernel's choice of source.
    Dependent,
    Root(RootTrick),
}

/// What root in the gateway's namespace adds to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RootTrick {
    /// The socket carries this firewall mark (`SO_MARK`).
    Mark(u32),
    /// The socket is bound to the underlay device (`SO_BINDTODEVICE`).
    BindUnderlay,
    /// The packet's source is this address, whatever the routes say.
    Spoof(IpAddr),
}

/// The transport part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        flags: u8,
        sport: u16,
        dport: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
    Icmpv6 {
        ty: u8,
        code: u8,
    },
    /// Any other IP protocol, carrying the marker (GRE gets its 4-byte
    /// header first).
    Other {
        proto: u8,
    },
}

/// How the packet is laid out at the IP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Whole,
    /// Two fragments, both carrying the marker.
    Fragments,
    /// Only the second fragment (no ports for a rule to see).
    LoneFragment,
    /// IPv4: a header with four NOP options. IPv6: this extension header
    /// (0 hop-by-hop, 43 routing, 60 destination options) before the
    /// transport.
    Extension(u8),
    /// UDP from an IPv6 socket to an IPv4-mapped address (the kernel
    /// writes the IPv4 packet).
    MappedSocket,
}

/// One packet of the spray.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SprayPacket {
    pub id: u16,
    pub side: Side,
    pub class: AddrClass,
    pub dst: IpAddr,
    pub l4: L4,
    pub shape: Shape,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The TOS byte or traffic class (DSCP and ECN).
    pub tos: u8,
}

/// A spray: its seed, the tags its packets' markers start with, the
/// packets.
#[derive(Debug, Clone)]
pub struct Spray {
    pub seed: u64,
    /// The dependents' side's tag: 12 lowercase hex digits (a probe nonce,
    /// so the judge finds it in clear wherever it is).
    pub tag: String,
    /// The root side's (another nonce): its frames are judged apart.
    pub root_tag: String,
    pub packets: Vec<SprayPacket>,
}

/// The limits of one spray.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub packets: usize,
    /// How many of them come from the root side.
    pub root: usize,
}

const TOS: [u8; 8] = [0x00, 0x20, 0x28, 0x48, 0xb8, 0xc0, 0x01, 0x03];
const TTL: [u8; 4] = [1, 2, 64, 255];
const TCP_PORTS: [u16; 7] = [80, 443, 22, 53, 853, 8080, 6881];
const UDP_PORTS: [u16; 9] = [53, 123, 443, 853, 67, 5353, 1900, 5351, 3478];
const ICMP_TYPES: [u8; 18] = [
    0, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 30, 37, 40,
];
/// ICMPv6 types the spray sends to any address; neighbour discovery and
/// MLD (130–137, 143) only off the link (see [`link_housekeeping`]).
const ICMPV6_TYPES: [u8; 16] = [
    1, 2, 3, 4, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 139, 143,
];
const PROTOS: [u8; 14] = [2, 4, 41, 47, 50, 51, 89, 103, 112, 115, 132, 136, 253, 254];
/// Marks a root may set: the built-in gateway's tunnel mark, wg-quick's,
/// and two more.
const MARKS: [u32; 4] = [51820, 0xca6c, 1, 0x8000_0000];
const EXTENSIONS: [u8; 3] = [0, 43, 60];

/// Neighbour discovery and MLD to an address on the link: what IPv6 needs
/// and a kill switch lets through, whose payload only the link sees. The
/// spray sends these types only to addresses off the link.
fn link_housekeeping(ty: u8, dst: IpAddr) -> bool {
    let on_link = match dst {
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80 || a.segments()[0] == 0xff02,
        IpAddr::V4(_) => false,
    };
    on_link && matches!(ty, 130..=137 | 143)
}

/// A step's seed from the run's: the same `--seed` gives every step the
/// same spray, different steps different ones.
pub fn step_seed(run_seed: u64, scenario: &str, step: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scenario.bytes().chain([0]).chain(step.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = run_seed ^ h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Gen<'t> {
    rng: ChaCha8Rng,
    targets: &'t SprayTargets,
}

impl Gen<'_> {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }

    fn port(&mut self) -> u16 {
        1024 + (self.rng.next_u32() % 64_000) as u16
    }

    /// A destination of either family (never a mapped one: those need
    /// their own socket).
    fn dst(&mut self, v6: Option<bool>) -> (AddrClass, IpAddr) {
        let fits: Vec<(AddrClass, IpAddr)> = self
            .targets
            .addrs
            .iter()
            .copied()
            .filter(|(c, a)| *c != AddrClass::Mapped && v6.is_none_or(|v| a.is_ipv6() == v))
            .collect();
        if fits.is_empty() {
            // The lab's whoami, in the family asked for.
            return match v6 {
                Some(true) => (
                    AddrClass::Public,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 0x80)),
                ),
                _ => (AddrClass::Public, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80))),
            };
        }
        self.pick(&fits)
    }

    fn packet(&mut self, class: AddrClass, dst: IpAddr, l4: L4, shape: Shape) -> SprayPacket {
        SprayPacket {
            id: 0,
            side: Side::Dependent,
            class,
            dst,
            l4,
            shape,
            ttl: self.pick(&TTL),
            tos: self.pick(&TOS),
        }
    }

    fn tcp(&mut self, flags: u8) -> L4 {
        let dport = if self.below(4) == 0 {
            self.port()
        } else {
            self.pick(&TCP_PORTS)
        };
        L4::Tcp {
            flags,
            sport: self.port(),
            dport,
        }
    }

    fn udp(&mut self, dport: u16) -> L4 {
        L4::Udp {
            sport: self.port(),
            dport,
        }
    }

    fn icmp_for(&mut self, dst: IpAddr) -> L4 {
        if dst.is_ipv6() {
            let mut ty = self.pick(&ICMPV6_TYPES);
            if link_housekeeping(ty, dst) {
                ty = 128;
            }
            L4::Icmpv6 {
                ty,
                code: self.pick(&[0, 0, 1, 4]),
            }
        } else {
            L4::Icmp {
                ty: self.pick(&ICMP_TYPES),
                code: self.pick(&[0, 0, 1, 3]),
            }
        }
    }

    /// What the spray must cover whatever its seed: every TCP flag
    /// combination, UDP to every destination, every ICMP and ICMPv6 type
    /// listed, every other protocol in both families, fragments and
    /// extension headers in both, mapped addresses.
    fn coverage(&mut self) -> Vec<SprayPacket> {
        let mut out = Vec::new();
        for flags in 0..=255u8 {
            let (c, d) = self.dst(None);
            let l4 = self.tcp(flags);
            out.push(self.packet(c, d, l4, Shape::Whole));
        }
        let addrs = self.targets.addrs.clone();
        for (c, d) in &addrs {
            let ports = [
                self.pick(&UDP_PORTS),
                self.port(),
                if *c == AddrClass::Endpoint {
                    self.targets.endpoint_port
                } else {
                    self.pick(&UDP_PORTS)
                },
            ];
            for p in ports {
                let l4 = self.udp(p);
                let shape = if *c == AddrClass::Mapped {
                    Shape::MappedSocket
                } else {
                    Shape::Whole
                };
                out.push(self.packet(*c, *d, l4, shape));
            }
            if *c != AddrClass::Mapped {
                let l4 = self.tcp(0x02);
                out.push(self.packet(*c, *d, l4, Shape::Whole));
            }
        }
        for ty in ICMP_TYPES {
            let (c, d) = self.dst(Some(false));
            out.push(self.packet(c, d, L4::Icmp { ty, code: 0 }, Shape::Whole));
        }
        for ty in ICMPV6_TYPES {
            let (mut c, mut d) = self.dst(Some(true));
            if link_housekeeping(ty, d) {
                (c, d) = (
                    AddrClass::Public,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 0x80)),
                );
            }
            out.push(self.packet(c, d, L4::Icmpv6 { ty, code: 0 }, Shape::Whole));
        }
        for proto in PROTOS {
            for v6 in [false, true] {
                let (c, d) = self.dst(Some(v6));
                out.push(self.packet(c, d, L4::Other { proto }, Shape::Whole));
            }
        }
        for v6 in [false, true] {
            for shape in [Shape::Fragments, Shape::LoneFragment] {
                for tcp in [false, true] {
                    let (c, d) = self.dst(Some(v6));
                    let l4 = if tcp {
                        self.tcp(0x02)
                    } else {
                        let p = self.pick(&UDP_PORTS);
                        self.udp(p)
                    };
                    out.push(self.packet(c, d, l4, shape));
                }
            }
        }
        for ext in EXTENSIONS {
            for tcp in [false, true] {
                let (c, d) = self.dst(Some(true));
                let l4 = if tcp { self.tcp(0x02) } else { self.udp(53) };
                out.push(self.packet(c, d, l4, Shape::Extension(ext)));
            }
        }
        let (c, d) = self.dst(Some(false));
        let l4 = self.udp(53);
        out.push(self.packet(c, d, l4, Shape::Extension(0)));
        out
    }

    /// Anything at all, for the rest of the budget.
    fn random(&mut self) -> SprayPacket {
        let (c, d) = self.dst(None);
        let l4 = match self.below(10) {
            0..=3 => {
                let f = self.rng.next_u32() as u8;
                self.tcp(f)
            }
            4..=6 => {
                let p = if self.below(2) == 0 {
                    self.pick(&UDP_PORTS)
                } else {
                    self.port()
                };
                self.udp(p)
            }
            7 | 8 => self.icmp_for(d),
            _ => L4::Other {
                proto: if self.below(2) == 0 {
                    self.pick(&PROTOS)
                } else {
                    self.rng.next_u32() as u8
                },
            },
        };
        let shape = match self.below(12) {
            0 => Shape::Fragments,
            1 => Shape::LoneFragment,
            2 if d.is_ipv6() => Shape::Extension(self.pick(&EXTENSIONS)),
            2 => Shape::Extension(0),
            _ => Shape::Whole,
        };
        // A protocol the kernel owns in the v6 header chain is sent whole.
        let shape = match l4 {
            L4::Other {
                proto: 0 | 43 | 44 | 60,
            } => Shape::Whole,
            _ => shape,
        };
        self.packet(c, d, l4, shape)
    }

    fn root_trick(&mut self, dst: IpAddr) -> RootTrick {
        match self.below(3) {
            0 => RootTrick::Mark(self.pick(&MARKS)),
            1 => RootTrick::BindUnderlay,
            _ => {
                let same_family: Vec<IpAddr> = self
                    .targets
                    .addrs
                    .iter()
                    // Only sources on the allowed LANs: a router's answer to
                    // a spoofed public source would go to the internet from
                    // the router itself, a frame no gateway sent.
                    .filter(|(c, a)| *c == AddrClass::AllowedLan && a.is_ipv6() == dst.is_ipv6())
                    .map(|(_, a)| *a)
                    .collect();
                match same_family.is_empty() {
                    true => RootTrick::BindUnderlay,
                    false => RootTrick::Spoof(self.pick(&same_family)),
                }
            }
        }
    }
}

impl Spray {
    /// The spray for `seed`: the coverage first (as much as the budget
    /// holds, in a seeded order), then random packets; the last
    /// `budget.root` from the root side. The same seed, tag, targets and
    /// budget give the same packets.
    pub fn generate(seed: u64, tags: [&str; 2], targets: &SprayTargets, budget: Budget) -> Spray {
        let mut g = Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            targets,
        };
        let root = budget.root.min(budget.packets);
        let dependent = budget.packets - root;
        let mut cover = g.coverage();
        // A seeded shuffle (Fisher-Yates), so a small budget still mixes.
        for i in (1..cover.len()).rev() {
            let j = g.below(i + 1);
            cover.swap(i, j);
        }
        cover.truncate(dependent);
        while cover.len() < dependent {
            let p = g.random();
            cover.push(p);
        }
        for _ in 0..root {
            let mut p = g.random();
            if p.shape == Shape::MappedSocket {
                p.shape = Shape::Whole;
            }
            p.side = Side::Root(g.root_trick(p.dst));
            cover.push(p);
        }
        for (i, p) in cover.iter_mut().enumerate() {
            p.id = i as u16;
        }
        Spray {
            seed,
            tag: tags[0].to_string(),
            root_tag: tags[1].to_string(),
            packets: cover,
        }
    }

    /// The marker packet `id` carries: its side's tag, a dash, the id in 4
    /// hex digits.
    pub fn marker(&self, id: u16) -> Vec<u8> {
        let tag = match self.packets.get(usize::from(id)).map(|p| p.side) {
            Some(Side::Root(_)) => &self.root_tag,
            _ => &self.tag,
        };
        format!("{tag}-{id:04x}").into_bytes()
    }

    /// The spray packet `frame` carries, if any (its marker's tag must be
    /// its side's).
    pub fn find(&self, frame: &[u8]) -> Option<&SprayPacket> {
        [(&self.tag, false), (&self.root_tag, true)]
            .into_iter()
            .find_map(|(tag, root)| {
                let tag = tag.as_bytes();
                if tag.is_empty() {
                    return None;
                }
                frame
                    .windows(tag.len())
                    .enumerate()
                    .filter(|(_, w)| *w == tag)
                    .find_map(|(at, _)| {
                        let rest = frame.get(at + tag.len()..at + tag.len() + 5)?;
                        if rest[0] != b'-' || !rest[1..].iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        let id =
                            u16::from_str_radix(std::str::from_utf8(&rest[1..]).ok()?, 16).ok()?;
                        self.packets
                            .get(usize::from(id))
                            .filter(|p| matches!(p.side, Side::Root(_)) == root)
                    })
            })
    }

    /// The simplest of `ids` to show: the fewest bytes on the wire, then
    /// the dependents' side, then the lowest id.
    pub fn minimal(&self, ids: impl IntoIterator<Item = u16>) -> Option<&SprayPacket> {
        let any_src = |p: &SprayPacket| match p.dst {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        ids.into_iter()
            .filter_map(|id| self.packets.get(usize::from(id)))
            .min_by_key(|p| {
                let mut len: usize = p
                    .datagrams(any_src(p), &self.marker(p.id))
                    .iter()
                    .map(Vec::len)
                    .sum();
                if p.shape == Shape::MappedSocket {
                    // The kernel adds the IPv4 and UDP headers.
                    len += 28;
                }
                (len, p.side != Side::Dependent, p.id)
            })
    }
}

impl fmt::Display for SprayPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.dst.is_ipv6() { "IPv6" } else { "IPv4" };
        match self.l4 {
            L4::Tcp {
                flags,
                sport,
                dport,
            } => write!(
                f,
                "{v} TCP [{}] :{sport} -> {}",
                tcp_flags(flags),
                SocketAddr::new(self.dst, dport)
            )?,
            L4::Udp { sport, dport } => {
                write!(
                    f,
                    "{v} UDP :{sport} -> {}",
                    SocketAddr::new(self.dst, dport)
                )?;
            }
            L4::Icmp { ty, code } => write!(f, "ICMP type {ty} code {code} -> {}", self.dst)?,
            L4::Icmpv6 { ty, code } => write!(f, "ICMPv6 type {ty} code {code} -> {}", self.dst)?,
            L4::Other { proto } => write!(f, "{v} protocol {proto} -> {}", self.dst)?,
        }
        write!(f, " ({}), ", self.class)?;
        match self.shape {
            Shape::Whole => {}
            Shape::Fragments => f.write_str("in two fragments, ")?,
            Shape::LoneFragment => f.write_str("its second fragment alone, ")?,
            Shape::Extension(_) if !self.dst.is_ipv6() => f.write_str("IP options, ")?,
            Shape::Extension(h) => write!(f, "extension header {h}, ")?,
            Shape::MappedSocket => f.write_str("from a dual-stack IPv6 socket, ")?,
        }
        let hop = if self.dst.is_ipv6() {
            "hop limit"
        } else {
            "TTL"
        };
        write!(f, "{hop} {}, tos 0x{:02x}", self.ttl, self.tos)?;
        match self.side {
            Side::Dependent => f.write_str(", from a dependent"),
            Side::Root(RootTrick::Mark(m)) => write!(f, ", root: mark 0x{m:x}"),
            Side::Root(RootTrick::BindUnderlay) => f.write_str(", root: bound to the underlay"),
            Side::Root(RootTrick::Spoof(a)) => write!(f, ", root: source spoofed as {a}"),
        }
    }
}

fn tcp_flags(flags: u8) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let set: Vec<&str> = (0..8)
        .filter(|b| flags & (1 << b) != 0)
        .map(|b| NAMES[b])
        .collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(",")
    }
}

/// The Internet checksum of `parts` joined (RFC 1071).
fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => {
                    sum += u32::from(u16::from_be_bytes([hi, b]));
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            p.extend_from_slice(&v6(s).octets());
            p.extend_from_slice(&v6(d).octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    p
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

impl SprayPacket {
    /// The IP protocol number of the transport.
    pub fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => 1,
            L4::Icmpv6 { .. } => 58,
            L4::Other { proto } => proto,
        }
    }

    /// The transport segment (header, checksum and the marker four times:
    /// each fragment holds one whole copy), for a packet from `src`.
    pub fn segment(&self, src: IpAddr, marker: &[u8]) -> Vec<u8> {
        let payload: Vec<u8> = marker.repeat(4);
        let mut seg = match self.l4 {
            L4::Tcp {
                flags,
                sport,
                dport,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8]
                    .copy_from_slice(&u32::from(self.id).wrapping_mul(2_654_435_761).to_be_bytes());
                if flags & 0x10 != 0 {
                    h[8..12].copy_from_slice(&0x1000u32.to_be_bytes());
                }
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64_240u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Icmp { ty, code } | L4::Icmpv6 { ty, code } => {
                let mut h = vec![ty, code, 0, 0];
                h.extend_from_slice(&self.id.to_be_bytes());
                h.extend_from_slice(&[0, 1]);
                h
            }
            L4::Other { proto: 47 } => vec![0, 0, 0x08, 0x00],
            L4::Other { .. } => Vec::new(),
        };
        seg.extend_from_slice(&payload);
        let at = match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Icmp { .. } | L4::Icmpv6 { .. } => Some(2),
            L4::Other { .. } => None,
        };
        if let Some(at) = at {
            let sum = match self.l4 {
                L4::Icmp { .. } => inet_checksum(&[&seg]),
                _ => {
                    let ph = pseudo_header(src, self.dst, self.proto(), seg.len());
                    let s = inet_checksum(&[&ph, &seg]);
                    // UDP writes a computed 0 as all ones.
                    if s == 0 && self.proto() == 17 {
                        0xffff
                    } else {
                        s
                    }
                }
            };
            seg[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        seg
    }

    /// The IP packets to write for this one (two for [`Shape::Fragments`]),
    /// from `src`. A [`Shape::MappedSocket`] packet gives the UDP payload
    /// the socket sends.
    pub fn datagrams(&self, src: IpAddr, marker: &[u8]) -> Vec<Vec<u8>> {
        let seg = self.segment(src, marker);
        if self.shape == Shape::MappedSocket {
            return vec![seg.get(8..).unwrap_or_default().to_vec()];
        }
        let split = 40.min(seg.len() / 8 * 8);
        // Never 0 (the kernel would replace it, fragment by fragment).
        let frag_id = 0x4c48_0001 | u32::from(self.id) << 1;
        match (self.dst, self.shape) {
            (IpAddr::V4(_), Shape::Fragments) => vec![
                self.ipv4(src, &seg[..split], None, (true, 0), frag_id),
                self.ipv4(src, &seg[split..], None, (false, split), frag_id),
            ],
            (IpAddr::V4(_), Shape::LoneFragment) => {
                vec![self.ipv4(src, &seg[split..], None, (false, split), frag_id)]
            }
            (IpAddr::V4(_), Shape::Extension(_)) => {
                vec![self.ipv4(src, &seg, Some(&[1, 1, 1, 1]), (false, 0), frag_id)]
            }
            (IpAddr::V4(_), _) => vec![self.ipv4(src, &seg, None, (false, 0), frag_id)],
            (IpAddr::V6(_), Shape::Fragments) => vec![
                self.ipv6(
                    src,
                    &frag_header(self.proto(), 0, true, frag_id),
                    &seg[..split],
                ),
                self.ipv6(
                    src,
                    &frag_header(self.proto(), split, false, frag_id),
                    &seg[split..],
                ),
            ],
            (IpAddr::V6(_), Shape::LoneFragment) => vec![self.ipv6(
                src,
                &frag_header(self.proto(), split, false, frag_id),
                &seg[split..],
            )],
            (IpAddr::V6(_), Shape::Extension(h)) => {
                let ext = match h {
                    43 => vec![self.proto(), 0, 0, 0, 0, 0, 0, 0],
                    _ => vec![self.proto(), 0, 1, 4, 0, 0, 0, 0],
                };
                vec![self.ipv6_with(src, h, &ext, &seg)]
            }
            (IpAddr::V6(_), _) => vec![self.ipv6(src, &[], &seg)],
        }
    }

    /// An IPv4 packet: `options` (a multiple of 4 bytes), fragment bits
    /// (more fragments, byte offset).
    fn ipv4(
        &self,
        src: IpAddr,
        body: &[u8],
        options: Option<&[u8]>,
        (more, offset): (bool, usize),
        id: u32,
    ) -> Vec<u8> {
        let opts = options.unwrap_or_default();
        let hl = 20 + opts.len();
        let mut p = vec![0u8; hl];
        p[0] = 0x40 | (hl / 4) as u8;
        p[1] = self.tos;
        p[2..4].copy_from_slice(&((hl + body.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&(id as u16).to_be_bytes());
        let frag = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[8] = self.ttl;
        p[9] = self.proto();
        if let (IpAddr::V4(s), IpAddr::V4(d)) = (src, self.dst) {
            p[12..16].copy_from_slice(&s.octets());
            p[16..20].copy_from_slice(&d.octets());
        }
        p[20..].copy_from_slice(opts);
        let sum = inet_checksum(&[&p]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    /// An IPv6 packet; `frag` is a fragment header (or empty).
    fn ipv6(&self, src: IpAddr, frag: &[u8], body: &[u8]) -> Vec<u8> {
        if frag.is_empty() {
            self.ipv6_with(src, self.proto(), &[], body)
        } else {
            self.ipv6_with(src, 44, frag, body)
        }
    }

    fn ipv6_with(&self, src: IpAddr, next: u8, ext: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        let first = (6u32 << 28) | (u32::from(self.tos) << 20) | u32::from(self.id);
        p[0..4].copy_from_slice(&first.to_be_bytes());
        p[4..6].copy_from_slice(&((ext.len() + body.len()) as u16).to_be_bytes());
        p[6] = next;
        p[7] = self.ttl;
        p[8..24].copy_from_slice(&v6(src).octets());
        p[24..40].copy_from_slice(&v6(self.dst).octets());
        p.extend_from_slice(ext);
        p.extend_from_slice(body);
        p
    }
}

fn frag_header(next: u8, offset: usize, more: bool, id: u32) -> Vec<u8> {
    let mut h = vec![next, 0];
    let off = ((offset / 8) as u16) << 3 | u16::from(more);
    h.extend_from_slice(&off.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h
}

/// One packet of a spray that got out: where and as what.
#[derive(Debug, Clone)]
pub struct SprayLeak {
    pub id: u16,
    pub wire: String,
    pub at: SystemTime,
    /// The classifier's summary of the frame and why it is a leak.
    pub frame: String,
}

/// The frames of `spray` on the `watched` wires that the wire's policy
/// calls a leak, in capture order.
pub fn leaked(
    spray: &Spray,
    watched: &[String],
    captured: &BTreeMap<String, Vec<Frame>>,
    policies: &BTreeMap<String, LeakPolicy>,
    nonces: &Nonces,
) -> Vec<SprayLeak> {
    let mut out = Vec::new();
    for w in watched {
        let (Some(frames), Some(policy)) = (captured.get(w), policies.get(w)) else {
            continue;
        };
        for f in frames {
            let Some(p) = spray.find(&f.data) else {
                continue;
            };
            let v = classify_with(policy, &f.data, nonces);
            if v.is_leak() {
                out.push(SprayLeak {
                    id: p.id,
                    wire: w.clone(),
                    at: f.at,
                    frame: v.summary().to_string(),
                });
            }
        }
    }
    out
}

/// What a spray's leaks say: `None` if there are none; otherwise the
/// message (how many packets got out, the seed, how to replay, the
/// smallest packet and how it was seen) and a detail listing them (the
/// first 50). `replay` is the command that replays the run's sprays.
pub fn report(spray: &Spray, leaks: &[SprayLeak], replay: &str) -> Option<(String, String)> {
    let mut ids: Vec<u16> = leaks.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let smallest = spray.minimal(ids.iter().copied())?;
    let seen = leaks.iter().find(|l| l.id == smallest.id)?;
    let message = format!(
        "{} of the spray's {} packets got out (seed {:#018x}; replay: {replay}); the smallest: #{} {smallest}, seen on {} as {}",
        ids.len(),
        spray.packets.len(),
        spray.seed,
        smallest.id,
        seen.wire,
        seen.frame
    );
    let mut detail: Vec<String> = ids
        .iter()
        .take(50)
        .filter_map(|id| {
            let p = spray.packets.get(usize::from(*id))?;
            let l = leaks.iter().find(|l| l.id == *id)?;
            Some(format!("#{id} {p}: on {} as {}", l.wire, l.frame))
        })
        .collect();
    if ids.len() > 50 {
        detail.push(format!("... and {} more", ids.len() - 50));
    }
    Some((message, detail.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> SprayTargets {
        let a = |c, s: &str| (c, s.parse::<IpAddr>().unwrap());
        SprayTargets {
            addrs: vec![
                a(AddrClass::Public, "192.0.2.80"),
                a(AddrClass::Public, "2001:db8:80::80"),
                a(AddrClass::Endpoint, "203.0.113.10"),
                a(AddrClass::AllowedLan, "172.21.0.1"),
                a(AddrClass::DeniedLan, "192.168.30.10"),
                a(AddrClass::Multicast, "ff02::1"),
                a(AddrClass::LinkLocal, "fe80::1"),
                a(AddrClass::Mapped, "::ffff:192.0.2.80"),
            ],
            endpoint_port: 51820,
        }
    }

    fn budget(packets: usize, root: usize) -> Budget {
        Budget { packets, root }
    }

    #[test]
    fn the_same_seed_gives_the_same_spray_and_another_seed_another() {
        let a = Spray::generate(
            7,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(2000, 500),
        );
        let b = Spray::generate(
            7,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(2000, 500),
        );
        let c = Spray::generate(
            8,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(2000, 500),
        );
        assert_eq!(a.packets, b.packets);
        assert_ne!(a.packets, c.packets);
        assert_eq!(a.packets.len(), 2000);
        let root = a
            .packets
            .iter()
            .filter(|p| matches!(p.side, Side::Root(_)))
            .count();
        assert_eq!(root, 500);
        assert_ne!(step_seed(1, "a", "b"), step_seed(1, "a", "c"));
        assert_eq!(step_seed(1, "a", "b"), step_seed(1, "a", "b"));
    }

    #[test]
    fn a_full_budget_covers_every_tcp_flag_combination_and_protocol() {
        let s = Spray::generate(
            1,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(2000, 500),
        );
        let dep = || s.packets.iter().filter(|p| p.side == Side::Dependent);
        for flags in 0..=255u8 {
            assert!(
                dep().any(|p| matches!(p.l4, L4::Tcp { flags: f, .. } if f == flags)),
                "{flags:#x}"
            );
        }
        for proto in PROTOS {
            for v6 in [false, true] {
                assert!(dep().any(|p| p.l4 == L4::Other { proto } && p.dst.is_ipv6() == v6));
            }
        }
        for ty in ICMPV6_TYPES {
            assert!(dep().any(|p| matches!(p.l4, L4::Icmpv6 { ty: t, .. } if t == ty)));
        }
        assert!(dep().any(|p| p.shape == Shape::MappedSocket));
        assert!(dep().any(|p| p.shape == Shape::LoneFragment && p.dst.is_ipv6()));
        assert!(dep().any(|p| p.l4
            == L4::Udp {
                sport: match p.l4 {
                    L4::Udp { sport, .. } => sport,
                    _ => 0,
                },
                dport: 51820
            }));
        for tos in TOS {
            assert!(dep().any(|p| p.tos == tos));
        }
        // Neighbour discovery never goes to the link itself.
        assert!(!s.packets.iter().any(|p| match p.l4 {
            L4::Icmpv6 { ty, .. } => link_housekeeping(ty, p.dst),
            _ => false,
        }));
    }

    #[test]
    fn every_packet_is_well_formed_and_carries_its_marker_in_every_fragment() {
        let s = Spray::generate(
            3,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(2000, 500),
        );
        for p in &s.packets {
            let src: IpAddr = if p.dst.is_ipv6() {
                "2001:db8:21::2".parse().unwrap()
            } else {
                "172.21.0.2".parse().unwrap()
            };
            let m = s.marker(p.id);
            for d in p.datagrams(src, &m) {
                assert_eq!(s.find(&d).map(|q| q.id), Some(p.id), "{p}");
                if p.shape == Shape::MappedSocket {
                    continue;
                }
                if p.dst.is_ipv6() {
                    assert_eq!(d[0] >> 4, 6);
                    assert_eq!(usize::from(u16::from_be_bytes([d[4], d[5]])) + 40, d.len());
                } else {
                    assert_eq!(d[0] >> 4, 4);
                    assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])), d.len());
                    let hl = usize::from(d[0] & 0xf) * 4;
                    assert_eq!(inet_checksum(&[&d[..hl]]), 0, "{p}");
                }
            }
        }
    }

    #[test]
    fn transport_checksums_verify() {
        let s = Spray::generate(
            5,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(600, 0),
        );
        for p in s.packets.iter().filter(|p| p.shape == Shape::Whole) {
            let src: IpAddr = if p.dst.is_ipv6() {
                "2001:db8:21::2".parse().unwrap()
            } else {
                "172.21.0.2".parse().unwrap()
            };
            let seg = p.segment(src, &s.marker(p.id));
            let ok = match p.l4 {
                L4::Icmp { .. } => inet_checksum(&[&seg]) == 0,
                L4::Other { .. } => true,
                _ => {
                    let ph = pseudo_header(src, p.dst, p.proto(), seg.len());
                    inet_checksum(&[&ph, &seg]) == 0
                }
            };
            assert!(ok, "{p}");
        }
    }

    #[test]
    fn the_minimal_packet_is_the_shortest() {
        let s = Spray::generate(
            9,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(400, 0),
        );
        let ids: Vec<u16> = s.packets.iter().map(|p| p.id).collect();
        let m = s.minimal(ids.iter().copied()).unwrap();
        let any = |p: &SprayPacket| {
            if p.dst.is_ipv6() {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        };
        let len = |p: &SprayPacket| -> usize {
            p.datagrams(any(p), &s.marker(p.id))
                .iter()
                .map(Vec::len)
                .sum()
        };
        assert!(s.packets.iter().all(|p| len(p) >= len(m)));
        assert!(s.minimal([]).is_none());
        assert!(m.to_string().contains("from a dependent"), "{m}");
    }

    #[test]
    fn a_frame_without_the_tag_or_with_a_broken_id_is_no_spray_packet() {
        let s = Spray::generate(
            9,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(10, 0),
        );
        assert!(s.find(b"nothing here").is_none());
        assert!(s.find(b"..0123456789ab-zz00..").is_none());
        assert!(s.find(b"..0123456789ab-ffff..").is_none());
        assert!(s.find(b"..0123456789ab").is_none());
        assert!(s.find(b"..0123456789ab-+003..").is_none());
        // A broken first copy does not hide a whole later one.
        assert_eq!(
            s.find(b"0123456789ab-zz 0123456789ab-0002").map(|p| p.id),
            Some(2)
        );
        assert_eq!(s.find(b"..0123456789ab-0003..").map(|p| p.id), Some(3));
    }

    #[test]
    fn the_judge_finds_leaked_spray_frames_and_reports_the_smallest() {
        let s = Spray::generate(
            11,
            ["0123456789ab", "ba9876543210"],
            &targets(),
            budget(2000, 0),
        );
        let eth = |ip: Vec<u8>| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(if ip[0] >> 4 == 6 {
                &[0x86, 0xdd]
            } else {
                &[0x08, 0x00]
            });
            f.extend_from_slice(&ip);
            f
        };
        let src: IpAddr = "172.21.0.2".parse().unwrap();
        let whole_v4 = |class: AddrClass| {
            s.packets
                .iter()
                .find(|p| {
                    p.class == class
                        && p.shape == Shape::Whole
                        && p.dst.is_ipv4()
                        // Not a port mapping request (5351, 1900): those
                        // leak whatever the address.
                        && matches!(p.l4, L4::Udp { dport, .. } if dport != 5351 && dport != 1900)
                })
                .unwrap()
        };
        let out = whole_v4(AddrClass::Public);
        let lan = whole_v4(AddrClass::AllowedLan);
        let frames: Vec<Frame> = [out, lan]
            .iter()
            .map(|p| Frame {
                at: SystemTime::UNIX_EPOCH,
                data: eth(p.datagrams(src, &s.marker(p.id)).remove(0)),
            })
            .chain([Frame {
                at: SystemTime::UNIX_EPOCH,
                data: eth(vec![0x45; 40]),
            }])
            .collect();
        let policy = LeakPolicy {
            local: vec![src],
            endpoint: "203.0.113.10:51820".parse().unwrap(),
            allowed: vec!["172.21.0.0/16".parse().unwrap()],
            tunnel_mtu: None,
        };
        let wires = vec!["gw".to_string()];
        let captured = BTreeMap::from([("gw".to_string(), frames)]);
        let policies = BTreeMap::from([("gw".to_string(), policy)]);
        let nonces = Nonces::new([&s.tag, &s.root_tag]).unwrap();
        let found = leaked(&s, &wires, &captured, &policies, &nonces);
        assert_eq!(found.iter().map(|l| l.id).collect::<Vec<_>>(), vec![out.id]);
        let (message, detail) = report(&s, &found, "leakhound run --seed 1").unwrap();
        assert!(
            message.starts_with("1 of the spray's 2000 packets got out (seed 0x"),
            "{message}"
        );
        assert!(
            message.contains("replay: leakhound run --seed 1"),
            "{message}"
        );
        assert!(message.contains(&format!("#{} {out}", out.id)), "{message}");
        assert!(detail.contains("on gw as UDP 172.21.0.2"), "{detail}");
        assert!(report(&s, &[], "x").is_none());
    }
}
