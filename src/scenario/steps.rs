//! Executing one step: the probes (each with its nonce and its far-end
//! check in the lab services' log) and the faults done to the lab or the
//! gateway. A step ends in an [`Outcome`]; only a harness problem (the lab
//! cannot do what is asked) is an error.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use super::external;
use super::model::{Action, Check, Expect, Fault, Interference, PortCommandExpect, Scenario};
use super::runner::{Outcome, PROBE_TIMEOUT, Runner, fail};
use crate::lab::LabError;
use crate::model::scenario::Capability;
use crate::model::topology::{addr, host};
use crate::probe;
use crate::target::{GatewayHandle, StartContext, tail, variables_for};

/// Which independent client asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExternalKind {
    Dns,
    Dot,
    Doh,
}

/// How long a `control` step with `grows` reads the metrics again: the
/// gateway publishes its tunnel's counters on the tunnel's timer tick
/// (250 ms), so growth may show a tick late.
const METRICS_LAG: Duration = Duration::from_secs(2);

/// One step's outcome from our own probe and an independent client's.
pub(crate) fn merge(
    own: Outcome,
    external: Result<Vec<String>, String>,
    log: &[String],
) -> Outcome {
    let external = match external {
        Ok(e) => e,
        // No independent client: a failure of our own client stands; a pass
        // would rest on leakhound's own client alone, so it is no verdict.
        Err(missing) => {
            return match own {
                Outcome::Passed => Outcome::Skipped { reason: missing },
                other => other,
            };
        }
    };
    if external.is_empty() {
        return own;
    }
    let mut problems = match own {
        Outcome::Passed => Vec::new(),
        Outcome::Failed { message, .. } => vec![message],
        other @ (Outcome::Error { .. } | Outcome::Skipped { .. } | Outcome::Waived { .. }) => {
            return other;
        }
    };
    problems.extend(external);
    fail(problems.join("; "), log.join("\n"))
}

/// Background traffic in progress.
pub struct Storm {
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<u64, probe::ProbeError>>,
    pub rounds: tokio::sync::watch::Receiver<u64>,
}

/// What a scenario's steps share while it runs.
pub struct RunState<'s> {
    pub scn: &'s Scenario,
    /// The gateway's variables for this scenario (computed once).
    pub env: std::collections::BTreeMap<String, String>,
    pub gateway: Option<Box<dyn GatewayHandle>>,
    pub gw_log: PathBuf,
    /// Provider handshakes counted when the current gateway started.
    pub handshakes_before: u64,
    pub handshake_after: Option<Duration>,
    pub firewall_after: Option<Duration>,
    pub storm: Option<Storm>,
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
    pub swarm: Option<super::swarm_steps::ScenarioSwarm>,
    /// The NZBs given to NZBGet, and when the first was (the news server's
    /// log is read from then on).
    pub nzbs: Vec<super::usenet_steps::GivenNzb>,
    pub news_since: Option<std::time::SystemTime>,
    /// When the scenario started (the far end's logs are read from then on
    /// by `unheard`).
    pub started_at: std::time::SystemTime,
}

/// How the gateway under test ended when nothing asked it to.
#[derive(Debug, Clone)]
pub struct GatewayExit {
    /// One line: what happened and during which step.
    pub summary: String,
    pub log_tail: String,
}

/// A background task stopped when this is dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a forwarded-port step waits for the gateway to write a port
/// (a refused request is retried with backoff: 2 s, 4 s, 8 s).
const FORWARDED_PORT_WAIT: Duration = Duration::from_secs(15);

const ISP_BLOCK: &str = "table inet lh_block {
  chain block_wireguard { type filter hook forward priority 0; policy accept;
    udp dport 51820 drop
    udp sport 51820 drop
  }
}";
pub const ISP_UNBLOCK: &str = "add table inet lh_block\ndelete table inet lh_block\n";

/// Where the gateway's control server listens, from its variables (Gluetun's
/// default `:8000`), as seen from inside its namespace.
fn control_address(env: &std::collections::BTreeMap<String, String>) -> SocketAddr {
    let raw = env
        .get("HTTP_CONTROL_SERVER_ADDRESS")
        .map(String::as_str)
        .unwrap_or(":8000");
    let full = if raw.starts_with(':') {
        format!("127.0.0.1{raw}")
    } else {
        raw.replace("0.0.0.0", "127.0.0.1")
    };
    full.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8000)))
}

/// The header that authenticates the lab's ops role on the gateway's
/// control server (stop/start the tunnel, rotate the key).
fn ops_role() -> Vec<(String, String)> {
    vec![(
        "x-api-key".to_string(),
        crate::lab::CONTROL_API_KEY.to_string(),
    )]
}

/// `PUT /v1/vpn/status` with the lab's ops key. The gateway answers once
/// the tunnel is in the asked state (the acknowledgement). While its control
/// server does not accept connections yet (the process is just starting),
/// the request is repeated until the gateway accepts it, exits, or 10 s
/// pass: the readiness fact is the server answering, not a sleep.
async fn put_vpn_status(
    ns: &crate::lab::netns::Netns,
    target: SocketAddr,
    running: bool,
    gateway: &mut Box<dyn GatewayHandle>,
) -> Result<String, String> {
    let body = format!(
        "{{\"status\":\"{}\"}}",
        if running { "running" } else { "stopped" }
    );
    let headers = ops_role();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = probe::http_request(
            ns,
            "PUT",
            target,
            "/v1/vpn/status",
            &headers,
            body.clone(),
            Duration::from_secs(12),
        )
        .await;
        match r {
            Ok((200, text)) => return Ok(text),
            Ok((code, text)) => {
                return Err(format!(
                    "the control server refused the request: {code} {text}"
                ));
            }
            Err(e) => {
                if let Some(status) = gateway.try_exited() {
                    return Err(format!(
                        "the gateway exited ({status}) before it took the request"
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the control server at {target} did not take the request within 10s: {e}"
                    ));
                }
                // Connection refused: the server is not listening yet.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn lab_err(service: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LabError {
    LabError::Service {
        service: service.to_string(),
        source: std::io::Error::other(e),
    }
}

impl Runner<'_> {
    /// Starts the target with the scenario's variables (Gluetun's alone for
    /// a foreign target). A gateway that cannot be started is a finding
    /// about it (recorded in the run state), not a harness failure.
    pub(crate) async fn start_gateway(&self, st: &mut RunState<'_>) {
        st.handshakes_before = self.services.wg.status.borrow().handshakes;
        match self.spawn_gateway(st.env.clone(), &st.gw_log).await {
            Ok(g) => {
                // Paused real dependents go on once this gateway's kill
                // switch is in place; for a gateway that does not report
                // it, once its tunnel is up (the provider saw a handshake),
                // as dependents that wait for a healthy gateway start
                // (`depends_on: condition: service_healthy`). Bounded: a
                // gateway that never gets there has them back after 5 s.
                if let Some(apps) = &self.services.apps {
                    let ready = async {
                        if let Some(mut closed) = g.firewall_closed() {
                            let _ = closed.wait_for(|c| c.is_some()).await;
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
                    summary: format!(
                        "the gateway could not be started: {}",
                        crate::errfmt::chain(&*e)
                    ),
                    log_tail: tail(&st.gw_log, 20),
                });
            }
        }
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

    /// Runs one probe (http, dns, udp, encrypted-dns, ping): it needs no
    /// run state, so probes that all wait for no answer may run at once
    /// (see [`Action::is_silent_probe`]). Any other action is the
    /// harness's error.
    pub(crate) async fn probe(
        &self,
        action: &Action,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        Ok(match action {
            Action::Http {
                from,
                target,
                check,
            } => self.http_step(from, *target, check, log).await?,
            Action::Dns {
                from,
                server,
                zone,
                check,
            } => self.dns_step(from, *server, zone, check, log).await?,
            Action::Udp {
                from,
                target,
                check,
                size,
            } => {
                let nonce = probe::nonce();
                let payload = probe::padded(&nonce, *size);
                log.push(format!(
                    "UDP {nonce:?} ({} bytes) to {target} from {from}",
                    payload.len()
                ));
                let r = probe::udp_echo(self.lab.ns(from)?, *target, &payload, PROBE_TIMEOUT).await;
                self.probe_outcome(&nonce, "datagram", check, r, log)
            }
            Action::EncryptedDns {
                https,
                from,
                target,
                check,
            } => {
                let nonce = probe::nonce();
                let name = probe::probe_name(&nonce);
                let kind = if *https { "DoH" } else { "DoT" };
                log.push(format!("{kind} query for {name} to {target} from {from}"));
                let alpn: &[&[u8]] = if *https { &[b"h2"] } else { &[b"dot"] };
                let tls = self
                    .services
                    .tls
                    .client_config(alpn)
                    .map_err(|e| lab_err(kind, e))?;
                let ns = self.lab.ns(from)?;
                let r = if *https {
                    probe::doh_a(ns, *target, &name, tls, PROBE_TIMEOUT).await
                } else {
                    probe::dot_a(ns, *target, &name, tls, PROBE_TIMEOUT).await
                };
                let r = match r {
                    Ok(a) if !a.is_empty() => Ok(()),
                    Ok(_) => Err(probe::ProbeError::Dns(
                        "an answer without an address".into(),
                    )),
                    Err(e) => Err(e),
                };
                let own = self.probe_outcome(&nonce, "query", check, r, log);
                let kind = if *https {
                    ExternalKind::Doh
                } else {
                    ExternalKind::Dot
                };
                let ext = self
                    .external_check(kind, from, *target, "probe.lab", check, log)
                    .await?;
                merge(own, ext, log)
            }
            Action::Ping {
                from,
                target,
                expect,
                size,
                dont_fragment,
            } => {
                let nonce = probe::nonce();
                let payload = probe::padded(&nonce, *size);
                log.push(format!(
                    "echo request {nonce:?} ({} bytes{}) to {target} from {from}",
                    payload.len(),
                    if *dont_fragment {
                        ", don't fragment"
                    } else {
                        ""
                    }
                ));
                let r = probe::ping(
                    self.lab.ns(from)?,
                    *target,
                    &payload,
                    *dont_fragment,
                    PROBE_TIMEOUT,
                )
                .await;
                self.probe_outcome(
                    &nonce,
                    "echo request",
                    &Check::expect(expect.clone()),
                    r,
                    log,
                )
            }
            _ => {
                return Err(LabError::Service {
                    service: "probe".into(),
                    source: std::io::Error::other("not a probe action"),
                });
            }
        })
    }

    /// Runs one step.
    pub(crate) async fn step(
        &self,
        st: &mut RunState<'_>,
        action: &Action,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        Ok(match action {
            Action::WaitHandshake { timeout } => self.wait_handshake(st, *timeout, log).await,
            Action::WaitFirewall { timeout } => self.wait_firewall(st, *timeout, log).await,
            Action::WaitTunnelRestart { timeout } => self.wait_tunnel_restart(*timeout, log).await,
            Action::WaitTraffic { timeout } => {
                self.wait_traffic(tokio::time::Instant::now() + *timeout, log)
                    .await
            }
            Action::PortCommand { expect, timeout } => {
                self.port_command_step(st, *expect, *timeout, log).await
            }
            Action::Http { .. }
            | Action::Dns { .. }
            | Action::Udp { .. }
            | Action::EncryptedDns { .. }
            | Action::Ping { .. } => self.probe(action, log).await?,
            Action::RawFrame {
                from,
                target,
                check,
            } => self.raw_frame_step(from, *target, check, log).await?,
            Action::InjectSynack {
                from,
                target,
                expect,
            } => self.synack_step(from, *target, expect, log).await?,
            Action::DnsGarbage { from, server } => {
                // The gateway's own resolver is gone with the gateway: say
                // so at once rather than wait out every malformed message.
                if from == host::GW && server.is_none() && st.gateway.is_none() {
                    return Ok(fail(
                        "there is no gateway running: its resolver cannot be sent malformed messages",
                        log.join("\n"),
                    ));
                }
                let server = match self.resolver_for(from, *server, log) {
                    Ok(s) => s,
                    Err(outcome) => return Ok(outcome),
                };
                let corpus = probe::malformed_dns();
                log.push(format!(
                    "{} malformed messages and {} mutated queries over UDP, and one short TCP frame, to {server}",
                    corpus.len(),
                    probe::MUTATIONS
                ));
                for (what, _) in &corpus {
                    log.push(format!("  {what}"));
                }
                let replies = probe::dns_garbage(self.lab.ns(from)?, server)
                    .await
                    .map_err(|e| lab_err("dns-garbage", e))?;
                log.push(format!(
                    "{replies} got a reply (an error response); the rest were dropped"
                ));
                Outcome::Passed
            }
            Action::StormStart { from } => {
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
                Outcome::Passed
            }
            Action::StormWait { rounds } => match st.storm.as_mut() {
                None => fail("storm-wait without storm-start", ""),
                Some(storm) => {
                    let want = *rounds;
                    match storm.rounds.wait_for(|n| *n >= want).await {
                        Ok(_) => {
                            log.push(format!("background traffic sent {want} rounds"));
                            Outcome::Passed
                        }
                        Err(_) => fail("the background traffic stopped early", ""),
                    }
                }
            },
            Action::StormStop => match st.storm.take() {
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
            },
            Action::Health {
                healthy,
                target,
                timeout,
            } => self.health_step(*healthy, *target, *timeout, log).await?,
            Action::Control {
                method,
                path,
                target,
                headers,
                body,
                status,
                contains,
                grows,
            } => {
                log.push(format!(
                    "{method} http://{target}{path}{}",
                    if headers.is_empty() {
                        " (no credentials)"
                    } else {
                        ""
                    }
                ));
                // Counters are published on the tunnel's timer tick: a
                // reading that should show growth is repeated (bounded)
                // until it does; any other check is one request.
                let deadline = tokio::time::Instant::now() + METRICS_LAG;
                let before = st.metrics.clone();
                loop {
                    let r = probe::http_request(
                        self.lab.ns(host::GW)?,
                        method,
                        *target,
                        path,
                        headers,
                        body.clone(),
                        PROBE_TIMEOUT,
                    )
                    .await;
                    let (code, text) = match r {
                        Err(e) => {
                            break fail(
                                format!("no answer from the control server: {e}"),
                                log.join("\n"),
                            );
                        }
                        Ok(a) => a,
                    };
                    if code != *status {
                        log.push(format!("{code}: {text}"));
                        break fail(
                            format!("expected {status}, got {code}: {text}"),
                            log.join("\n"),
                        );
                    }
                    if let Some(c) = contains.as_ref().filter(|c| !text.contains(c.as_str())) {
                        log.push(format!("{code}: {text}"));
                        break fail(
                            format!("the answer does not contain {c:?}: {text}"),
                            log.join("\n"),
                        );
                    }
                    let now = crate::model::prom::samples(&text);
                    if grows.is_empty() {
                        log.push(format!("{code}: {text}"));
                        st.metrics.extend(now);
                        break Outcome::Passed;
                    }
                    match crate::model::prom::growth(&before, &now, grows) {
                        Ok(g) => {
                            log.push(format!("{code}; grown since the last reading: {g}"));
                            st.metrics.extend(now);
                            break Outcome::Passed;
                        }
                        Err(why) if tokio::time::Instant::now() >= deadline => {
                            log.push(format!("{code}: {text}"));
                            st.metrics.extend(now);
                            break fail(
                                format!("{why} (read again for {METRICS_LAG:?})"),
                                log.join("\n"),
                            );
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            Action::ForwardedPort {
                via,
                expect,
                bittorrent,
            } => {
                self.forwarded_step(st, via, expect, *bittorrent, log)
                    .await?
            }
            Action::TorrentAdd => self.torrent_add(st, log).await?,
            Action::TorrentWait { progress, timeout } => {
                self.torrent_wait(st, *progress, *timeout, log).await?
            }
            Action::TorrentAnnounce { expect, timeout } => {
                self.torrent_announce(st, expect, *timeout, log).await?
            }
            Action::SwarmSeen { seen_as } => self.swarm_seen(st, *seen_as, log),
            Action::TorrentPort { timeout } => self.torrent_port(st, *timeout, log).await?,
            Action::NzbAdd => self.nzb_add(st, log).await?,
            Action::NzbWait { expect, timeout } => self.nzb_wait(st, expect, *timeout, log).await?,
            Action::NewsSeen { seen_as } => self.news_seen(st, *seen_as, log),
            Action::Browse { expect } => self.browse(expect, log).await?,
            Action::Unheard { by } => self.unheard(st, by, log),
            Action::Fault(f) => self.fault(st, *f, log).await?,
            Action::Interfere(i) => self.interfere(st, i, log).await?,
        })
    }

    /// The tunnel stops or starts through the gateway's own control API
    /// (`PUT /v1/vpn/status` with the lab's ops role), which answers once
    /// the tunnel is in the asked state.
    async fn tunnel_by_control(
        &self,
        st: &mut RunState<'_>,
        running: bool,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let Some(g) = st.gateway.as_mut() else {
            return Ok(fail("there is no gateway running", ""));
        };
        let target = control_address(&st.env);
        let ns = self.lab.ns(host::GW)?;
        log.push(format!(
            "PUT http://{target}/v1/vpn/status {{\"status\":\"{}\"}} (the lab's ops role)",
            if running { "running" } else { "stopped" }
        ));
        Ok(match put_vpn_status(ns, target, running, g).await {
            Ok(answer) => {
                log.push(format!("the gateway answered: {answer}"));
                Outcome::Passed
            }
            Err(why) => {
                g.log_flushed().await;
                fail(why, tail(&st.gw_log, 20))
            }
        })
    }

    /// The lab as the provider's API: a new key pair; the private key goes
    /// (atomically) into the gateway's WIREGUARD_PRIVATE_KEY_SECRETFILE,
    /// the provider accepts the public key from now on and forgets the old
    /// one, and the gateway is told through its control server. The next
    /// `wait-handshake` waits for a handshake on the new key.
    async fn rotate_key(
        &self,
        st: &mut RunState<'_>,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let file = match super::runner::run_file(
            self.lab.run_id(),
            &st.env,
            "WIREGUARD_PRIVATE_KEY_SECRETFILE",
        ) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(lab_err(
                    "rotate-key",
                    std::io::Error::other("the scenario sets no WIREGUARD_PRIVATE_KEY_SECRETFILE"),
                ));
            }
            Err(e) => return Err(lab_err("rotate-key", std::io::Error::other(e))),
        };
        let Some(g) = st.gateway.as_mut() else {
            return Ok(fail("there is no gateway running", ""));
        };
        let (private, public) = crate::tunnel::generate_keypair();
        write_key_file(&file, &private).map_err(|e| lab_err("rotate-key", e))?;
        self.services.wg.set_peer(public).await?;
        st.handshakes_before = self.services.wg.status.borrow().handshakes;
        st.old_key = Some(st.current_key);
        st.current_key = private;
        log.push(format!(
            "a new key in {}; the provider accepts only it from now on",
            file.display()
        ));
        let target = control_address(&st.env);
        let ns = self.lab.ns(host::GW)?;
        let headers = ops_role();
        log.push(format!(
            "PUT http://{target}/v1/wireguard/key (the lab's ops role)"
        ));
        let r = probe::http_request(
            ns,
            "PUT",
            target,
            "/v1/wireguard/key",
            &headers,
            String::new(),
            PROBE_TIMEOUT,
        )
        .await;
        Ok(match r {
            Ok((200, text)) => {
                log.push(format!("the gateway answered: {}", text.trim()));
                Outcome::Passed
            }
            Ok((code, text)) => {
                g.log_flushed().await;
                fail(
                    format!("the gateway refused the new key: {code} {}", text.trim()),
                    tail(&st.gw_log, 20),
                )
            }
            Err(e) => {
                g.log_flushed().await;
                fail(
                    format!("the control server did not take the new key: {e}"),
                    tail(&st.gw_log, 20),
                )
            }
        })
    }

    /// A handshake initiation made with the key from before the last
    /// rotation, sent to the provider from the internet side: passes when
    /// nothing answers within the probe timeout.
    async fn old_key_refused(
        &self,
        st: &mut RunState<'_>,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let Some(old) = st.old_key else {
            return Ok(fail(
                "no key was rotated before this step (see the rotate-key step)",
                "",
            ));
        };
        let endpoint = SocketAddr::new(addr::VPN_ENDPOINT.into(), addr::VPN_ENDPOINT_PORT);
        let k = &self.services.keys;
        let mut tunn = boringtun::noise::Tunn::new(
            boringtun::x25519::StaticSecret::from(old),
            boringtun::x25519::PublicKey::from(k.server_public),
            Some(k.psk),
            None,
            1,
            None,
        );
        let mut buf = vec![0u8; 256];
        let init = match tunn.format_handshake_initiation(&mut buf, true) {
            boringtun::noise::TunnResult::WriteToNetwork(p) => p.to_vec(),
            _ => {
                return Err(lab_err(
                    "old-key-refused",
                    std::io::Error::other("boringtun made no handshake initiation"),
                ));
            }
        };
        let ns = self.lab.ns(host::ISP)?;
        let sock =
            probe::udp_socket_for(ns, endpoint).map_err(|e| lab_err("old-key-refused", e))?;
        sock.send_to(&init, endpoint)
            .await
            .map_err(|e| lab_err("old-key-refused", e))?;
        log.push(format!(
            "a handshake initiation with the old key, from the ISP to {endpoint}"
        ));
        let mut reply = vec![0u8; 2048];
        Ok(
            match tokio::time::timeout(PROBE_TIMEOUT, sock.recv_from(&mut reply)).await {
                Err(_) => {
                    log.push(format!("no answer within {PROBE_TIMEOUT:?}"));
                    Outcome::Passed
                }
                Ok(Ok((n, from))) => fail(
                    format!("the provider answered the old key: {n} bytes from {from}"),
                    "",
                ),
                Ok(Err(e)) => return Err(lab_err("old-key-refused", e)),
            },
        )
    }

    /// For a gateway without a control server the tunnel dies from outside,
    /// as the seed's "kill the VPN": its tunnel link (the gateway host's
    /// link that is neither lo nor the underlay) is deleted. It comes back
    /// the only way such a gateway offers: the gateway is restarted.
    async fn tunnel_from_outside(
        &self,
        st: &mut RunState<'_>,
        running: bool,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        if running {
            if let Some(g) = st.gateway.take() {
                g.stop().await;
            }
            self.start_gateway(st).await;
            log.push(format!(
                "target {} has no control server: its tunnel comes back by restarting it",
                self.target.name()
            ));
            return Ok(match &st.unexpected_exit {
                Some(e) if st.gateway.is_none() => fail(e.summary.clone(), e.log_tail.clone()),
                _ => Outcome::Passed,
            });
        }
        let nl = self.lab.nl(host::GW)?;
        let nlerr = |source| LabError::Netlink {
            host: host::GW.into(),
            source,
        };
        let underlay = self
            .lab
            .topology()
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .find(|e| e.host == host::GW)
            .map(|e| e.ifname)
            .unwrap_or("eth0");
        let links = nl.link_names().await.map_err(nlerr)?;
        let tunnels: Vec<&String> = links
            .iter()
            .filter(|l| l.as_str() != "lo" && l.as_str() != underlay)
            .collect();
        if tunnels.is_empty() {
            return Ok(fail(
                format!("the gateway host has no tunnel link to take down (links: {links:?})"),
                log.join("\n"),
            ));
        }
        for t in tunnels {
            nl.del_link(t).await.map_err(nlerr)?;
            log.push(format!(
                "deleted the tunnel link {t} from outside (the gateway has no control server)"
            ));
        }
        Ok(Outcome::Passed)
    }

    /// Changes the gateway's namespace from outside, as other software on
    /// the machine might.
    async fn interfere(
        &self,
        st: &mut RunState<'_>,
        i: &Interference,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        if let Some(script) = &i.nft {
            self.lab.nft(host::GW, script)?;
            log.push(format!("ran nft in the gateway's namespace:\n{script}"));
        }
        if let Some(text) = &i.resolv_conf {
            std::fs::write(self.lab.resolv_conf(host::GW), text).map_err(|source| {
                LabError::Service {
                    service: "resolv.conf".into(),
                    source,
                }
            })?;
            log.push(format!(
                "replaced the gateway host's resolv.conf with:\n{text}"
            ));
        }
        if i.routes_around {
            self.fault(st, Fault::RouteAroundTunnel, log).await?;
        }
        if i.kill {
            let n = crate::lab::netns::kill_all_in(self.lab.ns(host::GW)?);
            log.push(format!(
                "SIGKILLed {n} process(es) in the gateway's namespace (as the OOM killer would)"
            ));
            // Reaped now, so the runner sees the exit after this step.
            if let Some(g) = st.gateway.as_mut() {
                let _ = g.exited().await;
            }
        }
        Ok(Outcome::Passed)
    }

    /// Asks the same question through an independent client (kdig for DNS
    /// and DoT, curl for DoH), with its own nonce, and returns what did not
    /// meet `expect` (including the far-end checks); `Err(reason)` when the
    /// client is not installed (the step is then skipped with that reason
    /// rather than passed on leakhound's own client alone).
    pub(crate) async fn external_check(
        &self,
        kind: ExternalKind,
        from: &str,
        server: SocketAddr,
        zone: &str,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Result<Vec<String>, String>, LabError> {
        let tool = if kind == ExternalKind::Doh {
            "curl"
        } else {
            "kdig"
        };
        if !external::available(tool) {
            let why = external::missing(tool);
            log.push(why.clone());
            return Ok(Err(why));
        }
        let nonce = probe::nonce();
        let name = format!("{nonce}.{zone}.");
        let ns = self.lab.ns(from)?;
        let ca = self.lab.ca_file();
        let r = match kind {
            ExternalKind::Dns => external::kdig(ns, server, &name, None).await,
            ExternalKind::Dot => external::kdig(ns, server, &name, Some((&ca, "dot.lab"))).await,
            ExternalKind::Doh => {
                let url = format!("http://{}/leakhound/{nonce}", name.trim_end_matches('.'));
                external::curl_doh(ns, &format!("https://{}/dns-query", server.ip()), &ca, &url)
                    .await
            }
        };
        let mut problems = Vec::new();
        match r {
            Err(e) => problems.push(format!("{tool} could not run: {e}")),
            Ok(x) => {
                log.push(format!(
                    "{}: {}",
                    x.command,
                    if x.answered { "answered" } else { "no answer" }
                ));
                if !x.output.is_empty() {
                    log.push(format!(
                        "  {}",
                        x.output.lines().take(3).collect::<Vec<_>>().join(" | ")
                    ));
                }
                match (x.answered, &check.expect) {
                    (true, Expect::Fail) => problems.push(format!(
                        "{tool} got an answer that should have been refused"
                    )),
                    (false, Expect::Answer) => problems.push(format!("{tool} got no answer")),
                    _ => {}
                }
            }
        }
        self.far_end(&nonce, &format!("{tool} query"), check, log, &mut problems);
        Ok(Ok(problems))
    }

    fn probe_outcome(
        &self,
        nonce: &str,
        what: &str,
        check: &Check,
        r: Result<(), probe::ProbeError>,
        log: &mut Vec<String>,
    ) -> Outcome {
        let mut problems = Vec::new();
        match (&r, &check.expect) {
            (Ok(()), Expect::Answer) => log.push("answered".into()),
            (Err(e), Expect::Fail) => log.push(format!("failed as expected: {e}")),
            (Ok(()), _) => problems.push(format!(
                "the {what} should have failed, but it was answered"
            )),
            (Err(e), _) => {
                problems.push(format!("expected an answer to the {what}, got none: {e}"))
            }
        }
        self.far_end(nonce, what, check, log, &mut problems);
        Self::verdict(problems, log)
    }

    async fn fault(
        &self,
        st: &mut RunState<'_>,
        f: Fault,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let no_gateway = || fail("there is no gateway running", "");
        Ok(match f {
            Fault::StopTunnel | Fault::StartTunnel => {
                if st.gateway.is_none() {
                    return Ok(no_gateway());
                }
                let running = f == Fault::StartTunnel;
                if running {
                    st.handshakes_before = self.services.wg.status.borrow().handshakes;
                }
                if self
                    .target
                    .capabilities()
                    .contains(&Capability::ControlServer)
                {
                    self.tunnel_by_control(st, running, log).await?
                } else {
                    self.tunnel_from_outside(st, running, log).await?
                }
            }
            Fault::KillGateway => {
                let Some(g) = st.gateway.take() else {
                    return Ok(no_gateway());
                };
                g.kill().await;
                log.push(
                    "gateway SIGKILLed; its kill switch is whatever it left in the kernel".into(),
                );
                Outcome::Passed
            }
            Fault::StartGateway => {
                if let Some(g) = st.gateway.take() {
                    g.stop().await;
                }
                self.start_gateway(st).await;
                if st.gateway.is_some() {
                    log.push("gateway started".into());
                    Outcome::Passed
                } else {
                    let why = st
                        .unexpected_exit
                        .as_ref()
                        .map(|e| e.summary.clone())
                        .unwrap_or_default();
                    fail(why, tail(&st.gw_log, 20))
                }
            }
            Fault::ProviderDown | Fault::ProviderUp => {
                self.services.wg.set_answering(f == Fault::ProviderUp)?;
                if f == Fault::ProviderUp {
                    st.handshakes_before = self.services.wg.status.borrow().handshakes;
                }
                log.push(format!(
                    "provider {}",
                    if f == Fault::ProviderUp {
                        "answers again"
                    } else {
                        "stopped answering"
                    }
                ));
                Outcome::Passed
            }
            Fault::ProviderRefusesPorts | Fault::ProviderGrantsPorts => {
                let refuse = f == Fault::ProviderRefusesPorts;
                self.services
                    .natpmp_refuse
                    .store(refuse, std::sync::atomic::Ordering::Relaxed);
                log.push(if refuse {
                    "the provider refuses every port-forwarding request (OUT_OF_RESOURCES)".into()
                } else {
                    "the provider grants ports again".into()
                });
                Outcome::Passed
            }
            Fault::IspBlockWireguard => {
                self.lab.nft(host::ISP, ISP_BLOCK)?;
                log.push("the ISP drops UDP 51820".into());
                Outcome::Passed
            }
            Fault::IspUnblockWireguard => {
                self.lab.nft(host::ISP, ISP_UNBLOCK)?;
                st.handshakes_before = self.services.wg.status.borrow().handshakes;
                log.push("the ISP forwards UDP 51820 again".into());
                Outcome::Passed
            }
            Fault::RotateKey => self.rotate_key(st, log).await?,
            Fault::OldKeyRefused => self.old_key_refused(st, log).await?,
            Fault::ProviderNewPorts => {
                self.services
                    .natpmp_renumber
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                log.push("the provider will give new ports from its next mapping on".into());
                Outcome::Passed
            }
            Fault::RouteAroundTunnel => {
                let nl = self.lab.nl(host::GW)?;
                let nlerr = |source| LabError::Netlink {
                    host: host::GW.into(),
                    source,
                };
                nl.replace_route(
                    IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0).expect("net"),
                    Some(addr::HOME_GW_SIDE.into()),
                    None,
                )
                .await
                .map_err(nlerr)?;
                nl.replace_route(
                    IpNet::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0).expect("net"),
                    Some(addr::HOME_GW_SIDE_V6.into()),
                    None,
                )
                .await
                .map_err(nlerr)?;
                log.push(
                    "default routes (IPv4 and IPv6) now point at the home router on eth0".into(),
                );
                Outcome::Passed
            }
        })
    }

    async fn wait_handshake(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Outcome {
        let Some(gw) = st.gateway.as_mut() else {
            return fail("there is no gateway running", "");
        };
        let mut status = self.services.wg.status.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        let waited = Instant::now();
        loop {
            if status.borrow_and_update().handshakes > st.handshakes_before {
                let since_start = gw.started().elapsed();
                log.push(format!(
                    "provider saw a completed handshake after {:?} ({:?} after the gateway started)",
                    waited.elapsed(),
                    since_start
                ));
                st.handshake_after.get_or_insert(since_start);
                if self
                    .target
                    .capabilities()
                    .contains(&Capability::HealthServer)
                {
                    return Outcome::Passed;
                }
                // A target without a health server is ready once traffic
                // flows: whoami sees the VPN exit (a gateway may complete its
                // handshake before its routes are in place).
                return self.wait_traffic(deadline, log).await;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                code = gw.exited() => {
                    gw.log_flushed().await;
                    return fail(
                        format!("the gateway exited ({code}) before a handshake: {}", tail(&st.gw_log, 1)),
                        tail(&st.gw_log, 20),
                    );
                }
                r = status.changed() => if r.is_err() { break },
            }
        }
        let s = self.services.wg.status.borrow().clone();
        let why = match &s.last_rejection {
            Some(r) => format!(
                "the provider rejected {} datagram(s), last: {r}; check WIREGUARD_PUBLIC_KEY (the provider's key), WIREGUARD_PRIVATE_KEY and WIREGUARD_PRESHARED_KEY",
                s.rejected
            ),
            None => "the provider received nothing it could use from the gateway; check VPN_ENDPOINT_IP and VPN_ENDPOINT_PORT".into(),
        };
        fail(
            format!("no WireGuard handshake within {timeout:?}: {why}"),
            format!(
                "provider status: {s:?}\ngateway log:\n{}",
                tail(&st.gw_log, 20)
            ),
        )
    }

    /// Asks whoami from the gateway host, with short attempts, until it sees
    /// the VPN exit address or `deadline` passes.
    /// Waits until whoami sees the VPN exit from the gateway's namespace:
    /// the gateway carries traffic (also `lab up`'s readiness).
    pub async fn wait_traffic(
        &self,
        deadline: tokio::time::Instant,
        log: &mut Vec<String>,
    ) -> Outcome {
        let Ok(ns) = self.lab.ns(host::GW) else {
            return fail("the lab has no gateway host", "");
        };
        let waited = Instant::now();
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match probe::whoami_sees_vpn_exit(ns, Duration::from_millis(300)).await {
                Ok(()) => {
                    log.push(format!(
                        "whoami sees the VPN exit {} {:?} later: the target is ready",
                        addr::VPN_EXIT,
                        waited.elapsed()
                    ));
                    return Outcome::Passed;
                }
                Err(e) => last = e,
            }
        }
        fail(
            format!(
                "no traffic reached whoami through the VPN exit before the deadline ({:?}); last: {last}",
                waited.elapsed()
            ),
            log.join("\n"),
        )
    }

    /// Waits for datagrams from a new source at the provider: the socket
    /// behind the last handshake is gone, the gateway made a new tunnel.
    async fn wait_tunnel_restart(&self, timeout: Duration, log: &mut Vec<String>) -> Outcome {
        let mut status = self.services.wg.status.clone();
        let Some(before) = status.borrow_and_update().peer else {
            return fail("the provider has no client endpoint yet (no handshake)", "");
        };
        log.push(format!("the tunnel's last handshake came from {before}"));
        let started = Instant::now();
        let r = tokio::time::timeout(
            timeout,
            status.wait_for(|s| s.last_datagram_from.is_some_and(|f| f != before)),
        )
        .await;
        match r {
            Ok(Ok(s)) => {
                log.push(format!(
                    "after {:?} the provider received datagrams from {}: a new tunnel socket",
                    started.elapsed(),
                    s.last_datagram_from.expect("checked")
                ));
                Outcome::Passed
            }
            _ => fail(
                format!(
                    "the gateway did not restart its tunnel within {timeout:?}: the provider saw datagrams only from {before}"
                ),
                log.join("\n"),
            ),
        }
    }

    /// Asks the health endpoint every 100 ms until it gives the expected
    /// answer or `timeout` passes.
    async fn health_step(
        &self,
        healthy: bool,
        target: SocketAddr,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(host::GW)?;
        let want = if healthy { 200 } else { 500 };
        let started = Instant::now();
        let mut last = String::from("no answer");
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        while started.elapsed() < timeout {
            poll.tick().await;
            match probe::http_get(ns, target, "/", Duration::from_secs(1)).await {
                Ok((code, body)) => {
                    last = format!("{code}: {body}");
                    if code == want {
                        log.push(format!(
                            "{} after {:?}: {body}",
                            if healthy { "healthy" } else { "unhealthy" },
                            started.elapsed()
                        ));
                        return Ok(Outcome::Passed);
                    }
                }
                Err(e) => last = format!("no answer: {e}"),
            }
        }
        Ok(fail(
            format!(
                "the health endpoint did not say {} within {timeout:?}; last: {last}",
                if healthy { "healthy" } else { "unhealthy" }
            ),
            log.join("\n"),
        ))
    }

    /// The gateway's forwarded port, from the status file the scenario
    /// gave it (bounded wait); for a port that must be closed and was
    /// withdrawn already, the last one knocked on. `Err`: the step's
    /// failed outcome.
    pub(crate) async fn forwarded_port(
        &self,
        st: &RunState<'_>,
        expect: &Expect,
        log: &mut Vec<String>,
    ) -> Result<u16, Outcome> {
        let file = match super::runner::run_file(
            self.lab.run_id(),
            &st.env,
            "VPN_PORT_FORWARDING_STATUS_FILE",
        ) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(fail(
                    "this step needs the scenario to set VPN_PORT_FORWARDING_STATUS_FILE",
                    log.join("\n"),
                ));
            }
            Err(e) => return Err(fail(e, log.join("\n"))),
        };
        let started = Instant::now();
        let mut port = None;
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        // A port that must be closed may have been withdrawn already (the
        // file removed): then knock on the last one.
        let wait = match (expect, st.forwarded_listener) {
            (Expect::Fail, Some(_)) => Duration::ZERO,
            _ => FORWARDED_PORT_WAIT,
        };
        loop {
            poll.tick().await;
            if let Some(p) = crate::lab::owned::read_run_file(&file)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
            {
                port = Some(p);
                break;
            }
            if started.elapsed() >= wait {
                break;
            }
        }
        match (port, st.forwarded_listener) {
            (Some(p), _) => {
                log.push(format!("forwarded port {p} (from {})", file.display()));
                Ok(p)
            }
            (None, Some(last)) if *expect == Expect::Fail => {
                log.push(format!(
                    "{} holds no port (withdrawn); knocking on the last one, {last}",
                    file.display()
                ));
                Ok(last)
            }
            (None, _) => Err(fail(
                format!(
                    "the gateway wrote no forwarded port to {} within {FORWARDED_PORT_WAIT:?}",
                    file.display()
                ),
                log.join("\n"),
            )),
        }
    }

    async fn forwarded_step(
        &self,
        st: &mut RunState<'_>,
        via: &str,
        expect: &Expect,
        bittorrent: bool,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let port = match self.forwarded_port(st, expect, log).await {
            Ok(p) => p,
            Err(o) => return Ok(o),
        };
        let (from, target) = match via {
            "exit" => (host::ISP, SocketAddr::new(addr::VPN_EXIT.into(), port)),
            "home" => (host::ISP, SocketAddr::new(addr::HOME_UPLINK.into(), port)),
            _ => (
                lan_prober(self.lab.topology()),
                SocketAddr::new(addr::GW_ETH0.into(), port),
            ),
        };
        if bittorrent {
            // The real qBittorrent listens there (its port set by the UP
            // command); no stand-in.
            st.forwarded_listener = Some(port);
            let answered = match self.bittorrent_knock(st, from, target, log).await? {
                Ok(a) => a,
                Err(o) => return Ok(o),
            };
            return Ok(match (answered, expect) {
                (true, Expect::Answer) | (false, Expect::Fail) => Outcome::Passed,
                (true, _) => fail(
                    format!(
                        "qBittorrent handshook on the forwarded port {port} at {target}, where it must not be reachable"
                    ),
                    log.join("\n"),
                ),
                (false, _) => fail(
                    format!(
                        "qBittorrent did not handshake on the forwarded port {port} at {target}"
                    ),
                    log.join("\n"),
                ),
            });
        }
        if st.forwarded_listener != Some(port) {
            // The dependent listens on the forwarded port itself, or on
            // VPN_PORT_FORWARDING_LISTENING_PORT when the gateway redirects.
            let listen = st
                .env
                .get("VPN_PORT_FORWARDING_LISTENING_PORT")
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or(port);
            if listen != port {
                log.push(format!("the dependent listens on {listen}"));
            }
            st.forwarded_task = None;
            let ns = self.lab.ns(host::GW)?;
            let l = ns
                .run(move || -> std::io::Result<_> {
                    let l = std::net::TcpListener::bind(("0.0.0.0", listen))?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })?
                .map_err(|e| lab_err("forwarded-port listener", e))?;
            let l = tokio::net::TcpListener::from_std(l)
                .map_err(|e| lab_err("forwarded-port listener", e))?;
            let svc_log = self.services.log.clone();
            st.forwarded_task = Some(AbortOnDrop(tokio::spawn(async move {
                while let Ok((mut s, peer)) = l.accept().await {
                    use tokio::io::AsyncWriteExt;
                    svc_log.record(
                        crate::lab::dependents::SERVICE,
                        peer,
                        format!("forwarded port {port}"),
                    );
                    let _ = s.write_all(b"torrent\n").await;
                }
            })));
            st.forwarded_listener = Some(port);
        }
        log.push(format!("TCP to {target} from {from}"));
        let ns = self.lab.ns(from)?;
        let sock = ns
            .run(tokio::net::TcpSocket::new_v4)?
            .map_err(|e| lab_err("forwarded-port", e))?;
        let r = tokio::time::timeout(PROBE_TIMEOUT, async {
            use tokio::io::AsyncReadExt;
            let mut c = sock.connect(target).await?;
            let mut text = String::new();
            c.read_to_string(&mut text).await?;
            Ok::<_, std::io::Error>(text)
        })
        .await;
        let answered = matches!(&r, Ok(Ok(t)) if t.trim() == "torrent");
        log.push(match &r {
            Ok(Ok(t)) => format!("answer: {}", t.trim()),
            Ok(Err(e)) => format!("no answer: {e}"),
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        });
        Ok(match (answered, expect) {
            (true, Expect::Answer) | (false, Expect::Fail) => Outcome::Passed,
            (true, _) => fail(
                format!("the forwarded port {port} answered at {target}, where it must not"),
                log.join("\n"),
            ),
            (false, _) => fail(
                format!("the forwarded port {port} did not answer at {target}"),
                log.join("\n"),
            ),
        })
    }

    /// Reads the UP/DOWN commands' lines until the last one is what the
    /// step expects (see [`Action::PortCommand`]).
    async fn port_command_step(
        &self,
        st: &mut RunState<'_>,
        expect: PortCommandExpect,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Outcome {
        let env = &st.env;
        let iface = env
            .get("VPN_INTERFACE")
            .cloned()
            .unwrap_or_else(|| "wg0".into());
        let file = self.port_commands_file();
        let status_port = || {
            super::runner::run_file(self.lab.run_id(), env, "VPN_PORT_FORWARDING_STATUS_FILE")
                .ok()
                .flatten()
                .and_then(|f| crate::lab::owned::read_run_file(&f).ok())
                .and_then(|t| t.trim().parse::<u16>().ok())
        };
        let started = Instant::now();
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        loop {
            poll.tick().await;
            let seen = crate::lab::owned::read_run_file(&file).unwrap_or_default();
            let last = seen.lines().last().unwrap_or("");
            let want = match expect {
                PortCommandExpect::None => None,
                PortCommandExpect::Up => status_port().map(|p| format!("up {p} {p} {iface}")),
                PortCommandExpect::Down => st
                    .forwarded_listener
                    .map(|p| format!("down {p} {p} {iface}")),
            };
            let done = match (&want, expect) {
                (None, PortCommandExpect::None) => seen.trim().is_empty(),
                (Some(w), _) => last.trim() == w,
                (None, _) => false,
            };
            // "none" holds only if it still holds at the end of the wait.
            if expect == PortCommandExpect::None {
                if !done {
                    return fail(
                        "a port-forwarding command ran, where none must",
                        format!("{}:\n{seen}", file.display()),
                    );
                }
                if started.elapsed() >= timeout {
                    log.push(format!("no port-forwarding command ran within {timeout:?}"));
                    return Outcome::Passed;
                }
                continue;
            }
            if done {
                log.push(format!(
                    "after {:?} the command wrote: {}",
                    started.elapsed(),
                    last.trim()
                ));
                return Outcome::Passed;
            }
            if started.elapsed() >= timeout {
                return fail(
                    format!(
                        "the {} command did not run as expected within {timeout:?} (wanted {:?})",
                        if expect == PortCommandExpect::Up {
                            "UP"
                        } else {
                            "DOWN"
                        },
                        want.unwrap_or_else(|| "a forwarded port first".into())
                    ),
                    format!("{}:\n{seen}", file.display()),
                );
            }
        }
    }

    async fn wait_firewall(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
        log: &mut Vec<String>,
    ) -> Outcome {
        let Some(gw) = st.gateway.as_mut() else {
            return fail("there is no gateway running", "");
        };
        let Some(mut closed) = gw.firewall_closed() else {
            // A gateway that does not say when its kill switch is in place:
            // the probes after this step start with its process, so one
            // that closes late is caught.
            log.push(format!(
                "target {} does not report its kill switch: probing from the moment it started ({:?} ago)",
                self.target.name(),
                gw.started().elapsed()
            ));
            return Outcome::Passed;
        };
        let r = tokio::select! {
            r = tokio::time::timeout(timeout, closed.wait_for(|c| c.is_some())) => r.ok().and_then(|r| r.ok().map(|v| *v)),
            _ = gw.exited() => None,
        };
        match r.flatten() {
            Some(at) => {
                let after = at.duration_since(gw.started());
                st.firewall_after = Some(after);
                log.push(format!(
                    "the gateway reported its kill switch closed {after:?} after it started"
                ));
                log.push(tail(&st.gw_log, 1));
                Outcome::Passed
            }
            None => fail(
                format!("the gateway did not report its kill switch closed within {timeout:?}"),
                tail(&st.gw_log, 20),
            ),
        }
    }

    async fn raw_frame_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let nonce = probe::nonce();
        let name = probe::probe_name(&nonce);
        // The frame goes to the home router's side of gw's wire, as a packet
        // routed by the stack would.
        let home_mac = self
            .lab
            .nl(host::HOME)?
            .mac_of("gw")
            .await
            .map_err(|source| LabError::Netlink {
                host: host::HOME.into(),
                source,
            })?;
        log.push(format!(
            "raw frame on {from}'s eth0: DNS query for {name} to {target}"
        ));
        let r = probe::raw_frame_dns(
            self.lab.ns(from)?,
            "eth0",
            home_mac,
            addr::GW_ETH0,
            target,
            &name,
        );
        match &r {
            Ok(()) => log.push("the kernel accepted the frame".into()),
            Err(e) => log.push(format!("the kernel refused the frame: {e}")),
        }
        // Whether it got out is decided at the far end (and on the wire):
        // give the resolver the same time a probe gets to see it.
        let mut problems = Vec::new();
        let deadline = Instant::now() + PROBE_TIMEOUT;
        if check.expect == Expect::Fail && r.is_ok() {
            let mut log_rx = self.services.log.subscribe();
            while Instant::now() < deadline
                && self
                    .services
                    .log
                    .find(crate::lab::services::ISP_DNS, &nonce)
                    .is_empty()
            {
                if tokio::time::timeout(deadline - Instant::now(), log_rx.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        self.far_end(&nonce, "raw frame", check, log, &mut problems);
        Ok(Self::verdict(problems, log))
    }

    async fn synack_step(
        &self,
        from: &str,
        target: SocketAddr,
        expect: &Expect,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        // The attacker routes the tunnel's address to the gateway's underlay.
        let nl = self.lab.nl(from)?;
        let via: IpAddr = addr::GW_ETH0.into();
        let dst = IpNet::from(target.ip());
        let nlerr = |source| LabError::Netlink {
            host: from.to_string(),
            source,
        };
        nl.replace_route(dst, Some(via), None)
            .await
            .map_err(nlerr)?;
        let src = match self
            .lab
            .topology()
            .host(from)
            .and_then(|_| self.source_towards_gw(from))
        {
            Some(s) => s,
            None => {
                return Err(lab_err(
                    "inject-synack",
                    format!("{from} has no address on gw's link"),
                ));
            }
        };
        log.push(format!("SYN-ACK from {src} to {target} via {via}"));
        let r = probe::inject_synack(self.lab.ns(from)?, src, target, PROBE_TIMEOUT).await;
        let del = crate::netlink::RouteInfo {
            dst,
            gateway: Some(via),
            oif: None,
        };
        let _ = nl.del_route(&del).await;
        let answer = r.map_err(|e| lab_err("inject-synack", e))?;
        Ok(match (answer, expect) {
            (None, Expect::Fail) => {
                log.push("nothing answered".into());
                Outcome::Passed
            }
            (Some(a), Expect::Fail) => fail(
                format!(
                    "the gateway answered a forged SYN-ACK to its tunnel address from the LAN side ({a}): CVE-2019-14899"
                ),
                log.join("\n"),
            ),
            (Some(a), _) => {
                log.push(format!("answered: {a}"));
                Outcome::Passed
            }
            (None, _) => fail("nothing answered the SYN-ACK", log.join("\n")),
        })
    }

    /// The IPv4 address `host` has on the gateway's link (only the home
    /// router has one).
    fn source_towards_gw(&self, host_name: &str) -> Option<Ipv4Addr> {
        let topo = self.lab.topology();
        let gw_net = topo
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .find(|e| e.host == host::GW)?
            .addrs
            .iter()
            .find(|a| a.addr().is_ipv4())
            .copied()?;
        topo.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.host == host_name)
            .flat_map(|e| e.addrs.iter())
            .find_map(|a| match a.addr() {
                IpAddr::V4(v4) if gw_net.contains(&a.addr()) => Some(v4),
                _ => None,
            })
    }
}

/// The LAN host that knocks on the gateway's eth0 for steps that need "a
/// LAN host": the seed's admin LAN, or the first LAN of a lab made from a
/// user's configuration.
fn lan_prober(topo: &crate::model::topology::Topology) -> &'static str {
    if topo.host(host::LAN_ADMIN).is_some() {
        return host::LAN_ADMIN;
    }
    topo.lan_hosts()
        .first()
        .map(|h| h.name)
        .unwrap_or(host::HOME)
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
