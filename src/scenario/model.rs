//! Scenario files: their TOML format, validation into typed steps, and the
//! built-in default suite. Pure: text in, a [`Scenario`] or an error naming
//! the file, the step and the field out.
//!
//! ```toml
//! name = "baseline"
//! description = "what it proves"
//! tags = ["smoke"]
//!
//! [gateway.env]                 # extra Gluetun variables for this scenario
//! FIREWALL_OUTBOUND_SUBNETS = "172.20.0.0/16"
//!
//! [[step]]
//! name = "tunnel is up"
//! action = "wait-handshake"     # the provider sees a completed handshake
//! timeout = "15s"
//!
//! [[step]]
//! name = "public IPv4 is the VPN exit"
//! action = "http"               # GET http://TARGET/leakhound/<nonce>
//! from = "gw"                   # the lab host the probe runs in
//! target = "192.0.2.80:80"
//! expect = "seen-as 203.0.113.77"   # whoami saw this source; or "answer"
//!                               # (any 2xx), or "fail" (no answer)
//! logged-by = ["whoami"]        # optional, as for dns below
//!
//! [[step]]
//! name = "DNS goes to the provider"
//! action = "dns"                # A query for <nonce>.probe.lab.
//! from = "gw"
//! server = "10.64.0.1:53"       # or "system": what the host's resolv.conf names
//! expect = "answer"             # or "fail"
//! logged-by = ["provider-dns"]  # lab services that must have seen the nonce
//! not-logged-by = ["isp-dns"]   # and those that must not
//!
//! [[step]]
//! name = "another tool flushes the rules"
//! action = "interfere"          # a change from outside the gateway
//! nft = "flush ruleset"         # an nftables script in the gateway's namespace
//! routes = "around-tunnel"      # default routes via the home router
//! resolv-conf = "nameserver 192.0.2.53"  # the gateway host's resolv.conf
//! kill = true                   # SIGKILL every process there (OOM killer)
//!
//! [leaks]
//! wires = ["gw", "uplink"]      # watched wires that must carry no leak
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use crate::lab::services::{ISP_DNS, LAN_DNS, LAN_HTTP, PROVIDER_DNS, PROVIDER_DOT};
use crate::lab::{dependents, echo, encrypted_dns, whoami};
use crate::model::topology::{Topology, wire};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: step {step} ({name}): {message}")]
    Step {
        file: String,
        step: usize,
        name: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// The lab services a step can ask about.
pub const SERVICES: [&str; 11] = [
    PROVIDER_DOT,
    encrypted_dns::DOT,
    encrypted_dns::DOH,
    LAN_DNS,
    ISP_DNS,
    PROVIDER_DNS,
    whoami::SERVICE,
    whoami::TLS_SERVICE,
    dependents::SERVICE,
    echo::SERVICE,
    LAN_HTTP,
];

#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The probe gets through and the far end sees this source address.
    SeenAs(IpAddr),
    /// The probe gets an answer.
    Answer,
    /// The probe gets nothing (times out or is refused).
    Fail,
}

/// What a probe must meet: its own answer-or-not, and which lab services
/// must, and must not, have seen its nonce.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub expect: Expect,
    pub logged_by: Vec<String>,
    pub not_logged_by: Vec<String>,
}

impl Check {
    /// Only the probe's own expectation; no far-end checks.
    pub fn expect(expect: Expect) -> Self {
        Check {
            expect,
            logged_by: Vec::new(),
            not_logged_by: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    WaitHandshake {
        timeout: Duration,
    },
    /// Wait until the gateway reports its kill switch in the kernel.
    WaitFirewall {
        timeout: Duration,
    },
    /// Wait until the provider receives WireGuard datagrams from a new
    /// source port: the gateway restarted its tunnel (a new socket), seen
    /// from the far end. Works while the provider is down.
    WaitTunnelRestart {
        timeout: Duration,
    },
    Http {
        from: String,
        target: SocketAddr,
        check: Check,
    },
    Dns {
        from: String,
        /// `None`: the host's own resolver, as its resolv.conf names it
        /// (`server = "system"`).
        server: Option<SocketAddr>,
        /// The zone the nonce is put under (`query = "malware.lab"` asks for
        /// `<nonce>.malware.lab.`); default `probe.lab`.
        zone: String,
        check: Check,
    },
    /// A DNS-over-TLS (`dot`) or DNS-over-HTTPS (`doh`) query for the nonce,
    /// trusting the lab's CA.
    EncryptedDns {
        https: bool,
        from: String,
        target: SocketAddr,
        check: Check,
    },
    /// A UDP datagram carrying the nonce; `answer` means an echo came back.
    Udp {
        from: String,
        target: SocketAddr,
        check: Check,
    },
    /// ICMP (or ICMPv6) echo with the nonce in the payload.
    Ping {
        from: String,
        target: IpAddr,
        expect: Expect,
    },
    /// A DNS query for the nonce in a UDP packet written straight to the
    /// host's eth0 with an AF_PACKET socket, bypassing the IP stack and its
    /// firewall hooks.
    RawFrame {
        from: String,
        target: SocketAddr,
        check: Check,
    },
    /// CVE-2019-14899: a TCP SYN-ACK to `target` (the tunnel's address) sent
    /// from a LAN-side host through the gateway's underlay. `fail` means
    /// nothing answered.
    InjectSynack {
        from: String,
        target: SocketAddr,
        expect: Expect,
    },
    /// Background traffic from a host (UDP to the ISP resolver, TCP to whoami,
    /// ICMP) until `storm-stop`.
    StormStart {
        from: String,
    },
    StormStop,
    /// Malformed DNS messages (UDP and TCP) to a resolver; passes if the
    /// resolver is still running afterwards (the next step asks it).
    DnsGarbage {
        from: String,
        server: Option<SocketAddr>,
    },
    /// Wait until the background traffic has sent this many rounds (a
    /// traffic quota, not a clock).
    StormWait {
        rounds: u64,
    },
    /// Ask the gateway's health endpoint (from inside its namespace) until it
    /// says healthy (`expect = "healthy"`) or unhealthy, within `timeout`.
    Health {
        healthy: bool,
        target: SocketAddr,
        timeout: Duration,
    },
    /// A request to the gateway's control server (from its namespace):
    /// `method`, `path`, optional `auth` ("basic USER:PASSWORD" or "apikey
    /// KEY"), optional `body`; `status` is the expected HTTP status and
    /// `contains` a substring the body must have.
    Control {
        method: String,
        path: String,
        target: SocketAddr,
        headers: Vec<(String, String)>,
        body: String,
        status: u16,
        contains: Option<String>,
    },
    /// Knock on the gateway's forwarded port (read from its status file):
    /// `via = "exit"` (a prober on the internet at 203.0.113.77), `"home"`
    /// (the same port at the home address) or `"lan"` (from the admin LAN
    /// at the gateway's eth0). A stand-in listens on the port in the
    /// gateway's namespace.
    ForwardedPort {
        via: String,
        expect: Expect,
    },
    /// What the gateway's VPN_PORT_FORWARDING_UP_COMMAND/_DOWN_COMMAND
    /// did: the scenario sets them to append `up|down {{PORT}} {{PORTS}}
    /// {{VPN_INTERFACE}}` to `{port_commands}` (a file of the run). `up`:
    /// the last line announces the port of the status file; `down`: it
    /// withdraws the port last knocked on; `none`: no command ran at all.
    /// Waits up to `timeout` for it.
    PortCommand {
        expect: PortCommandExpect,
        timeout: Duration,
    },
    /// A fault or repair done to the lab or the gateway.
    Fault(Fault),
    /// A change to the gateway's namespace made from outside, as other
    /// software on the machine might make it (a container engine rewriting
    /// rules, a network manager restoring routes, the OOM killer): not asked
    /// of the gateway, and no gateway should need to survive it to pass;
    /// the scenario's verdict stays leak-based.
    Interfere(Interference),
}

/// What an `interfere` step changes in the gateway's namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interference {
    /// An nftables script run in the gateway's namespace (`nft -f -`).
    pub nft: Option<String>,
    /// Default routes (IPv4 and IPv6) via the home router on eth0.
    pub routes_around: bool,
    /// The gateway host's resolv.conf replaced with this text.
    pub resolv_conf: Option<String>,
    /// SIGKILL every process in the gateway's namespace (an unexpected
    /// death: the gateway's exit is then a finding).
    pub kill: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PortCommandExpect {
    Up,
    Down,
    None,
}

/// Things done to the lab or the gateway from outside, by the runner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Ask the gateway to stop its tunnel (`PUT /v1/vpn/status`); it keeps
    /// running.
    StopTunnel,
    /// Ask the gateway to start its tunnel again.
    StartTunnel,
    /// SIGKILL the gateway.
    KillGateway,
    /// Start a (new) gateway process.
    StartGateway,
    /// The provider's server stops answering (drops every datagram).
    ProviderDown,
    ProviderUp,
    /// The provider's NAT-PMP server refuses every mapping (OUT_OF_RESOURCES),
    /// or grants them again.
    ProviderRefusesPorts,
    ProviderGrantsPorts,
    /// The ISP drops UDP 51820 in both directions.
    IspBlockWireguard,
    IspUnblockWireguard,
    /// Default routes (IPv4 and IPv6) via the home router on gw's eth0, as a
    /// buggy network manager would restore them: with them, only the kill
    /// switch stands between the dependents and a leak.
    RouteAroundTunnel,
}

/// Action names of the faults, as written in scenario files.
pub const FAULTS: [(&str, Fault); 11] = [
    ("stop-tunnel", Fault::StopTunnel),
    ("start-tunnel", Fault::StartTunnel),
    ("kill-gateway", Fault::KillGateway),
    ("start-gateway", Fault::StartGateway),
    ("provider-down", Fault::ProviderDown),
    ("provider-up", Fault::ProviderUp),
    ("provider-refuses-ports", Fault::ProviderRefusesPorts),
    ("provider-grants-ports", Fault::ProviderGrantsPorts),
    ("isp-block-wireguard", Fault::IspBlockWireguard),
    ("isp-unblock-wireguard", Fault::IspUnblockWireguard),
    ("route-around-tunnel", Fault::RouteAroundTunnel),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Where it came from (a path, or `builtin:NAME`).
    pub source: String,
    pub gateway_env: BTreeMap<String, String>,
    /// Start the gateway before the first step (default); `false` for
    /// scenarios that start it themselves.
    pub gateway_start: bool,
    pub steps: Vec<Step>,
    pub leak_wires: Vec<String>,
}

impl Scenario {
    /// Does a gateway run in this scenario (started before the first step,
    /// or by a step)?
    pub fn needs_gateway(&self) -> bool {
        self.gateway_start
            || self
                .steps
                .iter()
                .any(|s| s.action == Action::Fault(Fault::StartGateway))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    step: Vec<RawStep>,
    #[serde(default)]
    leaks: Option<RawLeaks>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    #[serde(default)]
    env: BTreeMap<String, String>,
    start: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeaks {
    wires: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    name: Option<String>,
    action: String,
    from: Option<String>,
    target: Option<String>,
    server: Option<String>,
    timeout: Option<String>,
    expect: Option<String>,
    #[serde(default)]
    logged_by: Vec<String>,
    #[serde(default)]
    not_logged_by: Vec<String>,
    rounds: Option<u64>,
    query: Option<String>,
    method: Option<String>,
    path: Option<String>,
    auth: Option<String>,
    body: Option<String>,
    status: Option<u16>,
    contains: Option<String>,
    via: Option<String>,
    nft: Option<String>,
    routes: Option<String>,
    resolv_conf: Option<String>,
    kill: Option<bool>,
}

const ACTIONS: &str = "interfere, wait-handshake, wait-firewall, wait-tunnel-restart, health, control, forwarded-port, port-command, http, dns, dot, doh, udp, ping, raw-frame, inject-synack, storm-start, storm-wait, storm-stop, dns-garbage, and the faults stop-tunnel, start-tunnel, kill-gateway, start-gateway, provider-down, provider-up, provider-refuses-ports, provider-grants-ports, isp-block-wireguard, isp-unblock-wireguard, route-around-tunnel";

fn parse_expect(s: &str) -> Result<Expect, String> {
    let s = s.trim();
    if s == "fail" {
        return Ok(Expect::Fail);
    }
    if s == "answer" {
        return Ok(Expect::Answer);
    }
    if let Some(ip) = s.strip_prefix("seen-as ") {
        return ip
            .trim()
            .parse()
            .map(Expect::SeenAs)
            .map_err(|_| format!("expect: {ip:?} is not an IP address"));
    }
    Err(format!(
        "expect = {s:?}: use \"seen-as ADDRESS\", \"answer\" or \"fail\""
    ))
}

impl RawStep {
    fn into_step(self, topo: &Topology) -> Result<Step, String> {
        let name = self.name.clone().unwrap_or_else(|| self.action.clone());
        let need = |field: &str, v: &Option<String>| -> Result<String, String> {
            v.clone()
                .ok_or_else(|| format!("action {} needs `{field}`", self.action))
        };
        let host = |v: &Option<String>| -> Result<String, String> {
            let h = need("from", v)?;
            if topo.host(&h).is_none() {
                let known: Vec<_> = topo.hosts.iter().map(|h| h.name).collect();
                return Err(format!(
                    "from = {h:?} is not a lab host ({})",
                    known.join(", ")
                ));
            }
            Ok(h)
        };
        let addr = |field: &str, v: &Option<String>| -> Result<SocketAddr, String> {
            let s = need(field, v)?;
            s.parse()
                .map_err(|_| format!("{field} = {s:?} is not an address:port"))
        };
        let services = |field: &str, v: &[String]| -> Result<Vec<String>, String> {
            for s in v {
                if !SERVICES.contains(&s.as_str()) {
                    return Err(format!(
                        "{field}: unknown service {s:?} ({})",
                        SERVICES.join(", ")
                    ));
                }
            }
            Ok(v.to_vec())
        };
        let unused = |fields: &[(&str, bool)]| -> Result<(), String> {
            for (f, set) in fields {
                if *set {
                    return Err(format!("`{f}` means nothing for action {}", self.action));
                }
            }
            Ok(())
        };
        // `timeout`, or the action's default.
        let timeout_or = |default: Duration| -> Result<Duration, String> {
            match &self.timeout {
                None => Ok(default),
                Some(t) => {
                    humantime::parse_duration(t).map_err(|e| format!("timeout = {t:?}: {e}"))
                }
            }
        };
        // Probes that either get an answer or must not: "answer" or "fail".
        let answer_or_fail = || -> Result<Expect, String> {
            let expect = parse_expect(&need("expect", &self.expect)?)?;
            if matches!(expect, Expect::SeenAs(_)) {
                return Err(format!("{} expects \"answer\" or \"fail\"", self.action));
            }
            Ok(expect)
        };
        // The expectation, with which lab services must, and must not, have
        // seen the probe.
        let check = |expect: Expect| -> Result<Check, String> {
            Ok(Check {
                expect,
                logged_by: services("logged-by", &self.logged_by)?,
                not_logged_by: services("not-logged-by", &self.not_logged_by)?,
            })
        };
        // A probe from a lab host to ADDRESS:PORT, with far-end checks;
        // `seen_as` allows `expect = "seen-as ADDRESS"` besides answer/fail.
        let probe = |seen_as: bool| -> Result<(String, SocketAddr, Check), String> {
            unused(&[
                ("server", self.server.is_some()),
                ("timeout", self.timeout.is_some()),
            ])?;
            let expect = if seen_as {
                parse_expect(&need("expect", &self.expect)?)?
            } else {
                answer_or_fail()?
            };
            let check = check(expect)?;
            Ok((host(&self.from)?, addr("target", &self.target)?, check))
        };
        if self.query.is_some() && self.action != "dns" {
            return Err(format!("`query` means nothing for action {}", self.action));
        }
        for (field, set) in [
            ("method", self.method.is_some()),
            ("path", self.path.is_some()),
            ("auth", self.auth.is_some()),
            ("body", self.body.is_some()),
            ("status", self.status.is_some()),
            ("contains", self.contains.is_some()),
            ("via", self.via.is_some() && self.action != "forwarded-port"),
        ] {
            if set && self.action != "control" {
                return Err(format!(
                    "`{field}` means nothing for action {}",
                    self.action
                ));
            }
        }
        for (field, set) in [
            ("nft", self.nft.is_some()),
            ("routes", self.routes.is_some()),
            ("resolv-conf", self.resolv_conf.is_some()),
            ("kill", self.kill.is_some()),
        ] {
            if set && self.action != "interfere" {
                return Err(format!(
                    "`{field}` means nothing for action {}",
                    self.action
                ));
            }
        }
        let action = match self.action.as_str() {
            "interfere" => {
                unused(&[
                    ("from", self.from.is_some()),
                    ("target", self.target.is_some()),
                    ("server", self.server.is_some()),
                    ("expect", self.expect.is_some()),
                    ("timeout", self.timeout.is_some()),
                ])?;
                let routes_around = match self.routes.as_deref() {
                    None => false,
                    Some("around-tunnel") => true,
                    Some(other) => {
                        return Err(format!("routes = {other:?}: use \"around-tunnel\""));
                    }
                };
                let i = Interference {
                    nft: self.nft.clone(),
                    routes_around,
                    resolv_conf: self.resolv_conf.clone(),
                    kill: self.kill.unwrap_or(false),
                };
                if i == Interference::default() {
                    return Err(
                        "interfere needs at least one of `nft`, `routes`, `resolv-conf`, `kill`"
                            .into(),
                    );
                }
                Action::Interfere(i)
            }
            "wait-handshake" | "wait-firewall" | "wait-tunnel-restart" => {
                unused(&[
                    ("from", self.from.is_some()),
                    ("target", self.target.is_some()),
                    ("server", self.server.is_some()),
                    ("expect", self.expect.is_some()),
                ])?;
                let timeout = timeout_or(Duration::from_secs(15))?;
                match self.action.as_str() {
                    "wait-handshake" => Action::WaitHandshake { timeout },
                    "wait-firewall" => Action::WaitFirewall { timeout },
                    _ => Action::WaitTunnelRestart { timeout },
                }
            }
            "http" => {
                let (from, target, check) = probe(true)?;
                Action::Http {
                    from,
                    target,
                    check,
                }
            }
            "dns" => {
                unused(&[
                    ("target", self.target.is_some()),
                    ("timeout", self.timeout.is_some()),
                ])?;
                let check = check(answer_or_fail()?)?;
                Action::Dns {
                    from: host(&self.from)?,
                    server: match self.server.as_deref() {
                        Some("system") => None,
                        _ => Some(addr("server", &self.server)?),
                    },
                    zone: match &self.query {
                        None => "probe.lab".into(),
                        Some(q) => {
                            let z = q.trim().trim_end_matches('.').to_string();
                            if z.is_empty() || hickory_proto::rr::Name::from_ascii(&z).is_err() {
                                return Err(format!("query = {q:?} is not a DNS name"));
                            }
                            z
                        }
                    },
                    check,
                }
            }
            "dot" | "doh" => {
                let (from, target, check) = probe(false)?;
                Action::EncryptedDns {
                    https: self.action == "doh",
                    from,
                    target,
                    check,
                }
            }
            "udp" | "raw-frame" => {
                let (from, target, check) = probe(false)?;
                if self.action == "udp" {
                    Action::Udp {
                        from,
                        target,
                        check,
                    }
                } else {
                    if check.expect == Expect::Answer {
                        return Err("raw-frame expects \"fail\" (its frame must not get out) or uses logged-by".into());
                    }
                    Action::RawFrame {
                        from,
                        target,
                        check,
                    }
                }
            }
            "ping" | "inject-synack" => {
                unused(&[
                    ("server", self.server.is_some()),
                    ("timeout", self.timeout.is_some()),
                    ("logged-by", !self.logged_by.is_empty()),
                    ("not-logged-by", !self.not_logged_by.is_empty()),
                ])?;
                let expect = answer_or_fail()?;
                let from = host(&self.from)?;
                if self.action == "ping" {
                    let t = need("target", &self.target)?;
                    let target = t
                        .parse()
                        .map_err(|_| format!("target = {t:?} is not an IP address"))?;
                    Action::Ping {
                        from,
                        target,
                        expect,
                    }
                } else {
                    Action::InjectSynack {
                        from,
                        target: addr("target", &self.target)?,
                        expect,
                    }
                }
            }
            "dns-garbage" => {
                unused(&[
                    ("target", self.target.is_some()),
                    ("expect", self.expect.is_some()),
                    ("timeout", self.timeout.is_some()),
                ])?;
                Action::DnsGarbage {
                    from: host(&self.from)?,
                    server: match self.server.as_deref() {
                        Some("system") => None,
                        _ => Some(addr("server", &self.server)?),
                    },
                }
            }
            "control" => {
                unused(&[
                    ("from", self.from.is_some()),
                    ("server", self.server.is_some()),
                    ("expect", self.expect.is_some()),
                ])?;
                let path = need("path", &self.path)?;
                if !path.starts_with('/') {
                    return Err(format!("path = {path:?} must start with /"));
                }
                let mut headers = Vec::new();
                match self.auth.as_deref().map(str::trim) {
                    None => {}
                    Some(a) if a.starts_with("basic ") => {
                        let creds = base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            a["basic ".len()..].trim(),
                        );
                        headers.push(("authorization".to_string(), format!("Basic {creds}")));
                    }
                    Some(a) if a.starts_with("apikey ") => headers.push((
                        "x-api-key".to_string(),
                        a["apikey ".len()..].trim().to_string(),
                    )),
                    Some(a) => {
                        return Err(format!(
                            "auth = {a:?}: use \"basic USER:PASSWORD\" or \"apikey KEY\""
                        ));
                    }
                }
                Action::Control {
                    method: self
                        .method
                        .clone()
                        .unwrap_or_else(|| "GET".into())
                        .to_ascii_uppercase(),
                    path,
                    target: match &self.target {
                        None => "127.0.0.1:8000".parse().expect("literal"),
                        Some(_) => addr("target", &self.target)?,
                    },
                    headers,
                    body: self.body.clone().unwrap_or_default(),
                    status: self
                        .status
                        .ok_or("action control needs `status` (the expected HTTP status)")?,
                    contains: self.contains.clone(),
                }
            }
            "forwarded-port" => {
                let via = need("via", &self.via)?;
                if !["exit", "home", "lan"].contains(&via.as_str()) {
                    return Err(format!("via = {via:?}: use exit, home or lan"));
                }
                let expect = answer_or_fail()?;
                Action::ForwardedPort { via, expect }
            }
            "port-command" => {
                unused(&[
                    ("from", self.from.is_some()),
                    ("target", self.target.is_some()),
                    ("server", self.server.is_some()),
                ])?;
                let expect = match need("expect", &self.expect)?.as_str() {
                    "up" => PortCommandExpect::Up,
                    "down" => PortCommandExpect::Down,
                    "none" => PortCommandExpect::None,
                    other => {
                        return Err(format!("expect = {other:?}: use up, down or none"));
                    }
                };
                let timeout = timeout_or(Duration::from_secs(5))?;
                Action::PortCommand { expect, timeout }
            }
            "health" => {
                unused(&[
                    ("from", self.from.is_some()),
                    ("server", self.server.is_some()),
                ])?;
                let healthy = match need("expect", &self.expect)?.as_str() {
                    "healthy" => true,
                    "unhealthy" => false,
                    other => {
                        return Err(format!(
                            "expect = {other:?}: use \"healthy\" or \"unhealthy\""
                        ));
                    }
                };
                let target = match &self.target {
                    None => "127.0.0.1:9999".parse().expect("literal"),
                    Some(_) => addr("target", &self.target)?,
                };
                let timeout = timeout_or(Duration::from_secs(10))?;
                Action::Health {
                    healthy,
                    target,
                    timeout,
                }
            }
            "storm-wait" => {
                unused(&[
                    ("from", self.from.is_some()),
                    ("target", self.target.is_some()),
                    ("server", self.server.is_some()),
                    ("expect", self.expect.is_some()),
                    ("timeout", self.timeout.is_some()),
                ])?;
                let rounds = self.rounds.ok_or("storm-wait needs `rounds`")?;
                if rounds == 0 {
                    return Err("rounds must be at least 1".into());
                }
                Action::StormWait { rounds }
            }
            "storm-start" => {
                unused(&[
                    ("target", self.target.is_some()),
                    ("server", self.server.is_some()),
                    ("expect", self.expect.is_some()),
                    ("timeout", self.timeout.is_some()),
                ])?;
                Action::StormStart {
                    from: host(&self.from)?,
                }
            }
            other => {
                let simple = FAULTS
                    .iter()
                    .find(|(n, _)| *n == other)
                    .map(|(_, f)| Action::Fault(*f));
                let simple = simple.or((other == "storm-stop").then_some(Action::StormStop));
                let Some(action) = simple else {
                    return Err(format!("unknown action {other:?} (known: {ACTIONS})"));
                };
                unused(&[
                    ("from", self.from.is_some()),
                    ("target", self.target.is_some()),
                    ("server", self.server.is_some()),
                    ("expect", self.expect.is_some()),
                    ("timeout", self.timeout.is_some()),
                    ("logged-by", !self.logged_by.is_empty()),
                    ("not-logged-by", !self.not_logged_by.is_empty()),
                    ("rounds", self.rounds.is_some()),
                ])?;
                action
            }
        };
        Ok(Step { name, action })
    }
}

/// Parses and validates one scenario file's text.
pub fn parse(source: &str, text: &str, topo: &Topology) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
        file: source.to_string(),
        message: e.to_string().trim().to_string(),
    })?;
    let invalid = |message: String| ScenarioError::Invalid {
        file: source.to_string(),
        message,
    };
    if raw.name.trim().is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "name = {:?}: use letters, digits, - and _ (it names report files)",
            raw.name
        )));
    }
    if raw.step.is_empty() {
        return Err(invalid("no [[step]]: a scenario must do something".into()));
    }
    let mut steps = Vec::new();
    for (i, s) in raw.step.into_iter().enumerate() {
        let name = s.name.clone().unwrap_or_else(|| s.action.clone());
        steps.push(s.into_step(topo).map_err(|message| ScenarioError::Step {
            file: source.to_string(),
            step: i + 1,
            name,
            message,
        })?);
    }
    let known_wires: Vec<&str> = topo.taps.iter().map(|t| t.wire).collect();
    let leak_wires = match raw.leaks {
        None => vec![wire::GW.to_string(), wire::UPLINK.to_string()],
        Some(l) => {
            for w in &l.wires {
                if !known_wires.contains(&w.as_str()) {
                    return Err(invalid(format!(
                        "leaks.wires: unknown wire {w:?} ({})",
                        known_wires.join(", ")
                    )));
                }
            }
            l.wires
        }
    };
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        tags: raw.tags,
        source: source.to_string(),
        gateway_env: raw.gateway.env,
        gateway_start: raw.gateway.start.unwrap_or(true),
        steps,
        leak_wires,
    })
}

/// The default suite, compiled into the binary from `scenarios/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("baseline", include_str!("../../scenarios/baseline.toml")),
    (
        "killswitch-tunnel-down",
        include_str!("../../scenarios/killswitch-tunnel-down.toml"),
    ),
    (
        "killswitch-server-gone",
        include_str!("../../scenarios/killswitch-server-gone.toml"),
    ),
    (
        "killswitch-gateway-crash",
        include_str!("../../scenarios/killswitch-gateway-crash.toml"),
    ),
    (
        "killswitch-startup",
        include_str!("../../scenarios/killswitch-startup.toml"),
    ),
    ("ipv6-leak", include_str!("../../scenarios/ipv6-leak.toml")),
    (
        "ipv6-tunnel",
        include_str!("../../scenarios/ipv6-tunnel.toml"),
    ),
    (
        "raw-socket-leak",
        include_str!("../../scenarios/raw-socket-leak.toml"),
    ),
    (
        "cve-2019-14899",
        include_str!("../../scenarios/cve-2019-14899.toml"),
    ),
    (
        "lan-matrix",
        include_str!("../../scenarios/lan-matrix.toml"),
    ),
    (
        "outbound-subnets",
        include_str!("../../scenarios/outbound-subnets.toml"),
    ),
    ("dns-leak", include_str!("../../scenarios/dns-leak.toml")),
    (
        "dns-blocklist",
        include_str!("../../scenarios/dns-blocklist.toml"),
    ),
    (
        "dns-bad-input",
        include_str!("../../scenarios/dns-bad-input.toml"),
    ),
    (
        "doh-dot-bypass",
        include_str!("../../scenarios/doh-dot-bypass.toml"),
    ),
    (
        "dns-over-tls",
        include_str!("../../scenarios/dns-over-tls.toml"),
    ),
    ("health", include_str!("../../scenarios/health.toml")),
    ("reconnect", include_str!("../../scenarios/reconnect.toml")),
    (
        "gateway-restart",
        include_str!("../../scenarios/gateway-restart.toml"),
    ),
    (
        "control-auth",
        include_str!("../../scenarios/control-auth.toml"),
    ),
    (
        "forwarded-port",
        include_str!("../../scenarios/forwarded-port.toml"),
    ),
    (
        "forwarded-port-refused",
        include_str!("../../scenarios/forwarded-port-refused.toml"),
    ),
    (
        "forwarded-port-redirect",
        include_str!("../../scenarios/forwarded-port-redirect.toml"),
    ),
];

pub fn builtin(topo: &Topology) -> Result<Vec<Scenario>, ScenarioError> {
    BUILTIN
        .iter()
        .map(|(name, text)| parse(&format!("builtin:{name}"), text, topo))
        .collect()
}

/// Loads every `*.toml` in `dir`, sorted by file name.
pub fn load_dir(dir: &std::path::Path, topo: &Topology) -> Result<Vec<Scenario>, ScenarioError> {
    let io = |e: std::io::Error| ScenarioError::Parse {
        file: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| ScenarioError::Parse {
                file: p.display().to_string(),
                message: e.to_string(),
            })?;
            parse(&p.display().to_string(), &text, topo)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology::default_profile()
    }

    fn err(text: &str) -> String {
        parse("t.toml", text, &topo()).unwrap_err().to_string()
    }

    #[test]
    fn the_builtin_suite_parses() {
        let all = builtin(&topo()).unwrap();
        let baseline = all.iter().find(|s| s.name == "baseline").unwrap();
        assert!(matches!(
            baseline.steps[0].action,
            Action::WaitHandshake { .. }
        ));
        assert!(baseline.steps.iter().any(|s| matches!(
            &s.action,
            Action::Http { check: Check { expect: Expect::SeenAs(ip), .. }, .. } if ip.to_string() == "203.0.113.77"
        )));
        assert_eq!(baseline.leak_wires, vec!["gw", "uplink"]);
    }

    #[test]
    fn scenario_files_in_the_repo_match_the_builtin_list() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let on_disk = load_dir(&dir, &topo()).unwrap();
        let builtin = builtin(&topo()).unwrap();
        let names = |v: &[Scenario]| {
            let mut n: Vec<String> = v.iter().map(|s| s.name.clone()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&on_disk), names(&builtin));
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let e = err("name = \"x\"\n[[step]\n");
        assert!(e.starts_with("t.toml:"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn unknown_fields_and_actions_are_named() {
        let e = err(
            "name = \"x\"\n[[step]]\naction = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"fail\"\ncolour = \"red\"\n",
        );
        assert!(e.contains("colour"), "{e}");
        let e = err("name = \"x\"\n[[step]]\naction = \"teleport\"\n");
        assert!(
            e.contains("step 1 (teleport)") && e.contains("unknown action \"teleport\""),
            "{e}"
        );
    }

    #[test]
    fn bad_step_fields_are_named_with_the_step() {
        let cases = [
            (
                "action = \"http\"\nfrom = \"mars\"\ntarget = \"192.0.2.80:80\"\nexpect = \"fail\"",
                "not a lab host",
            ),
            (
                "action = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80\"\nexpect = \"fail\"",
                "not an address:port",
            ),
            (
                "action = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"",
                "needs `expect`",
            ),
            (
                "action = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"seen-as nowhere\"",
                "not an IP address",
            ),
            (
                "action = \"dns\"\nfrom = \"gw\"\nserver = \"10.64.0.1:53\"\nexpect = \"answer\"\nlogged-by = [\"nsa\"]",
                "unknown service \"nsa\"",
            ),
            (
                "action = \"wait-handshake\"\ntimeout = \"soon\"",
                "timeout = \"soon\"",
            ),
            (
                "action = \"wait-handshake\"\nfrom = \"gw\"",
                "`from` means nothing",
            ),
        ];
        for (body, want) in cases {
            let e = err(&format!("name = \"x\"\n[[step]]\nname = \"s\"\n{body}\n"));
            assert!(e.contains("step 1 (s)"), "{e}");
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn empty_scenarios_bad_names_and_unknown_wires_are_refused() {
        assert!(err("name = \"x\"\n").contains("no [[step]]"));
        assert!(
            err("name = \"../etc\"\n[[step]]\naction = \"wait-handshake\"\n").contains("name =")
        );
        let e = err(
            "name = \"x\"\n[[step]]\naction = \"wait-handshake\"\n[leaks]\nwires = [\"wifi\"]\n",
        );
        assert!(e.contains("unknown wire \"wifi\""), "{e}");
    }
}
