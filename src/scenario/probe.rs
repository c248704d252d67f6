//! Probes: small clients that run inside a lab host (their sockets are made
//! on a thread inside its namespace) and carry a unique nonce, so every trace
//! they leave on a wire or in a service's log is tied to them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::lab::netns::{Netns, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("DNS: {0}")]
    Dns(String),
}

/// A fresh nonce: 12 lowercase hex digits.
pub fn nonce() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// The DNS name a probe with this nonce asks for.
pub fn probe_name(nonce: &str) -> String {
    format!("{nonce}.probe.lab.")
}

/// GET http://target/path from inside `ns`; returns status and body.
pub async fn http_get(
    ns: &Netns,
    target: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), ProbeError> {
    let socket = ns.run(move || {
        if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
    })??;
    let path = path.to_string();
    let work = async move {
        let stream = socket.connect(target).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, target.to_string())
            .header(hyper::header::USER_AGENT, "leakhound-probe")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).trim().to_string()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

/// Asks `server` for the A records of `name` over UDP from inside `ns`.
pub async fn dns_a(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ProbeError> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let std_sock = ns.run(move || -> std::io::Result<_> {
        let s = std::net::UdpSocket::bind(bind)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })??;
    let sock = tokio::net::UdpSocket::from_std(std_sock)?;
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    let qname = Name::from_ascii(name).map_err(|e| ProbeError::Dns(e.to_string()))?;
    q.add_query(Query::query(qname, RecordType::A));
    let id = q.metadata.id;
    let wire = q.to_vec().map_err(|e| ProbeError::Dns(e.to_string()))?;
    let work = async {
        sock.send_to(&wire, server).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            if from != server {
                continue;
            }
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.metadata.id != id {
                continue;
            }
            return Ok(m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })
                .collect());
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

/// Sends the nonce in a UDP datagram and waits for it to be echoed back.
pub async fn udp_echo(
    ns: &Netns,
    target: SocketAddr,
    nonce: &str,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let std_sock = ns.run(move || -> std::io::Result<_> {
        let s = std::net::UdpSocket::bind(bind)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })??;
    let sock = tokio::net::UdpSocket::from_std(std_sock)?;
    let work = async {
        sock.send_to(nonce.as_bytes(), target).await?;
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            if from == target && &buf[..n] == nonce.as_bytes() {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

fn raw_socket(v6: bool, proto: socket2::Protocol) -> std::io::Result<socket2::Socket> {
    let domain = if v6 {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    socket2::Socket::new(domain, socket2::Type::RAW, Some(proto))
}

fn recv_until(
    sock: &socket2::Socket,
    deadline: std::time::Instant,
    mut accept: impl FnMut(&[u8]) -> bool,
) -> Result<bool, ProbeError> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                // SAFETY: recv initialised the first n bytes.
                let data: Vec<u8> = buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                if accept(&data) {
                    return Ok(true);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// ICMP/ICMPv6 echo with the nonce as payload; Ok when the matching reply
/// comes back.
pub async fn ping(
    ns: &Netns,
    target: IpAddr,
    nonce: &str,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let payload = nonce.as_bytes().to_vec();
    let id: u16 = rand::random();
    tokio::task::block_in_place(|| {
        ns.run(move || -> Result<(), ProbeError> {
            let v6 = target.is_ipv6();
            let proto = if v6 {
                socket2::Protocol::ICMPV6
            } else {
                socket2::Protocol::ICMPV4
            };
            let sock = raw_socket(v6, proto)?;
            let mut msg = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
            msg.extend_from_slice(&id.to_be_bytes());
            msg.extend_from_slice(&1u16.to_be_bytes());
            msg.extend_from_slice(&payload);
            if !v6 {
                // The kernel fills in ICMPv6 checksums itself, not ICMPv4 ones.
                let c = pnet::packet::util::checksum(&msg, 1);
                msg[2..4].copy_from_slice(&c.to_be_bytes());
            }
            sock.send_to(&msg, &SocketAddr::new(target, 0).into())?;
            let deadline = std::time::Instant::now() + timeout;
            let got = recv_until(&sock, deadline, |pkt| {
                // IPv4 raw sockets deliver the IP header too.
                let icmp = if v6 {
                    pkt
                } else {
                    pkt.get(4 * (pkt[0] & 0x0f) as usize..).unwrap_or_default()
                };
                icmp.len() >= 8
                    && icmp[0] == if v6 { 129 } else { 0 }
                    && icmp[4..6] == id.to_be_bytes()
                    && icmp[8..] == payload[..]
            })?;
            if got {
                Ok(())
            } else {
                Err(ProbeError::Timeout(timeout))
            }
        })?
    })
}

/// Writes one Ethernet frame carrying a UDP DNS query for `name` from
/// `src` to `target` straight to `ifname` (AF_PACKET), addressed to
/// `dst_mac`. Ok(()) when the kernel accepted the frame; an error when it
/// refused it (a netdev egress filter makes the send fail with ENOBUFS).
pub fn raw_frame_dns(
    ns: &Netns,
    ifname: &str,
    dst_mac: [u8; 6],
    src: std::net::Ipv4Addr,
    target: SocketAddr,
    name: &str,
) -> Result<(), ProbeError> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let std::net::IpAddr::V4(dst) = target.ip() else {
        return Err(ProbeError::Dns("raw-frame targets IPv4 only".into()));
    };
    let mut q = Message::query();
    q.add_query(Query::query(
        Name::from_ascii(name).map_err(|e| ProbeError::Dns(e.to_string()))?,
        RecordType::A,
    ));
    let dns = q.to_vec().map_err(|e| ProbeError::Dns(e.to_string()))?;
    let ifname = ifname.to_string();
    ns.run(move || -> Result<(), ProbeError> {
        use pnet::datalink::{self, Channel};
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .ok_or_else(|| {
                ProbeError::Io(std::io::Error::other(format!("no interface {ifname}")))
            })?;
        let src_mac = iface.mac.map(|m| m.octets()).unwrap_or([0; 6]);
        let Channel::Ethernet(mut tx, _rx) = datalink::channel(&iface, Default::default())? else {
            return Err(ProbeError::Io(std::io::Error::other(
                "not an Ethernet channel",
            )));
        };
        let udp_len = 8 + dns.len();
        let mut f = Vec::with_capacity(14 + 20 + udp_len);
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let c = pnet::packet::util::checksum(&ip, 5);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&rand::random::<u16>().max(1024).to_be_bytes());
        f.extend_from_slice(&target.port().to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&dns);
        match tx.send_to(&f, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(e.into()),
            None => Err(ProbeError::Io(std::io::Error::other(
                "the frame was not sent",
            ))),
        }
    })?
}

/// CVE-2019-14899: sends a TCP SYN-ACK from `src` to `target` (raw socket
/// in `ns`) and reports whatever TCP packet comes back for it within
/// `timeout` (Linux answers an unexpected SYN-ACK with a RST, which tells an
/// attacker the address is in use).
pub async fn inject_synack(
    ns: &Netns,
    src: std::net::Ipv4Addr,
    target: SocketAddr,
    timeout: Duration,
) -> Result<Option<String>, ProbeError> {
    let std::net::IpAddr::V4(dst) = target.ip() else {
        return Err(ProbeError::Io(std::io::Error::other(
            "inject-synack targets IPv4 only",
        )));
    };
    tokio::task::block_in_place(|| {
        ns.run(move || -> Result<Option<String>, ProbeError> {
            let sock = raw_socket(false, socket2::Protocol::TCP)?;
            let sport: u16 = rand::random::<u16>().max(1024);
            let mut tcp = Vec::with_capacity(20);
            tcp.extend_from_slice(&sport.to_be_bytes());
            tcp.extend_from_slice(&target.port().to_be_bytes());
            tcp.extend_from_slice(&rand::random::<u32>().to_be_bytes());
            tcp.extend_from_slice(&rand::random::<u32>().to_be_bytes());
            tcp.extend_from_slice(&[0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
            let c = pnet::packet::util::ipv4_checksum(
                &tcp,
                8,
                &[],
                &src,
                &dst,
                pnet::packet::ip::IpNextHeaderProtocols::Tcp,
            );
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            sock.send_to(&tcp, &SocketAddr::new(dst.into(), 0).into())?;
            let deadline = std::time::Instant::now() + timeout;
            let mut answer = None;
            recv_until(&sock, deadline, |pkt| {
                let hl = 4 * (pkt[0] & 0x0f) as usize;
                let Some(t) = pkt.get(hl..hl + 14) else {
                    return false;
                };
                if u16::from_be_bytes([t[2], t[3]]) != sport {
                    return false;
                }
                let from = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
                answer = Some(format!(
                    "TCP flags {:#04x} from {from}:{}",
                    t[13],
                    u16::from_be_bytes([t[0], t[1]])
                ));
                true
            })?;
            Ok(answer)
        })?
    })
}

/// Background traffic from a lab host: every few milliseconds a DNS query
/// to the ISP resolver, a TCP connection attempt to whoami and a UDP
/// datagram to the echo service, until cancelled. Returns the number of
/// rounds sent.
pub async fn storm(
    ns: &Netns,
    cancel: tokio_util::sync::CancellationToken,
    progress: tokio::sync::watch::Sender<u64>,
) -> Result<u64, ProbeError> {
    use crate::model::topology::addr;
    let dns_to = SocketAddr::new(addr::ISP_DNS.into(), 53);
    let web = SocketAddr::new(addr::WHOAMI.into(), 80);
    let echo_to = SocketAddr::new(addr::WHOAMI.into(), crate::lab::echo::PORT);
    let std_sock = ns.run(|| -> std::io::Result<_> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.set_nonblocking(true)?;
        Ok(s)
    })??;
    let udp = tokio::net::UdpSocket::from_std(std_sock)?;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut rounds = 0u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(rounds),
            _ = tick.tick() => {}
        }
        rounds += 1;
        progress.send_replace(rounds);
        let mut q = hickory_proto::op::Message::query();
        if let Ok(n) = hickory_proto::rr::Name::from_ascii(format!("storm{rounds}.probe.lab.")) {
            q.add_query(hickory_proto::op::Query::query(
                n,
                hickory_proto::rr::RecordType::A,
            ));
        }
        if let Ok(wire) = q.to_vec() {
            let _ = udp.send_to(&wire, dns_to).await;
        }
        let _ = udp
            .send_to(format!("storm{rounds}").as_bytes(), echo_to)
            .await;
        if let Ok(Ok(s)) = ns.run(tokio::net::TcpSocket::new_v4) {
            // A connection attempt; its outcome does not matter, its packets do.
            let _ = tokio::time::timeout(Duration::from_millis(2), s.connect(web)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_unique_and_make_valid_names() {
        let a = nonce();
        let b = nonce();
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
        hickory_proto::rr::Name::from_ascii(probe_name(&a)).unwrap();
    }
}
