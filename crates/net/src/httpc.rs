//! The one HTTP/1.1 client exchange (hyper) over a TCP stream the caller has
//! connected: the probes connect inside a lab namespace, the gateway through
//! its tunnel (public IP) or to its own health server (`gateway healthcheck`).
//! The answer's body is read up to a cap, never whole whatever its size.

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

/// The body cap of [`request`]: what the harness's probes read (pages,
/// metrics, API answers) is far smaller.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Sends one request on `stream` and returns the status and the trimmed
/// body. `host` goes in the Host header; the body may be text or bytes.
/// A body longer than [`DEFAULT_MAX_BODY`] is an error.
pub async fn request(
    stream: tokio::net::TcpStream,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: impl Into<bytes::Bytes>,
    agent: &str,
) -> Result<(u16, String), String> {
    request_capped(
        stream,
        method,
        host,
        path,
        headers,
        body,
        agent,
        DEFAULT_MAX_BODY,
    )
    .await
}

/// [`request`], with an answer's body longer than `max_body` bytes an
/// error (read no further than that).
#[allow(clippy::too_many_arguments)]
pub async fn request_capped(
    stream: tokio::net::TcpStream,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: impl Into<bytes::Bytes>,
    agent: &str,
    max_body: usize,
) -> Result<(u16, String), String> {
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, agent);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(http_body_util::Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = http_body_util::Limited::new(resp.into_body(), max_body)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("the answer's body is longer than {max_body} bytes")
            } else {
                e.to_string()
            }
        })?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).trim().to_string()))
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
            let (status, body) = request_capped(s, "GET", "x", "/", &[], "", "t", 100)
                .await
                .unwrap();
            assert_eq!((status, body.len()), (200, 100));
            let s = answer_with(100_000, chunked).await;
            let err = request_capped(s, "GET", "x", "/", &[], "", "t", 99_999)
                .await
                .unwrap_err();
            assert_eq!(err, "the answer's body is longer than 99999 bytes");
        }
        let s = answer_with(DEFAULT_MAX_BODY + 1, false).await;
        assert!(request(s, "GET", "x", "/", &[], "", "t").await.is_err());
    }
}
