//! How a run (or an audit) ends: the failures the user accepts (waivers),
//! the skip rule (a skip fails only with --fail-on-skip, unless
//! --allow-skip names it), and the verdict those and the results make,
//! which is the exit status.

use std::path::Path;

use nix::sys::signal::Signal;

use super::SuiteError;
use crate::model::verdict::{ScenarioResult, unaccepted_skips};
use crate::model::waiver::{Applied, Waiver};

/// How a run ended, as an exit status: 0 every scenario passed, 1 a
/// scenario failed (a finding), 2 the harness could not do its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    HarnessError,
    /// Stopped by this signal (the exit status is 128 + its number).
    Interrupted(Signal),
}

impl Verdict {
    /// The process's exit status for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
            Verdict::HarnessError => 2,
            Verdict::Interrupted(sig) => 128 + sig as u8,
        }
    }

    /// An audit's verdict: `failing` checks fail it, a signal that ended
    /// it is said first (what was seen is reported, the rest did not run).
    pub fn of_checks(failing: usize, interrupted_by: Option<Signal>) -> Verdict {
        match interrupted_by {
            Some(sig) => Verdict::Interrupted(sig),
            None if failing == 0 => Verdict::Passed,
            None => Verdict::Failed,
        }
    }
}

/// The skip rule, the same for `run` and `audit`: a skip never fails
/// alone; with `fail_on_skip` it does, except those `allowed` names
/// (naming one implies `fail_on_skip`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipPolicy {
    fail_on_skip: bool,
    allowed: Vec<String>,
}

impl SkipPolicy {
    pub fn new(fail_on_skip: bool, allowed: Vec<String>) -> SkipPolicy {
        SkipPolicy {
            fail_on_skip,
            allowed,
        }
    }

    /// Whether a skip can fail at all.
    pub fn fails_on_skip(&self) -> bool {
        self.fail_on_skip || !self.allowed.is_empty()
    }

    /// The skips accepted by name (scenario, `SCENARIO: CHECK`, check or
    /// its kind).
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    /// The skips that fail: (scenario, check, reason); none unless
    /// [`SkipPolicy::fails_on_skip`].
    pub fn unaccepted(&self, results: &[ScenarioResult]) -> Vec<(String, String, String)> {
        if self.fails_on_skip() {
            unaccepted_skips(results, &self.allowed)
        } else {
            Vec::new()
        }
    }
}

/// A run's verdict: interrupted or a scenario the harness could not run
/// is a harness error; otherwise it passes when every scenario is ok
/// (passed, skipped or waived), no waiver has expired (`waived`: the
/// waivers as applied, if any) and no skip fails by `skips`.
pub fn decide(
    results: &[ScenarioResult],
    waived: Option<&Applied>,
    skips: &SkipPolicy,
    interrupted: bool,
) -> Verdict {
    if interrupted || results.iter().any(|r| r.errored()) {
        Verdict::HarnessError
    } else if results.iter().all(ScenarioResult::ok)
        && waived.is_none_or(|w| w.expired.is_empty())
        && skips.unaccepted(results).is_empty()
    {
        Verdict::Passed
    } else {
        Verdict::Failed
    }
}

/// Reads and parses a waivers file (see docs/waivers.md).
pub fn load_waivers(file: &Path) -> Result<Vec<Waiver>, SuiteError> {
    let text = std::fs::read_to_string(file).map_err(|source| SuiteError::ReadWaivers {
        file: file.to_path_buf(),
        source,
    })?;
    Ok(crate::model::waiver::parse(
        &file.display().to_string(),
        &text,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::verdict::{CaseResult, Outcome};
    use std::time::{Duration, UNIX_EPOCH};

    fn case(name: &str, outcome: Outcome) -> CaseResult {
        CaseResult {
            name: name.into(),
            outcome,
            duration: Duration::ZERO,
            log: vec![],
        }
    }

    fn scenario(name: &str, cases: Vec<CaseResult>) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            target: "builtin".into(),
            description: String::new(),
            source: format!("builtin:{name}"),
            started: UNIX_EPOCH,
            duration: Duration::ZERO,
            cases,
            leaks: vec![],
            frames: Default::default(),
            pcaps: vec![],
            gateway_log: "gateway.log".into(),
            handshake_after: None,
            readiness: vec![],
            traffic: Default::default(),
        }
    }

    fn passed(name: &str) -> ScenarioResult {
        scenario(name, vec![case("ok", Outcome::Passed)])
    }

    fn failed(name: &str) -> ScenarioResult {
        scenario(
            name,
            vec![case("leak", Outcome::fail("1 packet leaked", ""))],
        )
    }

    fn skipped(name: &str) -> ScenarioResult {
        scenario(
            name,
            vec![case(
                "kdig answers",
                Outcome::Skipped {
                    reason: "kdig is not installed".into(),
                },
            )],
        )
    }

    fn errored(name: &str) -> ScenarioResult {
        scenario(name, vec![case("start", Outcome::error("no gateway"))])
    }

    fn waived(expired: &[&str]) -> Applied {
        Applied {
            waived: vec![],
            expired: expired.iter().map(|e| e.to_string()).collect(),
            stale: vec![],
        }
    }

    const ANY: SkipPolicy = SkipPolicy {
        fail_on_skip: false,
        allowed: Vec::new(),
    };

    #[test]
    fn passing_results_pass_and_a_failure_fails() {
        assert_eq!(decide(&[passed("a")], None, &ANY, false), Verdict::Passed);
        assert_eq!(
            decide(&[passed("a"), failed("b")], None, &ANY, false),
            Verdict::Failed
        );
        // Nothing ran (an empty lab build): nothing failed.
        assert_eq!(decide(&[], None, &ANY, false), Verdict::Passed);
    }

    #[test]
    fn an_error_or_an_interrupt_is_the_harness_s() {
        assert_eq!(
            decide(&[failed("a"), errored("b")], None, &ANY, false),
            Verdict::HarnessError
        );
        assert_eq!(
            decide(&[passed("a")], None, &ANY, true),
            Verdict::HarnessError
        );
    }

    #[test]
    fn a_waived_failure_passes_and_an_expired_waiver_fails() {
        let accepted = scenario(
            "b",
            vec![case(
                "leak",
                Outcome::Waived {
                    message: "1 packet leaked".into(),
                    detail: String::new(),
                    reason: "known".into(),
                    expires: "2999-01-01".into(),
                },
            )],
        );
        assert_eq!(
            decide(&[passed("a"), accepted], Some(&waived(&[])), &ANY, false),
            Verdict::Passed
        );
        assert_eq!(
            decide(&[passed("a")], Some(&waived(&[])), &ANY, false),
            Verdict::Passed
        );
        assert_eq!(
            decide(&[passed("a")], Some(&waived(&["a (line 3)"])), &ANY, false),
            Verdict::Failed
        );
    }

    #[test]
    fn a_skip_fails_only_with_fail_on_skip_and_not_when_allowed() {
        let r = [passed("a"), skipped("dns")];
        assert_eq!(decide(&r, None, &ANY, false), Verdict::Passed);
        let strict = SkipPolicy::new(true, vec![]);
        assert_eq!(decide(&r, None, &strict, false), Verdict::Failed);
        assert_eq!(strict.unaccepted(&r).len(), 1);
        // Naming one implies --fail-on-skip for the others.
        let allowed = SkipPolicy::new(false, vec!["dns".into()]);
        assert!(allowed.fails_on_skip());
        assert_eq!(decide(&r, None, &allowed, false), Verdict::Passed);
        let other = SkipPolicy::new(false, vec!["a".into()]);
        assert_eq!(decide(&r, None, &other, false), Verdict::Failed);
        assert!(ANY.unaccepted(&r).is_empty());
    }

    #[test]
    fn exit_codes_and_an_audit_s_verdict() {
        let codes: Vec<u8> = [
            Verdict::Passed,
            Verdict::Failed,
            Verdict::HarnessError,
            Verdict::Interrupted(Signal::SIGTERM),
        ]
        .into_iter()
        .map(Verdict::exit_code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 143]);
        assert_eq!(Verdict::of_checks(0, None), Verdict::Passed);
        assert_eq!(Verdict::of_checks(2, None), Verdict::Failed);
        assert_eq!(
            Verdict::of_checks(2, Some(Signal::SIGINT)),
            Verdict::Interrupted(Signal::SIGINT)
        );
    }
}
