//! whoami: an HTTP server on the lab's "internet" (192.0.2.80 and
//! 2001:db8:80::80) that answers every request with the caller's source
//! address and logs it. 203.0.113.77 means the request came through the
//! tunnel; 198.51.100.2 means it leaked out of the home uplink.

use std::net::SocketAddr;

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
    super::http::serve(ns, SERVICE, listen, log, cancel, |peer| {
        format!("{}\n", peer.ip())
    })
}
