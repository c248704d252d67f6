//! JUnit XML (junit-report): one testsuite per scenario, one testcase per
//! assertion. Written to be read the same way by Jenkins (validated against
//! its JUnit schema), GitLab (suite name in `classname`, failure text in both
//! the `message` attribute and the element body) and GitHub annotations; the
//! step log goes to each testcase's `system-out`.
//!
//! junit-report rather than quick-junit: quick-junit writes a `skipped`
//! attribute on `<testsuites>` that the Jenkins schema refuses, and it was
//! checked (`xmllint --schema`); junit-report's output validates. It has no
//! `<properties>`, so a suite's metadata (source, pcaps, timings) goes into
//! the suite's own `system-out`.

use junit_report::{
    Duration as JDuration, OffsetDateTime, ReportBuilder, TestCaseBuilder, TestSuiteBuilder,
};

use crate::model::verdict::{Outcome, ScenarioResult};

fn jdur(d: std::time::Duration) -> JDuration {
    JDuration::try_from(d).unwrap_or(JDuration::MAX)
}

pub fn render(results: &[ScenarioResult]) -> String {
    // Every text cleaned once, here: secrets redacted, bytes XML 1.0
    // forbids shown escaped (a gateway's log quoted in a failure may hold
    // anything), lengths capped.
    // junit-report writes system-out as CDATA, which `]]>` would end.
    let clean = |t: &str| crate::model::scrub::clean(t).replace("]]>", "]]\\x3e");
    let results: Vec<ScenarioResult> = results
        .iter()
        .map(|r| super::scrubbed_by(r, &clean))
        .collect();
    let results = results.as_slice();
    let mut report = ReportBuilder::new();
    // Several targets in one report (`leakhound compare`): the target's
    // name goes into the suite name and the classname, so names stay unique.
    let several = results
        .iter()
        .any(|r| results.first().is_some_and(|f| f.target != r.target));
    for r in results {
        let suite_name = if several {
            format!("{}/{}", r.target, r.name)
        } else {
            r.name.clone()
        };
        // The target in the classname, always: reports of runs against
        // different gateways merge without clashing.
        let classname = format!("{}.{}", r.target, r.name);
        // Attachments for a failing scenario: its pcaps, by path relative
        // to the JUnit file's folder (they are written beside it), in the
        // `[[ATTACHMENT|path]]` form GitLab, Jenkins and Azure show.
        let attachments: Vec<String> = if r.passed() || r.skipped() {
            Vec::new()
        } else {
            r.pcaps
                .iter()
                .filter_map(|p| p.file_name())
                .map(|f| format!("[[ATTACHMENT|{}]]", f.to_string_lossy()))
                .collect()
        };
        let names = unique_names(r.cases.iter().map(|c| c.name.as_str()));
        let mut suite = TestSuiteBuilder::new(&suite_name);
        let started = r
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        suite.set_timestamp(OffsetDateTime::UNIX_EPOCH + jdur(started));
        let mut meta = vec![
            format!("source: {}", r.source),
            format!("target: {}", r.target),
        ];
        if !r.description.is_empty() {
            meta.push(format!("description: {}", r.description));
        }
        for p in &r.pcaps {
            meta.push(format!("pcap: {}", p.display()));
        }
        meta.push(format!("gateway log: {}", r.gateway_log.display()));
        if let Some(h) = r.handshake_after {
            meta.push(format!("handshake after: {} ms", h.as_millis()));
        }
        suite.set_system_out(&meta.join("\n"));
        for (c, name) in r.cases.iter().zip(&names) {
            let mut log = c.log.clone();
            let with_body = |mut b: TestCaseBuilder, message: &str, detail: &str| {
                let body = if detail.is_empty() {
                    message.to_string()
                } else {
                    format!("{message}\n\n{detail}")
                };
                b.set_trace(&body);
                b
            };
            let mut tc = match &c.outcome {
                Outcome::Passed => TestCaseBuilder::success(name, jdur(c.duration)),
                Outcome::Failed { message, detail } => with_body(
                    TestCaseBuilder::failure(
                        name,
                        jdur(c.duration),
                        "leakhound.AssertionFailed",
                        message,
                    ),
                    message,
                    detail,
                ),
                Outcome::Error { message, detail } => with_body(
                    TestCaseBuilder::error(
                        name,
                        jdur(c.duration),
                        "leakhound.HarnessError",
                        message,
                    ),
                    message,
                    detail,
                ),
                Outcome::Skipped { reason } => {
                    // Jenkins' schema allows no attributes on <skipped>:
                    // the reason goes to system-out.
                    log.insert(0, format!("skipped: {reason}"));
                    TestCaseBuilder::skipped(name)
                }
                // JUnit has no "waived": a skip (never a pass) whose output
                // says what failed and which waiver accepts it until when.
                Outcome::Waived {
                    message,
                    reason,
                    expires,
                    ..
                } => {
                    log.insert(0, format!("WAIVED until {expires} ({reason}): {message}"));
                    TestCaseBuilder::skipped(name)
                }
            };
            tc.set_classname(&classname);
            // The scenario's file (`builtin:NAME` for the compiled-in ones).
            tc.set_filepath(&r.source);
            if matches!(c.outcome, Outcome::Failed { .. } | Outcome::Error { .. }) {
                log.extend(attachments.iter().cloned());
            }
            if !log.is_empty() {
                tc.set_system_out(&log.join("\n"));
            }
            suite.add_testcase(tc.build());
        }
        report.add_testsuite(suite.build());
    }
    let mut out = Vec::new();
    report
        .build()
        .write_xml(&mut out)
        .expect("JUnit serialization into memory cannot fail");
    String::from_utf8(out).expect("junit-report writes UTF-8")
}

/// Case names made unique within a scenario (GitLab keeps only the first
/// of testcases with the same name): a repeated name gets " (2)", " (3)".
pub fn unique_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let k = seen.entry(n).or_insert(0);
        *k += 1;
        let mut candidate = if *k == 1 {
            n.to_string()
        } else {
            format!("{n} ({k})")
        };
        // A name that already reads "x (2)" cannot collide with ours.
        while out.contains(&candidate) {
            *k += 1;
            candidate = format!("{n} ({k})");
        }
        out.push(candidate);
    }
    out
}

/// A fixed result set for the reporters' tests.
#[cfg(test)]
pub(crate) fn tests_sample() -> Vec<ScenarioResult> {
    use crate::model::classify::{Proto, Summary};
    use crate::model::verdict::{CaseResult, LeakRecord};
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};
    {
        let leak = LeakRecord {
            at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            wire: "gw".into(),
            step: "probe".into(),
            packet: Summary {
                proto: Proto::Tcp,
                src: Some("172.21.0.2".parse().unwrap()),
                dst: Some("192.0.2.80".parse().unwrap()),
                sport: Some(41000),
                dport: Some(80),
                dns_name: None,
                note: None,
            },
        };
        vec![ScenarioResult {
            name: "baseline".into(),
            target: "builtin".into(),
            description: "tunnel <up> & \"working\"".into(),
            source: "builtin:baseline".into(),
            started: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            duration: Duration::from_millis(2500),
            cases: vec![
                CaseResult {
                    name: "handshake".into(),
                    outcome: Outcome::Passed,
                    duration: Duration::from_millis(120),
                    log: vec!["provider saw a completed handshake".into()],
                },
                CaseResult {
                    name: "no packet on gw is a leak".into(),
                    outcome: Outcome::Failed {
                        message:
                            "1 packet(s) leaked on gw; first: TCP 172.21.0.2:41000 -> 192.0.2.80:80"
                                .into(),
                        detail: crate::model::verdict::format_leak(&leak),
                    },
                    duration: Duration::ZERO,
                    log: vec![],
                },
            ],
            leaks: vec![leak],
            frames: BTreeMap::from([("gw".to_string(), 10)]),
            pcaps: vec!["reports/latest/baseline-gw.pcap".into()],
            gateway_log: "reports/latest/baseline-gateway.log".into(),
            handshake_after: Some(Duration::from_millis(120)),
            readiness: vec![],
            traffic: Default::default(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ScenarioResult> {
        tests_sample()
    }

    #[test]
    fn repeated_case_names_are_made_unique() {
        assert_eq!(
            unique_names(["a", "b", "a", "a (2)", "a"].into_iter()),
            vec!["a", "b", "a (2)", "a (2) (2)", "a (3)"]
        );
    }

    #[test]
    fn junit_snapshot() {
        let xml = render(&sample());
        let expected = include_str!("snapshots/junit.xml");
        assert_eq!(xml.trim(), expected.trim(), "rendered:\n{xml}");
    }

    #[test]
    fn gitlab_fields_are_present() {
        let xml = render(&sample());
        assert!(xml.contains(r#"classname="builtin.baseline""#));
        assert!(xml.contains(r#"file="builtin:baseline""#));
        // The failing scenario's pcap, relative to the JUnit file's folder.
        let failed = &xml[xml.find("<failure").unwrap()..];
        assert!(failed.contains("[[ATTACHMENT|baseline-gw.pcap]]"), "{xml}");
        assert!(xml.contains(
            r#"message="1 packet(s) leaked on gw; first: TCP 172.21.0.2:41000 -&gt; 192.0.2.80:80""#
        ));
        // The failure body repeats the message and lists the packet.
        let body = &xml[xml.find("<failure").unwrap()..xml.find("</failure>").unwrap()];
        assert!(body.contains("1 packet(s) leaked on gw; first:"), "{body}");
        assert!(
            body.contains(r#"during "probe": TCP 172.21.0.2:41000 -> 192.0.2.80:80"#),
            "{body}"
        );
        assert!(
            xml.contains("<system-out><![CDATA[provider saw a completed handshake]]></system-out>")
        );
        assert!(xml.contains(r#"tests="2""#) && xml.contains(r#"failures="1""#));
    }

    /// An independent reader (Debian's python3-junitparser) counts what we
    /// count: tests, failures, errors, skips, and sees the file attribute.
    #[test]
    fn junitparser_agrees_with_the_counts() {
        use crate::model::verdict::CaseResult;
        let mut results = sample();
        results[0].cases.push(CaseResult {
            name: "handshake".into(),
            outcome: Outcome::Skipped { reason: "r".into() },
            duration: std::time::Duration::ZERO,
            log: vec![],
        });
        results[0].cases.push(CaseResult {
            name: "harness".into(),
            outcome: Outcome::error("boom"),
            duration: std::time::Duration::ZERO,
            log: vec![],
        });
        let dir = tempfile::tempdir().unwrap();
        let xml = dir.path().join("junit.xml");
        std::fs::write(&xml, render(&results)).unwrap();
        let script = r#"
import sys
from junitparser import JUnitXml, Failure, Error, Skipped
x = JUnitXml.fromfile(sys.argv[1])
tests = failures = errors = skipped = 0
names = set()
files = set()
for suite in x:
    for case in suite:
        tests += 1
        names.add((case.classname, case.name))
        files.add(case._elem.get("file"))
        for r in case.result:
            if isinstance(r, Failure): failures += 1
            elif isinstance(r, Error): errors += 1
            elif isinstance(r, Skipped): skipped += 1
print(tests, failures, errors, skipped, len(names), ",".join(sorted(f or "-" for f in files)))
"#;
        // Debian's python, where python3-junitparser is (ci/setup.sh).
        let out = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(&xml)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = &results[0].cases;
        let count = |f: fn(&Outcome) -> bool| ours.iter().filter(|c| f(&c.outcome)).count();
        let expected = format!(
            "{} {} {} {} {} builtin:baseline\n",
            ours.len(),
            count(|o| matches!(o, Outcome::Failed { .. })),
            count(|o| matches!(o, Outcome::Error { .. })),
            count(|o| matches!(o, Outcome::Skipped { .. })),
            ours.len(),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    /// Validates against Jenkins' JUnit schema (the shared copy, with its
    /// comments stripped: it has a `--` inside a comment, which no XML parser
    /// accepts). Needs xmllint (libxml2-utils; ci/setup.sh installs it).
    #[test]
    fn junit_validates_against_the_jenkins_schema() {
        let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/jenkins-junit.xsd");
        let dir = tempfile::tempdir().unwrap();
        let xml = dir.path().join("junit.xml");
        std::fs::write(&xml, render(&sample())).unwrap();
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&xsd)
            .arg(&xml)
            .output()
            .expect("xmllint not found: install libxml2-utils (ci/setup.sh does)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
