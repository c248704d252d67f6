//! The leak fuzzer's step: a seeded spray ([`crate::model::spray`]) to
//! every class of lab address, written from a lab host's namespace
//! ([`crate::spray`]). The step only sends; the judge finds the spray's
//! frames in the capture when the scenario ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::report::{StepLog, StepResult, lab_err};
use crate::model::scenario::FuzzSpec;
use crate::model::spray::{AddrClass, Budget, Spray, SprayTargets, step_seed};
use crate::model::topology::addr;
use crate::probe;
use crate::scenario::runner::{RunState, Runner, SprayRun};

impl Runner<'_> {
    /// Sprays from `spec.from` and remembers the spray for the judge.
    pub(crate) async fn fuzz_step(&self, st: &mut RunState<'_>, spec: &FuzzSpec) -> StepResult {
        let mut log = StepLog::new();
        let seed = step_seed(self.fuzz.seed, &st.scn.name, &st.step);
        let spray = Spray::generate(
            seed,
            [&probe::nonce(), &probe::nonce()],
            &self.spray_targets(),
            Budget {
                packets: spec.packets,
                root: spec.root,
            },
        );
        log.note(format!(
            "seed {seed:#018x} (the run's --seed {}): {} packets, {} from the root side, at most {:?}",
            self.fuzz.seed, spec.packets, spec.root, spec.time
        ));
        let ns = log.harness(self.lab.ns(&spec.from))?;
        let ns = log.harness(ns.try_clone())?;
        let (time, to_send) = (spec.time, spray.clone());
        let sent =
            tokio::task::spawn_blocking(move || crate::spray::send(&ns, &to_send, "eth0", time))
                .await
                .map_err(|e| log.error(lab_err("fuzz", e)))?;
        let sent = log.harness(sent)?;
        let sent = log.harness(sent.map_err(|e| lab_err("fuzz", e)))?;
        log.note(sent.summary());
        log.note("every frame it left is judged with the capture when the scenario ends");
        st.sprays.push(SprayRun {
            step: st.step.clone(),
            spray,
        });
        Ok(log.pass())
    }

    /// Where the spray may go: the lab's own addresses, each with its
    /// class.
    fn spray_targets(&self) -> SprayTargets {
        use AddrClass::*;
        let v4 = |a: Ipv4Addr| IpAddr::V4(a);
        let v6 = |a: Ipv6Addr| IpAddr::V6(a);
        let mut addrs = vec![
            (Public, v4(addr::WHOAMI)),
            (Public, v4(addr::ISP_DNS)),
            (Public, v4(addr::DOH)),
            (Public, v4(addr::ISP_HOME_SIDE)),
            (Public, v6(addr::WHOAMI_V6)),
            (Public, v6(addr::ISP_HOME_SIDE_V6)),
            (Endpoint, v4(addr::VPN_ENDPOINT)),
            (TunnelPeer, v4(addr::TUNNEL_SERVER)),
            (TunnelPeer, v6(addr::TUNNEL_SERVER_V6)),
            (AllowedLan, v4(addr::HOME_GW_SIDE)),
            (AllowedLan, v6(addr::HOME_GW_SIDE_V6)),
            (Multicast, v4(Ipv4Addr::new(224, 0, 0, 251))),
            (Multicast, v4(Ipv4Addr::new(239, 255, 255, 250))),
            (Multicast, v6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb))),
            (Multicast, v6(Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 1, 3))),
            (Broadcast, v4(Ipv4Addr::BROADCAST)),
            (LinkLocal, v4(Ipv4Addr::new(169, 254, 1, 1))),
            (LinkLocal, v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))),
            (Mapped, v6(addr::WHOAMI.to_ipv6_mapped())),
            (Mapped, v6(addr::ISP_DNS.to_ipv6_mapped())),
        ];
        // The policy's own subnets (the gateway's link, the outbound
        // subnets): a host inside each, and the link's broadcast.
        for net in &self.profile.allowed {
            if let Some(h) = net.hosts().nth(9) {
                addrs.push((AllowedLan, h));
            }
            if let ipnet::IpNet::V4(n) = net {
                addrs.push((Broadcast, v4(n.broadcast())));
            }
        }
        for lan in [addr::LAN_OTHER, addr::HOMELAB, Ipv4Addr::new(10, 99, 0, 10)] {
            if !self.profile.allowed.iter().any(|n| n.contains(&v4(lan))) {
                addrs.push((DeniedLan, v4(lan)));
            }
        }
        SprayTargets {
            addrs,
            endpoint_port: addr::VPN_ENDPOINT_PORT,
        }
    }
}
