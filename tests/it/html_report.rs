//! The HTML report in a real browser: a run with the gateway's kill switch
//! disabled on purpose writes `report.html` beside the JUnit; Debian's
//! headless chromium loads it with no console message at all (its
//! Content-Security-Policy forbids scripts and fetches, so anything that
//! tried to load would be reported there, as the control page shows), and
//! the DOM it builds shows the failing scenario as failing, with a timeline
//! whose leaks are red and whose fault is marked; its summary.json pins
//! down the gateway (the binary's SHA-256) and the configuration. Needs
//! root (the run).

use crate::common;

use std::path::Path;
use std::process::Command;

/// chromium --dump-dom: (the DOM, the console lines it logged).
fn load(page: &Path) -> (String, Vec<String>) {
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (ci/setup.sh installs it)");
    assert!(o.status.success(), "{}", common::printed(&o));
    let console = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&o.stdout).into_owned(), console)
}

#[test]
fn the_html_report_loads_cleanly_and_shows_the_failure() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let o = common::leakhound_run(
        &[
            "--quiet",
            "--dependents",
            "stand-in",
            "--only",
            "baseline",
            "--only",
            "killswitch-tunnel-down",
            "--env",
            "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off",
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::printed(&o));
    // summary.json pins down what was tested.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let p = &summary["provenance"];
    assert_eq!(p["targets"][0]["kind"], "builtin", "{p}");
    let exe = std::fs::read(env!("CARGO_BIN_EXE_leakhound")).unwrap();
    let sha: String = ring::digest::digest(&ring::digest::SHA256, &exe)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(p["targets"][0]["binary_sha256"], sha.as_str(), "{p}");
    assert_eq!(
        p["config"]["variables"]["FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT"], "off",
        "{p}"
    );
    assert_eq!(p["config"]["source"], "seed");
    assert_eq!(p["config"]["sha256"].as_str().unwrap().len(), 64);

    let page = out.path().join("report.html");
    let (dom, console) = load(&page);
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(
        dom.contains("<td class=\"fail\"><a href=\"#builtin--killswitch-tunnel-down\">FAIL</a>"),
        "{dom}"
    );
    assert!(
        dom.contains("<td class=\"pass\"><a href=\"#builtin--baseline\">PASS</a>"),
        "{dom}"
    );
    let section = dom
        .split("<section")
        .find(|s| s.contains("id=\"builtin--killswitch-tunnel-down\""))
        .unwrap();
    assert!(section.contains("class=\"scenario fail\""), "{section}");
    assert!(section.contains("Requirement: \"Kill switch MUST be enabled\""));
    assert!(section.contains("<svg class=\"timeline\""), "{section}");
    assert!(
        section.contains("fill=\"#d50000\""),
        "no leak bar: {section}"
    );
    assert!(section.contains("class=\"fault\""), "{section}");
    assert!(section.contains("class=\"recovery\""), "{section}");

    // The control: a page that tries to fetch something is caught.
    let bad = out.path().join("control.html");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&page)
            .unwrap()
            .replace("</body>", "<img src=\"http://192.0.2.1/x.png\"></body>"),
    )
    .unwrap();
    let (_, console) = load(&bad);
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:#?}"
    );
}
