//! The runner: executes scenarios against a built lab. Per scenario it resets
//! the gateway host's routes, starts capture on every watched wire (before
//! any traffic), starts a fresh gateway process with the scenario's Gluetun
//! variables, runs the steps, stops everything, classifies every captured
//! frame and turns the lot into a [`ScenarioResult`]. Progress goes out as
//! [`Event`]s; reporters consume them and the results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::model::{Action, Check, Expect, Scenario};
use super::steps::{GatewayExit, RunState};
use crate::capture::{self, Capture};
use crate::lab::services::LabServices;
use crate::lab::{Lab, LabError};
use crate::model::classify::LeakPolicy;
use crate::model::topology::{addr, host, wire};
use crate::model::verdict::{Frame, Timeline, TogetherProbe, judge_wires, missing_evidence};
use crate::probe;
use crate::target::tail;

pub use crate::profile::{SEED_INPUT_SUBNET_PORTS, SEED_OUTBOUND_SUBNETS, lab_env};

/// How long one probe waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub use crate::model::verdict::{
    CaseResult, Event, LeakRecord, Outcome, ScenarioResult, format_leak,
};

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

/// Everything a run needs besides the scenarios.
pub struct Runner<'a> {
    pub lab: &'a Lab,
    /// The network and policy under test (the seed's, or the user's).
    pub profile: &'a crate::profile::Profile,
    pub services: &'a LabServices,
    pub out_dir: PathBuf,
    /// The gateway under test.
    pub target: std::sync::Arc<dyn crate::target::GatewayTarget>,
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
}

/// The leak policy of each watched wire: `allowed` is what the gateway's
/// wire may carry outside the tunnel besides the endpoint (the profile's).
pub fn policies(allowed: &[ipnet::IpNet]) -> BTreeMap<&'static str, LeakPolicy> {
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
            },
        ),
        (
            wire::UPLINK,
            LeakPolicy {
                local: vec![addr::HOME_UPLINK.into()],
                endpoint,
                allowed: vec![],
            },
        ),
    ])
}

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

pub(crate) fn fail(message: impl Into<String>, detail: impl Into<String>) -> Outcome {
    Outcome::Failed {
        message: message.into(),
        detail: detail.into(),
    }
}

impl Runner<'_> {
    fn emit(&self, e: Event) {
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
        // Placeholders scenario files may use for run-specific paths.
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
            *v = v
                .replace("{qbittorrent_webui}", &webui)
                .replace("{lab_ca}", &ca)
                .replace("{port_commands}", &commands)
                .replace("{lab_dir}", &dir);
        }
        env
    }

    /// Where scenarios' port-forwarding UP/DOWN commands write
    /// (`{port_commands}` in gateway variables).
    pub(crate) fn port_commands_file(&self) -> std::path::PathBuf {
        crate::lab::owned::gateway_dir(self.lab.run_id()).join("port-commands")
    }

    /// Puts the gateway host back as the topology describes it: no kill
    /// switch, the topology's routes (a previous gateway replaced them).
    pub(crate) async fn reset_gw(&self) -> Result<(), LabError> {
        // The real dependents hold still until the next gateway's kill
        // switch is in place (see `Apps::pause`).
        if let Some(apps) = &self.services.apps {
            apps.pause();
        }
        // Whatever an earlier gateway (of any target) left there goes:
        // processes, tables, links, rules, routes.
        self.lab.reset_host(host::GW).await?;
        std::fs::write(
            self.lab.resolv_conf(host::GW),
            format!("nameserver {}\n", addr::ISP_DNS),
        )
        .map_err(|source| LabError::Service {
            service: "resolv.conf".into(),
            source,
        })?;
        self.lab.nft(host::ISP, super::steps::ISP_UNBLOCK)?;
        self.services.wg.set_answering(true)?;
        self.services.wg.forget_peer().await?;
        self.services
            .natpmp_refuse
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.services
            .natpmp_renumber
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

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
        let missing: Vec<&str> = scn
            .requirements()
            .into_iter()
            .filter(|c| !self.target.capabilities().contains(c))
            .map(|c| c.name())
            .collect();
        if !missing.is_empty() {
            let reason = format!(
                "target {} ({}) lacks {}",
                self.target.name(),
                self.target.kind(),
                missing.join(", ")
            );
            return self.skipped(scn, started, gw_log, reason);
        }
        // A lab made from the user's configuration may lack the seed's hosts
        // that a built-in scenario uses.
        if let Some(u) = &self.profile.user
            && let Some(why) = scn
                .unfit
                .clone()
                .or_else(|| scn.misfit(self.lab.topology()))
        {
            let reason = format!("the lab made from {} cannot run it: {why}", u.file);
            return self.skipped(scn, started, gw_log, reason);
        }
        // A scenario in the lab's swarm needs the real qBittorrent and the
        // swarm's programs: without them it is a visible skip.
        if scn.needs_swarm()
            && let Some(why) = self.swarm_unfit()
        {
            return self.skipped(scn, started, gw_log, why);
        }
        if scn.needs_nzbget()
            && let Some(why) = self.app_unfit(crate::lab::apps::App::Nzbget)
        {
            return self.skipped(scn, started, gw_log, why);
        }
        if scn.needs_browser()
            && let Some(why) = crate::lab::browser::unfit()
        {
            return self.skipped(scn, started, gw_log, why);
        }
        let mut cases = Vec::new();
        let mut timeline = Timeline::new();
        timeline.mark(started, "setup");
        let mut captures = Vec::new();
        // Set up: a clean gateway host and capture on every wire, before
        // any traffic. A failure here is the harness's.
        let setup = async {
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
            Ok::<(), LabError>(())
        }
        .await;
        let env = self.gateway_env(scn);
        // A status file left by an earlier gateway must not be read as this one's.
        if let Ok(Some(f)) = run_file(self.lab.run_id(), &env, "VPN_PORT_FORWARDING_STATUS_FILE") {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_file(self.port_commands_file());
        // A gateway that reads its key from a secret file finds the lab's.
        match run_file(self.lab.run_id(), &env, "WIREGUARD_PRIVATE_KEY_SECRETFILE") {
            Ok(Some(f)) => {
                if let Err(e) = super::steps::write_key_file(&f, &self.services.keys.client_private)
                {
                    tracing::warn!("writing the gateway's key file {}: {e}", f.display());
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        let mut st = RunState {
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
            gw_log: gw_log.clone(),
            handshakes_before: 0,
            handshake_after: None,
            firewall_after: None,
            storm: None,
            forwarded_listener: None,
            forwarded_task: None,
            unexpected_exit: None,
        };
        // Why the remaining steps do not run, once something stops the run.
        let mut halted: Option<String> = None;
        // The positive control's markers (not judged as leaks), and the
        // frames every passed step must have left on the wire.
        let mut controls: Vec<Vec<u8>> = Vec::new();
        let mut evidence = Vec::new();
        let allowed: Vec<ipnet::IpNet> = policies(&self.profile.allowed)
            .get(crate::model::topology::wire::GW)
            .map(|p| p.allowed.clone())
            .unwrap_or_default();
        let mut previous_mark = "setup".to_string();
        if let Err(e) = setup {
            let message = format!(
                "the harness could not set the scenario up: {}",
                crate::errfmt::chain(&e)
            );
            cases.push(self.finish_case(
                scn,
                "set up the lab for the scenario",
                harness_error(&message),
                Duration::ZERO,
                vec![],
            ));
            halted = Some(message);
        } else {
            // Before any gateway: the capture must see a probe that nothing
            // blocks, on every watched wire, or nothing it reports can be
            // trusted (a blind capture would pass every scenario).
            let t = Instant::now();
            let mut log = Vec::new();
            let (outcome, marker) = self
                .positive_control(&captures, &scn.leak_wires, &mut log)
                .await;
            controls.push(marker);
            if matches!(outcome, Outcome::Error { .. }) {
                halted = Some("the capture is blind".into());
            }
            cases.push(self.finish_case(scn, POSITIVE_CONTROL, outcome, t.elapsed(), log));
            if halted.is_none() && scn.gateway_start {
                self.start_gateway(&mut st).await;
            }
        }

        // The last fault or repair and when it was done: every later step
        // says how long after it it finished (time to healthy, to traffic).
        let mut last_fault: Option<(&str, Instant)> = None;
        let mut next = 0;
        while next < scn.steps.len() {
            // One step, or a run of probes that must get no answer: those
            // wait together.
            let silent = scn.steps[next..]
                .iter()
                .take_while(|s| s.action.is_silent_probe())
                .count();
            let group = &scn.steps[next..next + silent.max(1)];
            next += group.len();
            if halted.is_none() && self.interrupt.is_cancelled() {
                // Interrupted between steps: the scenario is in flight, and
                // this step is where it stopped.
                halted = Some("the run was interrupted".into());
                cases.push(self.finish_case(
                    scn,
                    &group[0].name,
                    interrupted(),
                    Duration::ZERO,
                    vec![],
                ));
                for s in &group[1..] {
                    cases.push(self.skipped_case(scn, &s.name, "the run was interrupted"));
                }
                continue;
            }
            if let Some(why) = &halted {
                for s in group {
                    cases.push(self.skipped_case(scn, &s.name, why));
                }
                continue;
            }
            let mark = if let [one] = group {
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
            };
            let t = Instant::now();
            let mut logs = vec![Vec::new(); group.len()];
            let results: Option<Vec<(Result<Outcome, LabError>, Duration)>> = if let [one] = group {
                tokio::select! {
                    r = self.step(&mut st, &one.action, &mut logs[0]) => Some(vec![(r, t.elapsed())]),
                    _ = self.interrupt.cancelled() => None,
                }
            } else {
                let all = futures::future::join_all(group.iter().zip(logs.iter_mut()).map(
                    |(s, log)| async move {
                        let r = self.probe(&s.action, log).await;
                        (r, t.elapsed())
                    },
                ));
                tokio::select! {
                    r = all => Some(r),
                    _ = self.interrupt.cancelled() => None,
                }
            };
            self.note_gateway_exit(&mut st, &mark).await;
            let mut results = results.map(Vec::into_iter);
            for (s, mut log) in group.iter().zip(logs) {
                let (outcome, took) = match results.as_mut().and_then(Iterator::next) {
                    None => {
                        halted = Some("the run was interrupted".into());
                        (interrupted(), t.elapsed())
                    }
                    Some((Ok(o), took)) => (o, took),
                    Some((Err(e), took)) => {
                        halted = Some(format!("the harness failed at \"{}\"", s.name));
                        let message = format!(
                            "the harness could not do this step: {}",
                            crate::errfmt::chain(&e)
                        );
                        (harness_error(&message), took)
                    }
                };
                if group.len() > 1 {
                    log.push(format!(
                        "waited together with the {} other probes of \"{mark}\"",
                        group.len() - 1
                    ));
                }
                if outcome == Outcome::Passed {
                    evidence.extend(super::evidence::for_step(
                        s,
                        &previous_mark,
                        self.lab.topology(),
                        &allowed,
                    ));
                }
                match (&s.action, last_fault) {
                    (Action::Fault(_), _) => last_fault = Some((&s.name, Instant::now())),
                    (_, Some((fault, at))) => log.push(format!(
                        "finished {:.3}s after \"{fault}\"",
                        (t + took).saturating_duration_since(at).as_secs_f64()
                    )),
                    (_, None) => {}
                }
                cases.push(self.finish_case(scn, &s.name, outcome, took, log));
            }
            previous_mark = mark;
        }

        timeline.mark(SystemTime::now(), "teardown");
        self.end_swarm(&mut st).await;
        if let Some(storm) = st.storm.take() {
            storm.cancel.cancel();
            let _ = storm.task.await;
        }
        if let Some(g) = st.gateway.take() {
            g.stop().await;
        }
        if scn.needs_gateway() {
            let outcome = match &st.unexpected_exit {
                None => Outcome::Passed,
                Some(exit) => fail(
                    exit.summary.clone(),
                    format!("its last log lines:\n{}", exit.log_tail),
                ),
            };
            cases.push(self.finish_case(scn, STAYED_UP, outcome, Duration::ZERO, vec![]));
        }
        let handshake_after = st.handshake_after;
        let mut frames_seen = BTreeMap::new();
        let mut pcaps = Vec::new();
        let mut by_wire: BTreeMap<String, Vec<Frame>> = BTreeMap::new();
        for c in captures {
            let w = c.wire;
            by_wire.insert(w.to_string(), c.stop());
        }
        for (w, frames) in &by_wire {
            let path = self.out_dir.join(format!("{}-{}.pcap", scn.name, w));
            match capture::write_pcap(&path, frames) {
                Ok(()) => pcaps.push(path),
                Err(e) => cases.push(self.finish_case(
                    scn,
                    &format!("write the capture of {w}"),
                    harness_error(&format!("writing {}: {e}", path.display())),
                    Duration::ZERO,
                    vec![],
                )),
            }
            frames_seen.insert(w.clone(), frames.len());
        }
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
            &timeline,
            CLOCK_SKEW,
            &controls,
        );
        for c in wire_cases {
            cases.push(self.finish_case(scn, &c.name, c.outcome, c.duration, c.log));
        }
        let traffic = crate::model::verdict::traffic(
            started,
            SystemTime::now(),
            &kinds,
            &step_marks(scn, &timeline),
            240,
        );
        let missing = missing_evidence(&evidence, &by_wire, &timeline);
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
            evidence.len()
        )];
        cases.push(self.finish_case(scn, EVIDENCE, outcome, Duration::ZERO, log));
        let result = ScenarioResult {
            name: scn.name.clone(),
            target: self.target.name().to_string(),
            description: scn.description.clone(),
            source: scn.source.clone(),
            started,
            duration: t0.elapsed(),
            cases,
            leaks,
            frames: frames_seen,
            pcaps,
            gateway_log: gw_log,
            handshake_after,
            traffic,
        };
        self.emit(Event::ScenarioFinished {
            result: Box::new(result.clone()),
        });
        result
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
    /// must show on every watched wire within 2 s. Returns the outcome and
    /// the nonce's bytes (frames carrying them are not judged).
    async fn positive_control(
        &self,
        captures: &[Capture],
        wires: &[String],
        log: &mut Vec<String>,
    ) -> (Outcome, Vec<u8>) {
        let nonce = format!("ctl{}", crate::probe::nonce());
        let marker = nonce.as_bytes().to_vec();
        let Ok(ns) = self.lab.ns(host::GW) else {
            return (harness_error("the lab has no gateway host"), marker);
        };
        let server = SocketAddr::new(addr::ISP_DNS.into(), 53);
        let name = format!("{nonce}.control.lab.");
        let r = crate::probe::dns_a(ns, server, &name, Duration::from_millis(500)).await;
        log.push(format!(
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
                log.push(format!("seen on {}", wires.join(", ")));
                return (Outcome::Passed, marker);
            }
            if Instant::now() >= deadline {
                return (
                    Outcome::Error {
                        message: format!(
                            "the capture did not see an unblocked probe on {} within 2 s: it is blind there, and no verdict about that wire could be trusted",
                            blind.join(", ")
                        ),
                        detail: log.join("\n"),
                    },
                    marker,
                );
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

    /// Checks which lab services saw the probe's nonce: each in the check's
    /// `logged_by` must have, none in its `not_logged_by` may have. Problems
    /// are appended.
    pub(crate) fn far_end(
        &self,
        nonce: &str,
        what: &str,
        check: &Check,
        log: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) {
        for svc in &check.logged_by {
            match self.services.log.find(svc, nonce).first() {
                Some(e) => log.push(format!(
                    "{svc} logged the {what} from {}: {}",
                    e.source, e.detail
                )),
                None => problems.push(format!("{svc} never received the {what}")),
            }
        }
        for svc in &check.not_logged_by {
            for e in self.services.log.find(svc, nonce) {
                problems.push(format!(
                    "{svc} received the {what} from {} (a leak)",
                    e.source
                ));
            }
        }
    }

    /// `unheard`: none of `by` has logged anything since the scenario
    /// started.
    pub(crate) fn unheard(
        &self,
        st: &super::steps::RunState<'_>,
        by: &[String],
        log: &mut Vec<String>,
    ) -> Outcome {
        let mut problems = Vec::new();
        for svc in by {
            let heard: Vec<_> = self
                .services
                .log
                .find(svc, "")
                .into_iter()
                .filter(|e| e.at >= st.started_at)
                .collect();
            if heard.is_empty() {
                log.push(format!("{svc} logged nothing in this scenario"));
            }
            // Each kind of request once, with how often and from where.
            let mut kinds: Vec<(String, std::collections::BTreeSet<std::net::IpAddr>, usize)> =
                Vec::new();
            for e in &heard {
                match kinds.iter_mut().find(|(d, _, _)| *d == e.detail) {
                    Some((_, from, n)) => {
                        from.insert(e.source.ip());
                        *n += 1;
                    }
                    None => kinds.push((e.detail.clone(), [e.source.ip()].into(), 1)),
                }
            }
            for (detail, from, n) in kinds {
                let from: Vec<String> = from.iter().map(|a| a.to_string()).collect();
                problems.push(format!(
                    "{svc} heard from {}: {detail}{} (a leak)",
                    from.join(", "),
                    if n > 1 {
                        format!(" ({n} times)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Self::verdict(problems, log)
    }

    pub(crate) fn verdict(problems: Vec<String>, log: &mut Vec<String>) -> Outcome {
        if problems.is_empty() {
            Outcome::Passed
        } else {
            log.extend(problems.iter().cloned());
            fail(problems.join("; "), log.join("\n"))
        }
    }

    pub(crate) async fn http_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(from)?;
        let nonce = probe::nonce();
        let path = format!("/leakhound/{nonce}");
        log.push(format!("GET http://{target}{path} from {from}"));
        let r = probe::http_get(ns, target, &path, PROBE_TIMEOUT).await;
        match &r {
            Ok((status, body)) => log.push(format!("answer {status}: {body}")),
            Err(e) => log.push(format!("no answer: {e}")),
        }
        let mut problems = Vec::new();
        match (&check.expect, &r) {
            (Expect::SeenAs(want), Ok((_, body))) => {
                if body != &want.to_string() {
                    problems.push(format!("whoami saw {body}, expected {want}"));
                } else if !self
                    .services
                    .log
                    .find(crate::lab::whoami::SERVICE, &nonce)
                    .iter()
                    .any(|e| e.source.ip() == *want)
                {
                    problems.push(format!(
                        "whoami's log has no request with nonce {nonce} from {want}"
                    ));
                }
            }
            (Expect::SeenAs(want), Err(e)) => problems.push(format!(
                "expected whoami to see {want}, but the request failed: {e}"
            )),
            // Any HTTP answer is "reached": real applications answer an
            // unknown path with 404, or 401 without credentials.
            (Expect::Answer, Ok(_)) => {}
            (Expect::Answer, Err(e)) => problems.push(format!("expected an answer, got none: {e}")),
            (Expect::Fail, Ok((_, body))) => problems.push(format!(
                "the request should have failed, but it was answered: {body}"
            )),
            (Expect::Fail, Err(_)) => {}
        }
        if r.is_ok() {
            // An answered request's evidence may still be on its way (the
            // real dependents' comes off the wire): bounded, event-driven.
            for svc in &check.logged_by {
                self.services
                    .log
                    .wait_for(svc, &nonce, Duration::from_secs(1))
                    .await;
            }
        }
        self.far_end(&nonce, "request", check, log, &mut problems);
        Ok(Self::verdict(problems, log))
    }

    /// `server`, or the system resolver of `from`: the first nameserver of
    /// its resolv.conf, as getaddrinfo would use it.
    pub(crate) fn resolver_for(
        &self,
        from: &str,
        server: Option<SocketAddr>,
        log: &mut Vec<String>,
    ) -> Result<SocketAddr, Outcome> {
        if let Some(s) = server {
            return Ok(s);
        }
        let path = self.lab.resolv_conf(from);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        match crate::gateway::dns::first_nameserver(&text) {
            Some(ip) => {
                log.push(format!("{}: nameserver {ip}", path.display()));
                Ok(SocketAddr::new(ip, 53))
            }
            None => Err(fail(
                format!("{} names no nameserver", path.display()),
                text,
            )),
        }
    }

    pub(crate) async fn dns_step(
        &self,
        from: &str,
        server: Option<SocketAddr>,
        zone: &str,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(from)?;
        let nonce = probe::nonce();
        let name = format!("{nonce}.{zone}.");
        let server = match self.resolver_for(from, server, log) {
            Ok(s) => s,
            Err(outcome) => return Ok(outcome),
        };
        log.push(format!("A {name} to {server} from {from}"));
        let r = probe::dns_a(ns, server, &name, PROBE_TIMEOUT).await;
        match &r {
            Ok(a) => log.push(format!("answer: {a:?}")),
            Err(e) => log.push(format!("no answer: {e}")),
        }
        let mut problems = Vec::new();
        match (&check.expect, &r) {
            (Expect::Answer, Ok(a)) if !a.is_empty() => {}
            (Expect::Answer, Ok(_)) => problems.push("the answer had no A record".to_string()),
            (Expect::Answer, Err(e)) => problems.push(format!("expected an answer, got none: {e}")),
            // An answer without an address (SERVFAIL, NXDOMAIN) is a failed
            // resolution too: what a gateway's resolver says when it cannot
            // reach its upstream.
            (Expect::Fail, Ok(a)) if a.is_empty() => {}
            (Expect::Fail, Ok(a)) => {
                problems.push(format!("expected the name not to resolve, got {a:?}"))
            }
            (Expect::Fail, Err(_)) => {}
            (Expect::SeenAs(_), _) => unreachable!("validated by the scenario parser"),
        }
        self.far_end(&nonce, "query", check, log, &mut problems);
        let ext = self
            .external_check(
                super::steps::ExternalKind::Dns,
                from,
                server,
                zone,
                check,
                log,
            )
            .await?;
        match ext {
            Ok(more) => problems.extend(more),
            // Our own client's failure stands; its pass alone is no verdict.
            Err(missing) if problems.is_empty() => {
                return Ok(Outcome::Skipped { reason: missing });
            }
            Err(_) => {}
        }
        Ok(Self::verdict(problems, log))
    }
}

/// The timeline's name for probes that waited together.
fn together_label(group: &[super::model::Step]) -> String {
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

/// The file scenario variable `var` names, for the harness to write, read or
/// remove: only directly inside the run's gateway folder (`{lab_dir}/NAME`), never anywhere
/// else a scenario file could name (scenario files are code, but a typo
/// must not make root write or delete outside the lab). `Ok(None)` when the
/// variable is not set.
pub(crate) fn run_file(
    run_id: &str,
    env: &BTreeMap<String, String>,
    var: &str,
) -> Result<Option<std::path::PathBuf>, String> {
    let Some(v) = env.get(var) else {
        return Ok(None);
    };
    let p = std::path::PathBuf::from(v);
    if crate::lab::owned::inside_run_dir(run_id, &p) {
        Ok(Some(p))
    } else {
        Err(format!(
            "{var} = {v:?}: the harness reads and writes this file, so it must be directly inside the run's gateway folder; write it as \"{{lab_dir}}/NAME\""
        ))
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
            assert!(e.contains(var) && e.contains("{lab_dir}/NAME"), "{e}");
        }
        assert_eq!(run_file("ab12cd", &env, "D"), Ok(None));
    }
}
