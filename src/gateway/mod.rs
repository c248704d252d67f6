//! The gateway under test (`leakhound gateway`): a separate process, started
//! inside the `gw` namespace and configured only by Gluetun's environment
//! variables. It brings up a TUN device, drives the boringtun tunnel to the
//! provider, routes the default route through it and keeps only the endpoint
//! (and FIREWALL_OUTBOUND_SUBNETS) on the underlay.
//!
//! Order at start: configuration is parsed completely before anything is
//! touched, so bad input never leaves a half-configured gateway.

pub mod config;
pub mod firewall;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::netlink::{NetlinkError, Nl};
use crate::tunnel::{Driver, DriverConfig};
pub use config::{ConfigError, GatewayConfig};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuring the network")]
    Netlink(#[from] NetlinkError),
    #[error("no default route on the underlay: the gateway cannot find its way to {0}")]
    NoUnderlay(IpAddr),
    #[error("creating the tunnel device {name}")]
    Tun {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the tunnel's UDP socket")]
    Udp(#[source] std::io::Error),
    #[error("the tunnel stopped")]
    Tunnel(#[source] std::io::Error),
}

/// The underlay path to the endpoint, as found before the tunnel takes over
/// the default route.
struct Underlay {
    gateway: Option<IpAddr>,
    oif: Option<u32>,
}

async fn underlay_for(nl: &Nl, dst: IpAddr) -> Result<Underlay, GatewayError> {
    let routes = nl.routes(dst.is_ipv6()).await?;
    routes
        .iter()
        .filter(|r| r.dst.contains(&dst))
        .max_by_key(|r| r.dst.prefix_len())
        .map(|r| Underlay {
            gateway: r.gateway,
            oif: r.oif,
        })
        .ok_or(GatewayError::NoUnderlay(dst))
}

/// 0.0.0.0/0 or ::/0 (`IpNet::from(addr)` would be a host route).
fn default_route(v6: bool) -> IpNet {
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    IpNet::new(any, 0).expect("prefix 0 is valid")
}

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(cfg: GatewayConfig) -> Result<(), GatewayError> {
    let nl = Nl::here()?;
    let underlay = underlay_for(&nl, cfg.endpoint.ip()).await?;

    let tun = tun_rs::DeviceBuilder::new()
        .name(&cfg.interface)
        .mtu(cfg.mtu)
        .build_async()
        .map_err(|source| GatewayError::Tun {
            name: cfg.interface.clone(),
            source,
        })?;
    for a in &cfg.addresses {
        nl.add_addr(&cfg.interface, *a).await?;
    }
    nl.set_up(&cfg.interface).await?;

    // The endpoint (and the outbound subnets) stay on the underlay.
    let ep_net = IpNet::from(cfg.endpoint.ip());
    nl.replace_route_idx(ep_net, underlay.gateway, underlay.oif)
        .await?;
    for s in &cfg.outbound_subnets {
        if s.addr().is_ipv4() == cfg.endpoint.is_ipv4() {
            nl.replace_route_idx(*s, underlay.gateway, underlay.oif)
                .await?;
        }
    }
    // Everything else goes into the tunnel.
    nl.replace_route(default_route(false), None, Some(&cfg.interface))
        .await?;
    if cfg.has_ipv6() {
        nl.replace_route(default_route(true), None, Some(&cfg.interface))
            .await?;
    } else {
        // An IPv4-only tunnel: no IPv6 default route at all, so nothing is
        // routed out of the underlay by accident.
        for r in nl.routes(true).await? {
            if r.dst.prefix_len() == 0 {
                nl.del_route(&r).await?;
            }
        }
    }

    let bind: SocketAddr = if cfg.endpoint.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let udp = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(GatewayError::Udp)?;
    let (driver, mut status) = Driver::new(
        cfg.private_key,
        cfg.public_key,
        cfg.preshared_key,
        cfg.keepalive,
        DriverConfig {
            endpoint: Some(cfg.endpoint),
            allowed_src: vec![default_route(false), default_route(true)],
        },
    );
    let cancel = CancellationToken::new();
    let tunnel = tokio::spawn(driver.run(Arc::new(tun), Arc::new(udp), cancel.clone()));
    tracing::info!(
        endpoint = %cfg.endpoint,
        interface = %cfg.interface,
        "tunnel started; default route through {}",
        cfg.interface
    );

    let mut term = signal(SignalKind::terminate()).map_err(GatewayError::Udp)?;
    let mut int = signal(SignalKind::interrupt()).map_err(GatewayError::Udp)?;
    let mut tunnel = tunnel;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            changed = status.changed() => {
                if changed.is_err() { break }
                let s = status.borrow_and_update().clone();
                tracing::debug!(handshakes = s.handshakes, rejected = s.rejected, "tunnel status");
            }
            r = &mut tunnel => {
                return match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(GatewayError::Tunnel(e)),
                    Err(e) => Err(GatewayError::Tunnel(std::io::Error::other(e))),
                };
            }
        }
    }
    tracing::info!("stopping");
    cancel.cancel();
    let _ = tunnel.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_cover_everything() {
        assert_eq!(default_route(false).to_string(), "0.0.0.0/0");
        assert_eq!(default_route(true).to_string(), "::/0");
        assert!(default_route(false).contains(&"192.0.2.80".parse::<IpAddr>().unwrap()));
    }
}
