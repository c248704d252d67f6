//! Executing a scenario's steps: one at a time, or a run of probes that
//! must get no answer together; each step's report becomes its case, and a
//! harness error or an interruption halts the rest.

use std::time::{Duration, Instant, SystemTime};

use super::context::Runner;
use super::run::{InFlight, harness_error, interrupted};
use super::state::{ExitCause, GatewayExit, RunState};
use crate::model::scenario::{Action, Step};
use crate::model::verdict::{Outcome, Timeline, TogetherProbe};
use crate::scenario::steps::report::{StepReport, StepResult};
use crate::target::tail;

impl Runner<'_> {
    /// Runs the steps in order: one at a time, or a run of probes that
    /// must get no answer together. Once the run is halted (interrupted,
    /// or the harness failed) the rest are skipped with the reason.
    pub(super) async fn execute<'s>(&self, run: &mut InFlight<'s>) {
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
        let upstream = st.provider_resolver;
        if let [one] = group {
            st.step.clone_from(&one.name);
            let action = one.action.with_provider_resolver(upstream);
            tokio::select! {
                r = self.step(st, &action) => Some(vec![(r, t.elapsed())]),
                _ = self.interrupt.cancelled() => None,
            }
        } else {
            let all = futures::future::join_all(group.iter().map(|s| async move {
                let r = self.probe(&s.action.with_provider_resolver(upstream)).await;
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
            cause: ExitCause::Ended {
                how: status,
                step: step.to_string(),
            },
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
