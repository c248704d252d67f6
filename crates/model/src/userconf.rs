//! The user's own configuration as input (`leakhound run --compose FILE
//! [--service NAME]`, `--env-file FILE`): the gateway service of a compose
//! file (its `environment:`, its `env_file:` paths, its published ports)
//! and the services that share its network (`network_mode:
//! service:NAME`), or the variables of a plain env file. Pure: text in, a
//! typed result or an error naming the file, the line and column where
//! there is one, the service and the key. Reading the files, and turning
//! the result into a lab, are the harness's.
//!
//! Values of secret variables (keys, passwords) are kept as [`Secret`],
//! which never prints its value and is registered with [`crate::scrub`] the
//! moment it is made, so no writer prints it either. Values read from an
//! env file, and values taken from the host's environment through
//! `${VAR}`, are registered too unless [`crate::scrub::plainly_not_secret`]:
//! `FOO: ${CI_JOB_TOKEN}` is a secret whatever FOO is called.

use std::collections::BTreeMap;

use crate::located::FileError;

/// A variable's value that must never appear in output: `Debug` and
/// `Display` print `<redacted>`; [`Secret::expose`] gives the value to the
/// one place that needs it. Making one registers the value with
/// [`crate::scrub`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Self {
        let v = v.into();
        crate::scrub::register(&v);
        Secret(v)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether a variable holds a secret by its name: the documented rule of
/// [`crate::scrub::is_secret_name`] (keys, passwords, tokens, `PASS`...).
pub fn is_secret(key: &str) -> bool {
    crate::scrub::is_secret_name(key)
}

/// One variable, its value and where it was written (line, 1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub key: String,
    pub value: Value,
    pub line: Option<usize>,
}

/// A variable's value: plain, or a secret that never prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Plain(String),
    Secret(Secret),
}

impl Value {
    fn of(key: &str, v: String) -> Value {
        // The credentials inside an UP/DOWN command are secrets of their
        // own (the command itself is the user's and is run as written).
        crate::scrub::register_variable(key, &v);
        if is_secret(key) {
            Value::Secret(Secret::new(v))
        } else {
            Value::Plain(v)
        }
    }

    /// The value itself, for the gateway's environment only.
    pub fn expose(&self) -> &str {
        match self {
            Value::Plain(v) => v,
            Value::Secret(s) => s.expose(),
        }
    }
}

/// What is wrong with the user's configuration: always the file, and the
/// line and column, or the service and key, where they are known.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UserConfError {
    #[error(transparent)]
    In(#[from] FileError),
    #[error("{file}: service {service}: {key}: {problem}")]
    Key {
        file: String,
        service: String,
        key: String,
        #[source]
        problem: Box<KeyProblem>,
    },
}

/// What is wrong with one key of the gateway service.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyProblem {
    #[error(transparent)]
    Interpolate(#[from] InterpolateError),
    #[error(transparent)]
    Port(#[from] PortError),
    /// An `environment:` entry's name.
    #[error("is not a variable name")]
    NotAVariableName,
    /// VPN_TYPE (its value, which is not a secret).
    #[error("{0:?}: leakhound's lab is a WireGuard provider; set VPN_TYPE=wireguard")]
    NotWireGuard(String),
}

/// Why a value's `$` substitutions cannot be made ([`interpolate`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InterpolateError {
    #[error("substitutions nested more than {MAX_NESTING} deep")]
    TooDeep,
    /// `${` and the rest of the value, without its `}`.
    #[error("\"${{{0}\": no closing '}}'")]
    Unclosed(String),
    /// What stands between the braces.
    #[error("\"${{{0}}}\": not a variable name")]
    NotAName(String),
    #[error("\"${{{0}}}\": unknown substitution")]
    Unknown(String),
    /// `${VAR:?message}` with VAR unset (or empty).
    #[error("{name} is required{}{message}", if message.is_empty() { "" } else { ": " })]
    Required { name: String, message: String },
}

/// A `ports:` entry that is not one leakhound can use.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("{0:?} is not a port (ranges are not supported)")]
    NotAPort(String),
    #[error("{entry:?}: protocol {protocol:?} is not tcp or udp")]
    Protocol { entry: String, protocol: String },
    #[error("{0:?} is not [IP:]PUBLISHED:TARGET")]
    Shape(String),
}

fn valid_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Strips one pair of matching quotes, as compose reads env files.
fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Reads an env file (`KEY=VALUE` per line; blank lines and `#` comments
/// skipped; one pair of quotes around a value removed, as compose does).
/// `file` names it in errors.
pub fn parse_env_file(file: &str, text: &str) -> Result<Vec<Var>, UserConfError> {
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let column = raw.len() - line.len() + 1;
        let line_no = i + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(FileError::At {
                file: file.into(),
                line: line_no,
                column,
                // The line is not quoted: it may be a secret itself.
                message: "no '=' on this line (expected KEY=VALUE)".into(),
            }
            .into());
        };
        let key = key.trim_end();
        if !valid_key(key) {
            return Err(FileError::At {
                file: file.into(),
                line: line_no,
                column,
                message: "the name before '=' is not a variable name (letters, digits and _, not starting with a digit)".into(),
            }.into());
        }
        let value = unquote(value.trim()).to_string();
        // Anything in an env file may be a secret whatever its name.
        crate::scrub::register_unless_plain(&value);
        vars.push(Var {
            key: key.into(),
            value: Value::of(key, value),
            line: Some(line_no),
        });
    }
    Ok(vars)
}

/// Compose's variable substitution in one value: `$$` is a `$`; `$VAR`
/// and `${VAR}` its value (empty when unset: the name goes to `unset`);
/// `${VAR:-default}` / `${VAR-default}` a default when unset or empty /
/// unset; `${VAR:+alt}` / `${VAR+alt}` an alternative when set and
/// non-empty / set; `${VAR:?message}` / `${VAR?message}` an error when
/// unset or empty / unset. Defaults and alternatives are substituted too.
/// `lookup` gives the variables (the environment over `.env`).
/// Substitutions nest at most [`MAX_NESTING`] deep (an error beyond).
pub fn interpolate(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, InterpolateError> {
    // A value from the host's environment (or `.env`) is registered as a
    // secret when its name says so, or unless it is plainly not one.
    let registering = |name: &str| {
        let v = lookup(name);
        if let Some(v) = &v {
            if is_secret(name) {
                crate::scrub::register(v);
            } else {
                crate::scrub::register_unless_plain(v);
            }
        }
        v
    };
    let lookup: &dyn Fn(&str) -> Option<String> = &registering;
    interpolate_nested(value, lookup, unset, 0)
}

/// How deep `${A:-${B:-...}}` may nest: the recursion's bound, far beyond
/// what a compose file needs.
pub const MAX_NESTING: usize = 16;

fn interpolate_nested(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    nesting: usize,
) -> Result<String, InterpolateError> {
    if nesting > MAX_NESTING {
        return Err(InterpolateError::TooDeep);
    }
    let name_len = |s: &str| {
        s.char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphanumeric() && !(*i == 0 && c.is_ascii_digit()) || *c == '_'
            })
            .count()
    };
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            // The matching brace, counting nested ones in defaults.
            let mut depth = 1;
            let end = r
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(j, _)| j)
                .ok_or_else(|| InterpolateError::Unclosed(r.to_string()))?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let n = name_len(inner);
            if n == 0 {
                return Err(InterpolateError::NotAName(inner.to_string()));
            }
            let (name, op) = inner.split_at(n);
            let v = lookup(name);
            let (colon, op) = match op.strip_prefix(':') {
                Some(o) => (true, o),
                None => (false, op),
            };
            let present = |v: &Option<String>| v.as_ref().is_some_and(|s| !colon || !s.is_empty());
            let arg = op.get(1..).unwrap_or("");
            match op.chars().next() {
                None if !colon => match v {
                    Some(v) => out.push_str(&v),
                    None => unset.push(name.to_string()),
                },
                Some('-') => match &v {
                    _ if present(&v) => out.push_str(v.as_deref().unwrap_or("")),
                    _ => out.push_str(&interpolate_nested(arg, lookup, unset, nesting + 1)?),
                },
                Some('+') => {
                    if present(&v) {
                        out.push_str(&interpolate_nested(arg, lookup, unset, nesting + 1)?);
                    }
                }
                Some('?') => match &v {
                    _ if present(&v) => out.push_str(v.as_deref().unwrap_or("")),
                    _ => {
                        return Err(InterpolateError::Required {
                            name: name.to_string(),
                            message: arg.to_string(),
                        });
                    }
                },
                _ => return Err(InterpolateError::Unknown(inner.to_string())),
            }
        } else {
            let n = name_len(rest);
            if n == 0 {
                // A lone '$' stays, as compose leaves it.
                out.push('$');
                continue;
            }
            let (name, r) = rest.split_at(n);
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => unset.push(name.to_string()),
            }
            rest = r;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A port the gateway service publishes: `published` on the host side to
/// `target` inside the gateway's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub published: u16,
    pub target: u16,
    pub udp: bool,
    /// Published on a loopback address only (`127.0.0.1:8080:8080`): the
    /// Docker host alone reaches it, not the LANs.
    pub host_only: bool,
}

/// The gateway service of a compose file, as leakhound uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeGateway {
    pub service: String,
    pub image: Option<String>,
    /// `environment:`, in file order.
    pub environment: Vec<Var>,
    /// `env_file:` paths as written (relative to the compose file).
    pub env_files: Vec<String>,
    pub ports: Vec<Published>,
    /// Services with `network_mode: service:<this one>`.
    pub dependents: Vec<String>,
    /// Variables the file substitutes (`${VAR}`) that neither the
    /// environment nor `.env` sets: substituted as empty, as compose does.
    pub unset: Vec<String>,
}

mod raw {
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    pub struct Compose {
        #[serde(default)]
        pub services: BTreeMap<String, Service>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Service {
        pub image: Option<String>,
        pub environment: Option<Environment>,
        pub env_file: Option<OneOrMany>,
        pub ports: Vec<Port>,
        pub network_mode: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Environment {
        Map(BTreeMap<String, Option<Scalar>>),
        List(Vec<String>),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum OneOrMany {
        One(String),
        Many(Vec<EnvFile>),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum EnvFile {
        Path(String),
        Long { path: String },
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Port {
        Short(String),
        Number(u16),
        Long {
            target: u16,
            published: Option<PortNumber>,
            protocol: Option<String>,
            host_ip: Option<String>,
        },
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum PortNumber {
        N(u16),
        S(String),
    }
}

/// Whether a service looks like a WireGuard gateway: Gluetun's image, or
/// Gluetun's VPN variables, or others sharing its network.
fn is_candidate(name: &str, s: &raw::Service, shared: &BTreeMap<String, Vec<String>>) -> bool {
    let image = s.image.as_deref().unwrap_or("").to_ascii_lowercase();
    let env_keys: Vec<String> = match &s.environment {
        Some(raw::Environment::Map(m)) => m.keys().cloned().collect(),
        Some(raw::Environment::List(l)) => l
            .iter()
            .map(|e| e.split('=').next().unwrap_or("").to_string())
            .collect(),
        None => Vec::new(),
    };
    image.contains("gluetun")
        || env_keys
            .iter()
            .any(|k| k == "VPN_SERVICE_PROVIDER" || k == "VPN_TYPE" || k.starts_with("WIREGUARD_"))
        || shared.contains_key(name)
}

/// Reads a compose file and picks its WireGuard gateway service (`service`
/// if given). Errors: YAML errors with line and column; no candidate; two
/// candidates without `service`; a named service that does not exist; a
/// gateway that is not WireGuard (`VPN_TYPE` other than `wireguard`); a
/// port that is not a port. `vars` are the variables `${VAR}` takes its
/// value from (the environment over the `.env` beside the file).
pub fn parse_compose(
    file: &str,
    text: &str,
    service: Option<&str>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<ComposeGateway, UserConfError> {
    let mut unset = Vec::new();
    let doc: raw::Compose = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
        Some(l) => FileError::At {
            file: file.into(),
            line: l.line(),
            column: l.column(),
            message: e.to_string(),
        },
        None => FileError::File {
            file: file.into(),
            message: e.to_string(),
        },
    })?;
    let shared = shared_networks(file, &doc, vars, &mut unset)?;
    let name = gateway_service(file, &doc, service, &shared)?;
    let s = &doc.services[&name];
    let key_err = |key: &str, problem: KeyProblem| UserConfError::Key {
        file: file.into(),
        service: name.clone(),
        key: key.into(),
        problem: Box::new(problem),
    };
    let environment = service_environment(s, vars, &mut unset, &key_err)?;
    for v in &environment {
        if !valid_key(&v.key) {
            return Err(key_err(&v.key, KeyProblem::NotAVariableName));
        }
    }
    if let Some(t) = environment.iter().find(|v| v.key == "VPN_TYPE")
        && !t.value.expose().eq_ignore_ascii_case("wireguard")
    {
        return Err(key_err(
            "VPN_TYPE",
            KeyProblem::NotWireGuard(t.value.expose().to_string()),
        ));
    }
    let env_files = match &s.env_file {
        None => Vec::new(),
        Some(raw::OneOrMany::One(p)) => vec![p.clone()],
        Some(raw::OneOrMany::Many(v)) => v
            .iter()
            .map(|e| match e {
                raw::EnvFile::Path(p) | raw::EnvFile::Long { path: p } => p.clone(),
            })
            .collect(),
    };
    let env_files = env_files
        .iter()
        .map(|p| interpolate(p, vars, &mut unset).map_err(|e| key_err("env_file", e.into())))
        .collect::<Result<Vec<_>, _>>()?;
    let ports = service_ports(s, vars, &mut unset, &key_err)?;
    let image = s
        .image
        .as_deref()
        .map(|i| interpolate(i, vars, &mut unset).map_err(|e| key_err("image", e.into())))
        .transpose()?;
    unset.sort();
    unset.dedup();
    Ok(ComposeGateway {
        service: name.clone(),
        image,
        environment,
        env_files,
        ports,
        dependents: shared.get(&name).cloned().unwrap_or_default(),
        unset,
    })
}

/// Who shares whose network: for each service named in another's
/// `network_mode: service:NAME`, the services that share it.
fn shared_networks(
    file: &str,
    doc: &raw::Compose,
    vars: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<BTreeMap<String, Vec<String>>, UserConfError> {
    let mut shared: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, s) in &doc.services {
        let Some(mode) = &s.network_mode else {
            continue;
        };
        let mode = interpolate(mode, vars, unset).map_err(|e| UserConfError::Key {
            file: file.into(),
            service: name.clone(),
            key: "network_mode".into(),
            problem: Box::new(e.into()),
        })?;
        if let Some(gw) = mode.strip_prefix("service:") {
            shared.entry(gw.to_string()).or_default().push(name.clone());
        }
    }
    Ok(shared)
}

/// The gateway's service: `service` if given (it must exist), else the one
/// candidate ([`is_candidate`]).
fn gateway_service(
    file: &str,
    doc: &raw::Compose,
    service: Option<&str>,
    shared: &BTreeMap<String, Vec<String>>,
) -> Result<String, UserConfError> {
    if let Some(n) = service {
        if !doc.services.contains_key(n) {
            return Err(FileError::File {
                file: file.into(),
                message: format!(
                    "no service {n:?} (services: {})",
                    doc.services.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }
            .into());
        }
        return Ok(n.to_string());
    }
    let c: Vec<&String> = doc
        .services
        .iter()
        .filter(|(n, s)| is_candidate(n, s, shared))
        .map(|(n, _)| n)
        .collect();
    match c.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(FileError::File {
            file: file.into(),
            message: "no WireGuard gateway service (no Gluetun image, no VPN_* or WIREGUARD_* variables, no service sharing another's network)".into(),
        }
        .into()),
        many => Err(FileError::File {
            file: file.into(),
            message: format!(
                "{} services could be the gateway ({}): name one with --service",
                many.len(),
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into()),
    }
}

/// The service's `environment:` (a map or a list), interpolated.
fn service_environment(
    s: &raw::Service,
    vars: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    key_err: &dyn Fn(&str, KeyProblem) -> UserConfError,
) -> Result<Vec<Var>, UserConfError> {
    let mut environment = Vec::new();
    match &s.environment {
        Some(raw::Environment::Map(m)) => {
            for (k, v) in m {
                let v = match v {
                    None => String::new(),
                    Some(raw::Scalar::S(s)) => {
                        interpolate(s, vars, unset).map_err(|e| key_err(k, e.into()))?
                    }
                    Some(raw::Scalar::I(i)) => i.to_string(),
                    Some(raw::Scalar::F(f)) => f.to_string(),
                    Some(raw::Scalar::B(b)) => b.to_string(),
                };
                environment.push(Var {
                    key: k.clone(),
                    value: Value::of(k, v),
                    line: None,
                });
            }
        }
        Some(raw::Environment::List(l)) => {
            for e in l {
                let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                let v = interpolate(v, vars, unset).map_err(|e| key_err(k, e.into()))?;
                environment.push(Var {
                    key: k.to_string(),
                    value: Value::of(k, v),
                    line: None,
                });
            }
        }
        None => {}
    }
    Ok(environment)
}

/// The service's published `ports:`, interpolated.
fn service_ports(
    s: &raw::Service,
    vars: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    key_err: &dyn Fn(&str, KeyProblem) -> UserConfError,
) -> Result<Vec<Published>, UserConfError> {
    let mut ports = Vec::new();
    for p in &s.ports {
        let p = match p {
            raw::Port::Short(t) => raw::Port::Short(
                interpolate(t, vars, unset).map_err(|e| key_err("ports", e.into()))?,
            ),
            raw::Port::Number(n) => raw::Port::Number(*n),
            raw::Port::Long {
                target,
                published,
                protocol,
                host_ip,
            } => raw::Port::Long {
                target: *target,
                published: match published {
                    Some(raw::PortNumber::S(t)) => Some(raw::PortNumber::S(
                        interpolate(t, vars, unset).map_err(|e| key_err("ports", e.into()))?,
                    )),
                    Some(raw::PortNumber::N(n)) => Some(raw::PortNumber::N(*n)),
                    None => None,
                },
                protocol: protocol.clone(),
                host_ip: host_ip.clone(),
            },
        };
        ports.push(published(&p).map_err(|e| key_err("ports", e.into()))?);
    }
    Ok(ports)
}

/// Whether a published port's host address is a loopback one.
fn loopback(ip: Option<&str>) -> bool {
    ip.and_then(|i| i.parse::<std::net::IpAddr>().ok())
        .is_some_and(|i| i.is_loopback())
}

/// One `ports:` entry: "8080", "8080:80", "127.0.0.1:8080:80/udp", a
/// number, or the long form.
fn published(p: &raw::Port) -> Result<Published, PortError> {
    let port = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| PortError::NotAPort(s.to_string()))
    };
    match p {
        raw::Port::Number(n) => Ok(Published {
            published: *n,
            target: *n,
            udp: false,
            host_only: false,
        }),
        raw::Port::Short(s) => {
            let (spec, proto) = s.split_once('/').unwrap_or((s, "tcp"));
            let udp = match proto {
                "tcp" => false,
                "udp" => true,
                other => {
                    return Err(PortError::Protocol {
                        entry: s.clone(),
                        protocol: other.to_string(),
                    });
                }
            };
            // [ip:]published:target, or target alone; an IPv6 host address
            // is in brackets.
            let (ip, spec) = match spec.rfind(']') {
                Some(i) => (
                    Some(spec[..i].trim_start_matches('[')),
                    spec[i + 1..].trim_start_matches(':'),
                ),
                None => match spec.split(':').collect::<Vec<_>>().as_slice() {
                    [ip, _, _] => (Some(*ip), &spec[ip.len() + 1..]),
                    _ => (None, spec),
                },
            };
            let parts: Vec<&str> = spec.split(':').collect();
            let (published, target) = match parts.as_slice() {
                [t] => (port(t)?, port(t)?),
                [p, t] => (port(p)?, port(t)?),
                _ => return Err(PortError::Shape(s.clone())),
            };
            Ok(Published {
                published,
                target,
                udp,
                host_only: loopback(ip),
            })
        }
        raw::Port::Long {
            target,
            published,
            protocol,
            host_ip,
        } => {
            let published = match published {
                None => *target,
                Some(raw::PortNumber::N(n)) => *n,
                Some(raw::PortNumber::S(s)) => port(s)?,
            };
            Ok(Published {
                published,
                target: *target,
                udp: protocol.as_deref() == Some("udp"),
                host_only: loopback(host_ip.as_deref()),
            })
        }
    }
}

#[cfg(test)]
mod tests;
