//! The gateway's lifecycle: the gateway host put back as the topology
//! describes it before every scenario, a gateway started (in a scenario or
//! idle, for `leakhound lab` and the benchmarks), and the key file it
//! reads.

use std::time::Duration;

use super::report::{StepLog, StepReport, StepResult, lab_err};
use crate::lab::LabError;
use crate::model::scenario::Scenario;
use crate::model::topology::{addr, host};
use crate::scenario::runner::{ExitCause, GatewayExit, RunState, Runner};
use crate::target::{GatewayHandle, StartContext, tail, variables_for};

/// The ISP's table that drops WireGuard (the `isp-block-wireguard` fault).
pub(crate) const ISP_BLOCK: &str = "table inet lh_block {
  chain block_wireguard { type filter hook forward priority 0; policy accept;
    udp dport 51820 drop
    udp sport 51820 drop
  }
}";

/// Removes the ISP's block table, whether it is there or not: every
/// scenario starts without it.
pub const ISP_UNBLOCK: &str = "add table inet lh_block\ndelete table inet lh_block\n";

/// The failed step that needs a gateway when none runs.
pub(crate) fn no_gateway() -> StepReport {
    StepLog::new().fail_with("there is no gateway running", "")
}

impl Runner<'_> {
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
        self.lab.nft(host::ISP, ISP_UNBLOCK)?;
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

    /// Starts the target with the scenario's variables (Gluetun's alone for
    /// a foreign target). A gateway that cannot be started is a finding
    /// about it (recorded in the run state), not a harness failure.
    pub(crate) async fn start_gateway(&self, st: &mut RunState<'_>) {
        st.handshakes_before = self.services.wg.status.borrow().handshakes;
        match self.spawn_gateway(st.env.clone(), &st.gw_log).await {
            Ok(g) => {
                st.readiness.extend(g.readiness());
                // Paused real dependents go on once this gateway's kill
                // switch is in place; for a gateway that does not report
                // it, once its tunnel is up (the provider saw a handshake),
                // as dependents that wait for a healthy gateway start
                // (`depends_on: condition: service_healthy`). Bounded: a
                // gateway that never gets there has them back after 5 s.
                if let Some(apps) = &self.services.apps {
                    let ready = async {
                        if let Some(mut readiness) = g.readiness() {
                            let _ = readiness
                                .wait_for(|r| r.kill_switch_closed().is_some())
                                .await;
                        } else {
                            let before = st.handshakes_before;
                            let mut status = self.services.wg.status.clone();
                            let _ = status.wait_for(|s| s.handshakes > before).await;
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), ready).await;
                    apps.resume();
                }
                st.gateway = Some(g);
            }
            Err(e) => {
                st.unexpected_exit.get_or_insert(GatewayExit {
                    cause: ExitCause::NotStarted(e.into()),
                    log_tail: tail(&st.gw_log, 20),
                });
            }
        }
    }

    /// `kill-gateway`: SIGKILL, taking the gateway out of the run state (its
    /// exit is no finding then); its kill switch is whatever it left.
    pub(crate) async fn kill_gateway(&self, st: &mut RunState<'_>) -> StepReport {
        let Some(g) = st.gateway.take() else {
            return no_gateway();
        };
        g.kill().await;
        StepLog::with("gateway SIGKILLed; its kill switch is whatever it left in the kernel").pass()
    }

    /// `start-gateway`: the gateway (stopped first if it runs) starts again
    /// with the scenario's variables.
    pub(crate) async fn restart_gateway(&self, st: &mut RunState<'_>) -> StepReport {
        if let Some(g) = st.gateway.take() {
            g.stop().await;
        }
        self.start_gateway(st).await;
        if st.gateway.is_some() {
            StepLog::with("gateway started").pass()
        } else {
            let why = st
                .unexpected_exit
                .as_ref()
                .map(|e| e.cause.to_string())
                .unwrap_or_default();
            StepLog::new().fail_with(why, tail(&st.gw_log, 20))
        }
    }

    /// `start-gateway` with `storm-from`: the gateway (stopped first if it
    /// runs) starts, and the background traffic from `from` and the real
    /// dependents start with it: at its report of a closed kill switch if
    /// it makes one (bounded: 5 s), at once otherwise. Says how long after
    /// the gateway's start (its exec; a container's start request) the
    /// first probe went out.
    pub(crate) async fn start_gateway_storming(
        &self,
        st: &mut RunState<'_>,
        from: &str,
    ) -> StepResult {
        let mut log = StepLog::new();
        if let Some(g) = st.gateway.take() {
            g.stop().await;
        }
        st.handshakes_before = self.services.wg.status.borrow().handshakes;
        let g = match self.spawn_gateway(st.env.clone(), &st.gw_log).await {
            Ok(g) => g,
            Err(e) => {
                let exit = st.unexpected_exit.get_or_insert(GatewayExit {
                    cause: ExitCause::NotStarted(e.into()),
                    log_tail: tail(&st.gw_log, 20),
                });
                let why = exit.cause.to_string();
                return Ok(log.fail_with(why, tail(&st.gw_log, 20)));
            }
        };
        let exec = g.started();
        st.readiness.extend(g.readiness());
        let waited = match g.readiness() {
            None => "it does not report its kill switch: the traffic started at once".to_string(),
            Some(mut readiness) => {
                let closed = tokio::time::timeout(
                    Duration::from_secs(5),
                    readiness.wait_for(|r| r.kill_switch_closed().is_some()),
                )
                .await;
                match closed.ok().and_then(|r| r.ok().and_then(|r| r.kill_switch_closed())) {
                    Some(at) => format!(
                        "it reported its kill switch closed {:.1} ms after its start; the traffic started then",
                        ms(at.saturating_duration_since(exec))
                    ),
                    None => "it reports its kill switch but did not within 5 s: the traffic started anyway".into(),
                }
            }
        };
        st.gateway = Some(g);
        let started = self.storm_start(st, from)?;
        if let Some(apps) = &self.services.apps {
            apps.resume();
            log.note("the real dependents go on");
        }
        log.note(waited);
        for l in started.log {
            log.note(l);
        }
        let first = match st.storm.as_mut() {
            Some(storm) => {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    storm.rounds.wait_for(|n| *n >= 2),
                )
                .await;
                storm.first.get().copied()
            }
            None => None,
        };
        match first {
            Some(t) => log.note(format!(
                "the first probe went out {:.1} ms after the gateway's start",
                ms(t.saturating_duration_since(exec))
            )),
            None => log.problem("the background traffic sent nothing within 1 s"),
        }
        Ok(log.judge())
    }

    async fn spawn_gateway(
        &self,
        env: std::collections::BTreeMap<String, String>,
        log: &std::path::Path,
    ) -> Result<Box<dyn GatewayHandle>, Box<dyn std::error::Error + Send + Sync>> {
        let run_dir = crate::lab::netns::run_files(self.lab.run_id());
        let ctx = StartContext {
            ns: self.lab.ns(host::GW)?,
            resolv_conf: &self.lab.resolv_conf(host::GW),
            run_dir: &run_dir,
            env: variables_for(self.target.as_ref(), env),
            log,
            holder: self.holder.as_deref(),
        };
        Ok(self.target.start(ctx).await?)
    }

    /// Starts a gateway for `scn` outside any scenario run (for `leakhound
    /// lab`, the benchmarks and tests), after resetting the gateway host.
    pub async fn start_idle_gateway_async(
        &self,
        scn: &Scenario,
        log: &std::path::Path,
    ) -> Result<Box<dyn GatewayHandle>, LabError> {
        self.reset_gw().await?;
        self.spawn_gateway(self.gateway_env(scn), log)
            .await
            .map_err(|e| lab_err("gateway", crate::errfmt::chain(&*e)))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes a WireGuard key file as a provider's API (or an operator) would:
/// base64, whole or not at all (a temporary file renamed over it), readable
/// by its owner only. Also the file a scenario's gateway starts with.
pub fn write_key_file(path: &std::path::Path, key: &[u8; 32]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // A secret file's content: never in a report or a log.
    crate::model::scrub::register(&crate::tunnel::encode_key(key));
    let tmp = path.with_extension("new");
    // A new file, never through a link: a stale temporary (or anything
    // planted there) goes first, and rename replaces a link at `path`
    // rather than writing through it.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&tmp)?;
    std::io::Write::write_all(
        &mut f,
        format!("{}\n", crate::tunnel::encode_key(key)).as_bytes(),
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
