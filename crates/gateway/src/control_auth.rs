//! Who may call which control-server route: Gluetun's roles file
//! (HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH), parsed and decided purely.
//!
//! ```toml
//! [[roles]]
//! name = "qbittorrent"
//! routes = ["GET /v1/portforward"]
//! auth = "basic"            # or "apikey" (header X-API-Key), or "none"
//! username = "qbt"
//! password = "secret"
//!
//! [[roles]]
//! name = "public"
//! routes = ["GET /v1/publicip/ip"]
//! auth = "none"
//! ```
//!
//! A route no role lists is private: nobody may call it (Gluetun's default
//! since master 0c3e5d94; v3.41.1 still left 16 routes public), unless
//! HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE gives a role for the routes no
//! role of the file lists: JSON with `auth` (`none`, `basic` with
//! `username` and `password`, `apikey` with `apikey`) and an optional
//! `name`; `{}` is no role.

use base64::Engine;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("role {role:?}: {why}")]
    Role { role: String, why: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    None,
    Basic { username: String, password: String },
    ApiKey(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    /// "METHOD /path" entries.
    pub routes: Vec<String>,
    pub auth: Auth,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    pub roles: Vec<Role>,
    /// HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE: decides the routes no role
    /// lists.
    pub default_role: Option<Auth>,
}

/// HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE's JSON (Gluetun's fields; `routes`
/// is not one of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaultRole {
    #[serde(default, rename = "name")]
    _name: Option<serde::de::IgnoredAny>,
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    apikey: Option<String>,
}

/// Parses HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE: `{}` (or no `auth`) is no
/// role. Its credentials are registered as secrets first; an error never
/// quotes the value.
pub fn parse_default_role(json: &str) -> Result<Option<Auth>, AuthConfigError> {
    let raw: RawDefaultRole = serde_json::from_str(json).map_err(|e| {
        AuthConfigError::Parse(format!(
            "not a role in JSON (line {}, column {}; e.g. {{\"auth\":\"apikey\",\"apikey\":\"...\"}})",
            e.line(),
            e.column()
        ))
    })?;
    register(&raw.username, &raw.password, &raw.apikey);
    let Some(kind) = raw.auth else {
        return Ok(None);
    };
    auth_of("default", &kind, &raw.username, &raw.password, &raw.apikey).map(Some)
}

/// Registers a role's credentials as secrets (and basic auth's header
/// value).
fn register(username: &Option<String>, password: &Option<String>, apikey: &Option<String>) {
    for v in [password, apikey].into_iter().flatten() {
        leakhound_proto::scrub::register(v);
    }
    if let (Some(u), Some(p)) = (username, password) {
        leakhound_proto::scrub::register(
            &base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")),
        );
    }
}

/// A role's authentication from its fields.
fn auth_of(
    role: &str,
    kind: &str,
    username: &Option<String>,
    password: &Option<String>,
    apikey: &Option<String>,
) -> Result<Auth, AuthConfigError> {
    let bad = |why: String| AuthConfigError::Role {
        role: role.to_string(),
        why,
    };
    match kind {
        "none" => Ok(Auth::None),
        "basic" => match (username, password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok(Auth::Basic {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => Err(bad("auth = \"basic\" needs username and password".into())),
        },
        "apikey" => match apikey {
            Some(k) if k.len() >= 16 => Ok(Auth::ApiKey(k.clone())),
            _ => Err(bad(
                "auth = \"apikey\" needs an apikey of at least 16 characters".into(),
            )),
        },
        other => Err(bad(format!("auth = {other:?}: use none, basic or apikey"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    roles: Vec<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    #[serde(default)]
    routes: Vec<String>,
    auth: String,
    username: Option<String>,
    password: Option<String>,
    apikey: Option<String>,
}

/// The routes the control server has.
pub const ROUTES: [&str; 9] = [
    "GET /v1/publicip/ip",
    "GET /v1/vpn/status",
    "PUT /v1/vpn/status",
    "GET /v1/portforward",
    "PUT /v1/portforward",
    "GET /v1/openvpn/portforwarded",
    "GET /v1/dns/status",
    "PUT /v1/wireguard/key",
    // The gateway's own metrics (Prometheus' text format).
    "GET /metrics",
];

impl AuthConfig {
    pub fn parse(text: &str) -> Result<AuthConfig, AuthConfigError> {
        // toml's own message quotes the offending line, which may be a
        // password: only its message and where it is.
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = text.get(..s.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            AuthConfigError::Parse(format!("{at}{}", e.message().trim()))
        })?;
        // Every credential is a secret from here on, whatever happens next.
        for r in &raw.roles {
            register(&r.username, &r.password, &r.apikey);
        }
        let mut roles = Vec::new();
        for r in raw.roles {
            let bad = |why: String| AuthConfigError::Role {
                role: r.name.clone(),
                why,
            };
            for route in &r.routes {
                if !ROUTES.contains(&route.as_str()) {
                    return Err(bad(format!(
                        "unknown route {route:?} (known: {})",
                        ROUTES.join(", ")
                    )));
                }
            }
            let auth = auth_of(&r.name, &r.auth, &r.username, &r.password, &r.apikey)?;
            roles.push(Role {
                name: r.name,
                routes: r.routes,
                auth,
            });
        }
        Ok(AuthConfig {
            roles,
            default_role: None,
        })
    }

    /// May a request for `route` ("METHOD /path") with these header values
    /// go through?
    pub fn allows(&self, route: &str, authorization: Option<&str>, api_key: Option<&str>) -> bool {
        let listed: Vec<&Auth> = self
            .roles
            .iter()
            .filter(|r| r.routes.iter().any(|x| x == route))
            .map(|r| &r.auth)
            .collect();
        // The default role covers what no role of the file lists.
        let deciding: Vec<&Auth> = match (&self.default_role, listed.is_empty()) {
            (Some(d), true) => vec![d],
            _ => listed,
        };
        deciding.into_iter().any(|auth| match auth {
            Auth::None => true,
            Auth::ApiKey(k) => {
                api_key.is_some_and(|given| constant_time_eq(given.as_bytes(), k.as_bytes()))
            }
            Auth::Basic { username, password } => authorization
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .is_some_and(|creds| {
                    constant_time_eq(&creds, format!("{username}:{password}").as_bytes())
                }),
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[roles]]
name = "qbittorrent"
routes = ["GET /v1/portforward"]
auth = "basic"
username = "qbt"
password = "secret"

[[roles]]
name = "monitor"
routes = ["GET /v1/vpn/status", "GET /v1/publicip/ip"]
auth = "apikey"
apikey = "0123456789abcdef"

[[roles]]
name = "public"
routes = ["GET /v1/dns/status"]
auth = "none"
"#;

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn everything_is_private_by_default() {
        let c = AuthConfig::default();
        for r in ROUTES {
            assert!(!c.allows(r, None, None), "{r}");
        }
    }

    #[test]
    fn each_role_opens_only_its_routes_with_its_credentials() {
        let c = AuthConfig::parse(FILE).unwrap();
        assert!(c.allows("GET /v1/portforward", Some(&basic("qbt", "secret")), None));
        assert!(!c.allows("GET /v1/portforward", Some(&basic("qbt", "wrong")), None));
        assert!(!c.allows("GET /v1/portforward", None, None));
        assert!(!c.allows("PUT /v1/vpn/status", Some(&basic("qbt", "secret")), None));
        assert!(c.allows("GET /v1/vpn/status", None, Some("0123456789abcdef")));
        assert!(!c.allows("GET /v1/vpn/status", None, Some("0123456789abcdeX")));
        assert!(c.allows("GET /v1/dns/status", None, None));
        assert!(!c.allows("GET /v1/openvpn/portforwarded", None, None));
    }

    #[test]
    fn bad_files_name_the_role_and_the_problem() {
        let e = AuthConfig::parse(
            "[[roles]]\nname = \"x\"\nroutes = [\"GET /v1/secret\"]\nauth = \"none\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("unknown route \"GET /v1/secret\""),
            "{e}"
        );
        let e = AuthConfig::parse("[[roles]]\nname = \"x\"\nauth = \"basic\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("role \"x\"") && e.to_string().contains("username"),
            "{e}"
        );
        let e =
            AuthConfig::parse("[[roles]]\nname = \"x\"\nauth = \"apikey\"\napikey = \"short\"\n")
                .unwrap_err();
        assert!(e.to_string().contains("16 characters"), "{e}");
        assert!(matches!(
            AuthConfig::parse("roles = 3"),
            Err(AuthConfigError::Parse(_))
        ));
    }

    #[test]
    fn the_default_role_covers_only_the_routes_no_role_lists() {
        assert_eq!(parse_default_role("{}"), Ok(None));
        let mut c = AuthConfig::parse(FILE).unwrap();
        c.default_role =
            parse_default_role(r#"{"name":"d","auth":"apikey","apikey":"fedcba9876543210"}"#)
                .unwrap();
        // A route of the file keeps its role's credentials only.
        assert!(!c.allows("GET /v1/portforward", None, Some("fedcba9876543210")));
        assert!(c.allows("GET /v1/portforward", Some(&basic("qbt", "secret")), None));
        // The others take the default role's.
        assert!(c.allows("PUT /v1/vpn/status", None, Some("fedcba9876543210")));
        assert!(!c.allows("PUT /v1/vpn/status", None, None));
        let open = AuthConfig {
            default_role: parse_default_role(r#"{"auth":"none"}"#).unwrap(),
            ..Default::default()
        };
        for r in ROUTES {
            assert!(open.allows(r, None, None), "{r}");
        }
    }

    #[test]
    fn a_bad_default_role_is_named_but_never_quoted() {
        for bad in [
            r#"{"auth":"basic","username":"u","password":"canary-role-7731","routes":[]}"#,
            r#"{"auth":"basic","username":"u","password":"canary-role-7731""#,
            r#"{"auth":"apikey","apikey":"short"}"#,
            r#"{"auth":"token"}"#,
        ] {
            let e = parse_default_role(bad).unwrap_err().to_string();
            assert!(!e.contains("canary-role-7731"), "{e}");
        }
        // A good one's credentials are secrets from then on.
        parse_default_role(r#"{"auth":"basic","username":"u","password":"canary-role-7732"}"#)
            .unwrap();
        assert_eq!(
            leakhound_proto::scrub::redact("p=canary-role-7732"),
            "p=<redacted>"
        );
    }

    #[test]
    fn a_parse_error_never_quotes_the_file() {
        let e = AuthConfig::parse(
            "[[roles]]\nname = \"x\"\nauth = \"basic\"\npassword = \"canary-auth-toml-5521\" oops\n",
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("canary-auth-toml-5521"), "{e}");
        assert!(e.starts_with("line 4, column "), "{e}");
        let ok = AuthConfig::parse(
            "[[roles]]\nname = \"x\"\nroutes = []\nauth = \"apikey\"\napikey = \"canary-auth-key-55210\"\n",
        );
        assert!(ok.is_ok());
        assert_eq!(
            leakhound_proto::scrub::redact("k=canary-auth-key-55210"),
            "k=<redacted>"
        );
    }
}
