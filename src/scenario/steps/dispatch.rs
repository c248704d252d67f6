//! Which family runs each action of a scenario's steps.

use super::report::StepResult;
use crate::model::scenario::Action;
use crate::scenario::runner::{RunState, Runner};

impl Runner<'_> {
    /// Runs one step.
    pub(crate) async fn step(&self, st: &mut RunState<'_>, action: &Action) -> StepResult {
        match action {
            Action::WaitHandshake { timeout } => Ok(self.wait_handshake(st, *timeout).await),
            Action::WaitFirewall { timeout } => Ok(self.wait_firewall(st, *timeout).await),
            Action::WaitTunnelRestart { timeout } => Ok(self.wait_tunnel_restart(*timeout).await),
            Action::WaitTraffic { timeout } => Ok(self
                .wait_for_traffic(tokio::time::Instant::now() + *timeout)
                .await),
            Action::PortCommand { expect, timeout } => {
                Ok(self.port_command_step(st, *expect, *timeout).await)
            }
            Action::Http { .. }
            | Action::Dns { .. }
            | Action::Udp { .. }
            | Action::EncryptedDns { .. }
            | Action::Ping { .. } => self.probe(action).await,
            Action::RawFrame {
                from,
                target,
                check,
            } => self.raw_frame_step(from, *target, check).await,
            Action::InjectSynack {
                from,
                target,
                expect,
            } => self.synack_step(from, *target, expect).await,
            Action::DnsGarbage { from, server } => self.dns_garbage(st, from, *server).await,
            Action::StartGatewayStorming { from } => self.start_gateway_storming(st, from).await,
            Action::Fuzz(spec) => self.fuzz_step(st, spec).await,
            Action::Prove { from } => self.prove_step(st, from).await,
            Action::StormStart { from } => self.storm_start(st, from),
            Action::StormWait { rounds } => Ok(self.storm_wait(st, *rounds).await),
            Action::StormStop => Ok(self.storm_stop(st).await),
            Action::FlowsStart { from } => self.flows_start(st, from).await,
            Action::FlowsWait { rounds } => self.flows_wait(st, *rounds).await,
            Action::FlowsStop => Ok(self.flows_stop(st).await),
            Action::Health {
                healthy,
                target,
                timeout,
            } => self.health_step(*healthy, *target, *timeout).await,
            Action::Control { .. } => self.control_step(st, action).await,
            Action::ForwardedPort {
                via,
                expect,
                bittorrent,
            } => self.forwarded_step(st, *via, expect, *bittorrent).await,
            Action::TorrentAdd => self.torrent_add(st).await,
            Action::TorrentWait { progress, timeout } => {
                self.torrent_wait(st, *progress, *timeout).await
            }
            Action::TorrentAnnounce { expect, timeout } => {
                self.torrent_announce(st, expect, *timeout).await
            }
            Action::SwarmSeen { seen_as } => Ok(self.swarm_seen(st, *seen_as)),
            Action::TorrentPort { timeout } => self.torrent_port(st, *timeout).await,
            Action::NzbAdd => self.nzb_add(st).await,
            Action::NzbWait { expect, timeout } => self.nzb_wait(st, expect, *timeout).await,
            Action::NewsSeen { seen_as } => Ok(self.news_seen(st, *seen_as)),
            Action::Browse { expect } => self.browse(expect).await,
            Action::Unheard { by } => Ok(self.unheard(st, by)),
            Action::Fault(f) => self.fault(st, *f).await,
            Action::Interfere(i) => self.interfere(st, i).await,
        }
    }
}
