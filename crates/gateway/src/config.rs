//! The gateway's configuration, read only from Gluetun's environment
//! variables (so a compose file's `environment:` block works unchanged).
//! Parsing is pure: it takes the variables as pairs and returns a config or an
//! error naming the variable and the bad value. Variables that leakhound knows
//! but does not implement yet are refused when set to anything but their
//! default: a user who asks for a protection must never silently lack it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::firewall::SubnetPorts;
use leakhound_net::tunnel::{KeyError, parse_key};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{var} is required{hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var}={value:?} is not valid: {why}")]
    Invalid {
        var: &'static str,
        value: String,
        why: String,
    },
    #[error("{var}={value:?} is not supported by leakhound's gateway{why}")]
    Unsupported {
        var: &'static str,
        value: String,
        why: &'static str,
    },
}

type Result<T> = std::result::Result<T, ConfigError>;

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub private_key: [u8; 32],
    /// WIREGUARD_PRIVATE_KEY_SECRETFILE: where the private key was read
    /// from (when WIREGUARD_PRIVATE_KEY is unset), and read again on a key
    /// rotation (`PUT /v1/wireguard/key` on the control server).
    pub private_key_file: Option<std::path::PathBuf>,
    pub public_key: [u8; 32],
    pub preshared_key: Option<[u8; 32]>,
    /// The tunnel's own addresses (WIREGUARD_ADDRESSES).
    pub addresses: Vec<IpNet>,
    pub mtu: u16,
    pub endpoint: SocketAddr,
    pub keepalive: Option<u16>,
    pub interface: String,
    /// Subnets reached outside the tunnel (FIREWALL_OUTBOUND_SUBNETS).
    pub outbound_subnets: Vec<IpNet>,
    pub firewall: FirewallSettings,
    pub dns: DnsSettings,
    pub health: HealthSettings,
    pub control: ControlSettings,
    /// VPN_PORT_FORWARDING=on: NAT-PMP through the tunnel.
    pub port_forwarding: Option<PortForwarding>,
    /// Gluetun-style variables that were set but mean nothing to this
    /// gateway (unknown names, or settings without effect in this
    /// configuration): logged as warnings at start.
    pub unused: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortForwarding {
    /// VPN_PORT_FORWARDING_GATEWAY (leakhound's own): the provider's NAT-PMP
    /// gateway, inside the tunnel (ProtonVPN: 10.2.0.1).
    pub gateway: IpAddr,
    /// VPN_PORT_FORWARDING_STATUS_FILE (default /tmp/gluetun/forwarded_port).
    pub status_file: std::path::PathBuf,
    /// VPN_PORT_FORWARDING_UP_COMMAND / _DOWN_COMMAND, with {{PORT}},
    /// {{PORTS}} and {{VPN_INTERFACE}} replaced.
    pub up_command: Option<String>,
    pub down_command: Option<String>,
    /// VPN_PORT_FORWARDING_LISTENING_PORT: the local port the dependent
    /// listens on; the forwarded port is redirected to it on the tunnel.
    /// `None`: the dependent listens on the forwarded port itself.
    pub listening_port: Option<u16>,
}
/// The control server and the public IP.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    /// HTTP_CONTROL_SERVER_ADDRESS (default :8000).
    pub address: SocketAddr,
    /// HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH; `explicit` when the
    /// variable was set (then a missing file is an error; Gluetun's default
    /// path may be absent, and then every route is private).
    pub auth_file: std::path::PathBuf,
    pub auth_file_explicit: bool,
    /// PUBLICIP_URL (leakhound's own): http://IP[:PORT]/path answering the
    /// caller's address as text, asked through the tunnel after each tunnel-up.
    pub public_ip_url: Option<String>,
    /// PUBLICIP_FILE (default /tmp/gluetun/ip).
    pub public_ip_file: std::path::PathBuf,
}
/// Health checks (Gluetun's HEALTH_* variables). Every check runs through
/// the tunnel only: its sockets are bound to the tunnel's interface.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// HEALTH_SERVER_ADDRESS: where `GET /` answers 200 (healthy) or 500.
    pub server: SocketAddr,
    /// HEALTH_TARGET_ADDRESSES (default Gluetun's `cloudflare.com:443,
    /// github.com:443`): `HOST:PORT`, HOST a name (asked of the gateway's
    /// own resolver) or an IP (`[v6]:port`); the full check completes a
    /// TCP connection and a TLS handshake with the first one that answers.
    pub targets: Vec<HealthTarget>,
    /// The small check: HEALTH_SMALL_CHECK_TYPE=icmp (default) pings
    /// HEALTH_ICMP_TARGET_IPS (default Gluetun's `1.1.1.1,8.8.8.8`); `dns`
    /// asks the gateway's resolver (and so its upstream) for a fresh name.
    pub small: SmallCheck,
    /// HEALTH_SMALL_CHECK_INTERVAL (leakhound's own, default 2s).
    pub interval: std::time::Duration,
    /// HEALTH_FULL_CHECK_INTERVAL (leakhound's own, default 5m, Gluetun's):
    /// how often a passing full check is repeated; a failing one is retried
    /// at every small check, and every tunnel-up starts with one.
    pub full_interval: std::time::Duration,
    /// HEALTH_TARGET_CA_FILE (leakhound's own): the CA certificates (PEM)
    /// the full check's TLS handshake trusts; default the public web roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// HEALTH_RESTART_VPN (default on): restart an unhealthy tunnel.
    pub restart_vpn: bool,
    /// HEALTH_VPN_DURATION_INITIAL (default 6s): no restart this soon after
    /// a tunnel-up (the first handshake and check need their time).
    pub initial_grace: std::time::Duration,
}

/// A full-check target: a name or an IP, and a port.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthTarget {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HealthTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// The small check's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum SmallCheck {
    /// ICMP echo to these addresses; one reply is enough.
    Icmp(Vec<IpAddr>),
    /// A query for a fresh name through the gateway's resolver.
    Dns,
}

/// Where the health server listens unless told otherwise (Gluetun's).
/// The variables that are leakhound's own extensions, not Gluetun's: a
/// harness gives them to the built-in gateway only. Another gateway under
/// test gets Gluetun's variables alone, so what it cannot do without these
/// shows as a real difference.
pub const OWN_VARIABLES: [&str; 14] = [
    "FIREWALL_INPUT_SUBNET_PORTS",
    "FIREWALL_ON_EXIT",
    "DNS_BLOCKLIST_DIR",
    "DOT_SERVER_NAME",
    "DOT_CA_FILE",
    "DNS_CACHE_SIZE",
    "DNS_BLOCK_DOH_ADDRESSES",
    "DNS_BLOCK_DOH_HOSTNAMES",
    "HEALTH_SMALL_CHECK_INTERVAL",
    "HEALTH_FULL_CHECK_INTERVAL",
    "HEALTH_TARGET_CA_FILE",
    "VPN_PORT_FORWARDING_GATEWAY",
    "PUBLICIP_URL",
    "LEAKHOUND_LOG",
];

pub const DEFAULT_HEALTH_SERVER: &str = "127.0.0.1:9999";
/// Gluetun's full-check targets.
pub const DEFAULT_HEALTH_TARGETS: &str = "cloudflare.com:443,github.com:443";
/// Gluetun's small-check (ICMP) targets.
pub const DEFAULT_HEALTH_ICMP_TARGETS: &str = "1.1.1.1,8.8.8.8";
/// The gateway's resolver and the DNS part of the kill switch.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    /// DNS_ADDRESS: the upstream the gateway's resolver asks, through the
    /// tunnel (the seed's `DNS_ADDRESS=VPN_PROVIDER_DNS`). Loopback or unset:
    /// no plain upstream (queries get SERVFAIL, loudly logged).
    pub upstream: Option<IpAddr>,
    /// Addresses of DNS-over-HTTPS endpoints whose port 443 is rejected: the
    /// built-in list of well-known resolvers plus DNS_BLOCK_DOH_ADDRESSES.
    pub doh_addresses: Vec<IpAddr>,
    /// Blocklist files to load at start (BLOCK_MALICIOUS, BLOCK_SURVEILLANCE,
    /// BLOCK_ADS), each with the variable that asked for it.
    pub blocklists: Vec<(&'static str, std::path::PathBuf)>,
    /// DNS_UNBLOCK_HOSTNAMES, DNS_BLOCK_DOH_HOSTNAMES (beyond the built-in
    /// ones), DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES.
    pub policy: super::dns_policy::DnsPolicy,
    /// DOT=on: ask the upstream over TLS (853), checking its certificate for
    /// DOT_SERVER_NAME against DOT_CA_FILE (or the public web roots).
    pub dot: Option<DotSettings>,
    /// How many answers the resolver keeps: DNS_CACHING=off (Gluetun's)
    /// makes it 0; DNS_CACHE_SIZE (leakhound's own) sets it, default 1024.
    pub cache_size: u64,
}

/// Answers the gateway's resolver keeps by default: ample for a download
/// stack's trackers and indexers; hickory's own default (8192) costs about
/// 10 MB of resident memory once full.
pub const DEFAULT_DNS_CACHE_SIZE: u64 = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct DotSettings {
    pub server_name: String,
    pub ca_file: Option<std::path::PathBuf>,
}

/// Where the blocklist files are looked for (DNS_BLOCKLIST_DIR).
pub const DEFAULT_BLOCKLIST_DIR: &str = "/etc/leakhound/blocklists";

/// Well-known public DoH/DoT resolvers (Cloudflare, Google, Quad9, OpenDNS,
/// AdGuard), blocked on 443 so apps cannot bypass the gateway's resolver.
pub const KNOWN_DOH_ADDRESSES: [&str; 16] = [
    "1.1.1.1",
    "1.0.0.1",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "9.9.9.9",
    "149.112.112.112",
    "2620:fe::fe",
    "2620:fe::9",
    "208.67.222.222",
    "208.67.220.220",
    "94.140.14.14",
    "94.140.15.15",
];

/// The kill switch's settings, from Gluetun's FIREWALL_* variables and
/// leakhound's own FIREWALL_INPUT_SUBNET_PORTS and FIREWALL_ON_EXIT.
#[derive(Debug, Clone, PartialEq)]
pub struct FirewallSettings {
    /// FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT (default on).
    pub enabled: bool,
    /// FIREWALL_INPUT_PORTS: open on the underlay to any source.
    pub input_ports: Vec<u16>,
    /// FIREWALL_VPN_INPUT_PORTS: open on the tunnel interface.
    pub vpn_input_ports: Vec<u16>,
    /// FIREWALL_INPUT_SUBNET_PORTS: `SUBNET=PORT,PORT;SUBNET=PORT`, TCP ports
    /// open to one subnet each (the seed's per-subnet inbound rules).
    pub subnet_ports: Vec<SubnetPorts>,
    /// FIREWALL_DEBUG: counters and logged drops.
    pub debug: bool,
    /// FIREWALL_ON_EXIT: `keep` (default: a stopped gateway stays closed) or
    /// `remove`.
    pub remove_on_exit: bool,
}

impl GatewayConfig {
    pub fn has_ipv6(&self) -> bool {
        self.addresses.iter().any(|a| a.addr().is_ipv6())
    }
}

/// The variables, and the names the parser asked for (to tell the user
/// about the ones it never looked at).
struct Env(
    BTreeMap<String, String>,
    std::cell::RefCell<std::collections::BTreeSet<String>>,
);

/// Prefixes of Gluetun's variables: one of these that the parser never read
/// is reported (a typo, an old name, or a setting without effect here).
const GLUETUN_PREFIXES: &[&str] = &[
    "VPN_",
    "WIREGUARD_",
    "OPENVPN_",
    "FIREWALL",
    "DNS_",
    "DOT_",
    "BLOCK_",
    "HEALTH_",
    "HTTP_CONTROL_",
    "PUBLICIP_",
    "SERVER_",
    "UPDATER_",
    "HTTPPROXY",
    "SHADOWSOCKS",
];

impl Env {
    /// A variable's value; empty counts as unset, as in Gluetun.
    fn get(&self, var: &str) -> Option<&str> {
        self.1.borrow_mut().insert(var.to_string());
        self.0.get(var).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// Gluetun-style variables that are set but were never read.
    fn unread(&self) -> Vec<String> {
        let read = self.1.borrow();
        self.0
            .iter()
            .filter(|(k, v)| {
                !v.trim().is_empty()
                    && !read.contains(*k)
                    && (*k == "DOT" || GLUETUN_PREFIXES.iter().any(|p| k.starts_with(p)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn required(&self, var: &'static str, hint: &'static str) -> Result<&str> {
        self.get(var).ok_or(ConfigError::Missing { var, hint })
    }
}

fn invalid(var: &'static str, value: &str, why: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// A WireGuard key from a secret file (base64, surrounding whitespace
/// ignored). The error never quotes the file's content.
pub fn read_key_file(path: &std::path::Path) -> std::result::Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    // A secret file's content is a secret, key or not.
    leakhound_proto::scrub::register(text.trim());
    parse_key(text.trim()).map_err(|e: KeyError| format!("its content is not a key: {e}"))
}

fn key(env: &Env, var: &'static str) -> Result<Option<[u8; 32]>> {
    env.get(var)
        .map(|v| {
            parse_key(v).map_err(|e: KeyError| ConfigError::Invalid {
                var,
                // Never echo key material.
                value: "<redacted>".into(),
                why: e.to_string(),
            })
        })
        .transpose()
}

fn subnets(env: &Env, var: &'static str) -> Result<Vec<IpNet>> {
    let Some(v) = env.get(var) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let n: IpNet = s
                .parse()
                .map_err(|_| invalid(var, s, "expected a CIDR subnet like 192.168.1.0/24"))?;
            if n.trunc() != n {
                return Err(invalid(
                    var,
                    s,
                    format!("host bits are set; did you mean {}?", n.trunc()),
                ));
            }
            Ok(n)
        })
        .collect()
}

fn ports(var: &'static str, v: &str) -> Result<Vec<u16>> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid(var, v, format!("{p:?} is not a port 1-65535")))
        })
        .collect()
}

fn port_list(env: &Env, var: &'static str) -> Result<Vec<u16>> {
    env.get(var)
        .map(|v| ports(var, v))
        .unwrap_or(Ok(Vec::new()))
}

/// `192.168.10.0/24=8080,9696,6789;192.168.40.0/24=8080,9696`
fn subnet_ports(env: &Env, var: &'static str) -> Result<Vec<SubnetPorts>> {
    let Some(v) = env.get(var) else {
        return Ok(Vec::new());
    };
    v.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (net, p) = entry.split_once('=').ok_or_else(|| {
                invalid(
                    var,
                    entry,
                    "expected SUBNET=PORT,PORT (entries separated by ;)",
                )
            })?;
            let subnet: IpNet = net.trim().parse().map_err(|_| {
                invalid(var, entry, format!("{:?} is not a CIDR subnet", net.trim()))
            })?;
            if subnet.trunc() != subnet {
                return Err(invalid(
                    var,
                    entry,
                    format!("host bits are set; did you mean {}?", subnet.trunc()),
                ));
            }
            let ports = ports(var, p).map_err(|e| match e {
                ConfigError::Invalid { why, .. } => invalid(var, entry, why),
                other => other,
            })?;
            if ports.is_empty() {
                return Err(invalid(var, entry, "no port given"));
            }
            Ok(SubnetPorts { subnet, ports })
        })
        .collect()
}

fn health_settings(
    env: &Env,
    outbound: &[IpNet],
    dns_upstream: Option<IpAddr>,
) -> Result<HealthSettings> {
    let server_s = env
        .get("HEALTH_SERVER_ADDRESS")
        .unwrap_or(DEFAULT_HEALTH_SERVER);
    // Gluetun accepts ":9999" for all addresses.
    let server_full = if server_s.starts_with(':') {
        format!("0.0.0.0{server_s}")
    } else {
        server_s.to_string()
    };
    let server: SocketAddr = server_full.parse().map_err(|_| {
        invalid(
            "HEALTH_SERVER_ADDRESS",
            server_s,
            "expected ADDRESS:PORT, e.g. 127.0.0.1:9999",
        )
    })?;
    let inside_outbound = |var: &'static str, v: &str, ip: IpAddr| match outbound
        .iter()
        .find(|n| n.contains(&ip))
    {
        Some(n) => Err(invalid(
            var,
            v,
            format!("{ip} is inside FIREWALL_OUTBOUND_SUBNETS {n}: it would not test the tunnel"),
        )),
        None => Ok(()),
    };
    // Gluetun still reads its older names for the targets.
    let targets_s = env
        .get("HEALTH_TARGET_ADDRESSES")
        .or_else(|| env.get("HEALTH_TARGET_ADDRESS"))
        .or_else(|| env.get("HEALTH_ADDRESS_TO_PING"))
        .unwrap_or(DEFAULT_HEALTH_TARGETS);
    let mut targets = Vec::new();
    for t in targets_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let target = parse_health_target(t).map_err(|why| {
            invalid(
                "HEALTH_TARGET_ADDRESSES",
                targets_s,
                format!("{t:?}: {why}"),
            )
        })?;
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            inside_outbound("HEALTH_TARGET_ADDRESSES", targets_s, ip)?;
        }
        targets.push(target);
    }
    let duration = |var: &'static str, default: u64, min_ms: u64| -> Result<std::time::Duration> {
        match env.get(var) {
            None => Ok(std::time::Duration::from_secs(default)),
            Some(v) => {
                let d = humantime::parse_duration(v)
                    .map_err(|e| invalid(var, v, format!("{e} (e.g. {default}s)")))?;
                if d < std::time::Duration::from_millis(min_ms) {
                    return Err(invalid(var, v, format!("at least {min_ms}ms")));
                }
                Ok(d)
            }
        }
    };
    let small = match env
        .get("HEALTH_SMALL_CHECK_TYPE")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("icmp") => {
            let v = env
                .get("HEALTH_ICMP_TARGET_IPS")
                .or_else(|| env.get("HEALTH_ICMP_TARGET_IP"))
                .unwrap_or(DEFAULT_HEALTH_ICMP_TARGETS);
            let mut ips = Vec::new();
            for t in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let ip: IpAddr = t.parse().map_err(|_| {
                    invalid(
                        "HEALTH_ICMP_TARGET_IPS",
                        v,
                        format!("{t:?} is not an IP address"),
                    )
                })?;
                if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
                    return Err(invalid(
                        "HEALTH_ICMP_TARGET_IPS",
                        v,
                        format!("{ip} cannot be pinged through a tunnel"),
                    ));
                }
                inside_outbound("HEALTH_ICMP_TARGET_IPS", v, ip)?;
                ips.push(ip);
            }
            SmallCheck::Icmp(ips)
        }
        Some("dns") => {
            if dns_upstream.is_none() {
                return Err(invalid(
                    "HEALTH_SMALL_CHECK_TYPE",
                    "dns",
                    "the DNS check asks DNS_ADDRESS through the tunnel, and DNS_ADDRESS is not set",
                ));
            }
            SmallCheck::Dns
        }
        Some(other) => {
            return Err(invalid(
                "HEALTH_SMALL_CHECK_TYPE",
                other,
                "expected icmp or dns",
            ));
        }
    };
    Ok(HealthSettings {
        server,
        targets,
        small,
        interval: duration("HEALTH_SMALL_CHECK_INTERVAL", 2, 100)?,
        full_interval: duration("HEALTH_FULL_CHECK_INTERVAL", 300, 100)?,
        ca_file: env
            .get("HEALTH_TARGET_CA_FILE")
            .map(std::path::PathBuf::from),
        restart_vpn: on_off(env, "HEALTH_RESTART_VPN", true)?,
        initial_grace: match env.get("HEALTH_VPN_DURATION_INITIAL") {
            None => std::time::Duration::from_secs(6),
            Some(v) => humantime::parse_duration(v)
                .map_err(|e| invalid("HEALTH_VPN_DURATION_INITIAL", v, format!("{e} (e.g. 6s)")))?,
        },
    })
}

/// One HEALTH_TARGET_ADDRESSES entry: `name:port`, `ip:port` or
/// `[ipv6]:port`.
fn parse_health_target(t: &str) -> std::result::Result<HealthTarget, String> {
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(HealthTarget {
            host: a.ip().to_string(),
            port: a.port(),
        });
    }
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err("expected HOST:PORT, e.g. cloudflare.com:443".into());
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port"))?;
    if host.contains(':') || host.starts_with('[') {
        return Err("an IPv6 address goes in brackets: [2001:db8::1]:443".into());
    }
    if !super::dns_policy::is_hostname(host) {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(HealthTarget {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port,
    })
}

/// VPN_PORT_FORWARDING_LISTENING_PORT (or Gluetun's newer plural name,
/// with one port): 0 or unset means no redirect.
fn listening_port(env: &Env) -> Result<Option<u16>> {
    let (var, v) = match (
        env.get("VPN_PORT_FORWARDING_LISTENING_PORT"),
        env.get("VPN_PORT_FORWARDING_LISTENING_PORTS"),
    ) {
        (Some(v), _) => ("VPN_PORT_FORWARDING_LISTENING_PORT", v),
        (None, Some(v)) => ("VPN_PORT_FORWARDING_LISTENING_PORTS", v),
        (None, None) => return Ok(None),
    };
    if v.contains(',') {
        return Err(invalid(
            var,
            v,
            "one port only: leakhound asks the provider for one forwarded port",
        ));
    }
    match v.parse::<u16>() {
        Ok(0) => Ok(None),
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(invalid(var, v, "expected a port number")),
    }
}

fn on_off(env: &Env, var: &'static str, default: bool) -> Result<bool> {
    match env.get(var).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "on" | "yes" | "true" | "1" => Ok(true),
            "off" | "no" | "false" | "0" => Ok(false),
            _ => Err(invalid(var, &v, "expected on or off")),
        },
    }
}

/// Variables leakhound knows but does not implement yet, with the value that
/// means "nothing asked for". Any other value is refused.
const NOT_YET: &[(&str, &str)] = &[];

impl GatewayConfig {
    /// Reads the configuration from environment variable pairs.
    pub fn from_env<I, K, V>(vars: I) -> Result<GatewayConfig>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env = Env(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            Default::default(),
        );

        let provider = env.get("VPN_SERVICE_PROVIDER").unwrap_or("custom");
        if !provider.eq_ignore_ascii_case("custom") {
            return Err(ConfigError::Unsupported {
                var: "VPN_SERVICE_PROVIDER",
                value: provider.into(),
                why: ": only custom (with VPN_ENDPOINT_IP and keys) is supported",
            });
        }
        let vpn_type = env.get("VPN_TYPE").unwrap_or("wireguard");
        if !vpn_type.eq_ignore_ascii_case("wireguard") {
            return Err(ConfigError::Unsupported {
                var: "VPN_TYPE",
                value: vpn_type.into(),
                why: ": only wireguard is supported",
            });
        }
        for (var, default) in NOT_YET {
            if let Some(v) = env.get(var)
                && !v.eq_ignore_ascii_case(default)
            {
                return Err(ConfigError::Unsupported {
                    var,
                    value: v.into(),
                    why: " yet; remove it or set it to its default",
                });
            }
        }

        // The key itself, or (Gluetun's way for Docker secrets) a file
        // holding it, read again when the key is rotated.
        let private_key_file = match env.get("WIREGUARD_PRIVATE_KEY") {
            Some(_) => None,
            None => env
                .get("WIREGUARD_PRIVATE_KEY_SECRETFILE")
                .map(std::path::PathBuf::from),
        };
        let private_key = match &private_key_file {
            Some(f) => read_key_file(f).map_err(|why| ConfigError::Invalid {
                var: "WIREGUARD_PRIVATE_KEY_SECRETFILE",
                value: f.display().to_string(),
                why,
            })?,
            None => {
                env.required(
                    "WIREGUARD_PRIVATE_KEY",
                    " (the gateway's base64 private key, or WIREGUARD_PRIVATE_KEY_SECRETFILE naming a file that holds it)",
                )?;
                key(&env, "WIREGUARD_PRIVATE_KEY")?.expect("checked")
            }
        };
        env.required(
            "WIREGUARD_PUBLIC_KEY",
            " (the provider server's base64 public key)",
        )?;
        let public_key = key(&env, "WIREGUARD_PUBLIC_KEY")?.expect("checked");
        let preshared_key = key(&env, "WIREGUARD_PRESHARED_KEY")?;

        // Gluetun reads WIREGUARD_ADDRESSES and, for older compose files, WIREGUARD_ADDRESS.
        let (addr_var, addr_val) = match env.get("WIREGUARD_ADDRESSES") {
            Some(v) => ("WIREGUARD_ADDRESSES", v),
            None => match env.get("WIREGUARD_ADDRESS") {
                Some(v) => ("WIREGUARD_ADDRESS", v),
                None => {
                    return Err(ConfigError::Missing {
                        var: "WIREGUARD_ADDRESSES",
                        hint: " (the tunnel addresses the provider gave you, e.g. 10.64.0.2/32)",
                    });
                }
            },
        };
        let addresses = addr_val
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            addr_var,
                            s,
                            "expected an address with prefix like 10.64.0.2/32",
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        if addresses.is_empty() {
            return Err(invalid(addr_var, addr_val, "no address given"));
        }

        let mtu = match env.get("WIREGUARD_MTU") {
            None => 1420,
            Some(v) => {
                let m: u16 = v
                    .parse()
                    .map_err(|_| invalid("WIREGUARD_MTU", v, "expected a number"))?;
                if !(1280..=9000).contains(&m) {
                    return Err(invalid(
                        "WIREGUARD_MTU",
                        v,
                        "must be between 1280 (IPv6 minimum) and 9000",
                    ));
                }
                m
            }
        };

        let ip_s = env.required("VPN_ENDPOINT_IP", " (the provider server's IP address)")?;
        let ip: IpAddr = ip_s
            .parse()
            .map_err(|_| invalid("VPN_ENDPOINT_IP", ip_s, "expected an IP address"))?;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(invalid(
                "VPN_ENDPOINT_IP",
                ip_s,
                "not a unicast address of a server",
            ));
        }
        let port_s = env.required(
            "VPN_ENDPOINT_PORT",
            " (the provider server's UDP port, e.g. 51820)",
        )?;
        let port: u16 = port_s
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("VPN_ENDPOINT_PORT", port_s, "expected a port 1-65535"))?;

        let keepalive = match env.get("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL") {
            None => None,
            Some(v) => {
                let d = humantime::parse_duration(v).map_err(|e| {
                    invalid(
                        "WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL",
                        v,
                        format!("{e} (e.g. 25s)"),
                    )
                })?;
                let secs = u16::try_from(d.as_secs()).map_err(|_| {
                    invalid("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL", v, "too long")
                })?;
                (secs > 0).then_some(secs)
            }
        };

        let interface = env.get("VPN_INTERFACE").unwrap_or("wg0").to_string();
        if interface.len() > 15
            || interface.contains('/')
            || interface.contains(char::is_whitespace)
        {
            return Err(invalid(
                "VPN_INTERFACE",
                &interface,
                "not a valid interface name (1-15 characters)",
            ));
        }
        let outbound_subnets = subnets(&env, "FIREWALL_OUTBOUND_SUBNETS")?;
        if on_off(&env, "DNS_KEEP_NAMESERVER", false)? {
            return Err(ConfigError::Unsupported {
                var: "DNS_KEEP_NAMESERVER",
                value: "on".into(),
                why: ": it would send queries to the network's own nameserver outside the tunnel (a DNS leak)",
            });
        }
        let firewall = FirewallSettings {
            enabled: on_off(
                &env,
                "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT",
                true,
            )?,
            input_ports: port_list(&env, "FIREWALL_INPUT_PORTS")?,
            vpn_input_ports: port_list(&env, "FIREWALL_VPN_INPUT_PORTS")?,
            subnet_ports: subnet_ports(&env, "FIREWALL_INPUT_SUBNET_PORTS")?,
            debug: on_off(&env, "FIREWALL_DEBUG", false)?,
            remove_on_exit: match env.get("FIREWALL_ON_EXIT").map(|v| v.to_ascii_lowercase()) {
                None => false,
                Some(v) if v == "keep" => false,
                Some(v) if v == "remove" => true,
                Some(v) => return Err(invalid("FIREWALL_ON_EXIT", &v, "expected keep or remove")),
            },
        };

        let upstream = match env.get("DNS_ADDRESS") {
            None => None,
            Some(v) => {
                let ip: IpAddr = v.parse().map_err(|_| {
                    invalid(
                        "DNS_ADDRESS",
                        v,
                        "expected an IP address (the provider's resolver)",
                    )
                })?;
                if let Some(n) = outbound_subnets.iter().find(|n| n.contains(&ip)) {
                    return Err(invalid(
                        "DNS_ADDRESS",
                        v,
                        format!(
                            "it is inside FIREWALL_OUTBOUND_SUBNETS {n}, so queries would leave outside the tunnel"
                        ),
                    ));
                }
                (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
            }
        };
        let mut doh_addresses: Vec<IpAddr> = KNOWN_DOH_ADDRESSES
            .iter()
            .map(|a| a.parse().expect("literal"))
            .collect();
        if let Some(v) = env.get("DNS_BLOCK_DOH_ADDRESSES") {
            for a in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                doh_addresses.push(a.parse().map_err(|_| {
                    invalid(
                        "DNS_BLOCK_DOH_ADDRESSES",
                        v,
                        format!("{a:?} is not an IP address"),
                    )
                })?);
            }
        }
        let dir = std::path::PathBuf::from(
            env.get("DNS_BLOCKLIST_DIR")
                .unwrap_or(DEFAULT_BLOCKLIST_DIR),
        );
        let mut blocklists = Vec::new();
        for (var, file) in [
            ("BLOCK_MALICIOUS", "malicious.txt"),
            ("BLOCK_SURVEILLANCE", "surveillance.txt"),
            ("BLOCK_ADS", "ads.txt"),
        ] {
            if on_off(&env, var, false)? {
                blocklists.push((var, dir.join(file)));
            }
        }
        let mut policy = super::dns_policy::DnsPolicy::default();
        for n in super::dns_policy::KNOWN_DOH_HOSTNAMES {
            policy.doh_names.insert(n);
        }
        for (var, set) in [
            ("DNS_UNBLOCK_HOSTNAMES", &mut policy.unblocked),
            ("DNS_BLOCK_DOH_HOSTNAMES", &mut policy.doh_names),
            (
                "DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES",
                &mut policy.rebinding_exempt,
            ),
        ] {
            if let Some(v) = env.get(var) {
                let text = v.replace(',', "\n");
                if let Some((_, bad)) = set.parse_list(&text).into_iter().next() {
                    return Err(invalid(var, v, format!("{bad:?} is not a hostname")));
                }
            }
        }
        let dot = if on_off(&env, "DOT", false)? {
            if upstream.is_none() {
                return Err(ConfigError::Missing {
                    var: "DNS_ADDRESS",
                    hint: " with DOT=on (the DNS-over-TLS resolver to use, reached through the tunnel)",
                });
            }
            let server_name = env
                .required(
                    "DOT_SERVER_NAME",
                    " with DOT=on (the name on the DoT resolver's certificate)",
                )?
                .to_string();
            if rustls::pki_types::ServerName::try_from(server_name.clone()).is_err() {
                return Err(invalid(
                    "DOT_SERVER_NAME",
                    &server_name,
                    "not a DNS name or IP address",
                ));
            }
            Some(DotSettings {
                server_name,
                ca_file: env.get("DOT_CA_FILE").map(std::path::PathBuf::from),
            })
        } else {
            None
        };
        let cache_size = if on_off(&env, "DNS_CACHING", true)? {
            match env.get("DNS_CACHE_SIZE") {
                None => DEFAULT_DNS_CACHE_SIZE,
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= 1_000_000)
                    .ok_or_else(|| {
                        invalid(
                            "DNS_CACHE_SIZE",
                            v,
                            "expected a number of answers, at most 1000000",
                        )
                    })?,
            }
        } else {
            0
        };
        let dns = DnsSettings {
            upstream,
            doh_addresses,
            blocklists,
            policy,
            dot,
            cache_size,
        };
        let health = health_settings(&env, &outbound_subnets, dns.upstream)?;
        let port_forwarding = if on_off(&env, "VPN_PORT_FORWARDING", false)? {
            let g = env.required(
                "VPN_PORT_FORWARDING_GATEWAY",
                " with VPN_PORT_FORWARDING=on (the provider's NAT-PMP gateway inside the tunnel)",
            )?;
            let gateway: IpAddr = g
                .parse()
                .map_err(|_| invalid("VPN_PORT_FORWARDING_GATEWAY", g, "expected an IP address"))?;
            Some(PortForwarding {
                gateway,
                status_file: env
                    .get("VPN_PORT_FORWARDING_STATUS_FILE")
                    .unwrap_or("/tmp/gluetun/forwarded_port")
                    .into(),
                up_command: env
                    .get("VPN_PORT_FORWARDING_UP_COMMAND")
                    .map(str::to_string),
                down_command: env
                    .get("VPN_PORT_FORWARDING_DOWN_COMMAND")
                    .map(str::to_string),
                listening_port: listening_port(&env)?,
            })
        } else {
            None
        };
        let control = {
            let a = env.get("HTTP_CONTROL_SERVER_ADDRESS").unwrap_or(":8000");
            let full = if a.starts_with(':') {
                format!("0.0.0.0{a}")
            } else {
                a.to_string()
            };
            let address: SocketAddr = full.parse().map_err(|_| {
                invalid(
                    "HTTP_CONTROL_SERVER_ADDRESS",
                    a,
                    "expected [ADDRESS]:PORT, e.g. :8000",
                )
            })?;
            let public_ip_url = env.get("PUBLICIP_URL").map(str::to_string);
            if let Some(u) = &public_ip_url
                && !u.starts_with("http://")
            {
                return Err(invalid("PUBLICIP_URL", u, "expected http://IP[:PORT]/path"));
            }
            ControlSettings {
                address,
                auth_file: env
                    .get("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH")
                    .unwrap_or("/gluetun/auth/config.toml")
                    .into(),
                auth_file_explicit: env
                    .get("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH")
                    .is_some(),
                public_ip_url,
                public_ip_file: env.get("PUBLICIP_FILE").unwrap_or("/tmp/gluetun/ip").into(),
            }
        };

        Ok(GatewayConfig {
            private_key,
            private_key_file,
            public_key,
            preshared_key,
            addresses,
            mtu,
            endpoint: SocketAddr::new(ip, port),
            keepalive,
            interface,
            outbound_subnets,
            firewall,
            dns,
            health,
            control,
            port_forwarding,
            unused: env.unread(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakhound_net::tunnel::{encode_key, generate_keypair};

    fn base() -> Vec<(String, String)> {
        let (p, _) = generate_keypair();
        let (_, q) = generate_keypair();
        [
            ("VPN_SERVICE_PROVIDER", "custom".to_string()),
            ("VPN_TYPE", "wireguard".into()),
            ("WIREGUARD_PRIVATE_KEY", encode_key(&p)),
            ("WIREGUARD_PUBLIC_KEY", encode_key(&q)),
            ("WIREGUARD_ADDRESSES", "10.64.0.2/32".into()),
            ("VPN_ENDPOINT_IP", "203.0.113.10".into()),
            ("VPN_ENDPOINT_PORT", "51820".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn with(var: &str, value: &str) -> Vec<(String, String)> {
        let mut v: Vec<_> = base().into_iter().filter(|(k, _)| k != var).collect();
        v.push((var.to_string(), value.to_string()));
        v
    }

    fn without(var: &str) -> Vec<(String, String)> {
        base().into_iter().filter(|(k, _)| k != var).collect()
    }

    #[test]
    fn the_private_key_may_come_from_a_secret_file_never_quoted() {
        let dir = std::env::temp_dir().join(format!("lh-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("wireguard_private_key");
        let k = [7u8; 32];
        std::fs::write(&f, format!("{}\n", encode_key(&k))).unwrap();
        let mut env = without("WIREGUARD_PRIVATE_KEY");
        env.push((
            "WIREGUARD_PRIVATE_KEY_SECRETFILE".into(),
            f.display().to_string(),
        ));
        let c = GatewayConfig::from_env(env.clone()).unwrap();
        assert_eq!(c.private_key, k);
        assert_eq!(c.private_key_file.as_deref(), Some(f.as_path()));
        std::fs::write(&f, "bm90LWEta2V5LWJ1dC1hLXNlY3JldA==").unwrap();
        let e = GatewayConfig::from_env(env).unwrap_err().to_string();
        assert!(e.starts_with("WIREGUARD_PRIVATE_KEY_SECRETFILE="), "{e}");
        assert!(e.contains("its content is not a key"), "{e}");
        assert!(!e.contains("bm90"), "{e}");
        // Both contents were registered as secrets, key or not.
        assert_eq!(
            leakhound_proto::scrub::redact(&format!(
                "{} bm90LWEta2V5LWJ1dC1hLXNlY3JldA==",
                encode_key(&k)
            )),
            "<redacted> <redacted>"
        );
        let e = GatewayConfig::from_env(without("WIREGUARD_PRIVATE_KEY"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("WIREGUARD_PRIVATE_KEY_SECRETFILE"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_seeds_example_parses() {
        let c = GatewayConfig::from_env(with(
            "FIREWALL_OUTBOUND_SUBNETS",
            "172.21.0.0/16,172.20.0.0/16",
        ))
        .unwrap();
        assert_eq!(c.endpoint, "203.0.113.10:51820".parse().unwrap());
        assert_eq!(c.mtu, 1420);
        assert_eq!(c.interface, "wg0");
        assert_eq!(c.outbound_subnets.len(), 2);
        assert!(!c.has_ipv6());
    }

    #[test]
    fn the_older_singular_address_variable_is_read() {
        let mut v = without("WIREGUARD_ADDRESSES");
        v.push((
            "WIREGUARD_ADDRESS".into(),
            "10.64.0.2/32,fd00:64::2/128".into(),
        ));
        let c = GatewayConfig::from_env(v).unwrap();
        assert!(c.has_ipv6());
    }

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for var in [
            "WIREGUARD_PRIVATE_KEY",
            "WIREGUARD_PUBLIC_KEY",
            "WIREGUARD_ADDRESSES",
            "VPN_ENDPOINT_IP",
            "VPN_ENDPOINT_PORT",
        ] {
            let e = GatewayConfig::from_env(without(var)).unwrap_err();
            assert!(e.to_string().starts_with(var), "{var}: {e}");
        }
    }

    #[test]
    fn malformed_values_are_named_with_the_value() {
        for (var, value) in [
            ("VPN_ENDPOINT_IP", "203.0.113"),
            ("VPN_ENDPOINT_IP", "0.0.0.0"),
            ("VPN_ENDPOINT_PORT", "0"),
            ("VPN_ENDPOINT_PORT", "70000"),
            ("WIREGUARD_MTU", "abc"),
            ("WIREGUARD_MTU", "576"),
            ("WIREGUARD_ADDRESSES", "10.64.0.2/33"),
            ("FIREWALL_OUTBOUND_SUBNETS", "172.20.0.1/16"),
            ("FIREWALL_OUTBOUND_SUBNETS", "lan"),
            ("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL", "often"),
            ("DNS_KEEP_NAMESERVER", "maybe"),
            ("DNS_ADDRESS", "provider"),
            ("DNS_BLOCK_DOH_ADDRESSES", "1.2.3.4,doh.example"),
            ("DNS_UNBLOCK_HOSTNAMES", "ok.lab,bad host"),
            ("HEALTH_SERVER_ADDRESS", "localhost"),
            ("HEALTH_TARGET_ADDRESSES", "cloudflare.com"),
            ("HEALTH_TARGET_ADDRESSES", "cloudflare.com:0"),
            ("HEALTH_TARGET_ADDRESSES", "2001:db8::1:443"),
            ("HEALTH_TARGET_ADDRESSES", "bad host:443"),
            ("HEALTH_ICMP_TARGET_IPS", "one.one.one.one"),
            ("HEALTH_ICMP_TARGET_IPS", "127.0.0.1"),
            ("HEALTH_SMALL_CHECK_TYPE", "tcp"),
            ("HEALTH_FULL_CHECK_INTERVAL", "soon"),
            ("HEALTH_SMALL_CHECK_INTERVAL", "1ms"),
            ("HTTP_CONTROL_SERVER_ADDRESS", "port8000"),
            ("PUBLICIP_URL", "https://ipinfo.io"),
            ("BLOCK_ADS", "sometimes"),
            ("DNS_CACHING", "maybe"),
            ("DNS_CACHE_SIZE", "lots"),
            ("VPN_INTERFACE", "a-very-long-interface-name"),
            ("FIREWALL_INPUT_PORTS", "8080,http"),
            ("FIREWALL_VPN_INPUT_PORTS", "0"),
            ("FIREWALL_DEBUG", "verbose"),
            (
                "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT",
                "nah",
            ),
            ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.0/24:8080"),
            ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.1/24=8080"),
            ("FIREWALL_INPUT_SUBNET_PORTS", "lan=8080"),
            ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.0/24=99999"),
            ("FIREWALL_ON_EXIT", "open"),
        ] {
            let e = GatewayConfig::from_env(with(var, value)).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(var), "{var}={value}: {msg}");
            assert!(msg.contains(value), "{var}={value}: {msg}");
        }
    }

    #[test]
    fn bad_keys_are_named_but_never_echoed() {
        let e = GatewayConfig::from_env(with("WIREGUARD_PRIVATE_KEY", "c2VjcmV0")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("WIREGUARD_PRIVATE_KEY"), "{msg}");
        assert!(!msg.contains("c2VjcmV0"), "{msg}");
        assert!(msg.contains("32 bytes"), "{msg}");
    }

    #[test]
    fn the_seeds_firewall_rules_parse() {
        let mut v = with(
            "FIREWALL_INPUT_SUBNET_PORTS",
            "192.168.10.0/24=8080,9696,6789; 192.168.40.0/24=8080,9696",
        );
        v.push(("FIREWALL_VPN_INPUT_PORTS".into(), "51413".into()));
        v.push(("FIREWALL_DEBUG".into(), "on".into()));
        let c = GatewayConfig::from_env(v).unwrap();
        let f = &c.firewall;
        assert!(f.enabled && f.debug && !f.remove_on_exit);
        assert_eq!(f.vpn_input_ports, vec![51413]);
        assert_eq!(f.subnet_ports.len(), 2);
        assert_eq!(f.subnet_ports[0].ports, vec![8080, 9696, 6789]);
        assert_eq!(f.subnet_ports[1].subnet.to_string(), "192.168.40.0/24");
        // Defaults: on, nothing open.
        let d = GatewayConfig::from_env(base()).unwrap().firewall;
        assert!(d.enabled && !d.debug && d.input_ports.is_empty() && d.subnet_ports.is_empty());
    }

    #[test]
    fn dns_settings_follow_the_seed_and_refuse_leaky_ones() {
        let c = GatewayConfig::from_env(with("DNS_ADDRESS", "10.64.0.1")).unwrap();
        assert_eq!(c.dns.upstream, Some("10.64.0.1".parse().unwrap()));
        assert!(c.dns.doh_addresses.contains(&"1.1.1.1".parse().unwrap()));
        assert_eq!(
            GatewayConfig::from_env(with("DNS_ADDRESS", "127.0.0.1"))
                .unwrap()
                .dns
                .upstream,
            None
        );
        // A resolver on an outbound subnet is reached outside the tunnel.
        let mut v = with("DNS_ADDRESS", "172.20.0.53");
        v.push(("FIREWALL_OUTBOUND_SUBNETS".into(), "172.20.0.0/16".into()));
        let e = GatewayConfig::from_env(v).unwrap_err().to_string();
        assert!(
            e.starts_with("DNS_ADDRESS") && e.contains("172.20.0.0/16"),
            "{e}"
        );
        let e = GatewayConfig::from_env(with("DNS_KEEP_NAMESERVER", "on"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("DNS_KEEP_NAMESERVER") && e.contains("leak"),
            "{e}"
        );
        let c = GatewayConfig::from_env(with("DNS_BLOCK_DOH_ADDRESSES", "192.0.2.43")).unwrap();
        assert!(c.dns.doh_addresses.contains(&"192.0.2.43".parse().unwrap()));
    }

    #[test]
    fn other_providers_and_openvpn_are_refused() {
        assert!(matches!(
            GatewayConfig::from_env(with("VPN_SERVICE_PROVIDER", "mullvad")),
            Err(ConfigError::Unsupported {
                var: "VPN_SERVICE_PROVIDER",
                ..
            })
        ));
        assert!(matches!(
            GatewayConfig::from_env(with("VPN_TYPE", "openvpn")),
            Err(ConfigError::Unsupported {
                var: "VPN_TYPE",
                ..
            })
        ));
    }

    #[test]
    fn a_listening_port_is_one_port_and_zero_means_none() {
        let pf = |k: &str, v: &str| {
            let mut e = with("VPN_PORT_FORWARDING", "on");
            e.push(("VPN_PORT_FORWARDING_GATEWAY".into(), "10.64.0.1".into()));
            e.push((k.into(), v.into()));
            GatewayConfig::from_env(e).map(|c| c.port_forwarding.unwrap().listening_port)
        };
        assert_eq!(
            pf("VPN_PORT_FORWARDING_LISTENING_PORT", "6881"),
            Ok(Some(6881))
        );
        assert_eq!(
            pf("VPN_PORT_FORWARDING_LISTENING_PORTS", "6881"),
            Ok(Some(6881))
        );
        assert_eq!(pf("VPN_PORT_FORWARDING_LISTENING_PORT", "0"), Ok(None));
        for bad in ["6881,6882", "http", "70000"] {
            let e = pf("VPN_PORT_FORWARDING_LISTENING_PORT", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("VPN_PORT_FORWARDING_LISTENING_PORT"), "{e}");
        }
    }

    #[test]
    fn port_forwarding_needs_the_providers_gateway() {
        let e = GatewayConfig::from_env(with("VPN_PORT_FORWARDING", "on"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("VPN_PORT_FORWARDING_GATEWAY"), "{e}");
        let mut v = with("VPN_PORT_FORWARDING", "on");
        v.push(("VPN_PORT_FORWARDING_GATEWAY".into(), "10.64.0.1".into()));
        v.push((
            "VPN_PORT_FORWARDING_UP_COMMAND".into(),
            "echo {{PORT}}".into(),
        ));
        let pf = GatewayConfig::from_env(v).unwrap().port_forwarding.unwrap();
        assert_eq!(pf.gateway, "10.64.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(pf.up_command.as_deref(), Some("echo {{PORT}}"));
        assert!(
            GatewayConfig::from_env(base())
                .unwrap()
                .port_forwarding
                .is_none()
        );
    }

    #[test]
    fn health_settings_default_to_gluetuns_and_refuse_targets_outside_the_tunnel() {
        let h = GatewayConfig::from_env(base()).unwrap().health;
        assert_eq!(h.server, "127.0.0.1:9999".parse().unwrap());
        let shown: Vec<String> = h.targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(shown, ["cloudflare.com:443", "github.com:443"]);
        assert_eq!(
            h.small,
            SmallCheck::Icmp(vec!["1.1.1.1".parse().unwrap(), "8.8.8.8".parse().unwrap()])
        );
        assert_eq!(h.full_interval, std::time::Duration::from_secs(300));
        let h = GatewayConfig::from_env(with("HEALTH_SERVER_ADDRESS", ":9999"))
            .unwrap()
            .health;
        assert_eq!(h.server, "0.0.0.0:9999".parse().unwrap());
        for (var, value) in [
            ("HEALTH_TARGET_ADDRESSES", "172.20.0.10:80"),
            ("HEALTH_ICMP_TARGET_IPS", "1.1.1.1,172.20.0.10"),
        ] {
            let mut v = with(var, value);
            v.push(("FIREWALL_OUTBOUND_SUBNETS".into(), "172.20.0.0/16".into()));
            let e = GatewayConfig::from_env(v).unwrap_err().to_string();
            assert!(
                e.starts_with(var) && e.contains("would not test the tunnel"),
                "{e}"
            );
        }
    }

    #[test]
    fn health_targets_are_names_or_addresses_with_a_port() {
        let h = GatewayConfig::from_env(with(
            "HEALTH_TARGET_ADDRESSES",
            "WhoAmI.lab.:443, 192.0.2.80:443,[2001:db8:80::80]:8443",
        ))
        .unwrap()
        .health;
        let shown: Vec<String> = h.targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            shown,
            ["whoami.lab:443", "192.0.2.80:443", "[2001:db8:80::80]:8443"]
        );
        let e = GatewayConfig::from_env(with("HEALTH_TARGET_ADDRESSES", "2001:db8::1:443"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("in brackets"), "{e}");
    }

    #[test]
    fn variables_that_mean_nothing_here_are_reported() {
        assert!(GatewayConfig::from_env(base()).unwrap().unused.is_empty());
        // The seed's HEALTH_TARGET and HEALTH_INTERVAL are not Gluetun's
        // names; DOT_SERVER_NAME has no effect without DOT=on; PATH is
        // nobody's business.
        let mut v = with("HEALTH_TARGET", "google.com");
        v.push(("HEALTH_INTERVAL".into(), "60".into()));
        v.push(("DOT_SERVER_NAME".into(), "dns.example".into()));
        v.push(("PATH".into(), "/usr/bin".into()));
        v.push(("DOTNET_ROOT".into(), "/usr/share/dotnet".into()));
        let c = GatewayConfig::from_env(v).unwrap();
        assert_eq!(
            c.unused,
            ["DOT_SERVER_NAME", "HEALTH_INTERVAL", "HEALTH_TARGET"]
        );
        // Gluetun's older name for the targets still works.
        let c = GatewayConfig::from_env(with("HEALTH_TARGET_ADDRESS", "github.com:443")).unwrap();
        assert_eq!(c.health.targets[0].to_string(), "github.com:443");
        assert!(c.unused.is_empty(), "{:?}", c.unused);
    }

    #[test]
    fn the_dns_cache_is_bounded_and_can_be_off() {
        assert_eq!(
            GatewayConfig::from_env(base()).unwrap().dns.cache_size,
            1024
        );
        let c = GatewayConfig::from_env(with("DNS_CACHE_SIZE", "64")).unwrap();
        assert_eq!(c.dns.cache_size, 64);
        let mut v = with("DNS_CACHING", "off");
        v.push(("DNS_CACHE_SIZE".into(), "64".into()));
        assert_eq!(GatewayConfig::from_env(v).unwrap().dns.cache_size, 0);
    }

    #[test]
    fn the_dns_small_check_needs_an_upstream() {
        let e = GatewayConfig::from_env(with("HEALTH_SMALL_CHECK_TYPE", "dns"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("HEALTH_SMALL_CHECK_TYPE") && e.contains("DNS_ADDRESS"),
            "{e}"
        );
        let mut v = with("HEALTH_SMALL_CHECK_TYPE", "DNS");
        v.push(("DNS_ADDRESS".into(), "10.64.0.1".into()));
        assert_eq!(
            GatewayConfig::from_env(v).unwrap().health.small,
            SmallCheck::Dns
        );
    }

    #[test]
    fn dot_needs_an_upstream_and_a_server_name() {
        let e = GatewayConfig::from_env(with("DOT", "on"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("DNS_ADDRESS"), "{e}");
        let mut v = with("DOT", "on");
        v.push(("DNS_ADDRESS".into(), "10.64.0.1".into()));
        let e = GatewayConfig::from_env(v.clone()).unwrap_err().to_string();
        assert!(e.starts_with("DOT_SERVER_NAME"), "{e}");
        v.push(("DOT_SERVER_NAME".into(), "dns.provider.lab".into()));
        v.push(("DOT_CA_FILE".into(), "/run/ca.pem".into()));
        let c = GatewayConfig::from_env(v).unwrap();
        let dot = c.dns.dot.unwrap();
        assert_eq!(dot.server_name, "dns.provider.lab");
        assert_eq!(dot.ca_file.unwrap().display().to_string(), "/run/ca.pem");
    }

    #[test]
    fn blocklists_are_the_files_the_block_variables_ask_for() {
        let mut v = with("BLOCK_MALICIOUS", "on");
        v.push(("BLOCK_ADS".into(), "on".into()));
        v.push(("DNS_BLOCKLIST_DIR".into(), "/lists".into()));
        v.push((
            "DNS_UNBLOCK_HOSTNAMES".into(),
            "ok.malware.lab, fine.lab".into(),
        ));
        let c = GatewayConfig::from_env(v).unwrap();
        let files: Vec<_> = c
            .dns
            .blocklists
            .iter()
            .map(|(v, p)| (*v, p.display().to_string()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("BLOCK_MALICIOUS", "/lists/malicious.txt".to_string()),
                ("BLOCK_ADS", "/lists/ads.txt".to_string())
            ]
        );
        assert!(c.dns.policy.unblocked.matches("ok.malware.lab"));
        assert!(c.dns.policy.doh_names.matches("dns.google"));
        assert!(
            GatewayConfig::from_env(base())
                .unwrap()
                .dns
                .blocklists
                .is_empty()
        );
    }
}
