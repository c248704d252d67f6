//! Scenarios as data: what a scenario file says, validated into typed
//! steps. Pure: text in, a [`Scenario`] or an error naming the file, line
//! and column out ([`parse`]); no lab, no I/O.
//!
//! ```toml
//! name = "baseline"
//! description = "what it proves"
//! tags = ["smoke"]
//! requires = ["control-server"]  # what the gateway under test must offer
//!                                # (unmet: every case skipped, with the reason)
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
//!                               # ("split-around-tunnel": /1 routes;
//!                               # "rule-around-tunnel": a policy rule;
//!                               # "metric-around-tunnel": a lower metric)
//! resolv-conf = "nameserver 192.0.2.53"  # the gateway host's resolv.conf
//! kill = true                   # SIGKILL every process there (OOM killer)
//! ipv4-only-lan = true          # eth0 loses its global IPv6 and v6 default
//! rogue-ra = true               # a rogue router advertisement on the LAN
//!
//! [leaks]
//! wires = ["gw", "uplink"]      # watched wires that must carry no leak
//! ```
//!
//! Every action and its fields: [`actions::ACTIONS`] (also `leakhound
//! actions`). A key an action does not know is an error, named with its
//! file, line and column; so is a `{name}` in a gateway variable that is
//! neither a lab role nor one of the run's [`placeholder`]s.

pub mod actions;
pub mod explain;
mod parse;
pub mod placeholder;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use parse::{ScenarioError, parse};

/// The rule for every name that becomes part of a report file's name
/// (scenarios, targets): ASCII letters, digits, `-` and `_`, at most 64,
/// not empty. Nothing with `.` or `/` ever reaches a path this way.
pub fn is_file_name_word(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Expect {
    /// The probe gets through and the far end sees this source address.
    SeenAs(IpAddr),
    /// The probe gets an answer.
    Answer,
    /// The probe gets nothing (times out or is refused).
    Fail,
    /// Either: only the wires judge it (a probe whose answer depends on
    /// where the gateway routes it, e.g. to the VPN server's own address,
    /// which one gateway refuses and another sends through the tunnel).
    Any,
}

impl Expect {
    /// Whether the probe may end without an answer (`fail` or `any`): it
    /// may wait out its timeout, and it promises no frames on the wires.
    pub fn may_go_unanswered(&self) -> bool {
        matches!(self, Expect::Fail | Expect::Any)
    }
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
    /// Wait until traffic flows through the tunnel again: whoami, asked
    /// from the gateway host with short attempts, sees the VPN exit.
    WaitTraffic {
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
    /// A UDP datagram carrying the nonce (padded to `size` payload bytes);
    /// `answer` means the whole datagram came back.
    Udp {
        from: String,
        target: SocketAddr,
        check: Check,
        size: Option<usize>,
    },
    /// ICMP (or ICMPv6) echo with the nonce in the payload (padded to
    /// `size` bytes), with the IPv4 don't-fragment bit when asked.
    Ping {
        from: String,
        target: IpAddr,
        expect: Expect,
        size: Option<usize>,
        dont_fragment: bool,
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
    /// Start a (new) gateway with background traffic from `from` (and the
    /// real dependents) beginning with it: at its report of a closed kill
    /// switch if it makes one, at its first instant otherwise.
    StartGatewayStorming {
        from: String,
    },
    /// The leak fuzzer's spray ([`crate::spray`]).
    Fuzz(FuzzSpec),
    /// `leakhound prove` on `from`'s namespace; a witness is written from
    /// it for the judge to find on the wires.
    Prove {
        from: String,
    },
    /// Background traffic from a host (UDP to the ISP resolver, TCP to whoami,
    /// ICMP) until `storm-stop`.
    StormStart {
        from: String,
    },
    StormStop,
    /// Long-lived flows from a host, made through the tunnel and kept busy
    /// until `flows-stop`: a TCP connection to whoami (HTTP/1.1 keep-alive)
    /// and a connected UDP socket to the echo service, IPv4 and IPv6. What
    /// Gluetun issue #2621 is about: flows that keep going after a stop.
    FlowsStart {
        from: String,
    },
    /// Wait until the flows have sent this many more rounds (a quota, not a
    /// clock).
    FlowsWait {
        rounds: u64,
    },
    FlowsStop,
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
        /// Prometheus samples (unlabelled) that must have grown by at least
        /// this much since the previous `control` step of the scenario read
        /// them (`GET /metrics`: the tunnel's byte counters).
        grows: Vec<(String, u64)>,
    },
    /// Knock on the gateway's forwarded port (read from its status file):
    /// `via = "exit"` (a prober on the internet at 203.0.113.77), `"home"`
    /// (the same port at the home address) or `"lan"` (from the admin LAN
    /// at the gateway's eth0). A stand-in listens on the port in the
    /// gateway's namespace.
    ForwardedPort {
        via: Via,
        expect: Expect,
        /// Knock with a BitTorrent handshake for the swarm's torrent
        /// instead: the real qBittorrent listens on the port (set by the
        /// UP command), no stand-in; `answer` means it handshook back.
        bittorrent: bool,
    },
    /// The real qBittorrent is given the scenario's torrent through its
    /// WebUI API (the lab's swarm starts for it: a tracker and a seeder on
    /// the lab's internet).
    TorrentAdd,
    /// Wait until qBittorrent reports at least `progress` (0..=1) of the
    /// torrent, within `timeout`.
    TorrentWait {
        progress: f64,
        timeout: Duration,
    },
    /// qBittorrent is asked to announce again. `answer`: a new announce
    /// reaches the tracker; `fail`: qBittorrent reports the tracker not
    /// working and none reached it. Within `timeout`.
    TorrentAnnounce {
        expect: Expect,
        timeout: Duration,
    },
    /// The far end's view of the swarm so far: the tracker and the seeder
    /// saw the client (at least one announce and one connection) and only
    /// from `seen_as`; no announce volunteers another address.
    SwarmSeen {
        seen_as: IpAddr,
    },
    /// qBittorrent's listening port is the gateway's forwarded port (from
    /// its status file) within `timeout`, and never 0.
    TorrentPort {
        timeout: Duration,
    },
    /// The real NZBGet is given an NZB of a post made for the step, which
    /// the lab's news server publishes (through its JSON-RPC API).
    NzbAdd,
    /// The last NZB given: `answer`, NZBGet completes it within `timeout`;
    /// `fail`, NZBGet has it queued and none of its articles reaches the
    /// news server within the probes' timeout.
    NzbWait {
        expect: Expect,
        timeout: Duration,
    },
    /// The news server saw NZBGet during this scenario, only from
    /// `seen_as`.
    NewsSeen {
        seen_as: IpAddr,
    },
    /// None of these lab services has logged anything from anyone since
    /// the scenario started (what real applications send on their own
    /// carries no nonce).
    Unheard {
        by: Vec<String>,
    },
    /// Byparr's stand-in: headless Chromium in the gateway's namespace
    /// loads the browser probe's page ([`crate::browser::page`]). `seen-as`:
    /// whoami, the STUN server and the QUIC listener saw only that
    /// address, WebRTC shows only it; `fail`: nothing arrived anywhere.
    /// The DoH server may never get the page's name.
    Browse {
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
    /// Routes around the tunnel, via the home router on eth0.
    pub routes: Option<RouteInjection>,
    /// The gateway host's resolv.conf replaced with this text.
    pub resolv_conf: Option<String>,
    /// SIGKILL every process in the gateway's namespace (an unexpected
    /// death: the gateway's exit is then a finding).
    pub kill: bool,
    /// The gateway's LAN turns IPv4-only, as most home and Docker networks
    /// are: its global IPv6 addresses and IPv6 default routes on eth0 go
    /// (the link-local address stays).
    pub ipv4_only_lan: bool,
    /// A rogue router on the gateway's LAN (the home router's namespace)
    /// advertises [`crate::topology::addr::ROGUE_RA_PREFIX`]/64 for SLAAC and itself as the
    /// default router: whatever the kernel's `accept_ra` lets in, the
    /// gateway gets a global IPv6 address and a default route on eth0.
    pub rogue_ra: bool,
}

/// Which routes an `interfere` step puts around the tunnel, all via the
/// home router on the gateway's eth0 (IPv4 and IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteInjection {
    /// `around-tunnel`: default routes in the main table, replacing the
    /// gateway's own.
    Around,
    /// `split-around-tunnel`: 0.0.0.0/1, 128.0.0.0/1, ::/1 and 8000::/1,
    /// more specific than any default route: TunnelVision (CVE-2024-3661)
    /// as DHCP option 121 pushes it.
    Split,
    /// `rule-around-tunnel`: a policy rule at priority 1 (before any rule a
    /// gateway adds) to a table of its own holding a default route:
    /// TunnelVision's variant for gateways that route by policy rules
    /// (Gluetun's `not fwmark 51820 lookup 51820`, wg-quick's).
    Rule,
    /// `metric-around-tunnel`: a default route in the main table with a
    /// lower metric than any default route there (or, at the lowest metric
    /// there is, put ahead of the others): a network manager or a DHCP
    /// client adding its own default route beside the tunnel's.
    LowerMetric,
}

impl RouteInjection {
    /// The names a scenario file uses.
    pub const NAMES: [(&'static str, RouteInjection); 4] = [
        ("around-tunnel", RouteInjection::Around),
        ("split-around-tunnel", RouteInjection::Split),
        ("rule-around-tunnel", RouteInjection::Rule),
        ("metric-around-tunnel", RouteInjection::LowerMetric),
    ];
}

/// How a default route goes in ahead of the main table's others
/// ([`RouteInjection::LowerMetric`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricPlan {
    /// No default route of the family: one is added at the family's usual
    /// metric (0 for IPv4, 1024 for IPv6).
    Add(u32),
    /// One below the lowest metric there is.
    Below(u32),
    /// The lowest there is is already the lowest the kernel takes (0 for
    /// IPv4, 1 for IPv6: it reads 0 as 1024): added at that metric ahead of
    /// the others (`ip route prepend`), which the kernel's lookup tries
    /// first.
    Ahead(u32),
    /// A default route at the lowest metric the kernel takes already goes
    /// via that router (a gateway that routes by policy rules keeps its
    /// network's default route in the main table): nothing to add.
    Already(u32),
}

impl MetricPlan {
    /// The plan for a family whose main-table default routes are `routes`
    /// (metric, gateway), to put one via `via` first.
    pub fn for_routes(
        routes: &[(u32, Option<std::net::IpAddr>)],
        via: std::net::IpAddr,
        v6: bool,
    ) -> MetricPlan {
        let floor = u32::from(v6);
        match routes.iter().map(|(m, _)| *m).min() {
            None => MetricPlan::Add(if v6 { 1024 } else { 0 }),
            Some(m) if m > floor => MetricPlan::Below(m - 1),
            Some(m) if routes.contains(&(m, Some(via))) => MetricPlan::Already(m),
            Some(m) => MetricPlan::Ahead(m),
        }
    }
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
    /// Ask the gateway to stop its tunnel (`PUT /v1/vpn/status`, or from
    /// outside where it has no control server); it keeps running.
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
    /// The lab, as the provider's API would, issues a new key: it writes the
    /// private key to the gateway's WIREGUARD_PRIVATE_KEY_SECRETFILE, makes
    /// the provider accept its public key (and forget the old one), and
    /// tells the gateway (`PUT /v1/wireguard/key`).
    RotateKey,
    /// A check: a handshake initiation made with the key from before the
    /// last rotation, sent to the provider, gets no answer.
    OldKeyRefused,
    /// The provider forgets its port mappings and will not give the same
    /// ports again: the next mapping a client asks for is a new port (as
    /// after a reconnect to another server).
    ProviderNewPorts,
    /// Default routes (IPv4 and IPv6) via the home router on gw's eth0, as a
    /// buggy network manager would restore them: with them, only the kill
    /// switch stands between the dependents and a leak.
    RouteAroundTunnel,
}

impl Fault {
    /// Undoes an earlier fault (the gateway or the lab as before).
    pub fn is_recovery(self) -> bool {
        matches!(
            self,
            Fault::StartTunnel
                | Fault::StartGateway
                | Fault::ProviderUp
                | Fault::ProviderGrantsPorts
                | Fault::IspUnblockWireguard
        )
    }

    /// Only looks (a check, not something done).
    pub fn is_check(self) -> bool {
        matches!(self, Fault::OldKeyRefused)
    }
}

/// How long the lab's swarm takes to deliver its whole torrent (its
/// content at the seeder's rate, about 4 MiB at 1 MiB/s), for scheduling.
pub const SWARM_DOWNLOAD: Duration = Duration::from_secs(4);
/// About how long one browser probe takes (Chromium's start and the page's
/// checks, which end after [`crate::browser::PAGE_CHECK_MS`]).
pub const BROWSE: Duration = Duration::from_secs(8);

/// Action names of the faults, as written in scenario files.
pub const FAULTS: [(&str, Fault); 14] = [
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
    ("rotate-key", Fault::RotateKey),
    ("old-key-refused", Fault::OldKeyRefused),
    ("provider-new-ports", Fault::ProviderNewPorts),
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
    /// What the gateway under test must offer, as the file declares it (the
    /// actions imply more: see [`Scenario::requirements`]).
    pub requires: Vec<Capability>,
    /// Why it cannot run in the lab it was loaded for (a role that lab
    /// has no host for): the runner skips it with this reason.
    pub unfit: Option<String>,
}

impl Action {
    /// This action with [`service::PROVIDER_RESOLVER`] in its far-end
    /// checks replaced by `service`, the one the gateway's configuration
    /// asks; the action itself when it does not name it.
    pub fn with_provider_resolver(&self, service: &str) -> std::borrow::Cow<'_, Action> {
        let names = |c: &Check| {
            c.logged_by
                .iter()
                .chain(&c.not_logged_by)
                .any(|s| s == crate::topology::service::PROVIDER_RESOLVER)
        };
        match self.check() {
            Some(c) if names(c) => {
                let mut a = self.clone();
                if let Some(c) = a.check_mut() {
                    for s in c.logged_by.iter_mut().chain(c.not_logged_by.iter_mut()) {
                        if s == crate::topology::service::PROVIDER_RESOLVER {
                            *s = service.to_string();
                        }
                    }
                }
                std::borrow::Cow::Owned(a)
            }
            _ => std::borrow::Cow::Borrowed(self),
        }
    }

    /// The probe's far-end check, for probes that have one.
    pub fn check(&self) -> Option<&Check> {
        match self {
            Action::Http { check, .. }
            | Action::Dns { check, .. }
            | Action::EncryptedDns { check, .. }
            | Action::Udp { check, .. }
            | Action::RawFrame { check, .. } => Some(check),
            _ => None,
        }
    }

    fn check_mut(&mut self) -> Option<&mut Check> {
        match self {
            Action::Http { check, .. }
            | Action::Dns { check, .. }
            | Action::EncryptedDns { check, .. }
            | Action::Udp { check, .. }
            | Action::RawFrame { check, .. } => Some(check),
            _ => None,
        }
    }

    /// What the probe expects, for actions that are probes.
    pub fn expectation(&self) -> Option<&Expect> {
        match self {
            Action::Http { check, .. }
            | Action::Dns { check, .. }
            | Action::EncryptedDns { check, .. }
            | Action::Udp { check, .. }
            | Action::RawFrame { check, .. } => Some(&check.expect),
            Action::Ping { expect, .. }
            | Action::InjectSynack { expect, .. }
            | Action::Browse { expect } => Some(expect),
            _ => None,
        }
    }

    /// A probe that may get no answer and changes nothing (http, dns, udp,
    /// encrypted-dns, ping with `expect = "fail"` or `"any"`): consecutive ones wait
    /// out their timeouts together. Each still waits its full timeout, its
    /// far end is still asked for its own nonce, and the frames on the
    /// wires are tied to it by [`Action::probe_target`].
    pub fn is_silent_probe(&self) -> bool {
        matches!(
            self,
            Action::Http { .. }
                | Action::Dns { .. }
                | Action::Udp { .. }
                | Action::EncryptedDns { .. }
                | Action::Ping { .. }
        ) && self.expectation().is_some_and(Expect::may_go_unanswered)
    }

    /// Where a probe goes: the address and, except for ping, the port.
    /// `None` for a DNS query to the host's own resolver and for actions
    /// that are not probes.
    pub fn probe_target(&self) -> Option<(IpAddr, Option<u16>)> {
        match self {
            Action::Http { target, .. }
            | Action::Udp { target, .. }
            | Action::EncryptedDns { target, .. } => Some((target.ip(), Some(target.port()))),
            Action::Dns {
                server: Some(s), ..
            } => Some((s.ip(), Some(s.port()))),
            Action::Ping { target, .. } => Some((*target, None)),
            _ => None,
        }
    }
}

/// A `fuzz` step: where the spray comes from and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzSpec {
    pub from: String,
    /// Packets in all.
    pub packets: usize,
    /// How many of them come from the root side.
    pub root: usize,
    /// The most the spray may take.
    pub time: Duration,
}

impl Scenario {
    /// A scenario with no steps: only the gateway with the lab's
    /// configuration (`leakhound lab`, the benchmarks).
    pub fn idle(name: &str) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            tags: vec![],
            source: format!("leakhound {name}"),
            gateway_env: Default::default(),
            gateway_start: true,
            steps: vec![],
            leak_wires: vec![],
            requires: vec![],
            unfit: None,
        }
    }

    /// A rough guess of how long the scenario waits, for scheduling
    /// scenarios over parallel labs longest first: every probe that must
    /// get no answer waits out `probe_timeout` (a run of silent probes,
    /// which wait together, once), every fault a second, a torrent given to
    /// qBittorrent a second and its download [`SWARM_DOWNLOAD`] for the
    /// whole. Pure.
    pub fn expected_wait(&self, probe_timeout: Duration) -> Duration {
        let mut total = Duration::ZERO;
        let mut previous_silent = false;
        for s in &self.steps {
            let silent = s.action.is_silent_probe();
            total += match &s.action {
                _ if silent && previous_silent => Duration::ZERO,
                Action::Browse { .. } => BROWSE,
                a if a.expectation().is_some_and(Expect::may_go_unanswered) => probe_timeout,
                Action::TorrentAnnounce {
                    expect: Expect::Fail,
                    ..
                } => probe_timeout,
                Action::Fault(_) | Action::TorrentAdd | Action::NzbAdd => Duration::from_secs(1),
                Action::Fuzz(f) => f.time,
                Action::NzbWait {
                    expect: Expect::Fail,
                    ..
                } => probe_timeout,
                Action::NzbWait { .. } => SWARM_DOWNLOAD,
                Action::TorrentWait { progress, .. } => SWARM_DOWNLOAD.mul_f64(*progress),
                _ => Duration::ZERO,
            };
            previous_silent = silent;
        }
        total
    }
}

/// Where a `forwarded-port` step knocks from (`via` in scenario files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// A prober on the internet knocking at the VPN exit address.
    Exit,
    /// The same port at the home address (the ISP side of the home router).
    Home,
    /// A host of the admin LAN knocking at the gateway's eth0.
    Lan,
}

/// What a gateway under test may offer beyond being started, stopped and
/// killed (which any gateway can be). Targets declare theirs; a scenario
/// that needs one its target lacks is skipped with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Gluetun's HTTP control server with the lab's roles file
    /// (`HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH`).
    ControlServer,
    /// Gluetun's health server (`HEALTH_SERVER_ADDRESS`).
    HealthServer,
    /// Port forwarding through NAT-PMP with the provider (leakhound's
    /// `VPN_PORT_FORWARDING_GATEWAY`) and the UP/DOWN commands.
    PortForwarding,
    /// DNS blocklists read from local files (leakhound's
    /// `DNS_BLOCKLIST_DIR`; Gluetun downloads its own).
    BlocklistFiles,
    /// DNS over TLS (`DNS_UPSTREAM_RESOLVER_TYPE=dot`) to the resolver
    /// leakhound's `DOT_SERVER_ADDRESS` names, checked against a CA file
    /// (leakhound's `DOT_CA_FILE`, `DOT_SERVER_NAME`).
    DotCaFile,
    /// It reads leakhound's own variables (it is leakhound's gateway,
    /// packaged): it gets them, as the built-in does. Without it a target
    /// gets Gluetun's variables only.
    LeakhoundVariables,
    /// It takes a new private key from WIREGUARD_PRIVATE_KEY_SECRETFILE when
    /// told to (`PUT /v1/wireguard/key` on its control server).
    KeyRotation,
    /// Prometheus text at `GET /metrics` on its control server, with the
    /// tunnel's byte counters (leakhound's gateway; Gluetun has none).
    Metrics,
}

/// Capability names as scenario files and targets files write them, with
/// what each means.
pub const CAPABILITIES: [(&str, Capability, &str); 8] = [
    (
        "control-server",
        Capability::ControlServer,
        "Gluetun's HTTP control server (GET/PUT /v1/vpn/status, /v1/publicip/ip, /v1/portforward) honouring a roles file",
    ),
    (
        "health-server",
        Capability::HealthServer,
        "Gluetun's health server on HEALTH_SERVER_ADDRESS: 200 healthy, 500 not",
    ),
    (
        "port-forwarding",
        Capability::PortForwarding,
        "NAT-PMP port forwarding with the provider, the status file and the UP/DOWN commands",
    ),
    (
        "blocklist-files",
        Capability::BlocklistFiles,
        "BLOCK_MALICIOUS and friends from local list files (DNS_BLOCKLIST_DIR)",
    ),
    (
        "dot-ca-file",
        Capability::DotCaFile,
        "DNS over TLS (DNS_UPSTREAM_RESOLVER_TYPE=dot) to the resolver DOT_SERVER_ADDRESS names, its certificate checked with DOT_CA_FILE",
    ),
    (
        "leakhound-variables",
        Capability::LeakhoundVariables,
        "reads leakhound's own variables (FIREWALL_INPUT_SUBNET_PORTS, DNS_BLOCKLIST_DIR, ...): leakhound's gateway in an image; others get Gluetun's variables only",
    ),
    (
        "key-rotation",
        Capability::KeyRotation,
        "re-reads WIREGUARD_PRIVATE_KEY_SECRETFILE on PUT /v1/wireguard/key (the lab's ops role) and moves its tunnel to the new key",
    ),
    (
        "metrics",
        Capability::Metrics,
        "Prometheus text at GET /metrics on the control server, with the tunnel's receive and transmit byte counters",
    ),
];

impl Capability {
    pub fn name(self) -> &'static str {
        CAPABILITIES
            .iter()
            .find(|(_, c, _)| *c == self)
            .map(|(n, _, _)| *n)
            .expect("every capability is in the table")
    }

    pub fn from_name(name: &str) -> Option<Capability> {
        CAPABILITIES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, c, _)| *c)
    }
}

/// A capability name that is none of [`CAPABILITIES`]: its message names
/// the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {name:?} ({})", Capability::known())]
pub struct UnknownCapability {
    pub name: String,
}

impl Capability {
    /// The known names, comma-separated, for messages.
    pub fn known() -> String {
        CAPABILITIES
            .iter()
            .map(|(n, _, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Capability {
    type Err = UnknownCapability;
    fn from_str(s: &str) -> Result<Self, UnknownCapability> {
        Capability::from_name(s).ok_or_else(|| UnknownCapability {
            name: s.to_string(),
        })
    }
}

/// Written as its name in [`CAPABILITIES`] (targets files, reports).
impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Read from its name; an unknown one is an error naming the known ones
/// (serde places it: a targets file's line and column).
impl<'de> serde::Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Action {
    /// The host a probe is sent from and the address it is aimed at, for
    /// the actions that have them (a `None` server is the host's own
    /// resolver).
    pub fn endpoints(&self) -> (Option<&str>, Option<IpAddr>) {
        match self {
            Action::Http { from, target, .. }
            | Action::EncryptedDns { from, target, .. }
            | Action::Udp { from, target, .. }
            | Action::RawFrame { from, target, .. }
            | Action::InjectSynack { from, target, .. } => (Some(from), Some(target.ip())),
            Action::Dns { from, server, .. } | Action::DnsGarbage { from, server, .. } => {
                (Some(from), server.map(|s| s.ip()))
            }
            Action::Ping { from, target, .. } => (Some(from), Some(*target)),
            Action::StormStart { from, .. } | Action::FlowsStart { from } => (Some(from), None),
            _ => (None, None),
        }
    }
}

impl Scenario {
    /// Why this scenario cannot run in a lab of `topo` (one a user's
    /// configuration made): a host it sends from, or a LAN address it
    /// probes, that this lab does not have. `None`: it fits.
    pub fn misfit(&self, topo: &crate::topology::Topology) -> Option<String> {
        let assigned: Vec<IpAddr> = topo.all_addresses().iter().map(|(_, a)| a.addr()).collect();
        let lan_ranges: [ipnet::IpNet; 3] = [
            "10.0.0.0/8".parse().expect("net"),
            "172.16.0.0/12".parse().expect("net"),
            "192.168.0.0/16".parse().expect("net"),
        ];
        let tunnel: ipnet::IpNet = "10.64.0.0/16".parse().expect("net");
        for s in &self.steps {
            let (from, target) = s.action.endpoints();
            if let Some(f) = from
                && topo.host(f).is_none()
            {
                return Some(format!(
                    "step {:?} sends from {f}, a host this lab does not have",
                    s.name
                ));
            }
            if let Some(ip) = target
                && lan_ranges.iter().any(|r| r.contains(&ip))
                && !tunnel.contains(&ip)
                && !assigned.contains(&ip)
            {
                return Some(format!(
                    "step {:?} probes {ip}, a LAN address this lab does not have",
                    s.name
                ));
            }
        }
        None
    }

    /// What the gateway under test must offer: the declared `requires`,
    /// plus what the steps need (a `health` step the health server, a
    /// `control` step the control server, port-forwarding steps port
    /// forwarding).
    pub fn requirements(&self) -> std::collections::BTreeSet<Capability> {
        let mut r: std::collections::BTreeSet<Capability> = self.requires.iter().copied().collect();
        for s in &self.steps {
            match &s.action {
                Action::Health { .. } => {
                    r.insert(Capability::HealthServer);
                }
                Action::Control { path, .. } => {
                    r.insert(Capability::ControlServer);
                    if path == "/metrics" {
                        r.insert(Capability::Metrics);
                    }
                }
                Action::ForwardedPort { .. }
                | Action::PortCommand { .. }
                | Action::TorrentPort { .. } => {
                    r.insert(Capability::PortForwarding);
                }
                Action::Fault(Fault::RotateKey) => {
                    r.insert(Capability::KeyRotation);
                    r.insert(Capability::ControlServer);
                }
                _ => {}
            }
        }
        r
    }

    /// Does it drive the real qBittorrent in the lab's swarm (a torrent
    /// step, or a BitTorrent knock on the forwarded port)? Such a scenario
    /// needs the real dependents and the swarm's programs.
    pub fn needs_swarm(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::TorrentAdd
                    | Action::TorrentWait { .. }
                    | Action::TorrentAnnounce { .. }
                    | Action::SwarmSeen { .. }
                    | Action::TorrentPort { .. }
                    | Action::ForwardedPort {
                        bittorrent: true,
                        ..
                    }
            )
        })
    }

    /// Does it run the browser probe (Chromium)?
    pub fn needs_browser(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Browse { .. }))
    }

    /// Does it drive the real NZBGet against the lab's news server?
    pub fn needs_nzbget(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::NzbAdd | Action::NzbWait { .. } | Action::NewsSeen { .. }
            )
        })
    }

    /// Does a gateway run in this scenario (started before the first step,
    /// or by a step)?
    pub fn needs_gateway(&self) -> bool {
        self.gateway_start
            || self.steps.iter().any(|s| {
                matches!(
                    s.action,
                    Action::Fault(Fault::StartGateway) | Action::StartGatewayStorming { .. }
                )
            })
    }
}
