//! The command line for CI jobs and schedulers: `list --shard` splits the
//! suite so that the shards' union is the whole suite, `explain` says what
//! a scenario checks, and `run --prometheus` writes metrics that promtool
//! accepts. The first two need no root; the last runs a lab.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

fn leakhound(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(args)
        .output()
        .unwrap()
}

fn listed(args: &[&str]) -> Vec<String> {
    let o = leakhound(&[&["list"], args].concat());
    assert!(o.status.success(), "{}", common::printed(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn shards_split_the_suite_exactly_once_each() {
    let all: BTreeSet<String> = listed(&[]).into_iter().collect();
    assert!(all.len() >= 30, "{all:?}");
    for n in 1..=5 {
        let mut union = BTreeSet::new();
        let mut total = 0;
        for i in 1..=n {
            let shard = listed(&["--shard", &format!("{i}/{n}")]);
            total += shard.len();
            union.extend(shard);
        }
        assert_eq!(union, all, "n={n}");
        assert_eq!(total, all.len(), "n={n}: a scenario is in two shards");
    }
    // The same split every time; with tags it splits what they select.
    assert_eq!(listed(&["--shard", "2/3"]), listed(&["--shard", "2/3"]));
    let smoke: BTreeSet<String> = listed(&["--tag", "smoke"]).into_iter().collect();
    let mut union = BTreeSet::new();
    for i in 1..=2 {
        union.extend(listed(&["--tag", "smoke", "--shard", &format!("{i}/2")]));
    }
    assert_eq!(union, smoke);
}

#[test]
fn a_bad_shard_is_refused_saying_how_to_write_one() {
    for bad in ["0/3", "4/3", "x", "1/0"] {
        let o = leakhound(&["list", "--shard", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(
            common::printed(&o).contains("write I/N with 1 <= I <= N"),
            "{}",
            common::printed(&o)
        );
    }
}

#[test]
fn an_unknown_capability_stops_the_run_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let o = leakhound(&[
        "run",
        "--target",
        "command",
        "--capability",
        "teleport",
        "--out",
        out,
        "--",
        "/bin/true",
    ]);
    let t = common::printed(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("unknown capability \"teleport\" (control-server, health-server"),
        "{t}"
    );
    let file = dir.path().join("targets.toml");
    std::fs::write(
        &file,
        "[[target]]\nname = \"x\"\nkind = \"command\"\nargv = [\"/bin/true\"]\ncapabilities = [\"teleport\"]\n",
    )
    .unwrap();
    let o = leakhound(&["run", "--targets", file.to_str().unwrap(), "--out", out]);
    let t = common::printed(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("line 5") && t.contains("unknown capability \"teleport\" (control-server"),
        "{t}"
    );
}

#[test]
fn explain_says_what_a_scenario_checks_and_what_fails_it() {
    let o = leakhound(&["explain", "browser-leaks"]);
    let t = common::printed(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.starts_with("browser-leaks (built in, from scenarios/browser-leaks.toml)"),
        "{t}"
    );
    assert!(
        t.contains("The user's requirement it checks: Byparr"),
        "{t}"
    );
    assert!(t.contains("action browse (expect = \"fail\")"), "{t}");
    assert!(t.contains("any packet on the uplink wire is a leak"), "{t}");
    let o = leakhound(&["explain", "no-such-scenario"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::printed(&o).contains("no scenario named \"no-such-scenario\""));
}

#[test]
fn run_writes_prometheus_metrics_that_promtool_accepts() {
    common::require_root();
    let out = common::fresh_path("prom");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("leakhound.prom");
    let o = common::leakhound_run(
        &[
            "--quiet",
            "--dependents",
            "stand-in",
            "--only",
            "baseline",
            "--only",
            "usenet-through-tunnel",
            "--prometheus",
            file.to_str().unwrap(),
        ],
        &out.join("reports"),
    );
    assert!(o.status.success(), "{}", common::printed(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("leakhound_check_success{check=\"baseline\",target=\"builtin\"} 1\n"),
        "{text}"
    );
    // Skipped (no real NZBGet with stand-ins): no success sample, a skip.
    assert!(
        text.contains(
            "leakhound_check_skipped{check=\"usenet-through-tunnel\",target=\"builtin\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains("leakhound_leaked_packets{check=\"baseline\",target=\"builtin\"} 0\n"));
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian's prometheus; ci/setup.sh installs it)");
    assert!(check.status.success(), "{}", common::printed(&check));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn format_json_is_one_event_a_line_ending_with_the_totals() {
    common::require_root();
    let out = common::fresh_path("jsonl");
    let o = common::leakhound_run(
        &[
            "--format",
            "json",
            "--dependents",
            "stand-in",
            "--only",
            "baseline",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", common::printed(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(lines.iter().all(|v| v["schema"] == 1));
    let events: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"scenario_started"));
    assert_eq!(events[events.len() - 2], "scenario_finished");
    assert_eq!(events.last(), Some(&"run_finished"));
    let cases = lines
        .iter()
        .filter(|v| v["event"] == "case_finished")
        .count();
    assert_eq!(cases as u64, lines[0]["cases"].as_u64().unwrap());
    let last = lines.last().unwrap();
    assert_eq!(
        (last["passed"].as_bool(), last["scenarios"].as_u64()),
        (Some(true), Some(1))
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// `--out` never deletes what leakhound did not write: a working tree is
/// refused with an error that names it and says what to do, and nothing in
/// it is touched; `--out` on a new folder makes and marks it.
#[test]
fn out_refuses_a_folder_leakhound_did_not_make() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("Cargo.toml"), "[package]\n").unwrap();
    std::fs::create_dir(tree.path().join("src")).unwrap();
    std::fs::write(tree.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(["run", "--only", "baseline", "--out", "."])
        .current_dir(tree.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--out .") && err.contains("Cargo.toml") && err.contains("Name a new folder"),
        "{err}"
    );
    assert!(tree.path().join("Cargo.toml").exists());
    assert!(tree.path().join("src/main.rs").exists());
    assert!(!tree.path().join(leakhound::outdir::MARK).exists());
}

/// A folder of links to every program on PATH except `without`: what a
/// machine without those packages looks like to leakhound.
fn path_without(without: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for d in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if without.iter().any(|w| name == *w) {
                continue;
            }
            let link = dir.path().join(&name);
            if !link.exists() {
                let _ = std::os::unix::fs::symlink(e.path(), link);
            }
        }
    }
    dir
}

/// A missing optional package is a skip with the reason, never a pass on
/// leakhound's own client alone and never an abort: without kdig the DNS
/// steps that need an independent client are skipped naming knot-dnsutils;
/// without a browser the browser scenario is skipped naming chromium.
#[test]
fn a_missing_optional_package_skips_with_the_reason() {
    common::require_root();
    let bin = path_without(&[
        "kdig",
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]);
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(["run", "--quiet", "--dependents", "stand-in"])
        .args(["--only", "dns-leak", "--only", "browser-leaks", "--out"])
        .arg(out.path())
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", common::printed(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    let results = summary["results"].as_array().unwrap();
    let skipped = |scenario: &str| -> Vec<String> {
        results
            .iter()
            .filter(|r| r["name"] == scenario)
            .flat_map(|r| r["cases"].as_array().unwrap().iter())
            .filter(|c| c["outcome"]["status"] == "skipped")
            .map(|c| c["outcome"]["reason"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let dns = skipped("dns-leak");
    assert!(
        dns.iter()
            .any(|r| r.contains("kdig is not installed") && r.contains("knot-dnsutils")),
        "{dns:?}"
    );
    let browser = skipped("browser-leaks");
    assert!(
        !browser.is_empty() && browser.iter().all(|r| r.contains("chromium")),
        "{browser:?}"
    );
    // The one skip rule (`audit` follows it too): --fail-on-skip makes the
    // same skip fail the run, naming it; --allow-skip must name a scenario
    // of the run.
    let strict = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args(["run", "--quiet", "--dependents", "stand-in"])
            .args(["--only", "browser-leaks", "--out"])
            .arg(out.path())
            .args(extra)
            .env("PATH", bin.path())
            .output()
            .unwrap()
    };
    let o = strict(&["--fail-on-skip"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::printed(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("skipped, which fails the run (--fail-on-skip): browser-leaks: "),
        "{}",
        common::printed(&o)
    );
    let o = strict(&["--allow-skip", "no-such-scenario"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::printed(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--allow-skip no-such-scenario: no scenario"),
        "{}",
        common::printed(&o)
    );
}

/// An installed leakhound needs nothing from the source tree: from an empty
/// folder it lists and explains the built-in scenarios, says its version
/// with the commit, prints completions and a manual page, and runs a
/// scenario (its files, blocklists and the lab's CA are compiled in or made
/// per run).
#[test]
fn it_works_from_an_empty_folder() {
    common::require_root();
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args(args)
            .current_dir(empty.path())
            .output()
            .unwrap()
    };
    let v = run(&["--version"]);
    let v = String::from_utf8_lossy(&v.stdout).to_string();
    assert!(v.starts_with("leakhound ") && v.contains("(commit "), "{v}");
    let l = run(&["list"]);
    assert!(l.status.success() && String::from_utf8_lossy(&l.stdout).contains("baseline"));
    let e = run(&["explain", "baseline"]);
    assert!(e.status.success(), "{}", common::printed(&e));
    let c = run(&["completions", "bash"]);
    assert!(c.status.success() && String::from_utf8_lossy(&c.stdout).contains("complete -F"));
    let m = run(&["man"]);
    assert!(m.status.success() && String::from_utf8_lossy(&m.stdout).contains(".TH leakhound 1"));
    let r = run(&["run", "--quiet", "--only", "baseline", "--out", "reports"]);
    assert_eq!(r.status.code(), Some(0), "{}", common::printed(&r));
    // --quiet: a passing run prints nothing (cron mails only failures).
    assert!(
        r.stdout.is_empty() && r.stderr.is_empty(),
        "{}",
        common::printed(&r)
    );
    assert!(empty.path().join("reports/junit.xml").is_file());
}

/// `list` and `explain` speak JSON for scripts: the same scenarios as the
/// text list, each with its source, tags and requirements, and an
/// explanation with the scenario's steps and the user's requirement.
#[test]
fn list_and_explain_speak_json() {
    let o = leakhound(&["list", "--format", "json"]);
    assert!(o.status.success(), "{}", common::printed(&o));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<String> = list
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, listed(&[]));
    assert!(
        list.iter()
            .all(|s| s["tags"].is_array() && s["requires"].is_array())
    );
    let o = leakhound(&["explain", "killswitch-tunnel-down", "--format", "json"]);
    assert!(o.status.success(), "{}", common::printed(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["name"], "killswitch-tunnel-down");
    assert!(!e["steps"].as_array().unwrap().is_empty());
    assert!(
        e["explanation"]
            .as_str()
            .unwrap()
            .contains("killswitch-tunnel-down")
    );
}

/// `prove` on saved state: the built-in gateway's ruleset is proven (exit
/// 0), without its egress filter's device it cannot be (exit 1, saying
/// why), and a policy from an env file with a bad address is an error
/// naming the file and line (exit 2).
#[test]
fn prove_on_saved_state_answers_with_its_exit_status() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/prove/tests/data");
    let rs = format!("{data}/builtin-ruleset.json");
    let text = format!("{data}/builtin-ruleset.txt");
    let addr = format!("{data}/builtin-addr.json");
    let policy = [
        "--endpoint",
        "203.0.113.10:51820",
        "--allow",
        "172.21.0.0/16",
        "--allow",
        "172.20.0.0/16",
        "--allow",
        "192.168.10.0/24",
        "--allow",
        "192.168.40.0/24",
    ];
    let mut args = vec![
        "prove",
        "--ruleset",
        &rs,
        "--ruleset-text",
        &text,
        "--addresses",
        &addr,
    ];
    args.extend(policy);
    let o = leakhound(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("PROOF: no other packet leaves on eth0"),
        "{out}"
    );
    let mut args = vec!["prove", "--ruleset", &rs, "--addresses", &addr];
    args.extend(policy);
    let o = leakhound(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("CANNOT PROVE: table netdev leakhound_egress chain egress"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("gw.env");
    std::fs::write(&env, "VPN_ENDPOINT_IP=203.0.113.300\n").unwrap();
    let env = env.display().to_string();
    let o = leakhound(&[
        "prove",
        "--ruleset",
        &rs,
        "--addresses",
        &addr,
        "--env",
        &env,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gw.env:1: VPN_ENDPOINT_IP: \"203.0.113.300\" is not an IP address"),
        "{err}"
    );
}
