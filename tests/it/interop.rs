//! Interop: the built-in gateway against Debian's wireguard-go as the VPN
//! provider's server (the lab's `--provider wireguard-go`), so the tunnel is
//! proven against a second, independent WireGuard implementation: the
//! handshake, a restart after a crash, the reconnect after an outage (the
//! provider stops answering through an nftables drop in front of it), and
//! the kill switch still caught when it is broken. Needs root and
//! wireguard-go (ci/setup.sh installs it).

use crate::common::{Tamper, TestLab, builtin, tampered};
use leakhound::lab::wgserver::ProviderKind;
use leakhound::model::verdict::ScenarioResult;

async fn run(names: &[&str], tamper: Option<Tamper>) -> Vec<ScenarioResult> {
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::with_provider(ProviderKind::WireguardGo).await;
    assert_eq!(t.services.wg.kind, ProviderKind::WireguardGo);
    let runner = t.runner(out.path(), &[]);
    let mut results = Vec::new();
    for n in names {
        let scn = match &tamper {
            Some(d) => tampered(builtin(n), d),
            None => builtin(n),
        };
        results.push(runner.run(&scn).await);
    }
    drop(runner);
    t.finish();
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_works_against_a_wireguard_go_provider() {
    let r = run(
        &[
            "baseline",
            "killswitch-gateway-crash",
            "reconnect",
            "gateway-restart",
        ],
        None,
    )
    .await;
    for s in &r {
        assert!(s.passed(), "{}: {:#?}", s.name, s.failures());
        assert!(s.leaks.is_empty(), "{}: {:#?}", s.name, s.leaks);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_kill_switch_is_still_caught_with_a_wireguard_go_provider() {
    let tamper = Tamper {
        nft: Some(crate::common::FLUSH_KILL_SWITCH.into()),
        ..Default::default()
    };
    let r = run(&["killswitch-tunnel-down"], Some(tamper)).await;
    assert!(!r[0].passed(), "passed despite the tampering");
    assert!(
        r[0].leaks.iter().any(|l| l.wire == "uplink"),
        "{:#?}",
        r[0].leaks
    );
}
