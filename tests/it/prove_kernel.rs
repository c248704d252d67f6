//! The prove engine held to the kernel (root): random small nftables
//! rulesets and random packets; for each case the engine says whether the
//! packet reaches the underlay, and a throwaway namespace's kernel, with
//! that ruleset loaded, is given the packet to send: written by a process
//! (raw IP socket, its mark, bound to eth0) or as a raw frame (AF_PACKET).
//! Its veth peer sees what left. The two must agree, case by case.
//!
//! `LEAKHOUND_PROVE_CASES` sets the number of cases (200 by default, the
//! CI share; `ci/prove-vs-kernel.sh` runs 5,000), `LEAKHOUND_PROVE_SEED`
//! the seed (printed, so a disagreement can be replayed).
//!
//! No waiting for silence: after each case's packet a sentinel follows on
//! the same path (its mark is accepted first in every base chain the
//! generator writes), from a thread pinned to one CPU, so the veth peer's
//! queue holds the case's packet before the sentinel if it left at all.
//!
//! Generated: tables of the families ip, ip6, inet and netdev (its egress
//! hook on eth0), base chains at the output, postrouting and egress hooks
//! with random priorities and policies, user chains reached by jump and
//! goto, return, verdict maps, and matches on protocol, addresses
//! (prefixes, ranges, sets, negated), ports, TCP flags, ICMP types, mark
//! (masked too), DSCP, TTL, family and EtherType, and output interface.
//! Left out, and why: conntrack state (one state per kernel packet, any in
//! the model), `th` ports on packets without ports (the model takes them
//! both ways: the bytes are the ICMP checksum or a GRE header), packet
//! length (the egress hook counts the Ethernet header), forwarded packets
//! (another sender; the lab's fault scenarios cover them).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use leakhound::lab::netns::{self, Netns};
use leakhound::lab::new_run_id;
use leakhound::prove::wire;
use leakhound_prove::space::{Cube, Field, one};
use leakhound_prove::{Packet, Path, ruleset::addr_value};

const SENTINEL_MARK: u32 = 0x5e47_0000;

/// splitmix64: a small deterministic generator, replayable by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

const V4: [&str; 6] = [
    "192.0.2.10",
    "192.0.2.80",
    "192.0.2.200",
    "198.51.100.7",
    "203.0.113.10",
    "203.0.113.99",
];
const V6: [&str; 5] = [
    "2001:db8::10",
    "2001:db8::80",
    "2001:db8:1::7",
    "2001:db8:80::80",
    "2001:db8:ffff::1",
];
const PORTS: [u16; 6] = [53, 80, 443, 1024, 40000, 51820];
const MARKS: [u32; 5] = [0, 1, 0x10, 0x11, 0xff];

/// One generated case: a ruleset (nft's text) and a packet.
struct Case {
    ruleset: String,
    packet: Packet,
    /// The TTL or hop limit written (the fuzzer's packets carry 64).
    ttl: u8,
}

/// The network protocol a rule's terms commit to.
#[derive(Clone, Copy, PartialEq)]
enum L3 {
    Any,
    V4,
    V6,
}

#[derive(Clone, Copy, PartialEq)]
enum Fam {
    Ip,
    Ip6,
    Inet,
    Netdev,
}

impl Fam {
    fn name(self) -> &'static str {
        match self {
            Fam::Ip => "ip",
            Fam::Ip6 => "ip6",
            Fam::Inet => "inet",
            Fam::Netdev => "netdev",
        }
    }
}

struct Gen<'a> {
    r: &'a mut Rng,
    th: bool,
    /// The rule being written has a `meta l4proto`, `th` or EtherType
    /// term: nft 1.0.6 aborts listing `meta l4proto gre th dport ...` (it
    /// reads the `th` as GRE's header) and refuses protocols that
    /// conflict, so a rule gets one of them.
    l4proto_or_th: bool,
}

impl Gen<'_> {
    fn v4_match(&mut self) -> String {
        match self.r.below(4) {
            0 => self.r.pick(&V4).to_string(),
            1 => format!("{}/24", self.r.pick(&V4)),
            2 => {
                let mut a = [self.r.pick(&V4), self.r.pick(&V4)];
                a.sort_by_key(|s| s.parse::<std::net::Ipv4Addr>().unwrap());
                format!("{}-{}", a[0], a[1])
            }
            _ => format!("{{ {}, {}/30 }}", self.r.pick(&V4), self.r.pick(&V4)),
        }
    }

    fn v6_match(&mut self) -> String {
        match self.r.below(4) {
            0 => self.r.pick(&V6).to_string(),
            1 => format!("{}/48", self.r.pick(&V6)),
            2 => {
                let mut a = [self.r.pick(&V6), self.r.pick(&V6)];
                a.sort_by_key(|s| s.parse::<std::net::Ipv6Addr>().unwrap());
                format!("{}-{}", a[0], a[1])
            }
            _ => format!("{{ {}, {}/64 }}", self.r.pick(&V6), self.r.pick(&V6)),
        }
    }

    fn ports(&mut self) -> String {
        match self.r.below(3) {
            0 => self.r.pick(&PORTS).to_string(),
            1 => {
                let mut a = [self.r.pick(&PORTS), self.r.pick(&PORTS)];
                a.sort();
                format!("{}-{}", a[0], a[1])
            }
            _ => format!("{{ {}, {} }}", self.r.pick(&PORTS), self.r.pick(&PORTS)),
        }
    }

    fn neg(&mut self) -> &'static str {
        if self.r.chance(25) { "!= " } else { "" }
    }

    /// One match term a rule may hold: of its chain's family, and of the
    /// network and transport protocols the rule committed to (nft refuses
    /// `ip saddr` beside `ip6 daddr`, `tcp` beside `udp`).
    fn term(&mut self, fam: Fam, l3: L3, l4: u8) -> String {
        loop {
            let t = match self.r.below(16) {
                0 if l4 == 0 && !self.l4proto_or_th => format!(
                    "meta l4proto {}{}",
                    self.neg(),
                    self.r
                        .pick(&["tcp", "udp", "icmp", "ipv6-icmp", "gre", "{ tcp, udp }"])
                ),
                1 if l3 == L3::V4 => format!(
                    "ip {} {}{}",
                    self.r.pick(&["saddr", "daddr"]),
                    self.neg(),
                    self.v4_match()
                ),
                2 if l3 == L3::V6 => format!(
                    "ip6 {} {}{}",
                    self.r.pick(&["saddr", "daddr"]),
                    self.neg(),
                    self.v6_match()
                ),
                3 if matches!(l4, 6 | 17) => format!(
                    "{} {} {}{}",
                    if l4 == 6 { "tcp" } else { "udp" },
                    self.r.pick(&["sport", "dport"]),
                    self.neg(),
                    self.ports()
                ),
                4 if !self.l4proto_or_th => {
                    self.th = true;
                    format!("th dport {}{}", self.neg(), self.ports())
                }
                5 if l4 == 6 => self
                    .r
                    .pick(&[
                        "tcp flags syn",
                        "tcp flags & (syn | ack) == syn",
                        "tcp flags { syn, ack }",
                        "tcp flags & ack == ack",
                        "tcp flags != syn",
                    ])
                    .to_string(),
                6 if l4 == 1 => format!(
                    "icmp type {}{}",
                    self.neg(),
                    self.r.pick(&[
                        "echo-request",
                        "{ echo-request, echo-reply }",
                        "destination-unreachable"
                    ])
                ),
                7 if l4 == 58 => format!(
                    "icmpv6 type {}{}",
                    self.neg(),
                    self.r.pick(&[
                        "echo-request",
                        "{ echo-request, nd-neighbor-solicit }",
                        "mld-listener-report"
                    ])
                ),
                8 => format!("meta mark {}{:#x}", self.neg(), self.r.pick(&MARKS)),
                9 => format!(
                    "meta mark & 0xf0 {} {:#x}",
                    self.r.pick(&["==", "!="]),
                    self.r.pick(&[0u32, 0x10])
                ),
                10 if l3 == L3::V4 => format!(
                    "ip dscp {}{}",
                    self.neg(),
                    self.r.pick(&["cs0", "cs1", "ef", "af41"])
                ),
                11 if l3 == L3::V6 => format!(
                    "ip6 dscp {}{}",
                    self.neg(),
                    self.r.pick(&["cs0", "cs1", "ef"])
                ),
                12 if fam == Fam::Inet && l3 == L3::Any => {
                    format!("meta nfproto {}", self.r.pick(&["ipv4", "ipv6"]))
                }
                12 if fam == Fam::Netdev && l3 == L3::Any && l4 == 0 && !self.l4proto_or_th => {
                    format!(
                        "{} {}{}",
                        self.r.pick(&["meta protocol", "ether type"]),
                        self.neg(),
                        self.r.pick(&["ip", "ip6", "arp", "{ ip, ip6 }"])
                    )
                }
                13 => format!(
                    "meta oifname {}{}",
                    self.neg(),
                    self.r.pick(&["\"eth0\"", "\"wg0\"", "\"eth*\""])
                ),
                14 if l3 == L3::V4 => {
                    format!("ip ttl {}", self.r.pick(&["64", "< 10", "!= 64", "> 100"]))
                }
                15 if l3 == L3::V6 => format!("ip6 hoplimit {}", self.r.pick(&["64", "!= 64"])),
                _ => continue,
            };
            if t.starts_with("meta l4proto")
                || t.starts_with("th ")
                || t.starts_with("meta protocol")
                || t.starts_with("ether type")
            {
                self.l4proto_or_th = true;
            }
            return t;
        }
    }

    fn verdict(&mut self, users: &[String], in_user: bool, l4: u8) -> String {
        let mut v = vec!["accept", "drop", "accept", "drop", "counter"];
        if in_user {
            v.push("return");
        }
        let n = v.len() + if users.is_empty() { 0 } else { 2 };
        let i = self.r.below(n + 1);
        if i < v.len() {
            return v[i].to_string();
        }
        if i == v.len() + 2 || users.is_empty() {
            let free = !self.l4proto_or_th;
            return match (self.r.below(3), l4) {
                (0, 0) if free => "meta l4proto vmap { tcp : accept, udp : drop }",
                (1, 0 | 6) if free => "tcp dport vmap { 80 : drop, 443 : accept }",
                _ => "meta mark vmap { 0x1 : drop, 0x10 : accept }",
            }
            .to_string();
        }
        let target = &users[self.r.below(users.len())];
        if i == v.len() {
            format!("jump {target}")
        } else {
            format!("goto {target}")
        }
    }

    fn rules(&mut self, fam: Fam, users: &[String], in_user: bool, out: &mut String) {
        for _ in 0..self.r.below(4) + usize::from(!in_user) {
            let l3 = match (fam, self.r.below(3)) {
                (Fam::Ip, _) | (Fam::Inet | Fam::Netdev, 1) => L3::V4,
                (Fam::Ip6, _) | (Fam::Inet | Fam::Netdev, 2) => L3::V6,
                _ => L3::Any,
            };
            let l3 = if fam == Fam::Ip || fam == Fam::Ip6 || self.r.chance(50) {
                l3
            } else {
                L3::Any
            };
            let l4 = match (self.r.below(5), l3) {
                (0, _) => 6,
                (1, _) => 17,
                (2, L3::V4) => 1,
                (2, L3::V6) => 58,
                _ => 0,
            };
            let mut rule = String::new();
            self.l4proto_or_th = false;
            for _ in 0..self.r.below(3) {
                rule.push_str(&self.term(fam, l3, l4));
                rule.push(' ');
            }
            rule.push_str(&self.verdict(users, in_user, l4));
            let _ = writeln!(out, "    {rule}");
        }
    }

    fn ruleset(&mut self) -> String {
        let mut out = String::new();
        let fams = [Fam::Ip, Fam::Ip6, Fam::Inet, Fam::Inet, Fam::Netdev];
        for t in 0..1 + self.r.below(3) {
            let fam = self.r.pick(&fams);
            let users: Vec<String> = (0..self.r.below(3)).map(|i| format!("u{i}")).collect();
            let _ = writeln!(out, "table {} t{t} {{", fam.name());
            // User chains, each jumping only to later ones (no loops).
            for (i, u) in users.iter().enumerate() {
                let _ = writeln!(out, "  chain {u} {{");
                self.rules(fam, &users[i + 1..], true, &mut out);
                let _ = writeln!(out, "  }}");
            }
            for c in 0..1 + self.r.below(2) {
                let hook = match fam {
                    Fam::Netdev => "egress device \"eth0\"".to_string(),
                    _ => self
                        .r
                        .pick(&["output", "output", "postrouting"])
                        .to_string(),
                };
                let prio = self.r.pick(&[-300i32, -150, 0, 0, 10, 100]);
                let policy = self.r.pick(&["accept", "drop"]);
                let _ = writeln!(out, "  chain b{c} {{");
                let _ = writeln!(
                    out,
                    "    type filter hook {hook} priority {prio}; policy {policy};"
                );
                let _ = writeln!(out, "    meta mark {SENTINEL_MARK:#x} accept");
                self.rules(fam, &users, false, &mut out);
                let _ = writeln!(out, "  }}");
            }
            let _ = writeln!(out, "}}");
        }
        out
    }

    fn packet(&mut self) -> Packet {
        let raw = self.r.chance(25);
        let ether_type = if raw && self.r.chance(15) {
            0x88b5
        } else if self.r.chance(50) {
            0x0800
        } else {
            0x86dd
        };
        let v6 = ether_type == 0x86dd;
        let addr = |r: &mut Rng| -> IpAddr {
            if v6 {
                r.pick(&V6).parse().unwrap()
            } else {
                r.pick(&V4).parse().unwrap()
            }
        };
        let l4 = if self.th {
            self.r.pick(&[6u8, 17])
        } else if v6 {
            self.r.pick(&[6u8, 17, 58, 47])
        } else {
            self.r.pick(&[6u8, 17, 1, 47])
        };
        let fragment = !self.th && self.r.chance(10);
        let ported = matches!(l4, 6 | 17) && !fragment;
        Packet {
            path: if raw { Path::Raw } else { Path::Output },
            ether_type,
            l4,
            saddr: addr(self.r),
            daddr: addr(self.r),
            ports: ported.then(|| (self.r.pick(&PORTS), self.r.pick(&PORTS))),
            icmp: (matches!(l4, 1 | 58) && !fragment).then(|| {
                if v6 {
                    (self.r.pick(&[128u8, 129, 135, 131]), 0)
                } else {
                    (self.r.pick(&[8u8, 0, 3]), 0)
                }
            }),
            tcp_flags: (l4 == 6 && !fragment)
                .then(|| self.r.pick(&[0x02u8, 0x12, 0x10, 0x18, 0x04])),
            mark: self.r.pick(&MARKS),
            ct_state: "new",
            fragment,
            dscp: self.r.pick(&[0u8, 8, 46, 34]),
            iif: None,
        }
    }
}

fn generate(r: &mut Rng) -> Case {
    let mut g = Gen {
        r,
        th: false,
        l4proto_or_th: false,
    };
    let ruleset = g.ruleset();
    let packet = g.packet();
    Case {
        ruleset,
        packet,
        ttl: 64,
    }
}

/// The packet as a point of header space (the fields no generated rule
/// reads are left free).
fn cube(p: &Packet, ttl: u8) -> Cube {
    let mut c = Cube::any()
        .with(Field::EtherType, &one(u128::from(p.ether_type)))
        .with(Field::Iif, &one(0))
        .with(Field::Mark, &one(u128::from(p.mark)));
    if !matches!(p.ether_type, 0x0800 | 0x86dd) {
        return c;
    }
    c = c
        .with(Field::L4, &one(u128::from(p.l4)))
        .with(Field::Saddr, &one(addr_value(p.saddr)))
        .with(Field::Daddr, &one(addr_value(p.daddr)))
        .with(Field::Frag, &one(u128::from(p.fragment)))
        .with(Field::Dscp, &one(u128::from(p.dscp)))
        .with(Field::Ttl, &one(u128::from(ttl)));
    if p.ether_type == 0x86dd {
        let next = if p.fragment { 44 } else { p.l4 };
        c = c.with(Field::NextHdr, &one(u128::from(next)));
    }
    if let Some((s, d)) = p.ports {
        c = c
            .with(Field::Sport, &one(u128::from(s)))
            .with(Field::Dport, &one(u128::from(d)));
    }
    if let Some((t, code)) = p.icmp {
        c = c
            .with(Field::IcmpType, &one(u128::from(t)))
            .with(Field::IcmpCode, &one(u128::from(code)));
    }
    if let Some(f) = p.tcp_flags {
        c = c.with(Field::TcpFlags, &one(u128::from(f)));
    }
    c
}

/// The throwaway namespace: eth0 and its veth peer p0, both inside it;
/// routes to every generated destination through a neighbour that needs no
/// resolution.
struct Kernel(Netns, #[allow(dead_code)] netns::RunLock);

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = netns::remove(self.0.name(), self.0.inode().ok());
    }
}

fn ip(ns: &Netns, args: &str) {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(args.split_whitespace());
    ns.command(&mut cmd).unwrap();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kernel() -> Kernel {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    let id = new_run_id();
    let lock = netns::RunLock::acquire(&id).unwrap();
    let ns = Netns::create(&format!("lh-{id}-pk")).unwrap();
    let k = Kernel(ns, lock);
    let ns = &k.0;
    ip(ns, "link add eth0 type veth peer name p0");
    ns.sysctl("net/ipv6/conf/p0/disable_ipv6", "1").unwrap();
    ns.sysctl("net/ipv6/conf/eth0/accept_ra", "0").unwrap();
    ip(ns, "link set eth0 address 02:00:00:00:99:01");
    ip(ns, "link set p0 address 02:00:00:00:99:02");
    ip(ns, "addr add 10.99.0.1/24 dev eth0");
    ip(ns, "addr add fd99::1/64 dev eth0 nodad");
    ip(ns, "link set eth0 up");
    ip(ns, "link set p0 up");
    ip(ns, "route add default via 10.99.0.2 dev eth0");
    ip(ns, "-6 route add default via fd99::2 dev eth0");
    ip(
        ns,
        "neigh replace 10.99.0.2 lladdr 02:00:00:00:99:02 dev eth0 nud permanent",
    );
    ip(
        ns,
        "-6 neigh replace fd99::2 lladdr 02:00:00:00:99:02 dev eth0 nud permanent",
    );
    k
}

fn nft_load(ns: &Netns, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut cmd = std::process::Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    ns.command(&mut cmd).unwrap();
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("flush ruleset\n{text}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// An AF_PACKET socket on p0 (frames that eth0 put on the wire): the
/// capture's own.
fn listen_p0() -> socket2::Socket {
    socket2::Socket::from(leakhound::capture::open_packet_socket("p0").unwrap())
}

/// Sends the case's packet, then the sentinel; true when the packet was
/// on p0 before the sentinel. Runs on a thread inside the namespace,
/// pinned to one CPU.
fn kernel_says(p: &Packet, marker: &[u8], sentinel: &[u8]) -> Result<bool, String> {
    let sock = listen_p0();
    // Drain what is queued from before.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    // The kernel refuses some writes outright (a netdev egress drop
    // answers a raw frame with ENOBUFS): not on the wire either.
    let _ = wire::write(p, "eth0", 1, marker);
    let s = Packet {
        path: Path::Output,
        ether_type: 0x0800,
        l4: 17,
        saddr: "10.99.0.1".parse().unwrap(),
        daddr: "192.0.2.1".parse().unwrap(),
        ports: Some((9, 9)),
        icmp: None,
        tcp_flags: None,
        mark: SENTINEL_MARK,
        ct_state: "new",
        fragment: false,
        dscp: 0,
        iif: None,
    };
    wire::write(&s, "eth0", 2, sentinel).map_err(|e| format!("the sentinel: {e}"))?;
    let mut seen = false;
    let deadline = Instant::now() + Duration::from_secs(2);
    let got = leakhound::rawsock::recv_until(&sock, deadline, |f| {
        if f.windows(marker.len()).any(|w| w == marker) {
            seen = true;
        }
        f.windows(sentinel.len()).any(|w| w == sentinel)
    })
    .map_err(|e| e.to_string())?;
    if !got {
        return Err("the sentinel never reached p0".into());
    }
    Ok(seen)
}

#[test]
fn the_model_agrees_with_the_kernel_on_random_rulesets_and_packets() {
    let cases: usize = std::env::var("LEAKHOUND_PROVE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("LEAKHOUND_PROVE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("prove vs kernel: {cases} cases, LEAKHOUND_PROVE_SEED={seed}");
    let k = kernel();
    let ns = &k.0;
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut disagreements = Vec::new();
    let mut left = 0usize;
    for i in 0..cases {
        let case = generate(&mut rng);
        if let Err(e) = nft_load(ns, &case.ruleset) {
            panic!(
                "case {i}: nft refused the generated ruleset: {e}\n{}",
                case.ruleset
            );
        }
        let state = leakhound::prove::read_live(ns, "eth0")
            .unwrap_or_else(|e| panic!("case {i}: reading it back: {e}\n{}", case.ruleset));
        let model = leakhound_prove::survivors(
            &state.ruleset,
            &state.links,
            case.packet.path,
            vec![cube(&case.packet, case.ttl)],
        );
        let model = match model {
            Ok(s) => !s.is_empty(),
            Err(c) => panic!(
                "case {i}: the model cannot prove a generated ruleset: {c}\n{}",
                case.ruleset
            ),
        };
        let marker = format!("lhpk{i:08}{seed:016x}").into_bytes();
        let sentinel = format!("lhsn{i:08}{seed:016x}").into_bytes();
        let p = case.packet.clone();
        let kernel = ns
            .run(move || {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &{
                    let mut set = nix::sched::CpuSet::new();
                    set.set(0).unwrap();
                    set
                })
                .unwrap();
                kernel_says(&p, &marker, &sentinel)
            })
            .unwrap()
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        left += usize::from(kernel);
        if model != kernel {
            disagreements.push(format!(
                "case {i}: model {} the kernel {}: {}\n{}",
                if model { "lets out" } else { "stops" },
                if kernel { "lets out" } else { "stops" },
                case.packet,
                case.ruleset
            ));
        }
    }
    println!(
        "prove vs kernel: {cases} cases in {:.1} s, {left} packets left, {} stopped, {} disagreements",
        started.elapsed().as_secs_f64(),
        cases - left,
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s) (seed {seed}):\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Both outcomes were met: a generator that only ever drops (or only
    // lets out) would agree and prove nothing.
    if cases >= 50 {
        assert!(
            left > cases / 10 && cases - left > cases / 10,
            "{left} of {cases} left"
        );
    }
}
