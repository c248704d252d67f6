//! The gateway's own resolver on 127.0.0.1:53 in the gateway's namespace
//! (the dependents' resolv.conf points at it), answering through
//! hickory-resolver (with its cache) from its upstream
//! ([`crate::config::Upstream`]: plain DNS, DNS over TLS or DNS over HTTPS),
//! which is reached only through the tunnel: the kill switch lets the
//! resolver's marked sockets reach the upstream's addresses and ports, and
//! rejects port 53 (and 853, and 443 to known DoH endpoints) to anything
//! else. An answer holding a blocked address (DNS_BLOCK_IPS,
//! DNS_BLOCK_IP_PREFIXES) is refused whole. Malformed requests get an error
//! response, never a crash. With DNS_SERVER=off it is not started at all
//! ([`write_resolv_conf`] then names the plain upstreams).
//!
//! UDP goes through a front loop: the policy decides first, then a cached
//! answer ([`crate::dns_cache`]) goes straight back from the loop; anything
//! else is handled as hickory-server would (the same handler, one task per
//! query) and a clean answer is kept. At most [`MAX_IN_FLIGHT`] such tasks
//! run at once: beyond that, a query the fast parser reads gets SERVFAIL at
//! once from the loop (the asker may try again), any other is dropped (it
//! retries). TCP is hickory-server's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::{RData, Record};

use super::config::Upstream;
use super::dns_cache::{self, Cache, Entry};
use super::dns_policy::{Decision, DnsPolicy};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

/// The firewall mark on the resolver's upstream sockets: the kill switch
/// lets port 53 out only with it, so only the gateway's resolver (not a
/// dependent) reaches the upstream.
pub const UPSTREAM_MARK: u32 = 0x6c68;

/// hickory's Tokio runtime, with [`UPSTREAM_MARK`] on every socket it opens.
#[derive(Clone, Default)]
pub struct MarkedRuntime(TokioRuntimeProvider);

impl hickory_resolver::net::runtime::RuntimeProvider for MarkedRuntime {
    type Handle = hickory_resolver::net::runtime::TokioHandle;
    type Timer = hickory_resolver::net::runtime::TokioTime;
    type Udp = tokio::net::UdpSocket;
    type Tcp = hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd<tokio::net::TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.0.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> std::pin::Pin<
        Box<dyn Send + std::future::Future<Output = Result<Self::Tcp, std::io::Error>>>,
    > {
        Box::pin(async move {
            let socket = if server_addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket2::SockRef::from(&socket).set_mark(UPSTREAM_MARK)?;
            if let Some(b) = bind_addr {
                socket.bind(b)?;
            }
            socket.set_nodelay(true)?;
            let wait = timeout.unwrap_or(Duration::from_secs(5));
            match tokio::time::timeout(wait, socket.connect(server_addr)).await {
                Ok(r) => r.map(hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TCP connect timed out",
                )),
            }
        })
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        _server_addr: SocketAddr,
    ) -> std::pin::Pin<
        Box<dyn Send + std::future::Future<Output = Result<Self::Udp, std::io::Error>>>,
    > {
        Box::pin(async move {
            let s = socket2::Socket::new(
                socket2::Domain::for_address(local_addr),
                socket2::Type::DGRAM,
                None,
            )?;
            s.set_mark(UPSTREAM_MARK)?;
            s.set_nonblocking(true)?;
            s.bind(&local_addr.into())?;
            tokio::net::UdpSocket::from_std(s.into())
        })
    }
}

/// UDP queries handled (upstream lookups) at once, at most: each may hold
/// an upstream socket until hickory's timeout.
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
    #[error("building the upstream resolver")]
    Resolver(#[source] hickory_resolver::net::NetError),
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
/// upstream through hickory-resolver, dropping rebinding answers.
#[derive(Clone)]
pub struct GatewayResolver {
    upstream: Option<Arc<Resolver<MarkedRuntime>>>,
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
        match (request.request_info(), &self.upstream) {
            (Err(_), _) => meta.response_code = ResponseCode::FormErr,
            (Ok(info), _)
                if self.policy.decide(&info.query.name().to_string()) == Decision::Blocked =>
            {
                tracing::info!("DNS: refused {} (blocklist)", info.query.name());
                meta.response_code = ResponseCode::Refused;
            }
            (Ok(info), _)
                if self.policy.decide(&info.query.name().to_string()) == Decision::DohName =>
            {
                tracing::info!(
                    "DNS: NXDOMAIN for {} (a DNS-over-HTTPS name)",
                    info.query.name()
                );
                meta.response_code = ResponseCode::NXDomain;
            }
            (Ok(_), None) => {
                tracing::warn!(
                    "DNS query refused: no upstream resolver (DNS_UPSTREAM_PLAIN_ADDRESSES, DOT_SERVER_ADDRESS or DOH_SERVER_ADDRESS)"
                );
                meta.response_code = ResponseCode::ServFail;
            }
            (Ok(info), Some(up)) => {
                let q = info.query.original();
                let name = q.name().to_string();
                match up.lookup(q.name().clone(), q.query_type()).await {
                    Ok(lookup) => {
                        let ip_of = |r: &Record| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        };
                        // Gluetun refuses the whole answer when one of its
                        // addresses is blocked.
                        let blocked = lookup
                            .answers()
                            .iter()
                            .filter_map(ip_of)
                            .find(|ip| self.policy.answer_blocked(*ip));
                        if let Some(ip) = blocked {
                            tracing::info!(
                                "DNS: refused the answer for {name}: it holds {ip} (DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES)"
                            );
                            meta.response_code = ResponseCode::Refused;
                        }
                        for r in lookup.answers().iter().filter(|_| blocked.is_none()) {
                            match ip_of(r) {
                                Some(ip) if !self.policy.address_allowed(&name, ip) => {
                                    tracing::info!(
                                        "DNS: dropped {ip} from the answer for {name} (rebinding protection)"
                                    );
                                }
                                _ => answers.push(r.clone()),
                            }
                        }
                    }
                    Err(e) if e.is_nx_domain() => meta.response_code = ResponseCode::NXDomain,
                    Err(e) if e.is_no_records_found() => {}
                    Err(e) => {
                        tracing::debug!("upstream failed for {}: {e}", q.name());
                        meta.response_code = ResponseCode::ServFail;
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

/// The upstream resolver, its sockets marked ([`UPSTREAM_MARK`]), keeping
/// up to `cache_size` answers; `None` when there is nowhere to ask.
pub fn upstream_resolver(
    upstream: &Upstream,
    cache_size: u64,
) -> Result<Option<Resolver<MarkedRuntime>>, DnsError> {
    let (servers, tls) = match upstream {
        Upstream::None(_) => return Ok(None),
        Upstream::Plain(s) => (
            s.iter()
                .map(|a| {
                    let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect::<Vec<_>>(),
            None,
        ),
        Upstream::Tls {
            servers,
            server_name,
            ca_file,
        } => (
            servers
                .iter()
                .map(|a| {
                    let mut ns = NameServerConfig::tls(a.ip(), server_name.clone().into());
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect(),
            Some(tls_client_config("DOT_CA_FILE", ca_file.as_deref())?),
        ),
        Upstream::Https {
            servers,
            server_name,
            path,
            ca_file,
        } => (
            servers
                .iter()
                .map(|a| {
                    let mut ns = NameServerConfig::https(
                        a.ip(),
                        server_name.clone().into(),
                        Some(path.clone().into()),
                    );
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect(),
            Some(tls_client_config("DOH_CA_FILE", ca_file.as_deref())?),
        ),
    };
    let mut b = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        MarkedRuntime::default(),
    );
    if let Some(t) = tls {
        b = b.with_tls_config(t);
    }
    b.options_mut().cache_size = cache_size;
    // The kernel picks the (random) source port of each upstream query:
    // one bind, no retries on a taken port.
    b.options_mut().os_port_selection = true;
    Ok(Some(b.build().map_err(DnsError::Resolver)?))
}

/// Starts the resolver on [`LISTEN`] (UDP and TCP) asking `upstream`; it
/// keeps up to `cache_size` answers.
pub async fn start(
    upstream: &Upstream,
    cache_size: u64,
    policy: DnsPolicy,
) -> Result<DnsService, DnsError> {
    let upstream = upstream_resolver(upstream, cache_size)?.map(Arc::new);
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

/// A query the cache could not answer: through the handler in a task of its
/// own, which holds `permit` until it has answered; a clean answer is kept.
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
        let Some(resp) = handler.answer_udp(req, peer).await else {
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

    #[test]
    fn the_first_nameserver_is_found() {
        let conf = "# comment\nsearch lab\nnameserver 192.0.2.53\nnameserver 10.0.0.1\n";
        assert_eq!(first_nameserver(conf), Some("192.0.2.53".parse().unwrap()));
        assert_eq!(first_nameserver("nameserver\nnameserver x\n"), None);
        assert_eq!(first_nameserver(""), None);
    }
}
