//! What the root integration tests share: building a lab with its services,
//! a runner over it, and the check that teardown left nothing behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use leakhound::lab::netns;
use leakhound::lab::services::{LabKeys, LabServices};
use leakhound::lab::{Lab, new_run_id};
use leakhound::model::topology::Topology;
use leakhound::scenario::model::{self as scenario, Scenario};
use leakhound::scenario::runner::{Runner, Tamper};

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

/// A built lab with its services running.
pub struct TestLab {
    pub lab: Lab,
    pub services: LabServices,
    pub run_id: String,
}

impl TestLab {
    pub async fn new() -> TestLab {
        require_root();
        let run_id = new_run_id();
        let lab = Lab::build(Topology::default_profile(), &run_id)
            .await
            .unwrap();
        assert_eq!(ours(&run_id).len(), lab.topology().hosts.len());
        let services = LabServices::start(&lab, LabKeys::generate()).await.unwrap();
        TestLab {
            lab,
            services,
            run_id,
        }
    }

    /// A runner writing to `out`, with extra gateway variables and damage.
    pub fn runner(&self, out: &Path, env: &[(&str, String)], tamper: Option<Tamper>) -> Runner<'_> {
        Runner {
            lab: &self.lab,
            services: &self.services,
            out_dir: out.to_path_buf(),
            gateway_exe: PathBuf::from(env!("CARGO_BIN_EXE_leakhound")),
            env_overrides: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            tamper,
            events: None,
        }
    }

    /// Stops the services, removes the lab and checks nothing is left.
    pub fn finish(self) {
        let TestLab {
            mut lab,
            services,
            run_id,
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
