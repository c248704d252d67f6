//! The lab's encrypted DNS on its `doh` host (192.0.2.43, on the ISP's side):
//! DNS over TLS on 853 (RFC 7858) and DNS over HTTPS on 443 (RFC 8484, HTTP/2
//! over TLS, POST and GET `/dns-query`). Both answer like the lab's other
//! resolvers and log every question with its source, so a bypass of the
//! gateway's resolver is proven at the far end.

use std::net::SocketAddr;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::netns::Netns;
use super::service_log::ServiceLog;
use super::tls::LabTls;
use super::{LabError, dns};

pub use crate::model::topology::service::{DOH, DOT};

/// A TCP listener bound inside `ns`.
fn listener(
    ns: &Netns,
    service: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, LabError> {
    let err = |source| LabError::Service {
        service: service.into(),
        source,
    };
    let l = ns
        .run(move || -> std::io::Result<_> {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?
        .map_err(err)?;
    tokio::net::TcpListener::from_std(l).map_err(err)
}

fn tls_err(service: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LabError {
    LabError::Service {
        service: service.into(),
        source: std::io::Error::other(e),
    }
}

/// The TLS stream a lab service's handler gets.
pub(super) type Tls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Serves TLS on `addr` inside `ns` (the lab CA's server certificate,
/// offering `alpn`) until `cancel`: every accepted connection that
/// completes its handshake goes to `handle` with the caller's address.
pub(super) fn serve_tls<F, Fut>(
    ns: &Netns,
    service: &'static str,
    addr: SocketAddr,
    tls: &LabTls,
    alpn: &[&[u8]],
    cancel: CancellationToken,
    handle: F,
) -> Result<(), LabError>
where
    F: Fn(Tls, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = listener(ns, service, addr)?;
    let acceptor = TlsAcceptor::from(tls.server_config(alpn).map_err(|e| tls_err(service, e))?);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = l.accept() => match r { Ok(v) => v, Err(_) => continue },
            };
            let (acceptor, handle) = (acceptor.clone(), handle.clone());
            tokio::spawn(async move {
                if let Ok(s) = acceptor.accept(tcp).await {
                    handle(s, peer).await;
                }
            });
        }
    });
    Ok(())
}

/// DNS over TLS: 2-byte length, message; as many as the client sends.
pub fn start_dot(
    ns: &Netns,
    service: &'static str,
    addr: SocketAddr,
    tls: &LabTls,
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    serve_tls(
        ns,
        service,
        addr,
        tls,
        &[b"dot"],
        cancel,
        move |mut s, peer| {
            let log = log.clone();
            async move {
                loop {
                    let Ok(len) = s.read_u16().await else { return };
                    let mut msg = vec![0u8; len as usize];
                    if s.read_exact(&mut msg).await.is_err() {
                        return;
                    }
                    let Some((q, resp)) = dns::answer_message(&msg) else {
                        return;
                    };
                    log.record(service, peer, q);
                    if s.write_u16(resp.len() as u16).await.is_err()
                        || s.write_all(&resp).await.is_err()
                    {
                        return;
                    }
                }
            }
        },
    )
}

async fn doh_request(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    log: ServiceLog,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let bad = |code: u16| {
        Ok(hyper::Response::builder()
            .status(code)
            .body(Full::new(Bytes::new()))
            .expect("response"))
    };
    if req.uri().path() != "/dns-query" {
        return bad(404);
    }
    let query = if req.method() == hyper::Method::GET {
        let dns = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("dns=")))
            .and_then(|v| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v)
                    .ok()
            });
        match dns {
            Some(d) => d,
            None => return bad(400),
        }
    } else {
        match req.into_body().collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return bad(400),
        }
    };
    let Some((q, resp)) = dns::answer_message(&query) else {
        return bad(400);
    };
    log.record(DOH, peer, q);
    Ok(hyper::Response::builder()
        .header("content-type", "application/dns-message")
        .body(Full::new(Bytes::from(resp)))
        .expect("response"))
}

/// DNS over HTTPS: HTTP/2 over TLS (ALPN h2).
pub fn start_doh(
    ns: &Netns,
    addr: SocketAddr,
    tls: &LabTls,
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    serve_tls(ns, DOH, addr, tls, &[b"h2"], cancel, move |s, peer| {
        let log = log.clone();
        async move {
            let service =
                hyper::service::service_fn(move |req| doh_request(req, peer, log.clone()));
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(s), service)
                .await;
        }
    })
}
