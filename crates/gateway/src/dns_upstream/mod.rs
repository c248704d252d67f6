//! The resolver's upstream client: asks the configured servers, and only
//! them, over plain DNS, DNS over TLS or DNS over HTTPS, every socket
//! carrying [`UPSTREAM_MARK`] (the kill switch lets only those out to the
//! upstream, and only through the tunnel), and keeps the answers
//! ([`answers`]) for their TTL.
//!
//! * Plain ([`udp`]): a few long-lived UDP sockets, each replaced after
//!   [`udp::QUERIES_PER_SOCKET`] queries or [`udp::SOCKET_LIFETIME`] (the
//!   kernel gives each a random source port), many queries in flight on
//!   each with random 16-bit IDs; an answer is taken only from the server
//!   asked, for a waiting ID and the same question ([`pending`]). A
//!   truncated answer is asked again over TCP.
//! * DNS over TLS ([`dot`]): one kept TLS connection per server, queries
//!   pipelined on it and answers taken in any order by ID and question
//!   (RFC 7766); a failed connection fails its waiting queries (asked
//!   again, on a new connection) and is opened again on the next query.
//! * DNS over HTTPS ([`doh`]): one kept HTTP/2 connection per server, a
//!   POST per query (RFC 8484), the question checked in the answer.
//!
//! Each query tries the servers in turn (the one that answered last
//! first), each for [`TRY_TIMEOUT`], [`ROUNDS`] times round; SERVFAIL,
//! REFUSED or any other failure moves on to the next; when none answers,
//! the caller answers SERVFAIL. Nothing is ever sent anywhere else.
//!
//! Why long-lived sockets are acceptable for plain DNS: the upstream is
//! reached only through the WireGuard tunnel, whose packets are
//! authenticated; an off-path attacker cannot inject an answer into it,
//! only a host on the provider's side of the tunnel could, and the
//! provider already answers every query. Per-socket random IDs, answers
//! matched by ID, server and question, and sockets replaced every few
//! hundred queries or seconds (new random ports) still leave a forger
//! with little to aim at. A socket per query (what hickory's client did;
//! measured with [`udp::QUERIES_PER_SOCKET`] at 1) cost 10 to 19 µs more
//! CPU per uncached query in `leakhound bench dns`: 1.00x and 0.87x
//! unbound's CPU per query instead of 0.60x to 0.71x (docs/benchmarks.md).

pub mod answers;
pub mod doh;
pub mod dot;
pub mod pending;
pub mod question;
#[cfg(test)]
mod testing;
pub mod transport;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};

pub use answers::Answer;
use answers::Answers;
pub use question::{EDNS_PAYLOAD, Question};
pub use transport::{SetupError, UPSTREAM_MARK, UpstreamError};

use crate::config::Upstream as UpstreamConfig;

/// How long one server gets to answer one try.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times each server is tried for one query.
pub const ROUNDS: usize = 2;

/// How the servers are asked.
enum Transport {
    Udp(udp::Udp),
    Dot(dot::Dot),
    Doh(doh::Doh),
}

/// The upstream: its servers, how they are asked, and the answers kept.
pub struct Upstream {
    transport: Transport,
    servers: Arc<[SocketAddr]>,
    /// The server that answered last: asked first.
    preferred: AtomicUsize,
    answers: Mutex<Answers>,
}

impl Upstream {
    /// The client for `config`, keeping up to `cache_size` answers; `None`
    /// when there is nowhere to ask. `tls` checks the certificates of a
    /// DoT or DoH upstream (required for those). Opens nothing yet (the
    /// tunnel may not be up): sockets and connections are made on the
    /// first queries.
    pub fn new(
        config: &UpstreamConfig,
        cache_size: u64,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Option<Upstream>, SetupError> {
        let (servers, transport) = match (config, tls) {
            (UpstreamConfig::None(_), _) => return Ok(None),
            (UpstreamConfig::Plain(s), _) => {
                let servers: Arc<[SocketAddr]> = s.clone().into();
                (servers.clone(), Transport::Udp(udp::Udp::new(servers)))
            }
            (
                UpstreamConfig::Tls {
                    servers,
                    server_name,
                    ..
                },
                Some(tls),
            ) => (
                servers.clone().into(),
                Transport::Dot(dot::Dot::new(servers, server_name, tls)?),
            ),
            (
                UpstreamConfig::Https {
                    servers,
                    server_name,
                    path,
                    ..
                },
                Some(tls),
            ) => (
                servers.clone().into(),
                Transport::Doh(doh::Doh::new(servers, server_name, path, tls)?),
            ),
            (UpstreamConfig::Tls { .. } | UpstreamConfig::Https { .. }, None) => {
                return Err(SetupError::NoTls);
            }
        };
        Ok(Some(Upstream {
            transport,
            servers,
            preferred: AtomicUsize::new(0),
            answers: Mutex::new(Answers::new(
                usize::try_from(cache_size).unwrap_or(usize::MAX),
            )),
        }))
    }

    /// The answer to `q` and its age in seconds: kept, or asked.
    pub async fn lookup(&self, q: &Question) -> Result<(Arc<Answer>, u32), UpstreamError> {
        if let Some(hit) = self.answers().get(q, Instant::now()) {
            return Ok(hit);
        }
        let answer = Arc::new(self.ask(q).await?);
        self.answers().insert(q, answer.clone(), Instant::now());
        Ok((answer, 0))
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the servers in turn until one answers NOERROR or NXDOMAIN.
    async fn ask(&self, q: &Question) -> Result<Answer, UpstreamError> {
        let n = self.servers.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n * ROUNDS {
            let idx = (first + i) % n;
            match self.try_server(idx, q).await {
                Ok(a) => {
                    if idx != first {
                        self.preferred.store(idx, Ordering::Relaxed);
                    }
                    return Ok(a);
                }
                Err(e) => {
                    tracing::debug!("DNS upstream: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one server"))
    }

    /// One try at server `idx`, bounded by [`TRY_TIMEOUT`]. A DoT or DoH
    /// connection on which the answer did not come in time is dropped (it
    /// may be dead without a word: the next try opens a new one).
    async fn try_server(&self, idx: usize, q: &Question) -> Result<Answer, UpstreamError> {
        let server = self.servers[idx];
        let deadline = tokio::time::Instant::now() + TRY_TIMEOUT;
        let work = async {
            let bytes = match &self.transport {
                Transport::Udp(u) => {
                    let b = u.exchange(server, q).await?;
                    if truncated(&b) {
                        udp::exchange_tcp(server, q).await?
                    } else {
                        b
                    }
                }
                Transport::Dot(d) => d.exchange(idx, q, deadline).await?,
                Transport::Doh(d) => d.exchange(idx, q, deadline).await?,
            };
            parse(server, &bytes)
        };
        // At the same deadline the transport's own wait (polled first)
        // ends first, and drops its connection.
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or(Err(UpstreamError::Timeout { server }))
    }
}

/// Whether a response has TC set.
fn truncated(b: &[u8]) -> bool {
    b.get(2).is_some_and(|f| f & 0x02 != 0)
}

/// The answer in a response from `server`: NOERROR or NXDOMAIN, else an
/// error (the next server is asked).
fn parse(server: SocketAddr, bytes: &[u8]) -> Result<Answer, UpstreamError> {
    let m =
        Message::from_vec(bytes).map_err(|source| UpstreamError::Malformed { server, source })?;
    match m.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(Answer::from_message(m)),
        code => Err(UpstreamError::Rcode { server, code }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_noerror_and_nxdomain_are_answers() {
        let server: SocketAddr = "10.64.0.1:53".parse().unwrap();
        for (code, ok) in [
            (ResponseCode::NoError, true),
            (ResponseCode::NXDomain, true),
            (ResponseCode::ServFail, false),
            (ResponseCode::Refused, false),
            (ResponseCode::FormErr, false),
        ] {
            let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
            m.metadata.response_code = code;
            assert_eq!(parse(server, &m.to_vec().unwrap()).is_ok(), ok, "{code}");
        }
        assert!(matches!(
            parse(server, b"\x00\x01\x80"),
            Err(UpstreamError::Malformed { .. })
        ));
        assert!(truncated(b"\x00\x01\x82\x00") && !truncated(b"\x00\x01\x80\x00"));
    }
}
