//! The comparison table of `leakhound compare`: scenario x target, each
//! cell pass, FAIL (with its leak count), ERROR or skip (with what the
//! target lacks), and each target's scenario time (the sum of its
//! scenarios' wall times: the targets' scenarios run side by side, so a
//! target has no wall time of its own). Markdown, so it reads the
//! same on a terminal, in compare.md and in a CI summary.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::verdict::{Outcome, ScenarioResult};

fn cell(r: &ScenarioResult) -> String {
    if r.skipped() {
        let why = r
            .cases
            .iter()
            .find_map(|c| match &c.outcome {
                Outcome::Skipped { reason } => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let lacks = why.split(" lacks ").nth(1).unwrap_or(&why).to_string();
        format!("skip (lacks {lacks})")
    } else if r.errored() {
        "ERROR".into()
    } else if r.passed() {
        "pass".into()
    } else if r.leaks.is_empty() {
        let failed = r.failures().len();
        format!("FAIL ({failed} case(s), 0 leaks)")
    } else {
        format!("FAIL ({} leaks)", r.leaks.len())
    }
}

/// The table; `wall` is each target's scenario time (its scenarios' wall
/// times summed), in the order they ran.
pub fn render(results: &[ScenarioResult], wall: &[(String, Duration)]) -> String {
    // One line per name: a newline or a '|' in a name would break a row.
    let one = |t: &str| t.replace(['\n', '\r'], " ").replace('|', "\\|");
    let results: Vec<ScenarioResult> = results
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.name = one(&r.name);
            r.target = one(&r.target);
            for c in &mut r.cases {
                if let Outcome::Skipped { reason } = &mut c.outcome {
                    *reason = one(reason);
                }
            }
            r
        })
        .collect();
    let results = results.as_slice();
    let wall: Vec<(String, Duration)> = wall.iter().map(|(t, d)| (one(t), *d)).collect();
    let targets: Vec<&str> = wall.iter().map(|(t, _)| t.as_str()).collect();
    let mut scenarios: Vec<&str> = Vec::new();
    for r in results {
        if !scenarios.contains(&r.name.as_str()) {
            scenarios.push(&r.name);
        }
    }
    let by: BTreeMap<(&str, &str), &ScenarioResult> = results
        .iter()
        .map(|r| ((r.name.as_str(), r.target.as_str()), r))
        .collect();
    let mut out = format!("| scenario | {} |\n", targets.join(" | "));
    out.push_str(&format!("|---|{}\n", "---|".repeat(targets.len())));
    for s in &scenarios {
        let cells: Vec<String> = targets
            .iter()
            .map(|t| by.get(&(*s, *t)).map_or("-".to_string(), |r| cell(r)))
            .collect();
        out.push_str(&format!("| {s} | {} |\n", cells.join(" | ")));
    }
    let totals: Vec<String> = targets
        .iter()
        .map(|t| {
            let mine: Vec<&&ScenarioResult> = by
                .iter()
                .filter(|((_, tt), _)| tt == t)
                .map(|(_, r)| r)
                .collect();
            let pass = mine.iter().filter(|r| r.passed()).count();
            let skip = mine.iter().filter(|r| r.skipped()).count();
            let fail = mine.len() - pass - skip;
            format!("{pass} pass, {fail} fail, {skip} skip")
        })
        .collect();
    out.push_str(&format!("| **total** | {} |\n", totals.join(" | ")));
    let times: Vec<String> = wall
        .iter()
        .map(|(_, d)| format!("{:.1} s", d.as_secs_f64()))
        .collect();
    out.push_str(&format!(
        "| **scenario time** (summed) | {} |\n",
        times.join(" | ")
    ));
    // The whole table cleaned once (secrets redacted, control bytes shown
    // escaped); its names are cleaned before, so none breaks a row.
    crate::model::scrub::clean_capped(&out, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_cell_per_scenario_and_target() {
        let mut a = crate::report::junit::tests_sample();
        let mut b = a.clone();
        b[0].target = "wg-quick".into();
        b[0].cases.iter_mut().for_each(|c| {
            c.outcome = Outcome::Skipped {
                reason: "target wg-quick (command) lacks health-server".into(),
            }
        });
        a.extend(b);
        let t = render(
            &a,
            &[
                ("builtin".into(), Duration::from_secs(3)),
                ("wg-quick".into(), Duration::from_millis(1500)),
            ],
        );
        assert!(
            t.starts_with("| scenario | builtin | wg-quick |\n|---|---|---|\n"),
            "{t}"
        );
        assert!(
            t.contains("| baseline | FAIL (1 leaks) | skip (lacks health-server) |"),
            "{t}"
        );
        assert!(
            t.contains("| **total** | 0 pass, 1 fail, 0 skip | 0 pass, 0 fail, 1 skip |"),
            "{t}"
        );
        assert!(
            t.contains("| **scenario time** (summed) | 3.0 s | 1.5 s |"),
            "{t}"
        );
    }
}
