//! What the root integration tests share: building a lab with its services,
//! a runner over it, and the check that teardown left nothing behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use leakhound::lab::netns;
use leakhound::lab::services::{LabKeys, LabServices};
use leakhound::lab::wgserver::ProviderKind;
use leakhound::lab::{Lab, new_run_id};
use leakhound::model::topology::Topology;
use leakhound::scenario::model::{self as scenario, Action, Interference, Scenario, Step};
use leakhound::scenario::runner::Runner;

pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests build network namespaces and need root (CI runs them as root)"
    );
}

/// The namespaces of run `run_id` that still exist.
pub fn ours(run_id: &str) -> Vec<String> {
    netns::list_ours()
        .into_iter()
        .filter(|n| netns::run_id_of(n) == Some(run_id))
        .collect()
}

pub fn builtin(name: &str) -> Scenario {
    scenario::builtin(&Topology::default_profile())
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no built-in scenario {name}"))
}

/// The built-in gateway as a target (this build's binary).
pub fn builtin_target() -> std::sync::Arc<dyn leakhound::target::GatewayTarget> {
    std::sync::Arc::new(leakhound::target::process::Builtin::new(
        "builtin",
        PathBuf::from(env!("CARGO_BIN_EXE_leakhound")),
    ))
}

/// A built lab with its services running.
pub struct TestLab {
    pub lab: Lab,
    pub profile: leakhound::profile::Profile,
    pub services: LabServices,
    pub run_id: String,
}

impl TestLab {
    pub async fn new() -> TestLab {
        Self::adopting(Default::default()).await
    }

    /// A lab whose dependent on 8080 is the real qBittorrent (the swarm
    /// scenarios drive it).
    pub async fn with_real_qbittorrent() -> TestLab {
        Self::with_real(leakhound::lab::apps::App::Qbittorrent, 8080).await
    }

    /// A lab whose dependent on 6789 is the real NZBGet (the Usenet
    /// scenario drives it).
    pub async fn with_real_nzbget() -> TestLab {
        Self::with_real(leakhound::lab::apps::App::Nzbget, 6789).await
    }

    /// A lab where `app` was asked for on `port`, but something else
    /// already listens there: it cannot start.
    pub async fn with_real_blocked(
        app: leakhound::lab::apps::App,
        port: u16,
    ) -> (TestLab, std::net::TcpListener) {
        let mut t = Self::without_stand_in(port).await;
        let squatter = t
            .lab
            .ns("gw")
            .unwrap()
            .run(move || std::net::TcpListener::bind(("0.0.0.0", port)))
            .unwrap()
            .unwrap();
        t.services.start_apps(&t.lab, &[(app, port)]).await.unwrap();
        (t, squatter)
    }

    /// A lab with the default stand-ins but the one on `port`.
    async fn without_stand_in(port: u16) -> TestLab {
        require_root();
        let lock = Lab::claim(&new_run_id()).unwrap();
        let stand_ins: Vec<(u16, String)> = leakhound::lab::dependents::default_stand_ins()
            .into_iter()
            .filter(|(p, _)| *p != port)
            .collect();
        Self::build_with(
            lock,
            Default::default(),
            ProviderKind::Boringtun,
            &stand_ins,
        )
        .await
    }

    async fn with_real(app: leakhound::lab::apps::App, port: u16) -> TestLab {
        let mut t = Self::without_stand_in(port).await;
        t.services.start_apps(&t.lab, &[(app, port)]).await.unwrap();
        t
    }

    /// A lab whose VPN provider's server is `provider`.
    pub async fn with_provider(provider: ProviderKind) -> TestLab {
        require_root();
        let lock = Lab::claim(&new_run_id()).unwrap();
        Self::build(lock, Default::default(), provider).await
    }

    /// A lab whose hosts in `adopt` are the namespaces of those processes
    /// (a container target's holder).
    pub async fn adopting(adopt: std::collections::BTreeMap<&'static str, i32>) -> TestLab {
        require_root();
        let lock = Lab::claim(&new_run_id()).unwrap();
        Self::adopting_locked(lock, adopt).await
    }

    /// [`TestLab::adopting`] under a run id already claimed.
    pub async fn adopting_locked(
        lock: leakhound::lab::netns::RunLock,
        adopt: std::collections::BTreeMap<&'static str, i32>,
    ) -> TestLab {
        require_root();
        Self::build(lock, adopt, ProviderKind::Boringtun).await
    }

    async fn build(
        lock: leakhound::lab::netns::RunLock,
        adopt: std::collections::BTreeMap<&'static str, i32>,
        provider: ProviderKind,
    ) -> TestLab {
        let stand_ins = leakhound::lab::dependents::default_stand_ins();
        Self::build_with(lock, adopt, provider, &stand_ins).await
    }

    async fn build_with(
        lock: leakhound::lab::netns::RunLock,
        adopt: std::collections::BTreeMap<&'static str, i32>,
        provider: ProviderKind,
        stand_ins: &[(u16, String)],
    ) -> TestLab {
        let run_id = lock.id().to_string();
        let lab = Lab::build_adopting(Topology::default_profile(), lock, adopt)
            .await
            .unwrap();
        assert_eq!(ours(&run_id).len(), lab.topology().hosts.len());
        let services = LabServices::start_with(&lab, LabKeys::generate(), provider, stand_ins)
            .await
            .unwrap();
        TestLab {
            lab,
            profile: leakhound::profile::Profile::seed(),
            services,
            run_id,
        }
    }

    /// A runner for another target.
    pub fn runner_for(
        &self,
        out: &Path,
        env: &[(&str, String)],
        target: std::sync::Arc<dyn leakhound::target::GatewayTarget>,
    ) -> Runner<'_> {
        Runner::builder(&self.lab, &self.profile, &self.services, target)
            .out_dir(out)
            .env_overrides(env.iter().map(|(k, v)| (*k, v.clone())))
            .build()
    }

    /// A runner writing to `out`, with extra gateway variables.
    pub fn runner(&self, out: &Path, env: &[(&str, String)]) -> Runner<'_> {
        self.runner_for(out, env, builtin_target())
    }

    /// Stops the services, removes the lab and checks nothing is left.
    pub fn finish(self) {
        let TestLab {
            mut lab,
            services,
            run_id,
            ..
        } = self;
        drop(services);
        lab.teardown();
        assert!(
            ours(&run_id).is_empty(),
            "namespaces left: {:?}",
            ours(&run_id)
        );
    }
}

/// The built-in gateway's kill switch removed (both of its tables).
pub const FLUSH_KILL_SWITCH: &str =
    "delete table inet leakhound\ndelete table netdev leakhound_egress\n";

/// Damage to the gateway done from outside, once it has set itself up: the
/// tests that prove a scenario can fail. It becomes an `interfere` step of
/// the scenario (the production runner has no test hooks).
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    /// An nftables script run in the gateway's namespace.
    pub nft: Option<String>,
    /// Also point the default routes around the tunnel.
    pub route_around: bool,
    /// Right after the step with this name (default: after the first
    /// `wait-handshake`).
    pub after_step: Option<String>,
    /// Replace the gateway host's resolv.conf with this text.
    pub resolv_conf: Option<String>,
}

/// `scn` with the damage inserted as a step.
pub fn tampered(mut scn: Scenario, t: &Tamper) -> Scenario {
    let at = match &t.after_step {
        Some(name) => scn
            .steps
            .iter()
            .position(|s| &s.name == name)
            .unwrap_or_else(|| panic!("{}: no step named {name:?}", scn.name)),
        None => scn
            .steps
            .iter()
            .position(|s| matches!(s.action, Action::WaitHandshake { .. }))
            .unwrap_or_else(|| panic!("{}: no wait-handshake step", scn.name)),
    };
    scn.steps.insert(
        at + 1,
        Step {
            name: "the gateway is tampered with from outside".into(),
            action: Action::Interfere(Interference {
                nft: t.nft.clone(),
                routes: t
                    .route_around
                    .then_some(leakhound::model::scenario::RouteInjection::Around),
                resolv_conf: t.resolv_conf.clone(),
                ..Default::default()
            }),
        },
    );
    scn
}

/// Validates JUnit XML against Jenkins' schema (ci/jenkins-junit.xsd) with
/// xmllint (libxml2-utils; ci/setup.sh installs it).
pub fn assert_valid_junit(xml: &str) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/jenkins-junit.xsd");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint not found: install libxml2-utils (ci/setup.sh does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `leakhound run ARGS --out OUT`, as a user types it; waits for it.
pub fn leakhound_run(args: &[&str], out: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Everything a command printed, stdout then stderr.
pub fn printed(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A path under the temporary directory named for this test and process,
/// emptied.
pub fn fresh_path(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("leakhound-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A lab started with `lab up`, taken down (and checked gone) on drop.
pub struct UpLab {
    pub state: leakhound::lab::detached::LabState,
}

impl UpLab {
    pub fn up() -> UpLab {
        Self::up_with(&[])
    }

    /// `lab up --env NAME=VALUE ...`.
    pub fn up_with(env: &[String]) -> UpLab {
        let mut args = vec!["lab".to_string(), "up".to_string()];
        for e in env {
            args.push("--env".into());
            args.push(e.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", printed(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let id = out
            .split_whitespace()
            .nth(1)
            .expect("lab ID is up")
            .to_string();
        let state = leakhound::lab::detached::find(Some(&id)).unwrap();
        UpLab { state }
    }

    pub fn gw(&self) -> &str {
        &self.state.gateway_netns
    }
}

impl Drop for UpLab {
    fn drop(&mut self) {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args(["lab", "down", &self.state.id])
            .output()
            .unwrap();
        if !std::thread::panicking() {
            assert!(o.status.success(), "{}", printed(&o));
            assert!(ours(&self.state.id).is_empty(), "lab down left namespaces");
            assert!(!self.state.logs.exists(), "lab down left its logs");
        }
    }
}

/// A run that has claimed its id and recorded (before making it) the
/// namespace `lh-<id>-<host>`, as `Netns::create` does first: the test then
/// plays what happened next, and `abandon`s the lock as a SIGKILL would.
/// Returns the claim, the run id and the namespace's name.
pub fn run_recording(host: &str) -> (netns::RunLock, String, String) {
    let id = new_run_id();
    let lock = netns::RunLock::acquire(&id).unwrap();
    let name = format!("lh-{id}-{host}");
    leakhound::lab::owned::record(
        &id,
        &leakhound::lab::owned::Record::Netns {
            name: name.clone(),
            ino: None,
        },
    )
    .unwrap();
    (lock, id, name)
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The damage is a finding (failed cases), never the harness's error.
pub fn assert_no_error(r: &leakhound::scenario::runner::ScenarioResult) {
    let errors: Vec<_> = r
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, leakhound::model::verdict::Outcome::Error { .. }))
        .map(|c| (&c.name, &c.outcome))
        .collect();
    assert!(errors.is_empty(), "{}: errors: {errors:#?}", r.name);
}
