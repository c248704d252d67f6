//! The faults done to the lab or the gateway (the tunnel stopped, the
//! gateway killed, the provider silent, the ISP blocking WireGuard, the
//! routes bent around the tunnel, ...) and interference with the gateway's
//! namespace from outside, as other software on the machine might.

use std::net::IpAddr;

use ipnet::IpNet;

use super::lifecycle::{ISP_BLOCK, ISP_UNBLOCK, no_gateway};
use super::report::{StepLog, StepResult};
use crate::lab::INJECTED_TABLE;
use crate::lab::LabError;
use crate::model::scenario::{Capability, Fault, Interference, MetricPlan, RouteInjection};
use crate::model::topology::{addr, host};
use crate::scenario::runner::{RunState, Runner};

/// How long a rogue router advertisement's address may take to appear on
/// the gateway (the kernel takes it as the advertisement arrives; DAD is off
/// in the lab).
const RA_TAKEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

impl Runner<'_> {
    /// Does fault `f` to the lab or the gateway.
    pub(crate) async fn fault(&self, st: &mut RunState<'_>, f: Fault) -> StepResult {
        let mut log = StepLog::new();
        match f {
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
                    self.tunnel_by_control(st, running).await
                } else {
                    self.tunnel_from_outside(st, running).await
                }
            }
            Fault::KillGateway => Ok(self.kill_gateway(st).await),
            Fault::StartGateway => Ok(self.restart_gateway(st).await),
            Fault::ProviderDown | Fault::ProviderUp => {
                log.harness(self.services.wg.set_answering(f == Fault::ProviderUp))?;
                if f == Fault::ProviderUp {
                    st.handshakes_before = self.services.wg.status.borrow().handshakes;
                }
                log.note(format!(
                    "provider {}",
                    if f == Fault::ProviderUp {
                        "answers again"
                    } else {
                        "stopped answering"
                    }
                ));
                Ok(log.pass())
            }
            Fault::ProviderRefusesPorts | Fault::ProviderGrantsPorts => {
                let refuse = f == Fault::ProviderRefusesPorts;
                self.services
                    .natpmp_refuse
                    .store(refuse, std::sync::atomic::Ordering::Relaxed);
                log.note(if refuse {
                    "the provider refuses every port-forwarding request (OUT_OF_RESOURCES)"
                } else {
                    "the provider grants ports again"
                });
                Ok(log.pass())
            }
            Fault::IspBlockWireguard => {
                log.harness(self.lab.nft(host::ISP, ISP_BLOCK))?;
                log.note("the ISP drops UDP 51820");
                Ok(log.pass())
            }
            Fault::IspUnblockWireguard => {
                log.harness(self.lab.nft(host::ISP, ISP_UNBLOCK))?;
                st.handshakes_before = self.services.wg.status.borrow().handshakes;
                log.note("the ISP forwards UDP 51820 again");
                Ok(log.pass())
            }
            Fault::RotateKey => self.rotate_key(st).await,
            Fault::OldKeyRefused => self.old_key_refused(st).await,
            Fault::ProviderNewPorts => {
                self.services
                    .natpmp_renumber
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                log.note("the provider will give new ports from its next mapping on");
                Ok(log.pass())
            }
            Fault::RouteAroundTunnel => self.route_around_tunnel().await,
        }
    }

    /// Routes more specific than any default route (0.0.0.0/1, 128.0.0.0/1,
    /// ::/1, 8000::/1) via the home router on the gateway's underlay, the
    /// tunnel left as it is: what TunnelVision's DHCP option 121 pushes.
    async fn split_routes_around_tunnel(&self) -> StepResult {
        self.routes_via_home(
            &["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"],
            "0.0.0.0/1, 128.0.0.0/1, ::/1 and 8000::/1 now point at the home router on eth0 (the tunnel's routes untouched)",
        )
        .await
    }

    /// A policy rule at priority 1, before any rule a gateway adds (the
    /// kernel's `lookup local` stays first), sends everything to a table of
    /// its own whose default routes point at the home router: TunnelVision
    /// against a gateway that routes by policy rules.
    fn rule_around_tunnel(&self) -> StepResult {
        let mut log = StepLog::new();
        for (flag, via) in [
            ("-4", IpAddr::from(addr::HOME_GW_SIDE)),
            ("-6", IpAddr::from(addr::HOME_GW_SIDE_V6)),
        ] {
            let batch = format!(
                "route replace default via {via} table {INJECTED_TABLE}\n\
                 rule add priority 1 lookup {INJECTED_TABLE}\n"
            );
            log.harness(self.lab.ip_batch(host::GW, &[flag], &batch))?;
        }
        log.note(format!(
            "a policy rule at priority 1 now sends everything (IPv4 and IPv6) to table {INJECTED_TABLE}: default routes via the home router on eth0 (the tunnel's routes and rules untouched)"
        ));
        Ok(log.pass())
    }

    /// A default route of each family via the home router, ahead of the
    /// main table's others: a lower metric than any there, or at the lowest
    /// metric the kernel takes, put before the others (the lookup tries
    /// the first).
    async fn metric_around_tunnel(&self) -> StepResult {
        let mut log = StepLog::new();
        let nl = log.harness(self.lab.nl(host::GW))?;
        for (v6, flag, via) in [
            (false, "-4", IpAddr::from(addr::HOME_GW_SIDE)),
            (true, "-6", IpAddr::from(addr::HOME_GW_SIDE_V6)),
        ] {
            let routes =
                log.harness(
                    nl.default_routes(v6)
                        .await
                        .map_err(|source| LabError::Netlink {
                            host: host::GW.into(),
                            source,
                        }),
                )?;
            let metrics: Vec<u32> = routes.iter().map(|(m, _)| *m).collect();
            let family = if v6 { 6 } else { 4 };
            let (verb, metric, how) = match MetricPlan::for_routes(&routes, via, v6) {
                MetricPlan::Already(m) => {
                    log.note(format!(
                        "IPv{family}: the main table's default route at metric {m} already goes via the home router ({via}): nothing to add"
                    ));
                    continue;
                }
                MetricPlan::Add(m) => ("add", m, format!("metric {m}: there was none")),
                MetricPlan::Below(m) => (
                    "add",
                    m,
                    format!("metric {m}, below the lowest there ({})", m + 1),
                ),
                MetricPlan::Ahead(m) => (
                    "prepend",
                    m,
                    format!("metric {m}, the lowest there already: put ahead of the others"),
                ),
            };
            log.harness(self.lab.ip_batch(
                host::GW,
                &[flag],
                &format!("route {verb} default via {via} metric {metric}\n"),
            ))?;
            log.note(format!(
                "IPv{family}: a default route via the home router ({via}) on eth0 at {how} (the main table's default routes had metrics {metrics:?})"
            ));
        }
        Ok(log.pass())
    }

    /// The gateway's underlay: its end of the link to the home router.
    fn gw_underlay(&self) -> &'static str {
        self.lab
            .topology()
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .find(|e| e.host == host::GW)
            .map(|e| e.ifname)
            .unwrap_or("eth0")
    }

    /// The gateway's LAN turns IPv4-only: the global IPv6 addresses on its
    /// underlay and the IPv6 default routes go (the link-local address
    /// stays, as on any IPv4-only LAN).
    fn ipv4_only_lan(&self) -> StepResult {
        let mut log = StepLog::new();
        let dev = self.gw_underlay();
        log.harness(self.lab.ip_batch(
            host::GW,
            &["-6"],
            &format!("addr flush dev {dev} scope global\nroute flush table main exact ::/0\n"),
        ))?;
        log.note(format!(
            "the gateway's LAN is IPv4-only now: no global IPv6 address on {dev}, no IPv6 default route"
        ));
        Ok(log.pass())
    }

    /// A rogue router on the gateway's LAN: the home router's namespace
    /// sends a router advertisement (itself as default router,
    /// [`addr::ROGUE_RA_PREFIX`]/64 for SLAAC) to all nodes on the
    /// gateway's link; then waits (up to [`RA_TAKEN_WITHIN`]) for the
    /// gateway to take an address from it, or notes that it did not.
    async fn rogue_ra(&self) -> StepResult {
        use crate::model::ra;
        let mut log = StepLog::new();
        let home_if = log.harness(
            self.lab
                .topology()
                .links
                .iter()
                .find_map(|l| match (l.a.host, l.b.host) {
                    (host::HOME, host::GW) => Some(l.a.ifname),
                    (host::GW, host::HOME) => Some(l.b.ifname),
                    _ => None,
                })
                .ok_or_else(|| LabError::NoSuchHost(host::HOME.into())),
        )?;
        let advert = ra::Advert {
            prefix: addr::ROGUE_RA_PREFIX,
            router_lifetime: 1800,
            valid: 86400,
            preferred: 14400,
        };
        let bytes = ra::encode(&advert);
        let ns = log.harness(self.lab.ns(host::HOME))?;
        let sent = ns.run(move || -> std::io::Result<()> {
            let idx = nix::net::if_::if_nametoindex(home_if).map_err(std::io::Error::from)?;
            let sock = crate::rawsock::raw_socket(true, socket2::Protocol::ICMPV6)?;
            sock.set_multicast_hops_v6(ra::HOP_LIMIT)?;
            sock.set_unicast_hops_v6(ra::HOP_LIMIT)?;
            sock.set_multicast_if_v6(idx)?;
            sock.bind_device(Some(home_if.as_bytes()))?;
            let all_nodes = std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                0,
                0,
                idx,
            );
            sock.send_to(&bytes, &all_nodes.into())?;
            Ok(())
        });
        let lab_err = |e: Box<dyn std::error::Error + Send + Sync>| LabError::Service {
            service: "rogue-ra".into(),
            source: std::io::Error::other(e),
        };
        log.harness(
            sent.map_err(|e| lab_err(e.into()))
                .and_then(|r| r.map_err(|e| lab_err(e.into()))),
        )?;
        log.note(format!(
            "a rogue router on the gateway's LAN ({home_if} in the home router's namespace) advertised itself as default router for {} s and {}/64 for SLAAC",
            advert.router_lifetime,
            advert.prefix
        ));
        let dev = self.gw_underlay();
        let nl = log.harness(self.lab.nl(host::GW))?;
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
        let taken = loop {
            tick.tick().await;
            let addrs = log.harness(nl.addrs(dev).await.map_err(|source| LabError::Netlink {
                host: host::GW.into(),
                source,
            }))?;
            if let Some(a) = addrs.iter().find_map(|n| match n.addr() {
                IpAddr::V6(a) if ra::in_prefix(advert.prefix, a) => Some(a),
                _ => None,
            }) {
                break Some(a);
            }
            if started.elapsed() >= RA_TAKEN_WITHIN {
                break None;
            }
        };
        match taken {
            Some(a) => log.note(format!(
                "the gateway took {a} on {dev} from the advertisement ({} ms after it)",
                started.elapsed().as_millis()
            )),
            None => {
                let gw = log.harness(self.lab.ns(host::GW))?;
                let key = format!("/proc/sys/net/ipv6/conf/{dev}/accept_ra");
                let accept_ra = gw
                    .run(move || std::fs::read_to_string(key))
                    .ok()
                    .and_then(Result::ok)
                    .map_or_else(|| "unreadable".to_string(), |v| v.trim().to_string());
                log.note(format!(
                    "the gateway took no address from the advertisement within {} s (accept_ra on {dev}: {accept_ra})",
                    RA_TAKEN_WITHIN.as_secs()
                ));
            }
        }
        Ok(log.pass())
    }

    /// The gateway host's default routes (IPv4 and IPv6) point at the home
    /// router on its underlay instead of the tunnel.
    async fn route_around_tunnel(&self) -> StepResult {
        self.routes_via_home(
            &["0.0.0.0/0", "::/0"],
            "default routes (IPv4 and IPv6) now point at the home router on eth0",
        )
        .await
    }

    /// Each of `nets` via the home router's address of its family on the
    /// gateway's underlay (replacing a route there is one).
    async fn routes_via_home(&self, nets: &[&str], done: &str) -> StepResult {
        let mut log = StepLog::new();
        let nl = log.harness(self.lab.nl(host::GW))?;
        for net in nets {
            let net: IpNet = net.parse().expect("literal");
            let via: IpAddr = if net.addr().is_ipv4() {
                addr::HOME_GW_SIDE.into()
            } else {
                addr::HOME_GW_SIDE_V6.into()
            };
            log.harness(
                nl.replace_route(net, Some(via), None)
                    .await
                    .map_err(|source| LabError::Netlink {
                        host: host::GW.into(),
                        source,
                    }),
            )?;
        }
        log.note(done);
        Ok(log.pass())
    }

    /// For a gateway without a control server the tunnel dies from outside,
    /// as the seed's "kill the VPN": its tunnel link (the gateway host's
    /// link that is neither lo nor the underlay) is deleted. It comes back
    /// the only way such a gateway offers: the gateway is restarted.
    async fn tunnel_from_outside(&self, st: &mut RunState<'_>, running: bool) -> StepResult {
        let mut log = StepLog::new();
        if running {
            if let Some(g) = st.gateway.take() {
                g.stop().await;
            }
            self.start_gateway(st).await;
            log.note(format!(
                "target {} has no control server: its tunnel comes back by restarting it",
                self.target.name()
            ));
            return Ok(match &st.unexpected_exit {
                Some(e) if st.gateway.is_none() => {
                    log.fail_with(e.cause.to_string(), e.log_tail.clone())
                }
                _ => log.pass(),
            });
        }
        let nl = log.harness(self.lab.nl(host::GW))?;
        let nlerr = |source| LabError::Netlink {
            host: host::GW.into(),
            source,
        };
        let underlay = self.gw_underlay();
        let links = log.harness(nl.link_names().await.map_err(nlerr))?;
        let tunnels: Vec<&String> = links
            .iter()
            .filter(|l| l.as_str() != "lo" && l.as_str() != underlay)
            .collect();
        if tunnels.is_empty() {
            return Ok(log.fail(format!(
                "the gateway host has no tunnel link to take down (links: {links:?})"
            )));
        }
        for t in tunnels {
            log.harness(nl.del_link(t).await.map_err(nlerr))?;
            log.note(format!(
                "deleted the tunnel link {t} from outside (the gateway has no control server)"
            ));
        }
        Ok(log.pass())
    }

    /// Changes the gateway's namespace from outside, as other software on
    /// the machine might.
    pub(crate) async fn interfere(&self, st: &mut RunState<'_>, i: &Interference) -> StepResult {
        let mut log = StepLog::new();
        if let Some(script) = &i.nft {
            log.harness(self.lab.nft(host::GW, script))?;
            log.note(format!("ran nft in the gateway's namespace:\n{script}"));
        }
        if let Some(text) = &i.resolv_conf {
            log.harness(
                std::fs::write(self.lab.resolv_conf(host::GW), text).map_err(|source| {
                    LabError::Service {
                        service: "resolv.conf".into(),
                        source,
                    }
                }),
            )?;
            log.note(format!(
                "replaced the gateway host's resolv.conf with:\n{text}"
            ));
        }
        match i.routes {
            None => {}
            Some(RouteInjection::Around) => {
                log.include(self.route_around_tunnel().await)?;
            }
            Some(RouteInjection::Split) => {
                log.include(self.split_routes_around_tunnel().await)?;
            }
            Some(RouteInjection::Rule) => {
                log.include(self.rule_around_tunnel())?;
            }
            Some(RouteInjection::LowerMetric) => {
                log.include(self.metric_around_tunnel().await)?;
            }
        }
        if i.ipv4_only_lan {
            log.include(self.ipv4_only_lan())?;
        }
        if i.rogue_ra {
            log.include(self.rogue_ra().await)?;
        }
        if i.kill {
            let ns = log.harness(self.lab.ns(host::GW))?;
            let n = crate::lab::netns::kill_all_in(ns);
            log.note(format!(
                "SIGKILLed {n} process(es) in the gateway's namespace (as the OOM killer would)"
            ));
            // Reaped now, so the runner sees the exit after this step.
            if let Some(g) = st.gateway.as_mut() {
                let _ = g.exited().await;
            }
        }
        Ok(log.pass())
    }
}
