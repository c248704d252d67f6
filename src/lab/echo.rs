//! A UDP echo service: logs each datagram's payload (a probe's nonce) with
//! its source and sends it back, so a UDP leak is proven at the far end like
//! a TCP one. On whoami's addresses (port 7, service `echo`), and on the
//! home router's LAN side at NAT-PMP/PCP's port (service `home-router`):
//! a dependent that asks the home router for a port mapping is seen there.
//! The home router also listens for UPnP's SSDP discovery (239.255.255.250:1900
//! on its LAN side, [`start_ssdp`]), logging who searched, without answering.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::services::ServiceLog;

pub const SERVICE: &str = crate::model::topology::service::ECHO;
pub const PORT: u16 = 7;

pub fn start(
    ns: &Netns,
    service: &'static str,
    listen: &[SocketAddr],
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    for &addr in listen {
        let std_sock = ns
            .run(move || -> std::io::Result<_> {
                let s = std::net::UdpSocket::bind(addr)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })?
            .map_err(|source| LabError::Service {
                service: service.into(),
                source,
            })?;
        let sock =
            tokio::net::UdpSocket::from_std(std_sock).map_err(|source| LabError::Service {
                service: service.into(),
                source,
            })?;
        serve(sock, service, "udp", true, log.clone(), cancel.clone());
    }
    Ok(())
}

/// Logs each datagram (and echoes it back when `echo`) until `cancel`.
fn serve(
    sock: tokio::net::UdpSocket,
    service: &'static str,
    what: &'static str,
    echo: bool,
    log: ServiceLog,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = sock.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    log.record(service, from, format!("{what} {}", String::from_utf8_lossy(&buf[..n])));
                    if echo {
                        let _ = sock.send_to(&buf[..n], from).await;
                    }
                }
            }
        }
    });
}

/// UPnP's SSDP group and port.
pub const SSDP: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(239, 255, 255, 250)),
    1900,
);

/// Joins the SSDP group on the interface holding `iface` in `ns` and logs
/// every discovery that reaches it as `service` (no answer: the far end's
/// proof that a dependent searched for a router to expose it).
pub fn start_ssdp(
    ns: &Netns,
    service: &'static str,
    iface: std::net::Ipv4Addr,
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    let err = |source| LabError::Service {
        service: service.into(),
        source,
    };
    let std_sock = ns
        .run(move || -> std::io::Result<_> {
            let s = std::net::UdpSocket::bind(SSDP)?;
            let std::net::IpAddr::V4(group) = SSDP.ip() else {
                unreachable!("SSDP's group is IPv4")
            };
            s.join_multicast_v4(&group, &iface)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?
        .map_err(err)?;
    let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(err)?;
    serve(sock, service, "ssdp", false, log, cancel);
    Ok(())
}
