//! Classification of captured frames as allowed or leak (docs/DESIGN.md, "What
//! counts as a leak"). Pure: a policy and the bytes of one Ethernet frame in,
//! a verdict out. Anything that cannot be proven allowed is a leak, including
//! frames that do not parse.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use pnet_packet::Packet;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use serde::Serialize;

/// What may cross one watched wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeakPolicy {
    /// The addresses on this wire that speak for the gateway (gw eth0; on the
    /// uplink, the home router's NAT address).
    pub local: Vec<IpAddr>,
    /// The WireGuard endpoint (UDP).
    pub endpoint: SocketAddr,
    /// Subnets the gateway may reach (or be reached from) outside the tunnel.
    pub allowed: Vec<IpNet>,
    /// The tunnel's MTU, when known: a WireGuard data message's padded
    /// plaintext is a multiple of 16 bytes or exactly this long
    /// ([`wireguard_framing`]).
    pub tunnel_mtu: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// WireGuard between the gateway and its endpoint.
    Tunnel,
    /// To or from a subnet the policy allows.
    AllowedSubnet,
    /// ARP, IPv6 neighbour discovery, MLD.
    Housekeeping,
    /// Arriving at the gateway side from elsewhere (a probe, an attacker, a
    /// reply): not a leak itself; the gateway's answer, if any, is judged.
    Inbound,
    /// A refusal carrying no data: a bare TCP reset, or "unreachable" about a
    /// packet that merely arrived. (A SYN-ACK, i.e. an open port, is judged
    /// like any other packet.)
    Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Other,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Icmp => "ICMP",
            Proto::Icmpv6 => "ICMPv6",
            Proto::Other => "IP",
        })
    }
}

/// The parts of a packet a leak report names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub proto: Proto,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// For DNS, the queried name.
    pub dns_name: Option<String>,
    /// Why the frame is not even an IP packet we understand, if so.
    pub note: Option<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.note {
            return f.write_str(n);
        }
        let end = |ip: Option<IpAddr>, port: Option<u16>| match (ip, port) {
            (Some(ip), Some(p)) => SocketAddr::new(ip, p).to_string(),
            (Some(ip), None) => ip.to_string(),
            _ => "?".into(),
        };
        write!(
            f,
            "{} {} -> {}",
            self.proto,
            end(self.src, self.sport),
            end(self.dst, self.dport)
        )?;
        if let Some(n) = &self.dns_name {
            write!(f, " (DNS query {n})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Allowed { reason: Reason, summary: Summary },
    Leak { summary: Summary },
}

impl Verdict {
    pub fn is_leak(&self) -> bool {
        matches!(self, Verdict::Leak { .. })
    }
    pub fn summary(&self) -> &Summary {
        match self {
            Verdict::Allowed { summary, .. } | Verdict::Leak { summary } => summary,
        }
    }
}

fn note(s: impl Into<String>) -> Summary {
    Summary {
        proto: Proto::Other,
        src: None,
        dst: None,
        sport: None,
        dport: None,
        dns_name: None,
        note: Some(s.into()),
    }
}

/// ICMPv6 types that are link housekeeping: MLD (130-132, 143) and neighbour
/// discovery (133-137).
const HOUSEKEEPING_ICMPV6: [u8; 9] = [130, 131, 132, 133, 134, 135, 136, 137, 143];

/// Classifies one Ethernet frame.
pub fn classify(policy: &LeakPolicy, frame: &[u8]) -> Verdict {
    classify_with(policy, frame, &Nonces::default())
}

/// Classifies one Ethernet frame, knowing the probes' nonces: a frame the
/// policy would let through for its addresses alone (WireGuard to the
/// endpoint, link housekeeping) that carries one of them in clear is a
/// leak, whatever its addresses.
pub fn classify_with(policy: &LeakPolicy, frame: &[u8], nonces: &Nonces) -> Verdict {
    let v = classify_frame(policy, frame);
    if let Verdict::Allowed {
        reason: Reason::Tunnel | Reason::Housekeeping,
        summary,
    } = &v
        && let Some(n) = nonces.find(frame)
    {
        let mut summary = summary.clone();
        summary.note = Some(format!("{summary}: probe nonce {n} in clear"));
        return Verdict::Leak { summary };
    }
    v
}

/// Why the probes' nonces cannot be searched for.
pub type NoncesError = aho_corasick::BuildError;

/// The probes' nonces, to be found in captured bytes (one automaton for
/// all of them).
#[derive(Debug, Clone, Default)]
pub struct Nonces {
    matcher: Option<aho_corasick::AhoCorasick>,
    patterns: Vec<String>,
}

impl Nonces {
    /// A matcher for `nonces`; empty strings are ignored. It cannot be
    /// built only past the automaton's size limits.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(nonces: I) -> Result<Nonces, NoncesError> {
        let patterns: Vec<String> = nonces
            .into_iter()
            .map(|n| n.as_ref().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(aho_corasick::AhoCorasick::new(&patterns)?)
        };
        Ok(Nonces { matcher, patterns })
    }

    /// The first nonce found in `bytes`.
    pub fn find(&self, bytes: &[u8]) -> Option<&str> {
        let m = self.matcher.as_ref()?.find(bytes)?;
        Some(&self.patterns[m.pattern().as_usize()])
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Why a UDP payload to the endpoint's port is not WireGuard, if it is not
/// (the WireGuard paper's message formats, section 5.4): message types 1
/// (initiation, 148 bytes), 2 (response, 92), 3 (cookie reply, 64) and 4
/// (transport data: a 16-byte header, the padded plaintext, a 16-byte tag),
/// each with three zero reserved bytes. A data message's plaintext is
/// padded to a multiple of 16 bytes, or to the MTU when that is smaller:
/// unaligned plaintext must be from 1,280 bytes (the smallest MTU an IPv6
/// tunnel has) up to `tunnel_mtu` (any length when it is unknown), or
/// exactly `tunnel_mtu` when that is smaller.
///
/// A capture taken before segmentation sees a UDP GSO send whole: several
/// data messages back to back, all of one size but the last, which may be
/// shorter. Such a payload is WireGuard if it splits that way into data
/// messages that each are.
pub fn wireguard_framing(payload: &[u8], tunnel_mtu: Option<u16>) -> Result<(), String> {
    let single = one_message(payload, tunnel_mtu);
    if single.is_err() && payload.first() == Some(&4) && gso_split(payload, tunnel_mtu) {
        return Ok(());
    }
    single
}

/// Whether `payload` is data messages of one size `s` (the GSO segment
/// size) back to back, the last one possibly shorter, each WireGuard.
fn gso_split(payload: &[u8], tunnel_mtu: Option<u16>) -> bool {
    let header = |seg: &[u8]| seg.get(..4) == Some(&[4, 0, 0, 0][..]);
    // The second message's start is the segment size; a message is at
    // least 48 bytes (the header, one padded block, the tag).
    (48..payload.len())
        .filter(|&s| header(&payload[s..]))
        .any(|s| {
            payload
                .chunks(s)
                .all(|seg| header(seg) && one_message(seg, tunnel_mtu).is_ok())
        })
}

fn one_message(payload: &[u8], tunnel_mtu: Option<u16>) -> Result<(), String> {
    let Some((&kind, rest)) = payload.split_first() else {
        return Err("an empty datagram".into());
    };
    if rest.len() < 3 || rest[..3] != [0, 0, 0] {
        return Err(format!(
            "not WireGuard: type byte {kind}, reserved bytes not zero"
        ));
    }
    let len = payload.len();
    match kind {
        1 if len == 148 => Ok(()),
        2 if len == 92 => Ok(()),
        3 if len == 64 => Ok(()),
        1..=3 => Err(format!(
            "not WireGuard: a type {kind} message is {} bytes, not {len}",
            [148, 92, 64][kind as usize - 1]
        )),
        4 if len >= 32 => {
            let plain = len - 32;
            // Padded "to the MTU" is the route's MTU, which may be lower
            // than the device's (kernel WireGuard): any unaligned length
            // from 1,280 bytes (the least an IPv6 tunnel has) up to the
            // tunnel's MTU, or exactly a smaller MTU.
            let full = match tunnel_mtu.map(usize::from) {
                Some(mtu) => plain == mtu || (1280..=mtu).contains(&plain),
                None => plain >= 1280,
            };
            if plain.is_multiple_of(16) || full {
                Ok(())
            } else {
                Err(format!(
                    "not WireGuard: a data message's plaintext ({plain} bytes) is neither padded to 16 bytes nor the tunnel's MTU"
                ))
            }
        }
        4 => Err(format!("not WireGuard: a data message of {len} bytes")),
        _ => Err(format!("not WireGuard: message type {kind}")),
    }
}

fn classify_frame(policy: &LeakPolicy, frame: &[u8]) -> Verdict {
    let Some(eth) = EthernetPacket::new(frame) else {
        return Verdict::Leak {
            summary: note(format!("truncated frame ({} bytes)", frame.len())),
        };
    };
    match eth.get_ethertype() {
        EtherTypes::Arp => Verdict::Allowed {
            reason: Reason::Housekeeping,
            summary: note("ARP"),
        },
        EtherTypes::Ipv4 => match Ipv4Packet::new(eth.payload()) {
            Some(ip) if ip.get_version() == 4 && ip.get_header_length() >= 5 => {
                let (s, d) = (
                    IpAddr::V4(ip.get_source()),
                    IpAddr::V4(ip.get_destination()),
                );
                let payload_len = (ip.get_total_length() as usize)
                    .saturating_sub(4 * ip.get_header_length() as usize);
                let payload = &ip.payload()[..payload_len.min(ip.payload().len())];
                let first_fragment = ip.get_fragment_offset() == 0;
                transport(
                    policy,
                    s,
                    d,
                    ip.get_next_level_protocol(),
                    payload,
                    first_fragment,
                )
            }
            _ => Verdict::Leak {
                summary: note("malformed IPv4 packet"),
            },
        },
        EtherTypes::Ipv6 => match Ipv6Packet::new(eth.payload()) {
            Some(ip) if ip.get_version() == 6 => {
                let (s, d) = (
                    IpAddr::V6(ip.get_source()),
                    IpAddr::V6(ip.get_destination()),
                );
                let len = (ip.get_payload_length() as usize).min(ip.payload().len());
                match skip_ipv6_extensions(ip.get_next_header(), &ip.payload()[..len]) {
                    Some((next, payload, first)) => transport(policy, s, d, next, payload, first),
                    None => Verdict::Leak {
                        summary: Summary {
                            src: Some(s),
                            dst: Some(d),
                            ..note(format!("IPv6 {s} -> {d} with malformed extension headers"))
                        },
                    },
                }
            }
            _ => Verdict::Leak {
                summary: note("malformed IPv6 packet"),
            },
        },
        other => Verdict::Leak {
            summary: note(format!("non-IP frame, ethertype {:#06x}", other.0)),
        },
    }
}

/// Walks IPv6 extension headers (hop-by-hop, routing, fragment, destination
/// options) to the upper-layer protocol. Returns the protocol, its bytes, and
/// whether they start with its header (false in a non-first fragment).
fn skip_ipv6_extensions(
    mut next: IpNextHeaderProtocol,
    mut payload: &[u8],
) -> Option<(IpNextHeaderProtocol, &[u8], bool)> {
    let mut first = true;
    // RFC 8200 allows each at most twice; bound the walk regardless.
    for _ in 0..8 {
        match next {
            IpNextHeaderProtocols::Hopopt
            | IpNextHeaderProtocols::Ipv6Route
            | IpNextHeaderProtocols::Ipv6Opts => {
                let hdr_len = 8 + 8 * *payload.get(1)? as usize;
                let nh = *payload.first()?;
                payload = payload.get(hdr_len..)?;
                next = IpNextHeaderProtocol(nh);
            }
            IpNextHeaderProtocols::Ipv6Frag => {
                let nh = *payload.first()?;
                let offset = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]) >> 3;
                first &= offset == 0;
                payload = payload.get(8..)?;
                next = IpNextHeaderProtocol(nh);
            }
            _ => return Some((next, payload, first)),
        }
    }
    None
}

/// The verdict on the packet an ICMP error quotes, if it parses; only an
/// allowed quoted packet makes the error allowed.
fn quoted_verdict(
    policy: &LeakPolicy,
    quoted: &[u8],
    (v6, unreachable): (bool, bool),
    to: IpAddr,
) -> Option<Verdict> {
    let (src, dst, proto, inner): (IpAddr, IpAddr, _, &[u8]) = if v6 {
        let ip = Ipv6Packet::new(quoted)?;
        let (p, rest, _) = skip_ipv6_extensions(ip.get_next_header(), quoted.get(40..)?)?;
        (ip.get_source().into(), ip.get_destination().into(), p, rest)
    } else {
        let ip = Ipv4Packet::new(quoted)?;
        let hl = 4 * ip.get_header_length() as usize;
        (
            ip.get_source().into(),
            ip.get_destination().into(),
            ip.get_next_level_protocol(),
            quoted.get(hl..)?,
        )
    };
    // An error goes back to the quoted packet's sender; one sent elsewhere
    // is no part of that flow (it could carry anything after its quote).
    if src != to {
        return None;
    }
    // The quote holds only the first 8 bytes of the transport header: enough
    // for ports. No ICMP-in-ICMP.
    let v = transport_inner(policy, src, dst, proto, inner, inner.len() >= 8, false);
    // An error about an allowed flow is part of it; "unreachable" about
    // something that merely arrived is a refusal. Anything else is judged
    // as the error itself.
    match v {
        Verdict::Allowed {
            reason: Reason::Tunnel | Reason::AllowedSubnet,
            ..
        } => Some(v),
        Verdict::Allowed {
            reason: Reason::Inbound,
            summary,
        } if unreachable => Some(Verdict::Allowed {
            reason: Reason::Refusal,
            summary,
        }),
        _ => None,
    }
}

impl Verdict {
    fn with_summary(self, summary: Summary) -> Verdict {
        match self {
            Verdict::Allowed { reason, .. } => Verdict::Allowed { reason, summary },
            Verdict::Leak { .. } => Verdict::Leak { summary },
        }
    }
}

fn transport(
    policy: &LeakPolicy,
    src: IpAddr,
    dst: IpAddr,
    proto: IpNextHeaderProtocol,
    payload: &[u8],
    has_header: bool,
) -> Verdict {
    transport_inner(policy, src, dst, proto, payload, has_header, true)
}

fn transport_inner(
    policy: &LeakPolicy,
    src: IpAddr,
    dst: IpAddr,
    proto: IpNextHeaderProtocol,
    payload: &[u8],
    has_header: bool,
    quoting: bool,
) -> Verdict {
    let mut s = Summary {
        proto: Proto::Other,
        src: Some(src),
        dst: Some(dst),
        sport: None,
        dport: None,
        dns_name: None,
        note: None,
    };
    let mut dns_payload: Option<&[u8]> = None;
    match proto {
        IpNextHeaderProtocols::Tcp => {
            s.proto = Proto::Tcp;
            if has_header && payload.len() >= 4 && TcpPacket::new(payload).is_none() {
                // A quoted TCP header (8 bytes): ports only.
                s.sport = Some(u16::from_be_bytes([payload[0], payload[1]]));
                s.dport = Some(u16::from_be_bytes([payload[2], payload[3]]));
            }
            if let Some(t) = TcpPacket::new(payload).filter(|_| has_header) {
                s.sport = Some(t.get_source());
                s.dport = Some(t.get_destination());
                let off = 4 * t.get_data_offset() as usize;
                // A bare reset (no data): "closed", whoever sends it.
                if t.get_flags() & pnet_packet::tcp::TcpFlags::RST != 0 && payload.len() <= off {
                    return Verdict::Allowed {
                        reason: Reason::Refusal,
                        summary: s,
                    };
                }
                // DNS over TCP: a 2-byte length, then the message.
                if payload.len() > off + 2 {
                    dns_payload = Some(&payload[off + 2..]);
                }
            }
        }
        IpNextHeaderProtocols::Udp => {
            s.proto = Proto::Udp;
            if let Some(u) = UdpPacket::new(payload).filter(|_| has_header) {
                s.sport = Some(u.get_source());
                s.dport = Some(u.get_destination());
                dns_payload = payload.get(8..);
            }
        }
        IpNextHeaderProtocols::Icmp => {
            s.proto = Proto::Icmp;
            // Errors (unreachable, time exceeded, parameter problem) are
            // judged by the packet they quote: an error about the tunnel's
            // own flow is part of that flow.
            if has_header
                && quoting
                && matches!(payload.first(), Some(3 | 11 | 12))
                && let Some(v) = quoted_verdict(
                    policy,
                    payload.get(8..).unwrap_or_default(),
                    (false, payload.first() == Some(&3)),
                    dst,
                )
            {
                return v.with_summary(s);
            }
        }
        IpNextHeaderProtocols::Icmpv6 => {
            s.proto = Proto::Icmpv6;
            if has_header
                && quoting
                && matches!(payload.first(), Some(1..=4))
                && let Some(v) = quoted_verdict(
                    policy,
                    payload.get(8..).unwrap_or_default(),
                    (true, payload.first() == Some(&1)),
                    dst,
                )
            {
                return v.with_summary(s);
            }
            if let Some(icmp) = Icmpv6Packet::new(payload).filter(|_| has_header)
                && HOUSEKEEPING_ICMPV6.contains(&icmp.get_icmpv6_type().0)
            {
                return Verdict::Allowed {
                    reason: Reason::Housekeeping,
                    summary: s,
                };
            }
        }
        IpNextHeaderProtocols::Igmp if is_link_local_multicast(dst) => {
            return Verdict::Allowed {
                reason: Reason::Housekeeping,
                summary: s,
            };
        }
        _ => {}
    }
    if s.sport == Some(53) || s.dport == Some(53) {
        s.dns_name = dns_payload.and_then(dns_query_name);
    }

    let is_local = |ip: IpAddr| policy.local.contains(&ip);
    match tunnel(policy, &s, payload, has_header && quoting) {
        Some(Ok(())) => {
            return Verdict::Allowed {
                reason: Reason::Tunnel,
                summary: s,
            };
        }
        Some(Err(why)) => {
            s.note = Some(format!("{s}: {why}"));
            return Verdict::Leak { summary: s };
        }
        None => {}
    }
    // Asking a router on the LAN to expose a dependent (NAT-PMP and PCP on
    // 5351, UPnP's SSDP discovery on 1900) would publish the home address:
    // a leak of its own, even towards an allowed subnet.
    if is_local(src) && s.proto == Proto::Udp && matches!(s.dport, Some(PCP_PORT | SSDP_PORT)) {
        return Verdict::Leak { summary: s };
    }
    // Only what the gateway side sends (or forwards) can leak; what arrives
    // for it is the world's doing, and its answer is judged on its own.
    let allowed = |ip: IpAddr| policy.allowed.iter().any(|n| n.contains(&ip));
    let (reason, ok) = match (is_local(src), is_local(dst)) {
        (true, false) => (Reason::AllowedSubnet, allowed(dst)),
        (false, true) => (Reason::Inbound, true),
        (true, true) => (Reason::AllowedSubnet, true),
        (false, false) => (Reason::AllowedSubnet, allowed(src) && allowed(dst)),
    };
    if ok {
        Verdict::Allowed { reason, summary: s }
    } else {
        Verdict::Leak { summary: s }
    }
}

/// Whether a packet between the gateway side and the endpoint's port is
/// the tunnel (`Ok`) or not WireGuard (`Err`, why); `None` for any other
/// packet. What the gateway side sends there is the tunnel only if it is
/// WireGuard by its framing (TunnelCrack's ServerIP: any process may write
/// there); `judge_framing` is false for a quoted header. Only a whole
/// datagram is judged (its UDP length is what was captured): the first
/// fragment of a larger one holds part of a message, and the fragments
/// after it carry no ports, so they never count as the tunnel at all.
fn tunnel(
    policy: &LeakPolicy,
    s: &Summary,
    payload: &[u8],
    judge_framing: bool,
) -> Option<Result<(), String>> {
    let is_local = |ip: Option<IpAddr>| ip.is_some_and(|ip| policy.local.contains(&ip));
    let ep = Some(policy.endpoint.ip());
    let port = Some(policy.endpoint.port());
    let udp = s.proto == Proto::Udp;
    let wg_out = udp && is_local(s.src) && s.dst == ep && s.dport == port;
    let wg_in = udp && is_local(s.dst) && s.src == ep && s.sport == port;
    let whole = payload
        .get(4..6)
        .is_some_and(|l| usize::from(u16::from_be_bytes([l[0], l[1]])) == payload.len());
    if wg_out && judge_framing && whole {
        return Some(wireguard_framing(
            payload.get(8..).unwrap_or_default(),
            policy.tunnel_mtu,
        ));
    }
    (wg_out || wg_in).then_some(Ok(()))
}

/// NAT-PMP's and PCP's port at a router (RFC 6886, RFC 6887).
pub const PCP_PORT: u16 = 5351;
/// UPnP's SSDP discovery (239.255.255.250, ff0X::c).
pub const SSDP_PORT: u16 = 1900;

fn is_link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] == 0xff02,
    }
}

/// The first question's name of a DNS message, if it parses.
pub fn dns_query_name(msg: &[u8]) -> Option<String> {
    let m = hickory_proto::op::Message::from_vec(msg).ok()?;
    m.queries.first().map(|q| q.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const HOME_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn policy() -> LeakPolicy {
        LeakPolicy {
            local: vec![
                "172.21.0.2".parse().unwrap(),
                "2001:db8:21::2".parse().unwrap(),
            ],
            endpoint: "203.0.113.10:51820".parse().unwrap(),
            allowed: vec![
                "172.21.0.0/16".parse().unwrap(),
                "172.20.0.0/16".parse().unwrap(),
            ],
            tunnel_mtu: Some(1420),
        }
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&HOME_MAC);
        f.extend_from_slice(&GW_MAC);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// An IPv4 header (no options, checksum left zero: the classifier does not
    /// verify it) followed by `l4`.
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }

    fn ipv6(src: &str, dst: &str, next: u8, l4: &[u8]) -> Vec<u8> {
        let s: std::net::Ipv6Addr = src.parse().unwrap();
        let d: std::net::Ipv6Addr = dst.parse().unwrap();
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&s.octets());
        p.extend_from_slice(&d.octets());
        p.extend_from_slice(l4);
        p
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    /// An Ethernet frame with an IPv4 TCP SYN.
    fn v4_syn(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        eth(0x0800, &ipv4(src, dst, 6, &tcp_syn(sport, dport)))
    }

    fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    /// A DNS query for `name` (type A), as a resolver would send it.
    fn dns_query(name: &str) -> Vec<u8> {
        crate::dns_query::a_query(name).unwrap().1
    }

    /// A WireGuard message of `kind` and `len` bytes (reserved bytes zero).
    fn wg(kind: u8, len: usize) -> Vec<u8> {
        let mut m = vec![0u8; len];
        m[0] = kind;
        m
    }

    /// An Ethernet frame with an IPv4 UDP datagram.
    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        eth(0x0800, &ipv4(src, dst, 17, &udp(sport, dport, payload)))
    }

    fn to_endpoint(payload: &[u8]) -> Vec<u8> {
        udp4([172, 21, 0, 2], [203, 0, 113, 10], 40000, 51820, payload)
    }

    #[test]
    fn every_wireguard_message_to_the_endpoint_is_the_tunnel() {
        for m in [
            wg(1, 148),
            wg(2, 92),
            wg(3, 64),
            wg(4, 32),        // a keepalive
            wg(4, 32 + 96),   // padded plaintext
            wg(4, 32 + 1420), // a full packet at an MTU of 1420
        ] {
            let v = classify(&policy(), &to_endpoint(&m));
            assert!(
                matches!(
                    v,
                    Verdict::Allowed {
                        reason: Reason::Tunnel,
                        ..
                    }
                ),
                "type {} of {} bytes: {v:?}",
                m[0],
                m.len()
            );
        }
    }

    #[test]
    fn what_is_not_wireguard_to_the_endpoints_port_is_a_leak() {
        let mut reserved = wg(1, 148);
        reserved[2] = 1;
        for (m, says) in [
            (b"GET /leakhound/0123456789ab".to_vec(), "type byte 71"),
            (vec![], "an empty datagram"),
            (wg(1, 150), "a type 1 message is 148 bytes"),
            (wg(2, 148), "a type 2 message is 92 bytes"),
            (wg(3, 65), "a type 3 message is 64 bytes"),
            (reserved, "reserved bytes not zero"),
            (wg(4, 16), "a data message of 16 bytes"),
            (
                wg(4, 32 + 100),
                "neither padded to 16 bytes nor the tunnel's MTU",
            ),
            (wg(4, 32 + 1204), "neither padded"),
            (wg(5, 148), "message type 5"),
        ] {
            let v = classify(&policy(), &to_endpoint(&m));
            assert!(v.is_leak(), "{m:?}: {v:?}");
            let text = v.summary().to_string();
            assert!(
                text.starts_with("UDP 172.21.0.2:40000 -> 203.0.113.10:51820: ")
                    && text.contains(says),
                "{text}"
            );
        }
    }

    #[test]
    fn a_gso_send_seen_whole_is_wireguard_when_it_splits_into_data_messages() {
        // Two full messages at an MTU of 1420 and a shorter last one.
        let mut gso = wg(4, 32 + 1420);
        gso.extend(wg(4, 32 + 1420));
        gso.extend(wg(4, 32 + 656));
        assert!(wireguard_framing(&gso, Some(1420)).is_ok());
        // Aligned segments of 96 bytes of plaintext.
        let mut aligned = wg(4, 128);
        aligned.extend(wg(4, 128));
        assert!(wireguard_framing(&aligned, Some(1420)).is_ok());
        // A segment that is no data message of its own spoils the lot.
        let mut unpadded = wg(4, 32 + 1420);
        unpadded.extend(wg(4, 32 + 101));
        assert!(wireguard_framing(&unpadded, Some(1420)).is_err());
        // Plaintext after a real message is not hidden by it.
        let mut smuggled = wg(4, 128);
        smuggled.extend(b"GET /leakhound/0123456789ab HTTP/1.1");
        assert!(wireguard_framing(&smuggled, Some(1420)).is_err());
        // Nor is a segment that is not a data message.
        let mut init = wg(4, 148);
        init.extend(wg(1, 148));
        assert!(wireguard_framing(&init, Some(1420)).is_err());
    }

    #[test]
    fn the_first_fragment_of_a_datagram_to_the_endpoint_is_not_judged_as_a_whole_message() {
        // A UDP header saying 1,500 bytes in a first fragment of 100.
        let mut part = udp(40000, 51820, &wg(4, 92));
        part[4..6].copy_from_slice(&1500u16.to_be_bytes());
        let mut ip = ipv4([172, 21, 0, 2], [203, 0, 113, 10], 17, &part);
        ip[6] = 0x20; // more fragments
        let v = classify(&policy(), &eth(0x0800, &ip));
        assert!(
            matches!(
                v,
                Verdict::Allowed {
                    reason: Reason::Tunnel,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn an_unaligned_data_message_needs_the_mtu_or_at_least_1280_bytes_when_it_is_unknown() {
        assert!(wireguard_framing(&wg(4, 32 + 1420), Some(1420)).is_ok());
        assert!(wireguard_framing(&wg(4, 32 + 1421), Some(1420)).is_err());
        assert!(wireguard_framing(&wg(4, 32 + 1420), Some(1320)).is_err());
        // Padded to a route's MTU below the device's (kernel WireGuard).
        assert!(wireguard_framing(&wg(4, 32 + 1380), Some(1420)).is_ok());
        assert!(wireguard_framing(&wg(4, 32 + 1000), Some(1000)).is_ok());
        assert!(wireguard_framing(&wg(4, 32 + 1004), Some(1420)).is_err());
        assert!(wireguard_framing(&wg(4, 32 + 1300), None).is_ok());
        assert!(wireguard_framing(&wg(4, 32 + 1000), None).is_err());
        assert!(wireguard_framing(&wg(4, 32 + 1008), None).is_ok());
    }

    #[test]
    fn a_probes_nonce_in_clear_is_a_leak_even_in_a_wireguard_frame() {
        let nonces = Nonces::new(["0123456789ab", "ba9876543210"]).unwrap();
        let mut m = wg(4, 32 + 32);
        m[20..32].copy_from_slice(b"ba9876543210");
        let v = classify_with(&policy(), &to_endpoint(&m), &nonces);
        assert!(v.is_leak(), "{v:?}");
        assert!(
            v.summary()
                .to_string()
                .ends_with("probe nonce ba9876543210 in clear"),
            "{}",
            v.summary()
        );
        // Without it, the same frame is the tunnel.
        let v = classify_with(&policy(), &to_endpoint(&wg(4, 64)), &nonces);
        assert!(!v.is_leak(), "{v:?}");
        // To an allowed subnet a nonce is expected (a probe of the LAN).
        let lan = udp4([172, 21, 0, 2], [172, 20, 0, 10], 40000, 9, b"0123456789ab");
        assert!(!classify_with(&policy(), &lan, &nonces).is_leak());
        assert!(Nonces::new([""]).unwrap().is_empty());
        assert_eq!(nonces.len(), 2);
    }

    #[test]
    fn wireguard_to_the_endpoint_is_allowed_both_ways() {
        let out = to_endpoint(&wg(1, 148));
        let back = udp4(
            [203, 0, 113, 10],
            [172, 21, 0, 2],
            51820,
            40000,
            &[2, 0, 0, 0],
        );
        for f in [out, back] {
            assert!(matches!(
                classify(&policy(), &f),
                Verdict::Allowed {
                    reason: Reason::Tunnel,
                    ..
                }
            ));
        }
    }

    #[test]
    fn udp_to_the_endpoint_on_another_port_is_a_leak() {
        let f = udp4([172, 21, 0, 2], [203, 0, 113, 10], 40000, 51821, &[]);
        assert!(classify(&policy(), &f).is_leak());
    }

    #[test]
    fn http_to_the_internet_is_a_leak_with_both_ends_named() {
        let f = v4_syn([172, 21, 0, 2], [192, 0, 2, 80], 41000, 80);
        let v = classify(&policy(), &f);
        assert!(v.is_leak());
        assert_eq!(
            v.summary().to_string(),
            "TCP 172.21.0.2:41000 -> 192.0.2.80:80"
        );
    }

    #[test]
    fn a_dns_leak_names_the_queried_name() {
        let q = dns_query("n0nce42.probe.lab.");
        let f = eth(
            0x0800,
            &ipv4([172, 21, 0, 2], [192, 0, 2, 53], 17, &udp(5353, 53, &q)),
        );
        let v = classify(&policy(), &f);
        assert!(v.is_leak());
        assert_eq!(v.summary().dns_name.as_deref(), Some("n0nce42.probe.lab."));
        assert!(
            v.summary()
                .to_string()
                .contains("DNS query n0nce42.probe.lab.")
        );
    }

    #[test]
    fn lan_traffic_to_allowed_subnets_is_allowed_and_other_lans_are_not() {
        let ok = v4_syn([172, 21, 0, 2], [172, 20, 0, 10], 41000, 22);
        assert!(matches!(
            classify(&policy(), &ok),
            Verdict::Allowed {
                reason: Reason::AllowedSubnet,
                ..
            }
        ));
        let denied = v4_syn([172, 21, 0, 2], [192, 168, 30, 10], 41000, 22);
        assert!(classify(&policy(), &denied).is_leak());
    }

    #[test]
    fn asking_a_lan_router_for_a_port_mapping_is_a_leak_even_to_an_allowed_subnet() {
        // 172.21.0.0/16 is allowed; a PCP/NAT-PMP request to its router is not.
        let pcp = udp4([172, 21, 0, 2], [172, 21, 0, 1], 42170, PCP_PORT, &[2; 60]);
        assert!(classify(&policy(), &pcp).is_leak());
        let ssdp = udp4(
            [172, 21, 0, 2],
            [239, 255, 255, 250],
            50000,
            SSDP_PORT,
            b"M-SEARCH * HTTP/1.1\r\n",
        );
        assert!(classify(&policy(), &ssdp).is_leak());
        // The router's own announcements arriving are not the gateway's doing.
        let arriving = udp4([172, 21, 0, 1], [172, 21, 0, 2], PCP_PORT, 42170, &[2; 60]);
        assert!(!classify(&policy(), &arriving).is_leak());
    }

    #[test]
    fn what_arrives_is_not_a_leak_but_the_answer_is() {
        let knock = v4_syn([192, 0, 2, 200], [172, 21, 0, 2], 50000, 8080);
        assert!(matches!(
            classify(&policy(), &knock),
            Verdict::Allowed {
                reason: Reason::Inbound,
                ..
            }
        ));
        let answer = v4_syn([172, 21, 0, 2], [192, 0, 2, 200], 8080, 50000);
        assert!(classify(&policy(), &answer).is_leak());
        // Forwarded through the gateway between two outsiders: a leak.
        let through = v4_syn([192, 168, 30, 10], [192, 0, 2, 80], 50000, 80);
        assert!(classify(&policy(), &through).is_leak());
    }

    #[test]
    fn ipv6_to_the_internet_is_a_leak_and_neighbour_discovery_is_not() {
        let leak = eth(
            0x86dd,
            &ipv6("2001:db8:21::2", "2001:db8:80::80", 6, &tcp_syn(41000, 80)),
        );
        let v = classify(&policy(), &leak);
        assert!(v.is_leak());
        assert_eq!(v.summary().dst, Some("2001:db8:80::80".parse().unwrap()));
        // Neighbour solicitation (135) and router solicitation (133).
        for t in [135u8, 133, 143] {
            let ns = eth(
                0x86dd,
                &ipv6("fe80::1", "ff02::1:ff00:2", 58, &[t, 0, 0, 0, 0, 0, 0, 0]),
            );
            assert!(matches!(
                classify(&policy(), &ns),
                Verdict::Allowed {
                    reason: Reason::Housekeeping,
                    ..
                }
            ));
        }
        // An ICMPv6 echo request out of the underlay is a leak.
        let ping = eth(
            0x86dd,
            &ipv6(
                "2001:db8:21::2",
                "2001:db8:80::80",
                58,
                &[128, 0, 0, 0, 0, 1, 0, 1],
            ),
        );
        assert!(classify(&policy(), &ping).is_leak());
    }

    #[test]
    fn mld_reports_behind_a_hop_by_hop_header_are_housekeeping() {
        // Hop-by-hop (next header 58, length 0, Router Alert option, PadN),
        // then an MLDv2 report (type 143), as the kernel sends them.
        let mut l4 = vec![58, 0, 5, 2, 0, 0, 1, 0];
        l4.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 0]);
        let f = eth(0x86dd, &ipv6("fe80::1", "ff02::16", 0, &l4));
        assert!(matches!(
            classify(&policy(), &f),
            Verdict::Allowed {
                reason: Reason::Housekeeping,
                ..
            }
        ));
        // The same header in front of TCP to the internet does not hide a leak.
        let mut l4 = vec![6, 0, 1, 4, 0, 0, 0, 0];
        l4.extend_from_slice(&tcp_syn(41000, 443));
        let f = eth(0x86dd, &ipv6("2001:db8:21::2", "2001:db8:80::80", 0, &l4));
        let v = classify(&policy(), &f);
        assert!(v.is_leak());
        assert_eq!(v.summary().dport, Some(443));
        // A truncated extension header is a leak, not a panic.
        let f = eth(
            0x86dd,
            &ipv6("2001:db8:21::2", "2001:db8:80::80", 0, &[6, 9]),
        );
        assert!(classify(&policy(), &f).is_leak());
    }

    #[test]
    fn icmp_errors_are_judged_by_the_packet_they_quote() {
        // Port unreachable from the gateway about a WireGuard datagram from
        // the endpoint (the gateway had just stopped): part of the tunnel flow.
        let quoted = ipv4(
            [203, 0, 113, 10],
            [172, 21, 0, 2],
            17,
            &udp(51820, 40000, &[4, 0, 0, 0]),
        );
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted[..28]);
        let f = eth(0x0800, &ipv4([172, 21, 0, 2], [203, 0, 113, 10], 1, &icmp));
        assert!(matches!(
            classify(&policy(), &f),
            Verdict::Allowed {
                reason: Reason::Tunnel,
                ..
            }
        ));
        // The same quote in an error sent elsewhere, with anything after
        // it, is no part of the tunnel's flow.
        let mut smuggled = icmp.clone();
        smuggled.extend_from_slice(b"anything at all");
        let f = eth(
            0x0800,
            &ipv4([172, 21, 0, 2], [192, 0, 2, 80], 1, &smuggled),
        );
        assert!(classify(&policy(), &f).is_leak());
        // "Unreachable" about a packet that merely arrived from the internet
        // is a refusal (it carries nothing of the gateway's)...
        let quoted = ipv4([192, 0, 2, 80], [172, 21, 0, 2], 6, &tcp_syn(80, 41000));
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted[..28]);
        let f = eth(0x0800, &ipv4([172, 21, 0, 2], [192, 0, 2, 80], 1, &icmp));
        assert!(matches!(
            classify(&policy(), &f),
            Verdict::Allowed {
                reason: Reason::Refusal,
                ..
            }
        ));
        // ...but any other error about it (time exceeded) is a leak, and so is
        // "unreachable" about the gateway's own traffic to the internet.
        icmp[0] = 11;
        let f = eth(0x0800, &ipv4([172, 21, 0, 2], [192, 0, 2, 80], 1, &icmp));
        assert!(classify(&policy(), &f).is_leak());
        let quoted = ipv4([172, 21, 0, 2], [192, 0, 2, 80], 6, &tcp_syn(41000, 80));
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted[..28]);
        let f = eth(0x0800, &ipv4([172, 21, 0, 2], [192, 0, 2, 80], 1, &icmp));
        assert!(classify(&policy(), &f).is_leak());
        // An echo request is no error and quotes nothing.
        let f = eth(
            0x0800,
            &ipv4(
                [172, 21, 0, 2],
                [203, 0, 113, 10],
                1,
                &[8, 0, 0, 0, 0, 1, 0, 1],
            ),
        );
        assert!(classify(&policy(), &f).is_leak());
        // A truncated quote is a leak.
        let f = eth(
            0x0800,
            &ipv4(
                [172, 21, 0, 2],
                [203, 0, 113, 10],
                1,
                &[3, 3, 0, 0, 0, 0, 0, 0, 0x45],
            ),
        );
        assert!(classify(&policy(), &f).is_leak());
    }

    #[test]
    fn a_bare_reset_is_a_refusal_but_an_open_port_is_a_leak() {
        // RST|ACK from the gateway to an internet prober: "closed".
        let mut rst = tcp_syn(40000, 37750);
        rst[13] = 0x14;
        let f = eth(0x0800, &ipv4([172, 21, 0, 2], [192, 0, 2, 200], 6, &rst));
        assert!(matches!(
            classify(&policy(), &f),
            Verdict::Allowed {
                reason: Reason::Refusal,
                ..
            }
        ));
        // A reset carrying data is not bare.
        let mut with_data = rst.clone();
        with_data.extend_from_slice(b"secret");
        let f = eth(
            0x0800,
            &ipv4([172, 21, 0, 2], [192, 0, 2, 200], 6, &with_data),
        );
        assert!(classify(&policy(), &f).is_leak());
        // SYN-ACK: the port is open at the underlay address: a leak.
        let mut synack = tcp_syn(40000, 37750);
        synack[13] = 0x12;
        let f = eth(0x0800, &ipv4([172, 21, 0, 2], [192, 0, 2, 200], 6, &synack));
        assert!(classify(&policy(), &f).is_leak());
    }

    #[test]
    fn arp_is_housekeeping_and_unknown_frames_are_leaks() {
        let arp = eth(0x0806, &[0u8; 28]);
        assert!(matches!(
            classify(&policy(), &arp),
            Verdict::Allowed {
                reason: Reason::Housekeeping,
                ..
            }
        ));
        let other = eth(0x88cc, &[0u8; 40]);
        let v = classify(&policy(), &other);
        assert!(v.is_leak());
        assert!(v.summary().to_string().contains("0x88cc"));
    }

    #[test]
    fn garbage_is_a_leak_never_a_panic() {
        assert!(classify(&policy(), &[]).is_leak());
        assert!(classify(&policy(), &[0xff; 13]).is_leak());
        assert!(classify(&policy(), &eth(0x0800, &[0x45])).is_leak());
        assert!(classify(&policy(), &eth(0x0800, &[0x41; 40])).is_leak());
        assert!(classify(&policy(), &eth(0x86dd, &[0x60; 10])).is_leak());
        // A total length larger than the frame must not read past it.
        let mut p = ipv4(
            [172, 21, 0, 2],
            [192, 0, 2, 80],
            17,
            &udp(1, 53, &[1, 2, 3]),
        );
        p[2] = 0xff;
        p[3] = 0xff;
        assert!(classify(&policy(), &eth(0x0800, &p)).is_leak());
    }

    #[test]
    fn every_byte_prefix_of_a_frame_classifies_without_panicking() {
        let q = dns_query("x.lab.");
        let f = eth(
            0x0800,
            &ipv4([172, 21, 0, 2], [192, 0, 2, 53], 17, &udp(5353, 53, &q)),
        );
        for n in 0..=f.len() {
            let _ = classify(&policy(), &f[..n]);
        }
    }
}
