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
//! CPU per uncached query in `leakhound bench dns`: level with unbound's
//! CPU per query instead of about 0.7 of it.

pub mod answers;
pub mod doh;
pub mod dot;
pub mod pending;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

pub use answers::Answer;
use answers::Answers;

use crate::config::Upstream as UpstreamConfig;
use crate::dns::{DnsError, UPSTREAM_MARK};

/// How long one server gets to answer one try.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times each server is tried for one query.
pub const ROUNDS: usize = 2;

/// The UDP payload the upstream may send (EDNS, RFC 6891; the DNS flag
/// day's size).
pub const EDNS_PAYLOAD: u16 = 1232;

/// A question as it goes upstream and is matched in answers: the name in
/// wire form in lower case, its type and class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Question(Box<[u8]>);

impl Question {
    pub fn new(name: &Name, rtype: RecordType, class: DNSClass) -> Question {
        let mut wire = Vec::with_capacity(name.len() + 6);
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        wire.extend_from_slice(&u16::from(rtype).to_be_bytes());
        wire.extend_from_slice(&u16::from(class).to_be_bytes());
        Question(wire.into())
    }

    /// From a question already in wire form with its name in lower case
    /// (the front cache's key without its EDNS byte).
    pub fn from_lowercase_wire(wire: &[u8]) -> Question {
        Question(wire.into())
    }

    /// Whether `raw` (a question section as a server sent it back) is this
    /// question, the name's case aside.
    pub fn matches(&self, raw: &[u8]) -> bool {
        raw.len() == self.0.len()
            && raw
                .iter()
                .zip(self.0.iter())
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
    }

    /// The query asking it with `id`: recursion desired, with an EDNS OPT
    /// record offering [`EDNS_PAYLOAD`] bytes.
    pub fn query(&self, id: u16) -> Vec<u8> {
        let mut q = Vec::with_capacity(12 + self.0.len() + 11);
        q.extend_from_slice(&id.to_be_bytes());
        // RD; one question, one additional (the OPT).
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
        q.extend_from_slice(&self.0);
        // OPT: root name, type 41, class = payload, TTL 0, no data.
        q.push(0);
        q.extend_from_slice(&41u16.to_be_bytes());
        q.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        q
    }

    /// [`Question::query`] as it goes over TCP and TLS: its length first
    /// (RFC 1035 4.2.2).
    pub fn tcp_frame(&self, id: u16) -> Vec<u8> {
        let q = self.query(id);
        let mut f = Vec::with_capacity(q.len() + 2);
        f.extend_from_slice(&(q.len() as u16).to_be_bytes());
        f.extend_from_slice(&q);
        f
    }
}

/// Why one try, or a whole query, failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{server}: no answer within {:?}", TRY_TIMEOUT)]
    Timeout { server: SocketAddr },
    #[error("{server}: {what}")]
    Io {
        server: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{server}: the connection closed before the answer")]
    Closed { server: SocketAddr },
    #[error("{server}: too many queries waiting")]
    Busy { server: SocketAddr },
    #[error("{server} answered {code}")]
    Rcode {
        server: SocketAddr,
        code: ResponseCode,
    },
    #[error("{server}: a malformed answer")]
    Malformed {
        server: SocketAddr,
        #[source]
        source: hickory_proto::serialize::binary::DecodeError,
    },
    #[error("{server}: an answer to another question")]
    WrongAnswer { server: SocketAddr },
    #[error("{server}: HTTP")]
    Http {
        server: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("{server}: reading the HTTP answer")]
    Body {
        server: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{server}: HTTP status {status}")]
    HttpStatus { server: SocketAddr, status: u16 },
}

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
    /// when there is nowhere to ask. Opens nothing yet (the tunnel may not
    /// be up): sockets and connections are made on the first queries.
    pub fn new(config: &UpstreamConfig, cache_size: u64) -> Result<Option<Upstream>, DnsError> {
        let (servers, transport) = match config {
            UpstreamConfig::None(_) => return Ok(None),
            UpstreamConfig::Plain(s) => {
                let servers: Arc<[SocketAddr]> = s.clone().into();
                (servers.clone(), Transport::Udp(udp::Udp::new(servers)))
            }
            UpstreamConfig::Tls {
                servers,
                server_name,
                ca_file,
            } => {
                let tls = crate::dns::tls_client_config("DOT_CA_FILE", ca_file.as_deref())?;
                (
                    servers.clone().into(),
                    Transport::Dot(dot::Dot::new(servers, server_name, tls)?),
                )
            }
            UpstreamConfig::Https {
                servers,
                server_name,
                path,
                ca_file,
            } => {
                let tls = crate::dns::tls_client_config("DOH_CA_FILE", ca_file.as_deref())?;
                (
                    servers.clone().into(),
                    Transport::Doh(doh::Doh::new(servers, server_name, path, tls)?),
                )
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

/// A marked TCP connection to `server` (plain DNS's fallback, DoT, DoH).
pub(crate) async fn connect_tcp(
    server: SocketAddr,
) -> Result<tokio::net::TcpStream, UpstreamError> {
    let io = |what| {
        move |source| UpstreamError::Io {
            server,
            what,
            source,
        }
    };
    let socket = if server.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(io("opening a TCP socket"))?;
    socket2::SockRef::from(&socket)
        .set_mark(UPSTREAM_MARK)
        .map_err(io("marking a TCP socket"))?;
    socket.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
    socket.connect(server).await.map_err(io("connecting"))
}

/// A random query ID.
pub(crate) fn random_id() -> u16 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_is_lower_case_wire_and_its_query_offers_edns() {
        let q = Question::new(
            &Name::from_ascii("WwW.Lab.").unwrap(),
            RecordType::AAAA,
            DNSClass::IN,
        );
        assert_eq!(&*q.0, b"\x03www\x03lab\x00\x00\x1c\x00\x01");
        let bytes = q.query(0xbeef);
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name().to_ascii(), "www.lab.");
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
        assert_eq!(m.edns.unwrap().max_payload(), EDNS_PAYLOAD);
        assert!(q.matches(b"\x03WWW\x03lab\x00\x00\x1c\x00\x01"));
        assert!(
            !q.matches(b"\x03www\x03lab\x00\x00\x01\x00\x01"),
            "another type"
        );
        assert!(!q.matches(b"\x03www\x03lab\x00\x00\x1c\x00"), "cut short");
    }

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
