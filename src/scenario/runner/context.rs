//! The [`Runner`]: everything a run needs besides the scenarios (the lab,
//! its services, the profile, the gateway target, where reports go), made
//! with [`Runner::builder`], and what it derives from them for every
//! scenario: the gateway's variables, the leak policy of each watched wire,
//! the run's files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::lab::Lab;
use crate::lab::services::LabServices;
use crate::model::classify::LeakPolicy;
use crate::model::scenario::Scenario;
use crate::model::scenario::placeholder::{self, Placeholder};
use crate::model::topology::{addr, wire};
use crate::model::verdict::{Event, Outcome};
use crate::profile::{Profile, lab_env};
use crate::target::GatewayTarget;

/// How long one probe waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything a run needs besides the scenarios. Made with
/// [`Runner::builder`]; the fields are public to read (and, for now, for
/// branches that still write the struct out).
pub struct Runner<'a> {
    pub lab: &'a Lab,
    /// The network and policy under test (the seed's, or the user's).
    pub profile: &'a Profile,
    pub services: &'a LabServices,
    /// Where each scenario's pcaps and gateway log go.
    pub out_dir: PathBuf,
    /// The gateway under test.
    pub target: Arc<dyn GatewayTarget>,
    /// The container holding the gateway host's namespace, when the lab was
    /// built for a container target.
    pub holder: Option<String>,
    /// Extra Gluetun variables for every scenario, applied last (used by
    /// tests that break the gateway's configuration on purpose).
    pub env_overrides: BTreeMap<String, String>,
    pub events: Option<UnboundedSender<Event>>,
    /// Cancelled when the run is interrupted (Ctrl-C, SIGTERM): the step in
    /// flight is abandoned and written as an error, the rest as skipped,
    /// and the scenario is still torn down and reported.
    pub interrupt: CancellationToken,
    /// The leak fuzzer's seed and strictness for this run.
    pub fuzz: FuzzSettings,
}

/// The leak fuzzer's settings for a run.
#[derive(Debug, Clone, Copy)]
pub struct FuzzSettings {
    /// Every spray's seed derives from it (with the scenario's and the
    /// step's names): `--seed` replays a run's sprays.
    pub seed: u64,
    /// The root side's findings fail the scenario too (`--strict`).
    pub strict: bool,
}

impl Default for FuzzSettings {
    /// A fresh seed, not strict.
    fn default() -> Self {
        FuzzSettings {
            seed: rand::random(),
            strict: false,
        }
    }
}

impl<'a> Runner<'a> {
    /// A runner of `target` in `lab` (with its `services`) under
    /// `profile`. Unless the builder says otherwise: files go to the
    /// current folder, no events, no extra variables, never interrupted,
    /// no container holds the gateway host's namespace.
    pub fn builder(
        lab: &'a Lab,
        profile: &'a Profile,
        services: &'a LabServices,
        target: Arc<dyn GatewayTarget>,
    ) -> RunnerBuilder<'a> {
        RunnerBuilder {
            runner: Runner {
                lab,
                profile,
                services,
                out_dir: PathBuf::from("."),
                target,
                holder: None,
                env_overrides: BTreeMap::new(),
                events: None,
                interrupt: CancellationToken::new(),
                fuzz: FuzzSettings::default(),
            },
        }
    }
}

/// Makes a [`Runner`] ([`Runner::builder`]).
#[must_use]
pub struct RunnerBuilder<'a> {
    runner: Runner<'a>,
}

impl<'a> RunnerBuilder<'a> {
    /// Where each scenario's pcaps and gateway log go.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runner.out_dir = dir.into();
        self
    }

    /// Another gateway under test.
    pub fn target(mut self, target: Arc<dyn GatewayTarget>) -> Self {
        self.runner.target = target;
        self
    }

    /// Extra Gluetun variables for every scenario, applied last (added to
    /// those given before; a name given again takes the new value).
    pub fn env_overrides<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.runner
            .env_overrides
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Where the run's progress goes, as [`Event`]s.
    pub fn events(mut self, events: UnboundedSender<Event>) -> Self {
        self.runner.events = Some(events);
        self
    }

    /// Cancelled when the run is interrupted (see [`Runner::interrupt`]).
    pub fn interrupt(mut self, interrupt: CancellationToken) -> Self {
        self.runner.interrupt = interrupt;
        self
    }

    /// The container holding the gateway host's namespace (a lab built for
    /// a container target), if any.
    pub fn holder(mut self, holder: impl Into<Option<String>>) -> Self {
        self.runner.holder = holder.into();
        self
    }

    /// The leak fuzzer's seed and strictness.
    pub fn fuzz(mut self, fuzz: FuzzSettings) -> Self {
        self.runner.fuzz = fuzz;
        self
    }

    pub fn build(self) -> Runner<'a> {
        self.runner
    }
}

/// The leak policy of each watched wire: `allowed` is what the gateway's
/// wire may carry outside the tunnel besides the endpoint (the profile's);
/// `tunnel_mtu` the gateway's WIREGUARD_MTU, if set.
pub fn policies(
    allowed: &[ipnet::IpNet],
    tunnel_mtu: Option<u16>,
) -> BTreeMap<&'static str, LeakPolicy> {
    let endpoint = SocketAddr::new(addr::VPN_ENDPOINT.into(), addr::VPN_ENDPOINT_PORT);
    BTreeMap::from([
        (
            wire::GW,
            LeakPolicy {
                // The tunnel's addresses are the gateway's too: a packet for
                // them on the underlay is aimed at the gateway.
                local: vec![
                    addr::GW_ETH0.into(),
                    addr::GW_ETH0_V6.into(),
                    addr::TUNNEL_CLIENT.into(),
                    addr::TUNNEL_CLIENT_V6.into(),
                ],
                endpoint,
                allowed: allowed.to_vec(),
                tunnel_mtu,
            },
        ),
        (
            wire::UPLINK,
            LeakPolicy {
                local: vec![addr::HOME_UPLINK.into()],
                endpoint,
                allowed: vec![],
                tunnel_mtu,
            },
        ),
    ])
}

pub(crate) fn fail(message: impl Into<String>, detail: impl Into<String>) -> Outcome {
    Outcome::Failed {
        message: message.into(),
        detail: detail.into(),
    }
}

impl Runner<'_> {
    pub(crate) fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// The Gluetun variables the gateway gets: the lab's own, then the
    /// profile's policy (the seed's or the user's), then the scenario's,
    /// then the run's overrides.
    pub(crate) fn gateway_env(&self, scn: &Scenario) -> BTreeMap<String, String> {
        let mut env = lab_env(&self.services.keys, &self.lab.blocklist_dir());
        env.extend(self.profile.policy_env.clone());
        env.extend(scn.gateway_env.clone());
        env.extend(self.env_overrides.clone());
        // The run's placeholders ([`placeholder`]), in every value: the
        // scenario's were checked when it was parsed.
        let ca = self.lab.ca_file().display().to_string();
        let dir = crate::lab::owned::gateway_dir(self.lab.run_id())
            .display()
            .to_string();
        let commands = self.port_commands_file().display().to_string();
        // The real qBittorrent's WebUI (the stand-ins' port without it).
        let webui = format!(
            "127.0.0.1:{}",
            self.services
                .apps
                .as_ref()
                .and_then(|a| a.port_of(crate::lab::apps::App::Qbittorrent))
                .unwrap_or(8080)
        );
        for v in env.values_mut() {
            *v = placeholder::fill(v, |p| match p {
                Placeholder::QbittorrentWebui => webui.clone(),
                Placeholder::LabCa => ca.clone(),
                Placeholder::PortCommands => commands.clone(),
                Placeholder::LabDir => dir.clone(),
            });
        }
        env
    }

    /// Which lab service is the gateway's upstream resolver for `env`: what
    /// `provider-resolver` in a scenario's checks means. The gateway's own
    /// parser reads the variables; when it refuses them, `provider-dns`
    /// (the gateway will not start, and its scenario says why).
    pub(crate) fn provider_resolver(env: &BTreeMap<String, String>) -> &'static str {
        use crate::gateway::config::{GatewayConfig, Upstream};
        use crate::model::topology::service;
        match GatewayConfig::from_env(env.clone()).map(|c| c.dns.upstream) {
            Ok(Upstream::Tls { .. }) => service::PROVIDER_DOT,
            Ok(Upstream::Https { .. }) => service::DOH,
            Ok(Upstream::Plain(_) | Upstream::None(_)) | Err(_) => service::PROVIDER_DNS,
        }
    }

    /// Where scenarios' port-forwarding UP/DOWN commands write
    /// (`{port_commands}` in gateway variables).
    pub(crate) fn port_commands_file(&self) -> std::path::PathBuf {
        crate::lab::owned::gateway_dir(self.lab.run_id()).join("port-commands")
    }
}

/// A variable naming a file the harness uses, outside the run's gateway
/// folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{var} = {value:?}: the harness reads and writes this file, so it must be directly inside the run's gateway folder; write it as \"{{lab_dir}}/NAME\""
)]
pub struct OutsideRunFolder {
    pub var: String,
    pub value: String,
}

/// The file scenario variable `var` names, for the harness to write, read or
/// remove: only directly inside the run's gateway folder (`{lab_dir}/NAME`), never anywhere
/// else a scenario file could name (scenario files are code, but a typo
/// must not make root write or delete outside the lab). `Ok(None)` when the
/// variable is not set.
pub(crate) fn run_file(
    run_id: &str,
    env: &BTreeMap<String, String>,
    var: &str,
) -> Result<Option<std::path::PathBuf>, OutsideRunFolder> {
    let Some(v) = env.get(var) else {
        return Ok(None);
    };
    let p = std::path::PathBuf::from(v);
    if crate::lab::owned::inside_run_dir(run_id, &p) {
        Ok(Some(p))
    } else {
        Err(OutsideRunFolder {
            var: var.to_string(),
            value: v.clone(),
        })
    }
}

#[cfg(test)]
mod run_file_tests {
    use super::*;

    #[test]
    fn harness_files_named_by_variables_stay_in_the_run_folder() {
        let env: BTreeMap<String, String> = [
            ("A", "/run/leakhound/ab12cd/gateway/forwarded_port"),
            ("B", "/etc/passwd"),
            ("C", "/run/leakhound/ab12cd/../../../etc/passwd"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            run_file("ab12cd", &env, "A").unwrap().unwrap(),
            std::path::Path::new("/run/leakhound/ab12cd/gateway/forwarded_port")
        );
        for var in ["B", "C"] {
            let e = run_file("ab12cd", &env, var).unwrap_err();
            assert_eq!(e.var, var);
            let e = e.to_string();
            assert!(e.contains(var) && e.contains("{lab_dir}/NAME"), "{e}");
        }
        assert_eq!(run_file("ab12cd", &env, "D"), Ok(None));
    }
}
