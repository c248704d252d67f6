//! The waits: for the provider to see a handshake, for the gateway to
//! report its kill switch, for traffic through the VPN exit, for a new
//! tunnel socket, for the health endpoint's answer. Each waits on a
//! condition, bounded by the step's timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::report::{StepLog, StepReport, StepResult};
use crate::model::scenario::Capability;
use crate::model::topology::{addr, host};
use crate::probe;
use crate::scenario::runner::{RunState, Runner};
use crate::target::{Readiness, ReadinessEvent, tail};

impl Runner<'_> {
    /// Waits until the provider sees a handshake newer than the gateway's
    /// start (or the last fault's repair); for a target without a health
    /// server, then until traffic flows.
    pub(crate) async fn wait_handshake(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
    ) -> StepReport {
        let mut log = StepLog::new();
        let Some(gw) = st.gateway.as_mut() else {
            return log.fail_with("there is no gateway running", "");
        };
        let mut status = self.services.wg.status.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        let waited = Instant::now();
        loop {
            if status.borrow_and_update().handshakes > st.handshakes_before {
                let since_start = gw.started().elapsed();
                log.note(format!(
                    "provider saw a completed handshake after {:?} ({:?} after the gateway started)",
                    waited.elapsed(),
                    since_start
                ));
                st.handshake_after.get_or_insert(since_start);
                if self
                    .target
                    .capabilities()
                    .contains(&Capability::HealthServer)
                {
                    return log.pass();
                }
                // A target without a health server is ready once traffic
                // flows: whoami sees the VPN exit (a gateway may complete its
                // handshake before its routes are in place).
                return self.traffic(log, deadline).await;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                code = gw.exited() => {
                    gw.log_flushed().await;
                    return log.fail_with(
                        format!("the gateway exited ({code}) before a handshake: {}", tail(&st.gw_log, 1)),
                        tail(&st.gw_log, 20),
                    );
                }
                r = status.changed() => if r.is_err() { break },
            }
        }
        let s = self.services.wg.status.borrow().clone();
        let why = match &s.last_rejection {
            Some(r) => format!(
                "the provider rejected {} datagram(s), last: {r}; check WIREGUARD_PUBLIC_KEY (the provider's key), WIREGUARD_PRIVATE_KEY and WIREGUARD_PRESHARED_KEY",
                s.rejected
            ),
            None => "the provider received nothing it could use from the gateway; check VPN_ENDPOINT_IP and VPN_ENDPOINT_PORT".into(),
        };
        log.fail_with(
            format!("no WireGuard handshake within {timeout:?}: {why}"),
            format!(
                "provider status: {s:?}\ngateway log:\n{}",
                tail(&st.gw_log, 20)
            ),
        )
    }

    /// Waits until whoami sees the VPN exit from the gateway's namespace:
    /// the gateway carries traffic (also `lab up`'s readiness). Asks with
    /// short attempts until it does or `deadline` passes.
    pub async fn wait_for_traffic(&self, deadline: tokio::time::Instant) -> StepReport {
        self.traffic(StepLog::new(), deadline).await
    }

    /// `log` continued with the wait for traffic through the VPN exit.
    async fn traffic(&self, mut log: StepLog, deadline: tokio::time::Instant) -> StepReport {
        let Ok(ns) = self.lab.ns(host::GW) else {
            return log.fail_with("the lab has no gateway host", "");
        };
        let waited = Instant::now();
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match probe::whoami_sees_vpn_exit(ns, Duration::from_millis(300)).await {
                Ok(()) => {
                    log.note(format!(
                        "whoami sees the VPN exit {} {:?} later: the target is ready",
                        addr::VPN_EXIT,
                        waited.elapsed()
                    ));
                    return log.pass();
                }
                Err(e) => last = e.to_string(),
            }
        }
        log.fail(format!(
            "no traffic reached whoami through the VPN exit before the deadline ({:?}); last: {last}",
            waited.elapsed()
        ))
    }

    /// Waits for datagrams from a new source at the provider: the socket
    /// behind the last handshake is gone, the gateway made a new tunnel.
    pub(crate) async fn wait_tunnel_restart(&self, timeout: Duration) -> StepReport {
        let mut log = StepLog::new();
        let mut status = self.services.wg.status.clone();
        let Some(before) = status.borrow_and_update().peer else {
            return log.fail_with("the provider has no client endpoint yet (no handshake)", "");
        };
        log.note(format!("the tunnel's last handshake came from {before}"));
        let started = Instant::now();
        let r = tokio::time::timeout(
            timeout,
            status.wait_for(|s| s.last_datagram_from.is_some_and(|f| f != before)),
        )
        .await;
        match r {
            Ok(Ok(s)) => {
                log.note(format!(
                    "after {:?} the provider received datagrams from {}: a new tunnel socket",
                    started.elapsed(),
                    s.last_datagram_from.expect("checked")
                ));
                log.pass()
            }
            _ => log.fail(format!(
                "the gateway did not restart its tunnel within {timeout:?}: the provider saw datagrams only from {before}"
            )),
        }
    }

    /// Asks the health endpoint every 100 ms until it gives the expected
    /// answer or `timeout` passes.
    pub(crate) async fn health_step(
        &self,
        healthy: bool,
        target: SocketAddr,
        timeout: Duration,
    ) -> StepResult {
        let mut log = StepLog::new();
        let ns = log.harness(self.lab.ns(host::GW))?;
        let want = if healthy { 200 } else { 500 };
        let started = Instant::now();
        let mut last = String::from("no answer");
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        while started.elapsed() < timeout {
            poll.tick().await;
            match probe::http_get(ns, target, "/", Duration::from_secs(1)).await {
                Ok((code, body)) => {
                    last = format!("{code}: {body}");
                    if code == want {
                        log.note(format!(
                            "{} after {:?}: {body}",
                            if healthy { "healthy" } else { "unhealthy" },
                            started.elapsed()
                        ));
                        return Ok(log.pass());
                    }
                }
                Err(e) => last = format!("no answer: {e}"),
            }
        }
        Ok(log.fail(format!(
            "the health endpoint did not say {} within {timeout:?}; last: {last}",
            if healthy { "healthy" } else { "unhealthy" }
        )))
    }

    /// Waits until the gateway reports its kill switch closed (a target
    /// that does not report it passes at once: the probes after this step
    /// start with its process).
    pub(crate) async fn wait_firewall(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
    ) -> StepReport {
        let mut log = StepLog::new();
        let Some(gw) = st.gateway.as_mut() else {
            return log.fail_with("there is no gateway running", "");
        };
        let Some(mut readiness) = gw.readiness() else {
            // A gateway that does not say when its kill switch is in place:
            // the probes after this step start with its process, so one
            // that closes late is caught.
            log.note(format!(
                "target {} does not report its kill switch: probing from the moment it started ({:?} ago)",
                self.target.name(),
                gw.started().elapsed()
            ));
            return log.pass();
        };
        let closed = |r: &Readiness| {
            r.events.iter().find_map(|(at, e)| match e {
                ReadinessEvent::KillSwitchClosed { .. } => Some((*at, e.clone())),
                _ => None,
            })
        };
        let r = tokio::select! {
            r = tokio::time::timeout(timeout, readiness.wait_for(|r| closed(r).is_some())) => {
                r.ok().and_then(|r| r.ok().and_then(|r| closed(&r)))
            }
            _ = gw.exited() => None,
        };
        match r {
            Some((at, event)) => {
                let after = at.duration_since(gw.started());
                st.firewall_after = Some(after);
                log.note(format!(
                    "the gateway reported its kill switch closed {after:?} after it started"
                ));
                log.note(format!("its event: {}", event.to_line().trim_end()));
                log.pass()
            }
            None => log.fail_with(
                format!("the gateway did not report its kill switch closed within {timeout:?}"),
                tail(&st.gw_log, 20),
            ),
        }
    }
}
