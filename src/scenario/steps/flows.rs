//! Long-lived flows (Gluetun issue #2621): connections made through the
//! tunnel and kept busy through a stop or a restart. `flows-start` opens a
//! TCP connection to whoami (HTTP/1.1 keep-alive, one request per round)
//! and a connected UDP socket to the echo service, IPv4 and IPv6, and
//! waits for each one's first answer; a task then writes to each every
//! 5 ms until `flows-stop`. A connected socket keeps the tunnel's source
//! address, so a kill switch that accepts "established" traffic on any
//! interface lets these flows out on the underlay once the tunnel's routes
//! are gone: the wires judge that, as every leak.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::report::{StepLog, StepReport, StepResult, lab_err};
use crate::lab::netns::Netns;
use crate::model::topology::addr;
use crate::probe;
use crate::scenario::runner::{RunState, Runner};

/// How long each flow may take to answer its first request.
const FIRST_ANSWER: Duration = Duration::from_secs(5);
/// The pace of the flows' rounds.
const ROUND: Duration = Duration::from_millis(5);
/// What a TCP flow holds unsent at most (its peer gone, the kernel's send
/// buffer full): beyond this a round writes nothing more.
const MAX_PENDING: usize = 64 * 1024;

/// The flows in progress; dropped, they stop.
pub struct Flows {
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<Vec<Tally>>>,
    rounds: tokio::sync::watch::Receiver<u64>,
}

impl Drop for Flows {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Flows {
    /// Stops the flows and returns what each did.
    pub async fn stop(mut self) -> Result<Vec<Tally>, tokio::task::JoinError> {
        self.cancel.cancel();
        match self.task.take() {
            Some(task) => task.await,
            None => Ok(Vec::new()),
        }
    }
}

/// What one flow sent and got back.
#[derive(Debug, Clone)]
pub struct Tally {
    pub name: String,
    pub sent: u64,
    pub answers: u64,
}

enum Sock {
    Tcp {
        stream: TcpStream,
        /// Bytes not yet taken by the kernel, and the length of each
        /// request in them, oldest first.
        pending: Vec<u8>,
        queued: std::collections::VecDeque<usize>,
        seen: Vec<u8>,
    },
    Udp(UdpSocket),
}

struct Flow {
    tally: Tally,
    sock: Sock,
    nonce: String,
}

impl Flow {
    fn request(&self, n: u64) -> Vec<u8> {
        match self.sock {
            Sock::Tcp { .. } => format!(
                "GET /leakhound/{}-flow-{n} HTTP/1.1\r\nHost: whoami.lab\r\n\r\n",
                self.nonce
            )
            .into_bytes(),
            Sock::Udp(_) => format!("{} flow {n}", self.nonce).into_bytes(),
        }
    }

    /// Writes round `n`'s request (what the kernel takes of it; the rest
    /// waits for the next round).
    fn send(&mut self, n: u64) {
        let req = self.request(n);
        match &mut self.sock {
            Sock::Tcp {
                stream,
                pending,
                queued,
                ..
            } => {
                if pending.len() < MAX_PENDING {
                    pending.extend_from_slice(&req);
                    queued.push_back(req.len());
                }
                if let Ok(mut k) = stream.try_write(pending) {
                    pending.drain(..k);
                    // Whole requests the kernel took count as sent; a
                    // partial one is shortened.
                    while let Some(front) = queued.front_mut() {
                        if k >= *front {
                            k -= *front;
                            queued.pop_front();
                            self.tally.sent += 1;
                        } else {
                            *front -= k;
                            break;
                        }
                    }
                }
            }
            Sock::Udp(s) => {
                if s.try_send(&req).is_ok() {
                    self.tally.sent += 1;
                }
            }
        }
    }

    /// Reads what has come back and counts the answers; false once the
    /// TCP connection is closed or reset (nothing more will come).
    fn drain(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match &mut self.sock {
            Sock::Tcp { stream, seen, .. } => loop {
                match stream.try_read(&mut buf) {
                    Ok(0) => return false,
                    Ok(k) => {
                        seen.extend_from_slice(&buf[..k]);
                        self.tally.answers += count_responses(seen);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            },
            Sock::Udp(s) => {
                while s.try_recv(&mut buf).is_ok() {
                    self.tally.answers += 1;
                }
                true
            }
        }
    }

    async fn first_answer(&mut self) -> bool {
        tokio::time::timeout(FIRST_ANSWER, async {
            // Ready to write first: a socket just handed to the runtime has
            // no readiness yet, and a try-write would find it "busy".
            let writable = match &self.sock {
                Sock::Tcp { stream, .. } => stream.writable().await,
                Sock::Udp(s) => s.writable().await,
            };
            if writable.is_err() {
                return false;
            }
            self.send(0);
            loop {
                let ready = match &self.sock {
                    Sock::Tcp { stream, .. } => stream.readable().await,
                    Sock::Udp(s) => s.readable().await,
                };
                if ready.is_err() {
                    return false;
                }
                let open = self.drain();
                if self.tally.answers > 0 {
                    return true;
                }
                if !open {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// Counts the HTTP responses that begin in `seen` and keeps only the tail
/// that may hold the start of the next one.
fn count_responses(seen: &mut Vec<u8>) -> u64 {
    const START: &[u8] = b"HTTP/1.1 ";
    let mut n = 0;
    let mut last_end = 0;
    let mut i = 0;
    while i + START.len() <= seen.len() {
        if &seen[i..i + START.len()] == START {
            n += 1;
            i += START.len();
            last_end = i;
        } else {
            i += 1;
        }
    }
    let keep_from = last_end.max(seen.len().saturating_sub(START.len() - 1));
    seen.drain(..keep_from);
    n
}

async fn open(ns: &Netns, name: &str, target: SocketAddr, tcp: bool) -> Option<Flow> {
    let sock = if tcp {
        let socket = probe::tcp_socket_for(ns, target).ok()?;
        let stream = tokio::time::timeout(FIRST_ANSWER, socket.connect(target))
            .await
            .ok()?
            .ok()?;
        Sock::Tcp {
            stream,
            pending: Vec::new(),
            queued: Default::default(),
            seen: Vec::new(),
        }
    } else {
        // Made in the namespace (the probes' own), connected there too: a
        // socket routes in the namespace it was made in.
        let sock = probe::udp_socket_for(ns, target).ok()?;
        sock.connect(target).await.ok()?;
        Sock::Udp(sock)
    };
    let mut flow = Flow {
        tally: Tally {
            name: name.to_string(),
            sent: 0,
            answers: 0,
        },
        sock,
        nonce: probe::nonce(),
    };
    flow.first_answer().await.then_some(flow)
}

impl Runner<'_> {
    /// Opens the flows from `from` and keeps them busy.
    pub(crate) async fn flows_start(&self, st: &mut RunState<'_>, from: &str) -> StepResult {
        let mut log = StepLog::new();
        if st.flows.is_some() {
            return Ok(log.fail_with("flows-start while flows are running", ""));
        }
        let ns = log.harness(self.lab.ns(from))?;
        let ns = log.harness(Netns::open(ns.name()))?;
        let web4 = SocketAddr::new(addr::WHOAMI.into(), 80);
        let web6 = SocketAddr::new(addr::WHOAMI_V6.into(), 80);
        let echo4 = SocketAddr::new(addr::WHOAMI.into(), crate::lab::echo::PORT);
        let echo6 = SocketAddr::new(addr::WHOAMI_V6.into(), crate::lab::echo::PORT);
        // IPv6 flows where the tunnel has an IPv6 address (the variables
        // say so), and those are then required as well.
        let v6 = st
            .env
            .get("WIREGUARD_ADDRESSES")
            .or_else(|| st.env.get("WIREGUARD_ADDRESS"))
            .is_some_and(|a| a.contains(':'));
        let mut wanted = vec![
            ("TCP to whoami (IPv4)", web4, true),
            ("UDP to echo (IPv4)", echo4, false),
        ];
        if v6 {
            wanted.push(("TCP to whoami (IPv6)", web6, true));
            wanted.push(("UDP to echo (IPv6)", echo6, false));
        } else {
            log.note("IPv4 only: the tunnel has no IPv6 address (WIREGUARD_ADDRESSES)");
        }
        // Made at once: a family the tunnel does not carry costs one
        // timeout, not one per flow.
        let opened = futures::future::join_all(wanted.iter().map(|&(name, target, tcp)| {
            let ns = &ns;
            async move { open(ns, name, target, tcp).await }
        }))
        .await;
        let mut flows = Vec::new();
        let mut missing = Vec::new();
        for ((name, target, _), flow) in wanted.into_iter().zip(opened) {
            match flow {
                Some(f) => {
                    log.note(format!("{name}: {target}, answered"));
                    flows.push(f);
                }
                None => missing.push(format!("{name} ({target})")),
            }
        }
        if flows.is_empty() {
            return Ok(log.fail_with(
                format!("no answer within {FIRST_ANSWER:?}: {}", missing.join(", ")),
                "",
            ));
        }
        let cancel = CancellationToken::new();
        let (tx, rounds) = tokio::sync::watch::channel(0);
        let c = cancel.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ROUND);
            // A stalled runtime does not make up the rounds in a burst: a
            // round stays 5 ms of the flows' life.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = c.cancelled() => break,
                    _ = tick.tick() => {}
                }
                n += 1;
                for f in &mut flows {
                    let _ = f.drain();
                    f.send(n);
                }
                tx.send_replace(n);
            }
            for f in &mut flows {
                let _ = f.drain();
            }
            flows.into_iter().map(Flow::close).collect()
        });
        st.flows = Some(Flows {
            cancel,
            task: Some(task),
            rounds,
        });
        log.note(format!(
            "the flows are kept busy every {ROUND:?} until flows-stop"
        ));
        if !missing.is_empty() {
            // The flows that answered go on (the scenario still tests
            // them); the step says which did not.
            return Ok(log.fail_with(
                format!(
                    "no answer within {FIRST_ANSWER:?}: {} (the others go on)",
                    missing.join(", ")
                ),
                "",
            ));
        }
        Ok(log.pass())
    }

    /// Waits until the flows have had `rounds` more rounds.
    pub(crate) async fn flows_wait(&self, st: &mut RunState<'_>, rounds: u64) -> StepResult {
        let mut log = StepLog::new();
        let Some(flows) = st.flows.as_mut() else {
            return Ok(log.fail_with("flows-wait without flows-start", ""));
        };
        let from = *flows.rounds.borrow();
        match flows.rounds.wait_for(|n| *n >= from + rounds).await {
            Ok(_) => {
                log.note(format!("the flows had {rounds} more rounds"));
                Ok(log.pass())
            }
            // The task is the harness's: its end is not the gateway's doing.
            Err(_) => Err(log.error(lab_err("flows", "the flows' task ended before flows-stop"))),
        }
    }

    /// Stops the flows and says what each sent and got back.
    pub(crate) async fn flows_stop(&self, st: &mut RunState<'_>) -> StepReport {
        let mut log = StepLog::new();
        let Some(flows) = st.flows.take() else {
            return log.fail_with("flows-stop without flows-start", "");
        };
        match flows.stop().await {
            Ok(tallies) => {
                for t in tallies {
                    log.note(format!(
                        "{}: {} requests written, {} answers",
                        t.name, t.sent, t.answers
                    ));
                }
                log.note("every frame they left is judged with the capture when the scenario ends");
                log.pass()
            }
            Err(e) => log.fail_with(format!("the flows' task failed: {e}"), ""),
        }
    }
}

impl Flow {
    /// Ends the flow: a TCP connection is reset (linger 0), so nothing of
    /// it stays in the kernel retransmitting from the tunnel's address
    /// into the next steps or the teardown.
    fn close(self) -> Tally {
        if let Sock::Tcp { stream, .. } = &self.sock {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
        self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_across_reads() {
        let mut seen = b"HTTP/1.1 200 OK\r\n\r\nabcHTTP/1".to_vec();
        assert_eq!(count_responses(&mut seen), 1);
        seen.extend_from_slice(b".1 200 OK\r\n\r\nHTTP/1.1 404 x");
        assert_eq!(count_responses(&mut seen), 2);
        assert_eq!(count_responses(&mut seen), 0);
    }
}
