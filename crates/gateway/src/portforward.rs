//! VPN port forwarding (VPN_PORT_FORWARDING=on): NAT-PMP to the provider's
//! gateway through the tunnel (the socket is bound to the tunnel interface),
//! a TCP and a UDP mapping, renewed at half their lifetime asking for the
//! same port, again after every tunnel-up. The port is opened on the tunnel
//! interface only (the kill switch is re-applied atomically with it), written
//! to VPN_PORT_FORWARDING_STATUS_FILE, announced to the UP/DOWN commands
//! (run without a shell, as Gluetun runs them: [`super::command`]) and
//! served on GET /v1/portforward. When the tunnel goes down, or the
//! provider stops granting the port, it is withdrawn: the DOWN command runs
//! and the status file is removed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

use super::config::PortForwarding;
use super::firewall::{self, FirewallPolicy};
use leakhound_proto::natpmp::{self, MapRequest, Mapping, Protocol};

/// Lifetime asked for (the provider may grant less).
pub const LIFETIME: u32 = 60;

/// A command with {{PORT}}, {{PORTS}} and {{VPN_INTERFACE}} replaced. Pure.
pub fn render_command(template: &str, port: u16, interface: &str) -> String {
    template
        .replace("{{PORTS}}", &port.to_string())
        .replace("{{PORT}}", &port.to_string())
        .replace("{{VPN_INTERFACE}}", interface)
}

/// Why a NAT-PMP mapping request through the tunnel got no mapping.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("opening the NAT-PMP socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("binding the NAT-PMP socket to {interface}: {source}")]
    Bind {
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sending the NAT-PMP request to {to}: {source}")]
    Send {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the NAT-PMP answer: {0}")]
    Receive(#[source] std::io::Error),
    /// The provider answered, with a refusal or garbage.
    #[error(transparent)]
    Answer(#[from] natpmp::NatPmpError),
    #[error("no NAT-PMP answer from {0} within 2s")]
    Timeout(SocketAddr),
}

/// One NAT-PMP mapping request through the tunnel.
pub async fn request(
    gateway: IpAddr,
    interface: &str,
    protocol: Protocol,
    suggested: u16,
) -> Result<Mapping, MappingError> {
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
    .map_err(MappingError::Socket)?;
    s.bind_device(Some(interface.as_bytes()))
        .map_err(|source| MappingError::Bind {
            interface: interface.to_string(),
            source,
        })?;
    s.set_nonblocking(true).map_err(MappingError::Socket)?;
    s.bind(&bind.into()).map_err(MappingError::Socket)?;
    let sock = tokio::net::UdpSocket::from_std(s.into()).map_err(MappingError::Socket)?;
    let to = SocketAddr::new(gateway, natpmp::PORT);
    let req = natpmp::encode_map_request(&MapRequest {
        protocol,
        internal_port: suggested.max(1),
        suggested_external_port: suggested,
        lifetime: LIFETIME,
    });
    sock.send_to(&req, to)
        .await
        .map_err(|source| MappingError::Send { to, source })?;
    let mut buf = [0u8; 64];
    let work = async {
        loop {
            let (n, from) = sock
                .recv_from(&mut buf)
                .await
                .map_err(MappingError::Receive)?;
            if from == to {
                return Ok(natpmp::decode_mapping(&buf[..n], protocol)?);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .map_err(|_| MappingError::Timeout(to))?
}

/// How long an UP or DOWN command may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = super::command::TIMEOUT;

/// Runs an UP or DOWN command, placeholders replaced, without a shell
/// ([`super::command`]).
async fn run_command(template: &Option<String>, port: u16, interface: &str, what: &str) {
    let Some(t) = template else { return };
    let cmd = render_command(t, port, interface);
    super::command::run(&cmd, &format!("port forwarding: {what}")).await;
}

/// Announces a forwarded port (status file, UP command, the control
/// server's value) and withdraws it. Shared by the port-forwarding task and
/// the gateway's supervisor, which withdraws the port before the tunnel
/// goes down, while the provider can still be reached.
#[derive(Clone)]
pub struct Announcer {
    pf: PortForwarding,
    interface: String,
    port: watch::Sender<u16>,
}

impl Announcer {
    pub fn new(pf: PortForwarding, interface: String, port: watch::Sender<u16>) -> Self {
        Announcer {
            pf,
            interface,
            port,
        }
    }

    /// The port announced now (0: none).
    pub fn held(&self) -> u16 {
        *self.port.borrow()
    }

    async fn announce(&self, port: u16) {
        write_status(&self.pf, Some(port));
        run_command(&self.pf.up_command, port, &self.interface, "up").await;
        self.port.send_replace(port);
    }

    /// Withdraws the announced port, if any: the DOWN command (within
    /// [`COMMAND_TIMEOUT`]), the status file removed, 0 published. Whoever
    /// calls first does it; a second call finds nothing to withdraw.
    pub async fn withdraw(&self, why: &str) {
        let port = self.port.send_replace(0);
        if port == 0 {
            return;
        }
        tracing::info!("port forwarding: port {port} withdrawn ({why})");
        run_command(&self.pf.down_command, port, &self.interface, "down").await;
        write_status(&self.pf, None);
    }
}

/// Writes the port (or nothing) to VPN_PORT_FORWARDING_STATUS_FILE.
fn write_status(pf: &PortForwarding, port: Option<u16>) {
    match port {
        Some(port) => {
            if let Some(dir) = pf.status_file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = std::fs::write(&pf.status_file, format!("{port}\n")) {
                tracing::warn!("writing {}: {e}", pf.status_file.display());
            }
        }
        None => match std::fs::remove_file(&pf.status_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("removing {}: {e}", pf.status_file.display()),
        },
    }
}

/// The kill switch with `port` open on the tunnel (and redirected to
/// `listening` when given), built from the configured policy each time: an
/// earlier forwarded port is simply not in it, and the configured
/// FIREWALL_VPN_INPUT_PORTS stay. Pure.
pub fn with_forwarded_port(
    base: &FirewallPolicy,
    port: u16,
    listening: Option<u16>,
) -> FirewallPolicy {
    let mut p = base.clone();
    if !p.vpn_input_ports.contains(&port) {
        p.vpn_input_ports.push(port);
    }
    if let Some(listen) = listening {
        p.redirects = vec![(port, listen)];
    }
    p
}

/// The wait before asking again after a failed or refused request: 2 s,
/// doubling, at most 30 s. Pure.
pub fn retry_wait(failures: u32) -> Duration {
    Duration::from_secs(2)
        .saturating_mul(1 << failures.min(4))
        .min(Duration::from_secs(30))
}

/// Runs forever: keeps a forwarded port while the tunnel is up. A port is
/// announced (status file, UP command, control server) when granted and
/// withdrawn (DOWN command, status file removed) when the tunnel goes down,
/// when it changes, or when the provider stops renewing it; it is asked for
/// again after every tunnel-up. Refusals and garbage from the provider are
/// logged with the reason and retried with backoff; the kill switch only
/// changes when a new port is granted.
pub async fn run(
    pf: PortForwarding,
    interface: String,
    mut tunnel: watch::Receiver<Option<super::TunnelHandle>>,
    base_policy: Option<FirewallPolicy>,
    installed: super::InstalledKillSwitch,
    announcer: Announcer,
) {
    // The last port granted (asked for again), the one open in the kill
    // switch, and when the grant ends; the one announced now is the
    // announcer's.
    let (mut last, mut opened) = (0u16, 0u16);
    let mut expires: Option<tokio::time::Instant> = None;
    let mut failures = 0u32;
    loop {
        if tunnel.wait_for(|t| t.is_some()).await.is_err() {
            return;
        }
        // TCP first; UDP asks for the port TCP got.
        let granted = match request(pf.gateway, &interface, Protocol::Tcp, last).await {
            Ok(t) => request(pf.gateway, &interface, Protocol::Udp, t.external_port)
                .await
                .map(|u| (t, u)),
            Err(e) => Err(e),
        };
        let wait = match granted {
            Ok((t, u)) => {
                failures = 0;
                let port = t.external_port;
                if u.external_port != port {
                    tracing::warn!(
                        "port forwarding: TCP got {port}, UDP got {}",
                        u.external_port
                    );
                }
                if port != announcer.held() {
                    announcer.withdraw("the provider gave another port").await;
                    if port != opened
                        && let Some(base) = &base_policy
                    {
                        let p = with_forwarded_port(base, port, pf.listening_port);
                        let applied = p.clone();
                        match tokio::task::spawn_blocking(move || firewall::apply(&p)).await {
                            Ok(Ok(_)) => {
                                opened = port;
                                *installed.lock().expect("kill switch lock") = Some(applied);
                                match pf.listening_port {
                                    Some(l) => tracing::info!(
                                        "port forwarding: {port} open on {interface}, redirected to {l}"
                                    ),
                                    None => tracing::info!(
                                        "port forwarding: {port} open on {interface}"
                                    ),
                                }
                            }
                            Ok(Err(e)) => tracing::error!("port forwarding: opening {port}: {e}"),
                            Err(e) => tracing::error!("port forwarding: {e}"),
                        }
                    }
                    announcer.announce(port).await;
                    last = port;
                }
                let lifetime = Duration::from_secs(u64::from(t.lifetime.min(u.lifetime).max(2)));
                expires = Some(tokio::time::Instant::now() + lifetime);
                tracing::info!("port forwarding: port {port} for {}s", lifetime.as_secs());
                lifetime / 2
            }
            Err(e) => {
                let wait = retry_wait(failures);
                failures += 1;
                tracing::warn!("port forwarding: {e}; asking again in {wait:?}");
                if expires.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    announcer.withdraw("the provider did not renew it").await;
                    expires = None;
                }
                wait
            }
        };
        // Renew on time; after the tunnel goes down, withdraw the port and
        // ask again once it is back.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = tunnel.changed() => {
                if r.is_err() {
                    return;
                }
                if tunnel.borrow().is_none() {
                    announcer.withdraw("the tunnel is down").await;
                    expires = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_cannot_leave_names_the_interface() {
        let e = request(
            "192.0.2.1".parse().unwrap(),
            "lh-nonexist0",
            Protocol::Tcp,
            0,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, MappingError::Bind { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("binding the NAT-PMP socket to lh-nonexist0: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

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

    #[test]
    fn a_new_forwarded_port_replaces_the_old_one_and_keeps_the_configured_ones() {
        let base = FirewallPolicy {
            vpn_input_ports: vec![51413],
            ..crate::firewall::policy::tests::seed_policy()
        };
        let first = with_forwarded_port(&base, 40000, None);
        assert_eq!(first.vpn_input_ports, [51413, 40000]);
        assert!(first.redirects.is_empty());
        let second = with_forwarded_port(&base, 40001, Some(6881));
        assert_eq!(second.vpn_input_ports, [51413, 40001]);
        assert_eq!(second.redirects, [(40001, 6881)]);
        // The provider handing out a port the user opened anyway.
        assert_eq!(
            with_forwarded_port(&base, 51413, None).vpn_input_ports,
            [51413]
        );
    }

    #[test]
    fn refusals_are_retried_with_backoff() {
        let waits: Vec<u64> = (0..7).map(|n| retry_wait(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
    }
}
