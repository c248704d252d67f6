//! Running one scenario: it resets the gateway host's routes, starts
//! capture on every watched wire (before any traffic), starts a fresh
//! gateway process with the scenario's Gluetun variables ([`Runner::run`]'s
//! prepare), runs the steps (execute), stops everything, classifies every
//! captured frame and turns the lot into a [`ScenarioResult`] (judge).
//! Progress goes out as [`Event`]s; reporters consume them and the results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use super::context::{Runner, fail, policies, run_file};
use super::state::{GatewayExit, RunState};
use crate::capture::{self, Capture};
use crate::lab::LabError;
use crate::model::classify::LeakPolicy;
use crate::model::scenario::{Action, Scenario, Step};
use crate::model::topology::{addr, host, wire};
use crate::model::verdict::{
    CaseResult, Event, Evidence, Frame, Outcome, ScenarioResult, Timeline, TogetherProbe,
    judge_wires, missing_evidence,
};
use crate::scenario::steps::lifecycle::write_key_file;
use crate::scenario::steps::report::{StepLog, StepReport, StepResult};
use crate::target::tail;

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
fn interrupted() -> Outcome {
    Outcome::Error {
        message: "interrupted".into(),
        detail: "the run was interrupted (Ctrl-C or SIGTERM) here".into(),
    }
}

fn harness_error(message: &str) -> Outcome {
    Outcome::Error {
        message: message.to_string(),
        detail: String::new(),
    }
}

/// A scenario in flight: the steps' shared state, and what the runner
/// gathers while they run.
struct InFlight<'s> {
    scn: &'s Scenario,
    started: SystemTime,
    st: RunState<'s>,
    captures: Vec<Capture>,
    cases: Vec<CaseResult>,
    timeline: Timeline,
    /// Why the remaining steps do not run, once something stops the run.
    halted: Option<String>,
    /// The positive control's markers (not judged as leaks).
    controls: Vec<Vec<u8>>,
    /// The frames every passed step must have left on the wire.
    evidence: Vec<Evidence>,
    /// What the gateway's wire may carry outside the tunnel (the
    /// profile's), for the evidence.
    allowed: Vec<IpNet>,
    /// The timeline's mark before the current step.
    previous_mark: String,
    /// The last fault or repair and when it was done: every later step
    /// says how long after it it finished (time to healthy, to traffic).
    last_fault: Option<(&'s str, Instant)>,
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
            cases: scn.steps.len() + scn.leak_wires.len() + gateway_cases + 2,
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

    /// Sets the scenario up: a clean gateway host and capture on every
    /// wire before any traffic, the gateway's files, the positive control,
    /// then the gateway. A failure to set up is the harness's: a case, and
    /// the steps are skipped.
    async fn prepare<'s>(
        &self,
        scn: &'s Scenario,
        started: SystemTime,
        gw_log: PathBuf,
    ) -> InFlight<'s> {
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
            env,
            gateway: None,
            gw_log,
            handshakes_before: 0,
            handshake_after: None,
            firewall_after: None,
            storm: None,
            forwarded_listener: None,
            forwarded_task: None,
            unexpected_exit: None,
        };
        let allowed = policies(&self.profile.allowed)
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

    /// Runs the steps in order: one at a time, or a run of probes that
    /// must get no answer together. Once the run is halted (interrupted,
    /// or the harness failed) the rest are skipped with the reason.
    async fn execute<'s>(&self, run: &mut InFlight<'s>) {
        let steps: &'s [Step] = &run.scn.steps;
        let mut next = 0;
        while next < steps.len() {
            // One step, or a run of probes that must get no answer: those
            // wait together.
            let silent = steps[next..]
                .iter()
                .take_while(|s| s.action.is_silent_probe())
                .count();
            let group = &steps[next..next + silent.max(1)];
            next += group.len();
            if run.halted.is_none() && self.interrupt.is_cancelled() {
                // Interrupted between steps: the scenario is in flight, and
                // this step is where it stopped.
                run.halted = Some("the run was interrupted".into());
                run.cases.push(self.finish_case(
                    run.scn,
                    &group[0].name,
                    interrupted(),
                    Duration::ZERO,
                    vec![],
                ));
                for s in &group[1..] {
                    let case = self.skipped_case(run.scn, &s.name, "the run was interrupted");
                    run.cases.push(case);
                }
                continue;
            }
            if let Some(why) = &run.halted {
                for s in group {
                    run.cases.push(self.skipped_case(run.scn, &s.name, why));
                }
                continue;
            }
            let mark = mark_group(&mut run.timeline, group);
            let t = Instant::now();
            let results = self.run_group(&mut run.st, group, t).await;
            self.note_gateway_exit(&mut run.st, &mark).await;
            self.record_group(run, group, results, t, &mark);
            run.previous_mark = mark;
        }
    }

    /// Runs one step, or probes together; each result with how long after
    /// `t` it was in. `None`: the run was interrupted meanwhile.
    async fn run_group(
        &self,
        st: &mut RunState<'_>,
        group: &[Step],
        t: Instant,
    ) -> Option<Vec<(StepResult, Duration)>> {
        if let [one] = group {
            tokio::select! {
                r = self.step(st, &one.action) => Some(vec![(r, t.elapsed())]),
                _ = self.interrupt.cancelled() => None,
            }
        } else {
            let all = futures::future::join_all(group.iter().map(|s| async move {
                let r = self.probe(&s.action).await;
                (r, t.elapsed())
            }));
            tokio::select! {
                r = all => Some(r),
                _ = self.interrupt.cancelled() => None,
            }
        }
    }

    /// The cases of a group's steps from their results: a harness error
    /// or an interruption halts the run; a passed step's frames join the
    /// evidence; each step after a fault says how long after it it
    /// finished.
    fn record_group<'s>(
        &self,
        run: &mut InFlight<'s>,
        group: &'s [Step],
        results: Option<Vec<(StepResult, Duration)>>,
        t: Instant,
        mark: &str,
    ) {
        let mut results = results.map(Vec::into_iter);
        for s in group {
            let (outcome, mut log, took) = match results.as_mut().and_then(Iterator::next) {
                None => {
                    run.halted = Some("the run was interrupted".into());
                    (interrupted(), Vec::new(), t.elapsed())
                }
                Some((Ok(StepReport { outcome, log }), took)) => (outcome, log, took),
                Some((Err(e), took)) => {
                    run.halted = Some(format!("the harness failed at \"{}\"", s.name));
                    let message = format!(
                        "the harness could not do this step: {}",
                        crate::errfmt::chain(&*e.source)
                    );
                    (harness_error(&message), e.log, took)
                }
            };
            if group.len() > 1 {
                log.push(format!(
                    "waited together with the {} other probes of \"{mark}\"",
                    group.len() - 1
                ));
            }
            if outcome == Outcome::Passed {
                run.evidence.extend(crate::scenario::evidence::for_step(
                    s,
                    &run.previous_mark,
                    self.lab.topology(),
                    &run.allowed,
                ));
            }
            match (&s.action, run.last_fault) {
                (Action::Fault(_), _) => run.last_fault = Some((&s.name, Instant::now())),
                (_, Some((fault, at))) => log.push(format!(
                    "finished {:.3}s after \"{fault}\"",
                    (t + took).saturating_duration_since(at).as_secs_f64()
                )),
                (_, None) => {}
            }
            run.cases
                .push(self.finish_case(run.scn, &s.name, outcome, took, log));
        }
    }

    /// Stops what the scenario left running (its swarm, the background
    /// traffic, the gateway) and says whether the gateway stayed up.
    async fn tear_down(&self, run: &mut InFlight<'_>) {
        run.timeline.mark(SystemTime::now(), "teardown");
        self.end_swarm(&mut run.st).await;
        if let Some(storm) = run.st.storm.take() {
            storm.cancel.cancel();
            let _ = storm.task.await;
        }
        if let Some(g) = run.st.gateway.take() {
            g.stop().await;
        }
        if run.scn.needs_gateway() {
            let outcome = match &run.st.unexpected_exit {
                None => Outcome::Passed,
                Some(exit) => fail(
                    exit.summary.clone(),
                    format!("its last log lines:\n{}", exit.log_tail),
                ),
            };
            run.cases
                .push(self.finish_case(run.scn, STAYED_UP, outcome, Duration::ZERO, vec![]));
        }
    }

    /// Tears the scenario down, then judges what the capture saw: every
    /// frame on the watched wires against the leak policy, and the frames
    /// the passed steps must have left; writes the pcaps; the result.
    async fn judge(&self, mut run: InFlight<'_>, t0: Instant) -> ScenarioResult {
        self.tear_down(&mut run).await;
        let scn = run.scn;
        let by_wire: BTreeMap<String, Vec<Frame>> = std::mem::take(&mut run.captures)
            .into_iter()
            .map(|c| (c.wire.to_string(), c.stop()))
            .collect();
        let (pcaps, frames_seen) = self.write_pcaps(&mut run, &by_wire);
        let policies: BTreeMap<String, LeakPolicy> = policies(&self.profile.allowed)
            .into_iter()
            .map(|(w, p)| (w.to_string(), p))
            .collect();
        let crate::model::verdict::Judged {
            leaks,
            cases: wire_cases,
            kinds,
        } = judge_wires(
            &scn.leak_wires,
            &by_wire,
            &policies,
            &run.timeline,
            CLOCK_SKEW,
            &run.controls,
        );
        for c in wire_cases {
            run.cases
                .push(self.finish_case(scn, &c.name, c.outcome, c.duration, c.log));
        }
        let traffic = crate::model::verdict::traffic(
            run.started,
            SystemTime::now(),
            &kinds,
            &step_marks(scn, &run.timeline),
            240,
        );
        let missing = missing_evidence(&run.evidence, &by_wire, &run.timeline);
        let outcome = if missing.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Error {
                message: format!(
                    "the capture missed traffic that passed steps sent, so its verdict cannot be trusted: {}",
                    missing.join("; ")
                ),
                detail: missing.join("\n"),
            }
        };
        let log = vec![format!(
            "{} expectation(s) of frames, from the steps that passed",
            run.evidence.len()
        )];
        run.cases
            .push(self.finish_case(scn, EVIDENCE, outcome, Duration::ZERO, log));
        let result = ScenarioResult {
            name: scn.name.clone(),
            target: self.target.name().to_string(),
            description: scn.description.clone(),
            source: scn.source.clone(),
            started: run.started,
            duration: t0.elapsed(),
            cases: run.cases,
            leaks,
            frames: frames_seen,
            pcaps,
            gateway_log: run.st.gw_log.clone(),
            handshake_after: run.st.handshake_after,
            traffic,
        };
        self.emit(Event::ScenarioFinished {
            result: Box::new(result.clone()),
        });
        result
    }

    /// Each wire's capture as a pcap in the output folder (a file that
    /// cannot be written is the harness's case); the paths written and
    /// how many frames each wire saw.
    fn write_pcaps(
        &self,
        run: &mut InFlight<'_>,
        by_wire: &BTreeMap<String, Vec<Frame>>,
    ) -> (Vec<PathBuf>, BTreeMap<String, usize>) {
        let mut pcaps = Vec::new();
        let mut frames_seen = BTreeMap::new();
        for (w, frames) in by_wire {
            let path = self.out_dir.join(format!("{}-{}.pcap", run.scn.name, w));
            match capture::write_pcap(&path, frames) {
                Ok(()) => pcaps.push(path),
                Err(e) => run.cases.push(self.finish_case(
                    run.scn,
                    &format!("write the capture of {w}"),
                    harness_error(&format!("writing {}: {e}", path.display())),
                    Duration::ZERO,
                    vec![],
                )),
            }
            frames_seen.insert(w.clone(), frames.len());
        }
        (pcaps, frames_seen)
    }

    /// A scenario the target cannot run: every case skipped, with the
    /// capabilities it lacks named. Nothing is started or captured.
    /// Every case of `scn` skipped with `reason`.
    fn skipped(
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
            traffic: Default::default(),
        };
        self.emit(Event::ScenarioFinished {
            result: Box::new(result.clone()),
        });
        result
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
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let blind: Vec<&str> = wires
                .iter()
                .filter(|w| {
                    !captures
                        .iter()
                        .any(|c| c.wire == w.as_str() && c.seen(&marker))
                })
                .map(String::as_str)
                .collect();
            if blind.is_empty() {
                log.note(format!("seen on {}", wires.join(", ")));
                return (log.pass(), marker);
            }
            if Instant::now() >= deadline {
                let outcome = Outcome::Error {
                    message: format!(
                        "the capture did not see an unblocked probe on {} within 2 s: it is blind there, and no verdict about that wire could be trusted",
                        blind.join(", ")
                    ),
                    detail: log.detail(),
                };
                return (log.end(outcome), marker);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Emits a finished case and returns it.
    fn finish_case(
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
    fn skipped_case(&self, scn: &Scenario, name: &str, why: &str) -> CaseResult {
        let outcome = Outcome::Skipped {
            reason: format!("not run: {why}"),
        };
        self.finish_case(scn, name, outcome, Duration::ZERO, vec![])
    }

    /// After a step: a gateway that has exited although no step made it
    /// (kill-gateway takes it out of the run state first) is a finding. It
    /// is recorded once; the steps after it still run, and those that need
    /// a live gateway fail.
    async fn note_gateway_exit(&self, st: &mut RunState<'_>, step: &str) {
        let Some(g) = st.gateway.as_mut() else {
            return;
        };
        let Some(status) = g.try_exited() else {
            return;
        };
        g.log_flushed().await;
        st.unexpected_exit = Some(GatewayExit {
            summary: format!("the gateway exited on its own ({status}) during \"{step}\""),
            log_tail: tail(&st.gw_log, 20),
        });
        st.gateway = None;
    }
}

/// Marks the group's start on the timeline: a step by its name, probes
/// waiting together by a label naming them all. Returns the mark.
fn mark_group(timeline: &mut Timeline, group: &[Step]) -> String {
    if let [one] = group {
        timeline.mark(SystemTime::now(), one.name.clone());
        one.name.clone()
    } else {
        let label = together_label(group);
        let probes = group
            .iter()
            .map(|s| TogetherProbe {
                step: s.name.clone(),
                target: s.action.probe_target(),
            })
            .collect();
        timeline.mark_together(SystemTime::now(), label.clone(), probes);
        label
    }
}

/// The timeline's name for probes that waited together.
fn together_label(group: &[Step]) -> String {
    match group {
        [first, .., last] => format!(
            "{} probes waiting together: {} ... {}",
            group.len(),
            first.name,
            last.name
        ),
        [one] => one.name.clone(),
        [] => String::new(),
    }
}

/// The timeline's marks with how each shows: faults and recoveries by their
/// step's action, everything else (setup, probes, teardown) a plain step.
fn step_marks(
    scn: &Scenario,
    timeline: &Timeline,
) -> Vec<(SystemTime, String, crate::model::verdict::MarkKind)> {
    use crate::model::verdict::MarkKind;
    timeline
        .marks()
        .iter()
        .map(|(t, name)| {
            let kind = match scn
                .steps
                .iter()
                .find(|s| &s.name == name)
                .map(|s| &s.action)
            {
                Some(Action::Fault(f)) if f.is_recovery() => MarkKind::Recovery,
                Some(Action::Fault(f)) if !f.is_check() => MarkKind::Fault,
                _ => MarkKind::Step,
            };
            (*t, name.clone(), kind)
        })
        .collect()
}
