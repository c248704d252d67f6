//! The gateway's configuration, read only from Gluetun's environment
//! variables (so a compose file's `environment:` block works unchanged),
//! as today's Gluetun reads them: empty counts as unset, a retired name is
//! read before the current one (with a deprecation warning naming the
//! current one), and every Gluetun variable has a row in
//! [`crate::variables::VARIABLES`] saying what leakhound does with it.
//! Parsing is pure: it takes the variables as pairs and returns a config
//! (with the warnings to log at start) or an error naming the variable and
//! the bad value. A variable whose row says it is refused stops the gateway
//! when it asks for something leakhound cannot do: a user who asks for a
//! protection must never silently lack it.

mod dns;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::firewall::SubnetPorts;
use crate::variables::{Status, VARIABLES};
pub use dns::{DEFAULT_DOH_PATH, PROVIDER_NAMES, Upstream};
use leakhound_net::tunnel::{KeyError, parse_key};
use leakhound_proto::http_url::HttpUrl;

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
    /// A variable whose row in [`crate::variables::VARIABLES`] refuses
    /// this value.
    #[error("{var}={value:?} is refused by leakhound's gateway: {why}")]
    Refused {
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
    /// VPN_UP_COMMAND / VPN_DOWN_COMMAND: run after each tunnel-up and
    /// before each tunnel-down, `{{VPN_INTERFACE}}` replaced
    /// ([`crate::command`]).
    pub up_command: Option<String>,
    pub down_command: Option<String>,
    /// Gluetun-style variables that were set but mean nothing to this
    /// gateway (unknown names, or settings without effect in this
    /// configuration): logged as warnings at start.
    pub unused: Vec<String>,
    /// FIREWALL_OUTBOUND_SUBNETS entries left out because they cover public
    /// addresses ([`LOCAL_RANGES`]).
    pub public_outbound_subnets: Vec<IpNet>,
    /// Everything else to say at start: retired names in use (naming the
    /// current one), meanings that changed, variables accepted without
    /// effect and why.
    pub warnings: Vec<String>,
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
    /// VPN_PORT_FORWARDING_LISTENING_PORTS: the local port the dependent
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
    /// HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE: who may call the routes no
    /// role of the file lists (`{}`: nobody).
    pub default_role: Option<super::control_auth::Auth>,
    /// PUBLICIP_URL (leakhound's own): http://IP[:PORT]/path answering the
    /// caller's address as text, asked through the tunnel after each
    /// tunnel-up; `None` also when PUBLICIP_ENABLED=off.
    pub public_ip_url: Option<HttpUrl>,
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
    /// github.com:443`): `HOST[:PORT]` (443 by default), HOST a name (asked
    /// of the gateway's own resolver) or an IP (`[v6]:port`); the full
    /// check completes a TCP connection and a TLS handshake with the first
    /// one that answers.
    pub targets: Vec<HealthTarget>,
    /// The small check: HEALTH_SMALL_CHECK_TYPE=icmp (default) pings
    /// HEALTH_ICMP_TARGET_IPS (default Gluetun's `1.1.1.1,8.8.8.8`; a lone
    /// `0.0.0.0` is the VPN server); `dns` asks the gateway's resolver (and
    /// so its upstream) for a fresh name.
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
    /// No restart this soon after a tunnel-up (the first handshake and
    /// check need their time): [`INITIAL_GRACE`], whatever Gluetun's
    /// obsolete HEALTH_VPN_DURATION_INITIAL says.
    pub initial_grace: std::time::Duration,
}

/// No restart sooner than this after a tunnel-up.
pub const INITIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(6);

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

/// The variables that are leakhound's own extensions, not Gluetun's: a
/// harness gives them to the built-in gateway only. Another gateway under
/// test gets Gluetun's variables alone, so what it cannot do without these
/// shows as a real difference.
pub const OWN_VARIABLES: [&str; 19] = [
    "FIREWALL_INPUT_SUBNET_PORTS",
    "FIREWALL_ON_EXIT",
    "DNS_BLOCKLIST_DIR",
    "DOT_SERVER_ADDRESS",
    "DOT_SERVER_NAME",
    "DOT_CA_FILE",
    "DOH_SERVER_ADDRESS",
    "DOH_SERVER_URL",
    "DOH_CA_FILE",
    "DNS_CACHE_SIZE",
    "DNS_BLOCK_DOH_ADDRESSES",
    "DNS_BLOCK_DOH_HOSTNAMES",
    "HEALTH_SMALL_CHECK_INTERVAL",
    "HEALTH_FULL_CHECK_INTERVAL",
    "HEALTH_TARGET_CA_FILE",
    "VPN_PORT_FORWARDING_GATEWAY",
    "PUBLICIP_URL",
    "LEAKHOUND_LOG",
    "LEAKHOUND_READINESS_FD",
];

/// Where the health server listens unless told otherwise (Gluetun's).
pub const DEFAULT_HEALTH_SERVER: &str = "127.0.0.1:9999";
/// Gluetun's full-check targets.
pub const DEFAULT_HEALTH_TARGETS: &str = "cloudflare.com:443,github.com:443";
/// Gluetun's small-check (ICMP) targets.
pub const DEFAULT_HEALTH_ICMP_TARGETS: &str = "1.1.1.1,8.8.8.8";
/// The gateway's resolver and the DNS part of the kill switch.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    /// DNS_SERVER (its retired name DOT): the gateway's own resolver on
    /// 127.0.0.1:53, which the namespace's resolv.conf names. Off: no
    /// resolver; resolv.conf names the plain upstreams, which everyone in
    /// the namespace may then reach, through the tunnel only.
    pub server: bool,
    /// Whom the resolver asks (through the tunnel): DNS_UPSTREAM_* and the
    /// retired DNS_ADDRESS; for named resolvers leakhound's own
    /// DOT_SERVER_* / DOH_SERVER_*.
    pub upstream: Upstream,
    /// Addresses of DNS-over-HTTPS endpoints whose port 443 is rejected: the
    /// built-in list of well-known resolvers plus DNS_BLOCK_DOH_ADDRESSES.
    pub doh_addresses: Vec<IpAddr>,
    /// Blocklist files to load at start (BLOCK_MALICIOUS, BLOCK_SURVEILLANCE,
    /// BLOCK_ADS), each with the variable that asked for it.
    pub blocklists: Vec<(&'static str, std::path::PathBuf)>,
    /// DNS_UNBLOCK_HOSTNAMES, DNS_BLOCK_DOH_HOSTNAMES (beyond the built-in
    /// ones), DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES, DNS_BLOCK_IPS and
    /// DNS_BLOCK_IP_PREFIXES.
    pub policy: super::dns_policy::DnsPolicy,
    /// How many answers the resolver keeps: DNS_CACHING=off (Gluetun's)
    /// makes it 0; DNS_CACHE_SIZE (leakhound's own) sets it, default 1024.
    pub cache_size: u64,
}

/// Answers the gateway's resolver keeps by default: ample for a download
/// stack's trackers and indexers; hickory's own default (8192) costs about
/// 10 MB of resident memory once full.
pub const DEFAULT_DNS_CACHE_SIZE: u64 = 1024;

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
    /// FIREWALL_IPTABLES_LOG_LEVEL=debug (its retired name FIREWALL_DEBUG=on):
    /// counters and logged drops.
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

/// The variables, the names the parser asked for (to tell the user about
/// the ones it never looked at), and what to warn about at start.
struct Env {
    vars: BTreeMap<String, String>,
    read: std::cell::RefCell<std::collections::BTreeSet<String>>,
    warnings: std::cell::RefCell<Vec<String>>,
}

/// Prefixes of Gluetun's variables: one of these that the parser never read
/// is reported (a typo, an old name, or a setting without effect here).
const GLUETUN_PREFIXES: &[&str] = &[
    "VPN_",
    "WIREGUARD_",
    "OPENVPN_",
    "AMNEZIAWG_",
    "FIREWALL",
    "DNS_",
    "DOT_",
    "DOH_",
    "BLOCK_",
    "HEALTH_",
    "HTTP_CONTROL_",
    "PUBLICIP_",
    "SERVER_",
    "UPDATER_",
    "HTTPPROXY",
    "SHADOWSOCKS",
    "PMTUD_",
];

impl Env {
    fn new<I, K, V>(vars: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: Default::default(),
            warnings: Default::default(),
        }
    }

    /// A variable's value; empty counts as unset, as in Gluetun.
    fn get(&self, var: &str) -> Option<&str> {
        self.read.borrow_mut().insert(var.to_string());
        self.vars
            .get(var)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// The first of `retired` that is set (Gluetun reads retired names
    /// first: a compose file's old name beats an image's default for the
    /// new one), with a deprecation warning naming `current`; else
    /// `current`. Returns the name read and its value.
    fn get_retro(
        &self,
        current: &'static str,
        retired: &[&'static str],
    ) -> Option<(&'static str, &str)> {
        let now = self.get(current);
        for r in retired {
            if let Some(v) = self.get(r) {
                self.deprecated(r, current);
                return Some((r, v));
            }
        }
        now.map(|v| (current, v))
    }

    /// Gluetun's words for a retired name in use.
    fn deprecated(&self, old: &str, new: &str) {
        self.warn(format!(
            "You are using the old environment variable {old}, please consider changing it to {new}"
        ));
    }

    fn warn(&self, message: String) {
        self.warnings.borrow_mut().push(message);
    }

    /// Gluetun-style variables that are set but were never read.
    fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.vars
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

/// Why a key file gave no key. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("its content is not a key: {0}")]
    NotAKey(#[source] KeyError),
}

/// A WireGuard key from a secret file (base64, surrounding whitespace
/// ignored).
pub fn read_key_file(path: &std::path::Path) -> std::result::Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(KeyFileError::Read)?;
    // A secret file's content is a secret, key or not.
    leakhound_proto::scrub::register(text.trim());
    parse_key(text.trim()).map_err(KeyFileError::NotAKey)
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

fn subnets(env: &Env, current: &'static str, retired: &[&'static str]) -> Result<Vec<IpNet>> {
    let Some((var, v)) = env.get_retro(current, retired) else {
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

/// The ranges an outbound subnet may lie in: private IPv4 (RFC 1918),
/// link-local, and IPv6 unique-local and link-local.
pub const LOCAL_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

/// Whether `subnet` lies inside one of [`LOCAL_RANGES`].
pub fn is_local_subnet(subnet: &IpNet) -> bool {
    LOCAL_RANGES.iter().any(|r| {
        r.parse::<IpNet>()
            .is_ok_and(|r| r.contains(&subnet.network()) && r.prefix_len() <= subnet.prefix_len())
    })
}

/// The outbound subnets that are local networks. One that covers public
/// addresses would send them around the tunnel (TunnelCrack's LocalNet,
/// CVE-2023-36672 and CVE-2023-35838): Gluetun accepts it; this gateway
/// leaves it out with a warning, and its traffic goes through the tunnel.
fn local_only(env: &Env, outbound: Vec<IpNet>) -> (Vec<IpNet>, Vec<IpNet>) {
    let (local, public): (Vec<IpNet>, Vec<IpNet>) = outbound.into_iter().partition(is_local_subnet);
    for p in &public {
        env.warn(format!(
            "FIREWALL_OUTBOUND_SUBNETS: {p} is not a local network (RFC 1918, link-local or IPv6 \
             unique-local): left out, its traffic goes through the tunnel (an outbound subnet \
             covering public addresses sends them around it: TunnelCrack LocalNet, \
             CVE-2023-36672)"
        ));
    }
    (local, public)
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
            // Its subnet joins the underlay's allowed ones (routes, the
            // egress filter): a public one would open them to it.
            if !is_local_subnet(&subnet) {
                return Err(invalid(
                    var,
                    entry,
                    format!(
                        "{subnet} is not a local network (RFC 1918, link-local or IPv6 unique-local)"
                    ),
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

/// A key from its variable or, when that is unset, from the file its
/// secret-file variable names.
fn key_or_file(env: &Env, var: &'static str, file_var: &'static str) -> Result<Option<[u8; 32]>> {
    if let Some(k) = key(env, var)? {
        return Ok(Some(k));
    }
    match env.get(file_var) {
        None => Ok(None),
        Some(f) => read_key_file(std::path::Path::new(f))
            .map(Some)
            .map_err(|why| ConfigError::Invalid {
                var: file_var,
                value: f.to_string(),
                why: why.to_string(),
            }),
    }
}

/// A Gluetun boolean (`on`/`off`, `yes`/`no`, `true`/`false`,
/// `enabled`/`disabled`, and `1`/`0`), case-insensitive.
fn switch(var: &'static str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "enabled" | "1" => Ok(true),
        "off" | "no" | "false" | "disabled" | "0" => Ok(false),
        _ => Err(invalid(var, v, "expected on or off")),
    }
}

fn on_off(env: &Env, var: &'static str, default: bool) -> Result<bool> {
    match env.get(var) {
        None => Ok(default),
        Some(v) => switch(var, v),
    }
}

/// [`on_off`] with Gluetun's retired names read first.
fn on_off_retro(
    env: &Env,
    current: &'static str,
    retired: &[&'static str],
    default: bool,
) -> Result<bool> {
    match env.get_retro(current, retired) {
        None => Ok(default),
        Some((var, v)) => switch(var, v),
    }
}

/// A hook command: kept as written (placeholders are replaced when it
/// runs), refused now if it cannot be split into words.
fn command(env: &Env, var: &'static str) -> Result<Option<String>> {
    let Some(v) = env.get(var) else {
        return Ok(None);
    };
    super::command::split(v).map_err(|e| invalid(var, v, e))?;
    Ok(Some(v.to_string()))
}

/// The rows of [`VARIABLES`] that need no code of their own: a variable
/// accepted without effect is read and warned about, a refused one set to
/// anything it does not accept stops the gateway.
fn apply_table(env: &Env) -> Result<()> {
    for row in VARIABLES {
        for name in row.names {
            match row.status {
                Status::NoEffect { why } => {
                    if env.get(name).is_some() {
                        env.warn(format!(
                            "{name} has no effect in leakhound's gateway: {why}"
                        ));
                    }
                }
                Status::Refused { unless, why } => {
                    if let Some(v) = env.get(name)
                        && !unless.iter().any(|ok| ok.eq_ignore_ascii_case(v))
                    {
                        return Err(ConfigError::Refused {
                            var: name,
                            value: v.to_string(),
                            why,
                        });
                    }
                }
                Status::Implemented | Status::Mapped { .. } => {}
            }
        }
    }
    Ok(())
}

fn health_settings(
    env: &Env,
    outbound: &[IpNet],
    endpoint: IpAddr,
    has_upstream: bool,
) -> Result<HealthSettings> {
    let server = health_server(env)?;
    let targets = health_targets(env, outbound)?;
    let small = small_check(env, outbound, endpoint, has_upstream)?;
    Ok(HealthSettings {
        server,
        targets,
        small,
        interval: health_interval(env, "HEALTH_SMALL_CHECK_INTERVAL", 2, 100)?,
        full_interval: health_interval(env, "HEALTH_FULL_CHECK_INTERVAL", 300, 100)?,
        ca_file: env
            .get("HEALTH_TARGET_CA_FILE")
            .map(std::path::PathBuf::from),
        restart_vpn: on_off(env, "HEALTH_RESTART_VPN", true)?,
        initial_grace: INITIAL_GRACE,
    })
}

/// HEALTH_SERVER_ADDRESS, default [`DEFAULT_HEALTH_SERVER`].
fn health_server(env: &Env) -> Result<SocketAddr> {
    let server_s = env
        .get("HEALTH_SERVER_ADDRESS")
        .unwrap_or(DEFAULT_HEALTH_SERVER);
    // Gluetun accepts ":9999" for all addresses.
    let server_full = if server_s.starts_with(':') {
        format!("0.0.0.0{server_s}")
    } else {
        server_s.to_string()
    };
    server_full.parse().map_err(|_| {
        invalid(
            "HEALTH_SERVER_ADDRESS",
            server_s,
            "expected ADDRESS:PORT, e.g. 127.0.0.1:9999",
        )
    })
}

/// Refuses a health check's address that would be reached outside the
/// tunnel (inside FIREWALL_OUTBOUND_SUBNETS).
fn inside_outbound(outbound: &[IpNet], var: &'static str, v: &str, ip: IpAddr) -> Result<()> {
    match outbound.iter().find(|n| n.contains(&ip)) {
        Some(n) => Err(invalid(
            var,
            v,
            format!("{ip} is inside FIREWALL_OUTBOUND_SUBNETS {n}: it would not test the tunnel"),
        )),
        None => Ok(()),
    }
}

/// HEALTH_TARGET_ADDRESSES (its retired names HEALTH_TARGET_ADDRESS and
/// HEALTH_ADDRESS_TO_PING), default [`DEFAULT_HEALTH_TARGETS`].
fn health_targets(env: &Env, outbound: &[IpNet]) -> Result<Vec<HealthTarget>> {
    let (targets_var, targets_s) = env
        .get_retro(
            "HEALTH_TARGET_ADDRESSES",
            &["HEALTH_TARGET_ADDRESS", "HEALTH_ADDRESS_TO_PING"],
        )
        .unwrap_or(("HEALTH_TARGET_ADDRESSES", DEFAULT_HEALTH_TARGETS));
    let mut targets = Vec::new();
    for t in targets_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let target = parse_health_target(t)
            .map_err(|why| invalid(targets_var, targets_s, format!("{t:?}: {why}")))?;
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            inside_outbound(outbound, targets_var, targets_s, ip)?;
        }
        targets.push(target);
    }
    Ok(targets)
}

/// A health interval: `default` seconds when unset, at least `min_ms`.
fn health_interval(
    env: &Env,
    var: &'static str,
    default: u64,
    min_ms: u64,
) -> Result<std::time::Duration> {
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
}

/// HEALTH_SMALL_CHECK_TYPE: icmp (default) or dns, which needs an upstream.
fn small_check(
    env: &Env,
    outbound: &[IpNet],
    endpoint: IpAddr,
    has_upstream: bool,
) -> Result<SmallCheck> {
    match env
        .get("HEALTH_SMALL_CHECK_TYPE")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("icmp") => Ok(SmallCheck::Icmp(icmp_targets(env, outbound, endpoint)?)),
        Some("dns") => {
            if !has_upstream {
                return Err(invalid(
                    "HEALTH_SMALL_CHECK_TYPE",
                    "dns",
                    "the DNS check asks the resolver's upstream through the tunnel, and there is none (DNS_UPSTREAM_PLAIN_ADDRESSES, DOT_SERVER_ADDRESS or DOH_SERVER_ADDRESS)",
                ));
            }
            Ok(SmallCheck::Dns)
        }
        Some(other) => Err(invalid(
            "HEALTH_SMALL_CHECK_TYPE",
            other,
            "expected icmp or dns",
        )),
    }
}

/// HEALTH_ICMP_TARGET_IPS (its retired name HEALTH_ICMP_TARGET_IP), default
/// [`DEFAULT_HEALTH_ICMP_TARGETS`]; a lone 0.0.0.0 is the VPN server.
fn icmp_targets(env: &Env, outbound: &[IpNet], endpoint: IpAddr) -> Result<Vec<IpAddr>> {
    let (var, v) = env
        .get_retro("HEALTH_ICMP_TARGET_IPS", &["HEALTH_ICMP_TARGET_IP"])
        .unwrap_or(("HEALTH_ICMP_TARGET_IPS", DEFAULT_HEALTH_ICMP_TARGETS));
    let mut ips = Vec::new();
    let items: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for t in &items {
        let ip: IpAddr = t
            .parse()
            .map_err(|_| invalid(var, v, format!("{t:?} is not an IP address")))?;
        // Gluetun's way to name the VPN server: a lone 0.0.0.0.
        if ip.is_unspecified() && items.len() == 1 {
            ips.push(endpoint);
            continue;
        }
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(invalid(
                var,
                v,
                format!("{ip} cannot be pinged through a tunnel"),
            ));
        }
        inside_outbound(outbound, var, v, ip)?;
        ips.push(ip);
    }
    Ok(ips)
}

/// Why a HEALTH_TARGET_ADDRESSES entry is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthTargetError {
    #[error("{0:?} is not a port")]
    Port(String),
    #[error("an IPv6 address goes in brackets: [2001:db8::1]:443")]
    Ipv6WithoutBrackets,
    #[error("{0:?} is not a host name or IP address")]
    Host(String),
}

/// One HEALTH_TARGET_ADDRESSES entry: `name:port`, `ip:port` or
/// `[ipv6]:port`.
fn parse_health_target(t: &str) -> std::result::Result<HealthTarget, HealthTargetError> {
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(HealthTarget {
            host: a.ip().to_string(),
            port: a.port(),
        });
    }
    // Gluetun's default port: a bare name (or IPv4 address) means 443.
    if let Ok(ip) = t.parse::<std::net::Ipv4Addr>() {
        return Ok(HealthTarget {
            host: ip.to_string(),
            port: 443,
        });
    }
    let (host, port) = t.rsplit_once(':').unwrap_or((t, "443"));
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| HealthTargetError::Port(port.to_string()))?;
    if host.contains(':') || host.starts_with('[') {
        return Err(HealthTargetError::Ipv6WithoutBrackets);
    }
    if !super::dns_policy::is_hostname(host) {
        return Err(HealthTargetError::Host(host.to_string()));
    }
    Ok(HealthTarget {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port,
    })
}

/// VPN_PORT_FORWARDING_LISTENING_PORTS (or its retired singular name), with
/// one port: 0 or unset means no redirect.
fn listening_port(env: &Env) -> Result<Option<u16>> {
    let Some((var, v)) = env.get_retro(
        "VPN_PORT_FORWARDING_LISTENING_PORTS",
        &["VPN_PORT_FORWARDING_LISTENING_PORT"],
    ) else {
        return Ok(None);
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

/// FIREWALL_IPTABLES_LOG_LEVEL (`debug`, `info`, `warn`, `error`), or its
/// retired FIREWALL_DEBUG (`on` means `debug`): whether the kill switch
/// counts and logs its drops.
fn firewall_debug(env: &Env) -> Result<bool> {
    match env.get_retro("FIREWALL_IPTABLES_LOG_LEVEL", &["FIREWALL_DEBUG"]) {
        None => Ok(false),
        Some(("FIREWALL_DEBUG", v)) => switch("FIREWALL_DEBUG", v),
        Some((var, v)) => match v.to_ascii_lowercase().as_str() {
            "debug" => Ok(true),
            "info" | "warn" | "warning" | "error" => Ok(false),
            _ => Err(invalid(var, v, "expected debug, info, warn or error")),
        },
    }
}

impl GatewayConfig {
    /// Reads the configuration from environment variable pairs.
    pub fn from_env<I, K, V>(vars: I) -> Result<GatewayConfig>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        parse(&Env::new(vars))
    }
}

fn parse(env: &Env) -> Result<GatewayConfig> {
    supported_vpn(env)?;
    apply_table(env)?;
    let (private_key, private_key_file) = private_key(env)?;
    env.required(
        "WIREGUARD_PUBLIC_KEY",
        " (the provider server's base64 public key)",
    )?;
    let public_key = key(env, "WIREGUARD_PUBLIC_KEY")?.expect("checked");
    let preshared_key = key_or_file(
        env,
        "WIREGUARD_PRESHARED_KEY",
        "WIREGUARD_PRESHARED_KEY_SECRETFILE",
    )?;
    let addresses = tunnel_addresses(env)?;
    let has_ipv6 = addresses.iter().any(|a| a.addr().is_ipv6());
    let mtu = mtu(env)?;
    let endpoint = endpoint(env)?;
    let keepalive = keepalive(env)?;
    let interface = interface(env)?;
    let (outbound_subnets, public_outbound_subnets) = local_only(
        env,
        subnets(env, "FIREWALL_OUTBOUND_SUBNETS", &["EXTRA_SUBNETS"])?,
    );
    let firewall = firewall_settings(env)?;
    let dns = dns_settings(env, &outbound_subnets, has_ipv6)?;
    let has_upstream = !dns.upstream.addresses().is_empty();
    let health = health_settings(env, &outbound_subnets, endpoint.ip(), has_upstream)?;
    let port_forwarding = port_forwarding(env)?;
    let control = control_settings(env)?;
    let up_command = command(env, "VPN_UP_COMMAND")?;
    let down_command = command(env, "VPN_DOWN_COMMAND")?;

    Ok(GatewayConfig {
        private_key,
        private_key_file,
        public_key,
        preshared_key,
        addresses,
        mtu,
        endpoint,
        keepalive,
        interface,
        outbound_subnets,
        public_outbound_subnets,
        firewall,
        dns,
        health,
        control,
        port_forwarding,
        up_command,
        down_command,
        unused: env.unread(),
        warnings: env.warnings.take(),
    })
}

/// VPN_SERVICE_PROVIDER (its retired name VPNSP) must be custom and
/// VPN_TYPE wireguard.
fn supported_vpn(env: &Env) -> Result<()> {
    let provider = env
        .get_retro("VPN_SERVICE_PROVIDER", &["VPNSP"])
        .map(|(_, v)| v)
        .unwrap_or("custom");
    if !provider.eq_ignore_ascii_case("custom") {
        return Err(ConfigError::Unsupported {
            var: "VPN_SERVICE_PROVIDER",
            value: provider.into(),
            why: ": only custom (with WIREGUARD_ENDPOINT_IP and keys) is supported",
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
    Ok(())
}

/// The private key itself, or (Gluetun's way for Docker secrets) a file
/// holding it, read again when the key is rotated: the key and that file.
fn private_key(env: &Env) -> Result<([u8; 32], Option<std::path::PathBuf>)> {
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
            why: why.to_string(),
        })?,
        None => {
            env.required(
                "WIREGUARD_PRIVATE_KEY",
                " (the gateway's base64 private key, or WIREGUARD_PRIVATE_KEY_SECRETFILE naming a file that holds it)",
            )?;
            key(env, "WIREGUARD_PRIVATE_KEY")?.expect("checked")
        }
    };
    Ok((private_key, private_key_file))
}

/// WIREGUARD_ADDRESSES (its retired name WIREGUARD_ADDRESS), or a secret
/// file holding them: at least one.
fn tunnel_addresses(env: &Env) -> Result<Vec<IpNet>> {
    let addresses_file;
    let (addr_var, addr_val) = match env.get_retro("WIREGUARD_ADDRESSES", &["WIREGUARD_ADDRESS"]) {
        Some(found) => found,
        None => match env.get("WIREGUARD_ADDRESSES_SECRETFILE") {
            Some(f) => {
                addresses_file = std::fs::read_to_string(f).map_err(|e| {
                    invalid(
                        "WIREGUARD_ADDRESSES_SECRETFILE",
                        f,
                        format!("cannot read it: {e}"),
                    )
                })?;
                ("WIREGUARD_ADDRESSES_SECRETFILE", addresses_file.trim())
            }
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
    Ok(addresses)
}

/// WIREGUARD_MTU, default 1420.
fn mtu(env: &Env) -> Result<u16> {
    let Some(v) = env.get("WIREGUARD_MTU") else {
        return Ok(1420);
    };
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
    Ok(m)
}

/// WIREGUARD_ENDPOINT_IP and WIREGUARD_ENDPOINT_PORT (their retired names
/// VPN_ENDPOINT_*): the provider's server.
fn endpoint(env: &Env) -> Result<SocketAddr> {
    let (ip_var, ip_s) = env
        .get_retro("WIREGUARD_ENDPOINT_IP", &["VPN_ENDPOINT_IP"])
        .ok_or(ConfigError::Missing {
            var: "WIREGUARD_ENDPOINT_IP",
            hint: " (the provider server's IP address; VPN_ENDPOINT_IP is its retired name)",
        })?;
    let ip: IpAddr = ip_s
        .parse()
        .map_err(|_| invalid(ip_var, ip_s, "expected an IP address"))?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(invalid(ip_var, ip_s, "not a unicast address of a server"));
    }
    let (port_var, port_s) = env
        .get_retro("WIREGUARD_ENDPOINT_PORT", &["VPN_ENDPOINT_PORT"])
        .ok_or(ConfigError::Missing {
            var: "WIREGUARD_ENDPOINT_PORT",
            hint: " (the provider server's UDP port, e.g. 51820; VPN_ENDPOINT_PORT is its retired name)",
        })?;
    let port: u16 = port_s
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(port_var, port_s, "expected a port 1-65535"))?;
    Ok(SocketAddr::new(ip, port))
}

/// WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL in whole seconds; unset or 0:
/// none.
fn keepalive(env: &Env) -> Result<Option<u16>> {
    let Some(v) = env.get("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL") else {
        return Ok(None);
    };
    let d = humantime::parse_duration(v).map_err(|e| {
        invalid(
            "WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL",
            v,
            format!("{e} (e.g. 25s)"),
        )
    })?;
    let secs = u16::try_from(d.as_secs())
        .map_err(|_| invalid("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL", v, "too long"))?;
    Ok((secs > 0).then_some(secs))
}

/// VPN_INTERFACE (its retired names WIREGUARD_INTERFACE and
/// OPENVPN_INTERFACE), default wg0.
fn interface(env: &Env) -> Result<String> {
    let (if_var, interface) = env
        .get_retro(
            "VPN_INTERFACE",
            &["WIREGUARD_INTERFACE", "OPENVPN_INTERFACE"],
        )
        .unwrap_or(("VPN_INTERFACE", "wg0"));
    let interface = interface.to_string();
    if interface.len() > 15 || interface.contains('/') || interface.contains(char::is_whitespace) {
        return Err(invalid(
            if_var,
            &interface,
            "not a valid interface name (1-15 characters)",
        ));
    }
    Ok(interface)
}

/// The kill switch's FIREWALL_* variables.
fn firewall_settings(env: &Env) -> Result<FirewallSettings> {
    Ok(FirewallSettings {
        enabled: on_off(
            env,
            "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT",
            true,
        )?,
        input_ports: port_list(env, "FIREWALL_INPUT_PORTS")?,
        vpn_input_ports: port_list(env, "FIREWALL_VPN_INPUT_PORTS")?,
        subnet_ports: subnet_ports(env, "FIREWALL_INPUT_SUBNET_PORTS")?,
        debug: firewall_debug(env)?,
        remove_on_exit: match env.get("FIREWALL_ON_EXIT").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "keep" => false,
            Some(v) if v == "remove" => true,
            Some(v) => return Err(invalid("FIREWALL_ON_EXIT", &v, "expected keep or remove")),
        },
    })
}

/// The resolver's variables ([`dns::parse`]) with its block lists, its
/// policy and its cache.
fn dns_settings(env: &Env, outbound: &[IpNet], has_ipv6: bool) -> Result<DnsSettings> {
    let parsed = dns::parse(env, outbound, has_ipv6)?;
    let doh_addresses = doh_addresses(env)?;
    let blocklists = blocklists(env, parsed.server)?;
    let mut policy = dns_policy(env)?;
    policy.blocked_ips = parsed.block_ips;
    let cache_size = cache_size(env)?;
    Ok(DnsSettings {
        server: parsed.server,
        upstream: parsed.upstream,
        doh_addresses,
        blocklists,
        policy,
        cache_size,
    })
}

/// [`KNOWN_DOH_ADDRESSES`] and DNS_BLOCK_DOH_ADDRESSES.
fn doh_addresses(env: &Env) -> Result<Vec<IpAddr>> {
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
    Ok(doh_addresses)
}

/// BLOCK_MALICIOUS, BLOCK_SURVEILLANCE (its retired name BLOCK_NSA) and
/// BLOCK_ADS: their files in DNS_BLOCKLIST_DIR. `server`: the built-in DNS
/// server is on (else they have no effect, and a warning says so).
fn blocklists(env: &Env, server: bool) -> Result<Vec<(&'static str, std::path::PathBuf)>> {
    let dir = std::path::PathBuf::from(
        env.get("DNS_BLOCKLIST_DIR")
            .unwrap_or(DEFAULT_BLOCKLIST_DIR),
    );
    let mut blocklists = Vec::new();
    for (var, retired, file) in [
        ("BLOCK_MALICIOUS", &[][..], "malicious.txt"),
        ("BLOCK_SURVEILLANCE", &["BLOCK_NSA"][..], "surveillance.txt"),
        ("BLOCK_ADS", &[][..], "ads.txt"),
    ] {
        if on_off_retro(env, var, retired, false)? {
            if !server {
                env.warn(format!(
                    "{var}=on has no effect: the built-in DNS server is off (DNS_SERVER=off), so nothing filters the answers"
                ));
            }
            blocklists.push((var, dir.join(file)));
        }
    }
    Ok(blocklists)
}

/// The resolver's name lists: the built-in DoH names, DNS_UNBLOCK_HOSTNAMES
/// (its retired name UNBLOCK), DNS_BLOCK_DOH_HOSTNAMES and
/// DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES.
fn dns_policy(env: &Env) -> Result<super::dns_policy::DnsPolicy> {
    let mut policy = super::dns_policy::DnsPolicy::default();
    for n in super::dns_policy::KNOWN_DOH_HOSTNAMES {
        policy.doh_names.insert(n);
    }
    for (var, retired, set) in [
        (
            "DNS_UNBLOCK_HOSTNAMES",
            &["UNBLOCK"][..],
            &mut policy.unblocked,
        ),
        ("DNS_BLOCK_DOH_HOSTNAMES", &[][..], &mut policy.doh_names),
        (
            "DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES",
            &[][..],
            &mut policy.rebinding_exempt,
        ),
    ] {
        if let Some((var, v)) = env.get_retro(var, retired) {
            // Master accepts `*.example.com`: here a name covers the names
            // under it anyway.
            let text = v
                .split(',')
                .map(|n| n.trim().trim_start_matches("*."))
                .collect::<Vec<_>>()
                .join("\n");
            if let Some((_, bad)) = set.parse_list(&text).into_iter().next() {
                return Err(invalid(var, v, format!("{bad:?} is not a hostname")));
            }
        }
    }
    Ok(policy)
}

/// DNS_CACHING (its retired name DOT_CACHING): off is 0; on, DNS_CACHE_SIZE
/// or [`DEFAULT_DNS_CACHE_SIZE`].
fn cache_size(env: &Env) -> Result<u64> {
    if !on_off_retro(env, "DNS_CACHING", &["DOT_CACHING"], true)? {
        return Ok(0);
    }
    match env.get("DNS_CACHE_SIZE") {
        None => Ok(DEFAULT_DNS_CACHE_SIZE),
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
            }),
    }
}

/// VPN_PORT_FORWARDING (its retired names PORT_FORWARDING and
/// PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING) and, when on, its gateway,
/// status file, commands and listening port.
fn port_forwarding(env: &Env) -> Result<Option<PortForwarding>> {
    if !on_off_retro(
        env,
        "VPN_PORT_FORWARDING",
        &[
            "PORT_FORWARDING",
            "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING",
        ],
        false,
    )? {
        return Ok(None);
    }
    let g = env.required(
        "VPN_PORT_FORWARDING_GATEWAY",
        " with VPN_PORT_FORWARDING=on (the provider's NAT-PMP gateway inside the tunnel)",
    )?;
    let gateway: IpAddr = g
        .parse()
        .map_err(|_| invalid("VPN_PORT_FORWARDING_GATEWAY", g, "expected an IP address"))?;
    Ok(Some(PortForwarding {
        gateway,
        status_file: env
            .get_retro(
                "VPN_PORT_FORWARDING_STATUS_FILE",
                &[
                    "PORT_FORWARDING_STATUS_FILE",
                    "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING_STATUS_FILE",
                ],
            )
            .map(|(_, v)| v)
            .unwrap_or("/tmp/gluetun/forwarded_port")
            .into(),
        up_command: command(env, "VPN_PORT_FORWARDING_UP_COMMAND")?,
        down_command: command(env, "VPN_PORT_FORWARDING_DOWN_COMMAND")?,
        listening_port: listening_port(env)?,
    }))
}

/// The control server's HTTP_CONTROL_SERVER_* variables and the public IP's
/// PUBLICIP_*.
fn control_settings(env: &Env) -> Result<ControlSettings> {
    let a = env.get("HTTP_CONTROL_SERVER_ADDRESS");
    let address = leakhound_proto::listen::control_address(a).map_err(|e| {
        invalid(
            "HTTP_CONTROL_SERVER_ADDRESS",
            &e.value,
            "expected [ADDRESS]:PORT, e.g. :8000",
        )
    })?;
    let public_ip_url = env
        .get("PUBLICIP_URL")
        .map(|u| {
            HttpUrl::parse(u).map_err(|e| {
                invalid(
                    "PUBLICIP_URL",
                    e.url(),
                    format!("expected http://IP[:PORT]/path ({e})"),
                )
            })
        })
        .transpose()?;
    let enabled = match env.get("PUBLICIP_PERIOD") {
        // Gluetun's retired period: 0 meant off; anything else is no
        // longer used.
        Some(p) => {
            env.deprecated("PUBLICIP_PERIOD", "PUBLICIP_ENABLED");
            let _ = env.get("PUBLICIP_ENABLED");
            p != "0"
        }
        None => on_off(env, "PUBLICIP_ENABLED", true)?,
    };
    let default_role = match env.get("HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE") {
        None => None,
        Some(v) => {
            super::control_auth::parse_default_role(v).map_err(|e| ConfigError::Invalid {
                var: "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE",
                // A role holds a password or a key: never echoed.
                value: "<redacted>".into(),
                why: e.to_string(),
            })?
        }
    };
    Ok(ControlSettings {
        address,
        auth_file: env
            .get("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH")
            .unwrap_or("/gluetun/auth/config.toml")
            .into(),
        auth_file_explicit: env
            .get("HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH")
            .is_some(),
        default_role,
        public_ip_url: public_ip_url.filter(|_| enabled),
        public_ip_file: env
            .get_retro("PUBLICIP_FILE", &["IP_STATUS_FILE"])
            .map(|(_, v)| v)
            .unwrap_or("/tmp/gluetun/ip")
            .into(),
    })
}
