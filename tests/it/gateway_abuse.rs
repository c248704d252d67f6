//! The gateway holds under abuse: a client on the admin LAN, allowed to
//! reach the control server (port 8000 opened to it), keeps hundreds of
//! half-open and slowly sent connections to it. Meanwhile the gateway's
//! resolver answers fresh names through the tunnel, its health server says
//! healthy, traffic goes through the tunnel, and the gateway's open file
//! descriptors stay within the control server's connection cap; a slowly
//! sent request head is cut off at the 5 s header timeout, and the control
//! server answers again once the flood stops. Needs root.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::UpLab;
use leakhound::lab::netns::Netns;

const CONTROL: &str = "172.21.0.2:8000";
/// What the attacker keeps open (well over the cap of 64).
const FLOOD: usize = 300;

fn control() -> SocketAddr {
    CONTROL.parse().unwrap()
}

/// Polls `what` (at 50 ms) until it gives Some, for at most `limit`.
fn within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.0 GET from inside `ns` (a socket made there): status line
/// and body, or why not.
fn get(ns: &Netns, addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = ns
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
        .unwrap()
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// An A query for `name` to the gateway's resolver from inside its
/// namespace: the answer's addresses, or why none.
fn resolve(gw: &Netns, name: &str) -> Result<Vec<std::net::IpAddr>, String> {
    let (id, q) = leakhound::model::dns_query::a_query(name).map_err(|e| e.to_string())?;
    let sock = gw.run(|| UdpSocket::bind("127.0.0.1:0")).unwrap().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(&q, "127.0.0.1:53")
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).map_err(|e| format!("no answer: {e}"))?;
    let m = hickory_proto::op::Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
    if m.metadata.id != id || m.metadata.response_code != hickory_proto::op::ResponseCode::NoError {
        return Err(format!("answer: {:?}", m.metadata.response_code));
    }
    Ok(m.answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(a.0.into()),
            _ => None,
        })
        .collect())
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn slow_and_half_open_connections_to_the_control_server_leave_dns_health_and_the_tunnel_alone() {
    common::require_root();
    let lab = UpLab::up_with(&[format!(
        "FIREWALL_INPUT_SUBNET_PORTS={}",
        leakhound::profile::SEED_INPUT_SUBNET_PORTS.replace("6789;", "6789,8000;")
    )]);
    let gw = Netns::open(lab.gw()).unwrap();
    let lan = Netns::open(&lab.state.namespaces["lan-admin"]).unwrap();
    let pid = lab.state.gateway_pid.expect("the lab's gateway runs");
    let health: SocketAddr = "127.0.0.1:9999".parse().unwrap();

    // Ready: healthy, and the control server answers the LAN (401 without
    // credentials: it is there, and port 8000 is open to the admin LAN).
    within(Duration::from_secs(30), "healthy", || {
        get(&gw, health, "/").ok().filter(|r| r.contains(" 200 "))
    });
    let refused = get(&lan, control(), "/v1/publicip/ip").unwrap();
    assert!(refused.starts_with("HTTP/1.0 401"), "{refused}");
    let before = open_fds(pid);

    // A request head sent slowly is cut off at the header timeout: not
    // before 5 s, and not much after.
    let mut slow = lan.run(|| TcpStream::connect(control())).unwrap().unwrap();
    let t = Instant::now();
    slow.write_all(b"GET /v1/publicip/ip HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    let took = t.elapsed();
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(10),
        "the slow head was cut off after {took:?}"
    );

    // The flood: FLOOD connections kept open, a third of them sending a
    // head byte by byte; every one the gateway closes is opened again.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (stop, opened) = (stop.clone(), opened.clone());
        lan.spawn(move || {
            let mut conns: Vec<Option<(TcpStream, usize)>> = (0..FLOOD).map(|_| None).collect();
            let head = b"GET /v1/publicip/ip HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            while !stop.load(Ordering::SeqCst) {
                for (i, c) in conns.iter_mut().enumerate() {
                    if c.is_none() {
                        if let Ok(s) =
                            TcpStream::connect_timeout(&control(), Duration::from_millis(500))
                        {
                            s.set_nonblocking(true).unwrap();
                            opened.fetch_add(1, Ordering::SeqCst);
                            *c = Some((s, 0));
                        }
                        continue;
                    }
                    let (s, sent) = c.as_mut().unwrap();
                    // Closed by the gateway (EOF or reset): open another.
                    let mut b = [0u8; 64];
                    match s.read(&mut b) {
                        Ok(0) => {
                            *c = None;
                            continue;
                        }
                        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                            *c = None;
                            continue;
                        }
                        _ => {}
                    }
                    if i % 3 == 0 {
                        let byte = head.get(*sent).copied().unwrap_or(b'a');
                        if s.write(&[byte]).is_ok() {
                            *sent += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            conns.iter().flatten().count()
        })
        .unwrap()
    };
    within(Duration::from_secs(10), "the flood is on", || {
        (opened.load(Ordering::SeqCst) >= FLOOD).then_some(())
    });

    // Under it, for a while: fresh names resolve through the tunnel, health
    // says healthy, whoami sees the VPN exit, descriptors stay bounded.
    let t = Instant::now();
    let mut rounds = 0;
    let mut most_fds = 0;
    while t.elapsed() < Duration::from_secs(8) {
        let name = format!("abuse-{rounds}-{}.probe.lab.", std::process::id());
        let ips = resolve(&gw, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ips, ["192.0.2.80".parse::<std::net::IpAddr>().unwrap()]);
        let h = get(&gw, health, "/").unwrap();
        assert!(h.contains(" 200 ") && h.contains("healthy"), "{h}");
        let who = get(&gw, "192.0.2.80:80".parse().unwrap(), "/").unwrap();
        assert!(who.contains("203.0.113.77"), "{who}");
        most_fds = most_fds.max(open_fds(pid));
        rounds += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let still_open = attacker.join().unwrap().unwrap();
    let opened = opened.load(Ordering::SeqCst);
    eprintln!(
        "flood: {opened} connections opened, {still_open} open at the end; {rounds} rounds of checks; gateway fds {before} before, at most {most_fds} during"
    );
    // More were opened than the cap, and the gateway closed the excess
    // (else the flood would never have had to reopen any).
    assert!(opened > FLOOD, "the gateway closed none");
    assert!(
        most_fds <= before + 64 + 16,
        "the gateway's descriptors grew from {before} to {most_fds}"
    );
    assert!(rounds >= 3, "only {rounds} rounds of checks in 8 s");

    // Once the flood has stopped, the control server answers again.
    within(
        Duration::from_secs(10),
        "the control server answers",
        || {
            get(&lan, control(), "/v1/publicip/ip")
                .ok()
                .filter(|r| r.starts_with("HTTP/1.0 401"))
        },
    );
}
