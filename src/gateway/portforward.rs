//! VPN port forwarding (VPN_PORT_FORWARDING=on): NAT-PMP to the provider's
//! gateway through the tunnel (the socket is bound to the tunnel interface),
//! a TCP and a UDP mapping, renewed at half their lifetime asking for the
//! same port, again after every tunnel-up. The port is opened on the tunnel
//! interface only (the kill switch is re-applied atomically with it), written
//! to VPN_PORT_FORWARDING_STATUS_FILE, announced to the UP/DOWN commands and
//! served on GET /v1/portforward.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

use super::config::PortForwarding;
use super::firewall::{self, FirewallPolicy};
use super::natpmp::{self, MapRequest, Mapping, Protocol};
use crate::tunnel::TunnelStatus;

/// Lifetime asked for (the provider may grant less).
pub const LIFETIME: u32 = 60;

/// A command with {{PORT}}, {{PORTS}} and {{VPN_INTERFACE}} replaced. Pure.
pub fn render_command(template: &str, port: u16, interface: &str) -> String {
    template
        .replace("{{PORTS}}", &port.to_string())
        .replace("{{PORT}}", &port.to_string())
        .replace("{{VPN_INTERFACE}}", interface)
}

/// One NAT-PMP mapping request through the tunnel.
pub async fn request(
    gateway: IpAddr,
    interface: &str,
    protocol: Protocol,
    suggested: u16,
) -> Result<Mapping, String> {
    let bind: SocketAddr = if gateway.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    let s = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::DGRAM,
        None,
    )
    .map_err(|e| e.to_string())?;
    s.bind_device(Some(interface.as_bytes()))
        .map_err(|e| e.to_string())?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    s.bind(&bind.into()).map_err(|e| e.to_string())?;
    let sock = tokio::net::UdpSocket::from_std(s.into()).map_err(|e| e.to_string())?;
    let to = SocketAddr::new(gateway, natpmp::PORT);
    let req = natpmp::encode_map_request(&MapRequest {
        protocol,
        internal_port: suggested.max(1),
        suggested_external_port: suggested,
        lifetime: LIFETIME,
    });
    sock.send_to(&req, to).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let work = async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
            if from == to {
                return natpmp::decode_mapping(&buf[..n], protocol).map_err(|e| e.to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .map_err(|_| format!("no NAT-PMP answer from {to} within 2s"))?
}

fn run_command(template: &Option<String>, port: u16, interface: &str, what: &str) {
    let Some(t) = template else { return };
    let cmd = render_command(t, port, interface);
    match std::process::Command::new("sh").args(["-c", &cmd]).status() {
        Ok(s) if s.success() => tracing::info!("port forwarding: {what} command done: {cmd}"),
        Ok(s) => tracing::warn!("port forwarding: {what} command failed ({s}): {cmd}"),
        Err(e) => tracing::warn!("port forwarding: {what} command could not run: {e}"),
    }
}

/// Runs forever: keeps a forwarded port while the tunnel is up.
pub async fn run(
    pf: PortForwarding,
    interface: String,
    mut tunnel: watch::Receiver<Option<watch::Receiver<TunnelStatus>>>,
    base_policy: Option<FirewallPolicy>,
    port_tx: watch::Sender<u16>,
) {
    loop {
        if tunnel.wait_for(|t| t.is_some()).await.is_err() {
            return;
        }
        let current = *port_tx.borrow();
        let tcp = request(pf.gateway, &interface, Protocol::Tcp, current).await;
        let udp = match &tcp {
            Ok(m) => request(pf.gateway, &interface, Protocol::Udp, m.external_port).await,
            Err(e) => Err(e.clone()),
        };
        let renew_after = match (tcp, udp) {
            (Ok(t), Ok(u)) => {
                let port = t.external_port;
                if u.external_port != port {
                    tracing::warn!(
                        "port forwarding: TCP got {port}, UDP got {}",
                        u.external_port
                    );
                }
                if port != current {
                    if current != 0 {
                        run_command(&pf.down_command, current, &interface, "down");
                    }
                    if let Some(mut p) = base_policy.clone() {
                        p.vpn_input_ports.retain(|x| *x != current);
                        if !p.vpn_input_ports.contains(&port) {
                            p.vpn_input_ports.push(port);
                        }
                        match tokio::task::spawn_blocking(move || firewall::apply(&p)).await {
                            Ok(Ok(_)) => {
                                tracing::info!("port forwarding: {port} open on {interface}")
                            }
                            Ok(Err(e)) => tracing::error!("port forwarding: opening {port}: {e}"),
                            Err(e) => tracing::error!("port forwarding: {e}"),
                        }
                    }
                    if let Some(dir) = pf.status_file.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    if let Err(e) = std::fs::write(&pf.status_file, format!("{port}\n")) {
                        tracing::warn!("writing {}: {e}", pf.status_file.display());
                    }
                    run_command(&pf.up_command, port, &interface, "up");
                    port_tx.send_replace(port);
                }
                tracing::info!("port forwarding: port {port} for {}s", t.lifetime);
                Duration::from_secs(u64::from(t.lifetime.max(2) / 2))
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("port forwarding: {e}");
                Duration::from_secs(2)
            }
        };
        // Renew on time, or at once after the tunnel comes back.
        tokio::select! {
            _ = tokio::time::sleep(renew_after) => {}
            _ = tunnel.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_get_the_port_and_the_interface() {
        assert_eq!(
            render_command(
                "qbt-set-port {{PORT}} {{PORTS}} on {{VPN_INTERFACE}}",
                40000,
                "wg0"
            ),
            "qbt-set-port 40000 40000 on wg0"
        );
        assert_eq!(render_command("true", 1, "wg0"), "true");
    }
}
