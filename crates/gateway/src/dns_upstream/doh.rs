//! DNS over HTTPS upstream (RFC 8484): one kept HTTP/2 connection per
//! server (TLS, ALPN h2), opened on the first query and again once it has
//! closed; each query a POST of the DNS message with ID 0 on a stream of
//! its own, its answer checked for the question asked.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::pending::response_question;
use super::question::Question;
use super::transport::{SetupError, TlsClient, UpstreamError};

/// The content type of a DNS message (RFC 8484 6).
const DNS_MESSAGE: &str = "application/dns-message";

/// An open connection: its number (which one a timed-out query used) and
/// a handle for requests on it.
type Open = (u64, SendRequest<Full<Bytes>>);

/// The DoH upstream's connections.
pub struct Doh {
    servers: Vec<SocketAddr>,
    uri: hyper::Uri,
    tls: TlsClient,
    /// Per server: the open connection, if any.
    conns: Vec<tokio::sync::Mutex<Option<Open>>>,
    opened: std::sync::atomic::AtomicU64,
}

impl Doh {
    /// POSTs to `https://{server_name}{path}`; `tls` checks the servers'
    /// certificate for `server_name`.
    pub fn new(
        servers: &[SocketAddr],
        server_name: &str,
        path: &str,
        tls: rustls::ClientConfig,
    ) -> Result<Doh, SetupError> {
        let tls = TlsClient::new(server_name, tls, b"h2")?;
        let uri = format!("https://{server_name}{path}")
            .parse()
            .map_err(|source| SetupError::DohUrl {
                url: format!("https://{server_name}{path}"),
                source,
            })?;
        Ok(Doh {
            servers: servers.to_vec(),
            uri,
            tls,
            conns: servers.iter().map(|_| Default::default()).collect(),
            opened: Default::default(),
        })
    }

    /// A handle on the connection to server `idx`, opened if there is none
    /// open (one opening at a time; the others wait for it).
    async fn sender(&self, idx: usize) -> Result<Open, UpstreamError> {
        let mut slot = self.conns[idx].lock().await;
        if let Some((n, s)) = slot.as_ref()
            && !s.is_closed()
        {
            return Ok((*n, s.clone()));
        }
        *slot = None;
        let server = self.servers[idx];
        let tls = self.tls.connect(server).await?;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|source| UpstreamError::Http { server, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("DoH upstream {server}: the connection ended: {e}");
            }
        });
        let n = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot = Some((n, sender.clone()));
        Ok((n, sender))
    }

    /// POSTs `q` to server `idx` and returns the answer, if it came by
    /// `deadline`; when not, the connection is dropped (it may be dead
    /// without a word) and the next query opens a new one.
    pub async fn exchange(
        &self,
        idx: usize,
        q: &Question,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        let server = self.servers[idx];
        let (n, sender) = self.sender(idx).await?;
        match tokio::time::timeout_at(deadline, self.post(server, sender, q)).await {
            Ok(r) => r,
            Err(_) => {
                let mut slot = self.conns[idx].lock().await;
                if slot.as_ref().is_some_and(|(m, _)| *m == n) {
                    tracing::debug!(
                        "DoH upstream {server}: no answer in time: the connection is dropped"
                    );
                    *slot = None;
                }
                Err(UpstreamError::Timeout { server })
            }
        }
    }

    async fn post(
        &self,
        server: SocketAddr,
        mut sender: SendRequest<Full<Bytes>>,
        q: &Question,
    ) -> Result<Vec<u8>, UpstreamError> {
        let req = hyper::Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, DNS_MESSAGE)
            .header(hyper::header::ACCEPT, DNS_MESSAGE)
            .body(Full::new(Bytes::from(q.query(0))))
            .expect("a request from a parsed URI and constant headers");
        let http = |source| UpstreamError::Http { server, source };
        let resp = sender.send_request(req).await.map_err(http)?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(UpstreamError::HttpStatus {
                server,
                status: resp.status().as_u16(),
            });
        }
        // A DNS message is at most 64 KiB (RFC 8484 6).
        let body = http_body_util::Limited::new(resp.into_body(), usize::from(u16::MAX))
            .collect()
            .await
            .map_err(|source| UpstreamError::Body { server, source })?
            .to_bytes();
        match response_question(&body) {
            Some((0, raw)) if q.matches(raw) => Ok(body.to_vec()),
            _ => Err(UpstreamError::WrongAnswer { server }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client configuration (what it trusts does not matter here).
    fn no_roots() -> rustls::ClientConfig {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }

    #[test]
    fn the_url_is_made_of_the_name_and_the_path() {
        let tls = no_roots();
        let servers = ["192.0.2.43:443".parse().unwrap()];
        let d = Doh::new(&servers, "doh.lab", "/dns-query", tls.clone()).unwrap();
        assert_eq!(d.uri.to_string(), "https://doh.lab/dns-query");
        assert!(matches!(
            Doh::new(&servers, "doh lab", "/dns-query", tls),
            Err(SetupError::ServerName { .. })
        ));
    }
}
