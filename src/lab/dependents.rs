//! Stand-ins for the download clients that share the gateway's namespace
//! (`network_mode: service:gluetun`): by default qBittorrent's WebUI on
//! 8080, Prowlarr on 9696, NZBGet on 6789; with a user's compose file, one
//! on every port its gateway service publishes. IPv4 and IPv6. Each answers HTTP with its name and
//! logs who reached it, so LAN access (allowed or not) is proven at the far end.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio_util::sync::CancellationToken;

use super::netns::Netns;
use super::service_log::ServiceLog;
use super::{LabError, http};

pub const SERVICE: &str = crate::model::topology::service::DEPENDENTS;

/// (port, the application it stands in for)
pub const STAND_INS: [(u16, &str); 3] =
    [(8080, "qBittorrent"), (9696, "Prowlarr"), (6789, "NZBGet")];

/// The default stand-ins, as `start` takes them.
pub fn default_stand_ins() -> Vec<(u16, String)> {
    STAND_INS.iter().map(|(p, n)| (*p, n.to_string())).collect()
}

pub fn start(
    ns: &Netns,
    stand_ins: &[(u16, String)],
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    for (port, name) in stand_ins {
        let (port, name) = (*port, name.clone());
        let listen = [
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        ];
        http::serve(
            ns,
            SERVICE,
            &listen,
            log.clone(),
            cancel.clone(),
            move |_| format!("{name} stand-in\n"),
        )?;
    }
    Ok(())
}
