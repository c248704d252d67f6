//! What the terminal gets when a run ends (pure): on standard output the
//! closing summary, the comparison table, the timings, the slowest
//! scenarios or the soak's figures, the skips that fail the run and where
//! the reports are (or, with JSON Lines, the `run_finished` line); on
//! standard error the waivers as applied and an interrupt.

use std::path::Path;
use std::time::Duration;

use crate::model::verdict::ScenarioResult;
use crate::model::waiver::Applied;
use crate::report::json::Timings;

/// A finished run, as the closing text needs it.
pub struct RunEnd<'a> {
    pub results: &'a [ScenarioResult],
    pub timings: &'a Timings,
    /// From the start to the reports written.
    pub total: Duration,
    /// Each scenario's wall time.
    pub per_scenario: &'a [(String, Duration)],
    /// The comparison table, with several targets.
    pub table: Option<&'a str>,
    /// A soak's figures (one text per result), instead of the slowest
    /// scenarios.
    pub soak: Option<&'a [String]>,
    /// With --fail-on-skip: the skips that fail the run (scenario, check,
    /// reason).
    pub failing_skips: Option<&'a [(String, String, String)]>,
    /// The waivers as applied, when there were any.
    pub waived: Option<&'a Applied>,
    pub out: &'a Path,
    pub interrupted: bool,
    /// --quiet and the run passed: nothing but a JSON Lines closing line.
    pub quiet: bool,
    /// The events went out as JSON Lines.
    pub json_lines: bool,
    /// The configuration's variables that today's Gluetun reads otherwise.
    pub findings: &'a [crate::gateway::variables::Finding],
}

/// Standard output's closing text.
pub fn stdout(e: &RunEnd) -> String {
    if e.json_lines {
        return format!("{}\n", crate::report::jsonl::run_finished(e.results, e.out));
    }
    let mut o = String::new();
    if e.quiet {
        return o;
    }
    o.push_str(&crate::report::terminal::summary(e.results));
    if let Some(t) = e.table {
        o.push_str(&format!("\n{t}"));
    }
    let t = e.timings;
    o.push_str(&format!(
        "timings: lab setup {} ms, services {} ms, scenarios {} ms, teardown {} ms, total {} ms\n",
        t.lab_setup,
        t.services,
        t.scenarios,
        t.teardown,
        e.total.as_millis()
    ));
    match e.soak {
        None if e.per_scenario.len() > 1 => {
            o.push_str(&crate::report::terminal::slowest(e.per_scenario));
        }
        None => {}
        Some(figures) => figures.iter().for_each(|f| o.push_str(f)),
    }
    for (scenario, case, reason) in e.failing_skips.unwrap_or_default() {
        o.push_str(&crate::model::scrub::clean(&format!(
            "skipped, which fails the run (--fail-on-skip): {scenario}: {case}: {reason}"
        )));
        o.push('\n');
    }
    for f in e.findings {
        o.push_str(&format!("configuration finding: {f}\n"));
    }
    o.push_str(&format!("reports in {}\n", e.out.display()));
    o
}

/// Standard error's closing text.
pub fn stderr(e: &RunEnd) -> String {
    let mut o = String::new();
    if let Some(w) = e.waived.filter(|_| !e.quiet) {
        for (target, scenario, check) in &w.waived {
            o.push_str(&format!("waived: {scenario} ({target}): {check}\n"));
        }
        for x in &w.expired {
            o.push_str(&format!("EXPIRED waiver, which fails the run: {x}\n"));
        }
        for s in &w.stale {
            o.push_str(&format!("stale waiver: {s}\n"));
        }
    }
    if e.interrupted {
        o.push_str("interrupted; the lab was removed\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end<'a>(results: &'a [ScenarioResult], timings: &'a Timings) -> RunEnd<'a> {
        RunEnd {
            results,
            timings,
            total: Duration::from_millis(4321),
            per_scenario: &[],
            table: None,
            soak: None,
            failing_skips: None,
            waived: None,
            out: Path::new("reports/latest"),
            interrupted: false,
            quiet: false,
            json_lines: false,
            findings: &[],
        }
    }

    #[test]
    fn the_summary_then_the_timings_then_where_the_reports_are() {
        let r = crate::report::junit::tests_sample();
        let t = Timings {
            lab_setup: 1,
            services: 2,
            scenarios: 3,
            teardown: 4,
        };
        let text = stdout(&end(&r, &t));
        assert!(
            text.starts_with("FAIL baseline (1/2 assertions, 1 leaks, 2.5s)\n"),
            "{text}"
        );
        assert!(text.ends_with(
            "timings: lab setup 1 ms, services 2 ms, scenarios 3 ms, teardown 4 ms, total 4321 ms\n\
             reports in reports/latest\n"
        ), "{text}");
        assert_eq!(stderr(&end(&r, &t)), "");
    }

    #[test]
    fn slowest_only_for_several_scenarios_and_never_in_a_soak() {
        let t = Timings::default();
        let times = [
            ("a".to_string(), Duration::from_secs(1)),
            ("b".to_string(), Duration::from_secs(2)),
        ];
        let mut e = end(&[], &t);
        e.per_scenario = &times[..1];
        assert!(!stdout(&e).contains("slowest first"));
        e.per_scenario = &times;
        assert!(stdout(&e).contains("scenario times, slowest first:\n  b"));
        let figures = ["soak: 0 packets leaked\n".to_string()];
        e.soak = Some(&figures);
        let text = stdout(&e);
        assert!(!text.contains("slowest first"), "{text}");
        assert!(
            text.contains("\nsoak: 0 packets leaked\nreports in"),
            "{text}"
        );
    }

    #[test]
    fn quiet_prints_nothing_but_the_json_lines_close() {
        let t = Timings::default();
        let mut e = end(&[], &t);
        let applied = Applied {
            waived: vec![("builtin".into(), "a".into(), "leak".into())],
            expired: vec![],
            stale: vec!["b (line 4)".into()],
        };
        e.waived = Some(&applied);
        assert_eq!(
            stderr(&e),
            "waived: a (builtin): leak\nstale waiver: b (line 4)\n"
        );
        e.quiet = true;
        assert_eq!(stdout(&e), "");
        assert_eq!(stderr(&e), "");
        e.interrupted = true;
        assert_eq!(stderr(&e), "interrupted; the lab was removed\n");
        e.json_lines = true;
        let line = stdout(&e);
        assert!(line.ends_with('\n') && line.lines().count() == 1, "{line}");
        assert!(line.contains("\"event\":\"run_finished\""), "{line}");
    }

    #[test]
    fn each_failing_skip_is_named() {
        let t = Timings::default();
        let skips = [(
            "dns".to_string(),
            "kdig answers".to_string(),
            "kdig is not installed".to_string(),
        )];
        let mut e = end(&[], &t);
        e.failing_skips = Some(&skips);
        assert!(stdout(&e).contains(
            "skipped, which fails the run (--fail-on-skip): dns: kdig answers: kdig is not installed\nreports in"
        ));
    }
}
