//! Every step action: one typed struct per action (serde, unknown keys
//! refused), and [`ACTIONS`], the one table that drives parsing (each entry
//! parses its own fields), the help text (`leakhound actions`) and, through
//! the [`Action`] it produces, the runner's dispatch.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Action, Check, Expect, FAULTS, Interference, PortCommandExpect, Via};
use crate::topology::{Topology, service};

/// A field whose value is wrong: its key and why (the parser turns the key
/// into a line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field_err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// How a step's fields become an [`Action`]: deserialized into the action's
/// own struct (unknown keys refused by serde, with their position), then
/// checked against the lab's topology.
pub(super) trait StepFields: DeserializeOwned {
    fn into_action(self, action: &str, topo: &Topology) -> Result<Action, FieldError>;
}

/// One action: its name in scenario files, what it does and its fields (the
/// help text), and how its fields are read.
pub struct ActionSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub(super) parse:
        fn(toml::de::ValueDeserializer<'_>, &str, &Topology) -> Result<Action, StepError>,
}

impl std::fmt::Debug for ActionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionSpec")
            .field("name", &self.name)
            .finish()
    }
}

/// Why a step could not be read.
#[derive(Debug)]
pub(super) enum StepError {
    /// serde/toml: an unknown key, a missing one, a wrong type (with span).
    De(toml::de::Error),
    /// A value that parsed but does not fit (a host that is not in the lab).
    Field(FieldError),
}

fn typed<T: StepFields>(
    d: toml::de::ValueDeserializer<'_>,
    action: &str,
    topo: &Topology,
) -> Result<Action, StepError> {
    let fields = T::deserialize(d).map_err(StepError::De)?;
    fields.into_action(action, topo).map_err(StepError::Field)
}

macro_rules! spec {
    ($name:literal, $ty:ty, $help:literal) => {
        ActionSpec {
            name: $name,
            help: $help,
            parse: typed::<$ty>,
        }
    };
}

/// Every action a scenario step may use.
pub const ACTIONS: &[ActionSpec] = &[
    spec!(
        "wait-handshake",
        Wait,
        "wait until the provider sees a completed WireGuard handshake from the gateway. Fields: timeout (default 15s)."
    ),
    spec!(
        "wait-firewall",
        Wait,
        "wait until the gateway's kill switch is in place (the built-in gateway says so; for other gateways: at once, so probes start when the process does). Fields: timeout (default 15s)."
    ),
    spec!(
        "wait-tunnel-restart",
        Wait,
        "wait until the provider receives datagrams from a new source port: the gateway restarted its tunnel, seen from the far end. Fields: timeout (default 15s)."
    ),
    spec!(
        "wait-traffic",
        Wait,
        "wait until traffic flows through the tunnel: whoami, asked from the gateway host with short attempts, sees the VPN exit address (the step's duration is the time to traffic). Fields: timeout (default 15s)."
    ),
    spec!(
        "http",
        Http,
        "GET http://TARGET/leakhound/<nonce> from a lab host. Fields: from, target (ADDRESS:PORT), expect (\"seen-as ADDRESS\": whoami saw that source; \"answer\": any HTTP answer (a real application answers an unknown path with 404); \"fail\": no answer; \"any\": either, only the wires judge), logged-by, not-logged-by (lab services that must, and must not, have seen the nonce)."
    ),
    spec!(
        "dns",
        Dns,
        "an A query for <nonce>.ZONE from a lab host. Fields: from, server (ADDRESS:PORT, or \"system\": the host's resolv.conf), query (the zone, default probe.lab), expect (answer, fail, or any: only the wires judge), logged-by, not-logged-by."
    ),
    spec!(
        "dot",
        Probe,
        "a DNS-over-TLS query for the nonce (trusting the lab's CA). Fields: from, target, expect (answer, fail, or any: only the wires judge), logged-by, not-logged-by."
    ),
    spec!(
        "doh",
        Probe,
        "a DNS-over-HTTPS query (HTTP/2, lab CA) for the nonce. Fields: from, target, expect (answer, fail, or any: only the wires judge), logged-by, not-logged-by."
    ),
    spec!(
        "udp",
        Probe,
        "a UDP datagram carrying the nonce; answer means the whole datagram came back. Fields: from, target, expect (answer, fail, or any: only the wires judge), logged-by, not-logged-by, size (payload bytes, the nonce padded)."
    ),
    spec!(
        "raw-frame",
        Probe,
        "a DNS query for the nonce written straight to the host's eth0 with an AF_PACKET socket, past the IP stack and its firewall hooks. Fields: from, target, expect (fail), logged-by, not-logged-by."
    ),
    spec!(
        "ping",
        Ping,
        "ICMP or ICMPv6 echo with the nonce in the payload. Fields: from, target (an IP address), expect (answer, fail, or any: only the wires judge), size (payload bytes), dont-fragment (IPv4: the DF bit set; a packet bigger than the path is refused, not fragmented)."
    ),
    spec!(
        "inject-synack",
        Synack,
        "CVE-2019-14899: a forged TCP SYN-ACK to the tunnel's address sent from a LAN-side host through the gateway's underlay; fail means nothing answered. Fields: from, target, expect."
    ),
    spec!(
        "fuzz",
        Fuzz,
        "the leak fuzzer: a seeded spray from the gateway's namespace (TCP with every flag combination, UDP, ICMP and ICMPv6 types, other IP protocols, fragments, IPv4 options and IPv6 extension headers; to public, endpoint, LAN, multicast, broadcast, link-local and IPv4-mapped addresses; various TTLs and DSCP values), every frame judged by the leak classifier. The dependents' side uses what a container has (raw sockets, the kernel's source address); the root side adds marks, a socket bound to eth0 and spoofed sources, and is its own class (shown, failing only with --strict). A finding names the seed (replay with --seed) and the smallest packet that leaked. Fields: from (default gw), packets (default 2000, at most 65535), root (how many of them from the root side, default 500), time (the most it may take, default 1s)."
    ),
    spec!(
        "prove",
        Prove,
        "leakhound prove on the host's namespace as it is now: its nftables ruleset read (nothing sent), and every packet it lets out on eth0 computed. A proof that none is outside the policy (the VPN endpoint over UDP, the lab's allowed subnets, ARP and IPv6 neighbour discovery) passes. A witness packet fails the step and is written from the namespace (by a process, or as a raw frame: its path) carrying a marker, and the judge looks for it on the wires: confirmed there, or a model-only witness (one the namespace cannot send: forwarded, or needing a connection), which fails too. \"Cannot prove\" (a rule the model does not understand, iptables-legacy tables) fails, naming the rule. Fields: from (default gw)."
    ),
    spec!(
        "storm-start",
        Storm,
        "background traffic from a host (DNS to the ISP resolver, TCP to whoami, ICMP) until storm-stop. Fields: from."
    ),
    spec!(
        "storm-wait",
        StormWait,
        "wait until the background traffic has sent this many rounds (a traffic quota, not a clock). Fields: rounds."
    ),
    spec!("storm-stop", NoFields, "stop the background traffic."),
    spec!(
        "flows-start",
        Flows,
        "long-lived flows from a host, made through the tunnel and kept busy every 5 ms until flows-stop: a TCP connection to whoami (HTTP/1.1 keep-alive requests) and a connected UDP socket to the echo service, IPv4 and IPv6 (IPv6 where the tunnel carries it). Each must answer once, or the step fails; after that only the wires judge (a flow that goes on after a tunnel stop or a restart, Gluetun #2621). Fields: from."
    ),
    spec!(
        "flows-wait",
        StormWait,
        "wait until the long-lived flows have sent this many more rounds (a traffic quota, not a clock). Fields: rounds."
    ),
    spec!(
        "flows-stop",
        NoFields,
        "stop the long-lived flows and say what each sent and got back."
    ),
    spec!(
        "dns-garbage",
        Garbage,
        "malformed DNS (a fixed corpus and seeded mutations, UDP and TCP) to a resolver; the next step shows whether it still answers. Fields: from, server (ADDRESS:PORT or \"system\")."
    ),
    spec!(
        "health",
        Health,
        "ask the gateway's health endpoint (from its namespace) until it says what is expected. Fields: expect (healthy or unhealthy), target (default 127.0.0.1:9999), timeout (default 10s)."
    ),
    spec!(
        "control",
        Control,
        "a request to the gateway's control server, from its namespace. Fields: method (default GET), path, target (default 127.0.0.1:8000), auth (\"basic USER:PASSWORD\" or \"apikey KEY\"), body, status (expected HTTP status), contains (a substring of the body), grows (a table of Prometheus sample names and the least each must have grown by since the scenario's previous control step read it, e.g. { leakhound_gateway_tunnel_transmit_bytes_total = 1400 })."
    ),
    spec!(
        "forwarded-port",
        Forwarded,
        "knock on the gateway's forwarded port (read from its status file) where a stand-in listens. Fields: via (exit: a prober on the internet at the VPN exit; home: the home address; lan: the admin LAN at eth0), expect (answer or fail), protocol (stand-in, the default; bittorrent: no stand-in, the prober sends a BitTorrent handshake for the scenario's torrent and answer means the real qBittorrent handshook back)."
    ),
    spec!(
        "torrent-add",
        TorrentAdd,
        "the real qBittorrent (--dependents real) is given a torrent made for the scenario, through its WebUI API from the gateway's loopback; the lab's swarm starts for it on the lab's internet: opentracker at 192.0.2.69:6969 and an aria2 seeder at 192.0.2.66:6881 (1 MiB/s), whose far-end wires log every announce (tracker) and connection (swarm-peer). No fields."
    ),
    spec!(
        "torrent-wait",
        TorrentWait,
        "wait until qBittorrent reports the torrent at least this far. Fields: progress (a percentage, \"100%\": complete), timeout (default 60s)."
    ),
    spec!(
        "torrent-announce",
        TorrentAnnounce,
        "qBittorrent is asked to announce again. Fields: expect (answer: a new announce reaches the tracker; fail: qBittorrent reports the tracker not working and none reached it), timeout (default 45s)."
    ),
    spec!(
        "swarm-seen",
        SwarmSeen,
        "the far end's view so far: the tracker got an announce and the seeder a connection, all from this address, and no announce volunteers another one (ip=, ipv4=, ipv6=). Fields: expect (\"seen-as ADDRESS\")."
    ),
    spec!(
        "torrent-port",
        TorrentPort,
        "qBittorrent's listening port (its WebUI preferences) becomes the gateway's forwarded port (its status file), never 0. Fields: timeout (default 10s)."
    ),
    spec!(
        "nzb-add",
        TorrentAdd,
        "the real NZBGet (--dependents real) is given an NZB of a post made for the step (yEnc articles), which the lab's news server (NNTP over TLS, news.lab:563 on the lab's internet, logged as news) publishes; through NZBGet's JSON-RPC API from the gateway's loopback. No fields."
    ),
    spec!(
        "nzb-wait",
        NzbWait,
        "the last NZB given. Fields: expect (answer: NZBGet completes it; fail: NZBGet has it queued and none of its articles reaches the news server within the probes' timeout), timeout (default 60s)."
    ),
    spec!(
        "news-seen",
        SwarmSeen,
        "the news server saw NZBGet during this scenario (a connection and an article), and only from this address. Fields: expect (\"seen-as ADDRESS\")."
    ),
    spec!(
        "browse",
        Browse,
        "Byparr's stand-in: Debian's headless Chromium in the gateway's namespace loads a page from the gateway's loopback that fetches whoami by a name carrying the step's nonce, gathers WebRTC candidates from the lab's STUN server (NONCE.stun.lab:3478, logged as stun) and fetches over QUIC (UDP 443 forced on for NONCE.quic.lab, logged as quic); the browser's own DNS-over-HTTPS is on (automatic, the lab's DoH server by address). Fields: expect (\"seen-as ADDRESS\": whoami, STUN and QUIC all saw only ADDRESS, WebRTC shows only ADDRESS as public, the DoH server never got the name; fail: none of them got anything and WebRTC found no public address)."
    ),
    spec!(
        "unheard",
        Unheard,
        "check: none of these lab services has logged anything from anyone since the scenario started; the far end's proof for what real applications send on their own (no nonce), e.g. qBittorrent's UPnP and NAT-PMP requests to the home router. Fields: by (service names)."
    ),
    spec!(
        "port-command",
        PortCommand,
        "what the port-forwarding UP/DOWN commands wrote to {port_commands}: up (the status file's port announced), down (the last port withdrawn), none (no command ran). Fields: expect, timeout (default 5s)."
    ),
    spec!(
        "interfere",
        Interfere,
        "change the gateway's namespace from outside, as other software might; the verdict stays leak-based. Fields: nft (a script run there), routes (\"around-tunnel\": default routes via the home router; \"split-around-tunnel\": 0.0.0.0/1, 128.0.0.0/1, ::/1 and 8000::/1 via the home router, more specific than any default route, as TunnelVision's DHCP option 121 pushes them; \"rule-around-tunnel\": a policy rule at priority 1, before any a gateway adds, to a table with default routes via the home router: TunnelVision against gateways that route by policy rules; \"metric-around-tunnel\": a default route via the home router with a lower metric than the main table's others, or ahead of them at the lowest), resolv-conf (text), kill (true: SIGKILL every process there), ipv4-only-lan (true: the gateway's global IPv6 addresses and IPv6 default routes on eth0 go, as on an IPv4-only LAN), rogue-ra (true: a rogue router on the gateway's LAN advertises 2001:db8:ad::/64 for SLAAC and itself as the default router)."
    ),
    spec!(
        "stop-tunnel",
        NoFields,
        "ask the gateway to stop its tunnel (PUT /v1/vpn/status, or from outside for gateways without a control server); it keeps running, closed."
    ),
    spec!(
        "start-tunnel",
        NoFields,
        "ask the gateway to start its tunnel again."
    ),
    spec!(
        "kill-gateway",
        NoFields,
        "SIGKILL the gateway (an expected death: what it left in the kernel is then under test)."
    ),
    spec!(
        "start-gateway",
        StartGateway,
        "start a (new) gateway with the scenario's variables. Fields: storm-from (a host: its background traffic, as storm-start's, and the real dependents start with the gateway: at the moment it reports its kill switch closed for a gateway that reports it, at its first instant (exec, or the container's start) for any other; the step prints how long after that the first probe went out)."
    ),
    spec!(
        "provider-down",
        NoFields,
        "the provider's WireGuard server stops answering (drops every datagram)."
    ),
    spec!("provider-up", NoFields, "the provider answers again."),
    spec!(
        "provider-refuses-ports",
        NoFields,
        "the provider's NAT-PMP server refuses every mapping (OUT_OF_RESOURCES)."
    ),
    spec!(
        "provider-grants-ports",
        NoFields,
        "the provider grants port mappings again."
    ),
    spec!(
        "isp-block-wireguard",
        NoFields,
        "the ISP drops UDP 51820 in both directions."
    ),
    spec!(
        "isp-unblock-wireguard",
        NoFields,
        "the ISP forwards UDP 51820 again."
    ),
    spec!(
        "rotate-key",
        NoFields,
        "the lab issues a new WireGuard key as a provider's API would: writes it to the gateway's WIREGUARD_PRIVATE_KEY_SECRETFILE, makes the provider accept it and forget the old one, and tells the gateway (PUT /v1/wireguard/key)."
    ),
    spec!(
        "old-key-refused",
        NoFields,
        "check: a handshake initiation made with the key from before the last rotation gets no answer from the provider."
    ),
    spec!(
        "provider-new-ports",
        NoFields,
        "the provider forgets its port mappings and will not give those ports again: the next mapping is a new port, as after a reconnect to another server."
    ),
    spec!(
        "route-around-tunnel",
        NoFields,
        "default routes (IPv4 and IPv6) via the home router on the gateway's eth0, as a buggy network manager would restore them."
    ),
];

/// The spec of an action name.
pub fn lookup(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// The action names, for error messages.
pub fn names() -> String {
    ACTIONS
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

// --- values with their own syntax ---

/// A value that does not have its field's syntax (serde places it: line
/// and column).
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("{value:?} is not a duration (write e.g. \"15s\" or \"500ms\"): {reason}")]
    Duration {
        value: String,
        reason: humantime::DurationError,
    },
    #[error("{0:?} is not an IP address")]
    NotAnIp(String),
    #[error("{0:?}: use \"seen-as ADDRESS\", \"answer\", \"fail\" or \"any\"")]
    NotAnExpectation(String),
    #[error("this action expects \"answer\" or \"fail\"")]
    AnswerOrFail,
    #[error("this action expects \"answer\", \"fail\" or \"any\"")]
    AnswerFailOrAny,
    #[error("{0:?} is neither ADDRESS:PORT nor \"system\"")]
    NotAServer(String),
    #[error("{0:?} is not an address:port (e.g. \"192.0.2.80:80\", \"[2001:db8::1]:80\")")]
    NotATarget(String),
}

/// "15s", "500ms": a human duration.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct Dur(Duration);

impl TryFrom<String> for Dur {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        humantime::parse_duration(&s)
            .map(Dur)
            .map_err(|reason| ValueError::Duration { value: s, reason })
    }
}

impl TryFrom<String> for Expect {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let t = s.trim();
        match t {
            "fail" => Ok(Expect::Fail),
            "answer" => Ok(Expect::Answer),
            "any" => Ok(Expect::Any),
            _ => match t.strip_prefix("seen-as ") {
                Some(ip) => ip
                    .trim()
                    .parse()
                    .map(Expect::SeenAs)
                    .map_err(|_| ValueError::NotAnIp(ip.to_string())),
                None => Err(ValueError::NotAnExpectation(s)),
            },
        }
    }
}

/// An expectation without "seen-as": "answer" or "fail", and with `ANY`
/// also "any" (only the wires judge; the probes take it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct NoSeenAs<const ANY: bool>(Expect);

/// "answer" or "fail" only.
type AnswerOrFail = NoSeenAs<false>;
/// A probe's: "answer", "fail" or "any".
type ProbeExpect = NoSeenAs<true>;

impl<const ANY: bool> TryFrom<String> for NoSeenAs<ANY> {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        match Expect::try_from(s)? {
            Expect::SeenAs(_) if ANY => Err(ValueError::AnswerFailOrAny),
            Expect::SeenAs(_) | Expect::Any if !ANY => Err(ValueError::AnswerOrFail),
            e => Ok(NoSeenAs(e)),
        }
    }
}

/// A resolver: ADDRESS:PORT, or "system" (the host's resolv.conf).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct Server(Option<SocketAddr>);

impl TryFrom<String> for Server {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        if s == "system" {
            return Ok(Server(None));
        }
        s.parse()
            .map(|a| Server(Some(a)))
            .map_err(|_| ValueError::NotAServer(s))
    }
}

/// ADDRESS:PORT with a friendlier error than serde's own.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct Target(SocketAddr);

impl TryFrom<String> for Target {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        s.parse().map(Target).map_err(|_| ValueError::NotATarget(s))
    }
}

fn host(from: &str, topo: &Topology) -> Result<String, FieldError> {
    if topo.host(from).is_none() {
        let known: Vec<_> = topo.hosts.iter().map(|h| h.name).collect();
        return Err(field_err(
            "from",
            format!("{from:?} is not a lab host ({})", known.join(", ")),
        ));
    }
    Ok(from.to_string())
}

fn services(field: &'static str, v: Vec<String>) -> Result<Vec<String>, FieldError> {
    for s in &v {
        if !service::ALL.contains(&s.as_str()) {
            return Err(field_err(
                field,
                format!("unknown service {s:?} ({})", service::ALL.join(", ")),
            ));
        }
    }
    Ok(v)
}

fn check(
    expect: Expect,
    logged_by: Vec<String>,
    not_logged_by: Vec<String>,
) -> Result<Check, FieldError> {
    Ok(Check {
        expect,
        logged_by: services("logged-by", logged_by)?,
        not_logged_by: services("not-logged-by", not_logged_by)?,
    })
}

// --- one struct per action ---

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wait {
    timeout: Option<Dur>,
}

impl StepFields for Wait {
    fn into_action(self, action: &str, _: &Topology) -> Result<Action, FieldError> {
        let timeout = self.timeout.map_or(Duration::from_secs(15), |d| d.0);
        Ok(match action {
            "wait-handshake" => Action::WaitHandshake { timeout },
            "wait-firewall" => Action::WaitFirewall { timeout },
            "wait-traffic" => Action::WaitTraffic { timeout },
            _ => Action::WaitTunnelRestart { timeout },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Http {
    from: String,
    target: Target,
    expect: Expect,
    #[serde(default)]
    logged_by: Vec<String>,
    #[serde(default)]
    not_logged_by: Vec<String>,
}

impl StepFields for Http {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(Action::Http {
            from: host(&self.from, topo)?,
            target: self.target.0,
            check: check(self.expect, self.logged_by, self.not_logged_by)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Dns {
    from: String,
    server: Server,
    query: Option<String>,
    expect: ProbeExpect,
    #[serde(default)]
    logged_by: Vec<String>,
    #[serde(default)]
    not_logged_by: Vec<String>,
}

impl StepFields for Dns {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        let zone = match &self.query {
            None => "probe.lab".to_string(),
            Some(q) => {
                let z = q.trim().trim_end_matches('.').to_string();
                if z.is_empty() || hickory_proto::rr::Name::from_ascii(&z).is_err() {
                    return Err(field_err("query", format!("{q:?} is not a DNS name")));
                }
                z
            }
        };
        Ok(Action::Dns {
            from: host(&self.from, topo)?,
            server: self.server.0,
            zone,
            check: check(self.expect.0, self.logged_by, self.not_logged_by)?,
        })
    }
}

/// dot, doh, udp, raw-frame: a probe from a host to ADDRESS:PORT.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Probe {
    from: String,
    target: Target,
    expect: ProbeExpect,
    #[serde(default)]
    logged_by: Vec<String>,
    #[serde(default)]
    not_logged_by: Vec<String>,
    /// udp only: payload bytes (the nonce, padded).
    size: Option<usize>,
}

/// Payload sizes a probe can carry: the nonce fits, a jumbo IP packet too.
fn payload_size(size: Option<usize>) -> Result<Option<usize>, FieldError> {
    match size {
        Some(n) if !(16..=60_000).contains(&n) => Err(field_err(
            "size",
            format!("{n} bytes: use 16 to 60000 (the nonce must fit)"),
        )),
        s => Ok(s),
    }
}

impl StepFields for Probe {
    fn into_action(self, action: &str, topo: &Topology) -> Result<Action, FieldError> {
        let from = host(&self.from, topo)?;
        let target = self.target.0;
        let check = check(self.expect.0, self.logged_by, self.not_logged_by)?;
        let size = payload_size(self.size)?;
        if size.is_some() && action != "udp" {
            return Err(field_err(
                "size",
                format!("means nothing for action {action}"),
            ));
        }
        Ok(match action {
            "dot" | "doh" => Action::EncryptedDns {
                https: action == "doh",
                from,
                target,
                check,
            },
            "udp" => Action::Udp {
                from,
                target,
                check,
                size,
            },
            _ => {
                if check.expect == Expect::Answer {
                    return Err(field_err(
                        "expect",
                        "raw-frame expects \"fail\" (its frame must not get out) or uses logged-by",
                    ));
                }
                Action::RawFrame {
                    from,
                    target,
                    check,
                }
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Ping {
    from: String,
    target: IpAddrField,
    expect: ProbeExpect,
    size: Option<usize>,
    #[serde(default)]
    dont_fragment: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
struct IpAddrField(IpAddr);

impl TryFrom<String> for IpAddrField {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        s.parse()
            .map(IpAddrField)
            .map_err(|_| ValueError::NotAnIp(s))
    }
}

impl StepFields for Ping {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        if self.dont_fragment && self.target.0.is_ipv6() {
            return Err(field_err(
                "dont-fragment",
                "IPv6 never fragments on the way; it is for IPv4 targets",
            ));
        }
        Ok(Action::Ping {
            from: host(&self.from, topo)?,
            target: self.target.0,
            expect: self.expect.0,
            size: payload_size(self.size)?,
            dont_fragment: self.dont_fragment,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Synack {
    from: String,
    target: Target,
    expect: AnswerOrFail,
}

impl StepFields for Synack {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(Action::InjectSynack {
            from: host(&self.from, topo)?,
            target: self.target.0,
            expect: self.expect.0,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fuzz {
    from: Option<String>,
    packets: Option<usize>,
    root: Option<usize>,
    time: Option<Dur>,
}

impl StepFields for Fuzz {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        let packets = self.packets.unwrap_or(2000);
        if !(1..=65_535).contains(&packets) {
            return Err(field_err(
                "packets",
                format!("{packets} packets: a spray has 1 to 65535"),
            ));
        }
        let root = self.root.unwrap_or(500.min(packets / 4));
        if root > packets {
            return Err(field_err(
                "root",
                format!("{root} from the root side, but the spray has {packets} packets"),
            ));
        }
        let time = self.time.map_or(Duration::from_secs(1), |d| d.0);
        if time.is_zero() || time > Duration::from_secs(600) {
            return Err(field_err(
                "time",
                "a spray takes more than 0 s and at most 10 min",
            ));
        }
        Ok(Action::Fuzz(super::FuzzSpec {
            from: host(self.from.as_deref().unwrap_or("gw"), topo)?,
            packets,
            root,
            time,
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Prove {
    from: Option<String>,
}

impl StepFields for Prove {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(Action::Prove {
            from: host(self.from.as_deref().unwrap_or("gw"), topo)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StartGateway {
    storm_from: Option<String>,
}

impl StepFields for StartGateway {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(match self.storm_from {
            None => Action::Fault(super::Fault::StartGateway),
            Some(from) => Action::StartGatewayStorming {
                from: host(&from, topo)?,
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Storm {
    from: String,
}

impl StepFields for Storm {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(Action::StormStart {
            from: host(&self.from, topo)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StormWait {
    rounds: u64,
}

impl StepFields for StormWait {
    fn into_action(self, action: &str, _: &Topology) -> Result<Action, FieldError> {
        if self.rounds == 0 {
            return Err(field_err("rounds", "rounds must be at least 1"));
        }
        let rounds = self.rounds;
        Ok(if action == "flows-wait" {
            Action::FlowsWait { rounds }
        } else {
            Action::StormWait { rounds }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flows {
    from: String,
}

impl StepFields for Flows {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(Action::FlowsStart {
            from: host(&self.from, topo)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Garbage {
    from: String,
    server: Server,
}

impl StepFields for Garbage {
    fn into_action(self, _: &str, topo: &Topology) -> Result<Action, FieldError> {
        Ok(Action::DnsGarbage {
            from: host(&self.from, topo)?,
            server: self.server.0,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Health {
    expect: String,
    target: Option<Target>,
    timeout: Option<Dur>,
}

impl StepFields for Health {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        let healthy = match self.expect.as_str() {
            "healthy" => true,
            "unhealthy" => false,
            other => {
                return Err(field_err(
                    "expect",
                    format!("{other:?}: use \"healthy\" or \"unhealthy\""),
                ));
            }
        };
        Ok(Action::Health {
            healthy,
            target: self
                .target
                .map_or(SocketAddr::from(([127, 0, 0, 1], 9999)), |t| t.0),
            timeout: self.timeout.map_or(Duration::from_secs(10), |d| d.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    method: Option<String>,
    path: String,
    target: Option<Target>,
    auth: Option<String>,
    body: Option<String>,
    status: u16,
    contains: Option<String>,
    grows: Option<std::collections::BTreeMap<String, u64>>,
}

impl StepFields for Control {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        if !self.path.starts_with('/') {
            return Err(field_err(
                "path",
                format!("{:?} must start with /", self.path),
            ));
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
                return Err(field_err(
                    "auth",
                    format!("{a:?}: use \"basic USER:PASSWORD\" or \"apikey KEY\""),
                ));
            }
        }
        Ok(Action::Control {
            method: self
                .method
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase(),
            path: self.path,
            target: self
                .target
                .map_or(SocketAddr::from(([127, 0, 0, 1], 8000)), |t| t.0),
            headers,
            body: self.body.unwrap_or_default(),
            status: self.status,
            contains: self.contains,
            grows: self.grows.unwrap_or_default().into_iter().collect(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Forwarded {
    /// exit, home or lan: a misspelt one is refused by serde, at its place.
    via: Via,
    expect: AnswerOrFail,
    protocol: Option<KnockProtocol>,
}

/// What knocks on the forwarded port (`protocol`).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KnockProtocol {
    /// A stand-in dependent listens; the prober reads its answer.
    StandIn,
    /// The real qBittorrent listens; the prober sends a BitTorrent handshake.
    Bittorrent,
}

impl StepFields for Forwarded {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        Ok(Action::ForwardedPort {
            via: self.via,
            expect: self.expect.0,
            bittorrent: matches!(self.protocol, Some(KnockProtocol::Bittorrent)),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortCommand {
    expect: String,
    timeout: Option<Dur>,
}

impl StepFields for PortCommand {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        let expect = match self.expect.as_str() {
            "up" => PortCommandExpect::Up,
            "down" => PortCommandExpect::Down,
            "none" => PortCommandExpect::None,
            other => {
                return Err(field_err(
                    "expect",
                    format!("{other:?}: use up, down or none"),
                ));
            }
        };
        Ok(Action::PortCommand {
            expect,
            timeout: self.timeout.map_or(Duration::from_secs(5), |d| d.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Interfere {
    nft: Option<String>,
    routes: Option<String>,
    resolv_conf: Option<String>,
    #[serde(default)]
    kill: bool,
    #[serde(default)]
    ipv4_only_lan: bool,
    #[serde(default)]
    rogue_ra: bool,
}

impl StepFields for Interfere {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        let routes = match self.routes.as_deref() {
            None => None,
            Some(name) => Some(
                super::RouteInjection::NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, r)| *r)
                    .ok_or_else(|| {
                        field_err(
                            "routes",
                            format!(
                                "{name:?}: use \"around-tunnel\", \"split-around-tunnel\", \"rule-around-tunnel\" or \"metric-around-tunnel\""
                            ),
                        )
                    })?,
            ),
        };
        let i = Interference {
            nft: self.nft,
            routes,
            resolv_conf: self.resolv_conf,
            kill: self.kill,
            ipv4_only_lan: self.ipv4_only_lan,
            rogue_ra: self.rogue_ra,
        };
        if i == Interference::default() {
            return Err(field_err(
                "action",
                "interfere needs at least one of nft, routes, resolv-conf, kill, ipv4-only-lan, rogue-ra",
            ));
        }
        Ok(Action::Interfere(i))
    }
}

/// Actions without fields: the faults, storm-stop and flows-stop.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

impl StepFields for NoFields {
    fn into_action(self, action: &str, _: &Topology) -> Result<Action, FieldError> {
        if action == "storm-stop" {
            return Ok(Action::StormStop);
        }
        if action == "flows-stop" {
            return Ok(Action::FlowsStop);
        }
        FAULTS
            .iter()
            .find(|(n, _)| *n == action)
            .map(|(_, f)| Action::Fault(*f))
            .ok_or_else(|| field_err("action", format!("{action:?} is not a fault")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TorrentWait {
    progress: String,
    timeout: Option<Dur>,
}

impl StepFields for TorrentWait {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        let bad = || {
            field_err(
                "progress",
                format!(
                    "{:?}: write a percentage from 0% to 100% (e.g. \"25%\")",
                    self.progress
                ),
            )
        };
        let pct: f64 = self
            .progress
            .trim()
            .strip_suffix('%')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(bad());
        }
        Ok(Action::TorrentWait {
            progress: pct / 100.0,
            timeout: self.timeout.map_or(Duration::from_secs(60), |d| d.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TorrentAnnounce {
    expect: AnswerOrFail,
    timeout: Option<Dur>,
}

impl StepFields for TorrentAnnounce {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        Ok(Action::TorrentAnnounce {
            expect: self.expect.0,
            timeout: self.timeout.map_or(Duration::from_secs(45), |d| d.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwarmSeen {
    expect: Expect,
}

impl StepFields for SwarmSeen {
    fn into_action(self, action: &str, _: &Topology) -> Result<Action, FieldError> {
        match self.expect {
            Expect::SeenAs(ip) if action == "news-seen" => Ok(Action::NewsSeen { seen_as: ip }),
            Expect::SeenAs(ip) => Ok(Action::SwarmSeen { seen_as: ip }),
            _ => Err(field_err(
                "expect",
                "this action expects \"seen-as ADDRESS\"",
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unheard {
    by: Vec<String>,
}

impl StepFields for Unheard {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        if self.by.is_empty() {
            return Err(field_err("by", "name at least one service"));
        }
        Ok(Action::Unheard {
            by: services("by", self.by)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Browse {
    expect: Expect,
}

impl StepFields for Browse {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        match self.expect {
            Expect::SeenAs(_) | Expect::Fail => Ok(Action::Browse {
                expect: self.expect,
            }),
            Expect::Answer | Expect::Any => Err(field_err(
                "expect",
                "the browser expects \"seen-as ADDRESS\" or \"fail\"",
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TorrentPort {
    timeout: Option<Dur>,
}

impl StepFields for TorrentPort {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        Ok(Action::TorrentPort {
            timeout: self.timeout.map_or(Duration::from_secs(10), |d| d.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TorrentAdd {}

impl StepFields for TorrentAdd {
    fn into_action(self, action: &str, _: &Topology) -> Result<Action, FieldError> {
        Ok(if action == "nzb-add" {
            Action::NzbAdd
        } else {
            Action::TorrentAdd
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NzbWait {
    expect: AnswerOrFail,
    timeout: Option<Dur>,
}

impl StepFields for NzbWait {
    fn into_action(self, _: &str, _: &Topology) -> Result<Action, FieldError> {
        Ok(Action::NzbWait {
            expect: self.expect.0,
            timeout: self.timeout.map_or(Duration::from_secs(60), |d| d.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_entry_and_help() {
        let mut names: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate action names");
        for a in ACTIONS {
            assert!(a.help.len() > 20, "{} has no help", a.name);
        }
        // Every fault is reachable from the table.
        for (f, _) in FAULTS {
            assert!(lookup(f).is_some(), "{f} is not in ACTIONS");
        }
    }
}
