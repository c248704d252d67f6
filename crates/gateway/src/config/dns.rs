//! The DNS part of the configuration: Gluetun's DNS_* variables as today's
//! Gluetun (master, `:latest`) reads them, their retired names mapped the
//! way it maps them, and leakhound's own variables that say where the
//! named upstream resolvers are (DOT_SERVER_*, DOH_SERVER_*, DOT_CA_FILE,
//! DOH_CA_FILE): leakhound's gateway never asks a public resolver by
//! itself, whatever DNS_UPSTREAM_RESOLVERS names.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;

use super::{ConfigError, Env, Result, invalid, on_off_retro};

/// Gluetun's built-in upstream providers (qdm12/dns `provider.NewProviders`),
/// the names DNS_UPSTREAM_RESOLVERS accepts (without case).
pub const PROVIDER_NAMES: [&str; 16] = [
    "cira family",
    "cira private",
    "cira protected",
    "cleanbrowsing adult",
    "cleanbrowsing family",
    "cleanbrowsing security",
    "cloudflare",
    "cloudflare family",
    "cloudflare security",
    "google",
    "libredns",
    "opendns",
    "quad9",
    "quad9 secured",
    "quad9 unsecured",
    "quadrant",
];

/// The path of a DoH URL without one.
pub const DEFAULT_DOH_PATH: &str = "/dns-query";

/// How the gateway's resolver asks upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// Nowhere to ask: every query fails (loudly); the text says why.
    None(String),
    /// Plain DNS (UDP, and TCP for long answers).
    Plain(Vec<SocketAddr>),
    /// DNS over TLS, the certificate checked for `server_name`.
    Tls {
        servers: Vec<SocketAddr>,
        server_name: String,
        ca_file: Option<PathBuf>,
    },
    /// DNS over HTTPS (HTTP/2), POST to `https://server_name{path}`.
    Https {
        servers: Vec<SocketAddr>,
        server_name: String,
        path: String,
        ca_file: Option<PathBuf>,
    },
}

impl Upstream {
    /// The addresses (and ports) the resolver's sockets go to.
    pub fn addresses(&self) -> &[SocketAddr] {
        match self {
            Upstream::None(_) => &[],
            Upstream::Plain(s) | Upstream::Tls { servers: s, .. } => s,
            Upstream::Https { servers: s, .. } => s,
        }
    }

    /// For the log: how and whom the resolver asks.
    pub fn describe(&self) -> String {
        let list = |s: &[SocketAddr]| {
            s.iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Upstream::None(why) => format!("no upstream ({why})"),
            Upstream::Plain(s) => format!("plain DNS to {}", list(s)),
            Upstream::Tls {
                servers,
                server_name,
                ..
            } => format!(
                "DNS over TLS to {} (certificate for {server_name})",
                list(servers)
            ),
            Upstream::Https {
                servers,
                server_name,
                path,
                ..
            } => format!(
                "DNS over HTTPS to {} (https://{server_name}{path})",
                list(servers)
            ),
        }
    }
}

/// DNS_UPSTREAM_RESOLVER_TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dot,
    Doh,
    Plain,
}

/// What the DNS variables say, before the policy and block lists.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parsed {
    pub server: bool,
    pub upstream: Upstream,
    pub block_ips: Vec<IpNet>,
}

/// `IP` or `IP:PORT` (`[v6]:PORT`), with `default_port`.
fn addr_port(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| (ip, default_port).into()))
        .filter(|a| a.port() != 0)
}

/// A CSV of `IP:PORT` (or `IP` when `default_port` is given).
fn addr_list(
    env: &Env,
    var: &'static str,
    default_port: Option<u16>,
) -> Result<Option<Vec<SocketAddr>>> {
    let Some(v) = env.get(var) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let a = match default_port {
            Some(p) => addr_port(item, p),
            None => item.parse::<SocketAddr>().ok().filter(|a| a.port() != 0),
        };
        let a = a.ok_or_else(|| {
            invalid(
                var,
                v,
                match default_port {
                    Some(_) => format!("{item:?} is not IP or IP:PORT"),
                    None => format!("{item:?} is not IP:PORT (e.g. 10.64.0.1:53)"),
                },
            )
        })?;
        if a.ip().is_unspecified() || a.ip().is_multicast() {
            return Err(invalid(var, v, format!("{} is not a resolver", a.ip())));
        }
        out.push(a);
    }
    Ok(Some(out))
}

/// Refuses an upstream that would be asked outside the tunnel.
fn outside_tunnel(
    var: &'static str,
    value: &str,
    addrs: &[SocketAddr],
    outbound: &[IpNet],
) -> Result<()> {
    for a in addrs {
        if a.ip().is_loopback() {
            return Err(invalid(
                var,
                value,
                format!("{} is this host: it is not an upstream", a.ip()),
            ));
        }
        if let Some(n) = outbound.iter().find(|n| n.contains(&a.ip())) {
            return Err(invalid(
                var,
                value,
                format!(
                    "{} is inside FIREWALL_OUTBOUND_SUBNETS {n}, so queries would leave outside the tunnel",
                    a.ip()
                ),
            ));
        }
    }
    Ok(())
}

/// Keeps the addresses of the family DNS_UPSTREAM_IPV6 asks for.
fn family(
    var: &'static str,
    value: &str,
    addrs: Vec<SocketAddr>,
    ipv6: bool,
) -> Result<Vec<SocketAddr>> {
    let n = addrs.len();
    let kept: Vec<SocketAddr> = addrs.into_iter().filter(|a| a.is_ipv6() == ipv6).collect();
    if kept.is_empty() {
        return Err(invalid(
            var,
            value,
            format!(
                "no {} address in {n} address(es) (DNS_UPSTREAM_IPV6={})",
                if ipv6 { "IPv6" } else { "IPv4" },
                if ipv6 { "on" } else { "off" }
            ),
        ));
    }
    Ok(kept)
}

/// The DNS variables. `has_ipv6`: the tunnel has an IPv6 address.
pub(super) fn parse(env: &Env, outbound: &[IpNet], has_ipv6: bool) -> Result<Parsed> {
    let server = server_switch(env)?;
    let type_given = env
        .get("DNS_UPSTREAM_RESOLVER_TYPE")
        .map(str::to_ascii_lowercase);
    let mut kind = resolver_kind(type_given.as_deref(), server)?;
    let resolvers = resolver_names(env)?;
    let ipv6 = upstream_ipv6(env, has_ipv6)?;
    let plain_given = env.get("DNS_UPSTREAM_PLAIN_ADDRESSES").unwrap_or_default();
    let mut plain = addr_list(env, "DNS_UPSTREAM_PLAIN_ADDRESSES", None)?.unwrap_or_default();
    outside_tunnel(
        "DNS_UPSTREAM_PLAIN_ADDRESSES",
        plain_given,
        &plain,
        outbound,
    )?;
    if let Some(a) = retired_dns_address(env, outbound, kind)? {
        plain.push(a);
        kind = Kind::Plain;
    }
    if !server {
        server_off(kind, type_given.as_deref(), &plain, plain_given)?;
    }
    let block_ips = block_ips(env)?;
    update_period(env)?;
    let named = resolvers.join(",");
    let upstream = match kind {
        Kind::Plain => Upstream::Plain(family(
            "DNS_UPSTREAM_PLAIN_ADDRESSES",
            plain_given,
            plain,
            ipv6,
        )?),
        Kind::Dot => dot_upstream(env, &named, outbound, ipv6)?,
        Kind::Doh => doh_upstream(env, &named, outbound, ipv6)?,
    };
    Ok(Parsed {
        server,
        upstream,
        block_ips,
    })
}

/// DNS_SERVER (its retired name DOT), warning about DOT's changed meaning.
fn server_switch(env: &Env) -> Result<bool> {
    let server = on_off_retro(env, "DNS_SERVER", &["DOT"], true)?;
    if let Some(v) = env.get("DOT") {
        env.warn(format!(
            "DOT={v}: today's Gluetun reads DOT as DNS_SERVER, the built-in DNS server's switch; it no longer chooses TLS (DNS_UPSTREAM_RESOLVER_TYPE=dot does){}",
            if server {
                ""
            } else {
                ": DOT=off switches the built-in DNS server off, and with it the block lists and the rebinding protection"
            }
        ));
    }
    Ok(server)
}

/// DNS_UPSTREAM_RESOLVER_TYPE (lowercased), by default dot with the
/// built-in server and plain without it.
fn resolver_kind(type_given: Option<&str>, server: bool) -> Result<Kind> {
    match type_given {
        None if server => Ok(Kind::Dot),
        None => Ok(Kind::Plain),
        Some("dot") => Ok(Kind::Dot),
        Some("doh") => Ok(Kind::Doh),
        Some("plain") => Ok(Kind::Plain),
        Some(other) => Err(invalid(
            "DNS_UPSTREAM_RESOLVER_TYPE",
            other,
            "expected dot, doh or plain",
        )),
    }
}

/// DNS_UPSTREAM_RESOLVERS (its retired name DOT_PROVIDERS), lowercased,
/// each one of [`PROVIDER_NAMES`].
fn resolver_names(env: &Env) -> Result<Vec<String>> {
    let (resolvers_var, resolvers_value) = env
        .get_retro("DNS_UPSTREAM_RESOLVERS", &["DOT_PROVIDERS"])
        .unwrap_or(("DNS_UPSTREAM_RESOLVERS", "cloudflare"));
    let mut resolvers = Vec::new();
    for name in resolvers_value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let lower = name.to_ascii_lowercase();
        if !PROVIDER_NAMES.contains(&lower.as_str()) {
            return Err(invalid(
                resolvers_var,
                resolvers_value,
                format!(
                    "{name:?} is not one of Gluetun's resolvers ({})",
                    PROVIDER_NAMES.join(", ")
                ),
            ));
        }
        resolvers.push(lower);
    }
    Ok(resolvers)
}

/// DNS_UPSTREAM_IPV6 (its retired name DOT_IPV6); on needs an IPv6 tunnel.
fn upstream_ipv6(env: &Env, has_ipv6: bool) -> Result<bool> {
    let ipv6 = on_off_retro(env, "DNS_UPSTREAM_IPV6", &["DOT_IPV6"], false)?;
    if ipv6 && !has_ipv6 {
        return Err(invalid(
            "DNS_UPSTREAM_IPV6",
            "on",
            "the tunnel has no IPv6 address (WIREGUARD_ADDRESSES)",
        ));
    }
    Ok(ipv6)
}

/// The retired DNS_ADDRESS, as master reads it: 127.0.0.1 means "the
/// built-in server" and is ignored; any other address is appended as
/// ADDRESS:53 and makes the type plain. Returns the address to append.
fn retired_dns_address(env: &Env, outbound: &[IpNet], kind: Kind) -> Result<Option<SocketAddr>> {
    let Some((var, v)) = env.get_retro("DNS_ADDRESS", &["DNS_PLAINTEXT_ADDRESS"]) else {
        return Ok(None);
    };
    env.deprecated(var, "DNS_UPSTREAM_PLAIN_ADDRESSES");
    let ip: IpAddr = v
        .parse()
        .map_err(|_| invalid(var, v, "expected an IP address (the provider's resolver)"))?;
    if ip.is_loopback() || ip.is_unspecified() {
        if ip != IpAddr::V4(Ipv4Addr::LOCALHOST) {
            env.warn(format!(
                "{var}={v}: a local address, ignored like Gluetun's 127.0.0.1"
            ));
        }
        return Ok(None);
    }
    let a = SocketAddr::new(ip, 53);
    outside_tunnel(var, v, &[a], outbound)?;
    if kind != Kind::Plain {
        env.warn(format!(
            "{var}={v} makes the upstream plain DNS to {a}, whatever DNS_UPSTREAM_RESOLVER_TYPE says (as today's Gluetun reads it)"
        ));
    }
    Ok(Some(a))
}

/// Master's rules for a server that is off: the plain addresses go into
/// resolv.conf, so they must be on 53.
fn server_off(
    kind: Kind,
    type_given: Option<&str>,
    plain: &[SocketAddr],
    plain_given: &str,
) -> Result<()> {
    if kind != Kind::Plain {
        return Err(invalid(
            "DNS_UPSTREAM_RESOLVER_TYPE",
            type_given.unwrap_or("dot"),
            "must be plain when the built-in DNS server is off (DNS_SERVER=off)",
        ));
    }
    if plain.is_empty() {
        return Err(ConfigError::Missing {
            var: "DNS_UPSTREAM_PLAIN_ADDRESSES",
            hint: " when the built-in DNS server is off (DNS_SERVER=off): the resolvers the namespace asks directly",
        });
    }
    if let Some(a) = plain.iter().find(|a| a.port() != 53) {
        return Err(invalid(
            "DNS_UPSTREAM_PLAIN_ADDRESSES",
            plain_given,
            format!("{a}: must be on port 53 when the built-in DNS server is off"),
        ));
    }
    Ok(())
}

/// DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES and the retired DOT_PRIVATE_ADDRESS:
/// the answers' addresses the resolver refuses.
fn block_ips(env: &Env) -> Result<Vec<IpNet>> {
    let mut block_ips = Vec::new();
    for (var, want_prefix) in [("DNS_BLOCK_IPS", false), ("DNS_BLOCK_IP_PREFIXES", true)] {
        let Some(v) = env.get(var) else { continue };
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = if want_prefix {
                item.parse::<IpNet>().ok()
            } else {
                item.parse::<IpAddr>().ok().map(IpNet::from)
            };
            block_ips.push(net.ok_or_else(|| {
                invalid(
                    var,
                    v,
                    format!(
                        "{item:?} is not {}",
                        if want_prefix {
                            "a CIDR prefix"
                        } else {
                            "an IP address"
                        }
                    ),
                )
            })?);
        }
    }
    if let Some(v) = env.get("DOT_PRIVATE_ADDRESS") {
        env.deprecated("DOT_PRIVATE_ADDRESS", "DNS_BLOCK_IP_PREFIXES");
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpAddr>()
                .map(IpNet::from)
                .or_else(|_| item.parse::<IpNet>())
                .map_err(|_| {
                    invalid(
                        "DOT_PRIVATE_ADDRESS",
                        v,
                        format!("{item:?} is neither an IP address nor a CIDR prefix"),
                    )
                })?;
            block_ips.push(net);
        }
    }
    Ok(block_ips)
}

/// DNS_UPDATE_PERIOD: checked (0 or at least 30s), without effect here.
fn update_period(env: &Env) -> Result<()> {
    if let Some(v) = env.get("DNS_UPDATE_PERIOD") {
        let d = humantime::parse_duration(v)
            .or_else(|e| {
                if v == "0" {
                    Ok(Default::default())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| invalid("DNS_UPDATE_PERIOD", v, format!("{e} (e.g. 24h)")))?;
        if !d.is_zero() && d < std::time::Duration::from_secs(30) {
            return Err(invalid("DNS_UPDATE_PERIOD", v, "must be 0 or at least 30s"));
        }
    }
    Ok(())
}

/// DNS over TLS to DOT_SERVER_ADDRESS (leakhound's own), or no upstream
/// when it is unset: `named` are the resolvers Gluetun would ask.
fn dot_upstream(env: &Env, named: &str, outbound: &[IpNet], ipv6: bool) -> Result<Upstream> {
    let Some(servers) = addr_list(env, "DOT_SERVER_ADDRESS", Some(853))? else {
        return Ok(Upstream::None(format!(
            "DNS_UPSTREAM_RESOLVERS={named} over TLS: leakhound's gateway asks no public resolver; DOT_SERVER_ADDRESS and DOT_SERVER_NAME (leakhound's own) name the one to ask"
        )));
    };
    let given = env.get("DOT_SERVER_ADDRESS").unwrap_or_default();
    outside_tunnel("DOT_SERVER_ADDRESS", given, &servers, outbound)?;
    let servers = family("DOT_SERVER_ADDRESS", given, servers, ipv6)?;
    let server_name = tls_name(
        env.required(
            "DOT_SERVER_NAME",
            " with DOT_SERVER_ADDRESS (the name on the DoT resolver's certificate)",
        )?,
        "DOT_SERVER_NAME",
    )?;
    Ok(Upstream::Tls {
        servers,
        server_name,
        ca_file: env.get("DOT_CA_FILE").map(PathBuf::from),
    })
}

/// DNS over HTTPS to DOH_SERVER_ADDRESS (leakhound's own), or no upstream
/// when it is unset: `named` are the resolvers Gluetun would ask.
fn doh_upstream(env: &Env, named: &str, outbound: &[IpNet], ipv6: bool) -> Result<Upstream> {
    let Some(servers) = addr_list(env, "DOH_SERVER_ADDRESS", Some(443))? else {
        return Ok(Upstream::None(format!(
            "DNS_UPSTREAM_RESOLVERS={named} over HTTPS: leakhound's gateway asks no public resolver; DOH_SERVER_ADDRESS and DOH_SERVER_URL (leakhound's own) name the one to ask"
        )));
    };
    let given = env.get("DOH_SERVER_ADDRESS").unwrap_or_default();
    outside_tunnel("DOH_SERVER_ADDRESS", given, &servers, outbound)?;
    let servers = family("DOH_SERVER_ADDRESS", given, servers, ipv6)?;
    let url = env.required(
        "DOH_SERVER_URL",
        " with DOH_SERVER_ADDRESS (https://NAME/PATH: the name on the DoH server's certificate and its path)",
    )?;
    let (server_name, path) = doh_url(url)?;
    Ok(Upstream::Https {
        servers,
        server_name,
        path,
        ca_file: env.get("DOH_CA_FILE").map(PathBuf::from),
    })
}

/// A name TLS can check a certificate for.
fn tls_name(name: &str, var: &'static str) -> Result<String> {
    if rustls::pki_types::ServerName::try_from(name.to_string()).is_err() {
        return Err(invalid(var, name, "not a DNS name or IP address"));
    }
    Ok(name.to_string())
}

/// `https://NAME[/PATH]` into the name and the path (default
/// [`DEFAULT_DOH_PATH`]).
fn doh_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        invalid(
            "DOH_SERVER_URL",
            url,
            "expected https://NAME/PATH, e.g. https://doh.lab/dns-query",
        )
    })?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, DEFAULT_DOH_PATH),
    };
    if host.contains(':') || host.contains('@') {
        return Err(invalid(
            "DOH_SERVER_URL",
            url,
            "no port or user in the URL: the port goes in DOH_SERVER_ADDRESS",
        ));
    }
    Ok((tls_name(host, "DOH_SERVER_URL")?, path.to_string()))
}
