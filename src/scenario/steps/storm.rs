//! Background traffic: started from a host, waited for by rounds sent (a
//! quota, not a clock), stopped.

use tokio_util::sync::CancellationToken;

use crate::lab::LabError;
use crate::model::verdict::Outcome;
use crate::probe;
use crate::scenario::runner::{RunState, Runner, Storm, fail};

impl Runner<'_> {
    /// Starts background traffic from `from` (UDP to the ISP resolver, TCP
    /// to whoami, ICMP) until `storm-stop`.
    pub(crate) fn storm_start(
        &self,
        st: &mut RunState<'_>,
        from: &str,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(from)?;
        let cancel = CancellationToken::new();
        // The storm's sockets are made inside `from`; the task only
        // needs the namespace for new TCP sockets.
        let ns = crate::lab::netns::Netns::open(ns.name())?;
        let c = cancel.clone();
        let (tx, rounds) = tokio::sync::watch::channel(0);
        let task = tokio::spawn(async move { probe::storm(&ns, c, tx).await });
        st.storm = Some(Storm {
            cancel,
            task,
            rounds,
        });
        log.push(format!("background traffic from {from} started"));
        Ok(Outcome::Passed)
    }

    /// Waits until the background traffic has sent `rounds` rounds.
    pub(crate) async fn storm_wait(
        &self,
        st: &mut RunState<'_>,
        rounds: u64,
        log: &mut Vec<String>,
    ) -> Outcome {
        match st.storm.as_mut() {
            None => fail("storm-wait without storm-start", ""),
            Some(storm) => {
                let want = rounds;
                match storm.rounds.wait_for(|n| *n >= want).await {
                    Ok(_) => {
                        log.push(format!("background traffic sent {want} rounds"));
                        Outcome::Passed
                    }
                    Err(_) => fail("the background traffic stopped early", ""),
                }
            }
        }
    }

    /// Stops the background traffic and says how many rounds it sent.
    pub(crate) async fn storm_stop(&self, st: &mut RunState<'_>, log: &mut Vec<String>) -> Outcome {
        match st.storm.take() {
            None => fail("storm-stop without storm-start", ""),
            Some(Storm { cancel, task, .. }) => {
                cancel.cancel();
                match task.await {
                    Ok(Ok(n)) => {
                        log.push(format!("background traffic stopped after {n} rounds"));
                        Outcome::Passed
                    }
                    Ok(Err(e)) => fail(format!("background traffic failed: {e}"), ""),
                    Err(e) => fail(format!("background traffic task failed: {e}"), ""),
                }
            }
        }
    }
}
