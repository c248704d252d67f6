//! Judging a scenario: its teardown (what it left running stops; whether
//! the gateway stayed up), then what the capture saw: every frame on the
//! watched wires against the leak policy, the frames the passed steps must
//! have left, the pcaps; the result.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::context::{Runner, fail, policies};
use super::run::{CLOCK_SKEW, EVIDENCE, InFlight, STAYED_UP, harness_error};
use crate::capture;
use crate::model::classify::LeakPolicy;
use crate::model::scenario::{Action, Scenario};
use crate::model::verdict::{
    Event, Frame, Outcome, ScenarioResult, Timeline, judge_evidence, judge_wires,
};

impl Runner<'_> {
    /// Stops what the scenario left running (its swarm, the background
    /// traffic, the gateway) and says whether the gateway stayed up.
    async fn tear_down(&self, run: &mut InFlight<'_>) {
        run.timeline.mark(SystemTime::now(), "teardown");
        self.end_swarm(&mut run.st).await;
        if let Some(storm) = run.st.storm.take() {
            storm.cancel.cancel();
            let _ = storm.task.await;
        }
        if let Some(flows) = run.st.flows.take() {
            let _ = flows.stop().await;
        }
        if let Some(g) = run.st.gateway.take() {
            g.stop().await;
        }
        if run.scn.needs_gateway() {
            let outcome = match &run.st.unexpected_exit {
                None => Outcome::Passed,
                Some(exit) => fail(
                    exit.cause.to_string(),
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
    pub(super) async fn judge(&self, mut run: InFlight<'_>, t0: Instant) -> ScenarioResult {
        self.tear_down(&mut run).await;
        let scn = run.scn;
        let by_wire: BTreeMap<String, Vec<Frame>> = std::mem::take(&mut run.captures)
            .into_iter()
            .map(|c| (c.wire.to_string(), c.stop()))
            .collect();
        let (pcaps, frames_seen) = self.write_pcaps(&mut run, &by_wire);
        let mtu = run
            .st
            .env
            .get("WIREGUARD_MTU")
            .and_then(|m| m.trim().parse().ok());
        let policies: BTreeMap<String, LeakPolicy> = policies(&self.profile.allowed, mtu)
            .into_iter()
            .map(|(w, p)| (w.to_string(), p))
            .collect();
        let nonces = crate::probe::nonces_since(run.nonces_from).unwrap_or_else(|e| {
            // Without them a nonce in clear goes unseen: the harness says so.
            run.cases.push(self.finish_case(
                scn,
                "the probes' nonces are searched for on the wires",
                Outcome::error(format!("the nonces' matcher cannot be built: {e}")),
                Duration::ZERO,
                vec![],
            ));
            Default::default()
        });
        // The root side's spray frames are judged apart (their own class).
        let mut controls = run.controls.clone();
        controls.extend(
            run.st
                .sprays
                .iter()
                .map(|s| s.spray.root_tag.as_bytes().to_vec()),
        );
        // A prove step's witness is judged by its own case.
        controls.extend(
            run.st
                .witnesses
                .iter()
                .flat_map(|w| w.tried.iter().map(|(_, m, _)| m.clone())),
        );
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
            &controls,
            &nonces,
        );
        for c in wire_cases {
            run.cases
                .push(self.finish_case(scn, &c.name, c.outcome, c.duration, c.log));
        }
        self.judge_sprays(&mut run, &by_wire, &policies, &nonces);
        self.judge_witnesses(&mut run, &by_wire, &policies, &nonces);
        let traffic = crate::model::verdict::traffic(
            run.started,
            SystemTime::now(),
            &kinds,
            &step_marks(scn, &run.timeline),
            240,
        );
        let leaked_during = leaks
            .iter()
            .map(|l| (l.wire.clone(), l.step.clone()))
            .collect();
        let outcome = judge_evidence(&run.evidence, &by_wire, &run.timeline, &leaked_during);
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
            readiness: run.st.readiness_events(),
            traffic,
        };
        self.emit(Event::ScenarioFinished {
            result: Box::new(result.clone()),
        });
        result
    }

    /// Each spray's two cases: what got out from the dependents' side
    /// (a leak), and from the root side (shown; a failure only with
    /// `--strict`).
    fn judge_sprays(
        &self,
        run: &mut InFlight<'_>,
        by_wire: &BTreeMap<String, Vec<Frame>>,
        policies: &BTreeMap<String, LeakPolicy>,
        nonces: &crate::model::classify::Nonces,
    ) {
        use crate::model::spray::{Side, leaked, report};
        let scn = run.scn;
        let replay = format!(
            "leakhound run --only {} --seed {}",
            scn.name, self.fuzz.seed
        );
        for s in std::mem::take(&mut run.st.sprays) {
            let all = leaked(&s.spray, &scn.leak_wires, by_wire, policies, nonces);
            let (root, dependent): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| {
                s.spray
                    .packets
                    .get(usize::from(l.id))
                    .is_some_and(|p| matches!(p.side, Side::Root(_)))
            });
            let judged = format!(
                "{} packets, seed {:#018x}, judged on {}",
                s.spray.packets.len(),
                s.spray.seed,
                scn.leak_wires.join(", ")
            );
            let outcome = match report(&s.spray, &dependent, &replay) {
                None => Outcome::Passed,
                Some((message, detail)) => fail(message, detail),
            };
            let name = format!("leak fuzzer: {}", s.step);
            let case = self.finish_case(scn, &name, outcome, Duration::ZERO, vec![judged.clone()]);
            run.cases.push(case);
            let (outcome, log) = match report(&s.spray, &root, &replay) {
                None => (Outcome::Passed, vec![judged]),
                Some((message, detail)) if self.fuzz.strict => {
                    (fail(message, detail), vec![judged])
                }
                Some((message, detail)) => (
                    Outcome::Passed,
                    vec![
                        judged,
                        format!("shown, not failing without --strict: {message}"),
                        detail,
                    ],
                ),
            };
            let name = format!("leak fuzzer, root in the gateway namespace: {}", s.step);
            run.cases
                .push(self.finish_case(scn, &name, outcome, Duration::ZERO, log));
        }
    }

    /// Each `prove` witness's case: seen leaving on a watched wire (the
    /// wire confirms the engine), or a model-only witness (not written,
    /// or written and not seen); a failure either way.
    fn judge_witnesses(
        &self,
        run: &mut InFlight<'_>,
        by_wire: &BTreeMap<String, Vec<Frame>>,
        policies: &BTreeMap<String, LeakPolicy>,
        nonces: &crate::model::classify::Nonces,
    ) {
        let scn = run.scn;
        for w in std::mem::take(&mut run.st.witnesses) {
            let seen = w.tried.iter().find_map(|(packet, marker, _)| {
                scn.leak_wires.iter().find_map(|wire| {
                    let policy = policies.get(wire)?;
                    by_wire.get(wire)?.iter().find_map(|f| {
                        if !crate::model::verdict::contains(&f.data, marker) {
                            return None;
                        }
                        let v = crate::model::classify::classify_with(policy, &f.data, nonces);
                        v.is_leak()
                            .then(|| (packet.clone(), format!("{wire}: {}", v.summary())))
                    })
                })
            });
            let (message, why) = crate::prove::witness_verdict(
                &w.tried,
                seen.as_ref().map(|(p, f)| (p.as_str(), f.as_str())),
                &scn.leak_wires.join(", "),
            );
            let outcome = fail(message, why.join("\n"));
            let name = format!("prove, the witness on the wire: {}", w.step);
            run.cases
                .push(self.finish_case(scn, &name, outcome, Duration::ZERO, vec![]));
        }
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
