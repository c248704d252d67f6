//! The lab's UDP services, one mechanism: a socket bound inside a host's
//! namespace, read until the lab stops, every datagram handed to the
//! service's answer (which logs what came and says what to send back),
//! the reply, if any, sent to the datagram's source. The echo service,
//! the STUN server and QUIC listener, and the home router's NAT-PMP and
//! SSDP responders are each one answer.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;

/// A non-blocking socket made by `make` inside `ns`, for the runtime.
pub fn bind(
    ns: &Netns,
    service: &str,
    make: impl FnOnce() -> std::io::Result<std::net::UdpSocket> + Send,
) -> Result<tokio::net::UdpSocket, LabError> {
    let err = |source| LabError::Service {
        service: service.to_string(),
        source,
    };
    let sock = ns
        .run(move || {
            let s = make()?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?
        .map_err(err)?;
    tokio::net::UdpSocket::from_std(sock).map_err(err)
}

/// Serves `sock` until `cancel`: `answer` gets each datagram and its
/// source and returns the reply, sent from `reply_from` when given (a
/// multicast listener answers from its unicast address), else from `sock`.
pub fn serve(
    sock: tokio::net::UdpSocket,
    reply_from: Option<tokio::net::UdpSocket>,
    cancel: CancellationToken,
    mut answer: impl FnMut(&[u8], SocketAddr) -> Option<Vec<u8>> + Send + 'static,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = sock.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(_) => continue,
                },
            };
            if let Some(reply) = answer(&buf[..n], from) {
                let _ = reply_from
                    .as_ref()
                    .unwrap_or(&sock)
                    .send_to(&reply, from)
                    .await;
            }
        }
    });
}
