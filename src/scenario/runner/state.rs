//! What a scenario's steps share while it runs ([`RunState`]): the gateway
//! in flight and how it ended, the background traffic, the forwarded
//! port's stand-in, the key before a rotation, the swarm's torrent and the
//! NZBs given to the real applications.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::fail;
use crate::lab::swarm::Swarm;
use crate::model::scenario::Scenario;
use crate::model::verdict::Outcome;
use crate::probe;
use crate::target::{GatewayEnd, GatewayHandle, Readiness, ReadinessEvent};

/// Background traffic in progress.
pub struct Storm {
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<u64, probe::ProbeError>>,
    pub rounds: tokio::sync::watch::Receiver<u64>,
    /// When its first probe went out.
    pub first: std::sync::Arc<std::sync::OnceLock<std::time::Instant>>,
}

/// What a scenario's steps share while it runs.
pub struct RunState<'s> {
    pub scn: &'s Scenario,
    /// The gateway's variables for this scenario (computed once).
    pub env: std::collections::BTreeMap<String, String>,
    /// The lab service `provider-resolver` means for these variables.
    pub provider_resolver: &'static str,
    pub gateway: Option<Box<dyn GatewayHandle>>,
    pub gw_log: PathBuf,
    /// Provider handshakes counted when the current gateway started.
    pub handshakes_before: u64,
    pub handshake_after: Option<Duration>,
    pub firewall_after: Option<Duration>,
    pub storm: Option<Storm>,
    /// Long-lived flows in progress (`flows-start`).
    pub flows: Option<crate::scenario::steps::flows::Flows>,
    /// The forwarded port the stand-in serves for `forwarded-port` steps,
    /// and its task (the listener closes when the scenario ends).
    pub forwarded_listener: Option<u16>,
    pub forwarded_task: Option<AbortOnDrop>,
    /// The gateway ended (or never started) without a step making it: a
    /// finding, reported once per scenario.
    pub unexpected_exit: Option<GatewayExit>,
    /// The last reading of every unlabelled Prometheus sample a `control`
    /// step saw, for `grows`.
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The private key the gateway had before the last `rotate-key`, for
    /// `old-key-refused`; and the one it has now.
    pub old_key: Option<[u8; 32]>,
    pub current_key: [u8; 32],
    /// The lab's swarm and the torrent given to qBittorrent, once a
    /// `torrent-add` step ran.
    pub swarm: Option<ScenarioSwarm>,
    /// The NZBs given to NZBGet, and when the first was (the news server's
    /// log is read from then on).
    pub nzbs: Vec<GivenNzb>,
    pub news_since: Option<std::time::SystemTime>,
    /// When the scenario started (the far end's logs are read from then on
    /// by `unheard`).
    pub started_at: std::time::SystemTime,
    /// The readiness events of every gateway the scenario started (those
    /// that report them), each start's in turn.
    pub readiness: Vec<tokio::sync::watch::Receiver<Readiness>>,
    /// The step running now (the leak fuzzer names its spray by it).
    pub step: String,
    /// The leak fuzzer's sprays so far, judged with the capture.
    pub sprays: Vec<SprayRun>,
    /// The `prove` steps' witnesses so far, looked for on the wires.
    pub witnesses: Vec<WitnessRun>,
}

/// One `prove` step's witness, for the judge.
#[derive(Debug, Clone)]
pub struct WitnessRun {
    pub step: String,
    /// The packets tried (one for each path with leaks), each as the step
    /// named it, with the marker it carried and whether it was written
    /// (and why not).
    pub tried: Vec<(String, Vec<u8>, Result<(), String>)>,
}

/// One `fuzz` step's spray, for the judge.
pub struct SprayRun {
    pub step: String,
    pub spray: crate::model::spray::Spray,
}

impl RunState<'_> {
    /// Every readiness event its gateways have reported, start by start.
    pub fn readiness_events(&self) -> Vec<ReadinessEvent> {
        self.readiness
            .iter()
            .flat_map(|r| {
                r.borrow()
                    .events
                    .iter()
                    .map(|(_, e)| e.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// How the gateway under test ended when nothing asked it to.
#[derive(Debug, Clone)]
pub struct GatewayExit {
    /// What happened (its text is one line, naming the step).
    pub cause: ExitCause,
    pub log_tail: String,
}

/// Why a scenario's gateway is gone although no step took it out.
#[derive(Debug, Clone)]
pub enum ExitCause {
    /// It ended on its own, `how`, during the step named `step`.
    Ended { how: GatewayEnd, step: String },
    /// It could not be started (the target's error, with its causes).
    NotStarted(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl std::fmt::Display for ExitCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitCause::Ended { how, step } => {
                write!(f, "the gateway exited on its own ({how}) during \"{step}\"")
            }
            ExitCause::NotStarted(e) => write!(
                f,
                "the gateway could not be started: {}",
                crate::errfmt::chain(&**e)
            ),
        }
    }
}

/// A background task stopped when this is dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The swarm of a scenario and its torrent's hash in qBittorrent's form.
pub struct ScenarioSwarm {
    pub swarm: Swarm,
    pub hash: String,
    /// When it started: the seeder's log is read from then on.
    pub started: std::time::SystemTime,
}

/// One NZB given to NZBGet in this scenario.
pub struct GivenNzb {
    pub id: i64,
    /// In every message id of its articles.
    pub tag: String,
}

impl RunState<'_> {
    /// The scenario's swarm, or the failed step when no `torrent-add` came
    /// first.
    pub(crate) fn torrent(&self) -> Result<&ScenarioSwarm, Outcome> {
        self.swarm
            .as_ref()
            .ok_or_else(|| fail("no torrent yet: a torrent-add step must come first", ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unasked_end_says_how_and_during_which_step() {
        let ended = ExitCause::Ended {
            how: GatewayEnd::Signalled {
                signal: 9,
                core_dumped: false,
            },
            step: "probe".into(),
        };
        assert_eq!(
            ended.to_string(),
            "the gateway exited on its own (signal: 9 (SIGKILL)) during \"probe\""
        );
        let e = crate::target::TargetError::Start {
            target: "builtin".into(),
            source: std::io::Error::other("no such file"),
        };
        let not = ExitCause::NotStarted(std::sync::Arc::new(e));
        assert_eq!(
            not.to_string(),
            "the gateway could not be started: starting target builtin: no such file"
        );
    }
}
