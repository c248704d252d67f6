//! The waits: for the provider to see a handshake, for the gateway to
//! report its kill switch, for traffic through the VPN exit, for a new
//! tunnel socket, for the health endpoint's answer. Each waits on a
//! condition, bounded by the step's timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::lab::LabError;
use crate::model::scenario::Capability;
use crate::model::topology::{addr, host};
use crate::model::verdict::Outcome;
use crate::probe;
use crate::scenario::runner::{RunState, Runner, fail};
use crate::target::tail;

impl Runner<'_> {
    pub(crate) async fn wait_handshake(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Outcome {
        let Some(gw) = st.gateway.as_mut() else {
            return fail("there is no gateway running", "");
        };
        let mut status = self.services.wg.status.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        let waited = Instant::now();
        loop {
            if status.borrow_and_update().handshakes > st.handshakes_before {
                let since_start = gw.started().elapsed();
                log.push(format!(
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
                    return Outcome::Passed;
                }
                // A target without a health server is ready once traffic
                // flows: whoami sees the VPN exit (a gateway may complete its
                // handshake before its routes are in place).
                return self.wait_traffic(deadline, log).await;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                code = gw.exited() => {
                    gw.log_flushed().await;
                    return fail(
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
        fail(
            format!("no WireGuard handshake within {timeout:?}: {why}"),
            format!(
                "provider status: {s:?}\ngateway log:\n{}",
                tail(&st.gw_log, 20)
            ),
        )
    }

    /// Asks whoami from the gateway host, with short attempts, until it sees
    /// the VPN exit address or `deadline` passes.
    /// Waits until whoami sees the VPN exit from the gateway's namespace:
    /// the gateway carries traffic (also `lab up`'s readiness).
    pub async fn wait_traffic(
        &self,
        deadline: tokio::time::Instant,
        log: &mut Vec<String>,
    ) -> Outcome {
        let Ok(ns) = self.lab.ns(host::GW) else {
            return fail("the lab has no gateway host", "");
        };
        let waited = Instant::now();
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match probe::whoami_sees_vpn_exit(ns, Duration::from_millis(300)).await {
                Ok(()) => {
                    log.push(format!(
                        "whoami sees the VPN exit {} {:?} later: the target is ready",
                        addr::VPN_EXIT,
                        waited.elapsed()
                    ));
                    return Outcome::Passed;
                }
                Err(e) => last = e,
            }
        }
        fail(
            format!(
                "no traffic reached whoami through the VPN exit before the deadline ({:?}); last: {last}",
                waited.elapsed()
            ),
            log.join("\n"),
        )
    }

    /// Waits for datagrams from a new source at the provider: the socket
    /// behind the last handshake is gone, the gateway made a new tunnel.
    pub(crate) async fn wait_tunnel_restart(
        &self,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Outcome {
        let mut status = self.services.wg.status.clone();
        let Some(before) = status.borrow_and_update().peer else {
            return fail("the provider has no client endpoint yet (no handshake)", "");
        };
        log.push(format!("the tunnel's last handshake came from {before}"));
        let started = Instant::now();
        let r = tokio::time::timeout(
            timeout,
            status.wait_for(|s| s.last_datagram_from.is_some_and(|f| f != before)),
        )
        .await;
        match r {
            Ok(Ok(s)) => {
                log.push(format!(
                    "after {:?} the provider received datagrams from {}: a new tunnel socket",
                    started.elapsed(),
                    s.last_datagram_from.expect("checked")
                ));
                Outcome::Passed
            }
            _ => fail(
                format!(
                    "the gateway did not restart its tunnel within {timeout:?}: the provider saw datagrams only from {before}"
                ),
                log.join("\n"),
            ),
        }
    }

    /// Asks the health endpoint every 100 ms until it gives the expected
    /// answer or `timeout` passes.
    pub(crate) async fn health_step(
        &self,
        healthy: bool,
        target: SocketAddr,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(host::GW)?;
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
                        log.push(format!(
                            "{} after {:?}: {body}",
                            if healthy { "healthy" } else { "unhealthy" },
                            started.elapsed()
                        ));
                        return Ok(Outcome::Passed);
                    }
                }
                Err(e) => last = format!("no answer: {e}"),
            }
        }
        Ok(fail(
            format!(
                "the health endpoint did not say {} within {timeout:?}; last: {last}",
                if healthy { "healthy" } else { "unhealthy" }
            ),
            log.join("\n"),
        ))
    }

    pub(crate) async fn wait_firewall(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Outcome {
        let Some(gw) = st.gateway.as_mut() else {
            return fail("there is no gateway running", "");
        };
        let Some(mut closed) = gw.firewall_closed() else {
            // A gateway that does not say when its kill switch is in place:
            // the probes after this step start with its process, so one
            // that closes late is caught.
            log.push(format!(
                "target {} does not report its kill switch: probing from the moment it started ({:?} ago)",
                self.target.name(),
                gw.started().elapsed()
            ));
            return Outcome::Passed;
        };
        let r = tokio::select! {
            r = tokio::time::timeout(timeout, closed.wait_for(|c| c.is_some())) => r.ok().and_then(|r| r.ok().map(|v| *v)),
            _ = gw.exited() => None,
        };
        match r.flatten() {
            Some(at) => {
                let after = at.duration_since(gw.started());
                st.firewall_after = Some(after);
                log.push(format!(
                    "the gateway reported its kill switch closed {after:?} after it started"
                ));
                log.push(tail(&st.gw_log, 1));
                Outcome::Passed
            }
            None => fail(
                format!("the gateway did not report its kill switch closed within {timeout:?}"),
                tail(&st.gw_log, 20),
            ),
        }
    }
}
