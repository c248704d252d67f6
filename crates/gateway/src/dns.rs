//! The gateway's own resolver on 127.0.0.1:53 in the gateway's namespace
//! (the dependents' resolv.conf points at it), answering through its
//! upstream client ([`crate::dns_upstream`], which keeps the upstream's
//! answers) from its upstream ([`crate::config::Upstream`]: plain DNS, DNS
//! over TLS or DNS over HTTPS), which is reached only through the tunnel:
//! the kill switch lets the resolver's marked sockets reach the upstream's
//! addresses and ports, and rejects port 53 (and 853, and 443 to known DoH
//! endpoints) to anything else. An answer holding a blocked address
//! (DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES) is refused whole ([`screen`]).
//! Malformed requests get an error response, never a crash. With
//! DNS_SERVER=off it is not started at all ([`write_resolv_conf`] then
//! names the plain upstreams).
//!
//! UDP goes through a front loop: the policy decides first, then a cached
//! answer ([`crate::dns_cache`]) goes straight back from the loop; anything
//! else gets a task of its own: a query the fast parser read is asked
//! upstream and answered from its bytes, any other is handled as
//! hickory-server would (the same handler); a clean answer is kept. At
//! most [`MAX_IN_FLIGHT`] such tasks run at once: beyond that, a query the
//! fast parser reads gets SERVFAIL at once from the loop (the asker may try
//! again), any other is dropped (it retries). TCP is hickory-server's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record};

use super::config::Upstream;
use super::dns_cache::{self, Cache, Entry};
use super::dns_policy::{Decision, DnsPolicy};
use super::dns_upstream::{self, Answer, Question};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

pub use super::dns_upstream::UPSTREAM_MARK;

/// UDP queries handled (upstream lookups) at once, at most: each may wait
/// for the upstream until its timeouts
/// ([`dns_upstream::TRY_TIMEOUT`], [`dns_upstream::ROUNDS`]).
pub const MAX_IN_FLIGHT: usize = 256;

/// Where the gateway's resolver listens.
pub const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the resolver on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the upstream client")]
    Upstream(#[from] dns_upstream::SetupError),
    #[error("{var}: reading the blocklist {path}")]
    Blocklist {
        var: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{var}: {path} line {line}: {text:?} is not a hostname")]
    BlocklistLine {
        var: &'static str,
        path: String,
        line: usize,
        text: String,
    },
    #[error("{var} {path}: {why}")]
    CaFile {
        var: &'static str,
        path: String,
        why: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("writing {path}")]
    ResolvConf {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Answers from the policy (blocklists, DoH names) or forwards to the
/// upstream, dropping rebinding answers.
#[derive(Clone)]
pub struct GatewayResolver {
    upstream: Option<Arc<dns_upstream::Upstream>>,
    policy: Arc<DnsPolicy>,
}

#[async_trait::async_trait]
impl RequestHandler for GatewayResolver {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let mut answers: Vec<Record> = Vec::new();
        match request.request_info() {
            Err(_) => meta.response_code = ResponseCode::FormErr,
            Ok(info) => {
                let name = info.query.name().to_string();
                match self.policy.decide(&name) {
                    Decision::Blocked => {
                        tracing::info!("DNS: refused {name} (blocklist)");
                        meta.response_code = ResponseCode::Refused;
                    }
                    Decision::DohName => {
                        tracing::info!("DNS: NXDOMAIN for {name} (a DNS-over-HTTPS name)");
                        meta.response_code = ResponseCode::NXDomain;
                    }
                    Decision::Ask => {
                        let q = info.query.original();
                        let question = Question::new(q.name(), q.query_type(), q.query_class());
                        (meta.response_code, answers) = self.resolve(&name, &question).await;
                    }
                }
            }
        }
        respond(
            request,
            response_handle,
            meta,
            &answers,
            "the gateway's resolver",
        )
        .await
    }
}

impl GatewayResolver {
    /// The answer to `question` (for `name`, which the policy let through):
    /// the upstream's (or a kept one) with the policy applied ([`screen`]),
    /// SERVFAIL when the upstream fails or there is none.
    async fn resolve(&self, name: &str, question: &Question) -> (ResponseCode, Vec<Record>) {
        let Some(up) = &self.upstream else {
            tracing::warn!(
                "DNS query refused: no upstream resolver (DNS_UPSTREAM_PLAIN_ADDRESSES, DOT_SERVER_ADDRESS or DOH_SERVER_ADDRESS)"
            );
            return (ResponseCode::ServFail, Vec::new());
        };
        match up.lookup(question).await {
            Ok((answer, age)) => screen(&self.policy, name, &answer, age),
            Err(e) => {
                tracing::debug!("upstream failed for {name}: {e}");
                (ResponseCode::ServFail, Vec::new())
            }
        }
    }
}

/// The policy applied to the upstream's `answer` for `name`, `age`
/// seconds after it came (TTLs counted down): an answer holding a blocked
/// address is refused whole (as Gluetun's filter does), rebinding
/// addresses are removed; NXDOMAIN stays NXDOMAIN. Pure.
pub fn screen(
    policy: &DnsPolicy,
    name: &str,
    answer: &Answer,
    age: u32,
) -> (ResponseCode, Vec<Record>) {
    if answer.rcode != ResponseCode::NoError {
        return (answer.rcode, Vec::new());
    }
    let ip_of = |r: &Record| match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    };
    if let Some(ip) = answer
        .records
        .iter()
        .filter_map(ip_of)
        .find(|ip| policy.answer_blocked(*ip))
    {
        tracing::info!(
            "DNS: refused the answer for {name}: it holds {ip} (DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES)"
        );
        return (ResponseCode::Refused, Vec::new());
    }
    let mut kept = Vec::with_capacity(answer.records.len());
    for r in &answer.records {
        match ip_of(r) {
            Some(ip) if !policy.address_allowed(name, ip) => {
                tracing::info!(
                    "DNS: dropped {ip} from the answer for {name} (rebinding protection)"
                );
            }
            _ => {
                let mut r = r.clone();
                r.ttl = r.ttl.saturating_sub(age);
                kept.push(r);
            }
        }
    }
    (ResponseCode::NoError, kept)
}

/// A TLS client configuration trusting the CA certificates in `ca_file`
/// (PEM; `var` is the variable that named it, for errors), or the public
/// web roots: for the DoT upstream and the health check's TLS handshake.
pub fn tls_client_config(
    var: &'static str,
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, DnsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let bad = |why: Box<dyn std::error::Error + Send + Sync>| DnsError::CaFile {
                var,
                path: path.display().to_string(),
                why,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.into()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.into()))?;
            if certs.is_empty() {
                return Err(bad("no certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.into()))?;
            }
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Sends `answers` with `meta` as the response to `request`; a response
/// that cannot be sent is logged (`who` answered) and reported as SERVFAIL.
/// The gateway's resolver and the lab's resolvers answer through it.
pub async fn respond<R: ResponseHandler>(
    request: &Request,
    mut response_handle: R,
    meta: Metadata,
    answers: &[Record],
    who: &str,
) -> ResponseInfo {
    let response = MessageResponseBuilder::from_message_request(request).build(
        meta,
        answers.iter(),
        [],
        [],
        [],
    );
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("{who}: sending a DNS response: {e}");
            servfail_info(request)
        }
    }
}

/// What a handler reports when its response could not be sent.
fn servfail_info(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    hickory_proto::op::Header {
        metadata,
        counts: Default::default(),
    }
    .into()
}

/// The running resolver: hickory-server for TCP, the front loop for UDP.
pub struct DnsService {
    server: Server<GatewayResolver>,
    cancel: tokio_util::sync::CancellationToken,
    cache: Arc<Mutex<Cache>>,
}

impl DnsService {
    /// Stops both (queries in flight are dropped).
    pub fn shutdown(&self) {
        self.server.shutdown_token().cancel();
        self.cancel.cancel();
    }

    /// (hits, misses, entries) of the front cache so far.
    pub fn cache_stats(&self) -> (u64, u64, usize) {
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        (c.hits, c.misses, c.len())
    }
}

/// Starts the resolver on [`LISTEN`] (UDP and TCP) asking `upstream`; it
/// keeps up to `cache_size` answers.
pub async fn start(
    upstream: &Upstream,
    cache_size: u64,
    policy: DnsPolicy,
) -> Result<DnsService, DnsError> {
    let tls = match upstream {
        Upstream::Tls { ca_file, .. } => {
            Some(tls_client_config("DOT_CA_FILE", ca_file.as_deref())?)
        }
        Upstream::Https { ca_file, .. } => {
            Some(tls_client_config("DOH_CA_FILE", ca_file.as_deref())?)
        }
        Upstream::Plain(_) | Upstream::None(_) => None,
    };
    let upstream = dns_upstream::Upstream::new(upstream, cache_size, tls)?.map(Arc::new);
    let bind = |source| DnsError::Bind {
        addr: LISTEN,
        source,
    };
    let udp = tokio::net::UdpSocket::bind(LISTEN).await.map_err(bind)?;
    let tcp = tokio::net::TcpListener::bind(LISTEN).await.map_err(bind)?;
    let handler = GatewayResolver {
        upstream,
        policy: Arc::new(policy),
    };
    let mut server = Server::new(handler.clone());
    server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
    let cache = Arc::new(Mutex::new(Cache::new(
        usize::try_from(cache_size).unwrap_or(usize::MAX),
    )));
    let cancel = tokio_util::sync::CancellationToken::new();
    // One loop: a second one on a SO_REUSEPORT socket was measured slower
    // per query (more wakeups) on this 2-core machine, and would let any
    // process of the same user join the port.
    tokio::spawn(serve_udp(
        Arc::new(udp),
        handler.clone(),
        cache.clone(),
        cancel.clone(),
        Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
    ));
    Ok(DnsService {
        server,
        cancel,
        cache,
    })
}

/// The UDP front loop: queued queries are taken in batches (one
/// `recvmmsg`); for each, the policy, then the cache; cached answers go out
/// together (one `sendmmsg`), everything else in a task of its own through
/// the handler, holding one of `in_flight`'s permits. Without a permit
/// left, a query the fast parser reads is answered SERVFAIL with the
/// cached ones, any other is dropped.
async fn serve_udp(
    sock: Arc<tokio::net::UdpSocket>,
    handler: GatewayResolver,
    cache: Arc<Mutex<Cache>>,
    cancel: tokio_util::sync::CancellationToken,
    in_flight: Arc<tokio::sync::Semaphore>,
) {
    use leakhound_net::udp_batch::{RecvBatch, send_batch};
    use std::os::fd::AsRawFd;
    let mut batch = RecvBatch::default();
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    // Said once each time the limit is reached, not per query.
    let mut full_said = false;
    loop {
        let got = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.async_io(tokio::io::Interest::READABLE, || batch.recv(sock.as_raw_fd())) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("resolver: receiving: {e}");
                    continue;
                }
            },
        };
        {
            let now = Instant::now();
            let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
            for i in 0..got {
                let (req, peer) = batch.get(i);
                let parsed = dns_cache::parse_query(req);
                let fast = parsed
                    .clone()
                    .filter(|q| handler.policy.decide_normalized(&q.name()) == Decision::Ask);
                if let Some(q) = &fast {
                    let mut out = spare.pop().unwrap_or_default();
                    if c.answer(q, req, now, &mut out) {
                        answers.push((out, peer));
                        continue;
                    }
                    spare.push(out);
                }
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    if !full_said {
                        tracing::warn!(
                            "resolver: {MAX_IN_FLIGHT} queries in flight: answering SERVFAIL until some finish"
                        );
                        full_said = true;
                    }
                    if let Some(q) = &parsed {
                        answers.push((dns_cache::servfail(q, req), peer));
                    }
                    continue;
                };
                full_said = false;
                miss(&sock, &handler, &cache, req.to_vec(), peer, fast, permit);
            }
        }
        if !answers.is_empty() {
            // A full socket buffer drops the rest, as a busy server would;
            // the askers retry.
            if let Err(e) = send_batch(&*sock, &answers) {
                tracing::debug!("resolver: answering: {e}");
            }
            spare.extend(answers.drain(..).map(|(b, _)| b));
        }
    }
}

/// A query the cache could not answer, in a task of its own which holds
/// `permit` until it has answered: one the fast parser read (`fast`) is
/// asked upstream and answered from its bytes ([`GatewayResolver::answer_fast`]),
/// any other goes through the handler; a clean answer is kept.
fn miss(
    sock: &Arc<tokio::net::UdpSocket>,
    handler: &GatewayResolver,
    cache: &Arc<Mutex<Cache>>,
    req: Vec<u8>,
    peer: SocketAddr,
    fast: Option<dns_cache::Query>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let (sock, handler, cache) = (sock.clone(), handler.clone(), cache.clone());
    tokio::spawn(async move {
        let _permit = permit;
        let resp = match &fast {
            Some(q) => handler.answer_fast(q, &req).await,
            None => handler.answer_udp(req, peer).await,
        };
        let Some(resp) = resp else {
            return;
        };
        // Kept before it is sent: the asker's next query finds it.
        if let Some(q) = fast
            && let Some(e) = Entry::from_response(&q, &resp, Instant::now())
        {
            cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(&q, e, Instant::now());
        }
        if let Err(e) = sock.send_to(&resp, peer).await {
            tracing::debug!("resolver: answering {peer}: {e}");
        }
    });
}

/// Catches the encoded response of a handler run outside hickory-server.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Captured {
    async fn send_response<'a>(
        &mut self,
        response: hickory_server::zone_handler::MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, hickory_server::net::NetError> {
        // As hickory-server encodes for UDP: what the asker's EDNS allows,
        // 512 bytes without it.
        let max = response.edns().map(|e| e.max_payload()).unwrap_or(512);
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = hickory_proto::serialize::binary::BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}

impl GatewayResolver {
    /// A query the fast parser read (`q`, the bytes `req`) and the policy
    /// let through: asked upstream, answered as the handler would (the
    /// asker's ID, RD and CD, its question as spelled, the screened
    /// records; at most 512 bytes, TC beyond), without parsing the request
    /// again.
    async fn answer_fast(&self, q: &dns_cache::Query, req: &[u8]) -> Option<Vec<u8>> {
        let key = q.key();
        let question = Question::from_lowercase_wire(&key[..key.len() - 1]);
        let (rcode, records) = self.resolve(&q.name(), &question).await;
        encode_reply(req, q, rcode, records)
    }

    /// One UDP request through the handler, as hickory-server runs it:
    /// `None` for what gets no answer (shorter than a header, a response);
    /// FORMERR for what does not parse.
    async fn answer_udp(&self, req: Vec<u8>, peer: SocketAddr) -> Option<Vec<u8>> {
        if req.len() < 12 || req[2] & 0x80 != 0 {
            return None;
        }
        let header = [req[0], req[1], req[2], req[3]];
        match Request::from_bytes(req, peer, hickory_server::net::xfer::Protocol::Udp) {
            Ok(request) => {
                let captured = Captured::default();
                self.handle_request::<_, hickory_server::net::runtime::TokioTime>(
                    &request,
                    captured.clone(),
                )
                .await;
                captured.0.lock().unwrap_or_else(|p| p.into_inner()).take()
            }
            Err(_) => Some(formerr(header)),
        }
    }
}

/// The response to the query `q` (the bytes `req`): its ID, RD and CD, RA,
/// `rcode`, its question as the asker spelled it and `records`, encoded as
/// hickory-server encodes for UDP without EDNS: at most 512 bytes, the
/// records that fit and TC when some did not.
fn encode_reply(
    req: &[u8],
    q: &dns_cache::Query,
    rcode: ResponseCode,
    records: Vec<Record>,
) -> Option<Vec<u8>> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
    let question = hickory_proto::op::Query::read(&mut BinDecoder::new(req.get(12..)?)).ok()?;
    let flags = u16::from_be_bytes([req[2], req[3]]);
    let mut m = Message::new(q.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = flags & 0x0100 != 0;
    m.metadata.checking_disabled = flags & 0x0010 != 0;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    m.queries.push(question);
    m.answers = records;
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(512);
    m.emit(&mut encoder).ok()?;
    Some(bytes)
}

/// A FORMERR answer with no records, for a request whose header starts
/// with `header` (ID, flags).
fn formerr(header: [u8; 4]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0..2].copy_from_slice(&header[0..2]);
    // QR, the opcode and RD kept, RCODE 1.
    out[2] = 0x80 | (header[2] & 0x79);
    out[3] = 0x01;
    out
}

/// The request path up to the upstream lookup, as the resolver runs it:
/// parse the bytes as hickory-server does, then apply the policy to the
/// question. `None` for bytes that are not a usable query (the resolver
/// answers FORMERR or drops them). Pure; the fuzz target drives it.
pub fn inspect_request(policy: &DnsPolicy, bytes: &[u8]) -> Option<(String, Decision)> {
    let req = Request::from_bytes(
        bytes.to_vec(),
        LISTEN,
        hickory_server::net::xfer::Protocol::Udp,
    )
    .ok()?;
    let info = req.request_info().ok()?;
    let name = info.query.name().to_string();
    let d = policy.decide(&name);
    Some((name, d))
}

/// Loads the blocklist files into `policy`: a missing file or a bad line is
/// an error naming the variable, the file and the line.
pub fn load_blocklists(
    policy: &mut DnsPolicy,
    lists: &[(&'static str, std::path::PathBuf)],
) -> Result<(), DnsError> {
    for (var, path) in lists {
        let text = std::fs::read_to_string(path).map_err(|source| DnsError::Blocklist {
            var,
            path: path.display().to_string(),
            source,
        })?;
        if let Some((line, text)) = policy.blocked.parse_list(&text).into_iter().next() {
            return Err(DnsError::BlocklistLine {
                var,
                path: path.display().to_string(),
                line,
                text,
            });
        }
        tracing::info!(
            "{var}: {} names from {}",
            policy.blocked.len(),
            path.display()
        );
    }
    Ok(())
}

/// Points the namespace's resolv.conf at `nameservers` (as Gluetun does;
/// in a container, the container's own /etc/resolv.conf): the gateway's
/// resolver, or with DNS_SERVER=off the plain upstreams.
pub fn write_resolv_conf(path: &std::path::Path, nameservers: &[IpAddr]) -> Result<(), DnsError> {
    let mut text = String::from("# written by leakhound gateway\n");
    for ns in nameservers {
        text.push_str(&format!("nameserver {ns}\n"));
    }
    std::fs::write(path, text).map_err(|source| DnsError::ResolvConf {
        path: path.display().to_string(),
        source,
    })
}

/// The first `nameserver` of a resolv.conf text.
pub fn first_nameserver(resolv_conf: &str) -> Option<IpAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver")).then(|| w.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_path_decides_by_name_and_survives_garbage() {
        let mut policy = DnsPolicy::default();
        policy.blocked.insert("malware.lab");
        let (_, q) = leakhound_proto::dns_query::a_query("x.malware.lab.").unwrap();
        let (name, d) = inspect_request(&policy, &q).unwrap();
        assert_eq!(name, "x.malware.lab.");
        assert_eq!(d, Decision::Blocked);
        for (_, bad) in leakhound_proto::dns_corpus::malformed_dns() {
            let _ = inspect_request(&policy, &bad);
        }
        for m in leakhound_proto::dns_corpus::mutated_queries(2000) {
            let _ = inspect_request(&policy, &m);
        }
    }

    /// The front loop on a loopback socket, its handler without upstream
    /// (a query it handles is answered at once: REFUSED for a blocked
    /// name). With every in-flight permit taken, the same query gets
    /// SERVFAIL from the loop instead; with one free again, the handler's
    /// answer.
    #[tokio::test]
    async fn beyond_the_in_flight_limit_a_query_gets_servfail_from_the_loop() {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let mut policy = DnsPolicy::default();
        policy.blocked.insert("malware.lab");
        let handler = GatewayResolver {
            upstream: None,
            policy: Arc::new(policy),
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(2));
        let cancel = tokio_util::sync::CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        tokio::spawn(serve_udp(
            Arc::new(sock),
            handler,
            Arc::new(Mutex::new(Cache::new(16))),
            cancel,
            slots.clone(),
        ));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ask = |id: u16| {
            let client = &client;
            async move {
                let (_, mut q) = leakhound_proto::dns_query::a_query("x.malware.lab.").unwrap();
                q[0..2].copy_from_slice(&id.to_be_bytes());
                client.send_to(&q, addr).await.unwrap();
                let mut buf = [0u8; 512];
                let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                    .await
                    .expect("no answer within 5 s")
                    .unwrap();
                let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(m.metadata.id, id);
                assert_eq!(m.queries[0].name().to_string(), "x.malware.lab.");
                m.metadata.response_code
            }
        };
        assert_eq!(ask(1).await, ResponseCode::Refused);
        let held = slots.clone().acquire_many_owned(2).await.unwrap();
        assert_eq!(ask(2).await, ResponseCode::ServFail);
        assert_eq!(ask(3).await, ResponseCode::ServFail);
        drop(held);
        assert_eq!(ask(4).await, ResponseCode::Refused);
        // Every permit came back once the handler's tasks had answered.
        let all = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(2)).await;
        assert!(all.is_ok(), "a handler task kept its permit");
    }

    fn a_record(name: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(
            hickory_proto::rr::Name::from_ascii(name).unwrap(),
            ttl,
            RData::A(hickory_proto::rr::rdata::A::from(Ipv4Addr::from(ip))),
        )
    }

    fn answer(records: Vec<Record>) -> Answer {
        Answer {
            rcode: ResponseCode::NoError,
            records,
            ttl: Some(60),
        }
    }

    #[test]
    fn screening_drops_rebinding_addresses_refuses_blocked_ones_and_ages_ttls() {
        let mut policy = DnsPolicy {
            blocked_ips: vec!["192.0.2.64/30".parse().unwrap()],
            ..Default::default()
        };
        policy.rebinding_exempt.insert("nas.home.lab");
        let mixed = answer(vec![
            a_record("www.lab.", [10, 1, 2, 3], 60),
            a_record("www.lab.", [192, 0, 2, 8], 60),
        ]);
        let (code, kept) = screen(&policy, "www.lab", &mixed, 20);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(kept, vec![a_record("www.lab.", [192, 0, 2, 8], 40)]);
        let (_, exempt) = screen(&policy, "nas.home.lab.", &mixed, 0);
        assert_eq!(exempt.len(), 2, "an exempt name keeps its private address");
        let blocked = answer(vec![
            a_record("x.lab.", [192, 0, 2, 7], 60),
            a_record("x.lab.", [192, 0, 2, 66], 60),
        ]);
        assert_eq!(
            screen(&policy, "nas.home.lab", &blocked, 0),
            (ResponseCode::Refused, vec![]),
            "refused whole, exempt or not"
        );
        let nx = Answer {
            rcode: ResponseCode::NXDomain,
            records: vec![],
            ttl: None,
        };
        assert_eq!(
            screen(&policy, "x.lab", &nx, 0),
            (ResponseCode::NXDomain, vec![])
        );
    }

    #[test]
    fn a_fast_answer_keeps_the_askers_id_flags_and_spelling_and_is_cut_at_512_bytes() {
        let mut m = hickory_proto::op::Message::query();
        m.metadata.id = 0x1234;
        m.metadata.recursion_desired = true;
        m.metadata.checking_disabled = true;
        m.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("WwW.Lab.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        let req = m.to_vec().unwrap();
        let q = dns_cache::parse_query(&req).unwrap();
        let one = vec![a_record("www.lab.", [192, 0, 2, 7], 60)];
        let bytes = encode_reply(&req, &q, ResponseCode::NoError, one.clone()).unwrap();
        let r = hickory_proto::op::Message::from_vec(&bytes).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert!(r.metadata.recursion_desired && r.metadata.checking_disabled);
        assert!(r.metadata.recursion_available && !r.metadata.truncation);
        assert_eq!(r.queries[0].name().to_ascii(), "WwW.Lab.");
        assert_eq!(r.answers, one);
        assert!(
            Entry::from_response(&q, &bytes, Instant::now()).is_some(),
            "cacheable"
        );
        // 40 records do not fit in 512 bytes: those that do, and TC.
        let many: Vec<Record> = (0..40u8)
            .map(|i| a_record("www.lab.", [192, 0, 2, i], 60))
            .collect();
        let bytes = encode_reply(&req, &q, ResponseCode::NoError, many).unwrap();
        assert!(bytes.len() <= 512);
        let r = hickory_proto::op::Message::from_vec(&bytes).unwrap();
        assert!(r.metadata.truncation);
        assert!(!r.answers.is_empty() && r.answers.len() < 40);
        assert!(
            Entry::from_response(&q, &bytes, Instant::now()).is_none(),
            "not kept"
        );
    }

    #[test]
    fn the_first_nameserver_is_found() {
        let conf = "# comment\nsearch lab\nnameserver 192.0.2.53\nnameserver 10.0.0.1\n";
        assert_eq!(first_nameserver(conf), Some("192.0.2.53".parse().unwrap()));
        assert_eq!(first_nameserver("nameserver\nnameserver x\n"), None);
        assert_eq!(first_nameserver(""), None);
    }
}
