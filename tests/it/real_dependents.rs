//! The real qBittorrent and NZBGet as the dependents on 8080 and 6789
//! (`run --dependents real`, the default where Debian's qbittorrent-nox and
//! nzbget are installed, as `ci/setup.sh` does): the LAN scenarios pass against it, the evidence
//! that a LAN probe reached it is its answer read off the gateway's wire,
//! and asking for it where it cannot be is an error, never a silent
//! fallback. Needs root and qbittorrent-nox.

use crate::common;

use crate::common::{fresh_path, leakhound_run, printed};

#[test]
fn the_lan_scenarios_pass_against_the_real_applications_and_say_so() {
    let out = fresh_path("pass");
    let o = leakhound_run(
        &[
            "--dependents",
            "real",
            "--only",
            "baseline",
            "--only",
            "lan-matrix",
            "--only",
            "killswitch-tunnel-down",
        ],
        &out,
    );
    let t = printed(&o);
    assert!(o.status.success(), "{t}");
    // The far end is qBittorrent itself: its answer, seen leaving the
    // gateway's namespace, is in the step's log.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("(answered by qBittorrent on 8080)"),
        "{junit}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn real_dependents_where_there_is_no_port_for_them_are_refused() {
    let dir = fresh_path("noport");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("docker-compose.yml");
    std::fs::write(
        &f,
        "services:\n  gluetun:\n    image: qmcgaw/gluetun\n    ports: [\"3000:3000\"]\n    environment:\n      FIREWALL_OUTBOUND_SUBNETS: 10.10.0.0/24\n",
    )
    .unwrap();
    let o = leakhound_run(
        &["--compose", f.to_str().unwrap(), "--dependents", "real"],
        &dir.join("out"),
    );
    let t = printed(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("--dependents real: this lab has no qBittorrent (8080) or NZBGet (6789) port"),
        "{t}"
    );
    // auto: the run goes on with stand-ins and says why.
    let o = leakhound_run(
        &["--compose", f.to_str().unwrap(), "--only", "baseline"],
        &dir.join("out"),
    );
    let t = printed(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(
            "dependents: stand-ins (this lab has no qBittorrent (8080) or NZBGet (6789) port)"
        ),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_does_not_start_fails_its_scenarios_with_the_reason() {
    // Something else holds qBittorrent's WebUI port: the run goes on, and
    // the scenario that drives qBittorrent fails at its first step, saying
    // why; nothing is skipped silently.
    use leakhound::lab::apps::App;
    let (t, squatter) = common::TestLab::with_real_blocked(App::Qbittorrent, 8080).await;
    let apps = t.services.apps.as_ref().unwrap();
    let why = apps
        .failure(App::Qbittorrent)
        .expect("a failure")
        .to_string();
    assert!(why.contains("8080 is taken"), "{why}");
    assert_eq!(apps.port_of(App::Qbittorrent), None);
    let out = tempfile::tempdir().unwrap();
    let r = t
        .runner(out.path(), &[])
        .run(&common::builtin("torrent-through-tunnel"))
        .await;
    drop(squatter);
    t.finish();
    let f = r.failures();
    assert!(
        f.iter()
            .any(|(c, m)| c == "qBittorrent is given the run's torrent"
                && m.contains("qBittorrent did not start")),
        "{f:#?}"
    );
    assert!(!r.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_applications_start_behind_a_closed_namespace() {
    // qBittorrent at its defaults asks the home router for a mapping (PCP,
    // then NAT-PMP) and searches for it over UPnP as soon as it starts:
    // before any gateway stands there, none of that may reach the lab (in
    // a deployment the dependents start behind their gateway), or the
    // router would have granted it before a scenario could see it.
    let t = common::TestLab::with_real_qbittorrent().await;
    let heard = t
        .services
        .log
        .wait_for(
            leakhound::model::topology::service::HOME_ROUTER,
            "",
            std::time::Duration::from_secs(5),
        )
        .await;
    let entries = t
        .services
        .log
        .find(leakhound::model::topology::service::HOME_ROUTER, "");
    t.finish();
    assert!(!heard, "the home router heard: {entries:?}");
}
