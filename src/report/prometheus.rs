//! Prometheus text exposition of a run (`--prometheus FILE`), for node
//! exporter's textfile collector: one sample per scenario and target, and
//! the run's time and duration. Written atomically (a temporary file in the
//! same directory, then a rename) so the collector never reads half a file.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::model::prom::{Kind, Text};
use crate::model::verdict::ScenarioResult;

/// The longest label value written, in bytes of the original.
pub const LABEL_CAP: usize = 256;

/// One labelled row of the metrics: a run's scenario, or an audit's check.
struct Row<'a> {
    check: &'a str,
    target: &'a str,
    /// `None` when skipped (the success sample is then absent).
    success: Option<bool>,
    waived: bool,
    skipped: bool,
    leaks: usize,
    duration: Duration,
}

/// The metrics of a run (pure): a row per scenario and target. `success`
/// is what its exit status says, `finished` when it ended, `took` how long
/// it took.
pub fn render(
    results: &[ScenarioResult],
    success: bool,
    finished: SystemTime,
    took: Duration,
) -> String {
    let rows: Vec<Row> = results
        .iter()
        .map(|r| Row {
            check: &r.name,
            target: &r.target,
            success: (!r.skipped()).then(|| r.passed()),
            waived: r.waived(),
            skipped: r.skipped(),
            leaks: r.leaks.len(),
            duration: r.duration,
        })
        .collect();
    exposition(&rows, success, finished, took)
}

/// The metrics of an audit (pure): a row per check (`target` is the
/// profile's name), with the leaks tied to the check that was running
/// (`no-leak`: all of them); `success` as the audit's exit status says (no
/// check failed, none skipped without `--allow-skip`).
pub fn render_audit(
    result: &ScenarioResult,
    success: bool,
    finished: SystemTime,
    took: Duration,
) -> String {
    use crate::model::verdict::Outcome;
    let rows: Vec<Row> = result
        .cases
        .iter()
        .map(|c| {
            let skipped = matches!(c.outcome, Outcome::Skipped { .. });
            Row {
                check: &c.name,
                target: &result.target,
                success: (!skipped).then(|| c.outcome == Outcome::Passed),
                waived: matches!(c.outcome, Outcome::Waived { .. }),
                skipped,
                leaks: if c.name == "no-leak" {
                    result.leaks.len()
                } else {
                    result.leaks.iter().filter(|l| l.step == c.name).count()
                },
                duration: c.duration,
            }
        })
        .collect();
    exposition(&rows, success, finished, took)
}

/// The text both share: the per-check families, then the run's.
fn exposition(rows: &[Row], success: bool, finished: SystemTime, took: Duration) -> String {
    // The labels' texts cleaned once, here (secrets redacted, control bytes
    // shown escaped, at most LABEL_CAP bytes); Text escapes the rest.
    let labels: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                crate::model::scrub::clean_capped(r.check, LABEL_CAP),
                crate::model::scrub::clean_capped(r.target, LABEL_CAP),
            )
        })
        .collect();
    let per = |value: &dyn Fn(&Row) -> Option<String>| {
        rows.iter()
            .zip(&labels)
            .filter_map(|(r, (check, target))| {
                value(r).map(|v| {
                    (
                        vec![("check", check.as_str()), ("target", target.as_str())],
                        v,
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    let since_epoch = finished
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Text::new()
        .family(
            "leakhound_check_success",
            Kind::Gauge,
            "Whether the check (a run's scenario, an audit's check) passed: 1 passed, 0 failed; absent when it was skipped.",
            per(&|r| r.success.map(|ok| u8::from(ok).to_string())),
        )
        .family(
            "leakhound_check_waived",
            Kind::Gauge,
            "Whether the check's failures are all waived (--waivers): 1 yes (not passed, not failing the run), 0 no.",
            per(&|r| Some(u8::from(r.waived).to_string())),
        )
        .family(
            "leakhound_check_skipped",
            Kind::Gauge,
            "Whether the check was skipped (the target or the lab cannot run it): 1 yes, 0 no.",
            per(&|r| Some(u8::from(r.skipped).to_string())),
        )
        .family(
            "leakhound_leaked_packets",
            Kind::Gauge,
            "Packets classified as leaks during the check, on every watched wire.",
            per(&|r| Some(r.leaks.to_string())),
        )
        .family(
            "leakhound_check_duration_seconds",
            Kind::Gauge,
            "How long the check took.",
            per(&|r| Some(format!("{:.3}", r.duration.as_secs_f64()))),
        )
        .single(
            "leakhound_run_success",
            Kind::Gauge,
            "Whether the run or audit passed (its exit status was 0): 1 yes, 0 no.",
            u8::from(success),
        )
        .single(
            "leakhound_last_run_timestamp_seconds",
            Kind::Gauge,
            "When the run or audit ended (Unix time).",
            format!("{since_epoch:.3}"),
        )
        .single(
            "leakhound_run_duration_seconds",
            Kind::Gauge,
            "How long the run or audit took.",
            format!("{:.3}", took.as_secs_f64()),
        )
        .finish()
}

/// Writes `text` to `file` atomically: a temporary file beside it, then a
/// rename over it (its directory is made if missing).
pub fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // Readable by the collector (NamedTempFile makes it 0600).
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::verdict::{CaseResult, Outcome};

    fn result(name: &str, outcomes: &[Outcome], leaks: usize) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            target: "builtin".into(),
            description: String::new(),
            source: format!("builtin:{name}"),
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(1500),
            cases: outcomes
                .iter()
                .map(|o| CaseResult {
                    name: "c".into(),
                    outcome: o.clone(),
                    duration: Duration::ZERO,
                    log: vec![],
                })
                .collect(),
            leaks: (0..leaks)
                .map(|_| crate::model::verdict::LeakRecord {
                    at: SystemTime::UNIX_EPOCH,
                    wire: "gw".into(),
                    step: "s".into(),
                    packet: crate::model::classify::Summary {
                        proto: crate::model::classify::Proto::Udp,
                        src: None,
                        dst: None,
                        sport: None,
                        dport: None,
                        dns_name: None,
                        note: None,
                    },
                })
                .collect(),
            frames: Default::default(),
            pcaps: vec![],
            gateway_log: Default::default(),
            handshake_after: None,
            readiness: vec![],
            traffic: Default::default(),
        }
    }

    #[test]
    fn each_scenario_is_a_sample_and_skips_are_not_successes() {
        let t = render(
            &[
                result("baseline", &[Outcome::Passed], 0),
                result("dns-leak", &[Outcome::Passed, Outcome::fail("x", "")], 3),
                result("health", &[Outcome::Skipped { reason: "r".into() }], 0),
            ],
            false,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            Duration::from_millis(33_460),
        );
        assert!(t.contains("leakhound_check_success{check=\"baseline\",target=\"builtin\"} 1\n"));
        assert!(t.contains("leakhound_check_success{check=\"dns-leak\",target=\"builtin\"} 0\n"));
        assert!(!t.contains("leakhound_check_success{check=\"health\""));
        assert!(t.contains("leakhound_check_skipped{check=\"health\",target=\"builtin\"} 1\n"));
        assert!(t.contains("leakhound_leaked_packets{check=\"dns-leak\",target=\"builtin\"} 3\n"));
        assert!(t.contains("leakhound_run_success 0\n"));
        assert!(t.contains("leakhound_last_run_timestamp_seconds 1800000000.000\n"));
        assert!(t.contains("leakhound_run_duration_seconds 33.460\n"));
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("leakhound.prom");
        write_atomically(&f, "old\n").unwrap();
        write_atomically(&f, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new\n");
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
