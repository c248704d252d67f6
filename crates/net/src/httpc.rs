//! The one HTTP/1.1 client exchange (hyper) over a TCP stream the caller has
//! connected: the probes connect inside a lab namespace, the gateway through
//! its tunnel (public IP) or to its own health server (`gateway healthcheck`).

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

/// Sends one request on `stream` and returns the status and the trimmed
/// body. `host` goes in the Host header; the body may be text or bytes.
pub async fn request(
    stream: tokio::net::TcpStream,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: impl Into<bytes::Bytes>,
    agent: &str,
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
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).trim().to_string()))
}
