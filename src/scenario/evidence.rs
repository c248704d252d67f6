//! The rule per action for frames that must be seen: a step that passed
//! left traffic on the gateway's wire, or the capture was not watching the
//! traffic it judges. A tunnel step shows WireGuard; a probe that got an
//! answer through the tunnel shows WireGuard; one between the gateway and an
//! allowed LAN shows that LAN traffic. Steps that must get no answer (a DROP)
//! may leave nothing. The check itself is pure ([`missing_evidence`]).
//!
//! [`missing_evidence`]: crate::model::verdict::missing_evidence

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::model::{Action, Expect, Step};
use crate::model::topology::{Topology, addr, host, wire};
use crate::model::verdict::{Evidence, Sighting};

/// A host's address on its link, of `target`'s family.
fn address_of(topo: &Topology, name: &str, v6: bool) -> Option<IpAddr> {
    topo.links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .filter(|e| e.host == name)
        .flat_map(|e| e.addrs.iter())
        .map(|a| a.addr())
        .find(|a| a.is_ipv6() == v6)
}

/// What `step` (which passed; `since` is the mark before it) must have put
/// on the gateway's wire. `allowed` are the subnets the gateway reaches
/// outside the tunnel.
pub fn for_step(step: &Step, since: &str, topo: &Topology, allowed: &[IpNet]) -> Vec<Evidence> {
    let endpoint = SocketAddr::new(addr::VPN_ENDPOINT.into(), addr::VPN_ENDPOINT_PORT);
    let ev = |since: Option<&str>, what| Evidence {
        step: step.name.clone(),
        since: since.map(str::to_string),
        wire: wire::GW.to_string(),
        what,
    };
    let probe = |from: &str, target: IpAddr, answered: bool| -> Vec<Evidence> {
        if !answered {
            return Vec::new();
        }
        let gw_addr: IpAddr = if target.is_ipv6() {
            addr::GW_ETH0_V6.into()
        } else {
            addr::GW_ETH0.into()
        };
        if from == host::GW {
            if allowed.iter().any(|n| n.contains(&target)) {
                vec![ev(None, Sighting::Between(gw_addr, target))]
            } else if target.is_loopback() {
                Vec::new()
            } else {
                // Through the tunnel: the wire carries it as WireGuard.
                vec![ev(None, Sighting::WireGuard(endpoint))]
            }
        } else if target == gw_addr {
            match address_of(topo, from, target.is_ipv6()) {
                Some(a) => vec![ev(None, Sighting::Between(a, target))],
                None => Vec::new(),
            }
        } else {
            Vec::new()
        }
    };
    // "any" promises nothing: which way it went is the wires' to say.
    let answered = |e: &Expect| !e.may_go_unanswered();
    match &step.action {
        Action::WaitTraffic { .. } => vec![ev(None, Sighting::WireGuard(endpoint))],
        Action::WaitHandshake { .. } | Action::WaitTunnelRestart { .. } => {
            vec![ev(Some(since), Sighting::WireGuard(endpoint))]
        }
        Action::Http {
            from,
            target,
            check,
        }
        | Action::Udp {
            from,
            target,
            check,
            ..
        }
        | Action::EncryptedDns {
            from,
            target,
            check,
            ..
        } => probe(from, target.ip(), answered(&check.expect)),
        Action::Dns {
            from,
            server: Some(server),
            check,
            ..
        } => probe(from, server.ip(), answered(&check.expect)),
        Action::Ping {
            from,
            target,
            expect,
            ..
        } => probe(from, *target, answered(expect)),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scenario::Check;

    fn step(action: Action) -> Step {
        Step {
            name: "s".into(),
            action,
        }
    }

    fn allowed() -> Vec<IpNet> {
        vec![
            "172.20.0.0/16".parse().unwrap(),
            "172.21.0.0/16".parse().unwrap(),
        ]
    }

    #[test]
    fn each_kind_of_step_asks_for_its_frames() {
        let topo = Topology::default_profile();
        let hs = for_step(
            &step(Action::WaitHandshake {
                timeout: std::time::Duration::from_secs(1),
            }),
            "setup",
            &topo,
            &allowed(),
        );
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].since.as_deref(), Some("setup"));
        assert!(matches!(hs[0].what, Sighting::WireGuard(_)));
        // The admin LAN reaching a dependent on the gateway.
        let lan = for_step(
            &step(Action::Http {
                from: "lan-admin".into(),
                target: "172.21.0.2:8080".parse().unwrap(),
                check: Check::expect(Expect::Answer),
            }),
            "x",
            &topo,
            &allowed(),
        );
        assert_eq!(
            lan[0].what,
            Sighting::Between(
                "192.168.10.10".parse().unwrap(),
                "172.21.0.2".parse().unwrap()
            )
        );
        // The gateway reaching the homelab, an allowed subnet.
        let homelab = for_step(
            &step(Action::Http {
                from: "gw".into(),
                target: "172.20.0.10:80".parse().unwrap(),
                check: Check::expect(Expect::Answer),
            }),
            "x",
            &topo,
            &allowed(),
        );
        assert_eq!(
            homelab[0].what,
            Sighting::Between(
                "172.21.0.2".parse().unwrap(),
                "172.20.0.10".parse().unwrap()
            )
        );
        // whoami through the tunnel: WireGuard.
        let whoami = for_step(
            &step(Action::Http {
                from: "gw".into(),
                target: "192.0.2.80:80".parse().unwrap(),
                check: Check::expect(Expect::SeenAs("203.0.113.77".parse().unwrap())),
            }),
            "x",
            &topo,
            &allowed(),
        );
        assert!(matches!(whoami[0].what, Sighting::WireGuard(_)));
        // A probe that must fail may leave nothing.
        let drop = for_step(
            &step(Action::Http {
                from: "lan-other".into(),
                target: "172.21.0.2:8080".parse().unwrap(),
                check: Check::expect(Expect::Fail),
            }),
            "x",
            &topo,
            &allowed(),
        );
        assert!(drop.is_empty());
    }
}
