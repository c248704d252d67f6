//! Background traffic: started from a host, waited for by rounds sent (a
//! quota, not a clock), stopped.

use tokio_util::sync::CancellationToken;

use super::report::{StepLog, StepReport, StepResult};
use crate::probe;
use crate::scenario::runner::{RunState, Runner, Storm};

impl Runner<'_> {
    /// Starts background traffic from `from` (UDP to the ISP resolver, TCP
    /// to whoami, ICMP) until `storm-stop`.
    pub(crate) fn storm_start(&self, st: &mut RunState<'_>, from: &str) -> StepResult {
        let mut log = StepLog::new();
        let ns = log.harness(self.lab.ns(from))?;
        let cancel = CancellationToken::new();
        // The storm's sockets are made inside `from`; the task only
        // needs the namespace for new TCP sockets.
        let ns = log.harness(crate::lab::netns::Netns::open(ns.name()))?;
        let c = cancel.clone();
        let (tx, rounds) = tokio::sync::watch::channel(0);
        let first = std::sync::Arc::new(std::sync::OnceLock::new());
        let f = first.clone();
        let task = tokio::spawn(async move { probe::storm(&ns, c, tx, f).await });
        st.storm = Some(Storm {
            cancel,
            task,
            rounds,
            first,
        });
        log.note(format!("background traffic from {from} started"));
        Ok(log.pass())
    }

    /// Waits until the background traffic has sent `rounds` rounds.
    pub(crate) async fn storm_wait(&self, st: &mut RunState<'_>, rounds: u64) -> StepReport {
        let mut log = StepLog::new();
        match st.storm.as_mut() {
            None => log.fail_with("storm-wait without storm-start", ""),
            Some(storm) => match storm.rounds.wait_for(|n| *n >= rounds).await {
                Ok(_) => {
                    log.note(format!("background traffic sent {rounds} rounds"));
                    log.pass()
                }
                Err(_) => log.fail_with("the background traffic stopped early", ""),
            },
        }
    }

    /// Stops the background traffic and says how many rounds it sent.
    pub(crate) async fn storm_stop(&self, st: &mut RunState<'_>) -> StepReport {
        let mut log = StepLog::new();
        match st.storm.take() {
            None => log.fail_with("storm-stop without storm-start", ""),
            Some(Storm { cancel, task, .. }) => {
                cancel.cancel();
                match task.await {
                    Ok(Ok(n)) => {
                        log.note(format!("background traffic stopped after {n} rounds"));
                        log.pass()
                    }
                    Ok(Err(e)) => log.fail_with(format!("background traffic failed: {e}"), ""),
                    Err(e) => log.fail_with(format!("background traffic task failed: {e}"), ""),
                }
            }
        }
    }
}
