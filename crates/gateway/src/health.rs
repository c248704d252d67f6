//! Health: is the tunnel usable right now? Two checks, both through the
//! tunnel only (their sockets are bound to the tunnel's interface, so they
//! can never succeed around it), as Gluetun does them:
//!
//! * the *small* check, every HEALTH_SMALL_CHECK_INTERVAL: an ICMP echo to
//!   HEALTH_ICMP_TARGET_IPS (or, with HEALTH_SMALL_CHECK_TYPE=dns, a query
//!   for a fresh name through the gateway's resolver); three tries with
//!   growing timeouts, one answer from one target is enough;
//! * the *full* check, at every tunnel-up and then every
//!   HEALTH_FULL_CHECK_INTERVAL (retried at every small check while it
//!   fails): a TCP connection and a completed TLS handshake with the first
//!   HEALTH_TARGET_ADDRESSES target that answers, names resolved by the
//!   gateway's own resolver.
//!
//! Healthy means: the tunnel is up with a session no older than WireGuard's
//! REJECT_AFTER_TIME, and both checks' last runs passed. The verdict is
//! served on HEALTH_SERVER_ADDRESS: `GET /` answers 200 when healthy and 500
//! otherwise, with the reason in the body; `leakhound gateway healthcheck`
//! turns that into an exit status for Docker.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use tokio::sync::watch;

use super::config::{HealthTarget, SmallCheck};
use leakhound_net::tunnel::TunnelStatus;

/// WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(180);

/// A check's outcome: what answered, or why nothing did.
pub type CheckResult = Result<String, CheckError>;

/// Why a socket for a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("opening a socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("binding to {interface}: {source}")]
    Bind {
        interface: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why a check failed: the health server's reason says it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("sending the echo request: {0}")]
    SendEcho(#[source] std::io::Error),
    #[error("reading echo replies: {0}")]
    ReceiveEcho(#[source] std::io::Error),
    #[error("no ICMP echo reply to {tries} tries within {after:?}")]
    NoEchoReply { tries: usize, after: Duration },
    /// The blocking task of the check did not finish (it panicked).
    #[error("the check's task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Query(#[from] leakhound_proto::dns_query::QueryError),
    #[error("asking the resolver {resolver}: {source}")]
    Udp {
        resolver: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No usable answer: `last` is the last answer's code (`None`: none).
    #[error(
        "{} for {name} within {after:?}",
        match last {
            Some(code) => format!("the resolver answered {code}"),
            None => "no answer".to_string(),
        }
    )]
    NoDnsAnswer {
        last: Option<hickory_proto::op::ResponseCode>,
        name: String,
        after: Duration,
    },
    #[error("no resolver to ask")]
    NoResolver,
    #[error("no resolver for the targets' names")]
    NoTargetResolver,
    #[error("resolving {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: hickory_resolver::net::NetError,
    },
    #[error("{host:?} is not a name TLS can check: {source}")]
    ServerName {
        host: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("{0} resolved to no address")]
    NoAddress(String),
    #[error("TCP to {ip}: {source}")]
    Tcp {
        ip: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {ip}: {source}")]
    Tls {
        ip: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no TLS handshake within {0:?}")]
    TlsTimeout(Duration),
    /// Every target failed: each with why, in order.
    #[error(
        "{}",
        .0.iter().map(|(t, e)| format!("{t}: {e}")).collect::<Vec<_>>().join("; ")
    )]
    AllFailed(Vec<(String, CheckError)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub healthy: bool,
    pub reason: String,
}

impl Health {
    pub fn starting() -> Health {
        Health {
            healthy: false,
            reason: "starting".into(),
        }
    }
}

/// The verdict from the tunnel's state and the checks' last results
/// (`None`: not run since the tunnel came up). Pure.
pub fn verdict(
    tunnel: Option<&TunnelStatus>,
    now: SystemTime,
    small: Option<&CheckResult>,
    full: Option<&CheckResult>,
) -> Health {
    let unhealthy = |reason: String| Health {
        healthy: false,
        reason,
    };
    let Some(t) = tunnel else {
        return unhealthy("the tunnel is down".into());
    };
    match t.last_handshake {
        None => return unhealthy("no WireGuard handshake yet".into()),
        Some(at) => {
            let age = now.duration_since(at).unwrap_or_default();
            if age > SESSION_LIFETIME {
                return unhealthy(format!(
                    "the last WireGuard handshake was {}s ago",
                    age.as_secs()
                ));
            }
        }
    }
    match (small, full) {
        (Some(Err(e)), _) => unhealthy(format!("small check: {e}")),
        (_, Some(Err(e))) => unhealthy(format!("full check: {e}")),
        (None, _) | (_, None) => unhealthy("tunnel up, first checks running".into()),
        (Some(Ok(s)), Some(Ok(f))) => Health {
            healthy: true,
            reason: format!("tunnel up; small check: {s}; full check: {f}"),
        },
    }
}

/// A handshake this recent proves the provider answers: a failing check
/// then is about its targets, and forcing more handshakes would only add
/// chatter (a valid session carries data the moment the peer answers).
pub const KICK_AFTER: Duration = Duration::from_secs(30);

/// Whether a failing small check should force a handshake: the tunnel has
/// none yet (a new or restarted tunnel), or its last one is older than
/// [`KICK_AFTER`]. Pure.
pub fn needs_kick(tunnel: Option<&TunnelStatus>, now: SystemTime) -> bool {
    match tunnel.map(|t| t.last_handshake) {
        None => false,
        Some(None) => true,
        Some(Some(at)) => now.duration_since(at).unwrap_or_default() > KICK_AFTER,
    }
}

/// Tries `targets` in order until one passes: Ok with what answered, or
/// Err listing every failure. No targets at all is a pass (nothing asked).
pub async fn first_success<T: std::fmt::Display, F: std::future::Future<Output = CheckResult>>(
    targets: &[T],
    mut check: impl FnMut(&T) -> F,
) -> CheckResult {
    if targets.is_empty() {
        return Ok("no targets configured".into());
    }
    let mut failures = Vec::new();
    for t in targets {
        match check(t).await {
            Ok(what) => return Ok(what),
            Err(e) => failures.push((t.to_string(), e)),
        }
    }
    Err(CheckError::AllFailed(failures))
}

/// The timeouts of a small check's three tries: t, 2t, 3t, adding up to
/// one interval (t at least 100 ms).
pub fn small_tries(interval: Duration) -> [Duration; 3] {
    let t = (interval / 6).max(Duration::from_millis(100));
    [t, t * 2, t * 3]
}

/// A TCP socket for `ip`'s family, bound to the tunnel interface: what it
/// connects to is reached through the tunnel or not at all.
pub fn tunnel_tcp_socket(
    ip: IpAddr,
    tunnel_if: &str,
) -> Result<tokio::net::TcpSocket, SocketError> {
    let s = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(SocketError::Open)?;
    s.bind_device(Some(tunnel_if.as_bytes()))
        .map_err(|source| SocketError::Bind {
            interface: tunnel_if.to_string(),
            source,
        })?;
    Ok(s)
}

/// ICMP echo to `target` through `tunnel_if`: one request per try, any
/// reply to any of them counts.
pub async fn ping(target: IpAddr, tunnel_if: &str, tries: [Duration; 3]) -> CheckResult {
    let iface = tunnel_if.to_string();
    tokio::task::spawn_blocking(move || {
        let v6 = target.is_ipv6();
        let proto = if v6 {
            socket2::Protocol::ICMPV6
        } else {
            socket2::Protocol::ICMPV4
        };
        let sock = leakhound_net::rawsock::raw_socket(v6, proto).map_err(SocketError::Open)?;
        sock.bind_device(Some(iface.as_bytes()))
            .map_err(|source| SocketError::Bind {
                interface: iface.clone(),
                source,
            })?;
        let id: u16 = rand::random();
        let payload = b"leakhound health";
        let started = Instant::now();
        for (seq, wait) in (1u16..).zip(tries) {
            let msg = leakhound_proto::echo::request(v6, id, seq, payload);
            sock.send_to(&msg, &SocketAddr::new(target, 0).into())
                .map_err(CheckError::SendEcho)?;
            let got = leakhound_net::rawsock::recv_until(&sock, Instant::now() + wait, |d| {
                leakhound_proto::echo::is_reply(v6, d, id, payload)
            })
            .map_err(CheckError::ReceiveEcho)?;
            if got {
                return Ok(format!(
                    "{target} answered an ICMP echo in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1e3
                ));
            }
        }
        Err(CheckError::NoEchoReply {
            tries: tries.len(),
            after: started.elapsed(),
        })
    })
    .await
    .unwrap_or_else(|e| Err(CheckError::Task(e)))
}

/// A query for a fresh name (no cache can answer it) to `resolver`: the
/// gateway's own resolver, which asks its upstream through the tunnel (or,
/// with DNS_SERVER=off, the first plain upstream itself, through the
/// tunnel). NOERROR or NXDOMAIN passes; SERVFAIL (the upstream did not
/// answer) or silence fails.
pub async fn dns_check(resolver: SocketAddr, tries: [Duration; 3]) -> CheckResult {
    use hickory_proto::op::{Message, ResponseCode};
    let name = format!("{:012x}.health.example.com.", rand::random::<u64>() >> 16);
    let (id, bytes) = leakhound_proto::dns_query::a_query(&name)?;
    let bind: SocketAddr = match resolver.ip() {
        ip if ip.is_loopback() => SocketAddr::new(ip, 0),
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let udp = |source| CheckError::Udp { resolver, source };
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(udp)?;
    sock.connect(resolver).await.map_err(udp)?;
    let started = Instant::now();
    let mut last = None;
    for wait in tries {
        sock.send(&bytes).await.map_err(udp)?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.metadata.id != id {
                continue;
            }
            match m.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {
                    return Ok(format!(
                        "the resolver answered {name} ({}) in {:.1} ms",
                        m.metadata.response_code,
                        started.elapsed().as_secs_f64() * 1e3
                    ));
                }
                other => last = Some(other),
            }
        }
    }
    Err(CheckError::NoDnsAnswer {
        last,
        name,
        after: started.elapsed(),
    })
}

/// Resolves names for the full check through `resolver` (the gateway's
/// own, or with DNS_SERVER=off the first plain upstream: through the
/// tunnel either way), without a cache of its own.
pub fn target_resolver(
    resolver: SocketAddr,
) -> Result<hickory_resolver::TokioResolver, hickory_resolver::net::NetError> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    let mut ns = NameServerConfig::udp_and_tcp(resolver.ip());
    for c in &mut ns.connections {
        c.port = resolver.port();
    }
    let mut b = hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    );
    b.options_mut().cache_size = 0;
    b.build()
}

/// The full check against one target: resolve it, connect through the
/// tunnel, and on port 443 ([`TLS_PORT`]) complete a TLS handshake for its
/// name.
pub async fn tls_dial(
    target: HealthTarget,
    tunnel_if: &str,
    tls: Arc<rustls::ClientConfig>,
    resolver: &hickory_resolver::TokioResolver,
    timeout: Duration,
) -> CheckResult {
    let started = Instant::now();
    let work = async {
        let ips: Vec<IpAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => resolver
                .lookup_ip(target.host.as_str())
                .await
                .map_err(|source| CheckError::Resolve {
                    host: target.host.clone(),
                    source,
                })?
                .iter()
                .collect(),
        };
        let name =
            rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|source| {
                CheckError::ServerName {
                    host: target.host.clone(),
                    source,
                }
            })?;
        let mut last = CheckError::NoAddress(target.host.clone());
        for ip in ips {
            let s = tunnel_tcp_socket(ip, tunnel_if)?;
            let tcp = match s.connect(SocketAddr::new(ip, target.port)).await {
                Ok(t) => t,
                Err(source) => {
                    last = CheckError::Tcp { ip, source };
                    continue;
                }
            };
            // As Gluetun's check: a TLS handshake on port 443 only; on any
            // other port the connection is the check.
            if target.port != TLS_PORT {
                return Ok(format!(
                    "TCP connection to {target} ({ip}) in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1e3
                ));
            }
            match tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name.clone(), tcp)
                .await
            {
                Ok(_) => {
                    return Ok(format!(
                        "TLS handshake with {target} ({ip}) in {:.1} ms",
                        started.elapsed().as_secs_f64() * 1e3
                    ));
                }
                Err(source) => last = CheckError::Tls { ip, source },
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(CheckError::TlsTimeout(timeout)))
}

/// The port whose full check is a TLS handshake (Gluetun's
/// `internal/healthcheck`: 443 gets TLS, any other port a TCP connect).
pub const TLS_PORT: u16 = 443;

/// What the checks need.
pub struct Checks {
    pub small: SmallCheck,
    pub targets: Vec<HealthTarget>,
    pub interval: Duration,
    pub full_interval: Duration,
    pub tls: Arc<rustls::ClientConfig>,
    pub tunnel_if: String,
    /// Where names are asked ([`crate::resolver_address`]);
    /// `None`: nowhere (a name target fails, the DNS check too).
    pub resolver: Option<SocketAddr>,
}

/// Runs checks forever, publishing each verdict (after the small check, so
/// a dead tunnel shows at once, and again after a full check).
pub async fn run_checks(
    checks: Checks,
    mut tunnel: watch::Receiver<Option<super::TunnelHandle>>,
    out: watch::Sender<Health>,
) {
    let publish = |h: Health| {
        out.send_if_modified(|old| {
            if *old != h {
                tracing::info!(healthy = h.healthy, "health: {}", h.reason);
                *old = h;
                true
            } else {
                false
            }
        });
    };
    let resolver = match checks.resolver.map(target_resolver) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            tracing::error!("health: no resolver for the full check's names: {e}");
            None
        }
        None => None,
    };
    let full_timeout = (checks.interval * 2).clamp(Duration::from_secs(2), Duration::from_secs(10));
    let mut tick = tokio::time::interval(checks.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut full: Option<(Instant, CheckResult)> = None;
    loop {
        tick.tick().await;
        // A new (or no) tunnel: its checks start over.
        if tunnel.has_changed().unwrap_or(false) {
            tunnel.borrow_and_update();
            full = None;
        }
        let status = tunnel.borrow().as_ref().map(|t| t.status.borrow().clone());
        if status.is_none() {
            publish(verdict(None, SystemTime::now(), None, None));
            continue;
        }
        let tries = small_tries(checks.interval);
        let s = match &checks.small {
            SmallCheck::Icmp(ips) => {
                first_success(ips, |ip| ping(*ip, &checks.tunnel_if, tries)).await
            }
            SmallCheck::Dns => match checks.resolver {
                Some(r) => dns_check(r, tries).await,
                None => Err(CheckError::NoResolver),
            },
        };
        let small_ok = s.is_ok();
        if !small_ok && needs_kick(status.as_ref(), SystemTime::now()) {
            // Re-handshake now rather than at WireGuard's next retry (5 s):
            // a provider that is back is seen at the next check.
            if let Some(t) = tunnel.borrow().as_ref() {
                t.kick.notify_one();
            }
        }
        let small = Some(s);
        publish(verdict(
            status.as_ref(),
            SystemTime::now(),
            small.as_ref(),
            full.as_ref().map(|(_, r)| r),
        ));
        let due = match &full {
            None => true,
            Some((_, Err(_))) => true,
            Some((at, Ok(_))) => at.elapsed() >= checks.full_interval,
        };
        // A full check while the small one fails would only time out.
        if small_ok && due {
            let r = match &resolver {
                None => Err(CheckError::NoTargetResolver),
                Some(res) => {
                    first_success(&checks.targets, |t| {
                        tls_dial(
                            t.clone(),
                            &checks.tunnel_if,
                            checks.tls.clone(),
                            res,
                            full_timeout,
                        )
                    })
                    .await
                }
            };
            full = Some((Instant::now(), r));
            let status = tunnel.borrow().as_ref().map(|t| t.status.borrow().clone());
            publish(verdict(
                status.as_ref(),
                SystemTime::now(),
                small.as_ref(),
                full.as_ref().map(|(_, r)| r),
            ));
        }
    }
}

/// Serves the verdict: 200 or 500, the reason in the body, on an already
/// bound listener (binding first makes a taken address an error at start,
/// not a silent task death), within the gateway's limits
/// ([`super::http_server::Limits::GATEWAY`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: watch::Receiver<Health>,
) -> std::io::Result<()> {
    let app = Router::new().fallback(move || {
        let h = health.borrow().clone();
        async move {
            let code = if h.healthy {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                code,
                format!(
                    "{}: {}\n",
                    if h.healthy { "healthy" } else { "unhealthy" },
                    h.reason
                ),
            )
        }
    });
    super::http_server::serve(
        "health server",
        listener,
        app,
        super::http_server::Limits::GATEWAY,
    )
    .await
}

/// `leakhound gateway healthcheck`: asks the health server; Ok(true) when
/// it says healthy, with its reason.
pub async fn ask(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(bool, String), leakhound_net::httpc::HttpError> {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let r = leakhound_net::httpc::Request::new("GET", target.to_string(), "/")
        .agent("leakhound-healthcheck")
        .max_body(64 * 1024)
        .timeout(timeout)
        .send(tokio::net::TcpStream::connect(target))
        .await?;
    Ok((r.status == 200, r.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(ago: u64) -> TunnelStatus {
        TunnelStatus {
            handshakes: 1,
            last_handshake: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - ago)),
            ..Default::default()
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn healthy_needs_a_fresh_session_and_both_checks() {
        let ok: CheckResult = Ok("192.0.2.80 answered".into());
        let bad: CheckResult = Err(CheckError::NoEchoReply {
            tries: 3,
            after: Duration::from_millis(1500),
        });
        assert!(verdict(Some(&up(10)), now(), Some(&ok), Some(&ok)).healthy);
        let h = verdict(Some(&up(10)), now(), Some(&bad), Some(&ok));
        assert!(
            !h.healthy && h.reason == "small check: no ICMP echo reply to 3 tries within 1.5s",
            "{}",
            h.reason
        );
        let h = verdict(Some(&up(10)), now(), Some(&ok), Some(&bad));
        assert!(
            !h.healthy && h.reason.starts_with("full check:"),
            "{}",
            h.reason
        );
        // Not run yet since the tunnel came up: not healthy yet.
        assert!(!verdict(Some(&up(10)), now(), Some(&ok), None).healthy);
        assert!(!verdict(Some(&up(10)), now(), None, Some(&ok)).healthy);
        let h = verdict(Some(&up(200)), now(), Some(&ok), Some(&ok));
        assert!(!h.healthy && h.reason.contains("200s ago"), "{}", h.reason);
        assert_eq!(
            verdict(None, now(), Some(&ok), Some(&ok)).reason,
            "the tunnel is down"
        );
        let fresh = TunnelStatus::default();
        assert!(!verdict(Some(&fresh), now(), Some(&ok), Some(&ok)).healthy);
    }

    #[tokio::test]
    async fn one_answering_target_is_enough_and_failures_are_all_named() {
        let targets = ["a", "b", "c"];
        let mut asked = Vec::new();
        let silent = || CheckError::TlsTimeout(Duration::from_secs(2));
        let r = first_success(&targets, |t| {
            asked.push(t.to_string());
            let r = if *t == "b" {
                Ok("b answered".into())
            } else {
                Err(silent())
            };
            std::future::ready(r)
        })
        .await;
        assert_eq!(r.unwrap(), "b answered");
        assert_eq!(asked, ["a", "b"]);
        let r = first_success(&targets, |_| std::future::ready(Err(silent()))).await;
        let e = r.unwrap_err();
        assert!(
            matches!(&e, CheckError::AllFailed(f) if f.len() == 3),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "a: no TLS handshake within 2s; b: no TLS handshake within 2s; c: no TLS handshake within 2s"
        );
        let none: [&str; 0] = [];
        assert!(
            first_success(&none, |_| std::future::ready(Err(silent())))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_healthcheck_reads_the_verdict_or_says_why_there_is_none() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let body = "unhealthy: the tunnel is down\n";
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        });
        let (healthy, reason) = ask(addr, Duration::from_secs(5)).await.unwrap();
        assert!(!healthy);
        assert_eq!(reason, "unhealthy: the tunnel is down");
        // Where nothing listens: the connection's own error.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = ask(addr, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(e, leakhound_net::httpc::HttpError::Connect(_)),
            "{e:?}"
        );
    }

    #[test]
    fn a_dns_check_says_what_the_resolver_answered() {
        let e = CheckError::NoDnsAnswer {
            last: Some(hickory_proto::op::ResponseCode::ServFail),
            name: "x.health.example.com.".into(),
            after: Duration::from_millis(300),
        };
        assert_eq!(
            e.to_string(),
            "the resolver answered Server Failure for x.health.example.com. within 300ms"
        );
        let e = CheckError::NoDnsAnswer {
            last: None,
            name: "x.".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(e.to_string(), "no answer for x. within 1s");
    }

    #[tokio::test]
    async fn a_socket_on_an_interface_that_is_none_names_it() {
        let e = tunnel_tcp_socket("192.0.2.1".parse().unwrap(), "lh-nonexist0").unwrap_err();
        assert!(matches!(e, SocketError::Bind { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("binding to lh-nonexist0: "),
            "{e}"
        );
    }

    #[test]
    fn a_failing_check_forces_a_handshake_only_without_a_recent_one() {
        assert!(needs_kick(Some(&TunnelStatus::default()), now()));
        assert!(needs_kick(Some(&up(31)), now()));
        assert!(!needs_kick(Some(&up(10)), now()));
        assert!(!needs_kick(None, now()));
    }

    #[test]
    fn small_check_tries_grow_and_fit_one_interval() {
        let t = small_tries(Duration::from_secs(2));
        assert!(t[0] < t[1] && t[1] < t[2]);
        let sum: Duration = t.iter().sum();
        assert!(
            sum <= Duration::from_secs(2) && sum > Duration::from_millis(1999),
            "{sum:?}"
        );
        assert_eq!(
            small_tries(Duration::from_millis(100))[0],
            Duration::from_millis(100)
        );
    }
}
