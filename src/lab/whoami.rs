//! whoami: an HTTP server on the lab's "internet" (192.0.2.80 and
//! 2001:db8:80::80) that answers every request with the caller's source
//! address and logs it. 203.0.113.77 means the request came through the
//! tunnel; 198.51.100.2 means it leaked out of the home uplink.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::services::ServiceLog;

pub const SERVICE: &str = "whoami";

/// Serves whoami on every address in `listen` inside `ns` until `cancel`.
pub fn start(
    ns: &Netns,
    listen: &[SocketAddr],
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    let err = |source| LabError::Service {
        service: SERVICE.to_string(),
        source,
    };
    for &addr in listen {
        let std_listener = ns
            .run(move || -> std::io::Result<_> {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            })?
            .map_err(err)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(err)?;
        let log = log.clone();
        let app = Router::new().fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
                let log = log.clone();
                async move {
                    log.record(SERVICE, peer, format!("{} {}", req.method(), req.uri()));
                    format!("{}\n", peer.ip())
                }
            },
        );
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(cancel.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!("whoami on {addr}: {e}");
            }
        });
    }
    Ok(())
}
