//! The steps that drive the real qBittorrent in the lab's swarm: give it
//! the scenario's torrent, wait for its progress, make it announce, read
//! the far end's view of it (the tracker's and the seeder's wires), and
//! follow its listening port against the gateway's forwarded port. Each
//! waits on a condition (qBittorrent's own answers, the far end's log),
//! bounded by the step's timeout.

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use super::report::{StepLog, StepReport, StepResult};
use crate::lab::LabError;
use crate::lab::service_log::LogEntry;
use crate::lab::swarm::{self, Swarm};
use crate::lab::webui::{self, Qbittorrent};
use crate::model::scenario::Expect;
use crate::model::topology::{addr, host, service};
use crate::model::torrent;
use crate::model::verdict::Outcome;
use crate::poll::poll_until;
use crate::scenario::runner::{PROBE_TIMEOUT, RunState, Runner, ScenarioSwarm};

const POLL: Duration = Duration::from_millis(200);

/// What `torrent-announce` heard first.
enum Heard {
    /// A new announce reached the tracker.
    Announce(LogEntry),
    /// qBittorrent says it announces (or failed to): what it said.
    Announcing(String),
}

/// What is wrong with the far end's view of the swarm (pure): no announce
/// or no connection at all, one from another address than `seen_as`, or an
/// announce that carries an address of the home network (volunteered as
/// `ip=`/`ipv4=`/`ipv6=`, or anywhere in its request line).
pub fn swarm_problems(
    announces: &[LogEntry],
    peers: &[LogEntry],
    seen_as: IpAddr,
    home: &[IpAddr],
) -> Vec<String> {
    let mut problems = Vec::new();
    if announces.is_empty() {
        problems.push("the tracker got no announce for the torrent".to_string());
    }
    if peers.is_empty() {
        problems.push("the seeder got no connection".to_string());
    }
    for e in announces {
        if e.source.ip() != seen_as {
            problems.push(format!("the tracker saw an announce from {}", e.source));
        }
        let a = torrent::parse_announce(&e.detail).unwrap_or_default();
        for ip in home {
            let text = ip.to_string();
            if a.addresses.iter().any(|v| v == &text) || e.detail.contains(&text) {
                problems.push(format!("an announce carries the home network's {ip}"));
            }
        }
    }
    for e in peers {
        if e.source.ip() != seen_as {
            problems.push(format!("the seeder saw a connection from {}", e.source));
        }
    }
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    problems
}

impl Runner<'_> {
    /// The scenario's swarm and qBittorrent, or the failed step.
    fn torrent_ctx<'s>(
        &'s self,
        st: &'s RunState<'_>,
    ) -> Result<Result<(&'s ScenarioSwarm, Qbittorrent<'s>), Outcome>, LabError> {
        let s = match st.torrent() {
            Ok(s) => s,
            Err(o) => return Ok(Err(o)),
        };
        Ok(self.qbittorrent()?.map(|q| (s, q)))
    }

    /// At a scenario's end: its torrent leaves qBittorrent, its swarm
    /// stops, and qBittorrent's port goes back to the lab's (an UP command
    /// may have moved it to a forwarded port a later scenario's stand-in
    /// needs).
    pub(crate) async fn end_swarm(&self, st: &mut RunState<'_>) {
        let Ok(Ok(q)) = self.qbittorrent() else {
            st.swarm = None;
            return;
        };
        if let Some(s) = st.swarm.take() {
            if let Err(e) = q.delete(&s.hash).await {
                tracing::warn!("removing the scenario's torrent from qBittorrent: {e}");
            }
            drop(s);
        }
        let home = crate::lab::apps::QBITTORRENT_LISTEN_PORT;
        match q.listen_port().await {
            Ok(p) if p == home => {}
            Ok(_) => {
                if let Err(e) = q.set_listen_port(home).await {
                    tracing::warn!("putting qBittorrent's port back to {home}: {e}");
                }
            }
            Err(e) => tracing::warn!("reading qBittorrent's port: {e}"),
        }
    }

    /// `torrent-add`: the scenario's swarm starts (once), and qBittorrent
    /// gets its torrent and runs it.
    pub(crate) async fn torrent_add(&self, st: &mut RunState<'_>) -> StepResult {
        let mut log = StepLog::new();
        let q = match log.harness(self.qbittorrent())? {
            Ok(q) => q,
            Err(o) => return Ok(log.end(o)),
        };
        if st.swarm.is_none() {
            let s = log.harness(
                Swarm::start(self.lab, self.services.log.clone(), &crate::probe::nonce()).await,
            )?;
            let hash = s.torrent.hex_hash();
            log.note(format!(
                "swarm up: torrent {} ({} bytes, info hash {hash}), tracker {}, seeder {}:{}",
                s.torrent.name,
                s.torrent.length,
                swarm::announce_url(),
                addr::SEEDER,
                addr::SEEDER_PORT
            ));
            st.swarm = Some(ScenarioSwarm {
                swarm: s,
                hash,
                started: std::time::SystemTime::now(),
            });
        }
        let s = st.swarm.as_ref().expect("just set");
        if let Err(e) = q.add(&s.swarm.torrent.name, &s.swarm.torrent.bytes).await {
            return Ok(log.fail(format!("qBittorrent did not take the torrent: {e}")));
        }
        // Taken when it runs it: listed, past checking its files, neither
        // queued nor paused (until then it refuses the torrent's peers).
        let (q, hash) = (&q, &s.hash);
        let running = poll_until(Duration::from_secs(10), POLL, || async move {
            match q.info(hash).await {
                Ok(Some(t)) if webui::is_running(&t.state) => ControlFlow::Break(t),
                Ok(Some(t)) => ControlFlow::Continue(format!("it is {}", t.state)),
                Ok(None) => ControlFlow::Continue("it does not list it".into()),
                Err(e) => ControlFlow::Continue(e.to_string()),
            }
        })
        .await;
        match running {
            Ok(t) => {
                log.note(format!(
                    "qBittorrent runs it: {} ({:.0}%)",
                    t.state,
                    t.progress * 100.0
                ));
                Ok(log.pass())
            }
            Err(last) => Ok(log.fail(format!(
                "qBittorrent took the torrent but does not run it within 10s: {last}"
            ))),
        }
    }

    /// `torrent-wait`: qBittorrent's progress reaches `progress`.
    pub(crate) async fn torrent_wait(
        &self,
        st: &RunState<'_>,
        progress: f64,
        timeout: Duration,
    ) -> StepResult {
        let mut log = StepLog::new();
        let (s, q) = match log.harness(self.torrent_ctx(st))? {
            Ok(v) => v,
            Err(o) => return Ok(log.end(o)),
        };
        let (q, hash) = (&q, &s.hash);
        let reached = poll_until(timeout, POLL, || async move {
            match q.info(hash).await {
                Ok(Some(t)) => {
                    let now = format!(
                        "{:.1}% ({}, {} seeds, {} B/s)",
                        t.progress * 100.0,
                        t.state,
                        t.num_seeds,
                        t.dlspeed
                    );
                    if t.progress >= progress {
                        ControlFlow::Break(now)
                    } else {
                        ControlFlow::Continue(now)
                    }
                }
                Ok(None) => ControlFlow::Continue("qBittorrent does not list the torrent".into()),
                Err(e) => ControlFlow::Continue(e.to_string()),
            }
        })
        .await;
        match reached {
            Ok(now) => {
                log.note(format!("qBittorrent: {now}"));
                Ok(log.pass())
            }
            Err(last) => Ok(log.fail(format!(
                "qBittorrent did not reach {:.0}% within {timeout:?}: {last}",
                progress * 100.0
            ))),
        }
    }

    /// The announces for this scenario's torrent that reached the tracker.
    fn announces(&self, s: &ScenarioSwarm) -> Vec<LogEntry> {
        self.services
            .log
            .find(service::TRACKER, "")
            .into_iter()
            .filter(|e| {
                torrent::parse_announce(&e.detail)
                    .is_some_and(|a| a.info_hash == s.swarm.torrent.info_hash)
            })
            .collect()
    }

    /// `torrent-announce`: qBittorrent announces again; the announce must
    /// reach the tracker, or (`fail`) must not within the probes' timeout
    /// once qBittorrent says it is announcing.
    pub(crate) async fn torrent_announce(
        &self,
        st: &RunState<'_>,
        expect: &Expect,
        timeout: Duration,
    ) -> StepResult {
        let mut log = StepLog::new();
        let (s, q) = match log.harness(self.torrent_ctx(st))? {
            Ok(v) => v,
            Err(o) => return Ok(log.end(o)),
        };
        let before = self.announces(s).len();
        if let Err(e) = q.reannounce(&s.hash).await {
            return Ok(log.fail(format!("qBittorrent's WebUI: {e}")));
        }
        log.note(format!(
            "asked qBittorrent to announce again ({before} announces reached the tracker so far)"
        ));
        let (q, url) = (&q, &swarm::announce_url());
        let heard = poll_until(timeout, POLL, || async move {
            let now = self.announces(s);
            if now.len() > before {
                return ControlFlow::Break(Heard::Announce(now[before].clone()));
            }
            if *expect != Expect::Fail {
                return ControlFlow::Continue(String::new());
            }
            // qBittorrent says it is announcing (or has failed): what it
            // sent has the probes' full timeout to arrive, as a silent
            // probe waits (a SYN is retried within it).
            match q.tracker(&s.hash, url).await {
                Ok(Some(t))
                    if t.status == webui::TRACKER_UPDATING
                        || t.status == webui::TRACKER_NOT_WORKING =>
                {
                    ControlFlow::Break(Heard::Announcing(format!(
                        "qBittorrent reports the tracker {} {}",
                        if t.status == webui::TRACKER_UPDATING {
                            "being announced to"
                        } else {
                            "not working:"
                        },
                        t.msg
                    )))
                }
                Ok(Some(t)) => {
                    ControlFlow::Continue(format!("tracker status {} {}", t.status, t.msg))
                }
                Ok(None) => ControlFlow::Continue("qBittorrent does not list the tracker".into()),
                Err(e) => ControlFlow::Continue(e.to_string()),
            }
        })
        .await;
        match heard {
            Ok(Heard::Announce(e)) => {
                log.note(format!("the tracker got: {} from {}", e.detail, e.source));
                Ok(match expect {
                    Expect::Fail => log.fail(format!(
                        "an announce reached the tracker from {} while it must not",
                        e.source
                    )),
                    _ => log.pass(),
                })
            }
            Ok(Heard::Announcing(said)) => {
                log.note(said);
                Ok(self.announce_held(s, before, log).await)
            }
            Err(last) => Ok(match expect {
                Expect::Fail => log.fail(format!(
                    "qBittorrent did not say it announces within {timeout:?} ({last})"
                )),
                _ => log.fail(format!(
                    "no new announce reached the tracker within {timeout:?}"
                )),
            }),
        }
    }

    /// An announce qBittorrent is sending must not reach the tracker: it
    /// has the probes' full timeout to arrive. `log` goes on.
    async fn announce_held(
        &self,
        s: &ScenarioSwarm,
        before: usize,
        mut log: StepLog,
    ) -> StepReport {
        self.services
            .log
            .wait_for_count(
                service::TRACKER,
                self.services.log.find(service::TRACKER, "").len() + 1,
                PROBE_TIMEOUT,
            )
            .await;
        let after = self.announces(s);
        if after.len() > before {
            log.fail(format!(
                "an announce reached the tracker from {} while it must not",
                after[before].source
            ))
        } else {
            log.note(format!(
                "nothing reached the tracker within {:?}",
                PROBE_TIMEOUT
            ));
            log.pass()
        }
    }

    /// Every address of the home network (the home router, the gateway's
    /// own, the LANs'): none may appear in an announce.
    fn home_addresses(&self) -> Vec<IpAddr> {
        self.lab
            .topology()
            .all_addresses()
            .into_iter()
            .filter(|(h, _)| *h != host::ISP && *h != host::VPN)
            .map(|(_, a)| a.addr())
            .collect()
    }

    /// `swarm-seen`: the tracker and the seeder saw the torrent's traffic
    /// from `seen_as` only, and no home address in an announce.
    pub(crate) fn swarm_seen(&self, st: &RunState<'_>, seen_as: IpAddr) -> StepReport {
        let mut log = StepLog::new();
        let s = match st.torrent() {
            Ok(s) => s,
            Err(o) => return log.end(o),
        };
        let announces = self.announces(s);
        let peers: Vec<LogEntry> = self
            .services
            .log
            .find(service::SWARM_PEER, "")
            .into_iter()
            .filter(|e| e.at >= s.started)
            .collect();
        for e in &announces {
            log.note(format!("tracker: {} from {}", e.detail, e.source));
        }
        for e in &peers {
            log.note(format!("seeder: {} from {}", e.detail, e.source));
        }
        let problems = swarm_problems(&announces, &peers, seen_as, &self.home_addresses());
        if problems.is_empty() {
            log.pass()
        } else {
            log.fail(problems.join("; "))
        }
    }

    /// `torrent-port`: qBittorrent listens on the gateway's forwarded port
    /// (its UP command set it) within `timeout`.
    pub(crate) async fn torrent_port(
        &self,
        st: &mut RunState<'_>,
        timeout: Duration,
    ) -> StepResult {
        let log = StepLog::new();
        let q = match log.harness(self.qbittorrent())? {
            Ok(q) => q,
            Err(o) => return Ok(log.end(o)),
        };
        let (port, mut log) = match self.forwarded_port(st, &Expect::Answer, log).await {
            Ok(found) => found,
            Err(report) => return Ok(report),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match q.listen_port().await {
                Ok(0) => return Ok(log.fail("qBittorrent listens on port 0")),
                Ok(p) if p == port => {
                    log.note(format!("qBittorrent listens on {p}, the forwarded port"));
                    return Ok(log.pass());
                }
                Ok(p) => {
                    if seen.last() != Some(&p) {
                        seen.push(p);
                    }
                }
                Err(e) => log.note(e.to_string()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(log.fail(format!(
                    "qBittorrent did not follow the forwarded port {port} within {timeout:?} (it listens on {seen:?})"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: &'static str, from: &str, detail: &str) -> LogEntry {
        LogEntry {
            at: std::time::SystemTime::UNIX_EPOCH,
            service,
            source: from.parse().unwrap(),
            detail: detail.into(),
        }
    }

    #[test]
    fn the_far_end_must_see_the_exit_only_and_no_home_address() {
        let exit: IpAddr = "203.0.113.77".parse().unwrap();
        let home: Vec<IpAddr> = vec![
            "198.51.100.2".parse().unwrap(),
            "192.168.10.10".parse().unwrap(),
        ];
        let ok = entry(
            service::TRACKER,
            "203.0.113.77:4000",
            "GET /announce?info_hash=%01&port=1 HTTP/1.1",
        );
        let peer = entry(
            service::SWARM_PEER,
            "203.0.113.77:4001",
            "TCP to the seeder",
        );
        assert!(
            swarm_problems(
                std::slice::from_ref(&ok),
                std::slice::from_ref(&peer),
                exit,
                &home
            )
            .is_empty()
        );
        // Nothing seen is no proof.
        assert_eq!(swarm_problems(&[], &[], exit, &home).len(), 2);
        // From the home address.
        let leak = entry(
            service::TRACKER,
            "198.51.100.2:4000",
            "GET /announce?info_hash=%01 HTTP/1.1",
        );
        let p = swarm_problems(
            &[ok.clone(), leak],
            std::slice::from_ref(&peer),
            exit,
            &home,
        );
        assert_eq!(
            p,
            vec!["the tracker saw an announce from 198.51.100.2:4000"]
        );
        // Through the tunnel, but volunteering a LAN address.
        let tells = entry(
            service::TRACKER,
            "203.0.113.77:4000",
            "GET /announce?info_hash=%01&ip=192.168.10.10 HTTP/1.1",
        );
        let p = swarm_problems(&[tells.clone(), tells], &[peer], exit, &home);
        assert_eq!(
            p,
            vec!["an announce carries the home network's 192.168.10.10"]
        );
        let stray = entry(
            service::SWARM_PEER,
            "198.51.100.2:5000",
            "UDP (uTP) to the seeder",
        );
        let p = swarm_problems(&[ok], &[stray], exit, &home);
        assert_eq!(
            p,
            vec!["the seeder saw a connection from 198.51.100.2:5000"]
        );
    }
}
