//! WireGuard's cross-platform userspace API (the text protocol on
//! `/run/wireguard/<interface>.sock` that `wg` speaks to wireguard-go): the
//! lab uses it to configure Debian's wireguard-go as the provider and to read
//! its peer's state. Parsing is pure; the exchange is one connection per
//! request, as `wg` does it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum UapiError {
    #[error("talking to {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} answered errno={errno} to {request}")]
    Refused {
        path: String,
        request: &'static str,
        errno: i64,
    },
    #[error("{path} answered without an errno line: {answer:?}")]
    Garbled { path: String, answer: String },
}

/// One peer as `get=1` reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerState {
    /// Hex, as the protocol spells keys.
    pub public_key: String,
    pub endpoint: Option<SocketAddr>,
    /// `None` until the first handshake (the protocol says 0/0).
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The peers in a `get=1` answer, and its errno. Unknown keys are skipped
/// (newer implementations add some); a value that does not parse is
/// treated as absent.
pub fn parse_get(answer: &str) -> (Vec<PeerState>, Option<i64>) {
    let mut peers: Vec<PeerState> = Vec::new();
    let mut errno = None;
    let (mut sec, mut nsec) = (0u64, 0u32);
    let close = |peers: &mut Vec<PeerState>, sec: &mut u64, nsec: &mut u32| {
        if let Some(p) = peers.last_mut()
            && (*sec, *nsec) != (0, 0)
        {
            p.last_handshake = Some(UNIX_EPOCH + Duration::new(*sec, *nsec));
        }
        (*sec, *nsec) = (0, 0);
    };
    for line in answer.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match (k, peers.last_mut()) {
            ("errno", _) => errno = v.parse().ok(),
            ("public_key", _) => {
                close(&mut peers, &mut sec, &mut nsec);
                peers.push(PeerState {
                    public_key: v.to_string(),
                    ..Default::default()
                });
            }
            ("endpoint", Some(p)) => p.endpoint = v.parse().ok(),
            ("last_handshake_time_sec", Some(_)) => sec = v.parse().unwrap_or(0),
            ("last_handshake_time_nsec", Some(_)) => nsec = v.parse().unwrap_or(0),
            ("rx_bytes", Some(p)) => p.rx_bytes = v.parse().unwrap_or(0),
            ("tx_bytes", Some(p)) => p.tx_bytes = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    close(&mut peers, &mut sec, &mut nsec);
    (peers, errno)
}

/// Hex of a key, as the protocol wants it.
pub fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

async fn exchange(path: &Path, request: &str) -> Result<String, UapiError> {
    let io = |source| UapiError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut s = tokio::net::UnixStream::connect(path).await.map_err(io)?;
    s.write_all(request.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer ends with an empty line; the server keeps the connection
    // open for the next request, so read until then, not until EOF.
    loop {
        let n = s.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.ends_with(b"\n\n") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// `get=1`: every peer's state.
pub async fn get(path: &Path) -> Result<Vec<PeerState>, UapiError> {
    let answer = exchange(path, "get=1\n\n").await?;
    match parse_get(&answer) {
        (peers, Some(0)) => Ok(peers),
        (_, Some(errno)) => Err(UapiError::Refused {
            path: path.display().to_string(),
            request: "get",
            errno,
        }),
        (_, None) => Err(UapiError::Garbled {
            path: path.display().to_string(),
            answer,
        }),
    }
}

/// `set=1` with `lines` (each `key=value`).
pub async fn set(path: &Path, lines: &[String]) -> Result<(), UapiError> {
    let mut req = String::from("set=1\n");
    for l in lines {
        req.push_str(l);
        req.push('\n');
    }
    req.push('\n');
    let answer = exchange(path, &req).await?;
    match parse_get(&answer).1 {
        Some(0) => Ok(()),
        Some(errno) => Err(UapiError::Refused {
            path: path.display().to_string(),
            request: "set",
            errno,
        }),
        None => Err(UapiError::Garbled {
            path: path.display().to_string(),
            answer,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_answer_gives_each_peer_its_handshake_and_endpoint() {
        let answer = "private_key=aa\nlisten_port=51820\n\
            public_key=01\npreshared_key=02\nprotocol_version=1\nendpoint=198.51.100.2:40000\n\
            last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n\
            tx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=0\nallowed_ip=10.64.0.2/32\n\
            public_key=03\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n\
            errno=0\n\n";
        let (peers, errno) = parse_get(answer);
        assert_eq!(errno, Some(0));
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].public_key, "01");
        assert_eq!(
            peers[0].endpoint,
            Some("198.51.100.2:40000".parse().unwrap())
        );
        assert_eq!(
            peers[0].last_handshake,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5))
        );
        assert_eq!((peers[0].rx_bytes, peers[0].tx_bytes), (20, 10));
        // 0/0 is "never", and a peer without an endpoint has none.
        assert_eq!(peers[1].last_handshake, None);
        assert_eq!(peers[1].endpoint, None);
    }

    #[test]
    fn a_refusal_and_a_garbled_answer_are_told_apart() {
        assert_eq!(parse_get("errno=22\n\n").1, Some(22));
        assert_eq!(parse_get("hello\n").1, None);
        assert!(parse_get("").0.is_empty());
    }

    #[test]
    fn keys_are_lowercase_hex() {
        let mut k = [0u8; 32];
        k[0] = 0xAB;
        k[31] = 0x01;
        let h = hex(&k);
        assert_eq!(h.len(), 64);
        assert!(h.starts_with("ab00"));
        assert!(h.ends_with("01"));
    }
}
