//! The soak scenario: many tunnel kills and gateway crashes in a row while
//! the dependents send constantly, with default routes around the tunnel
//! after every fault (so only the kill switch stands between the traffic and
//! a leak). Built as an ordinary [`Scenario`], run by the ordinary runner:
//! `leakhound soak` prints how many packets leaked across all of them.

use std::time::Duration;

use super::model::{Action, Check, Expect, Fault, Scenario, Step};
use crate::model::topology::{addr, host, wire};

/// Rounds of background traffic (each: DNS, TCP, UDP) sent during every
/// fault before it is repaired.
pub const ROUNDS_PER_FAULT: u64 = 5;

fn step(name: String, action: Action) -> Step {
    Step { name, action }
}

fn fault(name: String, f: Fault) -> Step {
    step(name, Action::Fault(f))
}

/// The step of each reconnect whose duration is the time from the provider
/// coming back to traffic flowing through the tunnel again.
pub const TRAFFIC_AGAIN: &str = "traffic flows through the VPN exit again";

/// A scenario with `tunnel_kills` tunnel stops and `crashes` gateway
/// SIGKILLs, each followed by recovery, then `reconnects` provider outages
/// (each lasting until the gateway, unhealthy, has restarted its tunnel)
/// timed from the provider's return to traffic flowing.
pub fn soak_scenario(tunnel_kills: u32, crashes: u32, reconnects: u32) -> Scenario {
    let handshake = |name: String| {
        step(
            name,
            Action::WaitHandshake {
                timeout: Duration::from_secs(15),
            },
        )
    };
    let mut steps = vec![
        handshake("the WireGuard handshake completes".into()),
        step(
            "the dependents start sending".into(),
            Action::StormStart {
                from: host::GW.into(),
            },
        ),
    ];
    let mut rounds = 0;
    let mut during = |steps: &mut Vec<Step>, what: &str| {
        rounds += ROUNDS_PER_FAULT;
        steps.push(fault(
            format!("{what}: routes around the tunnel"),
            Fault::RouteAroundTunnel,
        ));
        steps.push(step(
            format!("{what}: traffic ({rounds} rounds so far)"),
            Action::StormWait { rounds },
        ));
    };
    for i in 1..=tunnel_kills {
        let what = format!("tunnel kill {i}");
        steps.push(fault(
            format!("{what}: the tunnel stops"),
            Fault::StopTunnel,
        ));
        during(&mut steps, &what);
        steps.push(fault(
            format!("{what}: the tunnel starts"),
            Fault::StartTunnel,
        ));
        steps.push(handshake(format!("{what}: the handshake completes again")));
    }
    for i in 1..=crashes {
        let what = format!("crash {i}");
        steps.push(fault(
            format!("{what}: the gateway is SIGKILLed"),
            Fault::KillGateway,
        ));
        during(&mut steps, &what);
        steps.push(fault(
            format!("{what}: the gateway starts"),
            Fault::StartGateway,
        ));
        steps.push(handshake(format!("{what}: the handshake completes again")));
    }
    steps.push(step(
        "the dependents stop sending".into(),
        Action::StormStop,
    ));
    for i in 1..=reconnects {
        let what = format!("reconnect {i}");
        let health = |healthy: bool| Action::Health {
            healthy,
            target: std::net::SocketAddr::from(([127, 0, 0, 1], 9999)),
            timeout: Duration::from_secs(30),
        };
        // Healthy first: the health endpoint starts out unhealthy, so an
        // "unhealthy" right after a start would prove nothing.
        steps.push(step(
            format!("{what}: the gateway is healthy"),
            health(true),
        ));
        steps.push(fault(
            format!("{what}: the provider stops answering"),
            Fault::ProviderDown,
        ));
        steps.push(step(
            format!("{what}: the gateway says it is unhealthy"),
            health(false),
        ));
        steps.push(step(
            format!("{what}: the gateway restarts its tunnel (a new socket at the provider)"),
            Action::WaitTunnelRestart {
                timeout: Duration::from_secs(30),
            },
        ));
        steps.push(fault(
            format!("{what}: the provider answers again"),
            Fault::ProviderUp,
        ));
        steps.push(step(
            format!("{what}: {TRAFFIC_AGAIN}"),
            Action::WaitTraffic {
                timeout: Duration::from_secs(30),
            },
        ));
    }
    steps.push(step(
        "whoami sees the VPN exit address".into(),
        Action::Http {
            from: host::GW.into(),
            target: std::net::SocketAddr::new(addr::WHOAMI.into(), 80),
            check: Check::expect(Expect::SeenAs(addr::VPN_EXIT.into())),
        },
    ));
    Scenario {
        name: "soak".into(),
        description: format!(
            "{tunnel_kills} tunnel kills and {crashes} gateway crashes under constant traffic, with routes around the tunnel after each; {reconnects} provider outages, each timed from the provider's return to traffic"
        ),
        tags: vec!["soak".into()],
        source: "leakhound soak".into(),
        gateway_env: Default::default(),
        gateway_start: true,
        steps,
        leak_wires: vec![wire::GW.into(), wire::UPLINK.into()],
        requires: vec![],
        unfit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_is_repaired_and_awaited() {
        let s = soak_scenario(3, 2, 4);
        let count = |f: Fault| {
            s.steps
                .iter()
                .filter(|st| st.action == Action::Fault(f))
                .count()
        };
        assert_eq!(count(Fault::StopTunnel), 3);
        assert_eq!(count(Fault::StartTunnel), 3);
        assert_eq!(count(Fault::KillGateway), 2);
        assert_eq!(count(Fault::StartGateway), 2);
        assert_eq!(count(Fault::RouteAroundTunnel), 5);
        // Every provider outage is repaired and followed by a timed wait for traffic.
        assert_eq!(count(Fault::ProviderDown), 4);
        assert_eq!(count(Fault::ProviderUp), 4);
        let timed = s
            .steps
            .iter()
            .filter(|st| matches!(st.action, Action::WaitTraffic { .. }))
            .filter(|st| st.name.ends_with(TRAFFIC_AGAIN))
            .count();
        assert_eq!(timed, 4);
        let waits = s
            .steps
            .iter()
            .filter(|st| matches!(st.action, Action::WaitHandshake { .. }))
            .count();
        assert_eq!(waits, 1 + 3 + 2);
        // The traffic quota grows with every fault, so each waits for new traffic.
        let quotas: Vec<u64> = s
            .steps
            .iter()
            .filter_map(|st| match st.action {
                Action::StormWait { rounds } => Some(rounds),
                _ => None,
            })
            .collect();
        assert_eq!(quotas, vec![5, 10, 15, 20, 25]);
        assert!(matches!(
            s.steps.last().unwrap().action,
            Action::Http { .. }
        ));
    }
}
