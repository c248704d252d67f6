//! A UDP echo service: logs each datagram's payload (a probe's nonce) with
//! its source and sends it back, so a UDP leak is proven at the far end like
//! a TCP one. On whoami's addresses (port 7, service `echo`).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::service_log::ServiceLog;

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
        let sock = super::udp::bind(ns, service, move || std::net::UdpSocket::bind(addr))?;
        let log = log.clone();
        super::udp::serve(sock, None, cancel.clone(), move |datagram, from| {
            log.record(
                service,
                from,
                format!("udp {}", String::from_utf8_lossy(datagram)),
            );
            Some(datagram.to_vec())
        });
    }
    Ok(())
}
