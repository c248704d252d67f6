//! Any gateway under test: the command target runs the reference gateway
//! built from stock parts (docker/reference/wg-quick-gw.sh: Debian's
//! wireguard-go, wireguard-tools, nftables, dnsmasq) and its deliberately
//! broken variants through the smoke subset (baseline, a kill-switch and an
//! IPv6 scenario). The correct one leaks nothing; the broken ones fail with
//! the leaked packets named. Scenarios a target cannot run are skipped with
//! the reason, never passed. Needs root.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::common::{TestLab, builtin, builtin_target};
use leakhound::model::scenario::Capability;
use leakhound::model::verdict::{Outcome, ScenarioResult};
use leakhound::target::{GatewayTarget, process};

fn reference(args: &[&str]) -> Arc<dyn GatewayTarget> {
    reference_script("wg-quick-gw.sh", args)
}

fn reference_script(name: &str, args: &[&str]) -> Arc<dyn GatewayTarget> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docker/reference")
        .join(name);
    let mut argv = vec![script.display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    Arc::new(process::Command::new("reference", argv, BTreeSet::new()))
}

/// Runs the named built-in scenarios against `target` in one lab.
async fn run(target: Arc<dyn GatewayTarget>, names: &[&str]) -> Vec<ScenarioResult> {
    target
        .preflight()
        .await
        .expect("the reference gateway can run here (ci/setup.sh installs its parts)");
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let runner = t.runner_for(out.path(), &[], target);
    let mut results = Vec::new();
    for n in names {
        results.push(runner.run(&builtin(n)).await);
    }
    drop(runner);
    t.finish();
    results
}

fn failed_cases(r: &ScenarioResult) -> Vec<String> {
    r.failures().into_iter().map(|(c, _)| c).collect()
}

/// The correct reference: nothing leaks in the smoke subset. What it fails
/// is a real difference: the per-subnet inbound policy is leakhound's own
/// variable, so the admin LAN cannot reach the dependents through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_reference_gateway_leaks_nothing() {
    let r = run(
        reference(&[]),
        &["baseline", "killswitch-tunnel-down", "ipv6-leak"],
    )
    .await;
    for s in &r {
        assert!(s.leaks.is_empty(), "{}: {:#?}", s.name, s.leaks);
        assert!(!s.errored(), "{}: {:#?}", s.name, s.cases);
        for c in failed_cases(s) {
            assert!(
                c.contains("admin LAN"),
                "{}: only the per-subnet inbound policy may differ, but {c:?} failed: {:#?}",
                s.name,
                s.failures()
            );
        }
    }
    assert!(r[2].passed(), "ipv6-leak: {:#?}", r[2].failures());
}

/// A gateway that does not report its kill switch and closes it 1 s after
/// it starts: the dependents send from its first instant, and the start's
/// traffic leaks (the storm's first probe goes out within milliseconds of
/// the exec, and the step says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_that_closes_its_kill_switch_late_fails_killswitch_startup() {
    let r = run(
        reference(&["--late-killswitch", "1"]),
        &["killswitch-startup"],
    )
    .await;
    let s = &r[0];
    assert!(!s.errored(), "{:#?}", s.cases);
    let start = "the gateway starts, and the dependents send from its first instant";
    let case = s
        .cases
        .iter()
        .find(|c| c.name == start)
        .expect("start case");
    assert!(
        case.log
            .iter()
            .any(|l| l.contains("does not report its kill switch: the traffic started at once")),
        "{:#?}",
        case.log
    );
    assert!(
        case.log
            .iter()
            .any(|l| l.starts_with("the first probe went out")
                && l.ends_with("ms after the gateway's start")),
        "{:#?}",
        case.log
    );
    let f = failed_cases(s);
    assert!(f.iter().any(|c| c == "no packet on gw is a leak"), "{f:#?}");
    assert!(
        f.iter().any(|c| c == "no packet on uplink is a leak"),
        "{f:#?}"
    );
    assert!(
        s.leaks.iter().any(|l| l.step == start
            && l.wire == "uplink"
            && l.packet.to_string().contains("-> 192.0.2.53:53")),
        "{:#?}",
        s.leaks
    );
}

/// The Gluetun-faithful reference (Gluetun's own iptables rules, policy
/// rules and tables, rebuilt from its source; docs/gluetun-findings.md):
/// its tunnel works, and three of Gluetun's known leaks show with their
/// packets: plaintext to the endpoint's port from any process (TunnelCrack
/// ServerIP: its VPN rule has no mark), flows made through the tunnel
/// leaving in clear once a policy rule goes around it (#2621: ESTABLISHED
/// accepted on any interface), and a LAN the policy denies reaching the
/// dependents (its input rule accepts any source to the local subnet; the
/// class of #2772).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gluetun_faithful_reference_shows_gluetuns_known_leaks() {
    let r = run(
        reference_script("gluetun-faithful-gw.sh", &[]),
        &["server-ip", "route-injection", "lan-matrix"],
    )
    .await;
    for s in &r {
        assert!(!s.errored(), "{}: {:#?}", s.name, s.cases);
        assert!(
            !failed_cases(s).contains(&leakhound::scenario::runner::STAYED_UP.to_string()),
            "{}: the reference exited: {:#?}",
            s.name,
            s.failures()
        );
    }
    let (server_ip, injection, lan) = (&r[0], &r[1], &r[2]);
    assert!(
        server_ip.leaks.iter().any(|l| l.wire == "gw"
            && l.packet
                .to_string()
                .contains("-> 203.0.113.10:51820: not WireGuard")),
        "server-ip: {:#?}",
        server_ip.leaks
    );
    assert!(
        !failed_cases(injection).contains(&"whoami sees the VPN exit address".to_string()),
        "route-injection: the tunnel did not work: {:#?}",
        injection.failures()
    );
    assert!(
        injection.leaks.iter().any(|l| {
            let p = l.packet.to_string();
            l.wire == "gw"
                && p.contains("10.64.0.2:")
                && p.contains("-> 192.0.2.80:")
                && (l.step.contains("rule injected") || l.step.contains("a policy rule"))
        }),
        "route-injection: {:#?}",
        injection.leaks
    );
    assert!(
        lan.failures()
            .iter()
            .any(|(c, m)| c == "lan-other cannot reach qBittorrent (8080)"
                && m.contains("dependents received the request from 192.168.30.10")),
        "lan-matrix: {:#?}",
        lan.failures()
    );
}

/// The message of the case that looked for a `prove` step's witness on
/// the wires.
fn witness_case(s: &ScenarioResult) -> String {
    s.failures()
        .into_iter()
        .find(|(c, _)| c.starts_with("prove, the witness on the wire"))
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("{}: no failed witness case: {:#?}", s.name, s.failures()))
}

/// The variants issue 28 added: a DNS hole, a kill switch that drops only
/// TCP and UDP, and one that lets every established connection out.
/// `prove` finds each hole's packet in the ruleset with the tunnel
/// stopped, and the wire shows it leave; the established one's after its
/// connection was put into conntrack (nothing else could show it: the
/// scripted probes open new connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_hole_and_the_tcp_udp_kill_switch_are_proven_open_and_the_wire_agrees() {
    for (args, packet) in [
        ("--dns-hole", "UDP 172.21.0.2:40000 -> 192.0.2.80:53"),
        ("--tcp-udp-killswitch", "ICMP 172.21.0.2 -> 192.0.2.80"),
        (
            "--established-hole",
            "TCP 172.21.0.2:40000 -> 192.0.2.80:80",
        ),
    ] {
        let r = run(reference(&[args]), &["killswitch-tunnel-down"]).await;
        let s = &r[0];
        assert!(!s.errored(), "{args}: {:#?}", s.cases);
        let step = s
            .failures()
            .into_iter()
            .find(|(c, _)| {
                c == "tunnel down: the ruleset is proven to let nothing else out on eth0"
            })
            .unwrap_or_else(|| panic!("{args}: the prove step passed: {:#?}", s.failures()));
        assert!(step.1.contains(packet), "{args}: {step:?}");
        let w = witness_case(s);
        assert!(
            w.contains(&format!("confirmed on the wire: gw: {packet}")),
            "{args}: {w}"
        );
        if args == "--established-hole" {
            assert!(
                w.contains("(witness: TCP") && w.contains("flags 0x10, ct state established"),
                "{args}: the wire showed another witness than the established one: {w}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_without_a_kill_switch_fails_with_the_leaks_named() {
    let r = run(
        reference(&["--no-killswitch"]),
        &["killswitch-tunnel-down", "ipv6-leak"],
    )
    .await;
    let ks = &r[0];
    let f = failed_cases(ks);
    assert!(
        f.contains(&"tunnel down: no HTTP over IPv4 to the internet".to_string()),
        "{f:#?}"
    );
    assert!(
        f.contains(&"no packet on gw is a leak".to_string()),
        "{f:#?}"
    );
    assert!(
        ks.leaks
            .iter()
            .any(|l| l.wire == "uplink" && l.packet.to_string().contains("-> 192.0.2.80:80")),
        "{:#?}",
        ks.leaks
    );
    assert!(
        r[1].leaks
            .iter()
            .any(|l| l.packet.src.is_some_and(|s| s.is_ipv6())),
        "ipv6-leak: {:#?}",
        r[1].leaks
    );
    // prove's witness, written from the namespace, seen on the wire.
    let w = witness_case(ks);
    assert!(
        w.contains("confirmed on the wire: gw: TCP 172.21.0.2:40000 -> 192.0.2.80:80"),
        "{w}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_with_an_ipv4_only_kill_switch_leaks_ipv6() {
    let r = run(
        reference(&["--ipv4-killswitch"]),
        &["killswitch-tunnel-down", "ipv6-leak"],
    )
    .await;
    for s in &r {
        assert!(!s.passed(), "{} passed with IPv6 open", s.name);
        assert!(
            s.leaks
                .iter()
                .any(|l| l.wire == "gw" && l.packet.to_string().contains("2001:db8:21::2")),
            "{}: {:#?}",
            s.name,
            s.leaks
        );
        if s.name == "killswitch-tunnel-down" {
            let w = witness_case(s);
            assert!(
                w.contains(
                    "confirmed on the wire: gw: TCP [2001:db8:21::2]:40000 -> [2001:db8:80::80]:80"
                ),
                "{w}"
            );
        }
        // Only IPv6 gets out: every leak is IPv6.
        assert!(
            s.leaks
                .iter()
                .all(|l| l.packet.src.is_some_and(|a| a.is_ipv6())),
            "{}: {:#?}",
            s.name,
            s.leaks
        );
    }
}

/// A scenario that needs what the target lacks is skipped, every case, with
/// the capability named; one that it can run runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_a_target_cannot_run_are_skipped_with_the_reason() {
    let r = run(reference(&[]), &["health", "control-auth"]).await;
    for s in &r {
        assert!(s.skipped() && !s.passed(), "{}: {:#?}", s.name, s.cases);
        for c in &s.cases {
            match &c.outcome {
                Outcome::Skipped { reason } => assert!(
                    reason.contains("lacks") && reason.contains("reference"),
                    "{reason}"
                ),
                o => panic!("{}: {o:?}", c.name),
            }
        }
    }
    let health = r[0].cases[0].outcome.clone();
    assert!(
        matches!(health, Outcome::Skipped { reason } if reason.contains(Capability::HealthServer.name()))
    );
    let xml = leakhound::report::junit::render(&r);
    common::assert_valid_junit(&xml);
    assert!(
        xml.contains("<skipped/>") && xml.contains("skipped: target reference"),
        "{xml}"
    );
}

/// A command that dies at once fails its scenario with its exit and log
/// tail; the next scenario still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_exits_at_once_is_a_finding_and_the_run_goes_on() {
    let target: Arc<dyn GatewayTarget> = Arc::new(process::Command::new(
        "dies",
        vec![
            "sh".into(),
            "-c".into(),
            "echo no tunnel for you >&2; exit 3".into(),
        ],
        BTreeSet::new(),
    ));
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let r1 = t
        .runner_for(out.path(), &[], target)
        .run(&builtin("baseline"))
        .await;
    let r2 = t
        .runner_for(out.path(), &[], builtin_target())
        .run(&builtin("baseline"))
        .await;
    t.finish();
    let f = r1.failures();
    let (_, msg) = f
        .iter()
        .find(|(c, _)| c == "the WireGuard handshake completes")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        msg.contains("exit status: 3") && msg.contains("no tunnel for you"),
        "{msg}"
    );
    assert!(
        f.iter()
            .any(|(c, _)| c.starts_with("the gateway under test stayed up")),
        "{f:#?}"
    );
    assert!(r2.passed(), "{:#?}", r2.failures());
}

/// The CLI's own checks: a program that does not exist, or is not
/// executable, stops the run before any scenario (exit 2).
#[test]
fn a_target_that_cannot_run_stops_the_run_before_any_scenario() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("gw.sh");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    for (argv, says) in [
        (vec!["/nonexistent/gateway"], "no such program"),
        (vec![plain.to_str().unwrap()], "is not executable"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args([
                "run", "--quiet", "--only", "baseline", "--target", "command", "--out",
            ])
            .arg(dir.path().join("out"))
            .arg("--")
            .args(&argv)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert!(!dir.path().join("out/junit.xml").exists());
    }
}

/// `leakhound compare` over the built-in and the reference gateway: one
/// table, unique JUnit names per target, pcaps per target.
#[test]
fn compare_runs_each_target_and_writes_a_table() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let script: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/reference/wg-quick-gw.sh");
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "compare", "--quiet", "--only", "baseline", "--only", "health", "--target", "builtin",
            "--target", "command", "--out",
        ])
        .arg(out.path())
        .arg("--")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    // The reference fails baseline's admin-LAN check, and it lets the real
    // qBittorrent's port mapping requests (PCP/NAT-PMP to the home router,
    // on the allowed LAN) through: exit 1, a finding.
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let table = std::fs::read_to_string(out.path().join("compare.md")).unwrap();
    assert!(
        table.starts_with("| scenario | builtin | command |"),
        "{table}"
    );
    assert!(table.contains("| baseline | pass | FAIL ("), "{table}");
    assert!(
        table.contains("| health | pass | skip (lacks health-server) |"),
        "{table}"
    );
    assert!(stdout.contains(&table), "{stdout}");
    let xml = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    common::assert_valid_junit(&xml);
    assert!(
        xml.contains("classname=\"builtin.baseline\"")
            && xml.contains("classname=\"command.baseline\"")
    );
    assert!(out.path().join("builtin/baseline-gw.pcap").exists());
    assert!(out.path().join("command/baseline-gw.pcap").exists());
}
