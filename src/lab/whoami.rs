//! whoami: an HTTP server on the lab's "internet" (192.0.2.80 and
//! 2001:db8:80::80) that answers every request with the caller's source
//! address and logs it. 203.0.113.77 means the request came through the
//! tunnel; 198.51.100.2 means it leaked out of the home uplink. The same
//! host speaks TLS on 443 (`whoami-tls`, certificate for whoami.lab from
//! the lab's CA): the gateway's full health check completes its handshake
//! there, and each handshake is logged with its source.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::service_log::ServiceLog;

pub const SERVICE: &str = crate::model::topology::service::WHOAMI;
pub const TLS_SERVICE: &str = crate::model::topology::service::WHOAMI_TLS;
/// The name on whoami's TLS certificate (the lab's resolvers answer it, as
/// every name, with whoami's addresses); the certificate's module owns it.
pub const TLS_NAME: &str = super::tls::WHOAMI_NAME;

/// Serves whoami on every address in `listen` inside `ns` until `cancel`:
/// every path answers the caller's address, except these:
/// - `GET /json`: `{"ip": ADDRESS}`, as echoip answers (Gluetun's
///   `PUBLICIP_API=echoip#http://...` asks it);
/// - two that an audit profile names (what public leak-test sites offer):
/// - `GET /leakhound/dns-leak/NONCE`: JSON, the addresses from which the
///   lab's DNS servers (plain, DoT, DoH, on every side) were asked a name
///   carrying NONCE, with the server that heard each;
/// - `GET /leakhound/probe?port=N`: connects from whoami's host to the
///   caller's address at port N (3 s) and answers JSON `{"open": bool}`:
///   a forwarded port's outside prober.
pub fn start(
    ns: &Netns,
    listen: &[SocketAddr],
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    use axum::extract::{ConnectInfo, Path, Query};
    use axum::routing::get;
    for &addr in listen {
        let listener = super::http::listen(ns, SERVICE, addr)?;
        let (leak_log, probe_log, json_log) = (log.clone(), log.clone(), log.clone());
        let prober_ns = std::sync::Arc::new(ns.try_clone()?);
        let app = super::http::answering(SERVICE, addr, log.clone(), |peer| {
            format!("{}\n", peer.ip())
        })
        .route(
            "/leakhound/dns-leak/{nonce}",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>, Path(nonce): Path<String>| {
                    let log = leak_log.clone();
                    async move {
                        log.record(SERVICE, peer, format!("GET dns-leak results for {nonce}"));
                        axum::Json(dns_askers(&log, &nonce))
                    }
                },
            ),
        )
        .route(
            "/json",
            get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
                let log = json_log.clone();
                async move {
                    log.record(SERVICE, peer, "GET /json".to_string());
                    axum::Json(serde_json::json!({ "ip": peer.ip().to_string() }))
                }
            }),
        )
        .route(
            "/leakhound/probe",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      Query(q): Query<std::collections::BTreeMap<String, String>>| {
                    let log = probe_log.clone();
                    let ns = prober_ns.clone();
                    async move {
                        let port = q.get("port").and_then(|p| p.parse::<u16>().ok());
                        let Some(port) = port.filter(|&p| p != 0) else {
                            return (
                                axum::http::StatusCode::BAD_REQUEST,
                                "port=N (1-65535) wanted\n".to_string(),
                            );
                        };
                        let target = SocketAddr::new(peer.ip(), port);
                        let open = probe(&ns, target).await;
                        log.record(
                            SERVICE,
                            peer,
                            format!(
                                "probe of {target}: {}",
                                if open { "open" } else { "closed" }
                            ),
                        );
                        (
                            axum::http::StatusCode::OK,
                            serde_json::json!({"address": target.to_string(), "open": open})
                                .to_string(),
                        )
                    }
                },
            ),
        );
        super::http::spawn(listener, app, cancel.clone(), SERVICE, addr);
    }
    Ok(())
}

/// The lab's DNS services, whose logs say who asked for which name.
const DNS_SERVICES: [&str; 6] = {
    use crate::model::topology::service::*;
    [ISP_DNS, PROVIDER_DNS, LAN_DNS, DOT, DOH, PROVIDER_DOT]
};

/// Who asked the lab's DNS servers for a name carrying `nonce`.
fn dns_askers(log: &ServiceLog, nonce: &str) -> serde_json::Value {
    let mut seen = Vec::new();
    for service in DNS_SERVICES {
        for e in log.find(service, nonce) {
            let entry = serde_json::json!({"ip": e.source.ip().to_string(), "server": service});
            if !seen.contains(&entry) {
                seen.push(entry);
            }
        }
    }
    serde_json::json!({ "resolvers": seen })
}

/// A TCP connection to `target` from whoami's host: open or not (3 s).
async fn probe(ns: &Netns, target: SocketAddr) -> bool {
    let Ok(Ok(socket)) = ns.run(move || {
        if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
    }) else {
        return false;
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), socket.connect(target)).await,
        Ok(Ok(_))
    )
}

/// TLS on every address in `listen`: completes the handshake, logs it,
/// writes the caller's address and closes.
pub fn start_tls(
    ns: &Netns,
    listen: &[SocketAddr],
    tls: &super::tls::LabTls,
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    for &addr in listen {
        let log = log.clone();
        super::encrypted_dns::serve_tls(
            ns,
            TLS_SERVICE,
            addr,
            tls,
            &[],
            cancel.clone(),
            move |mut s, peer| {
                let log = log.clone();
                async move {
                    use tokio::io::AsyncWriteExt;
                    log.record(TLS_SERVICE, peer, format!("TLS handshake on {addr}"));
                    let _ = s.write_all(format!("{}\n", peer.ip()).as_bytes()).await;
                    let _ = s.shutdown().await;
                }
            },
        )?;
    }
    Ok(())
}
