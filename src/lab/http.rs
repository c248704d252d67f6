//! A small logging HTTP server for lab services (whoami, the dependents'
//! stand-ins): binds inside a namespace, answers every request with a body
//! computed from the caller's address, and logs each request with its source.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::service_log::ServiceLog;

/// Serves on every address in `listen` inside `ns` until `cancel`.
pub fn serve(
    ns: &Netns,
    service: &'static str,
    listen: &[SocketAddr],
    log: ServiceLog,
    cancel: CancellationToken,
    body: impl Fn(SocketAddr) -> String + Send + Sync + 'static,
) -> Result<(), LabError> {
    let body = Arc::new(body);
    for &addr in listen {
        let listener = self::listen(ns, service, addr)?;
        let body = body.clone();
        let app = answering(service, addr, log.clone(), move |peer| body(peer));
        spawn(listener, app, cancel.clone(), service, addr);
    }
    Ok(())
}

/// A router whose every request is logged as `service` with its source
/// and answered with `body(caller)`, readable from any origin (the browser
/// probe's page, on the gateway's loopback, reads whoami's). Services add
/// their own routes in front of it.
pub(crate) fn answering(
    service: &'static str,
    addr: SocketAddr,
    log: ServiceLog,
    body: impl Fn(SocketAddr) -> String + Send + Sync + 'static,
) -> Router {
    let body = Arc::new(body);
    Router::new().fallback(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
            let (log, body) = (log.clone(), body.clone());
            async move {
                log.record(
                    service,
                    peer,
                    format!("{} {} on {addr}", req.method(), req.uri()),
                );
                (
                    [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
                    body(peer),
                )
            }
        },
    )
}

/// Serves `app` on `listener` until `cancel`, each request knowing its
/// caller's address.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    app: Router,
    cancel: CancellationToken,
    service: &'static str,
    addr: SocketAddr,
) {
    tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(cancel.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::warn!("{service} on {addr}: {e}");
        }
    });
}

/// A TCP listener on `addr` inside `ns`, for the runtime (every lab HTTP
/// server binds through this).
pub(crate) fn listen(
    ns: &Netns,
    service: &str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, LabError> {
    let err = |source| LabError::Service {
        service: service.to_string(),
        source,
    };
    let l = ns.run(move || bind(addr))?.map_err(err)?;
    tokio::net::TcpListener::from_std(l).map_err(err)
}

/// A listening socket; IPv6 ones are IPv6-only so `[::]:P` and `0.0.0.0:P`
/// can both be bound.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}
