//! The terminal display: a line per assertion as the runner emits events,
//! with a progress bar while a scenario runs, and a closing summary.

use std::io::IsTerminal;

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::model::verdict::{Event, Outcome, ScenarioResult, format_leak};

/// Consumes events until every runner has dropped its sender. Scenarios
/// running side by side (in parallel labs) each get their own bar. With
/// `quiet`, no bar and only the lines of checks that did not pass or skip
/// (a passing run prints nothing).
pub async fn display(mut rx: UnboundedReceiver<Event>, quiet: bool) {
    let bars = MultiProgress::new();
    // Keyed by (target, scenario): the same scenario may run against two
    // targets at once.
    let mut running: HashMap<(String, String), ProgressBar> = HashMap::new();
    // A bar only on a terminal; in CI logs, plain lines.
    let show_bars = !quiet && std::io::stderr().is_terminal();
    while let Some(e) = rx.recv().await {
        match e {
            Event::ScenarioStarted {
                target,
                name,
                cases,
            } => {
                if !show_bars {
                    continue;
                }
                let b = bars.add(ProgressBar::new(cases as u64));
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{pos}/{len}] {elapsed}")
                        .expect("template"),
                );
                b.set_message(name.clone());
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                running.insert((target, name), b);
            }
            Event::CaseFinished {
                target,
                scenario,
                case,
            } => {
                let shown =
                    !quiet || !matches!(case.outcome, Outcome::Passed | Outcome::Skipped { .. });
                if !shown {
                    if let Some(b) = running.get(&(target, scenario)) {
                        b.inc(1);
                    }
                    continue;
                }
                let line = match &case.outcome {
                    Outcome::Passed => format!("  ok    {scenario}: {}", case.name),
                    Outcome::Failed { message, .. } => {
                        format!("  FAIL  {scenario}: {}\n        {message}", case.name)
                    }
                    Outcome::Error { message, .. } => {
                        format!("  ERROR {scenario}: {}\n        {message}", case.name)
                    }
                    Outcome::Skipped { reason } => {
                        format!("  skip  {scenario}: {}\n        {reason}", case.name)
                    }
                    Outcome::Waived {
                        message,
                        reason,
                        expires,
                        ..
                    } => format!(
                        "  WAIVED {scenario}: {}\n        {message}\n        waived until {expires}: {reason}",
                        case.name
                    ),
                };
                // The one place a case's line is cleaned (secrets
                // redacted, escape sequences and control bytes shown
                // escaped, capped).
                let line = crate::model::scrub::clean(&line);
                match running.get(&(target, scenario)) {
                    Some(b) => {
                        let _ = bars.println(line);
                        b.inc(1);
                    }
                    None => println!("{line}"),
                }
            }
            Event::ScenarioFinished { result } => {
                if let Some(b) = running.remove(&(result.target.clone(), result.name.clone())) {
                    b.finish_and_clear();
                    bars.remove(&b);
                }
            }
        }
    }
}

/// Each scenario's wall time, slowest first (where a faster suite must
/// start looking).
pub fn slowest(times: &[(String, std::time::Duration)]) -> String {
    let mut sorted: Vec<&(String, std::time::Duration)> = times.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let width = sorted.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::from("scenario times, slowest first:\n");
    for (name, took) in sorted {
        out.push_str(&format!(
            "  {name:<width$}  {:>6.1} s\n",
            took.as_secs_f64()
        ));
    }
    whole(&out)
}

/// A whole text for the terminal, cleaned without a cap (its parts are
/// leakhound's own lines around foreign names and messages).
fn whole(t: &str) -> String {
    crate::model::scrub::clean_capped(t, usize::MAX)
}

/// The closing summary, with the time from gateway start to handshake.
pub fn summary(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let passed = results.iter().filter(|r| r.passed()).count();
    let errored = results.iter().filter(|r| r.errored()).count();
    let skipped = results
        .iter()
        .filter(|r| !r.errored() && r.skipped())
        .count();
    for r in results {
        let mark = if r.errored() {
            "ERROR"
        } else if r.passed() {
            "PASS"
        } else if r.skipped() {
            "SKIP"
        } else if r.waived() {
            "WAIVED"
        } else {
            "FAIL"
        };
        let cases_ok = r
            .cases
            .iter()
            .filter(|c| c.outcome == Outcome::Passed)
            .count();
        out.push_str(&format!(
            "{mark} {} ({}/{} assertions, {} leaks, {:.1}s)\n",
            r.name,
            cases_ok,
            r.cases.len(),
            r.leaks.len(),
            r.duration.as_secs_f64()
        ));
        if let Some(h) = r.handshake_after {
            out.push_str(&format!(
                "     gateway start to handshake: {} ms\n",
                h.as_millis()
            ));
        }
        for l in r.leaks.iter().take(5) {
            out.push_str(&format!("     leak: {}\n", format_leak(l)));
        }
        if r.leaks.len() > 5 {
            out.push_str(&format!(
                "     ... and {} more (see the report)\n",
                r.leaks.len() - 5
            ));
        }
    }
    let waived = results
        .iter()
        .filter(|r| !r.errored() && r.waived())
        .count();
    out.push_str(&format!(
        "{passed} passed, {} failed",
        results.len() - passed - errored - skipped - waived
    ));
    if waived > 0 {
        out.push_str(&format!(
            ", {waived} waived (failed, accepted until a date)"
        ));
    }
    if skipped > 0 {
        out.push_str(&format!(", {skipped} skipped (see why above)"));
    }
    if errored > 0 {
        out.push_str(&format!(", {errored} could not run (harness errors)"));
    }
    out.push('\n');
    whole(&out)
}

/// What a run made of the user's own configuration: the lab's LANs, the
/// variables the lab replaced or added (names; the added values are the
/// lab's own), what was left out and why. Never a value of the user's.
pub fn user_profile(u: &crate::profile::UserProfile) -> String {
    let mut t = format!(
        "your configuration: {}{}\n",
        u.file,
        u.service
            .as_ref()
            .map(|s| format!(", service {s}"))
            .unwrap_or_default()
    );
    let list = |label: &str, v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("  {label}: {}\n", v.join(", "))
        }
    };
    t.push_str(&list("LANs made", &u.lans));
    t.push_str(&list("dependents sharing its network", &u.dependents));
    t.push_str(&list(
        "replaced by the lab's (the lab provider cannot be yours)",
        &u.replaced,
    ));
    t.push_str(&list("left out (no meaning for the network)", &u.left_out));
    t.push_str(&list("substituted as empty (not set)", &u.unset));
    for a in &u.added {
        t.push_str(&format!("  added: {a}\n"));
    }
    for n in &u.notes {
        t.push_str(&format!("  note: {n}\n"));
    }
    whole(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scenario_times_are_listed_slowest_first() {
        let t = slowest(&[
            ("baseline".into(), Duration::from_millis(100)),
            ("lan-matrix".into(), Duration::from_millis(24_300)),
            ("reconnect".into(), Duration::from_millis(9_500)),
        ]);
        let order: Vec<&str> = t
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(order, ["lan-matrix", "reconnect", "baseline"]);
        assert!(t.contains("24.3 s"), "{t}");
    }
}
