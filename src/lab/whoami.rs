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
use super::services::ServiceLog;

pub const SERVICE: &str = crate::model::topology::service::WHOAMI;
pub const TLS_SERVICE: &str = crate::model::topology::service::WHOAMI_TLS;
/// The name on whoami's TLS certificate (the lab's resolvers answer it, as
/// every name, with whoami's addresses).
pub const TLS_NAME: &str = "whoami.lab";

/// Serves whoami on every address in `listen` inside `ns` until `cancel`.
pub fn start(
    ns: &Netns,
    listen: &[SocketAddr],
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    super::http::serve(ns, SERVICE, listen, log, cancel, |peer| {
        format!("{}\n", peer.ip())
    })
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
