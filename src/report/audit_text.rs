//! What the terminal gets from an audit (pure): in text, a line per check
//! (PASS, FAIL, ERROR, SKIP, WAIVED and why), the leaked packets and a
//! summary line; in JSON Lines, a `case_finished` line per check and a
//! last `audit_finished` line with the verdict, the failing checks and
//! where the reports are. An interrupted audit says so last, in either.

use std::fmt::Display;
use std::path::Path;

use serde_json::json;

use crate::model::verdict::{Event, Outcome, ScenarioResult};
use crate::report::jsonl;

/// How many leaked packets the text lists (the rest are in the reports).
const LEAKS_SHOWN: usize = 10;

/// The audit as text: `which` names the namespace attached to, `failing`
/// the checks that fail it (with why), `out` the reports folder. Every
/// text from outside is cleaned (secrets, control bytes, lengths).
pub fn text(
    result: &ScenarioResult,
    which: impl Display,
    failing: &[(String, String)],
    out: &Path,
) -> String {
    let result = crate::report::scrubbed(result);
    let mut o = format!("audit of {} ({}):\n", result.target, which);
    for c in &result.cases {
        let (mark, why) = match &c.outcome {
            Outcome::Passed => ("PASS", c.log.first().cloned().unwrap_or_default()),
            Outcome::Failed { message, .. } => ("FAIL", message.clone()),
            Outcome::Error { message, .. } => ("ERROR", message.clone()),
            Outcome::Skipped { reason } => ("SKIP", reason.clone()),
            Outcome::Waived { message, .. } => ("WAIVED", message.clone()),
        };
        o.push_str(&format!("  {mark:<5} {:<28} {why}\n", c.name));
    }
    for l in result.leaks.iter().take(LEAKS_SHOWN) {
        o.push_str(&format!("  LEAK  during {}: {}\n", l.step, l.packet));
    }
    if result.leaks.len() > LEAKS_SHOWN {
        o.push_str(&format!(
            "  ... and {} more leaked packet(s) in junit.xml and {}\n",
            result.leaks.len() - LEAKS_SHOWN,
            out.join("outside.pcap").display()
        ));
    }
    o.push_str(&format!(
        "{}: {} check(s), {} failing, {} leaked packet(s); reports in {}\n",
        if failing.is_empty() {
            "PASSED"
        } else {
            "FAILED"
        },
        result.cases.len(),
        failing.len(),
        result.leaks.len(),
        out.display()
    ));
    o
}

/// The last JSON line's object (before cleaning).
pub fn finished(
    result: &ScenarioResult,
    failing: &[(String, String)],
    out: &Path,
) -> serde_json::Value {
    json!({
        "schema": jsonl::SCHEMA,
        "event": "audit_finished",
        "passed": failing.is_empty(),
        "failing": failing.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        "leaks": result.leaks.len(),
        "reports": out.display().to_string(),
    })
}

/// The audit as JSON Lines: a `case_finished` line per check, then
/// `audit_finished` ([`finished`]); each line cleaned and ended.
pub fn json_lines(result: &ScenarioResult, failing: &[(String, String)], out: &Path) -> String {
    let mut o = String::new();
    for c in &result.cases {
        o.push_str(&jsonl::event_line(&Event::CaseFinished {
            target: result.target.clone(),
            scenario: result.name.clone(),
            case: c.clone(),
        }));
        o.push('\n');
    }
    o.push_str(&jsonl::line(finished(result, failing, out)));
    o.push('\n');
    o
}

/// The line an audit ended by `signal` closes with.
pub fn interrupted(signal: impl Display) -> String {
    format!(
        "INTERRUPTED by {signal}: the checks after it did not run; the reports have what was seen\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ScenarioResult {
        let mut r = crate::report::junit::tests_sample().remove(0);
        r.target = "home-gateway".into();
        r
    }

    fn failing(r: &ScenarioResult) -> Vec<(String, String)> {
        r.failures()
    }

    #[test]
    fn a_line_per_check_the_leaks_and_the_summary() {
        let r = sample();
        let t = text(
            &r,
            "netns gluetun",
            &failing(&r),
            Path::new("reports/audit"),
        );
        assert_eq!(
            t,
            "audit of home-gateway (netns gluetun):\n\
             \x20 PASS  handshake                    provider saw a completed handshake\n\
             \x20 FAIL  no packet on gw is a leak    1 packet(s) leaked on gw; first: TCP 172.21.0.2:41000 -> 192.0.2.80:80\n\
             \x20 LEAK  during probe: TCP 172.21.0.2:41000 -> 192.0.2.80:80\n\
             FAILED: 2 check(s), 1 failing, 1 leaked packet(s); reports in reports/audit\n"
        );
    }

    #[test]
    fn ten_leaks_are_listed_and_the_rest_counted() {
        let mut r = sample();
        r.leaks = vec![r.leaks[0].clone(); 13];
        let t = text(&r, "self", &[], Path::new("out"));
        assert_eq!(t.matches("  LEAK  during probe").count(), 10, "{t}");
        assert!(
            t.contains("  ... and 3 more leaked packet(s) in junit.xml and out/outside.pcap\n"),
            "{t}"
        );
        assert!(
            t.ends_with("PASSED: 2 check(s), 0 failing, 13 leaked packet(s); reports in out\n")
        );
    }

    #[test]
    fn json_lines_end_with_audit_finished() {
        let r = sample();
        let lines = json_lines(&r, &failing(&r), Path::new("reports/audit"));
        let v: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["event"], "case_finished");
        assert_eq!(v[1]["outcome"], "failed");
        assert_eq!(
            v[2],
            json!({
                "schema": 1,
                "event": "audit_finished",
                "passed": false,
                "failing": ["no packet on gw is a leak"],
                "leaks": 1,
                "reports": "reports/audit",
            })
        );
        assert_eq!(
            interrupted("SIGTERM"),
            "INTERRUPTED by SIGTERM: the checks after it did not run; the reports have what was seen\n"
        );
    }
}
