//! Plain-HTTP URLs (`http://host[:port]/path?query`), parsed once into
//! where to connect, the Host header and the request's target: the audit
//! profile's URLs and the gateway's PUBLICIP_URL. The syntax is checked by
//! the `http` crate's URI parser; this adds what leakhound asks of a URL on
//! top (plain HTTP only, no credentials in it, a port that is a port).
//! Pure.

use std::net::IpAddr;

/// Why a text is not a URL leakhound can ask. Every message starts with
/// the text, quoted, any credentials in it redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URI at all (a bad character, a bad authority...).
    #[error("{url:?} is not a URL: {source}")]
    Syntax {
        url: String,
        #[source]
        source: InvalidUri,
    },
    /// Another scheme (https, ftp), or none.
    #[error("{url:?}: only http:// URLs are supported (leakhound speaks plain HTTP here)")]
    NotHttp { url: String },
    /// `user:password@host`: a secret in a URL would be shown wherever the
    /// URL is (`url` has them replaced by `<redacted>`).
    #[error("{url:?}: no credentials in URLs")]
    Credentials { url: String },
    #[error("{url:?}: no host")]
    NoHost { url: String },
    #[error("{url:?}: {port:?} is not a port")]
    Port { url: String, port: String },
}

impl UrlError {
    /// The text refused, as the message quotes it (credentials redacted).
    pub fn url(&self) -> &str {
        match self {
            UrlError::Syntax { url, .. }
            | UrlError::NotHttp { url }
            | UrlError::Credentials { url }
            | UrlError::NoHost { url }
            | UrlError::Port { url, .. } => url,
        }
    }
}

/// `s` with the user information of its authority (what comes before an
/// `@`) replaced by `<redacted>`.
fn shown(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    let end = s[start..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| start + i);
    match s[start..end].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &s[..start], &s[start + at..]),
        None => s.to_string(),
    }
}

/// The `http` crate's error, comparable (its own is not `PartialEq`): its
/// message, which is all it carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidUri(String);

/// An `http://` URL: where to connect, the Host header and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A name or an address (an IPv6 one without its brackets).
    pub host: String,
    /// 80 unless the URL says otherwise.
    pub port: u16,
    /// The request target: the path, with the query if any (`/` at least).
    pub path: String,
}

impl HttpUrl {
    /// Reads `s`, or says why it is not an `http://` URL leakhound can ask.
    /// `{key}` placeholders may stand in the path and the query
    /// ([`HttpUrl::fill`]).
    pub fn parse(s: &str) -> Result<HttpUrl, UrlError> {
        if !s
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
        {
            return Err(UrlError::NotHttp { url: shown(s) });
        }
        let uri: http::Uri = s
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Syntax {
                url: shown(s),
                source: InvalidUri(e.to_string()),
            })?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return Err(UrlError::NotHttp { url: shown(s) });
        }
        let Some(authority) = uri.authority() else {
            return Err(UrlError::NoHost { url: shown(s) });
        };
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials { url: shown(s) });
        }
        let host = authority.host();
        // The http crate reads a port that does not fit in 16 bits as none:
        // the port is read here from what follows the host.
        let port = match authority.as_str()[host.len()..].strip_prefix(':') {
            None => 80,
            Some(p) => p.parse().map_err(|_| UrlError::Port {
                url: shown(s),
                port: p.to_string(),
            })?,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::NoHost { url: shown(s) });
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: if path.is_empty() { "/" } else { path }.to_string(),
        })
    }

    /// The host as an address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The Host header's value.
    pub fn authority(&self) -> String {
        match self.ip() {
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }

    /// This URL with `{key}` in its path replaced by `value`.
    pub fn fill(&self, key: &str, value: &str) -> HttpUrl {
        HttpUrl {
            path: self.path.replace(&format!("{{{key}}}"), value),
            ..self.clone()
        }
    }

    /// This URL with another path (the same host and port).
    pub fn with_path(&self, path: &str) -> HttpUrl {
        HttpUrl {
            path: path.to_string(),
            ..self.clone()
        }
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<HttpUrl, UrlError> {
        HttpUrl::parse(s)
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, u16, String) {
        let u = HttpUrl::parse(s).unwrap();
        (u.host, u.port, u.path)
    }

    #[test]
    fn host_port_and_target_are_read() {
        let t = |h: &str, p: u16, path: &str| (h.to_string(), p, path.to_string());
        assert_eq!(parts("http://whoami.example"), t("whoami.example", 80, "/"));
        assert_eq!(parts("http://192.0.2.80/"), t("192.0.2.80", 80, "/"));
        assert_eq!(
            parts("http://127.0.0.1:8000/v1/portforward"),
            t("127.0.0.1", 8000, "/v1/portforward")
        );
        assert_eq!(
            parts("http://[2001:db8::1]:8080/a?b={port}"),
            t("2001:db8::1", 8080, "/a?b={port}")
        );
        assert_eq!(parts("http://[2001:db8::1]"), t("2001:db8::1", 80, "/"));
        assert_eq!(parts("HTTP://h:65535/x"), t("h", 65535, "/x"));
    }

    #[test]
    fn addresses_authority_and_display() {
        let u = HttpUrl::parse("http://[2001:db8::1]:8080/a?b={port}").unwrap();
        assert_eq!(u.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(u.authority(), "[2001:db8::1]:8080");
        assert_eq!(u.to_string(), "http://[2001:db8::1]:8080/a?b={port}");
        assert_eq!(u.fill("port", "1").path, "/a?b=1");
        assert_eq!(u.with_path("/x").to_string(), "http://[2001:db8::1]:8080/x");
        let u: HttpUrl = "http://whoami.example".parse().unwrap();
        assert_eq!((u.ip(), u.authority()), (None, "whoami.example:80".into()));
        // Parsing what is shown gives the same URL back.
        assert_eq!(HttpUrl::parse(&u.to_string()), Ok(u));
    }

    #[test]
    fn what_is_refused_says_why() {
        let e = |s: &str| HttpUrl::parse(s).unwrap_err();
        assert_eq!(
            e("https://x/").to_string(),
            "\"https://x/\": only http:// URLs are supported (leakhound speaks plain HTTP here)"
        );
        assert!(matches!(e("whoami.example/"), UrlError::NotHttp { .. }));
        // The credentials are not repeated.
        let c = e("http://user:hunter2@h:8000/x@y");
        assert_eq!(
            c.to_string(),
            "\"http://<redacted>@h:8000/x@y\": no credentials in URLs"
        );
        assert_eq!(c.url(), "http://<redacted>@h:8000/x@y");
        assert_eq!(e("https://x/").url(), "https://x/");
        assert_eq!(e("http://u:p@h/a b").url(), "http://<redacted>@h/a b");
        assert_eq!(e("ftp://u:p@h").url(), "ftp://<redacted>@h");
        assert_eq!(
            e("http://h:x/").to_string(),
            "\"http://h:x/\": \"x\" is not a port"
        );
        assert_eq!(
            e("http://h:99999/").to_string(),
            "\"http://h:99999/\": \"99999\" is not a port"
        );
        let syntax = e("http://h/a b");
        assert!(
            syntax
                .to_string()
                .starts_with("\"http://h/a b\" is not a URL: "),
            "{syntax}"
        );
        assert!(std::error::Error::source(&syntax).is_some());
        assert!(matches!(
            e("http:///x"),
            UrlError::NoHost { .. } | UrlError::Syntax { .. }
        ));
    }
}
