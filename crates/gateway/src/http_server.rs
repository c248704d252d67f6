//! The serving loop of the gateway's HTTP servers (control and health), with
//! limits, so that a client allowed to reach them cannot exhaust the
//! gateway (its file descriptors are the resolver's and the tunnel's too):
//!
//! * at most [`Limits::max_connections`] connections at once: one more is
//!   accepted and closed at once, unanswered (the client sees the
//!   connection closed; nothing waits in the gateway);
//! * a request's head must arrive within [`Limits::header_timeout`] of the
//!   connection's start or of the previous answer (hyper's
//!   `header_read_timeout`; an idle keep-alive connection counts): else the
//!   connection is closed;
//! * request bodies up to [`Limits::max_body`] bytes
//!   (`http_body_util::Limited`: a route reading a longer one answers 413);
//! * each request answered within [`Limits::request_deadline`] (body read
//!   and handler together): else 408 and the connection closes.
//!
//! HTTP/1.1 only (hyper's connection, the axum router as its service).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What one server allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_body: usize,
    pub request_deadline: Duration,
}

impl Limits {
    /// The control and health servers' limits. The deadline leaves room
    /// for `PUT /v1/vpn/status`, which waits up to 10 s for the tunnel.
    pub const GATEWAY: Limits = Limits {
        header_timeout: Duration::from_secs(5),
        max_connections: 64,
        max_body: 64 * 1024,
        request_deadline: Duration::from_secs(15),
    };
}

/// Serves `app` on `listener` within `limits` until the task is dropped
/// (its connections go with it). `name` names the server in logs.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    app: Router,
    limits: Limits,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    // Said once each time the server becomes full, not per refusal.
    let mut full_said = false;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or memory (or a connection reset
                // before it was accepted): back off, do not spin.
                tracing::warn!("{name}: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full_said {
                tracing::warn!(
                    "{name}: {} connections open: closing new ones unanswered (first: {peer})",
                    limits.max_connections
                );
                full_said = true;
            }
            drop(stream);
            continue;
        };
        full_said = false;
        let app = app.clone();
        connections.spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, app, limits).await {
                tracing::debug!("{name}: connection from {peer}: {e}");
            }
        });
    }
}

/// One HTTP/1.1 connection within `limits`.
async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    limits: Limits,
) -> Result<(), hyper::Error> {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            let req = req
                .map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limits.max_body)));
            let resp = match tokio::time::timeout(limits.request_deadline, app.oneshot(req)).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    let mut r = (
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request took longer than {:?}\n",
                            limits.request_deadline
                        ),
                    )
                        .into_response();
                    r.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    r
                }
            };
            Ok::<_, Infallible>(resp)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, put};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const TEST: Limits = Limits {
        header_timeout: Duration::from_millis(300),
        max_connections: 2,
        max_body: 1024,
        request_deadline: Duration::from_millis(600),
    };

    /// A server on a loopback port: `GET /` answers "ok", `PUT /len` the
    /// length of the body it read.
    async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" })).route(
            "/len",
            put(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let task = tokio::spawn(async move {
            serve("test", listener, app, limits).await.unwrap();
        });
        (addr, task)
    }

    /// Sends `req` on a new connection and reads until the server closes
    /// it (within 5 s): the whole answer, or "" when closed unanswered.
    async fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        read_to_close(&mut s).await
    }

    async fn read_to_close(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_request_head_that_never_completes_is_cut_off_at_the_header_timeout() {
        let (addr, _server) = start(TEST).await;
        // A whole request is answered.
        let ok = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("ok"), "{ok}");
        // Half a head, and nothing at all: closed after the timeout, not
        // before it, unanswered.
        for partial in [&b"GET / HTTP/1.1\r\nHost:"[..], b""] {
            let t = Instant::now();
            let got = exchange(addr, partial).await;
            let took = t.elapsed();
            assert!(!got.contains("200"), "{got}");
            assert!(
                took >= TEST.header_timeout && took < Duration::from_secs(3),
                "closed after {took:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
        let (addr, _server) = start(TEST).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let t = Instant::now();
        let got = read_to_close(&mut s).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert!(t.elapsed() >= TEST.header_timeout, "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_unanswered_until_one_ends() {
        let (addr, _server) = start(Limits {
            header_timeout: Duration::from_secs(30),
            ..TEST
        })
        .await;
        // Two silent connections take both slots (accepted in order).
        let mut held = Vec::new();
        for _ in 0..TEST.max_connections {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        let t = Instant::now();
        let refused = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(refused, "", "a third connection was answered");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{:?}: not closed at once",
            t.elapsed()
        );
        // One of them leaves: its slot is free again once the server has
        // seen it go (asked again until then, for at most 5 s).
        drop(held.pop());
        let t = Instant::now();
        loop {
            let got = exchange(
                addr,
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            if got.starts_with("HTTP/1.1 200") {
                break;
            }
            assert_eq!(got, "");
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the slot never came back"
            );
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_one_within_it_read() {
        let (addr, _server) = start(TEST).await;
        let put = |n: usize| {
            let mut r = format!(
                "PUT /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n"
            )
            .into_bytes();
            r.extend(std::iter::repeat_n(b'a', n));
            r
        };
        let ok = exchange(addr, &put(TEST.max_body)).await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("1024"),
            "{ok}"
        );
        let big = exchange(addr, &put(TEST.max_body + 1)).await;
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        // Chunked, with no length announced: the same.
        let mut chunked =
            b"PUT /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for _ in 0..3 {
            chunked.extend(format!("{:x}\r\n", 512).into_bytes());
            chunked.extend([b'a'; 512]);
            chunked.extend(b"\r\n");
        }
        chunked.extend(b"0\r\n\r\n");
        let big = exchange(addr, &chunked).await;
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
    }

    #[tokio::test]
    async fn a_body_sent_too_slowly_gets_408_at_the_deadline() {
        let (addr, _server) = start(TEST).await;
        let t = Instant::now();
        // Ten bytes announced, five sent, then nothing.
        let got = exchange(
            addr,
            b"PUT /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\naaaaa",
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(t.elapsed() >= TEST.request_deadline, "{:?}", t.elapsed());
    }
}
