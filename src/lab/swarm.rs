//! The lab's BitTorrent swarm on its internet, for one scenario: a torrent
//! made for it (random content, so a fresh info hash), Debian's
//! `opentracker` on 192.0.2.69:6969 (private: only that torrent is
//! whitelisted) and `aria2c` seeding it from 192.0.2.66:6881 at a set rate,
//! both in the ISP's namespace. What reached them is read off the ISP's
//! wires towards the home and the VPN (the far end, before any local
//! delivery) and written to the lab's log: every announce as the `tracker`
//! service (its request line, from its source), every connection to the
//! seeder as `swarm-peer`. Dropping the swarm stops both programs.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use pnet::packet::Packet;
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::tcp::{TcpFlags, TcpPacket};

use super::service_log::ServiceLog;
use super::{Lab, LabError};
use crate::capture::Watch;
use crate::model::topology::{addr, host, service};
use crate::model::torrent::{self, Torrent};
use crate::poll::poll_until;

pub const OPENTRACKER: &str = "opentracker";
pub const ARIA2: &str = "aria2c";
/// The content's size: a few seconds at [`SEED_RATE`], so that a scenario
/// can act in the middle of a download.
pub const CONTENT_BYTES: usize = 4 << 20;
pub const PIECE_BYTES: usize = 64 << 10;
/// The seeder's upload limit (aria2's syntax): 1 MiB/s.
pub const SEED_RATE: &str = "1M";

/// The announce URL every swarm torrent names.
pub fn announce_url() -> String {
    format!("http://{}:{}/announce", addr::TRACKER, addr::TRACKER_PORT)
}

/// What a frame on an ISP wire says about the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmEvent {
    /// An HTTP request to the tracker: its first line.
    Announce { from: SocketAddr, line: String },
    /// A new connection (TCP SYN) or datagram flow (UDP, e.g. uTP) to the
    /// seeder.
    Peer { from: SocketAddr, udp: bool },
}

/// Reads one frame (pure): a request to the tracker or a flow to the
/// seeder, else `None`.
pub fn swarm_event(frame: &[u8]) -> Option<SwarmEvent> {
    let (src, dst, proto, l4) = crate::model::verdict::ip_transport(frame)?;
    if proto == IpNextHeaderProtocols::Tcp.0 {
        let tcp = TcpPacket::new(l4)?;
        let from = SocketAddr::new(src, tcp.get_source());
        let to = SocketAddr::new(dst, tcp.get_destination());
        if to == SocketAddr::new(addr::TRACKER.into(), addr::TRACKER_PORT) {
            let p = tcp.payload();
            if p.starts_with(b"GET ") {
                let end = p
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(p.len());
                return Some(SwarmEvent::Announce {
                    from,
                    line: String::from_utf8_lossy(&p[..end]).into_owned(),
                });
            }
            return None;
        }
        let flags = tcp.get_flags();
        if to.ip() == IpAddr::from(addr::SEEDER)
            && flags & TcpFlags::SYN != 0
            && flags & TcpFlags::ACK == 0
        {
            return Some(SwarmEvent::Peer { from, udp: false });
        }
        return None;
    }
    if proto == IpNextHeaderProtocols::Udp.0 && dst == IpAddr::from(addr::SEEDER) {
        let udp = pnet::packet::udp::UdpPacket::new(l4)?;
        return Some(SwarmEvent::Peer {
            from: SocketAddr::new(src, udp.get_source()),
            udp: true,
        });
    }
    None
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> LabError {
    LabError::Service {
        service: "swarm".into(),
        source: std::io::Error::other(format!("{}: {e}", what.into())),
    }
}

/// A program of the swarm that cannot be run.
#[derive(Debug, thiserror::Error)]
#[error("{why} (bash ci/setup.sh installs it)")]
pub struct NotInstalled {
    pub program: &'static str,
    /// Why it cannot be run (it names the program).
    #[source]
    pub why: Box<dyn std::error::Error + Send + Sync>,
}

/// Is every program of the swarm installed? `Err` names what is missing.
pub fn installed() -> Result<(), NotInstalled> {
    for program in [OPENTRACKER, ARIA2] {
        crate::target::process::executable(program).map_err(|why| NotInstalled {
            program,
            why: why.into(),
        })?;
    }
    Ok(())
}

/// Why the tracker's seeder count could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeFailed {
    #[error(transparent)]
    Netns(#[from] crate::lab::netns::NetnsError),
    #[error("asking the tracker: {0}")]
    Io(#[source] std::io::Error),
    #[error("the tracker's answer has no HTTP header end")]
    NoHeaderEnd,
    #[error(transparent)]
    Answer(#[from] torrent::ScrapeError),
}

/// A running swarm.
pub struct Swarm {
    pub torrent: Torrent,
    children: Vec<std::process::Child>,
    _watches: Vec<Watch>,
    dir: PathBuf,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks the tracker (from the ISP's namespace) how many seeders it knows
/// for `hash`: a plain HTTP/1.0 scrape, its body bencoded.
fn scrape(ns: &crate::lab::netns::Netns, hash: &[u8; 20]) -> Result<u64, ScrapeFailed> {
    let path = format!("/scrape?info_hash={}", torrent::url_escape(hash));
    let to = SocketAddr::new(addr::TRACKER.into(), addr::TRACKER_PORT);
    let body = ns
        .run(move || -> std::io::Result<Vec<u8>> {
            let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: {to}\r\n\r\n")?;
            let mut all = Vec::new();
            s.read_to_end(&mut all)?;
            Ok(all)
        })
        .map_err(ScrapeFailed::Netns)?
        .map_err(ScrapeFailed::Io)?;
    let at = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ScrapeFailed::NoHeaderEnd)?;
    Ok(torrent::scrape_seeders(&body[at + 4..], hash)?)
}

impl Swarm {
    /// Makes a torrent named after `nonce`, starts the tracker and the
    /// seeder and the far-end watches; returns once the tracker counts the
    /// seeder (or an error with the programs' log tails).
    pub async fn start(lab: &Lab, log: ServiceLog, nonce: &str) -> Result<Swarm, LabError> {
        installed().map_err(|why| err("the swarm's programs", why))?;
        let ns = lab.ns(host::ISP)?;
        let dir = crate::lab::netns::run_files(lab.run_id()).join(format!("swarm-{nonce}"));
        let (torrent, torrent_file) = write_files(&dir, nonce)?;
        // The far end's eyes first: nothing that reaches the swarm is missed.
        let watches = watch_far_end(ns, &log)?;
        let mut swarm = Swarm {
            torrent,
            children: Vec::new(),
            _watches: watches,
            dir: dir.clone(),
        };
        let seeder_log = dir.join("aria2.log");
        let mut tracker = tracker_command(&dir);
        let mut seeder = seeder_command(&dir, &seeder_log, &torrent_file);
        for (cmd, prog) in [(&mut tracker, OPENTRACKER), (&mut seeder, ARIA2)] {
            let out = std::fs::File::create(dir.join(format!("{prog}.out")))
                .map_err(|e| err(format!("{prog}'s output"), e))?;
            cmd.stdin(std::process::Stdio::null())
                .stdout(
                    out.try_clone()
                        .map_err(|e| err(format!("{prog}'s output"), e))?,
                )
                .stderr(out);
            ns.command_with_resolv_conf(cmd, &lab.resolv_conf(host::ISP))
                .map_err(|e| err(format!("{prog} in the ISP's namespace"), e))?;
            let child = cmd
                .spawn()
                .map_err(|e| err(format!("starting {prog}"), e))?;
            swarm.children.push(child);
        }
        // Ready when the tracker counts the seeder.
        let hash = swarm.torrent.info_hash;
        let (dir_ref, seeder_log_ref) = (&dir, &seeder_log);
        let ready = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
            let exited = swarm
                .children
                .iter_mut()
                .zip([OPENTRACKER, ARIA2])
                .find_map(|(c, prog)| match c.try_wait() {
                    Ok(Some(status)) => Some((prog, status)),
                    _ => None,
                });
            let ns2 = crate::lab::netns::Netns::open(ns.name());
            async move {
                if let Some((prog, status)) = exited {
                    let out = dir_ref.join(format!("{prog}.out"));
                    return ControlFlow::Break(Err(err(
                        format!("{prog} exited ({status})"),
                        format!(
                            "{}\n{}",
                            super::apps::tail_of(&out),
                            super::apps::tail_of(seeder_log_ref)
                        ),
                    )));
                }
                let ns2 = match ns2 {
                    Ok(ns2) => ns2,
                    Err(e) => return ControlFlow::Break(Err(e.into())),
                };
                match tokio::task::spawn_blocking(move || scrape(&ns2, &hash)).await {
                    Err(e) => ControlFlow::Break(Err(err("scrape", e))),
                    Ok(Ok(n)) if n >= 1 => ControlFlow::Break(Ok(())),
                    Ok(Ok(n)) => ControlFlow::Continue(format!("the tracker counts {n} seeders")),
                    Ok(Err(e)) => ControlFlow::Continue(e.to_string()),
                }
            }
        })
        .await;
        match ready {
            Ok(r) => r?,
            Err(last) => {
                return Err(err(
                    "the swarm did not come up within 15 s",
                    format!(
                        "{last}; the seeder's log:\n{}",
                        super::apps::tail_of(&seeder_log)
                    ),
                ));
            }
        }
        Ok(swarm)
    }
}

/// The swarm's files in `dir`: the content to seed (random, in `seed/`),
/// its torrent (returned with its path), and the tracker's whitelist and
/// configuration (private, this torrent only).
fn write_files(dir: &std::path::Path, nonce: &str) -> Result<(Torrent, PathBuf), LabError> {
    let seed_dir = dir.join("seed");
    std::fs::create_dir_all(&seed_dir).map_err(|e| err("its directory", e))?;
    // opentracker drops to `nobody` inside this directory (its chroot).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| err("its directory", e))?;
    let mut content = vec![0u8; CONTENT_BYTES];
    rand::fill(&mut content[..]);
    let name = format!("leakhound-{nonce}.bin");
    let t = Torrent::make(&name, &content, PIECE_BYTES, &announce_url());
    std::fs::write(seed_dir.join(&name), &content).map_err(|e| err("its content", e))?;
    let torrent_file = dir.join(format!("{name}.torrent"));
    std::fs::write(&torrent_file, &t.bytes).map_err(|e| err("its torrent", e))?;
    std::fs::write(dir.join("whitelist.txt"), format!("{}\n", t.hex_hash()))
        .map_err(|e| err("the tracker's whitelist", e))?;
    // The tracker's configuration: private, this torrent only (the path
    // is inside its chroot).
    std::fs::write(
        dir.join("opentracker.conf"),
        "access.whitelist /whitelist.txt\n",
    )
    .map_err(|e| err("the tracker's configuration", e))?;
    Ok((t, torrent_file))
}

/// Watches on the ISP's wires towards the home and the VPN: every announce
/// and every new flow to the seeder goes to `log`.
fn watch_far_end(ns: &crate::lab::netns::Netns, log: &ServiceLog) -> Result<Vec<Watch>, LabError> {
    let mut watches = Vec::new();
    for ifname in ["home", "vpn"] {
        let log = log.clone();
        let mut seen: HashSet<(SocketAddr, bool)> = HashSet::new();
        watches.push(
            Watch::start(ns, ifname, move |frame, _| match swarm_event(frame) {
                Some(SwarmEvent::Announce { from, line }) => {
                    log.record(service::TRACKER, from, line);
                }
                Some(SwarmEvent::Peer { from, udp }) if seen.insert((from, udp)) => {
                    let how = if udp { "UDP (uTP)" } else { "TCP" };
                    log.record(
                        service::SWARM_PEER,
                        from,
                        format!("{how} to the seeder {}", addr::SEEDER),
                    );
                }
                Some(SwarmEvent::Peer { .. }) | None => {}
            })
            .map_err(|e| err(format!("watching the ISP's {ifname}"), e))?,
        );
    }
    Ok(watches)
}

/// opentracker on the tracker's address, chrooted in `dir`.
fn tracker_command(dir: &std::path::Path) -> std::process::Command {
    let mut tracker = std::process::Command::new(OPENTRACKER);
    tracker
        .arg("-i")
        .arg(addr::TRACKER.to_string())
        .arg("-p")
        .arg(addr::TRACKER_PORT.to_string())
        .arg("-P")
        .arg(addr::TRACKER_PORT.to_string())
        .arg("-d")
        .arg(dir)
        .arg("-f")
        .arg(dir.join("opentracker.conf"));
    tracker
}

/// aria2 seeding `torrent_file` from `dir`'s `seed/` at [`SEED_RATE`], on
/// the seeder's address only, IPv4, without DHT, LPD or peer exchange.
fn seeder_command(
    dir: &std::path::Path,
    seeder_log: &std::path::Path,
    torrent_file: &std::path::Path,
) -> std::process::Command {
    let mut seeder = std::process::Command::new(ARIA2);
    seeder
        .arg(format!("--dir={}", dir.join("seed").display()))
        .args([
            "--seed-ratio=0.0",
            "--check-integrity=true",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6=true",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--log-level=info",
        ])
        .arg(format!("--listen-port={}", addr::SEEDER_PORT))
        .arg(format!("--interface={}", addr::SEEDER))
        .arg(format!("--max-overall-upload-limit={SEED_RATE}"))
        .arg(format!("--log={}", seeder_log.display()))
        .arg(torrent_file);
    seeder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        udp: bool,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
        use pnet::packet::ipv4::MutableIpv4Packet;
        use pnet::packet::tcp::MutableTcpPacket;
        use pnet::packet::udp::MutableUdpPacket;
        let l4 = if udp {
            let mut u = vec![0u8; 8 + payload.len()];
            let mut p = MutableUdpPacket::new(&mut u).unwrap();
            p.set_source(src.1);
            p.set_destination(dst.1);
            p.set_length((8 + payload.len()) as u16);
            p.set_payload(payload);
            u
        } else {
            let mut t = vec![0u8; 20 + payload.len()];
            let mut p = MutableTcpPacket::new(&mut t).unwrap();
            p.set_source(src.1);
            p.set_destination(dst.1);
            p.set_data_offset(5);
            p.set_flags(flags);
            p.set_payload(payload);
            t
        };
        let mut ip = vec![0u8; 20 + l4.len()];
        {
            let mut p = MutableIpv4Packet::new(&mut ip).unwrap();
            p.set_version(4);
            p.set_header_length(5);
            p.set_total_length((20 + l4.len()) as u16);
            p.set_next_level_protocol(if udp {
                IpNextHeaderProtocols::Udp
            } else {
                IpNextHeaderProtocols::Tcp
            });
            p.set_source(src.0.into());
            p.set_destination(dst.0.into());
            p.set_payload(&l4);
        }
        let mut eth = vec![0u8; 14 + ip.len()];
        let mut e = MutableEthernetPacket::new(&mut eth).unwrap();
        e.set_ethertype(EtherTypes::Ipv4);
        e.set_payload(&ip);
        eth
    }

    #[test]
    fn announces_and_new_peer_flows_are_read_off_the_wire() {
        let exit = ([203, 0, 113, 77], 40000);
        let tracker = ([192, 0, 2, 69], 6969);
        let seeder = ([192, 0, 2, 66], 6881);
        assert_eq!(
            swarm_event(&frame(
                exit,
                tracker,
                false,
                TcpFlags::ACK | TcpFlags::PSH,
                b"GET /announce?info_hash=%01&port=1 HTTP/1.1\r\nHost: x\r\n"
            )),
            Some(SwarmEvent::Announce {
                from: "203.0.113.77:40000".parse().unwrap(),
                line: "GET /announce?info_hash=%01&port=1 HTTP/1.1".into()
            })
        );
        assert_eq!(
            swarm_event(&frame(exit, seeder, false, TcpFlags::SYN, b"")),
            Some(SwarmEvent::Peer {
                from: "203.0.113.77:40000".parse().unwrap(),
                udp: false
            })
        );
        assert_eq!(
            swarm_event(&frame(exit, seeder, true, 0, b"\x41\x00")),
            Some(SwarmEvent::Peer {
                from: "203.0.113.77:40000".parse().unwrap(),
                udp: true
            })
        );
        // Mid-connection segments, a tracker's bare ACK, other hosts: nothing.
        assert_eq!(
            swarm_event(&frame(exit, seeder, false, TcpFlags::ACK, b"x")),
            None
        );
        assert_eq!(
            swarm_event(&frame(exit, tracker, false, TcpFlags::ACK, b"")),
            None
        );
        assert_eq!(
            swarm_event(&frame(
                exit,
                ([192, 0, 2, 80], 80),
                false,
                TcpFlags::SYN,
                b""
            )),
            None
        );
        assert_eq!(swarm_event(b"short"), None);
    }

    #[test]
    fn the_announce_url_is_the_labs_tracker() {
        assert_eq!(announce_url(), "http://192.0.2.69:6969/announce");
    }
}
