//! The soak's figures (pure): packets leaked, steps failed, how fast each
//! gateway start closed its kill switch (from the gateway's own readiness
//! events) and how fast traffic came back after each provider outage.

use crate::model::stats::percentile;
use crate::model::verdict::{Outcome, ScenarioResult};
use crate::target::ReadinessEvent;

/// What the soak `r` measured.
pub fn figures(r: &ScenarioResult) -> String {
    let k = kill_switch_times(&r.readiness);
    let (closed, verified, written) = (k.closed, k.verified, k.written);
    let wpct = |p: usize| percentile(&written, p).unwrap_or(0);
    let pct = |p: usize| percentile(&closed, p).unwrap_or(0);
    let vpct = |p: usize| percentile(&verified, p).unwrap_or(0);
    let mut again: Vec<f64> = r
        .cases
        .iter()
        .filter(|c| c.name.ends_with(crate::scenario::soak::TRAFFIC_AGAIN))
        .filter(|c| c.outcome == Outcome::Passed)
        .map(|c| c.duration.as_secs_f64() * 1000.0)
        .collect();
    again.sort_by(f64::total_cmp);
    let q = |p: usize| percentile(&again, p).unwrap_or(0.0);
    let reconnects = if again.is_empty() {
        String::new()
    } else {
        format!(
            "provider back -> traffic through the VPN exit ({} reconnects): min {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            again.len(),
            q(0),
            q(50),
            q(90),
            q(99),
            q(100)
        )
    };
    let steps_failed = r
        .cases
        .iter()
        .filter(|c| c.outcome != Outcome::Passed)
        .count();
    format!(
        "soak: {} packets leaked (gw + uplink), {} of {} steps failed, {:.1}s\n\
         kill switch closed after gateway start ({} starts): min {} us, median {} us, p90 {} us, max {} us\n\
         of them {} found it in place from before a crash (read back, not rewritten); the {} that wrote it: median {} us, p90 {} us\n\
         its read-back verification after that ({} starts): median {} us, p90 {} us\n{}",
        r.leaks.len(),
        steps_failed,
        r.cases.len(),
        r.duration.as_secs_f64(),
        closed.len(),
        pct(0),
        pct(50),
        pct(90),
        pct(100),
        closed.len() - written.len(),
        written.len(),
        wpct(50),
        wpct(90),
        verified.len(),
        vpct(50),
        vpct(90),
        reconnects,
    )
}

/// The kill switch's figures over a soak's gateway starts, each sorted
/// (microseconds).
#[derive(Debug, Default, PartialEq)]
struct KillSwitchTimes {
    /// Start to closed, every start.
    closed: Vec<u64>,
    /// The read-back that verified it, every start.
    verified: Vec<u64>,
    /// Start to closed, the starts that wrote the rules (the others found
    /// them still in the kernel after a crash and only read them back).
    written: Vec<u64>,
}

fn kill_switch_times(events: &[ReadinessEvent]) -> KillSwitchTimes {
    let mut t = KillSwitchTimes::default();
    for e in events {
        if let ReadinessEvent::KillSwitchClosed {
            since_start_us,
            batch_us,
            verified_us,
        } = e
        {
            t.closed.push(*since_start_us);
            t.verified.push(*verified_us);
            if batch_us.is_some() {
                t.written.push(*since_start_us);
            }
        }
    }
    t.closed.sort_unstable();
    t.verified.sort_unstable();
    t.written.sort_unstable();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_and_verify_times_are_read_from_the_gateways_events() {
        let closed = |since_start_us, batch_us, verified_us| ReadinessEvent::KillSwitchClosed {
            since_start_us,
            batch_us,
            verified_us,
        };
        let events = [
            closed(3940, Some(2522), 1355),
            ReadinessEvent::TunnelUp {
                since_start_us: 9000,
            },
            closed(3100, Some(2000), 1100),
            // Found in place after a crash: read back, not rewritten.
            closed(900, None, 800),
        ];
        assert_eq!(
            kill_switch_times(&events),
            KillSwitchTimes {
                closed: vec![900, 3100, 3940],
                verified: vec![800, 1100, 1355],
                written: vec![3100, 3940],
            }
        );
    }
}
