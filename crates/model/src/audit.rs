//! The audit of a live gateway (`leakhound audit`): its profile file (what
//! the audit expects of the gateway and which endpoints it may probe) and
//! the pure verdicts of its checks. Reading the file, the probes and the
//! capture live in the binary; this decides.
//!
//! The profile is TOML (docs/AUDIT.md; `docs/examples/audit/`): every
//! section is optional, and a section present is a check the audit runs.
//! A profile with an unknown key, a value of the wrong type or a value that
//! does not parse is refused with file, line and column.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::located::{Doc, FileError};

/// A parsed, checked audit profile.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditProfile {
    /// The `target` label of the metrics and the JUnit classname.
    pub name: String,
    /// The resolver names in URLs are asked through (the gateway's, as its
    /// dependents use it).
    pub resolver: SocketAddr,
    pub exit: Option<ExitCheck>,
    pub dns: Option<DnsCheck>,
    pub bypass: Bypass,
    pub lan: Vec<LanProbe>,
    pub forwarded_port: Option<ForwardedPort>,
    pub capture: Capture,
}

/// The exit address seen by a whoami URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitCheck {
    pub whoami_url: HttpUrl,
    /// The exit must lie in one of these (empty: any address but `never`).
    pub expected: Vec<IpNet>,
    /// Addresses (the home's) the exit must never be.
    pub never: Vec<IpNet>,
}

/// A DNS leak test: a nonce name under `leak_domain`, then `results_url`
/// (with `{nonce}`) says which resolvers asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    pub leak_domain: String,
    pub results_url: HttpUrl,
    pub expected_resolvers: Vec<IpNet>,
}

/// Attempts that must fail from inside the gateway's namespace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bypass {
    /// TCP connections to IPv6 addresses.
    pub ipv6: Vec<SocketAddr>,
    /// Plain DNS straight to another resolver.
    pub dns: Vec<SocketAddr>,
    /// DNS-over-TLS (a TCP connection to port 853 is enough to fail it).
    pub dot: Vec<SocketAddr>,
    /// DNS-over-HTTPS by address (a TCP connection is enough to fail it).
    pub doh: Vec<SocketAddr>,
}

impl Bypass {
    pub fn is_empty(&self) -> bool {
        self.ipv6.is_empty() && self.dns.is_empty() && self.dot.is_empty() && self.doh.is_empty()
    }
}

/// One row of the LAN matrix: a TCP connection from the gateway's
/// namespace to `target`, which the policy lets through or not.
#[derive(Debug, Clone, PartialEq)]
pub struct LanProbe {
    pub target: SocketAddr,
    pub expect: LanExpect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanExpect {
    /// Something answers (a connection, or a refusal from the host itself).
    Reachable,
    /// Nothing arrives: the attempt fails without an answer from the host.
    Blocked,
}

/// The forwarded port: read from the control server, proven open at the
/// exit by an outside prober, and the same as the torrent client's.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedPort {
    pub control_url: HttpUrl,
    pub auth: ControlAuth,
    /// With `{port}`; answers JSON with a boolean `open`.
    pub prober_url: HttpUrl,
    /// qBittorrent's WebUI, whose `listen_port` must be the forwarded port.
    pub qbittorrent_url: Option<HttpUrl>,
}

/// How to authenticate to the control server (Gluetun's roles). Only
/// where the secret is; it is read when the check runs and never shown.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlAuth {
    None,
    ApiKeyFile(String),
    ApiKeyEnv(String),
    Basic {
        username: String,
        password_file: String,
    },
}

/// What the capture watches and what its wire may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// The gateway's outside interface, inside its namespace.
    pub interface: String,
    /// The WireGuard endpoint (UDP): the tunnel's traffic.
    pub endpoint: Option<SocketAddr>,
    /// Subnets the wire may carry outside the tunnel (the allowed LANs,
    /// the gateway's own network).
    pub allowed: Vec<IpNet>,
}

/// The profile's URLs: `http://` only, parsed once when the profile is
/// read (the parser is shared with the gateway's PUBLICIP_URL).
pub use leakhound_proto::http_url::{HttpUrl, UrlError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    name: Option<String>,
    resolver: Option<Spanned<String>>,
    exit: Option<RawExit>,
    dns: Option<RawDns>,
    bypass: Option<RawBypass>,
    #[serde(default)]
    lan: Vec<RawLan>,
    forwarded_port: Option<RawForwarded>,
    capture: Option<RawCapture>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawExit {
    whoami_url: Spanned<String>,
    #[serde(default)]
    expected: Vec<Spanned<String>>,
    #[serde(default)]
    never: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDns {
    leak_domain: Spanned<String>,
    results_url: Spanned<String>,
    expected_resolvers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBypass {
    #[serde(default)]
    ipv6: Vec<Spanned<String>>,
    #[serde(default)]
    dns: Vec<Spanned<String>>,
    #[serde(default)]
    dot: Vec<Spanned<String>>,
    #[serde(default)]
    doh: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLan {
    target: Spanned<String>,
    expect: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawForwarded {
    control_url: Spanned<String>,
    api_key_file: Option<String>,
    api_key_env: Option<String>,
    username: Option<String>,
    password_file: Option<Spanned<String>>,
    prober_url: Spanned<String>,
    qbittorrent_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCapture {
    interface: Option<String>,
    endpoint: Option<Spanned<String>>,
    #[serde(default)]
    allowed: Vec<Spanned<String>>,
}

/// Typed readings of the profile's values, with where they are wrong.
impl Doc<'_> {
    fn value<T, E: std::fmt::Display>(
        &self,
        v: &Spanned<String>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, FileError> {
        parse(v.get_ref()).map_err(|why| self.at(v.span().start, format!("{what}: {why}")))
    }

    fn net(&self, v: &Spanned<String>, what: &str) -> Result<IpNet, FileError> {
        self.value(v, what, |s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an address or a CIDR (such as 203.0.113.0/24)"))
        })
    }

    fn nets(&self, v: &[Spanned<String>], what: &str) -> Result<Vec<IpNet>, FileError> {
        v.iter().map(|x| self.net(x, what)).collect()
    }

    fn sock(&self, v: &Spanned<String>, what: &str) -> Result<SocketAddr, FileError> {
        self.value(v, what, |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("{s:?} is not an address with a port (192.0.2.53:53, [2001:db8::1]:80)")
            })
        })
    }

    fn socks(&self, v: &[Spanned<String>], what: &str) -> Result<Vec<SocketAddr>, FileError> {
        v.iter().map(|x| self.sock(x, what)).collect()
    }

    fn url(&self, v: &Spanned<String>, what: &str) -> Result<HttpUrl, FileError> {
        self.value(v, what, HttpUrl::parse)
    }
}

/// Reads a profile. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<AuditProfile, FileError> {
    let doc = Doc { file, text };
    let raw: Raw = toml::from_str(text).map_err(|e| doc.de(&e, 0, ""))?;
    let resolver = match &raw.resolver {
        Some(r) => doc.sock(r, "resolver")?,
        None => SocketAddr::from(([127, 0, 0, 1], 53)),
    };
    let exit = raw.exit.as_ref().map(|e| exit_check(&doc, e)).transpose()?;
    let dns = raw.dns.as_ref().map(|d| dns_check(&doc, d)).transpose()?;
    let bypass = match &raw.bypass {
        None => Bypass::default(),
        Some(b) => bypass(&doc, b)?,
    };
    let lan = raw
        .lan
        .iter()
        .map(|l| lan_probe(&doc, l))
        .collect::<Result<Vec<_>, FileError>>()?;
    let forwarded_port = raw
        .forwarded_port
        .as_ref()
        .map(|f| forwarded_port(&doc, f))
        .transpose()?;
    let capture = capture(&doc, raw.capture.as_ref())?;
    if exit.is_none()
        && dns.is_none()
        && bypass.is_empty()
        && lan.is_empty()
        && forwarded_port.is_none()
    {
        return Err(FileError::File {
            file: file.to_string(),
            message:
                "no checks: give at least one of [exit], [dns], [bypass], [[lan]], [forwarded-port]"
                    .into(),
        });
    }
    Ok(AuditProfile {
        name: raw.name.unwrap_or_else(|| "gateway".into()),
        resolver,
        exit,
        dns,
        bypass,
        lan,
        forwarded_port,
        capture,
    })
}

/// `[exit]`: the whoami URL and at least one of `expected` and `never`.
fn exit_check(doc: &Doc<'_>, e: &RawExit) -> Result<ExitCheck, FileError> {
    let exit = ExitCheck {
        whoami_url: doc.url(&e.whoami_url, "exit.whoami-url")?,
        expected: doc.nets(&e.expected, "exit.expected")?,
        never: doc.nets(&e.never, "exit.never")?,
    };
    if e.expected.is_empty() && e.never.is_empty() {
        return Err(doc.at(
            e.whoami_url.span().start,
            "exit: give `expected` (the exit's CIDRs) or `never` (the home addresses), or both: without either any exit passes",
        ));
    }
    Ok(exit)
}

/// `[dns]`: a leak domain, a results URL with `{nonce}`, and at least one
/// expected resolver.
fn dns_check(doc: &Doc<'_>, d: &RawDns) -> Result<DnsCheck, FileError> {
    let domain = d.leak_domain.get_ref().trim_matches('.').to_string();
    if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(doc.at(d.leak_domain.span().start, "dns.leak-domain: not a domain"));
    }
    let results_url = doc.url(&d.results_url, "dns.results-url")?;
    if !results_url.path.contains("{nonce}") {
        return Err(doc.at(
            d.results_url.span().start,
            "dns.results-url: must contain {nonce} (where the asked name's nonce goes)",
        ));
    }
    if d.expected_resolvers.is_empty() {
        return Err(doc.at(
            d.results_url.span().start,
            "dns.expected-resolvers: name at least one CIDR",
        ));
    }
    Ok(DnsCheck {
        leak_domain: domain,
        results_url,
        expected_resolvers: doc.nets(&d.expected_resolvers, "dns.expected-resolvers")?,
    })
}

/// `[bypass]`: the addresses to try around the tunnel (`ipv6` only IPv6).
fn bypass(doc: &Doc<'_>, b: &RawBypass) -> Result<Bypass, FileError> {
    let ipv6 = doc.socks(&b.ipv6, "bypass.ipv6")?;
    if let Some((i, _)) = ipv6.iter().enumerate().find(|(_, a)| a.is_ipv4()) {
        return Err(doc.at(b.ipv6[i].span().start, "bypass.ipv6: not an IPv6 address"));
    }
    Ok(Bypass {
        ipv6,
        dns: doc.socks(&b.dns, "bypass.dns")?,
        dot: doc.socks(&b.dot, "bypass.dot")?,
        doh: doc.socks(&b.doh, "bypass.doh")?,
    })
}

/// One `[[lan]]`: a target and whether it should be reachable.
fn lan_probe(doc: &Doc<'_>, l: &RawLan) -> Result<LanProbe, FileError> {
    Ok(LanProbe {
        target: doc.sock(&l.target, "lan.target")?,
        expect: doc.value(&l.expect, "lan.expect", |s| match s {
            "reachable" => Ok(LanExpect::Reachable),
            "blocked" => Ok(LanExpect::Blocked),
            o => Err(format!("{o:?}: say \"reachable\" or \"blocked\"")),
        })?,
    })
}

/// `[forwarded-port]`: the control server, its one way to authenticate,
/// and a prober URL with `{port}`.
fn forwarded_port(doc: &Doc<'_>, f: &RawForwarded) -> Result<ForwardedPort, FileError> {
    let auth = match (
        &f.api_key_file,
        &f.api_key_env,
        &f.username,
        &f.password_file,
    ) {
        (None, None, None, None) => ControlAuth::None,
        (Some(p), None, None, None) => ControlAuth::ApiKeyFile(p.clone()),
        (None, Some(v), None, None) => ControlAuth::ApiKeyEnv(v.clone()),
        (None, None, Some(u), Some(p)) => ControlAuth::Basic {
            username: u.clone(),
            password_file: p.get_ref().clone(),
        },
        _ => {
            return Err(doc.at(
                f.control_url.span().start,
                "forwarded-port: give one of api-key-file, api-key-env, or username with password-file",
            ));
        }
    };
    let prober_url = doc.url(&f.prober_url, "forwarded-port.prober-url")?;
    if !prober_url.path.contains("{port}") {
        return Err(doc.at(
            f.prober_url.span().start,
            "forwarded-port.prober-url: must contain {port}",
        ));
    }
    Ok(ForwardedPort {
        control_url: doc.url(&f.control_url, "forwarded-port.control-url")?,
        auth,
        prober_url,
        qbittorrent_url: f
            .qbittorrent_url
            .as_ref()
            .map(|u| doc.url(u, "forwarded-port.qbittorrent-url"))
            .transpose()?,
    })
}

/// `[capture]`, by default on eth0 with nothing allowed.
fn capture(doc: &Doc<'_>, c: Option<&RawCapture>) -> Result<Capture, FileError> {
    let Some(c) = c else {
        return Ok(Capture {
            interface: "eth0".into(),
            endpoint: None,
            allowed: vec![],
        });
    };
    Ok(Capture {
        interface: c.interface.clone().unwrap_or_else(|| "eth0".into()),
        endpoint: c
            .endpoint
            .as_ref()
            .map(|e| doc.sock(e, "capture.endpoint"))
            .transpose()?,
        allowed: doc.nets(&c.allowed, "capture.allowed")?,
    })
}

/// Why an answer to one of the audit's requests cannot be read. The
/// answer, when quoted, is cut to its first 120 characters.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("not an address nor JSON: {0:?}")]
    NotAddressNorJson(String),
    #[error("JSON without an `ip` address: {0:?}")]
    NoIp(String),
    #[error("not JSON ({source}): {body:?}")]
    NotJson {
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("JSON object without a `resolvers` array")]
    NoResolvers,
    #[error("neither a list nor an object: {0:?}")]
    NotAList(String),
    #[error("an entry without an address: {0}")]
    EntryWithoutAddress(String),
    #[error("{0:?} is not an address")]
    NotAnAddress(String),
    #[error("no boolean `open`: {0:?}")]
    NoOpen(String),
    #[error("no `port`: {0:?}")]
    NoPort(String),
}

/// `body` as JSON, or [`AnswerError::NotJson`].
fn json(body: &str) -> Result<serde_json::Value, AnswerError> {
    serde_json::from_str(body.trim()).map_err(|source| AnswerError::NotJson {
        body: short(body),
        source,
    })
}

/// The caller's address as a whoami URL answers it: plain text, or JSON
/// with an `ip` field.
pub fn whoami_address(body: &str) -> Result<IpAddr, AnswerError> {
    let t = body.trim();
    if let Ok(ip) = t.parse() {
        return Ok(ip);
    }
    let v: serde_json::Value =
        serde_json::from_str(t).map_err(|_| AnswerError::NotAddressNorJson(short(t)))?;
    v.get("ip")
        .and_then(|ip| ip.as_str())
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| AnswerError::NoIp(short(t)))
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// Why the exit check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExitFault {
    #[error("the exit is {exit}, inside {net}, which it must never be")]
    Never { exit: IpAddr, net: IpNet },
    #[error("the exit is {exit}, outside the expected {}", list(expected))]
    Outside { exit: IpAddr, expected: Vec<IpNet> },
}

/// The exit check's verdict: `Ok` says why it passed.
pub fn judge_exit(exit: IpAddr, check: &ExitCheck) -> Result<String, ExitFault> {
    if let Some(n) = check.never.iter().find(|n| n.contains(&exit)) {
        return Err(ExitFault::Never { exit, net: *n });
    }
    if !check.expected.is_empty() && !check.expected.iter().any(|n| n.contains(&exit)) {
        return Err(ExitFault::Outside {
            exit,
            expected: check.expected.clone(),
        });
    }
    Ok(format!("the exit is {exit}"))
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The resolvers a DNS leak test's results URL names: a JSON array of
/// addresses or of objects with `ip`, or an object whose `resolvers` is one.
pub fn dns_results(body: &str) -> Result<Vec<IpAddr>, AnswerError> {
    let v = json(body)?;
    let arr = match &v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => o
            .get("resolvers")
            .and_then(|r| r.as_array())
            .ok_or(AnswerError::NoResolvers)?,
        _ => return Err(AnswerError::NotAList(short(body))),
    };
    arr.iter()
        .map(|e| {
            let s = e
                .as_str()
                .or_else(|| e.get("ip").and_then(|i| i.as_str()))
                .ok_or_else(|| AnswerError::EntryWithoutAddress(e.to_string()))?;
            s.parse()
                .map_err(|_| AnswerError::NotAnAddress(s.to_string()))
        })
        .collect()
}

/// Why the DNS check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolverFault {
    #[error(
        "no resolver asked for the name (the answer came from elsewhere, or the results URL saw nothing)"
    )]
    NobodyAsked,
    #[error("asked by {} outside the expected {}", list(stray), list(expected))]
    Stray {
        stray: Vec<IpAddr>,
        expected: Vec<IpNet>,
    },
}

/// The DNS check's verdict: somebody asked, and only expected resolvers.
pub fn judge_resolvers(askers: &[IpAddr], expected: &[IpNet]) -> Result<String, ResolverFault> {
    if askers.is_empty() {
        return Err(ResolverFault::NobodyAsked);
    }
    let stray: Vec<IpAddr> = askers
        .iter()
        .filter(|a| !expected.iter().any(|n| n.contains(*a)))
        .copied()
        .collect();
    if stray.is_empty() {
        Ok(format!("asked only by {}", list(askers)))
    } else {
        Err(ResolverFault::Stray {
            stray,
            expected: expected.to_vec(),
        })
    }
}

/// The prober's answer: JSON with a boolean `open`.
pub fn prober_open(body: &str) -> Result<bool, AnswerError> {
    json(body)?
        .get("open")
        .and_then(|o| o.as_bool())
        .ok_or_else(|| AnswerError::NoOpen(short(body)))
}

/// The control server's answer to `GET /v1/portforward`: `{"port": N}`
/// (Gluetun's; N = 0 when none is forwarded).
pub fn control_port(body: &str) -> Result<u16, AnswerError> {
    json(body)?
        .get("port")
        .and_then(|p| p.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| AnswerError::NoPort(short(body)))
}

/// How many of `frames` went to `target` between `from` and `to`: whether a
/// LAN probe left the gateway at all (a refusal may be the gateway's own
/// firewall's, which sends nothing out).
pub fn frames_toward(
    frames: &[crate::verdict::Frame],
    target: IpAddr,
    from: std::time::SystemTime,
    to: std::time::SystemTime,
) -> usize {
    frames
        .iter()
        .filter(|f| f.at >= from && f.at <= to)
        .filter(|f| {
            crate::verdict::ip_transport(&f.data).is_some_and(|(_, dst, _, _)| dst == target)
        })
        .count()
}

/// The LAN row's verdict once the wire is known: `reached` is what the
/// connection said (it opened, or was refused), `on_wire` how many frames
/// to the target left. A refusal with nothing on the wire came from the
/// gateway itself: blocked.
pub fn judge_lan(
    expect: LanExpect,
    connected: bool,
    refused: bool,
    on_wire: usize,
) -> Result<&'static str, &'static str> {
    let reached = connected || (refused && on_wire > 0);
    match (expect, reached) {
        (LanExpect::Reachable, true) => Ok("reached"),
        (LanExpect::Reachable, false) => Err("should be reachable, and nothing answered from it"),
        (LanExpect::Blocked, false) if on_wire == 0 => Ok("blocked: nothing left for it"),
        (LanExpect::Blocked, false) => {
            Err("should be blocked, and packets to it left the gateway (unanswered)")
        }
        (LanExpect::Blocked, true) => Err("should be blocked, and it answered"),
    }
}

/// Every name an audit's check may carry (the `--allow-skip` values),
/// with what each is.
pub const CHECK_KINDS: [(&str, &str); 8] = [
    ("exit-address", "the exit address seen by the whoami URL"),
    ("dns-resolvers", "which resolvers asked for a nonce name"),
    ("bypass", "IPv6, plain DNS, DoT and DoH attempts fail"),
    ("lan", "the LAN matrix"),
    ("forwarded-port", "the forwarded port is open at the exit"),
    ("forwarded-port-client", "the torrent client listens on it"),
    ("no-leak", "no packet on the outside wire is a leak"),
    (
        "tunnel-down",
        "(--disruptive) nothing leaves with the tunnel blocked",
    ),
];

#[cfg(test)]
mod tests;
