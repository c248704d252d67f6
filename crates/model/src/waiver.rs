//! Waivers (`run --waivers FILE`): a reviewed file of failures that are
//! known and accepted for a while, each with a reason and an expiry date.
//! A waived failure is shown as waived (never as passed) and does not fail
//! the run; a waiver past its date fails the run (the failure it covered
//! counts again, and so does the waiver itself, so it gets looked at); a
//! waiver that matches no failure any more is reported stale, to be
//! removed. Pure: the file's text and `now` in, results changed in place
//! and a report out.
//!
//! ```toml
//! [[waiver]]
//! scenario = "ipv6-leak"                  # required
//! check = "no packet on gw is a leak"     # optional: every failed check
//! target = "reference"                    # optional: every target
//! reason = "upstream bug #123, fixed in 3.41"
//! expires = 2027-01-31                    # through the end of that day, UTC
//! ```

use std::time::SystemTime;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::located::{Doc, FileError};
use crate::verdict::{Outcome, ScenarioResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Waiver {
    pub scenario: String,
    pub check: Option<String>,
    pub target: Option<String>,
    pub reason: String,
    /// As written (YYYY-MM-DD).
    pub expires: String,
    /// The end of that day, UTC.
    pub until: SystemTime,
    /// Where it is written, for messages.
    pub line: usize,
}

impl Waiver {
    /// How it is named in messages.
    pub fn label(&self) -> String {
        let mut s = format!("line {}: {}", self.line, self.scenario);
        if let Some(c) = &self.check {
            s.push_str(&format!(" / {c:?}"));
        }
        if let Some(t) = &self.target {
            s.push_str(&format!(" on {t}"));
        }
        s
    }

    fn matches(&self, r: &ScenarioResult, check: &str) -> bool {
        self.scenario == r.name
            && self.target.as_ref().is_none_or(|t| *t == r.target)
            && self.check.as_ref().is_none_or(|c| c == check)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    waiver: Vec<Spanned<RawWaiver>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    scenario: String,
    check: Option<String>,
    target: Option<String>,
    reason: Spanned<String>,
    expires: Spanned<toml::value::Datetime>,
}

/// Reads a waivers file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Waiver>, FileError> {
    let doc = Doc { file, text };
    let at = |offset: usize, message: String| doc.at(offset, message);
    let raw: RawFile = toml::from_str(text).map_err(|e| doc.de(&e, 0, ""))?;
    raw.waiver
        .into_iter()
        .map(|w| {
            let line = crate::located::line_col(text, w.span().start).0;
            let w = w.into_inner();
            if w.reason.get_ref().trim().is_empty() {
                return Err(at(w.reason.span().start, "reason: say why".into()));
            }
            let d = w.expires.get_ref();
            let (Some(date), None) = (d.date, d.time) else {
                return Err(at(
                    w.expires.span().start,
                    "expires: a date (YYYY-MM-DD), without a time".into(),
                ));
            };
            let until = humantime::parse_rfc3339(&format!("{date}T23:59:59Z"))
                .map_err(|e| at(w.expires.span().start, format!("expires: {e}")))?;
            Ok(Waiver {
                scenario: w.scenario,
                check: w.check,
                target: w.target,
                reason: w.reason.into_inner(),
                expires: date.to_string(),
                until,
                line,
            })
        })
        .collect()
}

/// What the waivers did to a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Applied {
    /// Failed checks now shown as waived: (target, scenario, check).
    pub waived: Vec<(String, String, String)>,
    /// Waivers past their date (they fail the run).
    pub expired: Vec<String>,
    /// Waivers that matched no failure.
    pub stale: Vec<String>,
}

/// Applies the waivers to the results as of `now`: each failed check a
/// valid waiver covers becomes [`Outcome::Waived`]; expired waivers cover
/// nothing and are listed; waivers that covered nothing are stale.
pub fn apply(waivers: &[Waiver], results: &mut [ScenarioResult], now: SystemTime) -> Applied {
    let mut applied = Applied::default();
    let mut used = vec![false; waivers.len()];
    for r in results.iter_mut() {
        for i in 0..r.cases.len() {
            let Outcome::Failed { message, detail } = &r.cases[i].outcome else {
                continue;
            };
            let check = r.cases[i].name.clone();
            let Some((wi, w)) = waivers
                .iter()
                .enumerate()
                .find(|(_, w)| w.matches(r, &check))
            else {
                continue;
            };
            used[wi] = true;
            if now > w.until {
                continue;
            }
            r.cases[i].outcome = Outcome::Waived {
                message: message.clone(),
                detail: detail.clone(),
                reason: w.reason.clone(),
                expires: w.expires.clone(),
            };
            applied
                .waived
                .push((r.target.clone(), r.name.clone(), check));
        }
    }
    for (w, used) in waivers.iter().zip(used) {
        if now > w.until {
            applied.expired.push(format!(
                "{} (expired {}): {}",
                w.label(),
                w.expires,
                w.reason
            ));
        } else if !used {
            applied.stale.push(format!(
                "{}: matches no failure any more; remove it",
                w.label()
            ));
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::CaseResult;
    use std::collections::BTreeMap;
    use std::time::Duration;

    const FILE: &str = r#"
[[waiver]]
scenario = "ipv6-leak"
check = "no packet on gw is a leak"
reason = "upstream bug, fixed in 3.41"
expires = 2027-01-31

[[waiver]]
scenario = "mtu"
reason = "old"
expires = 2026-01-01

[[waiver]]
scenario = "dns-leak"
target = "reference"
reason = "not yet"
expires = 2027-06-30
"#;

    fn result(name: &str, cases: &[(&str, Outcome)]) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            target: "builtin".into(),
            description: String::new(),
            source: String::new(),
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            cases: cases
                .iter()
                .map(|(n, o)| CaseResult {
                    name: n.to_string(),
                    outcome: o.clone(),
                    duration: Duration::ZERO,
                    log: vec![],
                })
                .collect(),
            leaks: vec![],
            frames: BTreeMap::new(),
            pcaps: vec![],
            gateway_log: Default::default(),
            handshake_after: None,
            readiness: vec![],
            traffic: Default::default(),
        }
    }

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-12-01T12:00:00Z").unwrap()
    }

    #[test]
    fn waived_failures_show_as_waived_expired_ones_count_and_stale_ones_are_said() {
        let ws = parse("w.toml", FILE).unwrap();
        assert_eq!(ws.len(), 3);
        assert_eq!(ws[0].line, 2);
        let mut rs = vec![
            result(
                "ipv6-leak",
                &[
                    ("no packet on gw is a leak", Outcome::fail("3 leaked", "")),
                    (
                        "no packet on uplink is a leak",
                        Outcome::fail("1 leaked", ""),
                    ),
                ],
            ),
            result("mtu", &[("x", Outcome::fail("too big", ""))]),
        ];
        let a = apply(&ws, &mut rs, now());
        // The named check is waived, never passed; the other stays failed.
        assert!(matches!(
            &rs[0].cases[0].outcome,
            Outcome::Waived { reason, expires, .. } if reason.contains("upstream") && expires == "2027-01-31"
        ));
        assert!(matches!(rs[0].cases[1].outcome, Outcome::Failed { .. }));
        assert!(!rs[0].passed());
        // The expired waiver covers nothing and is listed.
        assert!(matches!(rs[1].cases[0].outcome, Outcome::Failed { .. }));
        assert_eq!(a.expired.len(), 1);
        assert!(
            a.expired[0].contains("line 8: mtu (expired 2026-01-01)"),
            "{a:?}"
        );
        // The reference's waiver matched nothing (no such target ran).
        assert_eq!(a.stale.len(), 1);
        assert!(a.stale[0].contains("dns-leak on reference"), "{a:?}");
        assert_eq!(a.waived.len(), 1);
    }

    #[test]
    fn a_scenario_whose_failures_are_all_waived_is_waived_not_passed() {
        let ws = parse("w.toml", FILE).unwrap();
        let mut rs = vec![result(
            "ipv6-leak",
            &[
                ("a", Outcome::Passed),
                ("no packet on gw is a leak", Outcome::fail("3 leaked", "")),
            ],
        )];
        apply(&ws, &mut rs, now());
        assert!(!rs[0].passed());
        assert!(rs[0].waived());
        assert!(rs[0].ok());
    }

    #[test]
    fn bad_waivers_name_file_line_and_column() {
        let e = parse(
            "w.toml",
            "[[waiver]]\nscenario = \"x\"\nreason = \"r\"\nexpires = \"soon\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("w.toml:4:11:"), "{e}");
        let e = parse(
            "w.toml",
            "[[waiver]]\nscenario = \"x\"\nreason = \"r\"\nexpires = 2027-01-01\nowner = \"me\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("owner"), "{e}");
        let e = parse(
            "w.toml",
            "[[waiver]]\nscenario = \"x\"\nreason = \" \"\nexpires = 2027-01-01\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("w.toml:3:10: reason"), "{e}");
        let e = parse("w.toml", "[[waiver]]\nscenario = \"x\"\nreason = \"r\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expires"), "{e}");
    }
}
