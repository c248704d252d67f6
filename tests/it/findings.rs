//! The harness never cries wolf and never loses a report: a stop sent to
//! the gateway the instant it exists is honoured; a gateway that dies is a
//! finding (its scenario fails with the exit and the leaks, the next one
//! still runs); a namespace changed from outside makes scenarios fail with
//! the leaked packets named and a complete JUnit, never a crash; `ip netns
//! add` run by another tool never stops the lab from being removed.
//! Needs root.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{TestLab, builtin, ours};
use leakhound::lab::netns;
use leakhound::model::topology::host;
use leakhound::probe;
use leakhound::report::junit;
use leakhound::scenario::model::{Action, Interference, Step};
use leakhound::scenario::runner::{Outcome, ScenarioResult};
use nix::sys::signal::Signal;

/// The run's JUnit: every scenario a suite, every case a testcase, and
/// valid against Jenkins' schema.
fn assert_complete_junit(results: &[ScenarioResult]) -> String {
    let xml = junit::render(results);
    for r in results {
        assert!(
            xml.contains(&format!("name=\"{0}\" package=\"testsuite/{0}\"", r.name)),
            "{xml}"
        );
        let n = xml
            .matches(&format!("classname=\"{}.{}\"", r.target, r.name))
            .count();
        assert_eq!(n, r.cases.len(), "{}: testcases in the JUnit", r.name);
    }
    common::assert_valid_junit(&xml);
    xml
}

fn interfere(name: &str, i: Interference) -> Step {
    Step {
        name: name.into(),
        action: Action::Interfere(i),
    }
}

/// The GET /v1/vpn/status answer, with the lab's monitor role.
async fn vpn_status(ns: &netns::Netns) -> Result<String, String> {
    let creds = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "lab:lab-password",
    );
    probe::http_request(
        ns,
        "GET",
        "127.0.0.1:8000".parse().unwrap(),
        "/v1/vpn/status",
        &[("authorization".into(), format!("Basic {creds}"))],
        String::new(),
        Duration::from_secs(2),
    )
    .await
    .map(|(_, body)| body)
    .map_err(|e| e.to_string())
}

/// Proof that "any machine speed" is fine: the signal goes out right after
/// spawn, before the gateway can have installed anything, 50 times. The
/// gateway never dies of it, and honours it: after a stop the tunnel stays
/// down (no handshake, status "stopped"); after a start it comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_the_instant_the_gateway_exists_is_honoured_50_times() {
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let runner = t.runner(out.path(), &[]);
    let ns = t.lab.ns(host::GW).unwrap();
    let scn = builtin("baseline");
    for i in 0..50u32 {
        let stop = i.is_multiple_of(2);
        let before = t.services.wg.status.borrow().handshakes;
        let log = out.path().join(format!("gw-{i}.log"));
        let mut gw = runner.start_idle_gateway_async(&scn, &log).await.unwrap();
        let pid = gw.pid().unwrap();
        nix::sys::signal::kill(
            pid,
            if stop {
                Signal::SIGUSR1
            } else {
                Signal::SIGUSR2
            },
        )
        .unwrap();
        // The control server answers once the gateway is up; the answer
        // says what the gateway made of the signal.
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = if stop { "stopped" } else { "running" };
        let status = loop {
            if let Some(exit) = gw.try_exited() {
                panic!(
                    "round {i}: the gateway died ({exit}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            match vpn_status(ns).await {
                Ok(s) if s.contains(want) => break s,
                _ if Instant::now() > deadline => panic!(
                    "round {i}: status never {want}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        if stop {
            let after = t.services.wg.status.borrow().handshakes;
            assert_eq!(
                after, before,
                "round {i}: a stopped gateway handshook: {status}"
            );
        } else {
            let mut s = t.services.wg.status.clone();
            tokio::time::timeout(
                Duration::from_secs(10),
                s.wait_for(|s| s.handshakes > before),
            )
            .await
            .unwrap_or_else(|_| panic!("round {i}: no handshake after a start"))
            .unwrap();
        }
        assert!(gw.try_exited().is_none(), "round {i}: died");
        // SIGTERM is honoured too: a clean exit.
        nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), gw.exited())
            .await
            .expect("the gateway did not stop on SIGTERM");
        assert!(
            matches!(exit, leakhound::target::GatewayEnd::Exited(0)),
            "round {i}: {exit}"
        );
    }
    drop(runner);
    t.finish();
}

/// The killed gateway is the finding: its scenario fails with the exit and
/// with the leaks the probes after it caused (a dead gateway whose rules are
/// gone); the steps after the death still ran; the next scenario in the
/// same lab passes; the JUnit holds both, complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_dies_is_a_finding_and_the_run_goes_on() {
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let runner = t.runner(out.path(), &[]);
    let mut dies = builtin("baseline");
    dies.name = "gateway-dies".into();
    dies.steps.insert(
        1,
        interfere(
            "the OOM killer takes the gateway, and its rules are flushed",
            Interference {
                kill: true,
                nft: Some("flush ruleset\n".into()),
                routes: Some(leakhound::model::scenario::RouteInjection::Around),
                ..Default::default()
            },
        ),
    );
    let r1 = runner.run(&dies).await;
    let r2 = runner.run(&builtin("baseline")).await;
    drop(runner);
    t.finish();

    assert!(!r1.passed() && !r1.errored(), "{:#?}", r1.cases);
    let stayed_up = r1
        .cases
        .iter()
        .find(|c| c.name.starts_with("the gateway under test stayed up"))
        .unwrap();
    match &stayed_up.outcome {
        Outcome::Failed { message, .. } => assert!(
            message.contains("exited on its own") && message.contains("signal: 9"),
            "{message}"
        ),
        o => panic!("{o:?}"),
    }
    // The probe after the death ran, and saw the home address: a leak.
    let f = r1.failures();
    assert!(
        f.iter().any(|(_, m)| m.contains("whoami saw 198.51.100.2")),
        "{f:#?}"
    );
    assert!(
        r1.leaks.iter().any(|l| l.wire == "uplink"),
        "{:#?}",
        r1.leaks
    );
    assert!(r2.passed(), "the next scenario: {:#?}", r2.failures());
    let xml = assert_complete_junit(&[r1, r2]);
    assert!(xml.contains("exited on its own"), "{xml}");
}

/// Interference certain to overlap the probes: before every probe step the
/// ruleset is flushed and a fallback route added. The scenario fails with
/// the leaked packets named; nothing crashes; the JUnit is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interference_before_every_probe_fails_with_leaks_and_a_complete_junit() {
    let mut scn = builtin("killswitch-tunnel-down");
    scn.name = "interfered".into();
    let mut steps = Vec::new();
    for s in scn.steps.drain(..) {
        if matches!(
            s.action,
            Action::Http { .. } | Action::Dns { .. } | Action::Udp { .. } | Action::Ping { .. }
        ) {
            steps.push(interfere(
                &format!("before \"{}\": flush and route around", s.name),
                Interference {
                    nft: Some("flush ruleset\n".into()),
                    routes: Some(leakhound::model::scenario::RouteInjection::Around),
                    ..Default::default()
                },
            ));
        }
        steps.push(s);
    }
    scn.steps = steps;
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let r = t.runner(out.path(), &[]).run(&scn).await;
    t.finish();
    assert!(!r.passed() && !r.errored(), "{:#?}", r.cases);
    for wire in ["gw", "uplink"] {
        let case = format!("no packet on {wire} is a leak");
        let (_, msg) = r
            .failures()
            .into_iter()
            .find(|(c, _)| *c == case)
            .unwrap_or_else(|| panic!("{case} did not fail"));
        assert!(msg.contains("leaked on") && msg.contains("->"), "{msg}");
    }
    assert!(
        r.leaks
            .iter()
            .any(|l| l.packet.to_string().contains("192.0.2.80:80")),
        "{:#?}",
        r.leaks
    );
    assert_complete_junit(&[r]);
}

/// A loop racing the scenario, flushing the rules and changing routes as
/// fast as it can: the only claim is that the run completes, reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_interference_never_crashes_the_run_or_loses_the_report() {
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let gw_ns = t.lab.ns(host::GW).unwrap().name().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let ns = netns::Netns::open(&gw_ns).unwrap();
            // From the moment a gateway runs (after the harness's own
            // positive control, which rightly refuses to judge a lab that
            // is being changed under it).
            let ino = ns.inode().unwrap();
            while netns::pids_in(ino).is_empty() && !stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let script = if rounds.is_multiple_of(2) {
                    "flush ruleset\n"
                } else {
                    "add table inet other\nadd chain inet other out { type filter hook output priority 10; policy accept; }\n"
                };
                let _ = leakhound::lab::nft_in(&ns, script);
                for args in [
                    &["route", "replace", "default", "via", "172.21.0.1"][..],
                    &["route", "del", "default"][..],
                    &["-6", "route", "replace", "default", "via", "2001:db8:21::1"][..],
                ] {
                    let mut cmd = Command::new("ip");
                    cmd.args(args)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    ns.command(&mut cmd).unwrap();
                    let _ = cmd.status();
                }
                rounds += 1;
            }
            rounds
        })
    };
    let runner = t.runner(out.path(), &[]);
    let r1 = runner.run(&builtin("killswitch-tunnel-down")).await;
    let r2 = runner.run(&builtin("baseline")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = racer.join().unwrap();
    drop(runner);
    t.finish();
    assert!(rounds > 10, "the racer only ran {rounds} rounds");
    // The only claim: it completed, and every case is in a valid JUnit
    // (harness errors are allowed: a lab changed under the positive control
    // cannot be judged, and says so).
    assert_complete_junit(&[r1, r2]);
}

/// Another tool's first `ip netns add` while a lab is up (iproute2 then
/// bind-mounts /run/netns onto itself unless it already is a mount): the
/// lab is still removed completely, and so is the other namespace by its
/// own tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_netns_add_from_outside_does_not_stop_the_lab_from_being_removed() {
    let t = TestLab::new().await;
    let run_id = t.run_id.clone();
    let other = format!("other-{run_id}");
    let ok = Command::new("ip")
        .args(["netns", "add", &other])
        .status()
        .unwrap();
    assert!(ok.success());
    t.finish();
    assert!(ours(&run_id).is_empty(), "left: {:?}", ours(&run_id));
    let ok = Command::new("ip")
        .args(["netns", "del", &other])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The CLI: a scenario whose gateway dies exits 1 (a finding) with the
/// JUnit written; a bad scenario file exits 2 before anything runs.
#[test]
fn exit_codes_findings_are_1_harness_failures_are_2() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dies.toml"),
        "name = \"dies\"\n[[step]]\naction = \"wait-handshake\"\n\
         [[step]]\naction = \"interfere\"\nkill = true\n\
         [[step]]\naction = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"seen-as 203.0.113.77\"\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "run",
            "--quiet",
            "--only",
            "dies",
            "--only",
            "baseline",
            "--scenarios",
        ])
        .arg(dir.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&st.stdout);
    assert_eq!(
        st.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let xml = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(
        xml.contains("package=\"testsuite/dies\"")
            && xml.contains("package=\"testsuite/baseline\""),
        "{xml}"
    );
    assert!(xml.contains("exited on its own"), "{xml}");
    assert!(stdout.contains("PASS baseline"), "{stdout}");
    // --quiet prints a run that does not pass: its failing check, not the
    // ones that passed.
    assert!(stdout.contains("FAIL  dies: "), "{stdout}");
    assert!(!stdout.contains("  ok    baseline"), "{stdout}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"bad\"\n[[step]]\naction = \"teleport\"\n",
    )
    .unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(["run", "--quiet", "--scenarios"])
        .arg(dir.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("teleport"),
        "{err}"
    );
}
