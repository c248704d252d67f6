//! What each step of a scenario does, by family: the gateway's
//! [`lifecycle`], the [`probe`]s (each with its nonce and its far-end check
//! in the lab services' log), the [`wait`]s, the [`fault`]s done to the lab
//! or the gateway, the gateway's [`control`] API (and key rotation through
//! it), the [`forwarded_port`], the [`attack`]s (raw frames, a forged
//! SYN-ACK, malformed DNS), the background traffic ([`storm`]), and the
//! real applications' steps ([`torrent`], [`usenet`], [`browser`]). A step
//! ends in an [`Outcome`]; only a harness problem (the lab cannot do what
//! is asked) is an error.

pub mod apps;
pub mod attack;
pub mod browser;
pub mod control;
pub mod fault;
pub mod forwarded_port;
pub mod lifecycle;
pub mod probe;
pub mod report;
pub mod storm;
pub mod torrent;
pub mod usenet;
pub mod wait;

use crate::lab::LabError;
use crate::model::scenario::Action;
use crate::model::verdict::Outcome;
use crate::scenario::runner::{RunState, Runner};
use report::into_log;

impl Runner<'_> {
    /// Runs one step.
    pub(crate) async fn step(
        &self,
        st: &mut RunState<'_>,
        action: &Action,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        Ok(match action {
            Action::WaitHandshake { timeout } => {
                into_log(log, Ok(self.wait_handshake(st, *timeout).await))?
            }
            Action::WaitFirewall { timeout } => {
                into_log(log, Ok(self.wait_firewall(st, *timeout).await))?
            }
            Action::WaitTunnelRestart { timeout } => {
                into_log(log, Ok(self.wait_tunnel_restart(*timeout).await))?
            }
            Action::WaitTraffic { timeout } => into_log(
                log,
                Ok(self
                    .wait_for_traffic(tokio::time::Instant::now() + *timeout)
                    .await),
            )?,
            Action::PortCommand { expect, timeout } => {
                into_log(log, Ok(self.port_command_step(st, *expect, *timeout).await))?
            }
            Action::Http { .. }
            | Action::Dns { .. }
            | Action::Udp { .. }
            | Action::EncryptedDns { .. }
            | Action::Ping { .. } => into_log(log, self.probe(action).await)?,
            Action::RawFrame {
                from,
                target,
                check,
            } => into_log(log, self.raw_frame_step(from, *target, check).await)?,
            Action::InjectSynack {
                from,
                target,
                expect,
            } => into_log(log, self.synack_step(from, *target, expect).await)?,
            Action::DnsGarbage { from, server } => {
                into_log(log, self.dns_garbage(st, from, *server).await)?
            }
            Action::StormStart { from } => into_log(log, self.storm_start(st, from))?,
            Action::StormWait { rounds } => into_log(log, Ok(self.storm_wait(st, *rounds).await))?,
            Action::StormStop => into_log(log, Ok(self.storm_stop(st).await))?,
            Action::Health {
                healthy,
                target,
                timeout,
            } => into_log(log, self.health_step(*healthy, *target, *timeout).await)?,
            Action::Control { .. } => into_log(log, self.control_step(st, action).await)?,
            Action::ForwardedPort {
                via,
                expect,
                bittorrent,
            } => into_log(log, self.forwarded_step(st, via, expect, *bittorrent).await)?,
            Action::TorrentAdd => into_log(log, self.torrent_add(st).await)?,
            Action::TorrentWait { progress, timeout } => {
                into_log(log, self.torrent_wait(st, *progress, *timeout).await)?
            }
            Action::TorrentAnnounce { expect, timeout } => {
                into_log(log, self.torrent_announce(st, expect, *timeout).await)?
            }
            Action::SwarmSeen { seen_as } => into_log(log, Ok(self.swarm_seen(st, *seen_as)))?,
            Action::TorrentPort { timeout } => {
                into_log(log, self.torrent_port(st, *timeout).await)?
            }
            Action::NzbAdd => into_log(log, self.nzb_add(st).await)?,
            Action::NzbWait { expect, timeout } => {
                into_log(log, self.nzb_wait(st, expect, *timeout).await)?
            }
            Action::NewsSeen { seen_as } => into_log(log, Ok(self.news_seen(st, *seen_as)))?,
            Action::Browse { expect } => into_log(log, self.browse(expect).await)?,
            Action::Unheard { by } => into_log(log, Ok(self.unheard(st, by)))?,
            Action::Fault(f) => into_log(log, self.fault(st, *f).await)?,
            Action::Interfere(i) => into_log(log, self.interfere(st, i).await)?,
        })
    }
}
