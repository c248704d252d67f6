//! Running one scenario ([`Runner::run`]): prepare it (`prepare.rs`: a
//! clean gateway host, capture on every watched wire before any traffic,
//! the positive control, a fresh gateway with the scenario's Gluetun
//! variables), execute its steps (`execute.rs`), then judge it
//! (`judge.rs`: stop everything, classify every captured frame, write the
//! pcaps) into a [`ScenarioResult`]. Progress goes out as
//! [`Event`]s; reporters consume them and the results. Here: the scenario in
//! flight, its cases and the run's own case names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use super::context::Runner;
use super::state::RunState;
use crate::capture::Capture;
use crate::model::scenario::Scenario;
use crate::model::verdict::{CaseResult, Event, Evidence, Outcome, ScenarioResult, Timeline};

/// The case of the positive control, before any gateway starts.
pub const POSITIVE_CONTROL: &str =
    "the capture sees an unblocked probe on every watched wire (before the gateway starts)";

/// The case that checks the capture saw what the passed steps sent.
pub const EVIDENCE: &str = "the capture saw the traffic of every step that passed";

/// The case every scenario with a gateway has.
pub const STAYED_UP: &str = "the gateway under test stayed up (it exits only when a step makes it)";

/// How far the capture's clock (the kernel's receive stamp) and the
/// runner's marks may disagree. Both read CLOCK_REALTIME of the same kernel
/// and a mark is taken before its step sends anything, so none: a frame is
/// attributed to exactly one step. (The verdict function takes a tolerance
/// for captures whose clock is not the runner's.)
pub const CLOCK_SKEW: Duration = Duration::ZERO;

/// The case of the step during (or before) which the run was interrupted.
pub(super) fn interrupted() -> Outcome {
    Outcome::Error {
        message: "interrupted".into(),
        detail: "the run was interrupted (Ctrl-C or SIGTERM) here".into(),
    }
}

pub(super) fn harness_error(message: &str) -> Outcome {
    Outcome::Error {
        message: message.to_string(),
        detail: String::new(),
    }
}

/// A scenario in flight: the steps' shared state, and what the runner
/// gathers while they run.
pub(super) struct InFlight<'s> {
    pub(super) scn: &'s Scenario,
    pub(super) started: SystemTime,
    pub(super) st: RunState<'s>,
    pub(super) captures: Vec<Capture>,
    pub(super) cases: Vec<CaseResult>,
    pub(super) timeline: Timeline,
    /// Why the remaining steps do not run, once something stops the run.
    pub(super) halted: Option<String>,
    /// The positive control's markers (not judged as leaks).
    pub(super) controls: Vec<Vec<u8>>,
    /// The frames every passed step must have left on the wire.
    pub(super) evidence: Vec<Evidence>,
    /// What the gateway's wire may carry outside the tunnel (the
    /// profile's), for the evidence.
    pub(super) allowed: Vec<IpNet>,
    /// The timeline's mark before the current step.
    pub(super) previous_mark: String,
    /// The probe nonces issued before the scenario began
    /// ([`crate::probe::nonce_mark`]): the judge looks for the later ones.
    pub(super) nonces_from: u64,
    /// The last fault or repair and when it was done: every later step
    /// says how long after it it finished (time to healthy, to traffic).
    pub(super) last_fault: Option<(&'s str, Instant)>,
}

impl Runner<'_> {
    /// Runs one scenario and always returns its result: what the gateway
    /// does wrong (including dying, or never starting) is a failed case;
    /// what the harness cannot do is an error case, and the steps after it
    /// are skipped with the reason. Either way the gateway is stopped, the
    /// capture is classified and the pcaps are written.
    pub async fn run(&self, scn: &Scenario) -> ScenarioResult {
        let started = SystemTime::now();
        let t0 = Instant::now();
        let gateway_cases = usize::from(scn.needs_gateway());
        self.emit(Event::ScenarioStarted {
            target: self.target.name().to_string(),
            name: scn.name.clone(),
            // Each fuzz step's spray is judged in two more cases.
            cases: scn.steps.len()
                + scn.leak_wires.len()
                + gateway_cases
                + 2
                + 2 * scn
                    .steps
                    .iter()
                    .filter(|s| matches!(s.action, crate::model::scenario::Action::Fuzz(_)))
                    .count(),
        });
        let gw_log = self.out_dir.join(format!("{}-gateway.log", scn.name));
        let _ = std::fs::remove_file(&gw_log);
        if let Some(reason) = self.unfit(scn) {
            return self.skipped(scn, started, gw_log, reason);
        }
        let mut run = self.prepare(scn, started, gw_log).await;
        self.execute(&mut run).await;
        self.judge(run, t0).await
    }

    /// Why this run cannot run `scn` at all, if it cannot: the target
    /// lacks what it needs, the lab made from the user's configuration
    /// lacks its hosts, or the real applications it drives are not there.
    fn unfit(&self, scn: &Scenario) -> Option<String> {
        let missing: Vec<&str> = scn
            .requirements()
            .into_iter()
            .filter(|c| !self.target.capabilities().contains(c))
            .map(|c| c.name())
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "target {} ({}) lacks {}",
                self.target.name(),
                self.target.kind(),
                missing.join(", ")
            ));
        }
        // A lab made from the user's configuration may lack the seed's hosts
        // that a built-in scenario uses.
        if let Some(u) = &self.profile.user
            && let Some(why) = scn
                .unfit
                .clone()
                .or_else(|| scn.misfit(self.lab.topology()))
        {
            return Some(format!("the lab made from {} cannot run it: {why}", u.file));
        }
        // A scenario in the lab's swarm needs the real qBittorrent and the
        // swarm's programs: without them it is a visible skip.
        if scn.needs_swarm()
            && let Some(why) = self.swarm_unfit()
        {
            return Some(why);
        }
        if scn.needs_nzbget()
            && let Some(why) = self.app_unfit(crate::lab::apps::App::Nzbget)
        {
            return Some(why);
        }
        if scn.needs_browser() {
            return crate::lab::browser::unfit();
        }
        None
    }

    /// A scenario the target cannot run: every case skipped, with the
    /// capabilities it lacks named. Nothing is started or captured.
    /// Every case of `scn` skipped with `reason`.
    pub(super) fn skipped(
        &self,
        scn: &Scenario,
        started: SystemTime,
        gateway_log: PathBuf,
        reason: String,
    ) -> ScenarioResult {
        let mut names: Vec<String> = vec![POSITIVE_CONTROL.to_string()];
        names.extend(scn.steps.iter().map(|s| s.name.clone()));
        if scn.needs_gateway() {
            names.push(STAYED_UP.into());
        }
        names.extend(
            scn.leak_wires
                .iter()
                .map(|w| format!("no packet on {w} is a leak")),
        );
        names.push(EVIDENCE.into());
        let cases = names
            .iter()
            .map(|n| {
                self.finish_case(
                    scn,
                    n,
                    Outcome::Skipped {
                        reason: reason.clone(),
                    },
                    Duration::ZERO,
                    vec![],
                )
            })
            .collect();
        let result = ScenarioResult {
            name: scn.name.clone(),
            target: self.target.name().to_string(),
            description: scn.description.clone(),
            source: scn.source.clone(),
            started,
            duration: Duration::ZERO,
            cases,
            leaks: vec![],
            frames: BTreeMap::new(),
            pcaps: vec![],
            gateway_log,
            handshake_after: None,
            readiness: vec![],
            traffic: Default::default(),
        };
        self.emit(Event::ScenarioFinished {
            result: Box::new(result.clone()),
        });
        result
    }

    /// Emits a finished case and returns it.
    pub(super) fn finish_case(
        &self,
        scn: &Scenario,
        name: &str,
        outcome: Outcome,
        duration: Duration,
        log: Vec<String>,
    ) -> CaseResult {
        let case = CaseResult {
            name: name.to_string(),
            outcome,
            duration,
            log,
        };
        self.emit(Event::CaseFinished {
            target: self.target.name().to_string(),
            scenario: scn.name.clone(),
            case: case.clone(),
        });
        case
    }

    /// A step that did not run because the scenario stopped earlier.
    pub(super) fn skipped_case(&self, scn: &Scenario, name: &str, why: &str) -> CaseResult {
        let outcome = Outcome::Skipped {
            reason: format!("not run: {why}"),
        };
        self.finish_case(scn, name, outcome, Duration::ZERO, vec![])
    }
}
