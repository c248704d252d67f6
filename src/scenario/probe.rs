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
