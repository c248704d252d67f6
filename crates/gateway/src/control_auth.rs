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
//! A route no role lists is private: nobody may call it (Gluetun's default).

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
            for v in [&r.password, &r.apikey].into_iter().flatten() {
                leakhound_proto::scrub::register(v);
            }
            if let (Some(u), Some(p)) = (&r.username, &r.password) {
                leakhound_proto::scrub::register(
                    &base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")),
                );
            }
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
            let auth = match r.auth.as_str() {
                "none" => Auth::None,
                "basic" => match (&r.username, &r.password) {
                    (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Auth::Basic {
                        username: u.clone(),
                        password: p.clone(),
                    },
                    _ => return Err(bad("auth = \"basic\" needs username and password".into())),
                },
                "apikey" => match &r.apikey {
                    Some(k) if k.len() >= 16 => Auth::ApiKey(k.clone()),
                    _ => {
                        return Err(bad(
                            "auth = \"apikey\" needs an apikey of at least 16 characters".into(),
                        ));
                    }
                },
                other => return Err(bad(format!("auth = {other:?}: use none, basic or apikey"))),
            };
            roles.push(Role {
                name: r.name,
                routes: r.routes,
                auth,
            });
        }
        Ok(AuthConfig { roles })
    }

    /// May a request for `route` ("METHOD /path") with these header values
    /// go through?
    pub fn allows(&self, route: &str, authorization: Option<&str>, api_key: Option<&str>) -> bool {
        self.roles
            .iter()
            .filter(|r| r.routes.iter().any(|x| x == route))
            .any(|r| match &r.auth {
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
