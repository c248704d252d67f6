//! `run --waivers FILE` end to end: a gateway whose kill switch is disabled
//! on purpose fails killswitch-tunnel-down; a waiver for it makes the run
//! pass with the scenario shown as WAIVED (terminal, JUnit, summary.json,
//! report.html, metrics), never as passed, and a waiver for a scenario that
//! did not fail is reported stale; the same waiver past its date fails the
//! run; a bad waivers file is refused with file, line and column. Needs root.

mod common;

use std::path::Path;

fn run(waivers: &Path, out: &Path) -> std::process::Output {
    // Not --quiet: a passing run (a waived failure passes) would print
    // nothing, and the test reads what it says.
    common::leakhound_run(
        &[
            "--dependents",
            "stand-in",
            "--only",
            "killswitch-tunnel-down",
            "--env",
            "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off",
            "--waivers",
            waivers.to_str().unwrap(),
            "--prometheus",
            out.join("m.prom").to_str().unwrap(),
        ],
        out,
    )
}

fn waivers(dir: &Path, expires: &str) -> std::path::PathBuf {
    let f = dir.join("waivers.toml");
    std::fs::write(
        &f,
        format!(
            "[[waiver]]\nscenario = \"killswitch-tunnel-down\"\nreason = \"testing the waivers\"\nexpires = {expires}\n\n\
[[waiver]]\nscenario = \"baseline\"\nreason = \"nothing fails there\"\nexpires = 2099-12-31\n"
        ),
    )
    .unwrap();
    f
}

#[test]
fn a_waived_failure_passes_the_run_as_waived_until_its_date() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let o = run(&waivers(dir.path(), "2099-12-31"), &out);
    let t = common::printed(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("WAIVED killswitch-tunnel-down"), "{t}");
    assert!(t.contains("1 waived"), "{t}");
    assert!(t.contains("stale waiver: line 6: baseline"), "{t}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], true);
    assert!(!summary["waivers"]["waived"].as_array().unwrap().is_empty());
    assert_eq!(summary["waivers"]["stale"].as_array().unwrap().len(), 1);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    common::assert_valid_junit(&junit);
    assert!(junit.contains("WAIVED until 2099-12-31 (testing the waivers)"));
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<td class=\"waived\">"), "{html}");
    let prom = std::fs::read_to_string(out.join("m.prom")).unwrap();
    assert!(
        prom.lines().any(|l| l == "leakhound_run_success 1"),
        "{prom}"
    );
    assert!(
        prom.contains(
            "leakhound_check_success{check=\"killswitch-tunnel-down\",target=\"builtin\"} 0"
        ),
        "{prom}"
    );
    assert!(
        prom.contains(
            "leakhound_check_waived{check=\"killswitch-tunnel-down\",target=\"builtin\"} 1"
        ),
        "{prom}"
    );

    // Past its date, the waiver covers nothing and fails the run.
    let out = dir.path().join("r2");
    let o = run(&waivers(dir.path(), "2020-01-31"), &out);
    let t = common::printed(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("EXPIRED waiver, which fails the run: line 1: killswitch-tunnel-down (expired 2020-01-31)"), "{t}");
    assert!(t.contains("FAIL killswitch-tunnel-down"), "{t}");
}

#[test]
fn a_bad_waivers_file_is_refused_with_where() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("w.toml");
    std::fs::write(
        &f,
        "[[waiver]]\nscenario = \"x\"\nreason = \"r\"\nexpires = \"next week\"\n",
    )
    .unwrap();
    let o = run(&f, &dir.path().join("r"));
    let t = common::printed(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains(&format!("{}:4:11:", f.display())), "{t}");
}
