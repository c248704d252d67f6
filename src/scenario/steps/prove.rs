//! The `prove` step: `leakhound prove` on a lab host's namespace as it is
//! at that point of the scenario (the tunnel stopped, the provider gone,
//! the gateway crashed), against the lab's policy. A proof passes; a
//! witness fails the step and is written from the namespace with a marker
//! for the judge to find on the wires ([`WitnessRun`]), one in conntrack
//! state established after its connection is built; "cannot prove"
//! fails naming the rule.

use std::net::IpAddr;
use std::time::Instant;

use leakhound_prove::{Answer, Policy};

use super::report::{StepLog, StepResult, lab_err};
use crate::model::topology::addr;
use crate::probe;
use crate::scenario::runner::{RunState, Runner, WitnessRun};

impl Runner<'_> {
    pub(crate) async fn prove_step(&self, st: &mut RunState<'_>, from: &str) -> StepResult {
        let mut log = StepLog::new();
        let ns = log.harness(self.lab.ns(from))?;
        let ns = log.harness(ns.try_clone())?;
        let policy = Policy {
            endpoints: vec![(IpAddr::V4(addr::VPN_ENDPOINT), addr::VPN_ENDPOINT_PORT)],
            allow: self.profile.allowed.clone(),
        };
        let allowed: Vec<String> = policy.allow.iter().map(ToString::to_string).collect();
        log.note(format!(
            "policy: UDP to {}:{}, and {}",
            addr::VPN_ENDPOINT,
            addr::VPN_ENDPOINT_PORT,
            allowed.join(", ")
        ));
        let tag = format!("lhwitness{}", probe::nonce());
        let answered = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let state = crate::prove::read_live(&ns, "eth0")?;
            let answer = crate::prove::answer(&state, &policy);
            let took = t.elapsed();
            // Every path's witness is written now, while the namespace is
            // as it was read: the first may rest on a match the model took
            // both ways (an iptables `xt` match) and be stopped, where a
            // raw frame's is not.
            let tried = if matches!(answer, Answer::Witness { .. }) {
                crate::prove::write_witnesses(
                    &ns,
                    &state,
                    &policy,
                    "eth0",
                    &tag,
                    crate::prove::Reach::Lab,
                    &|| false,
                )
            } else {
                Vec::new()
            };
            Ok::<_, crate::prove::ProveError>((answer, took, tried))
        })
        .await
        .map_err(|e| log.error(lab_err("prove", e)))?;
        let (answer, took, tried) = match answered {
            Ok(a) => a,
            // The state could not be read: the gateway's namespace is not
            // what a gateway's is (no nft, no eth0): a finding.
            Err(e) => return Ok(log.fail(format!("the namespace's state could not be read: {e}"))),
        };
        let ms = took.as_secs_f64() * 1000.0;
        match answer {
            Answer::Proof { assumptions } => {
                log.note(format!(
                    "PROOF in {ms:.0} ms: no other packet leaves on eth0"
                ));
                for a in assumptions {
                    log.note(format!("assuming {a}"));
                }
                Ok(log.pass())
            }
            Answer::Cannot(c) => {
                log.note(format!("answered in {ms:.0} ms"));
                Ok(log.fail(c.to_string()))
            }
            Answer::Witness {
                packet,
                assumptions,
            } => {
                log.note(format!("WITNESS in {ms:.0} ms: {packet}"));
                for a in &assumptions {
                    log.note(format!("assuming {a}"));
                }
                for (p, _, sent) in &tried {
                    match sent {
                        Ok(()) => log.note(format!(
                            "written from the namespace with a marker, for the judge to look for on the wires: {p}"
                        )),
                        Err(e) => log.note(format!("not written: {p}: {e}")),
                    }
                }
                st.witnesses.push(WitnessRun {
                    step: st.step.clone(),
                    tried,
                });
                Ok(log.fail(format!(
                    "a packet outside the policy leaves on eth0: {packet}"
                )))
            }
        }
    }
}
