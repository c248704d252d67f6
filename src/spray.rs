//! The leak fuzzer's sending: a [`Spray`] written with raw sockets from a
//! thread inside a lab host's namespace, within a deadline. The dependents'
//! side writes with the source address the kernel's routing chooses and no
//! socket option a container lacks; the root side sets a firewall mark,
//! binds to the underlay or writes a spoofed source. What the kernel
//! refuses is counted by its reason, never an error: a refusal is the
//! gateway's answer too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::lab::netns::{Netns, NetnsError};
use crate::model::spray::{RootTrick, Shape, Side, Spray, SprayPacket};

/// What the sending did.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Packets the kernel took (each fragment counts once per packet).
    pub sent: usize,
    /// Packets the kernel refused, by the reason it gave.
    pub refused: BTreeMap<String, usize>,
    /// Packets left unsent when the time was up.
    pub unsent: usize,
    /// From the first packet to the last.
    pub took: Duration,
}

impl Sent {
    /// One line for the step's log.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} packet(s) sent in {:.0} ms",
            self.sent,
            self.took.as_secs_f64() * 1000.0
        );
        if !self.refused.is_empty() {
            let why: Vec<String> = self
                .refused
                .iter()
                .map(|(e, n)| format!("{n} {e}"))
                .collect();
            s.push_str(&format!("; refused by the kernel: {}", why.join(", ")));
        }
        if self.unsent > 0 {
            s.push_str(&format!("; {} left unsent: the time was up", self.unsent));
        }
        s
    }
}

/// Writes `spray` from `ns` (whose underlay device is `underlay`) until it
/// is done or `time` has passed.
pub fn send(
    ns: &Netns,
    spray: &Spray,
    underlay: &str,
    time: Duration,
) -> Result<Result<Sent, std::io::Error>, NetnsError> {
    let underlay = underlay.to_string();
    ns.run(move || {
        let mut s = Sockets::new(&underlay);
        // Every socket the spray needs, first: one that cannot be made is
        // the harness's problem, never a refusal by the gateway.
        s.open_all(spray)?;
        let t0 = Instant::now();
        let deadline = t0 + time;
        let mut out = Sent::default();
        for (i, p) in spray.packets.iter().enumerate() {
            if i % 32 == 0 && Instant::now() >= deadline {
                out.unsent = spray.packets.len() - i;
                break;
            }
            match s.send(p, &spray.marker(p.id)) {
                Ok(()) => out.sent += 1,
                Err(e) => *out.refused.entry(reason(&e)).or_default() += 1,
            }
        }
        out.took = t0.elapsed();
        Ok(out)
    })
}

/// A refusal's reason in words ("no route", "not permitted", ...).
fn reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(nix::libc::ENETUNREACH) | Some(nix::libc::EHOSTUNREACH) => "no route".into(),
        // A netfilter drop of a locally written packet says EPERM.
        Some(nix::libc::EPERM) => "not permitted (a firewall drop)".into(),
        Some(nix::libc::EACCES) => "not permitted".into(),
        Some(nix::libc::EINVAL) => "invalid".into(),
        _ => e.kind().to_string(),
    }
}

/// The sockets of one spray, opened as first needed.
struct Sockets {
    underlay: String,
    ifindex: u32,
    raw: BTreeMap<(bool, Option<RootTrick>), Socket>,
    mapped: Option<Socket>,
    sources: BTreeMap<(IpAddr, bool), Option<IpAddr>>,
}

fn io_err(what: &str) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

impl Sockets {
    fn new(underlay: &str) -> Sockets {
        Sockets {
            underlay: underlay.to_string(),
            ifindex: nix::net::if_::if_nametoindex(underlay).unwrap_or(0),
            raw: BTreeMap::new(),
            mapped: None,
            sources: BTreeMap::new(),
        }
    }

    /// The address `dst` is written to (IPv6 link scope: on the underlay).
    fn sockaddr(&self, dst: IpAddr, port: u16) -> SockAddr {
        match dst {
            IpAddr::V4(a) => SocketAddr::new(a.into(), port).into(),
            IpAddr::V6(a) => {
                let scope = if link_scoped(a) { self.ifindex } else { 0 };
                SocketAddrV6::new(a, port, 0, scope).into()
            }
        }
    }

    /// The source the kernel would choose for `dst` (bound to the
    /// underlay if `bound`); `None`: no route.
    fn source(&mut self, dst: IpAddr, bound: bool) -> Option<IpAddr> {
        if let Some(s) = self.sources.get(&(dst, bound)) {
            return *s;
        }
        let found = (|| -> std::io::Result<IpAddr> {
            let domain = if dst.is_ipv6() {
                Domain::IPV6
            } else {
                Domain::IPV4
            };
            let sock = Socket::new(domain, Type::DGRAM, None)?;
            sock.set_broadcast(true)?;
            if bound {
                sock.bind_device(Some(self.underlay.as_bytes()))?;
            }
            sock.connect(&self.sockaddr(dst, 9))?;
            sock.local_addr()?
                .as_socket()
                .map(|a| a.ip())
                .ok_or_else(|| io_err("no local address"))
        })()
        .ok();
        self.sources.insert((dst, bound), found);
        found
    }

    /// Opens the raw sockets of every side and trick the spray uses (and
    /// checks the underlay exists).
    fn open_all(&mut self, spray: &Spray) -> std::io::Result<()> {
        if self.ifindex == 0 {
            return Err(io_err(&format!("there is no device {}", self.underlay)));
        }
        for p in &spray.packets {
            if p.shape == Shape::MappedSocket {
                continue;
            }
            let trick = match p.side {
                Side::Dependent => None,
                Side::Root(t) => Some(t),
            };
            self.raw(p.dst.is_ipv6(), trick)?;
        }
        Ok(())
    }

    fn raw(&mut self, v6: bool, trick: Option<RootTrick>) -> std::io::Result<&Socket> {
        let key = (v6, trick.filter(|t| !matches!(t, RootTrick::Spoof(_))));
        if !self.raw.contains_key(&key) {
            let sock = crate::rawsock::raw_socket(v6, Protocol::from(nix::libc::IPPROTO_RAW))?;
            sock.set_broadcast(true)?;
            // A send never waits long: a full queue is a refusal.
            sock.set_write_timeout(Some(Duration::from_millis(50)))?;
            match key.1 {
                Some(RootTrick::Mark(m)) => sock.set_mark(m)?,
                Some(RootTrick::BindUnderlay) => {
                    sock.bind_device(Some(self.underlay.as_bytes()))?
                }
                _ => {}
            }
            self.raw.insert(key, sock);
        }
        Ok(&self.raw[&key])
    }

    fn send(&mut self, p: &SprayPacket, marker: &[u8]) -> std::io::Result<()> {
        let trick = match p.side {
            Side::Dependent => None,
            Side::Root(t) => Some(t),
        };
        if p.shape == Shape::MappedSocket {
            return self.send_mapped(p, marker);
        }
        let src = match trick {
            Some(RootTrick::Spoof(a)) => Some(a),
            Some(RootTrick::BindUnderlay) => self.source(p.dst, true),
            _ => self.source(p.dst, false),
        }
        .ok_or_else(|| std::io::Error::from_raw_os_error(nix::libc::ENETUNREACH))?;
        let to = self.sockaddr(p.dst, 0);
        let sock = self.raw(p.dst.is_ipv6(), trick)?;
        for d in p.datagrams(src, marker) {
            sock.send_to(&d, &to)?;
        }
        Ok(())
    }

    /// UDP from a dual-stack IPv6 socket to an IPv4-mapped address.
    fn send_mapped(&mut self, p: &SprayPacket, marker: &[u8]) -> std::io::Result<()> {
        let crate::model::spray::L4::Udp { dport, .. } = p.l4 else {
            return Err(std::io::Error::from_raw_os_error(nix::libc::EINVAL));
        };
        if self.mapped.is_none() {
            let sock = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
            sock.set_only_v6(false)?;
            self.mapped = Some(sock);
        }
        let sock = self.mapped.as_ref().expect("opened above");
        let to = self.sockaddr(p.dst, dport);
        let payload = p
            .datagrams(IpAddr::V6(Ipv6Addr::UNSPECIFIED), marker)
            .concat();
        sock.send_to(&payload, &to)?;
        Ok(())
    }
}

/// Link-local unicast and link- or interface-scope multicast: written with
/// the underlay as their scope.
pub(crate) fn link_scoped(a: Ipv6Addr) -> bool {
    let s = a.segments()[0];
    (s & 0xffc0) == 0xfe80 || s == 0xff02 || s == 0xff01
}
