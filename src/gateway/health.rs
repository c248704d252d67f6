//! Health: is the tunnel usable right now? A check runs every
//! HEALTH_SMALL_CHECK_INTERVAL: the tunnel must be up with a session no older
//! than WireGuard's REJECT_AFTER_TIME, and every HEALTH_TARGET_ADDRESSES
//! target must accept a TCP connection made *through the tunnel* (the socket
//! is bound to the tunnel's interface, so a check can never succeed around
//! it). The verdict is served on HEALTH_SERVER_ADDRESS: `GET /` answers 200
//! when healthy and 500 otherwise, with the reason in the body; `leakhound
//! gateway healthcheck` turns that into an exit status for Docker.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use tokio::sync::watch;

use crate::tunnel::TunnelStatus;

/// WireGuard's REJECT_AFTER_TIME: a session older than this carries nothing.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub healthy: bool,
    pub reason: String,
}

impl Health {
    pub fn starting() -> Health {
        Health {
            healthy: false,
            reason: "starting".into(),
        }
    }
}

/// The verdict from what a check saw. Pure.
pub fn verdict(
    tunnel: Option<&TunnelStatus>,
    now: SystemTime,
    targets: &[(SocketAddr, Result<(), String>)],
) -> Health {
    let unhealthy = |reason: String| Health {
        healthy: false,
        reason,
    };
    let Some(t) = tunnel else {
        return unhealthy("the tunnel is down".into());
    };
    match t.last_handshake {
        None => return unhealthy("no WireGuard handshake yet".into()),
        Some(at) => {
            let age = now.duration_since(at).unwrap_or_default();
            if age > SESSION_LIFETIME {
                return unhealthy(format!(
                    "the last WireGuard handshake was {}s ago",
                    age.as_secs()
                ));
            }
        }
    }
    let failed: Vec<String> = targets
        .iter()
        .filter_map(|(a, r)| r.as_ref().err().map(|e| format!("{a}: {e}")))
        .collect();
    if failed.is_empty() {
        Health {
            healthy: true,
            reason: format!(
                "tunnel up, {} target(s) reachable through it",
                targets.len()
            ),
        }
    } else {
        unhealthy(format!(
            "not reachable through the tunnel: {}",
            failed.join("; ")
        ))
    }
}

/// Exponential backoff between tunnel restarts: 1 s, 2 s, 4 s ... 30 s.
#[derive(Debug, Default)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);

    /// The wait before the next restart.
    pub fn next_wait(&mut self) -> Duration {
        let d = Self::FIRST
            .saturating_mul(1 << self.attempts.min(5))
            .min(Self::MAX);
        self.attempts += 1;
        d
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// One TCP connection to `target`, bound to the tunnel interface.
pub async fn reach(target: SocketAddr, tunnel_if: &str, timeout: Duration) -> Result<(), String> {
    let s = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    s.bind_device(Some(tunnel_if.as_bytes()))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, s.connect(target)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Runs checks forever, publishing each verdict.
pub async fn run_checks(
    targets: Vec<SocketAddr>,
    tunnel_if: String,
    interval: Duration,
    tunnel: watch::Receiver<Option<watch::Receiver<TunnelStatus>>>,
    out: watch::Sender<Health>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let status = tunnel.borrow().as_ref().map(|rx| rx.borrow().clone());
        let mut results = Vec::new();
        if status.is_some() {
            for t in &targets {
                results.push((
                    *t,
                    reach(*t, &tunnel_if, interval.min(Duration::from_secs(5))).await,
                ));
            }
        }
        let h = verdict(status.as_ref(), SystemTime::now(), &results);
        out.send_if_modified(|old| {
            if *old != h {
                tracing::info!(healthy = h.healthy, "health: {}", h.reason);
                *old = h;
                true
            } else {
                false
            }
        });
    }
}

/// Serves the verdict: 200 or 500, the reason in the body.
pub async fn serve(addr: SocketAddr, health: watch::Receiver<Health>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().fallback(move || {
        let h = health.borrow().clone();
        async move {
            let code = if h.healthy {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                code,
                format!(
                    "{}: {}\n",
                    if h.healthy { "healthy" } else { "unhealthy" },
                    h.reason
                ),
            )
        }
    });
    axum::serve(listener, app).await
}

/// `leakhound gateway healthcheck`: asks the health server; Ok(true) when
/// it says healthy.
pub fn ask(addr: SocketAddr, timeout: Duration) -> std::io::Result<(bool, String)> {
    use std::io::{Read, Write};
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let mut s = std::net::TcpStream::connect_timeout(&target, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let healthy = resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200");
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((healthy, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(ago: u64) -> TunnelStatus {
        TunnelStatus {
            handshakes: 1,
            last_handshake: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - ago)),
            ..Default::default()
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn healthy_needs_a_fresh_session_and_every_target() {
        let t: SocketAddr = "192.0.2.80:80".parse().unwrap();
        assert!(verdict(Some(&up(10)), now(), &[(t, Ok(()))]).healthy);
        assert!(verdict(Some(&up(10)), now(), &[]).healthy);
        let h = verdict(
            Some(&up(10)),
            now(),
            &[(t, Err("connection refused".into()))],
        );
        assert!(!h.healthy);
        assert!(
            h.reason.contains("192.0.2.80:80: connection refused"),
            "{}",
            h.reason
        );
        let h = verdict(Some(&up(200)), now(), &[(t, Ok(()))]);
        assert!(!h.healthy && h.reason.contains("200s ago"), "{}", h.reason);
        assert_eq!(verdict(None, now(), &[]).reason, "the tunnel is down");
        let fresh = TunnelStatus::default();
        assert!(!verdict(Some(&fresh), now(), &[]).healthy);
    }
}
