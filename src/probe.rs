//! Probes: small clients that run inside a lab host (their sockets are made
//! on a thread inside its namespace) and carry a unique nonce, so every trace
//! they leave on a wire or in a service's log is tied to them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::httpc::{HttpError, Request, Response};
use crate::lab::netns::{Netns, NetnsError};
use crate::rawsock::{raw_socket, recv_until};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An HTTP exchange failed (the error kept, shown in the message).
    #[error("HTTP: {0}")]
    Http(#[source] HttpError),
    /// The HTTP/2 exchange of a DNS-over-HTTPS query failed.
    #[error("HTTP: {0}")]
    Doh(#[source] hyper::Error),
    #[error("HTTP: the request cannot be made: {0}")]
    DohRequest(#[source] hyper::http::Error),
    #[error("HTTP: status {0}")]
    DohStatus(hyper::StatusCode),
    /// A DNS exchange failed or its answer was unusable.
    #[error("DNS: {0}")]
    Dns(Box<dyn std::error::Error + Send + Sync>),
}

/// `work`, or [`ProbeError::Timeout`] once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

/// A fresh nonce: 12 lowercase hex digits, remembered ([`nonces_since`])
/// so the capture's judge can find it in clear on a wire.
pub fn nonce() -> String {
    let n = format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let mut issued = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
    if issued.recent.len() == MAX_REMEMBERED {
        // A long soak: the oldest are long judged.
        issued.recent.pop_front();
        issued.forgotten += 1;
    }
    issued.recent.push_back(n.clone());
    n
}

/// The nonces remembered at most (a soak's run issues many).
const MAX_REMEMBERED: usize = 100_000;

/// The nonces issued so far: how many were forgotten, then the rest.
struct Issued {
    forgotten: u64,
    recent: std::collections::VecDeque<String>,
}

static ISSUED: std::sync::Mutex<Issued> = std::sync::Mutex::new(Issued {
    forgotten: 0,
    recent: std::collections::VecDeque::new(),
});

/// How many nonces were issued so far: a mark for [`nonces_since`].
pub fn nonce_mark() -> u64 {
    let issued = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
    issued.forgotten + issued.recent.len() as u64
}

/// The nonces issued since `mark` (a scenario's own), as a matcher for
/// captured bytes.
pub fn nonces_since(
    mark: u64,
) -> Result<crate::model::classify::Nonces, crate::model::classify::NoncesError> {
    let issued = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
    let skip = usize::try_from(mark.saturating_sub(issued.forgotten)).unwrap_or(usize::MAX);
    crate::model::classify::Nonces::new(issued.recent.iter().skip(skip))
}

/// The DNS name a probe with this nonce asks for.
pub fn probe_name(nonce: &str) -> String {
    format!("{nonce}.probe.lab.")
}

/// A TCP socket made inside `ns`, of `peer`'s family, for the runtime.
pub fn tcp_socket_for(ns: &Netns, peer: SocketAddr) -> Result<tokio::net::TcpSocket, ProbeError> {
    Ok(ns.run(move || {
        if peer.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
    })??)
}

/// A UDP socket bound (to any port) inside `ns`, of `peer`'s family, for
/// the runtime.
pub fn udp_socket_for(ns: &Netns, peer: SocketAddr) -> Result<tokio::net::UdpSocket, ProbeError> {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let std_sock = ns.run(move || -> std::io::Result<_> {
        let s = std::net::UdpSocket::bind(bind)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })??;
    Ok(tokio::net::UdpSocket::from_std(std_sock)?)
}

/// Why whoami did not see the VPN exit.
#[derive(Debug, thiserror::Error)]
pub enum NotThroughVpn {
    /// It answered with another address (or something else): its answer.
    #[error("whoami saw {0}")]
    Saw(String),
    #[error(transparent)]
    NoAnswer(#[from] ProbeError),
}

/// One look at whoami from `ns`: `Ok` when it sees the VPN exit (traffic
/// goes through the tunnel), else what it saw or why it could not answer.
/// The readiness test of `wait-traffic` and of `bench tunnel`.
pub async fn whoami_sees_vpn_exit(ns: &Netns, wait: Duration) -> Result<(), NotThroughVpn> {
    let target = std::net::SocketAddr::new(crate::model::topology::addr::WHOAMI.into(), 80);
    let (_, body) = http_get(ns, target, &format!("/leakhound/ready-{}", nonce()), wait).await?;
    if body == crate::model::topology::addr::VPN_EXIT.to_string() {
        Ok(())
    } else {
        Err(NotThroughVpn::Saw(body))
    }
}

/// GET http://target/path from inside `ns`; returns status and body.
pub async fn http_get(
    ns: &Netns,
    target: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), ProbeError> {
    let r = http(ns, target, request("GET", target, path), timeout).await?;
    Ok((r.status, r.body))
}

/// Any HTTP/1.1 request from inside `ns`; returns status and body.
pub async fn http_request(
    ns: &Netns,
    method: &str,
    target: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: impl Into<bytes::Bytes> + Send + 'static,
    timeout: Duration,
) -> Result<(u16, String), ProbeError> {
    let req = request(method, target, path).headers(headers).body(body);
    let r = http(ns, target, req, timeout).await?;
    Ok((r.status, r.body))
}

/// A probe's request for `path` on `target` (its Host header), as the
/// agent `leakhound-probe`: add headers and a body, then [`http`].
pub fn request(method: &str, target: SocketAddr, path: &str) -> Request {
    Request::new(method, target.to_string(), path).agent("leakhound-probe")
}

/// Sends `req` to `target` from inside `ns`, connecting included within
/// `timeout`.
pub async fn http(
    ns: &Netns,
    target: SocketAddr,
    req: Request,
    timeout: Duration,
) -> Result<Response, ProbeError> {
    let socket = tcp_socket_for(ns, target)?;
    req.timeout(timeout)
        .send(socket.connect(target))
        .await
        .map_err(|e| match e {
            // As every probe says them: the socket's error, the time limit.
            HttpError::Connect(e) => ProbeError::Io(e),
            HttpError::Timeout(t) => ProbeError::Timeout(t),
            e => ProbeError::Http(e),
        })
}

/// Asks `server` for the A records of `name` over UDP from inside `ns`.
pub async fn dns_a(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ProbeError> {
    let (id, wire) = a_query(name)?;
    // Anything else arriving on the socket is not our answer.
    udp_exchange(ns, server, &wire, timeout, |reply| {
        a_records(reply, id).ok()
    })
    .await
}

/// Sends the nonce in a UDP datagram and waits for it to be echoed back.
pub async fn udp_echo(
    ns: &Netns,
    target: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<(), ProbeError> {
    udp_exchange(ns, target, payload, timeout, |reply| {
        (reply == payload).then_some(())
    })
    .await
}

/// The nonce, padded with dots to `size` bytes (never shorter than the
/// nonce itself).
pub fn padded(nonce: &str, size: Option<usize>) -> Vec<u8> {
    let mut p = nonce.as_bytes().to_vec();
    if let Some(n) = size {
        p.resize(n.max(p.len()), b'.');
    }
    p
}

/// Sends one datagram from inside `ns` to `peer` and waits for a reply from
/// `peer` that `accept` takes; other datagrams are skipped.
async fn udp_exchange<T>(
    ns: &Netns,
    peer: SocketAddr,
    payload: &[u8],
    timeout: Duration,
    accept: impl Fn(&[u8]) -> Option<T>,
) -> Result<T, ProbeError> {
    let sock = udp_socket_for(ns, peer)?;
    let work = async {
        sock.send_to(payload, peer).await?;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await?;
            if from == peer
                && let Some(v) = accept(&buf[..n])
            {
                return Ok(v);
            }
        }
    };
    within(timeout, work).await
}

/// Runs blocking socket work on tokio's blocking pool, so that waiting for
/// an answer never holds up a runtime worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProbeError> + Send + 'static,
) -> Result<T, ProbeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))?
}

/// ICMP/ICMPv6 echo with the nonce as payload; Ok when the matching reply
/// comes back.
pub async fn ping(
    ns: &Netns,
    target: IpAddr,
    payload: &[u8],
    dont_fragment: bool,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let payload = payload.to_vec();
    let id: u16 = rand::random();
    let ns = ns
        .try_clone()
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))?;
    blocking(move || {
        ns.run(move || -> Result<(), ProbeError> {
            let v6 = target.is_ipv6();
            let proto = if v6 {
                socket2::Protocol::ICMPV6
            } else {
                socket2::Protocol::ICMPV4
            };
            let sock = raw_socket(v6, proto)?;
            if dont_fragment && !v6 {
                set_dont_fragment(&sock)?;
            }
            let msg = crate::model::echo::request(v6, id, 1, &payload);
            sock.send_to(&msg, &SocketAddr::new(target, 0).into())?;
            let deadline = std::time::Instant::now() + timeout;
            let got = recv_until(&sock, deadline, |pkt| {
                crate::model::echo::is_reply(v6, pkt, id, &payload)
            })?;
            if got {
                Ok(())
            } else {
                Err(ProbeError::Timeout(timeout))
            }
        })?
    })
    .await
}

/// Sets the IPv4 don't-fragment bit on every packet of `sock`
/// (IP_PMTUDISC_DO): one bigger than the path's MTU is refused with
/// EMSGSIZE by the sender's own stack, never fragmented.
fn set_dont_fragment(sock: &socket2::Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: nix::libc::c_int = nix::libc::IP_PMTUDISC_DO;
    // SAFETY: a plain setsockopt on a socket we own, with a c_int value of
    // the size we pass.
    let r = unsafe {
        nix::libc::setsockopt(
            sock.as_raw_fd(),
            nix::libc::IPPROTO_IP,
            nix::libc::IP_MTU_DISCOVER,
            (&raw const on).cast(),
            std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
    let std::net::IpAddr::V4(dst) = target.ip() else {
        return Err(ProbeError::Dns("raw-frame targets IPv4 only".into()));
    };
    let (_, dns) = a_query(name)?;
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
    let ns = ns
        .try_clone()
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))?;
    blocking(move || {
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
    .await
}

/// Background traffic from a lab host: every few milliseconds a DNS query
/// to the ISP resolver, a TCP connection attempt to whoami and a UDP
/// datagram to the echo service, until cancelled. Returns the number of
/// rounds sent; `first` gets the instant the first probe went out.
pub async fn storm(
    ns: &Netns,
    cancel: tokio_util::sync::CancellationToken,
    progress: tokio::sync::watch::Sender<u64>,
    first: std::sync::Arc<std::sync::OnceLock<std::time::Instant>>,
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
        if let Ok((_, wire)) =
            crate::model::dns_query::a_query(&format!("storm{rounds}.probe.lab."))
        {
            let _ = udp.send_to(&wire, dns_to).await;
            let _ = first.set(std::time::Instant::now());
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

fn a_query(name: &str) -> Result<(u16, Vec<u8>), ProbeError> {
    crate::model::dns_query::a_query(name).map_err(|e| ProbeError::Dns(e.into()))
}

fn a_records(resp: &[u8], id: u16) -> Result<Vec<IpAddr>, ProbeError> {
    let m = hickory_proto::op::Message::from_vec(resp).map_err(|e| ProbeError::Dns(e.into()))?;
    if m.metadata.id != id {
        return Err(ProbeError::Dns("the answer's id does not match".into()));
    }
    Ok(m.answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect())
}

async fn tls_to(
    ns: &Netns,
    target: SocketAddr,
    server_name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ProbeError> {
    let socket = tcp_socket_for(ns, target)?;
    let tcp = socket.connect(target).await?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))?;
    Ok(tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?)
}

/// A DNS-over-TLS query (RFC 7858) for `name` to `target`.
pub async fn dot_a(
    ns: &Netns,
    target: SocketAddr,
    name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ProbeError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (id, wire) = a_query(name)?;
    let work = async {
        let mut s = tls_to(ns, target, "dot.lab", tls).await?;
        s.write_u16(wire.len() as u16).await?;
        s.write_all(&wire).await?;
        let len = s.read_u16().await?;
        let mut resp = vec![0u8; len as usize];
        s.read_exact(&mut resp).await?;
        a_records(&resp, id)
    };
    within(timeout, work).await
}

/// A DNS-over-HTTPS query (RFC 8484, POST over HTTP/2) for `name` to `target`.
pub async fn doh_a(
    ns: &Netns,
    target: SocketAddr,
    name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ProbeError> {
    let (id, wire) = a_query(name)?;
    let work = async {
        let s = tls_to(ns, target, "doh.lab", tls).await?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(s),
        )
        .await
        .map_err(ProbeError::Doh)?;
        tokio::spawn(conn);
        let req = hyper::Request::post("https://doh.lab/dns-query")
            .header(hyper::header::CONTENT_TYPE, "application/dns-message")
            .header(hyper::header::ACCEPT, "application/dns-message")
            .body(http_body_util::Full::new(bytes::Bytes::from(wire)))
            .map_err(ProbeError::DohRequest)?;
        let resp = sender.send_request(req).await.map_err(ProbeError::Doh)?;
        if !resp.status().is_success() {
            return Err(ProbeError::DohStatus(resp.status()));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(ProbeError::Doh)?
            .to_bytes();
        a_records(&body, id)
    };
    within(timeout, work).await
}

pub use crate::model::dns_corpus::{MUTATIONS, malformed_dns, mutated_queries};

/// Sends every malformed message to `server` over UDP, and over TCP a frame
/// whose length prefix promises more than it sends. Returns how many got any
/// reply (an error response is fine; what matters is what comes after).
pub async fn dns_garbage(ns: &Netns, server: SocketAddr) -> Result<usize, ProbeError> {
    let sock = udp_socket_for(ns, server)?;
    let mut replies = 0;
    let mut buf = vec![0u8; 65_536];
    let corpus = malformed_dns()
        .into_iter()
        .map(|(_, m)| m)
        .chain(mutated_queries(MUTATIONS));
    for msg in corpus {
        // An oversized datagram may be refused by the stack itself; that is
        // not the resolver's doing.
        if sock.send_to(&msg, server).await.is_err() {
            continue;
        }
        // A reply, if any, comes at once from a resolver on this host;
        // nothing is lost by not waiting long for the ones it drops.
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(20), sock.recv_from(&mut buf)).await
        {
            replies += 1;
        }
    }
    let tcp = tcp_socket_for(ns, server)?;
    if let Ok(mut stream) = tcp.connect(server).await {
        use tokio::io::AsyncWriteExt;
        let _ = stream.write_all(&[0xff, 0xff, 0x12, 0x34, 0x01]).await;
        let _ = stream.shutdown().await;
    }
    Ok(replies)
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

    #[test]
    fn every_malformed_message_really_is_malformed() {
        for (what, msg) in malformed_dns() {
            let ok = hickory_server::server::Request::from_bytes(
                msg.clone(),
                "127.0.0.1:1".parse().unwrap(),
                hickory_server::net::xfer::Protocol::Udp,
            )
            .map(|r| {
                r.request_info().is_ok()
                    && r.metadata.message_type == hickory_proto::op::MessageType::Query
            })
            .unwrap_or(false);
            assert!(!ok, "{what} parses as a good query");
        }
    }
}
