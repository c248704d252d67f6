//! A witness packet written from inside a namespace, so that the wire can
//! confirm what the engine found: the packet's bytes (built as the leak
//! fuzzer builds its packets, carrying a marker the capture looks for),
//! and the one write that matches its path: a raw IP socket with the
//! witness's mark bound to the underlay (sent by a process), or a frame on
//! an AF_PACKET socket (written past the IP stack). Blocking; run it on a
//! thread inside the namespace (`Netns::run`).

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use leakhound_model::spray::{AddrClass, L4, RootTrick, Shape, Side, SprayPacket};
use leakhound_prove::{Packet, Path};
use nix::libc;
use socket2::{Protocol, SockAddr};

/// Why a witness could not be written as found.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Its path cannot be reproduced by writing from the namespace (a
    /// forwarded packet needs a neighbour that sends it in).
    #[error("a witness {} cannot be written from inside the namespace", .0.describe())]
    Path(Path),
    #[error("there is no interface {0} in the namespace")]
    NoInterface(String),
    #[error("writing the witness: {0}")]
    Io(#[from] std::io::Error),
}

/// The IP datagrams of `p` (one, or the lone non-first fragment), each
/// carrying `marker`.
pub fn datagrams(p: &Packet, id: u16, marker: &[u8]) -> Vec<Vec<u8>> {
    let v6 = p.ether_type == 0x86dd;
    let l4 = match (p.l4, p.ports, p.icmp, v6) {
        (6, Some((sport, dport)), _, _) => L4::Tcp {
            flags: p.tcp_flags.unwrap_or(0x02),
            sport,
            dport,
        },
        (17, Some((sport, dport)), _, _) => L4::Udp { sport, dport },
        (1, _, Some((ty, code)), false) => L4::Icmp { ty, code },
        (58, _, Some((ty, code)), true) => L4::Icmpv6 { ty, code },
        (proto, ..) => L4::Other { proto },
    };
    let sp = SprayPacket {
        id,
        side: Side::Root(RootTrick::Spoof(p.saddr)),
        class: AddrClass::Public,
        dst: p.daddr,
        l4,
        shape: if p.fragment {
            Shape::LoneFragment
        } else {
            Shape::Whole
        },
        ttl: 64,
        tos: p.dscp << 2,
    };
    sp.datagrams(p.saddr, marker)
}

/// The frame of a raw-frame witness: broadcast destination, the
/// underlay's own source address, the witness's EtherType, and its IP
/// datagram (or, for another EtherType, the marker) as the payload.
pub fn frame(p: &Packet, src_mac: [u8; 6], id: u16, marker: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&p.ether_type.to_be_bytes());
    if matches!(p.ether_type, 0x0800 | 0x86dd) {
        f.extend_from_slice(&datagrams(p, id, marker).concat());
    } else {
        f.extend_from_slice(&marker.repeat(4));
    }
    f
}

/// Writes the witness `p` on `underlay`, from the calling thread's
/// namespace. Ok(()) when the kernel took it (a filter that drops it
/// makes the write fail or vanish: the capture tells which).
pub fn write(p: &Packet, underlay: &str, id: u16, marker: &[u8]) -> Result<(), WireError> {
    match p.path {
        Path::Output => write_ip(p, underlay, id, marker),
        Path::Raw => write_frame(p, underlay, id, marker),
        Path::Forward => Err(WireError::Path(p.path)),
    }
}

fn write_ip(p: &Packet, underlay: &str, id: u16, marker: &[u8]) -> Result<(), WireError> {
    let v6 = p.ether_type == 0x86dd;
    let sock = crate::rawsock::raw_socket(v6, Protocol::from(libc::IPPROTO_RAW))?;
    sock.set_mark(p.mark)?;
    sock.bind_device(Some(underlay.as_bytes()))?;
    let to = match p.daddr {
        IpAddr::V4(a) => SockAddr::from(SocketAddr::from((a, 0))),
        IpAddr::V6(a) => {
            let scope = if crate::spray::link_scoped(a) {
                nix::net::if_::if_nametoindex(underlay).unwrap_or(0)
            } else {
                0
            };
            SockAddr::from(SocketAddrV6::new(a, 0, 0, scope))
        }
    };
    for d in datagrams(p, id, marker) {
        sock.send_to(&d, &to)?;
    }
    Ok(())
}

fn write_frame(p: &Packet, underlay: &str, id: u16, marker: &[u8]) -> Result<(), WireError> {
    let ifindex = nix::net::if_::if_nametoindex(underlay)
        .map_err(|_| WireError::NoInterface(underlay.into()))?;
    let mac = std::fs::read_to_string(format!("/sys/class/net/{underlay}/address"))
        .ok()
        .and_then(|s| parse_mac(s.trim()))
        .unwrap_or([0x02, 0, 0, 0, 0, 1]);
    let f = frame(p, mac, id, marker);
    // SAFETY: a plain syscall; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Mark, &p.mark)
        .map_err(std::io::Error::from)?;
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = p.ether_type.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: f and sll outlive the call; the lengths are theirs.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            f.as_ptr().cast(),
            f.len(),
            0,
            (&raw const sll).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Packet {
        Packet {
            path: Path::Raw,
            ether_type: 0x0800,
            l4: 6,
            saddr: "172.21.0.2".parse().unwrap(),
            daddr: "192.0.2.80".parse().unwrap(),
            ports: Some((40000, 80)),
            icmp: None,
            tcp_flags: Some(0x02),
            mark: 0,
            ct_state: "new",
            fragment: false,
            dscp: 10,
            iif: None,
        }
    }

    #[test]
    fn a_witness_is_written_as_the_packet_it_names() {
        let p = packet();
        let f = frame(&p, [2, 0, 0, 0, 0, 9], 7, b"lhmark");
        let eth = pnet::packet::ethernet::EthernetPacket::new(&f).unwrap();
        assert_eq!(eth.get_ethertype().0, 0x0800);
        let ip = pnet::packet::ipv4::Ipv4Packet::new(&f[14..]).unwrap();
        assert_eq!(ip.get_source().to_string(), "172.21.0.2");
        assert_eq!(ip.get_destination().to_string(), "192.0.2.80");
        assert_eq!(ip.get_dscp(), 10);
        let tcp = pnet::packet::tcp::TcpPacket::new(&f[34..]).unwrap();
        assert_eq!((tcp.get_source(), tcp.get_destination()), (40000, 80));
        assert_eq!(tcp.get_flags(), 0x02);
        assert!(f.windows(6).any(|w| w == b"lhmark"));
        // A lone fragment: offset set, no transport header of its own.
        let frag = Packet {
            fragment: true,
            ..packet()
        };
        let d = datagrams(&frag, 7, b"lhmark");
        let ip = pnet::packet::ipv4::Ipv4Packet::new(&d[0]).unwrap();
        assert!(ip.get_fragment_offset() > 0);
        // Another EtherType carries the marker as its payload.
        let other = Packet {
            ether_type: 0x88b5,
            ..packet()
        };
        let f = frame(&other, [2, 0, 0, 0, 0, 9], 7, b"lhmark");
        assert_eq!(&f[12..14], &[0x88, 0xb5]);
        assert!(f.windows(6).any(|w| w == b"lhmark"));
        assert_eq!(parse_mac("02:00:0a:0b:0c:0d"), Some([2, 0, 10, 11, 12, 13]));
        assert_eq!(parse_mac("02:00"), None);
    }
}
