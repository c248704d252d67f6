//! The terminal display: a line per assertion as the runner emits events,
//! with a progress bar while a scenario runs, and a closing summary.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::model::verdict::{Event, Outcome, ScenarioResult, format_leak};

/// Consumes events until the runner drops its sender.
pub async fn display(mut rx: UnboundedReceiver<Event>, quiet: bool) {
    let mut bar: Option<ProgressBar> = None;
    while let Some(e) = rx.recv().await {
        match e {
            Event::ScenarioStarted { name, cases } => {
                // A bar only on a terminal; in CI logs, plain lines.
                if quiet || !std::io::stderr().is_terminal() {
                    continue;
                }
                let b = ProgressBar::new(cases as u64);
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{pos}/{len}] {elapsed}")
                        .expect("template"),
                );
                b.set_message(name);
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                bar = Some(b);
            }
            Event::CaseFinished { scenario, case } => {
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
                };
                match &bar {
                    Some(b) => {
                        b.println(line);
                        b.inc(1);
                    }
                    None => println!("{line}"),
                }
            }
            Event::ScenarioFinished { .. } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

/// The closing summary, with the time from gateway start to handshake.
pub fn summary(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let passed = results.iter().filter(|r| r.passed()).count();
    let errored = results.iter().filter(|r| r.errored()).count();
    for r in results {
        let mark = if r.errored() {
            "ERROR"
        } else if r.passed() {
            "PASS"
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
    out.push_str(&format!(
        "{passed} passed, {} failed",
        results.len() - passed - errored
    ));
    if errored > 0 {
        out.push_str(&format!(", {errored} could not run (harness errors)"));
    }
    out.push('\n');
    out
}
