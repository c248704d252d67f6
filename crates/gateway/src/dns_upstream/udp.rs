//! Plain DNS upstream: [`LANES`] marked UDP sockets used in turn, each with
//! its reader task and its waiting queries ([`Pending`]), many in flight
//! at once. A socket is replaced (a new one, a new random port) after
//! [`QUERIES_PER_SOCKET`] queries or [`SOCKET_LIFETIME`]; the old one
//! lives until its last waiting query is answered or given up. Sockets are
//! not connected: the kernel picks the source address per packet, so a
//! socket made while the tunnel was down still goes through it once it is
//! up; the reader takes answers only from the configured servers. A
//! truncated answer is asked again over TCP ([`exchange_tcp`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::pending::{Pending, Taken, response_question};
use super::question::Question;
use super::transport::{UPSTREAM_MARK, UpstreamError, connect_tcp, random_id};

/// UDP sockets in use at once.
pub const LANES: usize = 4;
/// Queries sent on one socket before it is replaced.
pub const QUERIES_PER_SOCKET: u32 = 256;
/// Age after which a socket is replaced.
pub const SOCKET_LIFETIME: Duration = Duration::from_secs(5);
/// Queries waiting on one socket, at most.
const MAX_WAITING: usize = 1024;
/// The largest answer read (the queries offer 1232 bytes).
const RECV_BUFFER: usize = 4096;

/// One socket and the queries waiting on it.
struct Lane {
    socket: tokio::net::UdpSocket,
    v6: bool,
    pending: Mutex<Pending<oneshot::Sender<Vec<u8>>>>,
    sent: AtomicU32,
    born: Instant,
    /// No new query goes to it; its reader ends once nobody waits.
    retired: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Lane {
    fn open(v6: bool) -> std::io::Result<Lane> {
        let domain = if v6 {
            socket2::Domain::IPV6
        } else {
            socket2::Domain::IPV4
        };
        let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        s.set_mark(UPSTREAM_MARK)?;
        s.set_nonblocking(true)?;
        // Port 0: the kernel draws a random free port.
        let any: SocketAddr = if v6 {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        s.bind(&any.into())?;
        Ok(Lane {
            socket: tokio::net::UdpSocket::from_std(s.into())?,
            v6,
            pending: Mutex::new(Pending::new(MAX_WAITING)),
            sent: AtomicU32::new(0),
            born: Instant::now(),
            retired: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending<oneshot::Sender<Vec<u8>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one more query, unless it is spent (or of the other family).
    fn take_one(&self, v6: bool, now: Instant) -> bool {
        v6 == self.v6
            && now.duration_since(self.born) < SOCKET_LIFETIME
            && self.sent.fetch_add(1, Ordering::Relaxed) < QUERIES_PER_SOCKET
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn done(&self) -> bool {
        self.retired.load(Ordering::Acquire) && self.pending().is_empty()
    }
}

/// Reads answers until the lane is retired and nobody waits on it.
async fn read(lane: Arc<Lane>, servers: Arc<[SocketAddr]>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        if lane.done() {
            return;
        }
        let got = tokio::select! {
            r = lane.socket.recv_from(&mut buf) => r,
            _ = lane.wake.notified() => continue,
        };
        match got {
            Ok((n, from)) => {
                if !servers.contains(&from) {
                    tracing::debug!(
                        "DNS upstream: a datagram from {from}, not an upstream: dropped"
                    );
                    continue;
                }
                let taken = lane.pending().take(&buf[..n], Some(from));
                match taken {
                    Taken::Answer(tx) => {
                        let _ = tx.send(buf[..n].to_vec());
                    }
                    Taken::Unknown => tracing::debug!(
                        "DNS upstream: an answer from {from} nobody waits for (late?)"
                    ),
                    Taken::Mismatch => tracing::debug!(
                        "DNS upstream: an answer from {from} to another question: dropped"
                    ),
                    Taken::NotAResponse => {
                        tracing::debug!("DNS upstream: not a DNS response from {from}")
                    }
                }
            }
            Err(e) => {
                // Waiting queries are failed (asked again elsewhere).
                tracing::debug!("DNS upstream: receiving: {e}: the socket is replaced");
                lane.retire();
                lane.pending().drain().for_each(drop);
                return;
            }
        }
    }
}

/// A query waiting on a lane: given up when dropped (answered, timed out,
/// or its asker gone).
struct Waiting<'a> {
    lane: &'a Lane,
    id: u16,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.lane.pending().remove(self.id);
        if self.lane.done() {
            self.lane.wake.notify_one();
        }
    }
}

/// The plain upstream's sockets.
pub struct Udp {
    servers: Arc<[SocketAddr]>,
    slots: [Mutex<Option<Arc<Lane>>>; LANES],
    next: AtomicUsize,
}

impl Udp {
    pub fn new(servers: Arc<[SocketAddr]>) -> Udp {
        Udp {
            servers,
            slots: Default::default(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next socket in turn, a new one in its place if it is spent.
    fn lane(&self, v6: bool) -> std::io::Result<Arc<Lane>> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % LANES];
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = slot.as_ref()
            && l.take_one(v6, Instant::now())
        {
            return Ok(l.clone());
        }
        let lane = Arc::new(Lane::open(v6)?);
        lane.sent.store(1, Ordering::Relaxed);
        tokio::spawn(read(lane.clone(), self.servers.clone()));
        if let Some(old) = slot.replace(lane.clone()) {
            old.retire();
        }
        Ok(lane)
    }

    /// Sends `q` to `server` and waits for its answer (the caller bounds
    /// the wait).
    pub async fn exchange(
        &self,
        server: SocketAddr,
        q: &Question,
    ) -> Result<Vec<u8>, UpstreamError> {
        let lane = self
            .lane(server.is_ipv6())
            .map_err(|source| UpstreamError::Io {
                server,
                what: "opening a UDP socket",
                source,
            })?;
        let (tx, rx) = oneshot::channel();
        let id = lane
            .pending()
            .insert(q.clone(), Some(server), tx, random_id)
            .ok_or(UpstreamError::Busy { server })?;
        let _waiting = Waiting { lane: &lane, id };
        lane.socket
            .send_to(&q.query(id), server)
            .await
            .map_err(|source| UpstreamError::Io {
                server,
                what: "sending",
                source,
            })?;
        rx.await.map_err(|_| UpstreamError::Closed { server })
    }
}

impl Drop for Udp {
    fn drop(&mut self) {
        for s in &self.slots {
            if let Some(l) = s.lock().unwrap_or_else(|p| p.into_inner()).take() {
                l.retire();
            }
        }
    }
}

/// `q` to `server` over a TCP connection of its own (after a truncated UDP
/// answer).
pub async fn exchange_tcp(server: SocketAddr, q: &Question) -> Result<Vec<u8>, UpstreamError> {
    let io = |what| {
        move |source| UpstreamError::Io {
            server,
            what,
            source,
        }
    };
    let mut s = connect_tcp(server).await?;
    let id = random_id();
    s.write_all(&q.tcp_frame(id))
        .await
        .map_err(io("sending over TCP"))?;
    let len = s.read_u16().await.map_err(io("reading over TCP"))?;
    let mut msg = vec![0u8; usize::from(len)];
    s.read_exact(&mut msg)
        .await
        .map_err(io("reading over TCP"))?;
    match response_question(&msg) {
        Some((got, raw)) if got == id && q.matches(raw) => Ok(msg),
        _ => Err(UpstreamError::WrongAnswer { server }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_upstream::testing::q;
    use hickory_proto::op::Message;

    /// A server on loopback answering every query, holding the answers
    /// until `hold` queries came and then sending them last first;
    /// records the source ports.
    async fn server(hold: usize) -> (SocketAddr, Arc<Mutex<Vec<u16>>>) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let ports = Arc::new(Mutex::new(Vec::new()));
        let seen = ports.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut held = Vec::new();
            loop {
                let (n, peer) = sock.recv_from(&mut buf).await.unwrap();
                seen.lock().unwrap().push(peer.port());
                held.push((crate::dns_upstream::testing::answer(&buf[..n]), peer));
                if held.len() >= hold {
                    while let Some((b, p)) = held.pop() {
                        sock.send_to(&b, p).await.unwrap();
                    }
                }
            }
        });
        (addr, ports)
    }

    #[tokio::test]
    async fn answers_out_of_order_reach_their_own_askers() {
        // One more query than sockets: the first and the last share one,
        // and their answers come last first.
        let (addr, _) = server(LANES + 1).await;
        let udp = Udp::new(vec![addr].into());
        let names: Vec<String> = (0..=LANES).map(|i| format!("n{i}.lab.")).collect();
        let questions: Vec<Question> = names.iter().map(|n| q(n)).collect();
        let answers =
            futures::future::join_all(questions.iter().map(|q| udp.exchange(addr, q))).await;
        for (bytes, name) in answers.into_iter().zip(&names) {
            let m = Message::from_vec(&bytes.unwrap()).unwrap();
            assert_eq!(&m.queries[0].name().to_ascii(), name);
        }
    }

    #[tokio::test]
    async fn sockets_are_used_in_turn_and_replaced_once_spent() {
        let (addr, ports) = server(1).await;
        let udp = Udp::new(vec![addr].into());
        let n = LANES * QUERIES_PER_SOCKET as usize + LANES;
        for i in 0..n {
            udp.exchange(addr, &q(&format!("n{i}.lab."))).await.unwrap();
        }
        let ports = ports.lock().unwrap().clone();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(ports.len(), n);
        assert_eq!(distinct.len(), 2 * LANES, "each socket replaced once");
        // In turn: the first LANES queries each on a socket of its own.
        let first: std::collections::HashSet<u16> = ports[..LANES].iter().copied().collect();
        assert_eq!(first.len(), LANES);
    }

    #[tokio::test]
    async fn an_answer_from_another_address_is_not_taken() {
        let (addr, _) = server(1).await;
        // The answers come from `addr`, but only 127.0.0.1:1 is asked.
        let udp = Udp::new(vec!["127.0.0.1:1".parse().unwrap()].into());
        let wrong = udp.lane(false).unwrap();
        let (tx, mut rx) = oneshot::channel();
        let id = wrong
            .pending()
            .insert(q("a.lab."), Some(addr), tx, || 7)
            .unwrap();
        wrong
            .socket
            .send_to(&q("a.lab.").query(id), addr)
            .await
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut rx).await;
        assert!(
            waited.is_err(),
            "taken from a server that was not configured"
        );
    }

    /// (In real time: tokio's paused time needs its test-util feature,
    /// which in a dev-dependency would change tokio for the whole
    /// workspace's test build.)
    #[tokio::test]
    async fn a_silent_server_times_out_and_its_waiter_is_forgotten() {
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let udp = Udp::new(vec![addr].into());
        let r = tokio::time::timeout(Duration::from_millis(200), udp.exchange(addr, &q("a.lab.")))
            .await;
        assert!(r.is_err(), "no answer: the caller's timeout ends it");
        let lanes: Vec<Arc<Lane>> = udp
            .slots
            .iter()
            .filter_map(|s| s.lock().unwrap().clone())
            .collect();
        assert_eq!(lanes.len(), 1);
        assert!(
            lanes[0].pending().is_empty(),
            "the timed-out query left nothing waiting"
        );
    }
}
