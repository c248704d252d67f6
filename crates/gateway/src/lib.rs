//! The gateway under test (`leakhound gateway`): a separate process, started
//! inside the `gw` namespace and configured only by Gluetun's environment
//! variables. It brings up a TUN device, drives the boringtun tunnel to the
//! provider, routes the default route through it and keeps only the endpoint
//! (and FIREWALL_OUTBOUND_SUBNETS) on the underlay.
//!
//! Order at start: configuration is parsed completely before anything is
//! touched, so bad input never leaves a half-configured gateway; then the
//! kill switch closes (only loopback, the endpoint and the allowed subnets
//! pass); then routes and the tunnel. The kill switch lives in the kernel and
//! stays when the gateway stops or crashes.
//!
//! Signals: SIGTERM/SIGINT stop the gateway; SIGUSR1 stops the tunnel (the
//! gateway keeps running, closed), SIGUSR2 starts it again. They and the
//! control server work from the first moment ([`signals`]); what they ask is
//! decided by the [`supervisor`], a pure state machine.

pub mod cli;
pub mod command;
pub mod config;
pub mod control;
pub mod control_auth;
pub mod dns;
pub mod dns_cache;
pub mod dns_policy;
pub mod dns_upstream;
pub mod firewall;
pub mod fuzz;
pub mod health;
pub mod http_server;
pub mod portforward;
pub mod readiness;
pub mod signals;
pub mod supervisor;
pub mod underlay;
pub mod variables;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

pub use config::{ConfigError, GatewayConfig};
use firewall::{FirewallError, FirewallPolicy};
use leakhound_net::netlink::{NetlinkError, Nl};
use leakhound_net::tunnel::{Driver, DriverConfig};
use supervisor::Supervisor;

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
    #[error("closing the kill switch")]
    Firewall(#[from] FirewallError),
    #[error("finding the underlay towards the endpoint")]
    Underlay(#[from] underlay::UnderlayError),
    #[error("installing signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("{what}={addr}: cannot listen there")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the DNS resolver")]
    Dns(#[from] dns::DnsError),
    #[error("the health check's TLS roots")]
    HealthCa(#[source] dns::DnsError),
    #[error("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH {path}: {why}")]
    ControlAuth {
        path: String,
        why: Box<dyn std::error::Error + Send + Sync>,
    },
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

/// A gateway that cannot start closes its namespace (everything but
/// loopback) before it exits: bad input never leaves it open.
pub async fn lock_down() -> Result<(), GatewayError> {
    let devices = Nl::here()?.link_names().await?;
    tokio::task::spawn_blocking(move || firewall::lockdown(&devices))
        .await
        .map_err(|e| GatewayError::Tunnel(std::io::Error::other(e)))??;
    Ok(())
}

/// The control server's roles file: absent at Gluetun's default path means
/// every route is private; absent where the user pointed is an error.
fn load_control_auth(
    c: &config::ControlSettings,
) -> Result<control_auth::AuthConfig, GatewayError> {
    let err = |why: Box<dyn std::error::Error + Send + Sync>| GatewayError::ControlAuth {
        path: c.auth_file.display().to_string(),
        why,
    };
    let mut auth = match std::fs::read_to_string(&c.auth_file) {
        Ok(text) => control_auth::AuthConfig::parse(&text).map_err(|e| err(e.into()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !c.auth_file_explicit => {
            Default::default()
        }
        Err(e) => return Err(err(e.into())),
    };
    auth.default_role = c.default_role.clone();
    Ok(auth)
}

/// After a tunnel-up: the public IP through the tunnel, published and
/// written to PUBLICIP_FILE.
fn refresh_public_ip(cfg: &GatewayConfig, out: &tokio::sync::watch::Sender<Option<IpAddr>>) {
    let Some(url) = cfg.control.public_ip_url.clone() else {
        return;
    };
    let (iface, file, out) = (
        cfg.interface.clone(),
        cfg.control.public_ip_file.clone(),
        out.clone(),
    );
    tokio::spawn(async move {
        match control::fetch_public_ip(&url, &iface).await {
            Ok(ip) => {
                tracing::info!("public IP {ip} (asked {url} through the tunnel)");
                out.send_replace(Some(ip));
                if let Some(dir) = file.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = std::fs::write(&file, format!("{ip}\n")) {
                    tracing::warn!("writing PUBLICIP_FILE {}: {e}", file.display());
                }
            }
            Err(e) => tracing::warn!("public IP: {e}"),
        }
    });
}

/// The kill switch this configuration asks for.
pub fn firewall_policy(cfg: &GatewayConfig, underlay: &str) -> FirewallPolicy {
    FirewallPolicy {
        underlay: underlay.to_string(),
        tunnel: cfg.interface.clone(),
        tunnel_addrs: cfg.addresses.iter().map(|a| a.addr()).collect(),
        endpoint: cfg.endpoint,
        outbound_subnets: cfg.outbound_subnets.clone(),
        input_ports: cfg.firewall.input_ports.clone(),
        vpn_input_ports: cfg.firewall.vpn_input_ports.clone(),
        subnet_ports: cfg.firewall.subnet_ports.clone(),
        debug: cfg.firewall.debug,
        dns_upstreams: if cfg.dns.server {
            cfg.dns.upstream.addresses().to_vec()
        } else {
            Vec::new()
        },
        dns_direct: if cfg.dns.server {
            Vec::new()
        } else {
            cfg.dns
                .upstream
                .addresses()
                .iter()
                .map(|a| a.ip())
                .collect()
        },
        doh_addresses: cfg.dns.doh_addresses.clone(),
        redirects: Vec::new(),
    }
}

/// A running tunnel: dropping the task's device removes the interface (and
/// the routes through it) from the kernel.
struct Tunnel {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    handle: TunnelHandle,
    /// VPN_UP_COMMAND while it runs: the down command waits for it, so the
    /// user's hooks see up and down in the order the tunnel had them.
    up_hook: Option<tokio::task::JoinHandle<()>>,
}

/// What the gateway's other parts see of a running tunnel: its status, and
/// a way to make it send a handshake initiation now.
#[derive(Clone)]
pub struct TunnelHandle {
    pub status: tokio::sync::watch::Receiver<leakhound_net::tunnel::TunnelStatus>,
    pub kick: Arc<tokio::sync::Notify>,
}

impl Tunnel {
    async fn up(cfg: &GatewayConfig, nl: &Nl) -> Result<Tunnel, GatewayError> {
        let t = Instant::now();
        // Offload: the kernel hands over TCP as GSO packets (one read for
        // many segments) and takes coalesced ones back (the driver's batches).
        let tun = tun_rs::DeviceBuilder::new()
            .name(&cfg.interface)
            .mtu(cfg.mtu)
            .offload(true)
            .build_async()
            .map_err(|source| GatewayError::Tun {
                name: cfg.interface.clone(),
                source,
            })?;
        tracing::debug!("tunnel setup: device after {:?}", t.elapsed());
        for a in &cfg.addresses {
            nl.add_addr(&cfg.interface, *a).await?;
        }
        nl.set_up(&cfg.interface).await?;
        tracing::debug!("tunnel setup: addresses after {:?}", t.elapsed());
        // Everything not routed to the underlay goes into the tunnel.
        nl.replace_route(default_route(false), None, Some(&cfg.interface))
            .await?;
        if cfg.has_ipv6() {
            nl.replace_route(default_route(true), None, Some(&cfg.interface))
                .await?;
        }
        let bind: SocketAddr = if cfg.endpoint.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let udp = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(GatewayError::Udp)?;
        // Only this socket's datagrams may go to the endpoint (the kill
        // switch matches the mark).
        socket2::SockRef::from(&udp)
            .set_mark(firewall::policy::TUNNEL_MARK)
            .map_err(GatewayError::Udp)?;
        let (rcv, snd) = leakhound_net::udp_batch::size_buffers(&udp);
        tracing::debug!("tunnel socket buffers: receive {rcv} B, send {snd} B");
        tracing::debug!("tunnel setup: routes and socket after {:?}", t.elapsed());
        let kick = Arc::new(tokio::sync::Notify::new());
        let (driver, status) = Driver::new(
            cfg.private_key,
            cfg.public_key,
            cfg.preshared_key,
            cfg.keepalive,
            DriverConfig {
                endpoint: Some(cfg.endpoint),
                allowed_src: vec![default_route(false), default_route(true)],
                paused: None,
                handshake_rate_limit: None,
                kick: Some(kick.clone()),
                new_peer: None,
            },
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(driver.run(Arc::new(tun), Arc::new(udp), cancel.clone()));
        tracing::info!(endpoint = %cfg.endpoint, interface = %cfg.interface, "tunnel up");
        readiness::tunnel_up();
        Ok(Tunnel {
            cancel,
            task,
            handle: TunnelHandle { status, kick },
            up_hook: None,
        })
    }

    async fn down(self) {
        self.cancel.cancel();
        let _ = self.task.await;
        tracing::info!("tunnel down (the kill switch stays closed)");
    }
}

/// Where the namespace's (and the gateway's own) lookups go: the gateway's
/// resolver, or with DNS_SERVER=off the first plain upstream.
pub fn resolver_address(dns: &config::DnsSettings) -> Option<SocketAddr> {
    if dns.server {
        Some(dns::LISTEN)
    } else {
        dns.upstream.addresses().first().copied()
    }
}

/// A tunnel started again (a restart, or PUT /v1/vpn/status): health, port
/// forwarding and the public IP follow the new one.
async fn start_tunnel(
    cfg: &GatewayConfig,
    nl: &Nl,
    tunnel_tx: &tokio::sync::watch::Sender<Option<TunnelHandle>>,
    ip_tx: &tokio::sync::watch::Sender<Option<IpAddr>>,
) -> Result<Tunnel, GatewayError> {
    let mut t = Tunnel::up(cfg, nl).await?;
    tunnel_tx.send_replace(Some(t.handle.clone()));
    refresh_public_ip(cfg, ip_tx);
    // VPN_UP_COMMAND, as Gluetun runs it: after DNS, health and the public
    // IP are under way; the port forwarding does not wait for it here.
    if let Some(c) = &cfg.up_command {
        let cmd = c.replace("{{VPN_INTERFACE}}", &cfg.interface);
        // The command is a secret whole, as its variable is.
        leakhound_proto::scrub::register(&cmd);
        t.up_hook = Some(tokio::spawn(async move {
            command::run(&cmd, "VPN up").await;
        }));
    }
    Ok(t)
}

/// VPN_DOWN_COMMAND, before the tunnel goes down (and before the port
/// forwarding's DOWN command, as Gluetun orders them), within
/// [`command::TIMEOUT`]; after the tunnel's up command if that is still
/// running (it is bounded by the same timeout).
async fn run_down_command(cfg: &GatewayConfig, up_hook: Option<tokio::task::JoinHandle<()>>) {
    if let Some(h) = up_hook {
        let _ = h.await;
    }
    if let Some(c) = &cfg.down_command {
        let cmd = c.replace("{{VPN_INTERFACE}}", &cfg.interface);
        leakhound_proto::scrub::register(&cmd);
        command::run(&cmd, "VPN down").await;
    }
}

/// Binds a server's listening socket; a taken or bad address stops the
/// gateway at start with the variable named.
async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, GatewayError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { what, addr, source })
}

/// The running gateway's moving parts that the supervisor's decisions act on.
struct Parts<'a> {
    /// The configuration tunnels are started from (its private key changes
    /// on a rotation).
    cfg: GatewayConfig,
    nl: &'a Nl,
    /// Withdraws the forwarded port (when port forwarding is on).
    announcer: Option<portforward::Announcer>,
    tunnel: Option<Tunnel>,
    tunnel_tx: tokio::sync::watch::Sender<Option<TunnelHandle>>,
    ip_tx: tokio::sync::watch::Sender<Option<IpAddr>>,
    running_tx: tokio::sync::watch::Sender<bool>,
    /// Tunnel restarts so far (the control server's metrics read it).
    restarts: Arc<std::sync::atomic::AtomicU64>,
}

impl Parts<'_> {
    /// A rotation's new key becomes the one tunnels start with.
    fn take_key(&mut self, cmd: &control::VpnCommand) {
        if let control::VpnCommand::Rekey(k) = cmd {
            self.cfg.private_key = k.0;
            tracing::info!("WireGuard key rotation: the tunnel restarts on the new key");
        }
    }

    /// Carries out the supervisor's decisions, in order, and publishes
    /// whether a tunnel is running.
    async fn execute(
        &mut self,
        todo: Vec<supervisor::Do>,
        sup: &Supervisor,
    ) -> Result<(), GatewayError> {
        for d in todo {
            match d {
                supervisor::Do::WithdrawPort => {
                    // The DOWN commands run (bounded) while the tunnel is
                    // still up; then health and port forwarding see no
                    // tunnel.
                    if let Some(t) = self.tunnel.as_mut() {
                        run_down_command(&self.cfg, t.up_hook.take()).await;
                    }
                    if let Some(a) = &self.announcer {
                        a.withdraw("the tunnel is going down").await;
                    }
                    self.tunnel_tx.send_replace(None);
                }
                supervisor::Do::Down => {
                    if let Some(t) = self.tunnel.take() {
                        t.down().await;
                    }
                    self.ip_tx.send_replace(None);
                }
                supervisor::Do::Up => {
                    self.restarts
                        .store(sup.restarts(), std::sync::atomic::Ordering::Relaxed);
                    if sup.restarts() > 0 {
                        tracing::warn!(
                            "reconnect: restarting the tunnel (restart {})",
                            sup.restarts()
                        );
                    }
                    self.tunnel =
                        Some(start_tunnel(&self.cfg, self.nl, &self.tunnel_tx, &self.ip_tx).await?);
                }
            }
        }
        self.running_tx.send_replace(sup.running());
        Ok(())
    }
}

/// The kill switch the gateway installed last (none: disabled by
/// configuration), shared by whoever re-applies it (port forwarding) and
/// `/metrics`, which reads it back from the kernel.
pub type InstalledKillSwitch = Arc<std::sync::Mutex<Option<FirewallPolicy>>>;

/// What [`close_kill_switch`] found and applied, for [`run`].
pub struct Closed {
    underlay: underlay::Underlay,
    base_policy: Option<FirewallPolicy>,
}

/// Step 1, before anything else and before any async runtime is needed:
/// the underlay towards the endpoint (its interface is the only one the
/// kill switch lets the tunnel's datagrams out on) and the kill switch,
/// applied and read back on this thread. `started` is when the process
/// began, for the "start to firewall closed" figure in the log and in the
/// readiness event ([`readiness`]) the harness waits for.
pub fn close_kill_switch(cfg: &GatewayConfig, started: Instant) -> Result<Closed, GatewayError> {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    for var in &cfg.unused {
        tracing::warn!(
            "{var} is set but leakhound's gateway does not use it (not a variable it knows, or without effect in this configuration); see docs/gluetun-variables.md"
        );
    }
    let underlay =
        underlay::find(cfg.endpoint.ip())?.ok_or(GatewayError::NoUnderlay(cfg.endpoint.ip()))?;
    if !cfg.firewall.enabled {
        tracing::warn!(
            "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off: no kill switch, traffic WILL leak when the tunnel is down"
        );
        firewall::remove()?;
        return Ok(Closed {
            underlay,
            base_policy: None,
        });
    }
    let policy = firewall_policy(cfg, &underlay.ifname);
    let took = firewall::apply(&policy)?;
    let since_start = started.elapsed() - took.verified;
    // Found in place, the rules were closed all along: the read-back
    // that proved it is the whole time.
    let (how, verified) = if took.rewritten {
        (
            format!("batch {} us", took.closed.as_micros()),
            took.verified,
        )
    } else {
        (firewall::FOUND_IN_PLACE.to_string(), took.closed)
    };
    tracing::info!(
        "firewall closed {} us after start ({how}); read back and verified in {} us",
        since_start.as_micros(),
        verified.as_micros()
    );
    readiness::emit(&readiness::ReadinessEvent::KillSwitchClosed {
        since_start_us: readiness::micros(since_start),
        batch_us: took.rewritten.then(|| readiness::micros(took.closed)),
        verified_us: readiness::micros(verified),
    });
    Ok(Closed {
        underlay,
        base_policy: Some(policy),
    })
}

/// Runs the gateway until SIGTERM or SIGINT, once [`close_kill_switch`]
/// has closed the kill switch; `signals` were installed first thing (see
/// [`signals`]).
///
/// The control server comes next; signals work from the first moment: a
/// stop or start
/// that arrives while the gateway is still setting up is
/// queued and applied by the supervisor when it boots (a stop then means
/// the tunnel never comes up until a start).
pub async fn run(
    cfg: GatewayConfig,
    closed: Closed,
    signals: signals::Signals,
) -> Result<(), GatewayError> {
    let Closed {
        underlay,
        base_policy,
    } = closed;
    let nl = Nl::here()?;

    // The control server's roles next: it answers from here on.
    let auth = load_control_auth(&cfg.control)?;

    // 2. What the gateway accepts from outside works from now on: signals
    // (installed before this function) and the control server feed one
    // command queue that the supervisor reads once it has booted.
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel(16);
    let shutdown = CancellationToken::new();
    forward_signals(signals, cmd_tx.clone(), shutdown.clone());
    let (ip_tx, ip_rx) = tokio::sync::watch::channel(None);
    let (running_tx, running_rx) = tokio::sync::watch::channel(false);
    let (port_tx, port_rx) = tokio::sync::watch::channel(0u16);
    // The running tunnel (none while it is down), for health, port
    // forwarding and the control server's metrics.
    let (tunnel_tx, tunnel_rx) = tokio::sync::watch::channel(None);
    let restarts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let control_listener = bind("HTTP_CONTROL_SERVER_ADDRESS", cfg.control.address).await?;
    let kill_switch: InstalledKillSwitch = Arc::new(std::sync::Mutex::new(base_policy.clone()));
    let control_state = std::sync::Arc::new(control::ControlState {
        kill_switch: kill_switch.clone(),
        tunnel: tunnel_rx.clone(),
        restarts: restarts.clone(),
        key_file: cfg.private_key_file.clone(),
        auth,
        public_ip: ip_rx,
        vpn_running: running_rx,
        commands: cmd_tx,
        forwarded_port: port_rx,
    });
    let control_server = tokio::spawn(control::serve(control_listener, control_state));
    tracing::info!("control server on {}", cfg.control.address);

    // The other files the configuration names, after the kill switch (they
    // cannot open it; a bad one still ends in the closed namespace).
    let mut dns_policy = cfg.dns.policy.clone();
    dns::load_blocklists(&mut dns_policy, &cfg.dns.blocklists)?;
    let health_tls = std::sync::Arc::new(
        dns::tls_client_config("HEALTH_TARGET_CA_FILE", cfg.health.ca_file.as_deref())
            .map_err(GatewayError::HealthCa)?,
    );

    // 3. The endpoint and the LAN subnets stay on the underlay.
    underlay_routes(&nl, &cfg, &underlay).await?;

    // 4. DNS: the gateway's resolver, and resolv.conf pointing at it.
    let resolver = start_resolver(&cfg.dns, dns_policy).await?;

    // 5. Health: checks through the tunnel, served on HEALTH_SERVER_ADDRESS.
    let (health_tx, health_rx) = tokio::sync::watch::channel(health::Health::starting());
    let checks = health::Checks {
        small: cfg.health.small.clone(),
        targets: cfg.health.targets.clone(),
        interval: cfg.health.interval,
        full_interval: cfg.health.full_interval,
        tls: health_tls,
        tunnel_if: cfg.interface.clone(),
        resolver: resolver_address(&cfg.dns),
    };
    tokio::spawn(health::run_checks(checks, tunnel_rx, health_tx));
    let health_listener = bind("HEALTH_SERVER_ADDRESS", cfg.health.server).await?;
    let health_watch = health_rx.clone();
    let health_server = tokio::spawn(health::serve(health_listener, health_rx));
    tracing::info!("health: served on {}", cfg.health.server);

    // 6. Port forwarding follows the tunnel.
    let announcer = cfg.port_forwarding.clone().map(|pf| {
        tracing::info!(
            "port forwarding: NAT-PMP to {} through the tunnel",
            pf.gateway
        );
        let a = portforward::Announcer::new(pf.clone(), cfg.interface.clone(), port_tx);
        tokio::spawn(portforward::run(
            pf,
            cfg.interface.clone(),
            tunnel_tx.subscribe(),
            base_policy.clone(),
            kill_switch.clone(),
            a.clone(),
        ));
        a
    });

    // 7. The supervisor boots: commands that arrived meanwhile first, then
    // the tunnel (unless a stop is among them).
    let mut sup = Supervisor::new(supervisor::Settings {
        restart_vpn: cfg.health.restart_vpn,
        initial_grace: cfg.health.initial_grace,
    });
    let mut parts = Parts {
        cfg: cfg.clone(),
        nl: &nl,
        announcer,
        tunnel: None,
        tunnel_tx,
        ip_tx,
        running_tx,
        restarts,
    };
    let now = std::time::Instant::now();
    while let Ok(cmd) = cmd_rx.try_recv() {
        parts.take_key(&cmd);
        let todo = sup.handle(now, supervisor::Input::Command(cmd));
        parts.execute(todo, &sup).await?;
    }
    if !shutdown.is_cancelled() {
        let todo = sup.handle(now, supervisor::Input::Booted);
        if !sup.wants_running() {
            tracing::info!("the tunnel stays down: a stop arrived while the gateway was starting");
        }
        parts.execute(todo, &sup).await?;
    }
    supervise(&mut parts, &mut sup, &mut cmd_rx, &shutdown, health_watch).await?;

    tracing::info!("stopping");
    health_server.abort();
    control_server.abort();
    if let Some(r) = &resolver {
        r.shutdown();
    }
    if let Some(mut t) = parts.tunnel.take() {
        run_down_command(&parts.cfg, t.up_hook.take()).await;
        t.down().await;
    }
    if cfg.firewall.remove_on_exit {
        tokio::task::spawn_blocking(firewall::remove)
            .await
            .map_err(|e| GatewayError::Tunnel(std::io::Error::other(e)))??;
        tracing::info!("kill switch removed (FIREWALL_ON_EXIT=remove)");
    }
    Ok(())
}

/// Turns signals into the command queue's commands (SIGUSR1 stop, SIGUSR2
/// start); SIGTERM and SIGINT cancel `shutdown`.
fn forward_signals(
    mut signals: signals::Signals,
    cmd_tx: tokio::sync::mpsc::Sender<control::VpnCommand>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let cmd = match signals.next().await {
                signals::Request::Shutdown => {
                    shutdown.cancel();
                    continue;
                }
                signals::Request::StopTunnel => control::VpnCommand::Stop,
                signals::Request::StartTunnel => control::VpnCommand::Start,
            };
            tracing::info!("signal: {cmd:?} the tunnel");
            if cmd_tx.send(cmd).await.is_err() {
                break;
            }
        }
    });
}

/// The endpoint and the LAN subnets stay on the underlay; an IPv4-only
/// tunnel leaves no IPv6 default route at all. Every change is idempotent:
/// a route already there is replaced, one already gone is fine (something
/// else may share the namespace).
async fn underlay_routes(
    nl: &Nl,
    cfg: &GatewayConfig,
    underlay: &underlay::Underlay,
) -> Result<(), GatewayError> {
    nl.replace_route_idx(
        IpNet::from(cfg.endpoint.ip()),
        underlay.gateway,
        underlay.oif,
    )
    .await?;
    let mut lan: Vec<IpNet> = cfg.outbound_subnets.clone();
    lan.extend(cfg.firewall.subnet_ports.iter().map(|s| s.subnet));
    let existing = nl.routes(cfg.endpoint.is_ipv6()).await?;
    for s in lan {
        // Subnets on the underlay's own link need no route (and replacing
        // the connected route would cut the gateway off its own LAN).
        let connected = existing.iter().any(|r| r.dst == s && r.gateway.is_none());
        if s.addr().is_ipv4() == cfg.endpoint.is_ipv4() && !connected {
            nl.replace_route_idx(s, underlay.gateway, underlay.oif)
                .await?;
        }
    }
    if !cfg.has_ipv6() {
        // An IPv4-only tunnel: no IPv6 default route at all.
        for r in nl.routes(true).await? {
            if r.dst.prefix_len() == 0 {
                nl.del_route(&r).await?;
            }
        }
    }
    Ok(())
}

/// The gateway's resolver, and resolv.conf pointing at it. Until the tunnel
/// is up it has no way out and every query fails. With DNS_SERVER=off, no
/// resolver: resolv.conf names the plain upstreams.
async fn start_resolver(
    dns_cfg: &config::DnsSettings,
    policy: dns_policy::DnsPolicy,
) -> Result<Option<dns::DnsService>, GatewayError> {
    if !dns_cfg.server {
        let ips: Vec<IpAddr> = dns_cfg
            .upstream
            .addresses()
            .iter()
            .map(|a| a.ip())
            .collect();
        dns::write_resolv_conf(std::path::Path::new("/etc/resolv.conf"), &ips)?;
        tracing::warn!(
            "DNS: the built-in DNS server is off (DNS_SERVER=off): resolv.conf names {}, asked directly through the tunnel; no block lists, no rebinding protection",
            dns_cfg.upstream.describe()
        );
        return Ok(None);
    }
    let r = dns::start(&dns_cfg.upstream, dns_cfg.cache_size, policy).await?;
    dns::write_resolv_conf(
        std::path::Path::new("/etc/resolv.conf"),
        &[dns::LISTEN.ip()],
    )?;
    match &dns_cfg.upstream {
        config::Upstream::None(why) => tracing::warn!(
            "DNS: resolver on {} has no upstream: every query fails ({why})",
            dns::LISTEN
        ),
        up => tracing::info!(
            "DNS: resolver on {} asks through the tunnel: {}",
            dns::LISTEN,
            up.describe()
        ),
    }
    Ok(Some(r))
}

/// The supervisor's loop once booted: health verdicts, its timer, commands
/// and the tunnel's end go in, what it decides is done, until shutdown.
async fn supervise(
    parts: &mut Parts<'_>,
    sup: &mut Supervisor,
    cmd_rx: &mut tokio::sync::mpsc::Receiver<control::VpnCommand>,
    shutdown: &CancellationToken,
    mut health_watch: tokio::sync::watch::Receiver<health::Health>,
) -> Result<(), GatewayError> {
    loop {
        let finished = async {
            match parts.tunnel.as_mut() {
                Some(t) => (&mut t.task).await,
                None => std::future::pending().await,
            }
        };
        let timer = async {
            match sup.poll_timeout() {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = health_watch.changed() => {
                if changed.is_err() { continue }
                let healthy = health_watch.borrow_and_update().healthy;
                supervisor::Input::Health { healthy }
            }
            _ = timer => supervisor::Input::Timeout,
            cmd = cmd_rx.recv() => match cmd {
                Some(c) => {
                    parts.take_key(&c);
                    supervisor::Input::Command(c)
                }
                None => continue,
            },
            r = finished => {
                let up_hook = parts.tunnel.take().and_then(|mut t| t.up_hook.take());
                run_down_command(&parts.cfg, up_hook).await;
                parts.tunnel_tx.send_replace(None);
                match r {
                    Ok(Ok(())) => tracing::warn!("the tunnel ended"),
                    Ok(Err(e)) => tracing::error!("the tunnel failed: {e}"),
                    Err(e) => tracing::error!("the tunnel task failed: {e}"),
                }
                supervisor::Input::TunnelEnded
            }
        };
        let was_pending = sup.poll_timeout();
        let todo = sup.handle(std::time::Instant::now(), input);
        if let (None, Some(at)) = (was_pending, sup.poll_timeout()) {
            tracing::warn!(
                "reconnect: the tunnel is unhealthy; restarting it in {:?} unless it recovers",
                at.saturating_duration_since(std::time::Instant::now())
            );
        }
        parts.execute(todo, sup).await?;
    }
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
