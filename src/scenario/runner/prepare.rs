//! Preparing a scenario: a clean gateway host and capture on every watched
//! wire before any traffic, the gateway's files, the positive control
//! (the capture must see what nothing blocks), then the gateway.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::context::{Runner, policies, run_file};
use super::run::{InFlight, POSITIVE_CONTROL, harness_error};
use super::state::RunState;
use crate::capture::Capture;
use crate::lab::LabError;
use crate::model::scenario::Scenario;
use crate::model::topology::{addr, host, wire};
use crate::model::verdict::{Outcome, Timeline};
use crate::poll::poll_until;
use crate::scenario::steps::lifecycle::write_key_file;
use crate::scenario::steps::report::{StepLog, StepReport};

impl Runner<'_> {
    /// Sets the scenario up: a clean gateway host and capture on every
    /// wire before any traffic, the gateway's files, the positive control,
    /// then the gateway. A failure to set up is the harness's: a case, and
    /// the steps are skipped.
    pub(super) async fn prepare<'s>(
        &self,
        scn: &'s Scenario,
        started: SystemTime,
        gw_log: PathBuf,
    ) -> InFlight<'s> {
        let nonces_from = crate::probe::nonce_mark();
        let mut timeline = Timeline::new();
        timeline.mark(started, "setup");
        let mut captures = Vec::new();
        let setup = self.set_up(&mut captures).await;
        let env = self.gateway_env(scn);
        self.prepare_files(&env);
        let st = RunState {
            metrics: Default::default(),
            old_key: None,
            current_key: self.services.keys.client_private,
            swarm: None,
            nzbs: Vec::new(),
            news_since: None,
            started_at: std::time::SystemTime::now(),
            scn,
            provider_resolver: Self::provider_resolver(&env),
            env,
            gateway: None,
            gw_log,
            handshakes_before: 0,
            handshake_after: None,
            firewall_after: None,
            storm: None,
            flows: None,
            forwarded_listener: None,
            forwarded_task: None,
            unexpected_exit: None,
            readiness: Vec::new(),
            step: String::new(),
            sprays: Vec::new(),
            witnesses: Vec::new(),
        };
        let allowed = policies(&self.profile.allowed, None)
            .get(wire::GW)
            .map(|p| p.allowed.clone())
            .unwrap_or_default();
        let mut run = InFlight {
            scn,
            started,
            st,
            captures,
            cases: Vec::new(),
            timeline,
            halted: None,
            controls: Vec::new(),
            evidence: Vec::new(),
            allowed,
            previous_mark: "setup".to_string(),
            nonces_from,
            last_fault: None,
        };
        if let Err(e) = setup {
            let message = format!(
                "the harness could not set the scenario up: {}",
                crate::errfmt::chain(&e)
            );
            run.cases.push(self.finish_case(
                scn,
                "set up the lab for the scenario",
                harness_error(&message),
                Duration::ZERO,
                vec![],
            ));
            run.halted = Some(message);
            return run;
        }
        // Before any gateway: the capture must see a probe that nothing
        // blocks, on every watched wire, or nothing it reports can be
        // trusted (a blind capture would pass every scenario).
        let t = Instant::now();
        let (control, marker) = self.positive_control(&run.captures, &scn.leak_wires).await;
        run.controls.push(marker);
        if matches!(control.outcome, Outcome::Error { .. }) {
            run.halted = Some("the capture is blind".into());
        }
        run.cases.push(self.finish_case(
            scn,
            POSITIVE_CONTROL,
            control.outcome,
            t.elapsed(),
            control.log,
        ));
        if run.halted.is_none() && scn.gateway_start {
            self.start_gateway(&mut run.st).await;
        }
        run
    }

    /// A clean gateway host, then capture on every watched wire (those
    /// started are in `captures` even when a later one fails).
    async fn set_up(&self, captures: &mut Vec<Capture>) -> Result<(), LabError> {
        self.reset_gw().await?;
        for tap in &self.lab.topology().taps {
            let ns = self.lab.ns(tap.host)?;
            captures.push(Capture::start(ns, tap.ifname, tap.wire).map_err(|e| {
                LabError::Service {
                    service: format!("capture on {}", tap.wire),
                    source: std::io::Error::other(e),
                }
            })?);
        }
        Ok(())
    }

    /// The gateway's files in the run's folder, before it starts: no
    /// status or port-command file of an earlier gateway, and the lab's
    /// key where the scenario's variables say the gateway reads it.
    fn prepare_files(&self, env: &BTreeMap<String, String>) {
        // A status file left by an earlier gateway must not be read as this one's.
        if let Ok(Some(f)) = run_file(self.lab.run_id(), env, "VPN_PORT_FORWARDING_STATUS_FILE") {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_file(self.port_commands_file());
        // A gateway that reads its key from a secret file finds the lab's.
        match run_file(self.lab.run_id(), env, "WIREGUARD_PRIVATE_KEY_SECRETFILE") {
            Ok(Some(f)) => {
                if let Err(e) = write_key_file(&f, &self.services.keys.client_private) {
                    tracing::warn!("writing the gateway's key file {}: {e}", f.display());
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// The positive control: a DNS query carrying a nonce from the gateway
    /// host to the ISP's resolver while no gateway filters anything; it
    /// must show on every watched wire within 2 s. Returns its report and
    /// the nonce's bytes (frames carrying them are not judged).
    async fn positive_control(
        &self,
        captures: &[Capture],
        wires: &[String],
    ) -> (StepReport, Vec<u8>) {
        let nonce = format!("ctl{}", crate::probe::nonce());
        let marker = nonce.as_bytes().to_vec();
        let mut log = StepLog::new();
        let Ok(ns) = self.lab.ns(host::GW) else {
            return (
                log.end(harness_error("the lab has no gateway host")),
                marker,
            );
        };
        let server = SocketAddr::new(addr::ISP_DNS.into(), 53);
        let name = format!("{nonce}.control.lab.");
        let r = crate::probe::dns_a(ns, server, &name, Duration::from_millis(500)).await;
        log.note(format!(
            "A {name} to {server} from gw, nothing filtering: {}",
            match &r {
                Ok(_) => "answered".to_string(),
                Err(e) => format!("no answer ({e})"),
            }
        ));
        let seen = poll_until(Duration::from_secs(2), Duration::from_millis(10), || {
            let blind: Vec<&str> = wires
                .iter()
                .filter(|w| {
                    !captures
                        .iter()
                        .any(|c| c.wire == w.as_str() && c.seen(&marker))
                })
                .map(String::as_str)
                .collect();
            std::future::ready(if blind.is_empty() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(blind)
            })
        })
        .await;
        match seen {
            Ok(()) => {
                log.note(format!("seen on {}", wires.join(", ")));
                (log.pass(), marker)
            }
            Err(blind) => {
                let outcome = Outcome::Error {
                    message: format!(
                        "the capture did not see an unblocked probe on {} within 2 s: it is blind there, and no verdict about that wire could be trusted",
                        blind.join(", ")
                    ),
                    detail: log.detail(),
                };
                (log.end(outcome), marker)
            }
        }
    }
}
