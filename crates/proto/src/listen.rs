//! Gluetun's server addresses as its variables write them (`:8000`,
//! `127.0.0.1:9999`, `[::1]:8000`), read the same way by the gateway, which
//! listens there, and by the harness, which connects from inside the
//! gateway's namespace: [`control_address`] for
//! `HTTP_CONTROL_SERVER_ADDRESS`, and [`reach`] for where a client goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The control server's variable.
pub const CONTROL_SERVER_VARIABLE: &str = "HTTP_CONTROL_SERVER_ADDRESS";

/// Gluetun's default for [`CONTROL_SERVER_VARIABLE`]: port 8000 on every
/// IPv4 address.
pub const DEFAULT_CONTROL_SERVER: &str = ":8000";

/// A value that is not `[ADDRESS]:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not [ADDRESS]:PORT, e.g. :8000")]
pub struct AddressError {
    pub value: String,
    #[source]
    pub source: std::net::AddrParseError,
}

/// Where a server listens, from a Gluetun address value: `:PORT` means
/// every IPv4 address (Gluetun's way), else `ADDRESS:PORT` or
/// `[IPV6]:PORT`. Surrounding blanks are ignored.
pub fn listen_address(value: &str) -> Result<SocketAddr, AddressError> {
    let v = value.trim();
    let full = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    full.parse().map_err(|source| AddressError {
        value: value.to_string(),
        source,
    })
}

/// Where the control server listens: `value` is
/// `HTTP_CONTROL_SERVER_ADDRESS` (unset or blank: Gluetun's `:8000`).
pub fn control_address(value: Option<&str>) -> Result<SocketAddr, AddressError> {
    listen_address(
        value
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(DEFAULT_CONTROL_SERVER),
    )
}

/// Where a client in the server's own namespace connects to reach a server
/// listening on `listen`: an unspecified address (every address) is
/// reached on loopback, of the same family.
pub fn reach(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gluetun_addresses_are_read_for_listening_and_reaching() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (value, listen, reached) in [
            (None, "0.0.0.0:8000", "127.0.0.1:8000"),
            (Some(""), "0.0.0.0:8000", "127.0.0.1:8000"),
            (Some(":8001"), "0.0.0.0:8001", "127.0.0.1:8001"),
            (Some(" :8002 "), "0.0.0.0:8002", "127.0.0.1:8002"),
            (Some("0.0.0.0:9000"), "0.0.0.0:9000", "127.0.0.1:9000"),
            (Some("127.0.0.1:8000"), "127.0.0.1:8000", "127.0.0.1:8000"),
            (Some("10.0.0.2:80"), "10.0.0.2:80", "10.0.0.2:80"),
            (Some("[::]:8000"), "[::]:8000", "[::1]:8000"),
            (Some("[fd00::2]:8000"), "[fd00::2]:8000", "[fd00::2]:8000"),
        ] {
            let a = control_address(value).unwrap();
            assert_eq!(a, sa(listen), "{value:?}");
            assert_eq!(reach(a), sa(reached), "{value:?}");
        }
        for bad in ["port8000", "8000", "localhost:8000", ":", "1.2.3.4:99999"] {
            let e = control_address(Some(bad)).unwrap_err();
            assert_eq!(e.value, bad);
            assert_eq!(
                e.to_string(),
                format!("{bad:?} is not [ADDRESS]:PORT, e.g. :8000")
            );
            assert!(std::error::Error::source(&e).is_some());
        }
    }
}
