//! The faults done to the lab or the gateway (the tunnel stopped, the
//! gateway killed, the provider silent, the ISP blocking WireGuard, the
//! routes bent around the tunnel, ...) and interference with the gateway's
//! namespace from outside, as other software on the machine might.

use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::lifecycle::{ISP_BLOCK, ISP_UNBLOCK};
use crate::lab::LabError;
use crate::model::scenario::{Capability, Fault, Interference};
use crate::model::topology::{addr, host};
use crate::model::verdict::Outcome;
use crate::scenario::runner::{RunState, Runner, fail};
use crate::target::tail;

impl Runner<'_> {
    pub(crate) async fn fault(
        &self,
        st: &mut RunState<'_>,
        f: Fault,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let no_gateway = || fail("there is no gateway running", "");
        Ok(match f {
            Fault::StopTunnel | Fault::StartTunnel => {
                if st.gateway.is_none() {
                    return Ok(no_gateway());
                }
                let running = f == Fault::StartTunnel;
                if running {
                    st.handshakes_before = self.services.wg.status.borrow().handshakes;
                }
                if self
                    .target
                    .capabilities()
                    .contains(&Capability::ControlServer)
                {
                    self.tunnel_by_control(st, running, log).await?
                } else {
                    self.tunnel_from_outside(st, running, log).await?
                }
            }
            Fault::KillGateway => {
                let Some(g) = st.gateway.take() else {
                    return Ok(no_gateway());
                };
                g.kill().await;
                log.push(
                    "gateway SIGKILLed; its kill switch is whatever it left in the kernel".into(),
                );
                Outcome::Passed
            }
            Fault::StartGateway => {
                if let Some(g) = st.gateway.take() {
                    g.stop().await;
                }
                self.start_gateway(st).await;
                if st.gateway.is_some() {
                    log.push("gateway started".into());
                    Outcome::Passed
                } else {
                    let why = st
                        .unexpected_exit
                        .as_ref()
                        .map(|e| e.summary.clone())
                        .unwrap_or_default();
                    fail(why, tail(&st.gw_log, 20))
                }
            }
            Fault::ProviderDown | Fault::ProviderUp => {
                self.services.wg.set_answering(f == Fault::ProviderUp)?;
                if f == Fault::ProviderUp {
                    st.handshakes_before = self.services.wg.status.borrow().handshakes;
                }
                log.push(format!(
                    "provider {}",
                    if f == Fault::ProviderUp {
                        "answers again"
                    } else {
                        "stopped answering"
                    }
                ));
                Outcome::Passed
            }
            Fault::ProviderRefusesPorts | Fault::ProviderGrantsPorts => {
                let refuse = f == Fault::ProviderRefusesPorts;
                self.services
                    .natpmp_refuse
                    .store(refuse, std::sync::atomic::Ordering::Relaxed);
                log.push(if refuse {
                    "the provider refuses every port-forwarding request (OUT_OF_RESOURCES)".into()
                } else {
                    "the provider grants ports again".into()
                });
                Outcome::Passed
            }
            Fault::IspBlockWireguard => {
                self.lab.nft(host::ISP, ISP_BLOCK)?;
                log.push("the ISP drops UDP 51820".into());
                Outcome::Passed
            }
            Fault::IspUnblockWireguard => {
                self.lab.nft(host::ISP, ISP_UNBLOCK)?;
                st.handshakes_before = self.services.wg.status.borrow().handshakes;
                log.push("the ISP forwards UDP 51820 again".into());
                Outcome::Passed
            }
            Fault::RotateKey => self.rotate_key(st, log).await?,
            Fault::OldKeyRefused => self.old_key_refused(st, log).await?,
            Fault::ProviderNewPorts => {
                self.services
                    .natpmp_renumber
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                log.push("the provider will give new ports from its next mapping on".into());
                Outcome::Passed
            }
            Fault::RouteAroundTunnel => {
                let nl = self.lab.nl(host::GW)?;
                let nlerr = |source| LabError::Netlink {
                    host: host::GW.into(),
                    source,
                };
                nl.replace_route(
                    IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0).expect("net"),
                    Some(addr::HOME_GW_SIDE.into()),
                    None,
                )
                .await
                .map_err(nlerr)?;
                nl.replace_route(
                    IpNet::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0).expect("net"),
                    Some(addr::HOME_GW_SIDE_V6.into()),
                    None,
                )
                .await
                .map_err(nlerr)?;
                log.push(
                    "default routes (IPv4 and IPv6) now point at the home router on eth0".into(),
                );
                Outcome::Passed
            }
        })
    }

    /// For a gateway without a control server the tunnel dies from outside,
    /// as the seed's "kill the VPN": its tunnel link (the gateway host's
    /// link that is neither lo nor the underlay) is deleted. It comes back
    /// the only way such a gateway offers: the gateway is restarted.
    async fn tunnel_from_outside(
        &self,
        st: &mut RunState<'_>,
        running: bool,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        if running {
            if let Some(g) = st.gateway.take() {
                g.stop().await;
            }
            self.start_gateway(st).await;
            log.push(format!(
                "target {} has no control server: its tunnel comes back by restarting it",
                self.target.name()
            ));
            return Ok(match &st.unexpected_exit {
                Some(e) if st.gateway.is_none() => fail(e.summary.clone(), e.log_tail.clone()),
                _ => Outcome::Passed,
            });
        }
        let nl = self.lab.nl(host::GW)?;
        let nlerr = |source| LabError::Netlink {
            host: host::GW.into(),
            source,
        };
        let underlay = self
            .lab
            .topology()
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .find(|e| e.host == host::GW)
            .map(|e| e.ifname)
            .unwrap_or("eth0");
        let links = nl.link_names().await.map_err(nlerr)?;
        let tunnels: Vec<&String> = links
            .iter()
            .filter(|l| l.as_str() != "lo" && l.as_str() != underlay)
            .collect();
        if tunnels.is_empty() {
            return Ok(fail(
                format!("the gateway host has no tunnel link to take down (links: {links:?})"),
                log.join("\n"),
            ));
        }
        for t in tunnels {
            nl.del_link(t).await.map_err(nlerr)?;
            log.push(format!(
                "deleted the tunnel link {t} from outside (the gateway has no control server)"
            ));
        }
        Ok(Outcome::Passed)
    }

    /// Changes the gateway's namespace from outside, as other software on
    /// the machine might.
    pub(crate) async fn interfere(
        &self,
        st: &mut RunState<'_>,
        i: &Interference,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        if let Some(script) = &i.nft {
            self.lab.nft(host::GW, script)?;
            log.push(format!("ran nft in the gateway's namespace:\n{script}"));
        }
        if let Some(text) = &i.resolv_conf {
            std::fs::write(self.lab.resolv_conf(host::GW), text).map_err(|source| {
                LabError::Service {
                    service: "resolv.conf".into(),
                    source,
                }
            })?;
            log.push(format!(
                "replaced the gateway host's resolv.conf with:\n{text}"
            ));
        }
        if i.routes_around {
            self.fault(st, Fault::RouteAroundTunnel, log).await?;
        }
        if i.kill {
            let n = crate::lab::netns::kill_all_in(self.lab.ns(host::GW)?);
            log.push(format!(
                "SIGKILLed {n} process(es) in the gateway's namespace (as the OOM killer would)"
            ));
            // Reaped now, so the runner sees the exit after this step.
            if let Some(g) = st.gateway.as_mut() {
                let _ = g.exited().await;
            }
        }
        Ok(Outcome::Passed)
    }
}
