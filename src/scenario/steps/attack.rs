//! The attacks on the gateway from its own networks: a DNS query in a raw
//! frame that bypasses the sender's routes, a forged SYN-ACK to the
//! tunnel's address (CVE-2019-14899), malformed DNS to a resolver.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use ipnet::IpNet;

use super::report::lab_err;
use crate::lab::LabError;
use crate::model::scenario::{Check, Expect};
use crate::model::topology::{addr, host};
use crate::model::verdict::Outcome;
use crate::probe;
use crate::scenario::runner::{PROBE_TIMEOUT, RunState, Runner, fail};

impl Runner<'_> {
    pub(crate) async fn raw_frame_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let nonce = probe::nonce();
        let name = probe::probe_name(&nonce);
        // The frame goes to the home router's side of gw's wire, as a packet
        // routed by the stack would.
        let home_mac = self
            .lab
            .nl(host::HOME)?
            .mac_of("gw")
            .await
            .map_err(|source| LabError::Netlink {
                host: host::HOME.into(),
                source,
            })?;
        log.push(format!(
            "raw frame on {from}'s eth0: DNS query for {name} to {target}"
        ));
        let r = probe::raw_frame_dns(
            self.lab.ns(from)?,
            "eth0",
            home_mac,
            addr::GW_ETH0,
            target,
            &name,
        );
        match &r {
            Ok(()) => log.push("the kernel accepted the frame".into()),
            Err(e) => log.push(format!("the kernel refused the frame: {e}")),
        }
        // Whether it got out is decided at the far end (and on the wire):
        // give the resolver the same time a probe gets to see it.
        let mut problems = Vec::new();
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
        self.far_end(&nonce, "raw frame", check, log, &mut problems);
        Ok(Self::verdict(problems, log))
    }

    pub(crate) async fn synack_step(
        &self,
        from: &str,
        target: SocketAddr,
        expect: &Expect,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        // The attacker routes the tunnel's address to the gateway's underlay.
        let nl = self.lab.nl(from)?;
        let via: IpAddr = addr::GW_ETH0.into();
        let dst = IpNet::from(target.ip());
        let nlerr = |source| LabError::Netlink {
            host: from.to_string(),
            source,
        };
        nl.replace_route(dst, Some(via), None)
            .await
            .map_err(nlerr)?;
        let src = match self
            .lab
            .topology()
            .host(from)
            .and_then(|_| self.source_towards_gw(from))
        {
            Some(s) => s,
            None => {
                return Err(lab_err(
                    "inject-synack",
                    format!("{from} has no address on gw's link"),
                ));
            }
        };
        log.push(format!("SYN-ACK from {src} to {target} via {via}"));
        let r = probe::inject_synack(self.lab.ns(from)?, src, target, PROBE_TIMEOUT).await;
        let del = crate::netlink::RouteInfo {
            dst,
            gateway: Some(via),
            oif: None,
        };
        let _ = nl.del_route(&del).await;
        let answer = r.map_err(|e| lab_err("inject-synack", e))?;
        Ok(match (answer, expect) {
            (None, Expect::Fail) => {
                log.push("nothing answered".into());
                Outcome::Passed
            }
            (Some(a), Expect::Fail) => fail(
                format!(
                    "the gateway answered a forged SYN-ACK to its tunnel address from the LAN side ({a}): CVE-2019-14899"
                ),
                log.join("\n"),
            ),
            (Some(a), _) => {
                log.push(format!("answered: {a}"));
                Outcome::Passed
            }
            (None, _) => fail("nothing answered the SYN-ACK", log.join("\n")),
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
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        // The gateway's own resolver is gone with the gateway: say
        // so at once rather than wait out every malformed message.
        if from == host::GW && server.is_none() && st.gateway.is_none() {
            return Ok(fail(
                "there is no gateway running: its resolver cannot be sent malformed messages",
                log.join("\n"),
            ));
        }
        let server = match self.resolver_for(from, server, log) {
            Ok(s) => s,
            Err(outcome) => return Ok(outcome),
        };
        let corpus = probe::malformed_dns();
        log.push(format!(
            "{} malformed messages and {} mutated queries over UDP, and one short TCP frame, to {server}",
            corpus.len(),
            probe::MUTATIONS
        ));
        for (what, _) in &corpus {
            log.push(format!("  {what}"));
        }
        let replies = probe::dns_garbage(self.lab.ns(from)?, server)
            .await
            .map_err(|e| lab_err("dns-garbage", e))?;
        log.push(format!(
            "{replies} got a reply (an error response); the rest were dropped"
        ));
        Ok(Outcome::Passed)
    }
}
