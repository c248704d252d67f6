//! The attacks on the gateway from its own networks: a DNS query in a raw
//! frame that bypasses the sender's routes, a forged SYN-ACK to the
//! tunnel's address (CVE-2019-14899), malformed DNS to a resolver.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use ipnet::IpNet;

use super::report::{StepLog, StepResult, lab_err};
use crate::lab::LabError;
use crate::model::scenario::{Check, Expect};
use crate::model::topology::{addr, host};
use crate::probe;
use crate::scenario::runner::{PROBE_TIMEOUT, RunState, Runner};

impl Runner<'_> {
    /// A DNS query for a probe name in a raw frame on `from`'s eth0, to the
    /// home router's side of the gateway's wire, bypassing `from`'s routes:
    /// whether it got out is decided at the far end (and on the wire).
    pub(crate) async fn raw_frame_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
    ) -> StepResult {
        let mut log = StepLog::new();
        let nonce = probe::nonce();
        let name = probe::probe_name(&nonce);
        // The frame goes to the home router's side of gw's wire, as a packet
        // routed by the stack would.
        let home_nl = log.harness(self.lab.nl(host::HOME))?;
        let home_mac =
            log.harness(
                home_nl
                    .mac_of("gw")
                    .await
                    .map_err(|source| LabError::Netlink {
                        host: host::HOME.into(),
                        source,
                    }),
            )?;
        log.note(format!(
            "raw frame on {from}'s eth0: DNS query for {name} to {target}"
        ));
        let ns = log.harness(self.lab.ns(from))?;
        let r = probe::raw_frame_dns(ns, "eth0", home_mac, addr::GW_ETH0, target, &name);
        match &r {
            Ok(()) => log.note("the kernel accepted the frame"),
            Err(e) => log.note(format!("the kernel refused the frame: {e}")),
        }
        // Whether it got out is decided at the far end (and on the wire):
        // give the resolver the same time a probe gets to see it.
        let deadline = Instant::now() + PROBE_TIMEOUT;
        if check.expect == Expect::Fail && r.is_ok() {
            let mut log_rx = self.services.log.subscribe();
            while Instant::now() < deadline
                && self
                    .services
                    .log
                    .find(crate::lab::services::ISP_DNS, &nonce)
                    .is_empty()
            {
                if tokio::time::timeout(deadline - Instant::now(), log_rx.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        log.absorb(self.far_end(&nonce, "raw frame", check));
        Ok(log.judge())
    }

    /// CVE-2019-14899: a SYN-ACK to the tunnel's address from `from`,
    /// routed through the gateway's underlay; `fail` means nothing may
    /// answer.
    pub(crate) async fn synack_step(
        &self,
        from: &str,
        target: SocketAddr,
        expect: &Expect,
    ) -> StepResult {
        let mut log = StepLog::new();
        // The attacker routes the tunnel's address to the gateway's underlay.
        let nl = log.harness(self.lab.nl(from))?;
        let via: IpAddr = addr::GW_ETH0.into();
        let dst = IpNet::from(target.ip());
        let nlerr = |source| LabError::Netlink {
            host: from.to_string(),
            source,
        };
        log.harness(nl.replace_route(dst, Some(via), None).await.map_err(nlerr))?;
        let src = match self
            .lab
            .topology()
            .host(from)
            .and_then(|_| self.source_towards_gw(from))
        {
            Some(s) => s,
            None => {
                return Err(log.error(lab_err(
                    "inject-synack",
                    format!("{from} has no address on gw's link"),
                )));
            }
        };
        log.note(format!("SYN-ACK from {src} to {target} via {via}"));
        let ns = log.harness(self.lab.ns(from))?;
        let r = probe::inject_synack(ns, src, target, PROBE_TIMEOUT).await;
        let del = crate::netlink::RouteInfo {
            dst,
            gateway: Some(via),
            oif: None,
        };
        let _ = nl.del_route(&del).await;
        let answer = log.harness(r.map_err(|e| lab_err("inject-synack", e)))?;
        Ok(match (answer, expect) {
            (None, Expect::Fail) => {
                log.note("nothing answered");
                log.pass()
            }
            (Some(a), Expect::Fail) => log.fail(format!(
                "the gateway answered a forged SYN-ACK to its tunnel address from the LAN side ({a}): CVE-2019-14899"
            )),
            (Some(a), _) => {
                log.note(format!("answered: {a}"));
                log.pass()
            }
            (None, _) => log.fail("nothing answered the SYN-ACK"),
        })
    }

    /// The IPv4 address `host` has on the gateway's link (only the home
    /// router has one).
    fn source_towards_gw(&self, host_name: &str) -> Option<Ipv4Addr> {
        let topo = self.lab.topology();
        let gw_net = topo
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .find(|e| e.host == host::GW)?
            .addrs
            .iter()
            .find(|a| a.addr().is_ipv4())
            .copied()?;
        topo.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.host == host_name)
            .flat_map(|e| e.addrs.iter())
            .find_map(|a| match a.addr() {
                IpAddr::V4(v4) if gw_net.contains(&a.addr()) => Some(v4),
                _ => None,
            })
    }

    /// Malformed DNS messages (UDP and TCP) to a resolver, `server` or the
    /// system resolver of `from`: passes once they are sent; the next step
    /// asks the resolver whether it still runs.
    pub(crate) async fn dns_garbage(
        &self,
        st: &RunState<'_>,
        from: &str,
        server: Option<SocketAddr>,
    ) -> StepResult {
        let mut log = StepLog::new();
        // The gateway's own resolver is gone with the gateway: say
        // so at once rather than wait out every malformed message.
        if from == host::GW && server.is_none() && st.gateway.is_none() {
            return Ok(log.fail(
                "there is no gateway running: its resolver cannot be sent malformed messages",
            ));
        }
        let server = match self.resolver_for(from, server) {
            Ok((s, found)) => {
                log.absorb(found);
                s
            }
            Err(outcome) => return Ok(log.end(outcome)),
        };
        let corpus = probe::malformed_dns();
        log.note(format!(
            "{} malformed messages and {} mutated queries over UDP, and one short TCP frame, to {server}",
            corpus.len(),
            probe::MUTATIONS
        ));
        for (what, _) in &corpus {
            log.note(format!("  {what}"));
        }
        let ns = log.harness(self.lab.ns(from))?;
        let replies = log.harness(
            probe::dns_garbage(ns, server)
                .await
                .map_err(|e| lab_err("dns-garbage", e)),
        )?;
        log.note(format!(
            "{replies} got a reply (an error response); the rest were dropped"
        ));
        Ok(log.pass())
    }
}
