//! The leak fuzzer on its own: killswitch-tunnel-down with every scripted
//! probe taken out (only the fault and the spray left) passes on the
//! built-in gateway and fails on gateways broken in ways no scenario names:
//! a kill switch that lets one DSCP class through, one that lets SCTP
//! through, one that lets TCP resets out. The root side's findings are
//! shown and fail only a strict run. Needs root.

use crate::common::{Tamper, TestLab, assert_no_error, builtin, tampered};
use leakhound::model::scenario::{Action, Scenario};
use leakhound::scenario::runner::{FuzzSettings, ScenarioResult};

/// killswitch-tunnel-down without its scripted probes and its proof: the
/// handshake, the tunnel stopped, the routes around it, the spray, the
/// tunnel back.
fn fuzzer_alone() -> Scenario {
    let mut scn = builtin("killswitch-tunnel-down");
    scn.steps.retain(|s| {
        !matches!(
            s.action,
            Action::Http { .. }
                | Action::Dns { .. }
                | Action::Udp { .. }
                | Action::Ping { .. }
                | Action::EncryptedDns { .. }
                | Action::Prove { .. }
        )
    });
    assert!(
        scn.steps
            .iter()
            .any(|s| matches!(s.action, Action::Fuzz(_))),
        "killswitch-tunnel-down has no fuzz step"
    );
    scn
}

const SPRAY: &str = "tunnel down: the leak fuzzer's spray does not get out";
const ROOT: &str = "leak fuzzer, root in the gateway namespace: tunnel down: the leak fuzzer's spray does not get out";

/// Runs the fuzzer alone after `nft` (none: the gateway as it is), with a
/// fixed seed.
async fn run(nft: Option<&str>, strict: bool) -> ScenarioResult {
    let scn = match nft {
        Some(script) => tampered(
            fuzzer_alone(),
            &Tamper {
                nft: Some(script.into()),
                after_step: Some("default routes around the tunnel appear".into()),
                ..Default::default()
            },
        ),
        None => fuzzer_alone(),
    };
    let t = TestLab::new().await;
    let out = tempfile::tempdir().unwrap();
    let mut runner = t.runner(out.path(), &[]);
    runner.fuzz = FuzzSettings { seed: 42, strict };
    let r = runner.run(&scn).await;
    t.finish();
    assert_no_error(&r);
    r
}

/// The spray's own case failed, naming the seed, the replay command and
/// a smallest packet that contains `packet`; the wire's leak case failed
/// too, attributed to the spray's step.
fn assert_caught(r: &ScenarioResult, packet: &str) {
    let f = r.failures();
    let (_, msg) = f
        .iter()
        .find(|(c, _)| c == &format!("leak fuzzer: {SPRAY}"))
        .unwrap_or_else(|| panic!("the spray's case did not fail: {f:#?}"));
    assert!(msg.contains("seed 0x"), "{msg}");
    assert!(
        msg.contains("replay: leakhound run --only killswitch-tunnel-down --seed 42"),
        "{msg}"
    );
    assert!(
        msg.contains(packet),
        "the smallest packet is not {packet:?}: {msg}"
    );
    assert!(msg.contains("from a dependent"), "{msg}");
    assert!(
        f.iter().any(|(c, _)| c == "no packet on gw is a leak"),
        "{f:#?}"
    );
    assert!(
        r.leaks.iter().any(|l| l.step.contains(SPRAY)),
        "{:#?}",
        r.leaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_alone_passes_on_the_builtin_gateway() {
    // Not strict: root in the namespace can write a spoofed source to an
    // allowed LAN, which the built-in gateway does not stop (shown).
    let r = run(None, false).await;
    assert!(r.passed(), "{:#?}", r.failures());
    let spray = r
        .cases
        .iter()
        .find(|c| c.name == SPRAY)
        .expect("the spray step's case");
    assert!(
        spray.log.iter().any(|l| l.contains("packet(s) sent")),
        "{:#?}",
        spray.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_catches_a_kill_switch_that_lets_one_dscp_class_through() {
    let r = run(
        Some(
            "insert rule inet leakhound output ip dscp cs1 accept\n\
             insert rule netdev leakhound_egress egress ip dscp cs1 accept\n",
        ),
        false,
    )
    .await;
    assert_caught(&r, "tos 0x20");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_catches_a_kill_switch_that_lets_sctp_through() {
    let r = run(
        Some(
            "insert rule inet leakhound output meta l4proto sctp accept\n\
             insert rule netdev leakhound_egress egress ip protocol sctp accept\n\
             insert rule netdev leakhound_egress egress ip6 nexthdr sctp accept\n",
        ),
        false,
    )
    .await;
    assert_caught(&r, "protocol 132");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_catches_a_kill_switch_that_lets_tcp_resets_out() {
    let r = run(
        Some(
            "insert rule inet leakhound output tcp flags & rst == rst accept\n\
             insert rule netdev leakhound_egress egress tcp flags & rst == rst accept\n",
        ),
        false,
    )
    .await;
    assert_caught(&r, "RST");
}

/// A hole only a firewall mark opens: the dependents cannot set one, so the
/// scenario passes and shows the root side's finding; a strict run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_side_findings_are_shown_and_fail_only_a_strict_run() {
    let hole = "insert rule inet leakhound output meta mark 0xca6c accept\n\
                insert rule netdev leakhound_egress egress meta mark 0xca6c accept\n";
    let r = run(Some(hole), false).await;
    assert!(r.passed(), "{:#?}", r.failures());
    let root = r.cases.iter().find(|c| c.name == ROOT).expect("root case");
    assert!(
        root.log
            .iter()
            .any(|l| l.contains("shown, not failing without --strict") && l.contains("mark 0xca6c")),
        "{:#?}",
        root.log
    );
    let r = run(Some(hole), true).await;
    let f = r.failures();
    assert!(
        f.iter()
            .any(|(c, m)| c == ROOT && m.contains("root: mark 0xca6c")),
        "{f:#?}"
    );
    // The dependents' side still passed: only root could use the hole.
    assert!(
        !f.iter().any(|(c, _)| c == &format!("leak fuzzer: {SPRAY}")),
        "{f:#?}"
    );
}
