//! The gateway's resolver against a real socket stack, in a scratch
//! namespace (root): its UDP front loop with the cache, the policy applied
//! before the cache, rebinding answers removed and answers holding a
//! blocked address refused before anything is kept; a truncated upstream
//! answer asked again over TCP; DNS over TLS pipelined on one kept
//! connection, opened again when the server closes it.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
use leakhound::gateway::dns_policy::DnsPolicy;
use leakhound::gateway::{dns, dns_upstream};
use leakhound::lab::netns::{self, Netns};
use leakhound::lab::new_run_id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A scratch namespace and its run's claim (every pin of an lh- name is
/// made under a held run lock, so no concurrent reaper takes it).
struct Scratch(Netns, #[allow(dead_code)] netns::RunLock);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::remove(self.0.name(), self.0.inode().ok());
    }
}

const UPSTREAM: &str = "127.0.0.2";

/// The fake upstream's answer to the query `bytes`: `private.lab` has a
/// private and a public address, `blocked.lab` 192.0.2.66 and 192.0.2.7,
/// every other name 192.0.2.7; TTL 60. Over UDP, `big.lab` is truncated
/// (TC, no records).
fn upstream_answer(bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(bytes).ok()?;
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    let query = q.queries[0].clone();
    let name = query.name().clone();
    let lower = name.to_ascii().to_ascii_lowercase();
    let addrs: Vec<A> = match lower.as_str() {
        "private.lab." => vec![A::new(10, 1, 2, 3), A::new(192, 0, 2, 8)],
        "blocked.lab." => vec![A::new(192, 0, 2, 66), A::new(192, 0, 2, 7)],
        "big.lab." if udp => vec![],
        _ => vec![A::new(192, 0, 2, 7)],
    };
    m.metadata.truncation = udp && lower == "big.lab.";
    m.add_query(query);
    for a in addrs {
        m.add_answer(Record::from_rdata(name.clone(), 60, RData::A(a)));
    }
    if let Some(e) = &q.edns {
        m.set_edns(e.clone());
    }
    m.to_vec().ok()
}

/// A fake upstream on 127.0.0.2:53, UDP and TCP, answering as
/// [`upstream_answer`]. Counts the queries (`count` UDP, `tcp` TCP).
async fn upstream(count: Arc<AtomicUsize>) -> Arc<AtomicUsize> {
    let sock = tokio::net::UdpSocket::bind((UPSTREAM, 53)).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = sock.recv_from(&mut buf).await.unwrap();
            let Some(a) = upstream_answer(&buf[..n], true) else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let _ = sock.send_to(&a, peer).await;
        }
    });
    let tcp = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind((UPSTREAM, 53)).await.unwrap();
    let counted = tcp.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Ok(msg) = read_frame(&mut s).await {
                    let Some(a) = upstream_answer(&msg, false) else {
                        return;
                    };
                    if write_frame(&mut s, &a).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    tcp
}

async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = s.read_u16().await?;
    let mut msg = vec![0u8; usize::from(len)];
    s.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), msg: &[u8]) -> std::io::Result<()> {
    let mut f = (msg.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(msg);
    s.write_all(&f).await?;
    s.flush().await
}

async fn ask(name: &str, id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&m.to_vec().unwrap(), dns::LISTEN)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("the resolver answers within 5 s")
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, id);
    answer
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// Runs `body` on a runtime of its own inside a scratch namespace (its
/// loopback up), removed afterwards.
fn in_scratch<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F + Send) {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    let id = new_run_id();
    let lock = netns::RunLock::acquire(&id).unwrap();
    let guard = Scratch(Netns::create(&format!("lh-{id}-dns")).unwrap(), lock);
    guard
        .0
        .run(|| {
            let st = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .unwrap();
            assert!(st.success());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(body());
        })
        .unwrap();
}

#[test]
fn cached_answers_follow_the_policy_and_keep_the_askers_spelling() {
    in_scratch(|| async {
        let count = Arc::new(AtomicUsize::new(0));
        let tcp = upstream(count.clone()).await;
        let mut policy = DnsPolicy::default();
        policy.blocked.insert("malware.lab");
        policy.doh_names.insert("dns.google");
        policy.blocked_ips = vec!["192.0.2.64/30".parse().unwrap()];
        let up = leakhound::gateway::config::Upstream::Plain(vec![
            format!("{UPSTREAM}:53").parse().unwrap(),
        ]);
        let service = dns::start(&up, 64, policy).await.unwrap();

        let first = ask("Www.Cached.LAB.", 1).await;
        assert_eq!(addrs(&first), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let again = ask("www.CACHED.lab.", 2).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "answered from the cache");
        assert_eq!(addrs(&again), addrs(&first));
        assert_eq!(again.queries[0].name().to_ascii(), "www.CACHED.lab.");
        assert!(again.metadata.recursion_desired && again.metadata.recursion_available);
        assert!(again.answers[0].ttl <= 60 && again.answers[0].ttl >= 59);
        let (hits, _, entries) = service.cache_stats();
        assert_eq!((hits, entries), (1, 1));

        // The policy comes first, on every query.
        let blocked = ask("x.malware.lab.", 3).await;
        assert_eq!(blocked.metadata.response_code, ResponseCode::Refused);
        let doh = ask("dns.google.", 4).await;
        assert_eq!(doh.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(count.load(Ordering::SeqCst), 1, "neither went upstream");

        // Rebinding answers are removed before the answer is kept.
        for id in [5, 6] {
            let p = ask("private.lab.", id).await;
            assert_eq!(addrs(&p), vec!["192.0.2.8".parse::<IpAddr>().unwrap()]);
        }
        assert_eq!(count.load(Ordering::SeqCst), 2);

        // An answer holding a blocked address is refused whole
        // (DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES), and never kept.
        for id in [8, 9] {
            let b = ask("blocked.lab.", id).await;
            assert_eq!(b.metadata.response_code, ResponseCode::Refused);
            assert!(b.answers.is_empty());
        }
        // The second from the upstream client's cache, refused again.
        assert_eq!(count.load(Ordering::SeqCst), 3);

        // Garbage gets FORMERR or nothing, and the loop goes on.
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for bad in [&b"\x00\x07\x01\x00\x00\x01"[..], &[0xffu8; 40][..]] {
            sock.send_to(bad, dns::LISTEN).await.unwrap();
        }
        let third = ask("www.cached.lab.", 7).await;
        assert_eq!(addrs(&third), addrs(&first));
        assert_eq!(count.load(Ordering::SeqCst), 3);

        // A truncated answer is asked again over TCP.
        assert_eq!(tcp.load(Ordering::SeqCst), 0);
        let big = ask("big.lab.", 10).await;
        assert_eq!(addrs(&big), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(tcp.load(Ordering::SeqCst), 1);
        service.shutdown();
    });
}

/// A DNS-over-TLS server on 127.0.0.2:853 (the lab CA's certificate for
/// dns.provider.lab) that closes each connection after answering `per`
/// queries, and on its first connection reads but never answers when
/// `mute_first`; counts the connections.
async fn dot_server(
    tls: &leakhound::lab::tls::LabTls,
    per: usize,
    mute_first: bool,
) -> Arc<AtomicUsize> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config(&[b"dot"]).unwrap());
    let listener = tokio::net::TcpListener::bind((UPSTREAM, 853))
        .await
        .unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                if first && mute_first {
                    while read_frame(&mut s).await.is_ok() {}
                    return;
                }
                for _ in 0..per {
                    let Ok(msg) = read_frame(&mut s).await else {
                        return;
                    };
                    let Some(a) = upstream_answer(&msg, false) else {
                        return;
                    };
                    if write_frame(&mut s, &a).await.is_err() {
                        return;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    conns
}

/// The gateway's resolver with a DoT upstream: [`dot_server`] (`per`,
/// `mute_first`), its CA in a file (kept while the folder lives); the
/// server's connection count.
async fn over_tls(
    per: usize,
    mute_first: bool,
) -> (tempfile::TempDir, Arc<AtomicUsize>, dns::DnsService) {
    let tls = leakhound::lab::tls::LabTls::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let conns = dot_server(&tls, per, mute_first).await;
    let up = leakhound::gateway::config::Upstream::Tls {
        servers: vec![format!("{UPSTREAM}:853").parse().unwrap()],
        server_name: "dns.provider.lab".into(),
        ca_file: Some(ca),
    };
    let service = dns::start(&up, 64, DnsPolicy::default()).await.unwrap();
    (dir, conns, service)
}

#[test]
fn over_tls_queries_share_a_kept_connection_opened_again_when_the_server_closes_it() {
    in_scratch(|| async {
        let (_ca, conns, service) = over_tls(40, false).await;
        // 16 at a time, 96 in all: pipelined on a connection, which the
        // server closes after 40 answers, queries in flight on it or not
        // (those are asked again on a new one).
        for round in 0..6u16 {
            let asks = (0..16u16).map(|i| {
                let id = round * 16 + i;
                async move { ask(&format!("n{id}.tls.lab."), id).await }
            });
            for (i, m) in futures::future::join_all(asks).await.iter().enumerate() {
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "query {i}");
                assert_eq!(addrs(m), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
            }
        }
        let n = conns.load(Ordering::SeqCst);
        assert!(
            (3..=12).contains(&n),
            "{n} connections for 96 queries, 40 per connection"
        );
        service.shutdown();
    });
}

#[test]
fn over_tls_a_connection_that_stays_silent_is_dropped_and_the_query_asked_on_a_new_one() {
    in_scratch(|| async {
        let (_ca, conns, service) = over_tls(100, true).await;
        let started = std::time::Instant::now();
        let m = ask("silent.tls.lab.", 1).await;
        assert_eq!(addrs(&m), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert!(
            started.elapsed() >= dns_upstream::TRY_TIMEOUT,
            "answered after the first try's timeout"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 2, "a second connection");
        let again = ask("again.tls.lab.", 2).await;
        assert_eq!(again.metadata.response_code, ResponseCode::NoError);
        assert_eq!(conns.load(Ordering::SeqCst), 2, "kept");
        service.shutdown();
    });
}
