//! The gateway's forwarded port: read from its status file, knocked on
//! from outside (a stand-in listening in the gateway's namespace, or the
//! real qBittorrent with a BitTorrent handshake), and the UP/DOWN commands
//! the gateway runs for it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::report::{StepError, StepLog, StepReport, StepResult, lab_err};
use crate::lab::LabError;
use crate::model::scenario::{Expect, PortCommandExpect, Via};
use crate::model::topology::{addr, host};
use crate::model::torrent;
use crate::scenario::runner::{AbortOnDrop, PROBE_TIMEOUT, RunState, Runner, run_file};

/// How long a forwarded-port step waits for the gateway to write a port
/// (a refused request is retried with backoff: 2 s, 4 s, 8 s).
const FORWARDED_PORT_WAIT: Duration = Duration::from_secs(15);

impl Runner<'_> {
    /// The gateway's forwarded port, from the status file the scenario
    /// gave it (bounded wait); for a port that must be closed and was
    /// withdrawn already, the last one knocked on. `log` goes on with a
    /// line saying which; `Err`: the step's failed report.
    pub(crate) async fn forwarded_port(
        &self,
        st: &RunState<'_>,
        expect: &Expect,
        mut log: StepLog,
    ) -> Result<(u16, StepLog), StepReport> {
        let file = match run_file(
            self.lab.run_id(),
            &st.env,
            "VPN_PORT_FORWARDING_STATUS_FILE",
        ) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(
                    log.fail("this step needs the scenario to set VPN_PORT_FORWARDING_STATUS_FILE")
                );
            }
            Err(e) => return Err(log.fail(e.to_string())),
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
                log.note(format!("forwarded port {p} (from {})", file.display()));
                Ok((p, log))
            }
            (None, Some(last)) if *expect == Expect::Fail => {
                log.note(format!(
                    "{} holds no port (withdrawn); knocking on the last one, {last}",
                    file.display()
                ));
                Ok((last, log))
            }
            (None, _) => Err(log.fail(format!(
                "the gateway wrote no forwarded port to {} within {FORWARDED_PORT_WAIT:?}",
                file.display()
            ))),
        }
    }

    /// Knocks on the gateway's forwarded port from `via` (the internet at
    /// the VPN exit, the home address, or a LAN host): a stand-in dependent answers it in the gateway's
    /// namespace, or, with `bittorrent`, the real qBittorrent handshakes.
    pub(crate) async fn forwarded_step(
        &self,
        st: &mut RunState<'_>,
        via: Via,
        expect: &Expect,
        bittorrent: bool,
    ) -> StepResult {
        let (port, mut log) = match self.forwarded_port(st, expect, StepLog::new()).await {
            Ok(found) => found,
            Err(report) => return Ok(report),
        };
        let (from, target) = match via {
            Via::Exit => (host::ISP, SocketAddr::new(addr::VPN_EXIT.into(), port)),
            Via::Home => (host::ISP, SocketAddr::new(addr::HOME_UPLINK.into(), port)),
            Via::Lan => (
                lan_prober(self.lab.topology()),
                SocketAddr::new(addr::GW_ETH0.into(), port),
            ),
        };
        if bittorrent {
            // The real qBittorrent listens there (its port set by the UP
            // command); no stand-in.
            st.forwarded_listener = Some(port);
            let (answered, log) = match self.bittorrent_knock(st, from, target, log).await {
                Ok(knocked) => knocked,
                Err(done) => return done,
            };
            return Ok(match (answered, expect) {
                (true, Expect::Answer) | (false, Expect::Fail) => log.pass(),
                (true, _) => log.fail(format!(
                    "qBittorrent handshook on the forwarded port {port} at {target}, where it must not be reachable"
                )),
                (false, _) => log.fail(format!(
                    "qBittorrent did not handshake on the forwarded port {port} at {target}"
                )),
            });
        }
        if st.forwarded_listener != Some(port) {
            log = self.stand_in(st, port, log)?;
        }
        log.note(format!("TCP to {target} from {from}"));
        let ns = log.harness(self.lab.ns(from))?;
        let sock = log.harness(
            log.harness(ns.run(tokio::net::TcpSocket::new_v4))?
                .map_err(|e| lab_err("forwarded-port", e)),
        )?;
        let r = tokio::time::timeout(PROBE_TIMEOUT, async {
            use tokio::io::AsyncReadExt;
            let mut c = sock.connect(target).await?;
            let mut text = String::new();
            c.read_to_string(&mut text).await?;
            Ok::<_, std::io::Error>(text)
        })
        .await;
        let answered = matches!(&r, Ok(Ok(t)) if t.trim() == "torrent");
        log.note(match &r {
            Ok(Ok(t)) => format!("answer: {}", t.trim()),
            Ok(Err(e)) => format!("no answer: {e}"),
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        });
        Ok(match (answered, expect) {
            (true, Expect::Answer) | (false, Expect::Fail) => log.pass(),
            (true, _) => log.fail(format!(
                "the forwarded port {port} answered at {target}, where it must not"
            )),
            (false, _) => log.fail(format!(
                "the forwarded port {port} did not answer at {target}"
            )),
        })
    }

    /// The stand-in dependent on the forwarded `port` in the gateway's
    /// namespace (until the scenario ends or the port changes): it logs
    /// every connection and answers "torrent". `log` goes on.
    fn stand_in(
        &self,
        st: &mut RunState<'_>,
        port: u16,
        mut log: StepLog,
    ) -> Result<StepLog, StepError> {
        // The dependent listens on the forwarded port itself, or on
        // VPN_PORT_FORWARDING_LISTENING_PORT when the gateway redirects.
        let listen = st
            .env
            .get("VPN_PORT_FORWARDING_LISTENING_PORT")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(port);
        if listen != port {
            log.note(format!("the dependent listens on {listen}"));
        }
        st.forwarded_task = None;
        let ns = log.harness(self.lab.ns(host::GW))?;
        let l = log.harness(
            log.harness(ns.run(move || -> std::io::Result<_> {
                let l = std::net::TcpListener::bind(("0.0.0.0", listen))?;
                l.set_nonblocking(true)?;
                Ok(l)
            }))?
            .map_err(|e| lab_err("forwarded-port listener", e)),
        )?;
        let l = log.harness(
            tokio::net::TcpListener::from_std(l).map_err(|e| lab_err("forwarded-port listener", e)),
        )?;
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
        Ok(log)
    }

    /// Reads the UP/DOWN commands' lines until the last one is what the
    /// step expects (see [`crate::model::scenario::Action::PortCommand`]).
    pub(crate) async fn port_command_step(
        &self,
        st: &mut RunState<'_>,
        expect: PortCommandExpect,
        timeout: Duration,
    ) -> StepReport {
        let mut log = StepLog::new();
        let env = &st.env;
        let iface = env
            .get("VPN_INTERFACE")
            .cloned()
            .unwrap_or_else(|| "wg0".into());
        let file = self.port_commands_file();
        let status_port = || {
            run_file(self.lab.run_id(), env, "VPN_PORT_FORWARDING_STATUS_FILE")
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
                    return log.fail_with(
                        "a port-forwarding command ran, where none must",
                        format!("{}:\n{seen}", file.display()),
                    );
                }
                if started.elapsed() >= timeout {
                    log.note(format!("no port-forwarding command ran within {timeout:?}"));
                    return log.pass();
                }
                continue;
            }
            if done {
                log.note(format!(
                    "after {:?} the command wrote: {}",
                    started.elapsed(),
                    last.trim()
                ));
                return log.pass();
            }
            if started.elapsed() >= timeout {
                return log.fail_with(
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

    /// A BitTorrent handshake for the scenario's torrent from `from` to
    /// `target`: true when a peer handshook back for the same torrent;
    /// `log` goes on. `Err`: the step ends there (no torrent yet, or the
    /// harness could not knock).
    pub(crate) async fn bittorrent_knock(
        &self,
        st: &RunState<'_>,
        from: &str,
        target: SocketAddr,
        mut log: StepLog,
    ) -> Result<(bool, StepLog), StepResult> {
        let s = match st.torrent() {
            Ok(s) => s,
            Err(o) => return Err(Ok(log.end(o))),
        };
        let hash = s.swarm.torrent.info_hash;
        let mut peer_id = *b"-LH0001-............";
        peer_id[8..].copy_from_slice(&rand::random::<[u8; 12]>());
        let ns = log.harness(self.lab.ns(from)).map_err(Err)?;
        let sock = log
            .harness(
                crate::probe::tcp_socket_for(ns, target).map_err(|e| LabError::Service {
                    service: "bittorrent knock".into(),
                    source: std::io::Error::other(e),
                }),
            )
            .map_err(Err)?;
        log.note(format!("BitTorrent handshake to {target} from {from}"));
        let r = tokio::time::timeout(PROBE_TIMEOUT, async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut c = sock.connect(target).await?;
            c.write_all(&torrent::handshake(&hash, &peer_id)).await?;
            let mut buf = [0u8; 48];
            c.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        })
        .await;
        let answered = match r {
            Ok(Ok(buf)) => match torrent::parse_handshake(&buf) {
                Ok(h) if h == hash => {
                    log.note("a peer handshook back for the torrent");
                    true
                }
                Ok(h) => {
                    log.note(format!(
                        "a handshake for another torrent ({})",
                        torrent::hex(&h)
                    ));
                    false
                }
                Err(e) => {
                    log.note(format!("an answer that is no handshake: {e}"));
                    false
                }
            },
            Ok(Err(e)) => {
                log.note(format!("no handshake: {e}"));
                false
            }
            Err(_) => {
                log.note(format!("no handshake within {:?}", PROBE_TIMEOUT));
                false
            }
        };
        Ok((answered, log))
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
