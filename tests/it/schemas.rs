//! The machine-readable contracts: summary.json and the `--format json`
//! events of a real run with failures and leaks (the kill switch disabled
//! on purpose) validate against docs/schemas/ with an independent validator
//! (Debian's python3-jsonschema, Draft 2020-12), and a document that breaks
//! the contract is refused. Needs root (a run).

use crate::common;

use std::process::Command;

fn validate(schema: &str, docs: &[serde_json::Value]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("docs.json");
    std::fs::write(&data, serde_json::to_vec(docs).unwrap()).unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schemas/").to_string() + schema;
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             s = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(s)\n\
             v = jsonschema.Draft202012Validator(s)\n\
             for d in json.load(open(sys.argv[2])): v.validate(d)\n",
        ])
        .arg(&schema)
        .arg(&data)
        .output()
        .expect("python3-jsonschema (bash ci/setup.sh installs it)");
    assert!(o.status.success(), "{schema}: {}", common::printed(&o));
}

#[test]
fn a_runs_outputs_follow_their_schemas() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(["run", "--format", "json", "--dependents", "stand-in"])
        .args([
            "--only",
            "baseline",
            "--only",
            "killswitch-tunnel-down",
            "--only",
            "browser-leaks",
        ])
        .args([
            "--env",
            "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off",
        ])
        .arg("--out")
        .arg(out.path())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", common::printed(&o));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["outcome"] == "failed"));
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    validate("events.schema.json", &events);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["leaks"].as_u64().unwrap() > 0,
        "no leak to validate"
    );
    validate("summary.schema.json", &[summary]);
}

/// A document that breaks the contract is refused: the schema can fail.
#[test]
fn the_schemas_refuse_what_breaks_them() {
    let bad = serde_json::json!({"schema": 1, "event": "case_finished", "target": "t",
        "scenario": "s", "case": "c", "duration_s": 0.1, "outcome": "failed"});
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.json");
    std::fs::write(&data, serde_json::to_vec(&[bad]).unwrap()).unwrap();
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\n\
             for d in json.load(open(sys.argv[2])): v.validate(d)\n",
        ])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/schemas/events.schema.json"
        ))
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a failed case without its message passed"
    );
}
