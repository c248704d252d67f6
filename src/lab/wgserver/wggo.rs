//! Debian's wireguard-go as the VPN provider's server: started in the `vpn`
//! host with a private /run (so its UAPI socket never meets another run's),
//! configured and read over that socket (reached through the process's own
//! mount namespace, `/proc/<pid>/root/run/wireguard/`), its status watched
//! from outside: handshakes and the peer's endpoint from UAPI, every
//! datagram's source from an AF_PACKET watch on the provider's uplink (also
//! while it is "not answering", which is an nftables drop in front of it).

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{TUN_NAME, WgServerSpec};
use crate::capture::Watch;
use crate::lab::netns::Netns;
use crate::lab::uapi;
use crate::lab::{Lab, LabError, nft_in};
use crate::model::topology::host;
use crate::model::verdict::endpoints;
use crate::poll::poll_until;
use crate::tunnel::TunnelStatus;

const SERVICE: &str = "wireguard-go provider";
/// The provider's uplink inside the `vpn` host (its link toward the ISP).
const UPLINK: &str = "isp";
/// The table that makes the provider stop answering.
const PAUSE_TABLE: &str = "lh-provider-pause";
/// How often the peer's state is read.
const POLL: Duration = Duration::from_millis(10);
/// How long wireguard-go may take to open its UAPI socket.
const START_WITHIN: Duration = Duration::from_secs(10);

pub struct WgGo {
    child: tokio::process::Child,
    uapi: PathBuf,
    ns: Netns,
    peer_lines: Vec<String>,
    public_hex: String,
    /// The client key the server accepts now (after a rotation, not the
    /// one it started with).
    current_hex: Arc<std::sync::Mutex<String>>,
    listen_port: u16,
    cancel: CancellationToken,
    _watch: Watch,
}

fn service_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LabError {
    LabError::Service {
        service: SERVICE.into(),
        source: std::io::Error::other(e),
    }
}

/// The source of a UDP datagram to `listen` in an Ethernet frame. Pure; it
/// runs for every frame on the provider's uplink, so it parses in place.
pub fn datagram_source(frame: &[u8], listen: SocketAddr) -> Option<SocketAddr> {
    match endpoints(frame)? {
        (src, dst, Some((sport, dport))) if dst == listen.ip() && dport == listen.port() => {
            Some(SocketAddr::new(src, sport))
        }
        _ => None,
    }
}

impl WgGo {
    pub async fn start(
        lab: &Lab,
        spec: &WgServerSpec,
    ) -> Result<(WgGo, watch::Receiver<TunnelStatus>), LabError> {
        let ns = lab.ns(host::VPN)?.try_clone()?;
        let log_path = crate::lab::netns::run_files(lab.run_id()).join("provider-wireguard-go.log");
        let mut child = spawn(lab, &ns, &log_path)?;
        let pid = child
            .id()
            .ok_or_else(|| service_err("wireguard-go exited at once"))?;
        let uapi = PathBuf::from(format!("/proc/{pid}/root/run/wireguard/{TUN_NAME}.sock"));
        // Ready when its UAPI socket answers (it opens it after the TUN).
        let (uapi_ref, log_ref) = (&uapi, &log_path);
        let ready = poll_until(START_WITHIN, Duration::from_millis(5), || {
            // Looked at before asking: an exit while it is asked shows on
            // the next attempt.
            let exited = child.try_wait();
            async move {
                if uapi::get(uapi_ref).await.is_ok() {
                    return ControlFlow::Break(Ok(()));
                }
                if let Ok(Some(status)) = exited {
                    let tail = std::fs::read_to_string(log_ref).unwrap_or_default();
                    return ControlFlow::Break(Err(service_err(format!(
                        "wireguard-go exited ({status}) before opening its UAPI socket: {}",
                        tail.trim()
                    ))));
                }
                ControlFlow::Continue(())
            }
        })
        .await;
        match ready {
            Ok(r) => r?,
            Err(()) => {
                return Err(service_err(format!(
                    "wireguard-go did not open {} within {START_WITHIN:?}",
                    uapi.display()
                )));
            }
        }
        let public_hex = uapi::hex(&spec.client_public);
        let peer_lines = configure(&uapi, spec, &public_hex).await?;
        set_up_tun(lab, spec).await?;

        let (tx, rx) = watch::channel(TunnelStatus::default());
        let tx = Arc::new(tx);
        let listen = spec.listen;
        let t = tx.clone();
        let watch = Watch::start(&ns, UPLINK, move |frame, _| {
            if let Some(from) = datagram_source(frame, listen) {
                t.send_if_modified(|s| {
                    let changed = s.last_datagram_from != Some(from);
                    s.last_datagram_from = Some(from);
                    changed
                });
            }
        })
        .map_err(service_err)?;
        let cancel = CancellationToken::new();
        let current_hex = Arc::new(std::sync::Mutex::new(public_hex.clone()));
        tokio::spawn(watch_peer(
            cancel.clone(),
            uapi.clone(),
            current_hex.clone(),
            tx,
        ));
        Ok((
            WgGo {
                child,
                uapi,
                ns,
                peer_lines,
                current_hex,
                public_hex,
                listen_port: listen.port(),
                cancel,
                _watch: watch,
            },
            rx,
        ))
    }

    pub fn stop(&self) {
        self.cancel.cancel();
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Removes the peer and adds it again: its session and the last
    /// TAI64N timestamp it accepted are gone, as after a server restart.
    pub async fn forget_peer(&self) -> Result<(), LabError> {
        let start = self.public_hex.clone();
        self.replace_peer(&start).await
    }

    /// Accepts the client's key `public` from now on; the key accepted
    /// before is removed with its session.
    pub async fn set_peer(&self, public: &[u8; 32]) -> Result<(), LabError> {
        self.replace_peer(&uapi::hex(public)).await
    }

    async fn replace_peer(&self, new_hex: &str) -> Result<(), LabError> {
        let old = self
            .current_hex
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        uapi::set(
            &self.uapi,
            &[format!("public_key={old}"), "remove=true".into()],
        )
        .await
        .map_err(service_err)?;
        let mut lines = self.peer_lines.clone();
        lines[0] = format!("public_key={new_hex}");
        uapi::set(&self.uapi, &lines).await.map_err(service_err)?;
        *self.current_hex.lock().unwrap_or_else(|e| e.into_inner()) = new_hex.to_string();
        Ok(())
    }

    /// Not answering: an nftables drop of the WireGuard port, both ways,
    /// in front of wireguard-go (the watch on the uplink still sees what
    /// arrives). Idempotent.
    pub fn set_answering(&self, on: bool) -> Result<(), LabError> {
        let port = self.listen_port;
        let rules = if on {
            format!("table inet {PAUSE_TABLE} {{}}\ndelete table inet {PAUSE_TABLE}\n")
        } else {
            format!(
                "table inet {PAUSE_TABLE} {{}}\ndelete table inet {PAUSE_TABLE}\n\
                 table inet {PAUSE_TABLE} {{\n\
                   chain in {{ type filter hook input priority -300; udp dport {port} drop; }}\n\
                   chain out {{ type filter hook output priority -300; udp sport {port} drop; }}\n\
                 }}\n"
            )
        };
        nft_in(&self.ns, &rules).map_err(|source| LabError::Nft {
            host: host::VPN.to_string(),
            source,
        })
    }
}

/// wireguard-go in the `vpn` host with a private /run (the run's files stay
/// visible: the resolv.conf bound in is one), its output to `log_path`.
fn spawn(
    lab: &Lab,
    ns: &Netns,
    log_path: &std::path::Path,
) -> Result<tokio::process::Child, LabError> {
    let run_dir = crate::lab::netns::run_files(lab.run_id());
    let log = std::fs::File::create(log_path).map_err(|source| LabError::Service {
        service: SERVICE.into(),
        source,
    })?;
    let log2 = log.try_clone().map_err(|source| LabError::Service {
        service: SERVICE.into(),
        source,
    })?;
    let mut cmd = std::process::Command::new("wireguard-go");
    cmd.args(["-f", TUN_NAME])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    ns.command_with_private_run(&mut cmd, &lab.resolv_conf(host::VPN), &[&run_dir])?;
    tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            service_err(format!(
                "cannot run wireguard-go ({e}); install it (ci/setup.sh does)"
            ))
        })
}

/// The server's key and port and its one peer (the gateway, whose public
/// key is `public_hex`), set over UAPI; returns the peer's lines, to add it
/// again later.
async fn configure(
    uapi: &std::path::Path,
    spec: &WgServerSpec,
    public_hex: &str,
) -> Result<Vec<String>, LabError> {
    let mut peer_lines = vec![format!("public_key={public_hex}")];
    if let Some(psk) = &spec.psk {
        peer_lines.push(format!("preshared_key={}", uapi::hex(psk)));
    }
    peer_lines.push("replace_allowed_ips=true".into());
    for a in &spec.client_allowed {
        peer_lines.push(format!("allowed_ip={a}"));
    }
    let mut lines = vec![
        format!("private_key={}", uapi::hex(&spec.private)),
        format!("listen_port={}", spec.listen.port()),
        "replace_peers=true".into(),
    ];
    lines.extend(peer_lines.iter().cloned());
    uapi::set(uapi, &lines).await.map_err(service_err)?;
    Ok(peer_lines)
}

/// The TUN device's MTU and addresses, and up.
async fn set_up_tun(lab: &Lab, spec: &WgServerSpec) -> Result<(), LabError> {
    let nl = lab.nl(host::VPN)?;
    let netlink = |source| LabError::Netlink {
        host: host::VPN.to_string(),
        source,
    };
    nl.set_mtu(TUN_NAME, u32::from(spec.mtu))
        .await
        .map_err(netlink)?;
    for a in &spec.tun_addrs {
        nl.add_addr(TUN_NAME, *a).await.map_err(netlink)?;
    }
    nl.set_up(TUN_NAME).await.map_err(netlink)
}

/// Reads the peer whose key is `current` over UAPI every [`POLL`] until
/// `cancel`: its handshakes, endpoint and byte counts go to `tx`.
async fn watch_peer(
    cancel: CancellationToken,
    uapi: PathBuf,
    current: Arc<std::sync::Mutex<String>>,
    tx: Arc<watch::Sender<TunnelStatus>>,
) {
    let mut last = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let Ok(peers) = uapi::get(&uapi).await else {
            continue;
        };
        // The client key accepted now (a rotation changes it).
        let key = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(p) = peers.into_iter().find(|p| p.public_key == key) else {
            // Forgotten and not yet re-added: no session, no handshake.
            last = None;
            continue;
        };
        tx.send_if_modified(|s| {
            let mut changed = false;
            if p.last_handshake.is_some() && p.last_handshake != last {
                s.handshakes += 1;
                s.last_handshake = p.last_handshake;
                changed = true;
            }
            if p.endpoint.is_some() && s.peer != p.endpoint {
                s.peer = p.endpoint;
                changed = true;
            }
            let (rx, tx) = (p.rx_bytes as usize, p.tx_bytes as usize);
            if (s.rx_bytes, s.tx_bytes) != (rx, tx) {
                (s.rx_bytes, s.tx_bytes) = (rx, tx);
                changed = true;
            }
            changed
        });
        last = p.last_handshake;
    }
}

impl Drop for WgGo {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
        let (src, dst): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
            (src.parse().unwrap(), dst.parse().unwrap());
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12] = 0x08; // IPv4
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&28u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let udp = &mut f[34..];
        udp[0..2].copy_from_slice(&sport.to_be_bytes());
        udp[2..4].copy_from_slice(&dport.to_be_bytes());
        udp[4..6].copy_from_slice(&8u16.to_be_bytes());
        f
    }

    #[test]
    fn only_datagrams_to_the_provider_port_name_a_source() {
        let listen: SocketAddr = "203.0.113.10:51820".parse().unwrap();
        let to = frame("198.51.100.2", "203.0.113.10", 40000, 51820);
        assert_eq!(
            datagram_source(&to, listen),
            Some("198.51.100.2:40000".parse().unwrap())
        );
        // The provider's own answers, other ports, other addresses: no.
        let back = frame("203.0.113.10", "198.51.100.2", 51820, 40000);
        assert_eq!(datagram_source(&back, listen), None);
        let other = frame("198.51.100.2", "203.0.113.10", 40000, 53);
        assert_eq!(datagram_source(&other, listen), None);
        let elsewhere = frame("198.51.100.2", "203.0.113.11", 40000, 51820);
        assert_eq!(datagram_source(&elsewhere, listen), None);
        assert_eq!(datagram_source(&[0u8; 10], listen), None);
    }
}
