//! The VPN provider's WireGuard server (boringtun, via [`crate::tunnel`]) in
//! the `vpn` host: UDP 203.0.113.10:51820, a TUN device `wg-srv` with the
//! tunnel's server addresses, and (from the topology's NAT) SNAT of the
//! clients to the exit address 203.0.113.77.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Lab, LabError};
use crate::model::topology::host;
use crate::tunnel::{Driver, DriverConfig, TunnelStatus};

pub const SERVICE: &str = "wireguard";
pub const TUN_NAME: &str = "wg-srv";

pub struct WgServerSpec {
    pub private: [u8; 32],
    pub client_public: [u8; 32],
    pub psk: Option<[u8; 32]>,
    pub listen: SocketAddr,
    pub tun_addrs: Vec<IpNet>,
    /// Inner addresses the client may use.
    pub client_allowed: Vec<IpNet>,
    pub mtu: u16,
}

/// Which WireGuard implementation plays the VPN provider's server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// boringtun inside the harness (the default): pausable and able to
    /// forget its peer without a restart, with counts of refused datagrams.
    #[default]
    Boringtun,
    /// Debian's wireguard-go, configured over its UAPI socket: the gateway
    /// proven against a second, independent WireGuard implementation.
    WireguardGo,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProviderKind::Boringtun => "boringtun",
            ProviderKind::WireguardGo => "wireguard-go",
        })
    }
}

/// A running provider server; its status tells whether the gateway has
/// completed a handshake and how many datagrams it refused.
pub struct WgServer {
    pub status: watch::Receiver<TunnelStatus>,
    pub kind: ProviderKind,
    backend: Backend,
}

enum Backend {
    Boringtun {
        cancel: CancellationToken,
        paused: Arc<AtomicBool>,
        new_peer: leakhound_net::tunnel::NewPeer,
        /// The client key it started with (restored between scenarios).
        start_peer: [u8; 32],
    },
    WireguardGo(Box<wggo::WgGo>),
}

impl WgServer {
    /// Starts the provider's server of the given kind in the `vpn` host.
    pub async fn start_kind(
        lab: &Lab,
        spec: WgServerSpec,
        kind: ProviderKind,
    ) -> Result<WgServer, LabError> {
        match kind {
            ProviderKind::Boringtun => WgServer::start(lab, spec).await,
            ProviderKind::WireguardGo => {
                let (go, status) = wggo::WgGo::start(lab, &spec).await?;
                Ok(WgServer {
                    status,
                    kind,
                    backend: Backend::WireguardGo(Box::new(go)),
                })
            }
        }
    }

    /// Starts boringtun as the provider's server.
    pub async fn start(lab: &Lab, spec: WgServerSpec) -> Result<WgServer, LabError> {
        let ns = lab.ns(host::VPN)?;
        let err = |source| LabError::Service {
            service: SERVICE.to_string(),
            source,
        };
        let rt = tokio::runtime::Handle::current();
        let listen = spec.listen;
        let mtu = spec.mtu;
        let (tun, udp) = ns
            .run(move || -> std::io::Result<_> {
                let _g = rt.enter();
                let tun = tun_rs::DeviceBuilder::new()
                    .name(TUN_NAME)
                    .mtu(mtu)
                    .offload(true)
                    .build_async()?;
                let udp = std::net::UdpSocket::bind(listen)?;
                udp.set_nonblocking(true)?;
                Ok((tun, tokio::net::UdpSocket::from_std(udp)?))
            })?
            .map_err(err)?;
        let nl = lab.nl(host::VPN)?;
        for a in &spec.tun_addrs {
            nl.add_addr(TUN_NAME, *a)
                .await
                .map_err(|source| LabError::Netlink {
                    host: host::VPN.to_string(),
                    source,
                })?;
        }
        nl.set_up(TUN_NAME)
            .await
            .map_err(|source| LabError::Netlink {
                host: host::VPN.to_string(),
                source,
            })?;
        let paused = Arc::new(AtomicBool::new(false));
        let new_peer: leakhound_net::tunnel::NewPeer = Arc::default();
        let (driver, status) = Driver::new(
            spec.private,
            spec.client_public,
            spec.psk,
            None,
            DriverConfig {
                endpoint: None,
                allowed_src: spec.client_allowed,
                paused: Some(paused.clone()),
                // A provider's server serves many clients; the soak
                // re-handshakes one client dozens of times a second.
                handshake_rate_limit: Some(1000),
                kick: None,
                new_peer: Some(new_peer.clone()),
            },
        );
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            if let Err(e) = driver.run(Arc::new(tun), Arc::new(udp), c).await {
                tracing::error!("provider WireGuard server stopped: {e}");
            }
        });
        Ok(WgServer {
            status,
            kind: ProviderKind::Boringtun,
            backend: Backend::Boringtun {
                cancel,
                paused,
                new_peer,
                start_peer: spec.client_public,
            },
        })
    }

    pub fn stop(&self) {
        match &self.backend {
            Backend::Boringtun { cancel, .. } => cancel.cancel(),
            Backend::WireguardGo(go) => go.stop(),
        }
    }

    /// Forgets the client's session and last handshake timestamp before the
    /// next datagram, as a freshly started server would: between scenarios,
    /// so gateways of different implementations can follow each other.
    /// The client key accepted is the one it started with again.
    pub async fn forget_peer(&self) -> Result<(), LabError> {
        match &self.backend {
            Backend::Boringtun {
                new_peer,
                start_peer,
                ..
            } => {
                *new_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(*start_peer);
                Ok(())
            }
            Backend::WireguardGo(go) => go.forget_peer().await,
        }
    }

    /// The provider side of a key rotation: from now on it accepts the
    /// client's key `public`, and the key it accepted before no longer
    /// handshakes (forgotten with its session).
    pub async fn set_peer(&self, public: [u8; 32]) -> Result<(), LabError> {
        match &self.backend {
            Backend::Boringtun { new_peer, .. } => {
                *new_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(public);
                Ok(())
            }
            Backend::WireguardGo(go) => go.set_peer(&public).await,
        }
    }

    /// A provider that stops answering (false) or comes back (true).
    pub fn set_answering(&self, on: bool) -> Result<(), LabError> {
        match &self.backend {
            Backend::Boringtun { paused, .. } => {
                paused.store(!on, Ordering::Relaxed);
                Ok(())
            }
            Backend::WireguardGo(go) => go.set_answering(on),
        }
    }
}

impl Drop for WgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

mod wggo;
