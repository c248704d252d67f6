//! The gateway's forwarded port: read from its status file, knocked on
//! from outside (a stand-in listening in the gateway's namespace, or the
//! real qBittorrent with a BitTorrent handshake), and the UP/DOWN commands
//! the gateway runs for it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::report::lab_err;
use crate::lab::LabError;
use crate::model::scenario::{Expect, PortCommandExpect};
use crate::model::topology::{addr, host};
use crate::model::torrent;
use crate::model::verdict::Outcome;
use crate::scenario::runner::{AbortOnDrop, PROBE_TIMEOUT, RunState, Runner, fail, run_file};

/// How long a forwarded-port step waits for the gateway to write a port
/// (a refused request is retried with backoff: 2 s, 4 s, 8 s).
const FORWARDED_PORT_WAIT: Duration = Duration::from_secs(15);

impl Runner<'_> {
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
        let file = match run_file(
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

    pub(crate) async fn forwarded_step(
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
    pub(crate) async fn port_command_step(
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

    /// A BitTorrent handshake for the scenario's torrent from `from` to
    /// `target`: `Ok(true)` when a peer handshook back for the same torrent.
    pub(crate) async fn bittorrent_knock(
        &self,
        st: &RunState<'_>,
        from: &str,
        target: SocketAddr,
        log: &mut Vec<String>,
    ) -> Result<Result<bool, Outcome>, LabError> {
        let s = match st.torrent() {
            Ok(s) => s,
            Err(o) => return Ok(Err(o)),
        };
        let hash = s.swarm.torrent.info_hash;
        let mut peer_id = *b"-LH0001-............";
        peer_id[8..].copy_from_slice(&rand::random::<[u8; 12]>());
        let ns = self.lab.ns(from)?;
        let sock = crate::probe::tcp_socket_for(ns, target).map_err(|e| LabError::Service {
            service: "bittorrent knock".into(),
            source: std::io::Error::other(e),
        })?;
        log.push(format!("BitTorrent handshake to {target} from {from}"));
        let r = tokio::time::timeout(PROBE_TIMEOUT, async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut c = sock.connect(target).await?;
            c.write_all(&torrent::handshake(&hash, &peer_id)).await?;
            let mut buf = [0u8; 48];
            c.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        })
        .await;
        Ok(Ok(match r {
            Ok(Ok(buf)) => match torrent::parse_handshake(&buf) {
                Ok(h) if h == hash => {
                    log.push("a peer handshook back for the torrent".into());
                    true
                }
                Ok(h) => {
                    log.push(format!(
                        "a handshake for another torrent ({})",
                        torrent::hex(&h)
                    ));
                    false
                }
                Err(e) => {
                    log.push(format!("an answer that is no handshake: {e}"));
                    false
                }
            },
            Ok(Err(e)) => {
                log.push(format!("no handshake: {e}"));
                false
            }
            Err(_) => {
                log.push(format!("no handshake within {:?}", PROBE_TIMEOUT));
                false
            }
        }))
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
