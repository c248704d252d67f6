//! `--format json`: the run as JSON Lines on standard output, one event per
//! line, each with the schema version, for scripts that follow a run as it
//! goes: `scenario_started`, `case_finished`, `scenario_finished`, and a
//! last `run_finished` with the totals and where the reports are.

use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::model::verdict::{Event, Outcome, ScenarioResult};

/// The version of these lines' shape; it changes when a field changes
/// meaning or goes away (new fields may appear without it).
pub const SCHEMA: u32 = 1;

fn outcome(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Passed => json!({"outcome": "passed"}),
        Outcome::Failed { message, .. } => json!({"outcome": "failed", "message": message}),
        Outcome::Error { message, .. } => json!({"outcome": "error", "message": message}),
        Outcome::Skipped { reason } => json!({"outcome": "skipped", "reason": reason}),
        Outcome::Waived {
            message,
            reason,
            expires,
            ..
        } => json!({"outcome": "waived", "message": message, "reason": reason, "expires": expires}),
    }
}

/// A JSON value as one line, every string in it cleaned (secrets
/// redacted, control bytes shown escaped, lengths capped): the one place
/// each line passes through.
pub fn line(mut v: serde_json::Value) -> String {
    crate::model::scrub::clean_json(&mut v);
    v.to_string()
}

/// One event as a line (pure).
pub fn event_line(e: &Event) -> String {
    let v = match e {
        Event::ScenarioStarted {
            target,
            name,
            cases,
        } => json!({
            "schema": SCHEMA, "event": "scenario_started",
            "target": target, "scenario": name, "cases": cases,
        }),
        Event::CaseFinished {
            target,
            scenario,
            case,
        } => {
            let mut v = json!({
                "schema": SCHEMA, "event": "case_finished",
                "target": target, "scenario": scenario, "case": case.name,
                "duration_s": case.duration.as_secs_f64(),
            });
            if let (Some(m), serde_json::Value::Object(o)) =
                (v.as_object_mut(), outcome(&case.outcome))
            {
                m.extend(o);
            }
            v
        }
        Event::ScenarioFinished { result } => json!({
            "schema": SCHEMA, "event": "scenario_finished",
            "target": result.target, "scenario": result.name,
            "outcome": if result.skipped() { "skipped" } else if result.passed() { "passed" } else { "failed" },
            "leaks": result.leaks.len(),
            "duration_s": result.duration.as_secs_f64(),
        }),
    };
    line(v)
}

/// The last line: totals and where the reports are (pure).
pub fn run_finished(results: &[ScenarioResult], reports: &std::path::Path) -> String {
    let skipped = results.iter().filter(|r| r.skipped()).count();
    let failed = results
        .iter()
        .filter(|r| !r.skipped() && !r.passed())
        .count();
    line(json!({
        "schema": SCHEMA, "event": "run_finished",
        "passed": failed == 0,
        "scenarios": results.len(),
        "failed": failed,
        "skipped": skipped,
        "leaks": results.iter().map(|r| r.leaks.len()).sum::<usize>(),
        "reports": reports.display().to_string(),
    }))
}

/// Prints each event as it comes, until the run closes the channel.
pub async fn stream(mut rx: UnboundedReceiver<Event>) {
    while let Some(e) = rx.recv().await {
        println!("{}", event_line(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_object_a_line_with_the_schema() {
        let r = crate::report::junit::tests_sample();
        let lines = [
            event_line(&Event::ScenarioStarted {
                target: "builtin".into(),
                name: "baseline".into(),
                cases: 2,
            }),
            event_line(&Event::CaseFinished {
                target: "builtin".into(),
                scenario: "baseline".into(),
                case: r[0].cases[1].clone(),
            }),
            event_line(&Event::ScenarioFinished {
                result: Box::new(r[0].clone()),
            }),
            run_finished(&r, std::path::Path::new("reports/latest")),
        ];
        let v: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                assert!(!l.contains('\n'));
                serde_json::from_str(l).unwrap()
            })
            .collect();
        assert!(v.iter().all(|x| x["schema"] == 1));
        assert_eq!(v[0]["event"], "scenario_started");
        assert_eq!(v[1]["outcome"], "failed");
        assert!(
            v[1]["message"]
                .as_str()
                .unwrap()
                .starts_with("1 packet(s) leaked")
        );
        assert_eq!(v[2]["outcome"], "failed");
        assert_eq!(v[2]["leaks"], 1);
        assert_eq!(v[3]["event"], "run_finished");
        assert_eq!(
            (v[3]["passed"].as_bool(), v[3]["failed"].as_u64()),
            (Some(false), Some(1))
        );
    }
}
