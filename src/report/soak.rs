//! The soak's figures (pure): packets leaked, steps failed, how fast each
//! gateway start closed its kill switch (from the gateway's own log
//! lines) and how fast traffic came back after each provider outage.

use crate::model::stats::percentile;
use crate::model::verdict::{Outcome, ScenarioResult};

/// What the soak `r` measured, `log` being its gateway's log.
pub fn figures(r: &ScenarioResult, log: &str) -> String {
    let closed = logged_micros(log.lines(), "firewall closed ", " us after start");
    let verified = logged_micros(log.lines(), "read back and verified in ", " us");
    // Starts that found their kill switch still in the kernel (after a
    // crash) only read it back; the others wrote it.
    let written = logged_micros(
        log.lines()
            .filter(|l| !l.contains(crate::gateway::firewall::FOUND_IN_PLACE)),
        "firewall closed ",
        " us after start",
    );
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

/// The microsecond figures gateway log lines state between `before` and
/// `after`, sorted.
fn logged_micros<'a>(lines: impl Iterator<Item = &'a str>, before: &str, after: &str) -> Vec<u64> {
    let mut v: Vec<u64> = lines
        .filter_map(|l| {
            let rest = l.split(before).nth(1)?;
            rest.split(after).next()?.trim().parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_and_verify_times_are_read_from_the_gateway_log() {
        let log = "x INFO leakhound_gateway: firewall closed 3940 us after start (batch 2522 us); read back and verified in 1355 us\n\
                   x INFO leakhound_gateway: firewall closed 3100 us after start (batch 2000 us); read back and verified in 1100 us\n\
                   x INFO other line\n";
        assert_eq!(
            super::logged_micros(log.lines(), "firewall closed ", " us after start"),
            [3100, 3940]
        );
        assert_eq!(
            super::logged_micros(log.lines(), "read back and verified in ", " us"),
            [1100, 1355]
        );
    }
}
