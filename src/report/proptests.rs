//! Any bytes through every writer: each output is read back by an
//! independent reader (quick-xml and xmllint for the JUnit, serde_json for
//! summary.json and the JSON Lines, promtool for the Prometheus text, the
//! compare table's rows) and
//! holds no registered secret and no control character a format forbids.

use std::io::Write as _;
use std::time::Duration;

use proptest::prelude::*;

use crate::model::scrub;
use crate::model::verdict::{Event, Outcome, ScenarioResult};

const CANARY: &str = "canary-proptest-writer-7301";

/// A foreign text: arbitrary bytes read as a service's log would be
/// (lossy UTF-8), or arbitrary characters, with the canary somewhere.
fn text() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..120)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            prop::collection::vec(any::<char>(), 0..60).prop_map(|c| c.into_iter().collect()),
            // The bytes of the issue: a raw DNS query in a service's log.
            Just("query \u{0}\u{1}\u{5}example\u{3}com\u{0} <x a=\"'&\">]]>".to_string()),
        ],
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut t, with_canary, at)| {
            if with_canary {
                let mut i = at.index(t.len() + 1).min(t.len());
                while !t.is_char_boundary(i) {
                    i -= 1;
                }
                t.insert_str(i, CANARY);
            }
            t
        })
}

fn results(texts: &[String]) -> Vec<ScenarioResult> {
    let mut r = crate::report::junit::tests_sample();
    let s = &mut r[0];
    s.name = texts[0].clone();
    s.description = texts[1].clone();
    s.target = texts[2].clone();
    s.cases[1].outcome = Outcome::fail(texts[3].clone(), texts[4].clone());
    s.cases[1].log = vec![texts[5].clone(), texts[6].clone()];
    s.cases[0].name = texts[7].clone();
    s.leaks[0].packet.dns_name = Some(texts[8].clone());
    let mut skipped = s.clone();
    skipped.name.push_str(" (2)");
    skipped.cases[1].outcome = Outcome::Skipped {
        reason: texts[9].clone(),
    };
    r.push(skipped);
    r
}

/// Characters no report may carry raw.
fn forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

fn assert_clean(what: &str, out: &str) {
    assert!(!out.contains(CANARY), "{what} holds the canary");
    assert!(
        !out.chars().any(forbidden),
        "{what} holds a forbidden character"
    );
}

fn run(program: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_through_every_writer_read_back(texts in prop::collection::vec(text(), 10)) {
        scrub::register(CANARY);
        let r = results(&texts);

        let junit = crate::report::junit::render(&r);
        assert_clean("junit.xml", &junit);
        let mut reader = quick_xml::Reader::from_str(&junit);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                    for a in e.attributes() {
                        let a = a.expect("attribute");
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).expect("attribute value");
                    }
                }
                Ok(quick_xml::events::Event::Text(t)) => {
                    t.decode().expect("text");
                }
                Ok(_) => {}
                Err(e) => panic!("quick-xml: {e}\n{junit}"),
            }
        }
        let x = run("xmllint", &["--noout", "-"], &junit);
        prop_assert!(x.status.success(), "xmllint: {}", String::from_utf8_lossy(&x.stderr));

        let html = crate::report::html::render(&texts[0], &r, &Default::default(), &[]);
        assert_clean("report.html", &html);
        prop_assert!(!html.contains("<x a="), "markup from a text reached the page");

        let summary = crate::report::json::render("id", &Default::default(), None, None, &r);
        assert_clean("summary.json", &summary);
        let v: serde_json::Value = serde_json::from_str(&summary).expect("summary.json parses");
        prop_assert_eq!(v["scenarios"].as_u64(), Some(2));

        let lines = [
            crate::report::jsonl::event_line(&Event::CaseFinished {
                target: texts[2].clone(),
                scenario: texts[0].clone(),
                case: r[0].cases[1].clone(),
            }),
            crate::report::jsonl::event_line(&Event::ScenarioFinished { result: Box::new(r[1].clone()) }),
            crate::report::jsonl::run_finished(&r, std::path::Path::new(&texts[3])),
        ];
        for l in &lines {
            assert_clean("a JSON line", l);
            prop_assert!(!l.contains('\n'));
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON line parses");
        }

        let prom = crate::report::prometheus::render(
            &r, false, std::time::SystemTime::UNIX_EPOCH, Duration::from_secs(1));
        assert_clean("the Prometheus text", &prom);
        let p = run("promtool", &["check", "metrics"], &prom);
        // promtool exits 3 for lint warnings only; 1 is a parse error.
        prop_assert!(p.status.code() != Some(1),
            "promtool: {}{}\n{prom}", String::from_utf8_lossy(&p.stdout), String::from_utf8_lossy(&p.stderr));
        // A line per scenario: no text broke a sample across lines.
        prop_assert_eq!(prom.lines().filter(|l| l.starts_with("leakhound_check_skipped{")).count(), 2);

        let table = crate::report::compare::render(&r, &[(texts[2].clone(), Duration::from_secs(1))]);
        assert_clean("the compare table", &table);
        // Markdown rows stay rows: one line each, a cell per column.
        for l in table.lines() {
            prop_assert!(l.starts_with('|') && l.ends_with('|'), "{}", l);
            prop_assert_eq!(l.replace("\\|", "").matches('|').count(), 3, "{}", l);
        }

        let term = crate::report::terminal::summary(&r);
        assert_clean("the terminal summary", &term);
        prop_assert!(!term.contains('\x1b'), "an escape sequence in the terminal");
    }
}

#[test]
fn long_texts_are_capped_in_the_reports() {
    let mut r = crate::report::junit::tests_sample();
    r[0].cases[1].outcome = Outcome::fail("x".repeat(scrub::DEFAULT_CAP + 100), "");
    let junit = crate::report::junit::render(&r);
    assert!(junit.contains("(100 bytes more)"), "{}", junit.len());
}
