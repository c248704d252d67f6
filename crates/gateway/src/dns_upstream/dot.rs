//! DNS over TLS upstream (RFC 7858): one kept TLS connection per server,
//! opened on the first query (and again after it fails or the server
//! closes it). Queries are pipelined: each gets a random ID among those
//! waiting on the connection ([`Pending`]), a writer task sends whatever
//! queued up in one write, and a reader task hands each answer to the
//! query with its ID and question, in whatever order they come (RFC 7766
//! 6.2.1.1). When the connection fails, every waiting query fails at once
//! (and is asked again by the caller).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::pending::{Pending, Taken};
use super::question::Question;
use super::transport::{SetupError, TlsClient, UpstreamError, random_id};

/// Queries waiting on one connection, at most.
const MAX_WAITING: usize = 4096;
/// The writer sends at most about this much in one write.
const WRITE_BATCH: usize = 16 * 1024;

/// What the reader, the writer and the askers share.
struct State {
    pending: Pending<oneshot::Sender<Vec<u8>>>,
    /// Failed: no new query, every waiter already failed.
    dead: bool,
}

/// One connection.
struct Conn {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    state: Mutex<State>,
    /// Cancelled when the connection is dropped: the reader stops.
    closed: CancellationToken,
}

impl Conn {
    /// A live connection whose frames go to `frames`, nothing waiting yet.
    fn new(frames: mpsc::UnboundedSender<Vec<u8>>) -> Arc<Conn> {
        Arc::new(Conn {
            frames,
            state: Mutex::new(State {
                pending: Pending::new(MAX_WAITING),
                dead: false,
            }),
            closed: CancellationToken::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks it failed and fails every waiting query.
    fn fail(&self) {
        let mut s = self.state();
        s.dead = true;
        s.pending.drain().for_each(drop);
    }

    fn alive(&self) -> bool {
        !self.state().dead
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// Reads answers until the connection closes, fails, or is dropped.
async fn read(r: ReadHalf<TlsStream<TcpStream>>, conn: Weak<Conn>, closed: CancellationToken) {
    let mut r = tokio::io::BufReader::with_capacity(16 * 1024, r);
    let why = loop {
        let msg = tokio::select! {
            _ = closed.cancelled() => return,
            m = read_frame(&mut r) => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => break e,
        };
        let Some(conn) = conn.upgrade() else { return };
        let taken = conn.state().pending.take(&msg, None);
        match taken {
            Taken::Answer(tx) => {
                let _ = tx.send(msg);
            }
            Taken::Unknown => tracing::debug!("DoT upstream: an answer nobody waits for (late?)"),
            Taken::Mismatch | Taken::NotAResponse => {
                tracing::debug!("DoT upstream: an answer to another question: dropped")
            }
        }
    };
    tracing::debug!("DoT upstream: the connection ended: {why}");
    if let Some(conn) = conn.upgrade() {
        conn.fail();
    }
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = r.read_u16().await?;
    let mut msg = vec![0u8; usize::from(len)];
    r.read_exact(&mut msg).await?;
    Ok(msg)
}

/// Sends the queued queries, as many as are queued in one write.
async fn write(
    mut w: WriteHalf<TlsStream<TcpStream>>,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    conn: Weak<Conn>,
) {
    let mut buf = Vec::with_capacity(4096);
    while let Some(f) = frames.recv().await {
        buf.clear();
        buf.extend_from_slice(&f);
        while buf.len() < WRITE_BATCH
            && let Ok(f) = frames.try_recv()
        {
            buf.extend_from_slice(&f);
        }
        if let Err(e) = async {
            w.write_all(&buf).await?;
            w.flush().await
        }
        .await
        {
            tracing::debug!("DoT upstream: sending: {e}");
            if let Some(c) = conn.upgrade() {
                c.fail();
            }
            return;
        }
    }
}

/// The DoT upstream's connections.
pub struct Dot {
    servers: Vec<SocketAddr>,
    tls: TlsClient,
    conns: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
}

impl Dot {
    /// `tls` checks the servers' certificate for `server_name`.
    pub fn new(
        servers: &[SocketAddr],
        server_name: &str,
        tls: rustls::ClientConfig,
    ) -> Result<Dot, SetupError> {
        Ok(Dot {
            servers: servers.to_vec(),
            tls: TlsClient::new(server_name, tls, b"dot")?,
            conns: servers.iter().map(|_| Default::default()).collect(),
        })
    }

    /// The connection to server `idx`, opened if there is none alive
    /// (one opening at a time; the others wait for it).
    async fn conn(&self, idx: usize) -> Result<Arc<Conn>, UpstreamError> {
        let mut slot = self.conns[idx].lock().await;
        if let Some(c) = slot.as_ref()
            && c.alive()
        {
            return Ok(c.clone());
        }
        *slot = None;
        let server = self.servers[idx];
        let tls = self.tls.connect(server).await?;
        let (r, w) = tokio::io::split(tls);
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Conn::new(tx);
        tokio::spawn(read(r, Arc::downgrade(&conn), conn.closed.clone()));
        tokio::spawn(write(w, rx, Arc::downgrade(&conn)));
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `q` to server `idx` and waits for its answer until
    /// `deadline`; when none came by then, the connection is failed (it
    /// may be dead without a word) and the next query opens a new one.
    pub async fn exchange(
        &self,
        idx: usize,
        q: &Question,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        let server = self.servers[idx];
        let conn = self.conn(idx).await?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = conn.state();
            if s.dead {
                return Err(UpstreamError::Closed { server });
            }
            s.pending
                .insert(q.clone(), None, tx, random_id)
                .ok_or(UpstreamError::Busy { server })?
        };
        let _waiting = Waiting { conn: &conn, id };
        conn.frames
            .send(q.tcp_frame(id))
            .map_err(|_| UpstreamError::Closed { server })?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(answer) => answer.map_err(|_| UpstreamError::Closed { server }),
            Err(_) => {
                tracing::debug!(
                    "DoT upstream {server}: no answer in time: the connection is dropped"
                );
                conn.fail();
                Err(UpstreamError::Timeout { server })
            }
        }
    }
}

/// A query waiting on a connection: given up when dropped.
struct Waiting<'a> {
    conn: &'a Conn,
    id: u16,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.conn.state().pending.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_upstream::testing::{answer, q};
    use hickory_proto::op::Message;

    /// A client configuration (what it trusts does not matter here).
    fn no_roots() -> rustls::ClientConfig {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }

    /// A writer and reader pair standing for one TLS connection: the
    /// bookkeeping without TLS. The server side gets every frame; answers
    /// are fed back by the test.
    #[tokio::test]
    async fn pipelined_answers_in_any_order_reach_their_askers_and_a_failure_fails_the_rest() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let conn = Conn::new(tx);
        let ask = |name: &'static str| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let (tx, rx) = oneshot::channel();
                let id = conn
                    .state()
                    .pending
                    .insert(q(name), None, tx, random_id)
                    .unwrap();
                let _w = Waiting { conn: &conn, id };
                conn.frames.send(q(name).tcp_frame(id)).unwrap();
                rx.await.map(|b| Message::from_vec(&b).unwrap())
            })
        };
        let (a, b, c) = (ask("a.lab."), ask("b.lab."), ask("c.lab."));
        let mut queries = Vec::new();
        for _ in 0..3 {
            let f = rx.recv().await.unwrap();
            assert_eq!(usize::from(u16::from_be_bytes([f[0], f[1]])), f.len() - 2);
            queries.push(f[2..].to_vec());
        }
        // The answers to the second and first, in that order.
        for i in [1, 0] {
            let t = conn.state().pending.take(&answer(&queries[i]), None);
            let Taken::Answer(tx) = t else {
                panic!("not taken")
            };
            tx.send(answer(&queries[i])).unwrap();
        }
        let names = |m: Message| m.queries[0].name().to_ascii();
        assert_eq!(names(b.await.unwrap().unwrap()), "b.lab.");
        assert_eq!(names(a.await.unwrap().unwrap()), "a.lab.");
        conn.fail();
        assert!(
            c.await.unwrap().is_err(),
            "the third fails with the connection"
        );
        assert!(!conn.alive());
    }

    #[test]
    fn a_bad_server_name_is_refused_at_start() {
        let tls = no_roots();
        let servers = ["10.64.0.1:853".parse().unwrap()];
        assert!(Dot::new(&servers, "dns.provider.lab", tls.clone()).is_ok());
        assert!(matches!(
            Dot::new(&servers, "not a name", tls),
            Err(SetupError::ServerName { .. })
        ));
    }
}
