//! The CI and scheduling templates in ci/ are what users copy: each is
//! parsed by its own checker (yamllint, systemd-analyze verify) and the
//! exact leakhound command line it runs is run here, with only its paths
//! and the CI system's variables filled in (the compose file is the seed's
//! example), plus `--only` one scenario of its shard and stand-in
//! dependents to keep it short.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join(path)).unwrap()).unwrap()
}

/// The documents `kubectl apply -k DIR` would apply: the kustomization's
/// resources (files, or directories with their own kustomization), with
/// its strategic-merge patches applied as kustomize does for what the
/// templates use (a patch finds its document by kind and name; maps merge;
/// `containers` merge by name; any other list is replaced).
pub(crate) fn kustomize(dir: &Path) -> Vec<serde_yaml_ng::Value> {
    use serde_yaml_ng::Value;
    fn merge(base: &mut Value, patch: &Value, key: &str) {
        match (base, patch) {
            (Value::Mapping(b), Value::Mapping(p)) => {
                for (k, v) in p {
                    let name = k.as_str().unwrap_or_default().to_string();
                    match b.get_mut(k) {
                        Some(old) => merge(old, v, &name),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (Value::Sequence(b), Value::Sequence(p)) if key == "containers" => {
                for item in p {
                    match b.iter_mut().find(|c| c["name"] == item["name"]) {
                        Some(old) => merge(old, item, ""),
                        None => b.push(item.clone()),
                    }
                }
            }
            (b, p) => *b = p.clone(),
        }
    }
    let k = &yaml_docs(&dir.join("kustomization.yaml"))[0];
    let mut out = Vec::new();
    for r in k["resources"].as_sequence().into_iter().flatten() {
        let path = dir.join(r.as_str().unwrap());
        if path.is_dir() {
            out.extend(kustomize(&path));
        } else {
            out.extend(yaml_docs(&path));
        }
    }
    for p in k["patches"].as_sequence().into_iter().flatten() {
        for patch in yaml_docs(&dir.join(p["path"].as_str().unwrap())) {
            let target = out
                .iter_mut()
                .find(|d| {
                    d["kind"] == patch["kind"] && d["metadata"]["name"] == patch["metadata"]["name"]
                })
                .unwrap_or_else(|| {
                    panic!("the patch's target is not among the resources: {patch:?}")
                });
            merge(target, &patch, "");
        }
    }
    out
}

/// The leakhound container of a kustomization's Deployment.
pub(crate) fn sidecar(dir: &Path) -> serde_yaml_ng::Value {
    kustomize(dir)
        .into_iter()
        .find(|v| v["kind"] == "Deployment")
        .and_then(|v| {
            v["spec"]["template"]["spec"]["containers"]
                .as_sequence()?
                .iter()
                .find(|c| c["name"] == "leakhound")
                .cloned()
        })
        .expect("a Deployment with a leakhound container")
}

/// The base is the sidecar manifest as it is, and the prove variant
/// changes only the leakhound container (image, --prove, NET_ADMIN) and
/// the profile (a [capture] the proof holds the ruleset to), leaving the
/// gateway and node exporter as they are.
#[test]
fn the_kubernetes_prove_variant_patches_only_the_sidecar_and_its_profile() {
    let k = repo().join("ci/kubernetes");
    let base = kustomize(&k);
    let plain = yaml_docs(&repo().join("ci/kubernetes/leakhound-audit-sidecar.yaml"));
    assert_eq!(base, plain);
    let prove = kustomize(&k.join("prove"));
    assert_eq!(prove.len(), base.len());
    let c = sidecar(&k.join("prove"));
    assert_eq!(c["image"], "leakhound/leakhound:prove");
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--prove"), "{args:?}");
    let caps: Vec<&str> = c["securityContext"]["capabilities"]["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"NET_ADMIN"), "{caps:?}");
    // The volumes and limits come from the base.
    assert_eq!(c["volumeMounts"], sidecar(&k)["volumeMounts"]);
    assert_eq!(c["resources"], sidecar(&k)["resources"]);
    let other = |docs: &[serde_yaml_ng::Value]| {
        docs.iter()
            .find(|v| v["kind"] == "Deployment")
            .unwrap()["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|c| c["name"] != "leakhound")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(other(&prove), other(&base));
    let map = prove.iter().find(|v| v["kind"] == "ConfigMap").unwrap();
    let p =
        leakhound::model::audit::parse("audit.toml", map["data"]["audit.toml"].as_str().unwrap())
            .unwrap();
    assert!(
        p.capture.endpoint.is_some(),
        "the prove profile has no [capture] endpoint"
    );
    assert!(!p.capture.allowed.is_empty());
}

/// Every document of a YAML file (empty ones left out).
fn yaml_docs(path: &Path) -> Vec<serde_yaml_ng::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn the_yaml_templates_pass_yamllint() {
    let o = Command::new("yamllint")
        .arg("-c")
        .arg(repo().join("ci/yamllint.yml"))
        .arg(repo().join("ci/github-actions.yml"))
        .arg(repo().join("ci/gitlab-ci.yml"))
        .arg(repo().join("ci/kubernetes/leakhound-audit-sidecar.yaml"))
        .arg(repo().join("ci/kubernetes/kustomization.yaml"))
        .arg(repo().join("ci/kubernetes/prove/kustomization.yaml"))
        .arg(repo().join("ci/kubernetes/prove/prove.yaml"))
        .output()
        .expect("yamllint (ci/setup.sh installs it)");
    assert!(o.status.success(), "{}", common::printed(&o));
}

#[test]
fn the_systemd_units_verify() {
    // As installed: ExecStart's program must exist, so the test's copy
    // points at the binary under test; nothing else changes.
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "leakhound-check.service",
        "leakhound-check.timer",
        "leakhound-audit.service",
        "leakhound-audit.timer",
        "leakhound-failed@.service",
    ] {
        let text = std::fs::read_to_string(repo().join("ci/systemd").join(f)).unwrap();
        std::fs::write(
            dir.path().join(f),
            text.replace("/usr/local/bin/leakhound", env!("CARGO_BIN_EXE_leakhound")),
        )
        .unwrap();
    }
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("leakhound-check.timer"))
        .arg(dir.path().join("leakhound-check.service"))
        .arg(dir.path().join("leakhound-audit.timer"))
        .arg(dir.path().join("leakhound-audit.service"))
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze");
    assert!(o.status.success(), "{}", common::printed(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).trim().is_empty(),
        "{}",
        common::printed(&o)
    );
}

/// The command lines the templates run, as written.
fn command_lines() -> Vec<(&'static str, String)> {
    let gh = yaml("ci/github-actions.yml");
    let gh_run = gh["jobs"]["leak-test"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("leakhound run"))
        .unwrap()
        .to_string();
    let gl = yaml("ci/gitlab-ci.yml");
    let gl_run = gl["leak-test"]["script"][0].as_str().unwrap().to_string();
    let unit = std::fs::read_to_string(repo().join("ci/systemd/leakhound-check.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    let cron = std::fs::read_to_string(repo().join("ci/cron")).unwrap();
    let cron_line = cron
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("leakhound run"))
        .unwrap()
        .split_whitespace()
        .skip(5)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        ("github", gh_run),
        ("gitlab", gl_run),
        ("systemd", exec),
        ("cron", cron_line),
    ]
}

/// Fills in what the CI system or the installation would: shard 1 of 4,
/// the binary under test, the seed's compose file, paths under `dir`.
fn filled(line: &str, dir: &Path) -> Vec<String> {
    let line = line
        .replace("${{ matrix.shard }}", "1")
        .replace("$CI_NODE_INDEX", "1")
        .replace("$CI_NODE_TOTAL", "4");
    let words = shlex::split(&line).expect("a shell command line");
    let compose = repo().join("docs/examples/seed/docker-compose.yml");
    words
        .into_iter()
        .filter(|w| w != "sudo")
        .map(|w| {
            if w.ends_with("/leakhound") && !w.starts_with('-') {
                env!("CARGO_BIN_EXE_leakhound").to_string()
            } else if w.ends_with("docker-compose.yml") {
                compose.display().to_string()
            } else if w.starts_with("reports/") || w.starts_with("/var/lib/") {
                dir.join(w.trim_start_matches('/')).display().to_string()
            } else {
                w
            }
        })
        .collect()
}

#[test]
fn the_templates_command_lines_run() {
    common::require_root();
    for (which, line) in command_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = filled(&line, dir.path());
        assert_eq!(argv[1], "run", "{which}: {argv:?}");
        // One scenario of its shard (the first `list` shows for it).
        let mut list = Command::new(&argv[0]);
        list.arg("list");
        if let Some(i) = argv.iter().position(|a| a == "--shard") {
            list.args(["--shard", &argv[i + 1]]);
        }
        let listed = list.output().unwrap();
        let first = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        argv.extend([
            "--only".into(),
            first.clone(),
            "--dependents".into(),
            "stand-in".into(),
        ]);
        let o = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert!(
            o.status.success(),
            "{which}: {argv:?}\n{}",
            common::printed(&o)
        );
        let prom = argv
            .iter()
            .position(|a| a == "--prometheus")
            .map(|i| PathBuf::from(&argv[i + 1]))
            .unwrap();
        let metrics = std::fs::read_to_string(&prom).unwrap();
        assert!(
            metrics.contains(&format!("leakhound_check_success{{check=\"{first}\"")),
            "{which}: {metrics}"
        );
    }
}

/// The audit templates' command lines, as written: the systemd unit's, the
/// cron line's and the Kubernetes sidecar's arguments, and its prove
/// variant's.
fn audit_command_lines() -> Vec<(&'static str, Vec<String>)> {
    let unit = std::fs::read_to_string(repo().join("ci/systemd/leakhound-audit.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let cron = std::fs::read_to_string(repo().join("ci/cron")).unwrap();
    let cron_line = cron
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("leakhound audit"))
        .unwrap()
        .split_whitespace()
        .skip(5)
        .collect::<Vec<_>>()
        .join(" ");
    let k8s =
        std::fs::read_to_string(repo().join("ci/kubernetes/leakhound-audit-sidecar.yaml")).unwrap();
    let mut sidecar = None;
    for doc in serde_yaml_ng::Deserializer::from_str(&k8s) {
        let v = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if v["kind"] == "Deployment" {
            let c = v["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "leakhound")
                .unwrap()
                .clone();
            let mut argv = vec!["/usr/local/bin/leakhound".to_string()];
            argv.extend(
                c["args"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string()),
            );
            sidecar = Some(argv);
        }
    }
    let mut prove = vec!["/usr/local/bin/leakhound".to_string()];
    prove.extend(
        self::sidecar(&repo().join("ci/kubernetes/prove"))["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    vec![
        ("systemd", shlex::split(exec).unwrap()),
        ("cron", shlex::split(&cron_line).unwrap()),
        ("kubernetes", sidecar.unwrap()),
        ("kubernetes, prove", prove),
    ]
}

/// The profile the Kubernetes manifest ships reads (it audits the internet,
/// so the lab runs the lab's profile in its place).
#[test]
fn the_kubernetes_profile_reads() {
    let k8s =
        std::fs::read_to_string(repo().join("ci/kubernetes/leakhound-audit-sidecar.yaml")).unwrap();
    let map = serde_yaml_ng::Deserializer::from_str(&k8s)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .find(|v| v["kind"] == "ConfigMap")
        .unwrap();
    let text = map["data"]["audit.toml"].as_str().unwrap();
    let p = leakhound::model::audit::parse("audit.toml", text).unwrap();
    assert_eq!(p.name, "downloads");
    let gluetun = std::fs::read_to_string(repo().join("docs/examples/audit/gluetun.toml")).unwrap();
    leakhound::model::audit::parse("gluetun.toml", &gluetun).unwrap();
}

/// Each audit template's command line runs against a live lab gateway with
/// only the installation's values filled in: the gateway (`--container
/// gluetun` becomes the lab gateway's namespace; the sidecar's `--netns
/// self` runs inside it), the profile (the lab's), and paths under a
/// temporary folder. The sidecar's `--every` loop writes its metrics and
/// ends with status 0 on SIGTERM, as when its pod stops.
#[test]
fn the_audit_templates_command_lines_run() {
    common::require_root();
    let lab = common::UpLab::up();
    let profile = repo().join("docs/examples/audit/lab.toml");
    for (which, line) in audit_command_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut argv: Vec<String> = Vec::new();
        let mut words = line.into_iter();
        while let Some(w) = words.next() {
            if w.ends_with("/leakhound") && !w.starts_with('-') {
                argv.push(env!("CARGO_BIN_EXE_leakhound").into());
            } else if w == "--container" {
                words.next();
                argv.extend(["--netns".into(), lab.gw().to_string()]);
            } else if w == "/etc/leakhound/audit.toml" {
                argv.push(profile.display().to_string());
            } else if w.starts_with('/') {
                argv.push(
                    dir.path()
                        .join(w.trim_start_matches('/'))
                        .display()
                        .to_string(),
                );
            } else {
                argv.push(w);
            }
        }
        assert_eq!(argv[1], "audit", "{which}: {argv:?}");
        let prom = argv
            .iter()
            .position(|a| a == "--prometheus")
            .map(|i| PathBuf::from(&argv[i + 1]))
            .unwrap();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        // Held until the command has started: its descriptor is entered
        // between fork and exec.
        let ns = leakhound::lab::netns::Netns::open(lab.gw()).unwrap();
        if argv.iter().any(|a| a == "self") {
            ns.command(&mut cmd).unwrap();
        }
        let o = if argv.iter().any(|a| a == "--every") {
            let mut child = cmd.spawn().unwrap();
            let t = std::time::Instant::now();
            while !prom.exists() {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(60),
                    "{which}: no metrics"
                );
                assert!(child.try_wait().unwrap().is_none(), "{which}: it ended");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.output().unwrap()
        };
        assert!(
            o.status.success(),
            "{which}: {argv:?}\n{}",
            common::printed(&o)
        );
        let metrics = std::fs::read_to_string(&prom).unwrap();
        assert!(
            metrics.lines().any(|l| l == "leakhound_run_success 1"),
            "{which}: {metrics}"
        );
    }
}
