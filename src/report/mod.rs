//! Reporters: consumers of the runner's results and events. JUnit XML for CI
//! systems ([`junit`]), a JSON summary ([`json`]), the terminal display
//! ([`terminal`]), an audit's terminal output ([`audit_text`]), what the terminal gets when a run ends ([`run_text`]), the
//! soak's figures ([`soak`]) and the table of `leakhound compare`
//! ([`compare`]). None of them runs anything.
//!
//! Every text from outside (scenario and case names, failure messages,
//! service and gateway logs quoted in them, names from compose files)
//! passes through [`crate::model::scrub::clean`] before a writer formats
//! it: registered secrets become `<redacted>`, bytes no format can carry
//! are shown escaped, and lengths are capped. The XML and HTML writers
//! take their results through [`scrubbed`]; the JSON writers clean the
//! finished JSON value; the Prometheus labels and the terminal lines are
//! cleaned where they are formatted.

pub mod audit_text;
pub mod compare;
pub mod html;
pub mod json;
pub mod jsonl;
pub mod junit;
pub mod prometheus;
pub mod provenance;
pub mod run_text;
pub mod soak;
pub mod terminal;

#[cfg(test)]
mod proptests;

use crate::model::scrub::clean;
use crate::model::verdict::{CaseResult, LeakRecord, Outcome, ScenarioResult, TrafficMark};

/// A log a gateway (a command or container target's program, or
/// leakhound's own) wrote beside the reports, with every secret the
/// harness registered replaced in place: a gateway knows only its own
/// secrets, the harness those of every file and variable it read. Any
/// other bytes stay as they were (the log is evidence).
pub fn scrub_log(path: &std::path::Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let clean = crate::model::scrub::redact_bytes(&bytes);
    if clean != bytes {
        // Whole or not at all: a temporary file beside it, renamed over it.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".scrubbing");
        std::fs::write(&tmp, &clean)?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(())
}

/// An outcome with every text through `clean`.
fn scrubbed_outcome_by(o: &Outcome, clean: &dyn Fn(&str) -> String) -> Outcome {
    match o {
        Outcome::Passed => Outcome::Passed,
        Outcome::Failed { message, detail } => Outcome::Failed {
            message: clean(message),
            detail: clean(detail),
        },
        Outcome::Error { message, detail } => Outcome::Error {
            message: clean(message),
            detail: clean(detail),
        },
        Outcome::Skipped { reason } => Outcome::Skipped {
            reason: clean(reason),
        },
        Outcome::Waived {
            message,
            detail,
            reason,
            expires,
        } => Outcome::Waived {
            message: clean(message),
            detail: clean(detail),
            reason: clean(reason),
            expires: clean(expires),
        },
    }
}

fn scrubbed_case_by(c: &CaseResult, clean: &dyn Fn(&str) -> String) -> CaseResult {
    CaseResult {
        name: clean(&c.name),
        outcome: scrubbed_outcome_by(&c.outcome, clean),
        duration: c.duration,
        log: c.log.iter().map(|l| clean(l)).collect(),
    }
}

/// A result with every text cleaned (names, descriptions, sources, cases,
/// leaks' names and notes, wires, marks, paths): what the XML and HTML
/// writers format.
pub fn scrubbed(r: &ScenarioResult) -> ScenarioResult {
    scrubbed_by(r, &clean)
}

/// [`scrubbed`] with another cleaning (the JUnit's also breaks `]]>`).
pub fn scrubbed_by(r: &ScenarioResult, clean: &dyn Fn(&str) -> String) -> ScenarioResult {
    let path = |p: &std::path::Path| std::path::PathBuf::from(clean(&p.to_string_lossy()));
    let mut traffic = r.traffic.clone();
    traffic.wires = traffic
        .wires
        .into_iter()
        .map(|(k, v)| (clean(&k), v))
        .collect();
    traffic.marks = traffic
        .marks
        .into_iter()
        .map(|m| TrafficMark {
            name: clean(&m.name),
            ..m
        })
        .collect();
    ScenarioResult {
        name: clean(&r.name),
        target: clean(&r.target),
        description: clean(&r.description),
        source: clean(&r.source),
        started: r.started,
        duration: r.duration,
        cases: r.cases.iter().map(|c| scrubbed_case_by(c, clean)).collect(),
        leaks: r
            .leaks
            .iter()
            .map(|l| {
                let mut packet = l.packet.clone();
                packet.dns_name = packet.dns_name.as_deref().map(clean);
                packet.note = packet.note.as_deref().map(clean);
                LeakRecord {
                    at: l.at,
                    wire: clean(&l.wire),
                    step: clean(&l.step),
                    packet,
                }
            })
            .collect(),
        frames: r.frames.iter().map(|(k, v)| (clean(k), *v)).collect(),
        pcaps: r.pcaps.iter().map(|p| path(p)).collect(),
        gateway_log: path(&r.gateway_log),
        handshake_after: r.handshake_after,
        readiness: r.readiness.clone(),
        traffic,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gateways_log_loses_its_secrets_and_keeps_its_other_bytes() {
        crate::model::scrub::register("canary-gateway-log-1618");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x-gateway.log");
        std::fs::write(&log, b"up: curl canary-gateway-log-1618 \xff\x00\n").unwrap();
        super::scrub_log(&log).unwrap();
        assert_eq!(
            std::fs::read(&log).unwrap(),
            b"up: curl <redacted> \xff\x00\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // No log (a scenario skipped before its gateway started): nothing.
        super::scrub_log(&dir.path().join("none.log")).unwrap();
    }
}
