//! A UDP echo service: logs each datagram's payload (a probe's nonce) with
//! its source and sends it back, so a UDP leak is proven at the far end like
//! a TCP one. On whoami's addresses (port 7, service `echo`).

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
        serve(sock, service, log.clone(), cancel.clone());
    }
    Ok(())
}

/// Logs each datagram and echoes it back until `cancel`.
fn serve(
    sock: tokio::net::UdpSocket,
    service: &'static str,
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
                    log.record(service, from, format!("udp {}", String::from_utf8_lossy(&buf[..n])));
                    let _ = sock.send_to(&buf[..n], from).await;
                }
            }
        }
    });
}
