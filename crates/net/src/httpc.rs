//! The one HTTP/1.1 client (hyper): a [`Request`] (method, Host, target,
//! headers, body, body cap, time limit) sent over a TCP stream the caller
//! connects (the probes inside a lab namespace, the gateway through its
//! tunnel (public IP) or to its own health server (`gateway healthcheck`)),
//! answered by a [`Response`] or an [`HttpError`] that keeps its source.
//! The answer's body is read up to a cap, never whole whatever its size.

use std::future::Future;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use leakhound_proto::http_url::HttpUrl;

/// The body cap of a [`Request`] unless it sets another: what the
/// harness's probes read (pages, metrics, API answers) is far smaller.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Why an exchange gave no answer. Header values never appear in it (a
/// header may carry a credential).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0:?} is not an HTTP method")]
    Method(String, #[source] hyper::http::method::InvalidMethod),
    /// A header's name or value, or the path, is not valid in a request.
    #[error("the request cannot be made: {0}")]
    Build(#[source] hyper::http::Error),
    /// The caller's connection did not open.
    #[error("{0}")]
    Connect(#[source] std::io::Error),
    #[error("the HTTP handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("the exchange failed: {0}")]
    Exchange(#[source] hyper::Error),
    #[error("reading the answer's body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the answer's body is longer than {0} bytes")]
    TooLong(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One HTTP/1.1 request: method, Host header, target, headers, body, and
/// what the exchange may take (a body cap, a time limit).
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
    agent: String,
    max_body: usize,
    timeout: Option<Duration>,
}

/// An answer: its status and its body (as text, trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Request {
    /// `method` for `path` on `host` (the Host header's value:
    /// `name[:port]` or `[ipv6]:port`), with no headers and no body, the
    /// agent `leakhound`, the body cap [`DEFAULT_MAX_BODY`] and no time
    /// limit.
    pub fn new(method: &str, host: impl Into<String>, path: impl Into<String>) -> Request {
        Request {
            method: method.to_string(),
            host: host.into(),
            path: path.into(),
            headers: Vec::new(),
            body: bytes::Bytes::new(),
            agent: "leakhound".into(),
            max_body: DEFAULT_MAX_BODY,
            timeout: None,
        }
    }

    /// `method` for a URL's host (its authority) and path.
    pub fn to(method: &str, url: &HttpUrl) -> Request {
        Request::new(method, url.authority(), url.path.clone())
    }

    /// GET a URL.
    pub fn get(url: &HttpUrl) -> Request {
        Request::to("GET", url)
    }

    /// One more header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// More headers, in order.
    pub fn headers(mut self, headers: &[(String, String)]) -> Request {
        self.headers.extend_from_slice(headers);
        self
    }

    /// The body (text or bytes).
    pub fn body(mut self, body: impl Into<bytes::Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// The User-Agent header's value.
    pub fn agent(mut self, agent: impl Into<String>) -> Request {
        self.agent = agent.into();
        self
    }

    /// An answer's body longer than `max_body` bytes is an error (read no
    /// further than that).
    pub fn max_body(mut self, max_body: usize) -> Request {
        self.max_body = max_body;
        self
    }

    /// The whole of [`Request::send`] (connecting included) within
    /// `timeout`, or [`HttpError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Connects with `connect` (the caller's socket: made in a namespace,
    /// bound to a tunnel...) and sends the request on the stream.
    pub async fn send(
        self,
        connect: impl Future<Output = std::io::Result<tokio::net::TcpStream>>,
    ) -> Result<Response, HttpError> {
        let timeout = self.timeout;
        let work = async move {
            let stream = connect.await.map_err(HttpError::Connect)?;
            self.exchange(stream).await
        };
        match timeout {
            None => work.await,
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| HttpError::Timeout(t))?,
        }
    }

    /// Sends the request on a stream the caller has connected.
    pub async fn send_on(self, stream: tokio::net::TcpStream) -> Result<Response, HttpError> {
        self.send(std::future::ready(Ok(stream))).await
    }

    async fn exchange(self, stream: tokio::net::TcpStream) -> Result<Response, HttpError> {
        let method = hyper::Method::from_bytes(self.method.as_bytes())
            .map_err(|e| HttpError::Method(self.method.clone(), e))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.path.as_str())
            .header(hyper::header::HOST, self.host.as_str())
            .header(hyper::header::USER_AGENT, self.agent.as_str());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(http_body_util::Full::new(self.body))
            .map_err(HttpError::Build)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(HttpError::Handshake)?;
        tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .map_err(HttpError::Exchange)?;
        let status = resp.status().as_u16();
        let max_body = self.max_body;
        let body = http_body_util::Limited::new(resp.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::TooLong(max_body)
                } else {
                    HttpError::Body(e)
                }
            })?
            .to_bytes();
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server answering one request with a body of `len` bytes
    /// (sent with a length, or chunked without one).
    async fn answer_with(len: usize, chunked: bool) -> tokio::net::TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let head = if chunked {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
            };
            let _ = s.write_all(head.as_bytes()).await;
            let body = vec![b'1'; len];
            if chunked {
                for c in body.chunks(4096) {
                    let _ = s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await;
                    let _ = s.write_all(c).await;
                    let _ = s.write_all(b"\r\n").await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            } else {
                let _ = s.write_all(&body).await;
            }
        });
        tokio::net::TcpStream::connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_an_error_and_one_within_it_is_read() {
        for chunked in [false, true] {
            let s = answer_with(100, chunked).await;
            let r = Request::new("GET", "x", "/")
                .max_body(100)
                .send_on(s)
                .await
                .unwrap();
            assert_eq!((r.status, r.body.len()), (200, 100));
            let s = answer_with(100_000, chunked).await;
            let err = Request::new("GET", "x", "/")
                .max_body(99_999)
                .send_on(s)
                .await
                .unwrap_err();
            assert!(matches!(err, HttpError::TooLong(99_999)), "{err:?}");
            assert_eq!(
                err.to_string(),
                "the answer's body is longer than 99999 bytes"
            );
        }
        let s = answer_with(DEFAULT_MAX_BODY + 1, false).await;
        let err = Request::new("GET", "x", "/").send_on(s).await.unwrap_err();
        assert!(
            matches!(err, HttpError::TooLong(DEFAULT_MAX_BODY)),
            "{err:?}"
        );
    }

    /// A loopback server that answers one request with what it received
    /// (the request's head and body) and returns that text too.
    async fn echo() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as much body as Content-Length says.
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&got).to_string();
            let answer = format!(
                "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n  {text}  ",
                text.len() + 4
            );
            s.write_all(answer.as_bytes()).await.unwrap();
            text
        });
        (addr, task)
    }

    #[tokio::test]
    async fn the_request_carries_what_it_was_given_and_the_answer_is_read() {
        let (addr, task) = echo().await;
        let url = HttpUrl::parse(&format!("http://{addr}/a/{{x}}?q=1")).unwrap();
        let r = Request::to("PUT", &url.fill("x", "b"))
            .header("X-API-Key", "k1")
            .headers(&[("Content-Type".into(), "application/json".into())])
            .body(r#"{"status":"stopped"}"#)
            .agent("leakhound-test")
            .timeout(Duration::from_secs(5))
            .send(tokio::net::TcpStream::connect(addr))
            .await
            .unwrap();
        let seen = task.await.unwrap();
        assert_eq!(r.status, 201);
        // The body is trimmed; it is what the server received.
        assert_eq!(r.body, seen.trim());
        let lower = seen.to_ascii_lowercase();
        assert!(seen.starts_with("PUT /a/b?q=1 HTTP/1.1\r\n"), "{seen}");
        assert!(lower.contains(&format!("host: {addr}\r\n")), "{seen}");
        assert!(lower.contains("user-agent: leakhound-test\r\n"), "{seen}");
        assert!(lower.contains("x-api-key: k1\r\n"), "{seen}");
        assert!(
            lower.contains("content-type: application/json\r\n"),
            "{seen}"
        );
        assert!(seen.ends_with("\r\n\r\n{\"status\":\"stopped\"}"), "{seen}");
    }

    #[tokio::test]
    async fn failures_name_what_failed_and_keep_their_source() {
        use std::error::Error as _;
        // Nothing listens: the connection's own error.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = Request::new("GET", "x", "/")
            .send(tokio::net::TcpStream::connect(addr))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Connect(_)), "{e:?}");
        assert!(e.source().is_some());
        // A server that accepts and never answers: the time limit.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let e = Request::new("GET", "x", "/")
            .timeout(Duration::from_millis(200))
            .send(tokio::net::TcpStream::connect(addr))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "no answer within 200ms");
        // A method that is none, a header value that cannot be sent (to a
        // listener that never accepts: nothing is sent anyway).
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = Request::new("G ET", "x", "/")
            .send_on(stream)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "\"G ET\" is not an HTTP method");
        assert!(e.source().is_some());
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = Request::new("GET", "x", "/")
            .header("Authorization", "Basic sec\nret")
            .send_on(stream)
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Build(_)), "{e:?}");
        assert!(!e.to_string().contains("sec"), "{e}");
    }
}
