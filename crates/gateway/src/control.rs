//! The control server (HTTP_CONTROL_SERVER_ADDRESS), with Gluetun's routes
//! and JSON, every route checked against the roles file
//! ([`super::control_auth`]); and the public IP, fetched through the tunnel
//! after every tunnel-up and written to PUBLICIP_FILE.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::control_auth::AuthConfig;
use leakhound_proto::http_url::HttpUrl;

pub use super::supervisor::VpnCommand;

pub struct ControlState {
    pub auth: AuthConfig,
    pub public_ip: watch::Receiver<Option<IpAddr>>,
    pub vpn_running: watch::Receiver<bool>,
    pub commands: mpsc::Sender<VpnCommand>,
    /// The forwarded port (0: none).
    pub forwarded_port: watch::Receiver<u16>,
    /// WIREGUARD_PRIVATE_KEY_SECRETFILE, read again by `PUT
    /// /v1/wireguard/key`.
    pub key_file: Option<std::path::PathBuf>,
    /// The running tunnel (none while it is down), for `/metrics`.
    pub tunnel: watch::Receiver<Option<super::TunnelHandle>>,
    /// Tunnel restarts so far, for `/metrics`.
    pub restarts: Arc<std::sync::atomic::AtomicU64>,
    /// The kill switch the gateway installed last (none: disabled), read
    /// back from the kernel for `/metrics`.
    pub kill_switch: super::InstalledKillSwitch,
}

type Shared = Arc<ControlState>;

async fn authorize(
    State(s): State<Shared>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let route = format!("{} {}", req.method(), req.uri().path());
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if s.auth
        .allows(&route, header("authorization"), header("x-api-key"))
    {
        next.run(req).await
    } else {
        tracing::info!("control: refused {route} (no role allows it with these credentials)");
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        )
            .into_response()
    }
}

async fn public_ip(State(s): State<Shared>) -> Json<serde_json::Value> {
    let ip = *s.public_ip.borrow();
    Json(json!({ "public_ip": ip.map(|i| i.to_string()).unwrap_or_default() }))
}

fn status_json(running: bool) -> Json<serde_json::Value> {
    Json(json!({ "status": if running { "running" } else { "stopped" } }))
}

async fn vpn_status(State(s): State<Shared>) -> Json<serde_json::Value> {
    status_json(*s.vpn_running.borrow())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

async fn set_vpn_status(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let parsed: Result<StatusBody, _> = serde_json::from_slice(&body);
    let cmd = match parsed.as_ref().map(|b| b.status.as_str()) {
        Ok("running") => VpnCommand::Start,
        Ok("stopped") => VpnCommand::Stop,
        Ok(other) => {
            let msg = format!("status {other:?}: use \"running\" or \"stopped\"");
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response();
        }
        Err(e) => {
            let msg = format!("expected {{\"status\": \"running\"|\"stopped\"}}: {e}");
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response();
        }
    };
    let want = cmd == VpnCommand::Start;
    if s.commands.send(cmd).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the gateway is stopping"})),
        )
            .into_response();
    }
    let mut running = s.vpn_running.clone();
    let done =
        tokio::time::timeout(Duration::from_secs(10), running.wait_for(|r| *r == want)).await;
    match done {
        Ok(Ok(_)) => {
            Json(json!({ "outcome": if want { "running" } else { "stopped" } })).into_response()
        }
        _ => (
            StatusCode::GATEWAY_TIMEOUT,
            Json(json!({"error": "the tunnel did not change state within 10s"})),
        )
            .into_response(),
    }
}

async fn port_forward(State(s): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({ "port": *s.forwarded_port.borrow() }))
}

async fn set_port_forward() -> Response {
    // Gluetun's PUT sets a port for providers that let clients choose; the
    // NAT-PMP provider chooses here.
    (
        StatusCode::NOT_IMPLEMENTED,
        Json(json!({"error": "the provider chooses the forwarded port"})),
    )
        .into_response()
}

/// Key rotation (leakhound's own route): reads the private key again from
/// WIREGUARD_PRIVATE_KEY_SECRETFILE, where the provider's API (or an
/// operator) wrote the new one, and restarts a running tunnel on it; the
/// kill switch is not touched and the dependents keep running. A file that
/// cannot be read or holds no key changes nothing (422, never quoting it).
async fn rotate_key(State(s): State<Shared>) -> Response {
    let Some(file) = &s.key_file else {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "no WIREGUARD_PRIVATE_KEY_SECRETFILE: the key is fixed in WIREGUARD_PRIVATE_KEY"})),
        )
            .into_response();
    };
    let key = match crate::config::read_key_file(file) {
        Ok(k) => k,
        Err(why) => {
            let msg = format!("WIREGUARD_PRIVATE_KEY_SECRETFILE {}: {why}", file.display());
            tracing::error!("key rotation refused: {msg}");
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": msg })),
            )
                .into_response();
        }
    };
    if s.commands
        .send(VpnCommand::Rekey(super::supervisor::NewKey(key)))
        .await
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the gateway is stopping"})),
        )
            .into_response();
    }
    Json(json!({ "outcome": "rotating" })).into_response()
}

async fn dns_status() -> Json<serde_json::Value> {
    status_json(true)
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/publicip/ip", get(public_ip))
        .route("/v1/vpn/status", get(vpn_status).put(set_vpn_status))
        .route("/v1/portforward", get(port_forward).put(set_port_forward))
        .route("/v1/openvpn/portforwarded", get(port_forward))
        .route("/v1/dns/status", get(dns_status))
        .route("/v1/wireguard/key", axum::routing::put(rotate_key))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// The kill switch as read back from the kernel at a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillSwitch {
    /// FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off.
    Disabled,
    /// The kernel holds exactly the rules the gateway installed.
    Intact,
    /// Missing or changed (someone flushed or edited them).
    Changed,
}

/// The gateway's metrics in Prometheus' text format (pure): whether a
/// tunnel runs, its bytes each way and handshakes (counters that start
/// again with each new tunnel), the age of its last handshake, tunnel
/// restarts, the forwarded port. For the user's "monitor bandwidth usage".
pub fn metrics_text(
    running: bool,
    tunnel: Option<&leakhound_net::tunnel::TunnelStatus>,
    restarts: u64,
    forwarded_port: u16,
    kill_switch: KillSwitch,
    now: std::time::SystemTime,
) -> String {
    use leakhound_proto::prom::{Kind, Text};
    let t = tunnel.cloned().unwrap_or_default();
    let mut o = Text::new();
    o.single(
        "leakhound_gateway_tunnel_up",
        Kind::Gauge,
        "Whether the WireGuard tunnel runs: 1 yes, 0 no.",
        u8::from(running && tunnel.is_some()),
    )
    .single(
        "leakhound_gateway_tunnel_receive_bytes_total",
        Kind::Counter,
        "Bytes received through the current tunnel.",
        t.rx_bytes,
    )
    .single(
        "leakhound_gateway_tunnel_transmit_bytes_total",
        Kind::Counter,
        "Bytes sent through the current tunnel.",
        t.tx_bytes,
    )
    .single(
        "leakhound_gateway_handshakes_total",
        Kind::Counter,
        "WireGuard handshakes completed by the current tunnel.",
        t.handshakes,
    );
    if let Some(age) = t.last_handshake.and_then(|h| now.duration_since(h).ok()) {
        o.single(
            "leakhound_gateway_handshake_age_seconds",
            Kind::Gauge,
            "Seconds since the last completed handshake (absent before the first).",
            format!("{:.3}", age.as_secs_f64()),
        );
    }
    o.single(
        "leakhound_gateway_tunnel_restarts_total",
        Kind::Counter,
        "Tunnel restarts since the gateway started (reconnects, key rotations).",
        restarts,
    )
    .single(
        "leakhound_gateway_forwarded_port",
        Kind::Gauge,
        "The forwarded port (0: none).",
        forwarded_port,
    )
    .single(
        "leakhound_gateway_kill_switch_enabled",
        Kind::Gauge,
        "Whether the kill switch is enabled by configuration: 1 yes, 0 disabled.",
        u8::from(kill_switch != KillSwitch::Disabled),
    )
    .single(
        "leakhound_gateway_kill_switch_intact",
        Kind::Gauge,
        "Whether the kernel holds exactly the kill switch the gateway installed (read back at each scrape): 1 yes, 0 missing, changed or disabled.",
        u8::from(kill_switch == KillSwitch::Intact),
    )
    .finish()
}

async fn metrics(State(s): State<Shared>) -> Response {
    let status = s
        .tunnel
        .borrow()
        .as_ref()
        .map(|t| t.status.borrow().clone());
    // What the kernel holds now, not what was installed: read back.
    let policy = s.kill_switch.lock().expect("kill switch lock").clone();
    let kill_switch = match policy {
        None => KillSwitch::Disabled,
        Some(p) => match tokio::task::spawn_blocking(move || super::firewall::verify(&p)).await {
            Ok(Ok(())) => KillSwitch::Intact,
            Ok(Err(e)) => {
                tracing::warn!("metrics: the kill switch is not as installed: {e}");
                KillSwitch::Changed
            }
            Err(_) => KillSwitch::Changed,
        },
    };
    let text = metrics_text(
        *s.vpn_running.borrow(),
        status.as_ref(),
        s.restarts.load(std::sync::atomic::Ordering::Relaxed),
        *s.forwarded_port.borrow(),
        kill_switch,
        std::time::SystemTime::now(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Serves the control routes on an already bound listener, within the
/// gateway's limits ([`super::http_server::Limits::GATEWAY`]).
pub async fn serve(listener: tokio::net::TcpListener, state: Shared) -> std::io::Result<()> {
    super::http_server::serve(
        "control server",
        listener,
        router(state),
        super::http_server::Limits::GATEWAY,
    )
    .await
}

/// The longest answer PUBLICIP_URL may give (an address and some words).
pub const PUBLIC_IP_MAX_BODY: usize = 64 * 1024;

/// Why the public IP could not be learnt from PUBLICIP_URL.
#[derive(Debug, thiserror::Error)]
pub enum PublicIpError {
    /// The gateway asks no resolver for it: the host must be an address.
    #[error("{0:?} is not an IP address: PUBLICIP_URL must be http://IP[:PORT]/path")]
    NotAnAddress(String),
    #[error(transparent)]
    Socket(#[from] super::health::SocketError),
    #[error(transparent)]
    Http(#[from] leakhound_net::httpc::HttpError),
    #[error("{url} answered {status}")]
    Status { url: HttpUrl, status: u16 },
    #[error("the answer {0:?} is not an IP address")]
    NotAnIp(String),
}

/// GET `url` (http://IP[:PORT]/path) through the tunnel (the socket bound to
/// `tunnel_if`) and read an IP address from the body (at most
/// [`PUBLIC_IP_MAX_BODY`] bytes of it), within 5 s.
pub async fn fetch_public_ip(url: &HttpUrl, tunnel_if: &str) -> Result<IpAddr, PublicIpError> {
    let ip = url
        .ip()
        .ok_or_else(|| PublicIpError::NotAnAddress(url.host.clone()))?;
    let addr = SocketAddr::new(ip, url.port);
    let s = super::health::tunnel_tcp_socket(ip, tunnel_if)?;
    let answer = leakhound_net::httpc::Request::get(url)
        .agent("leakhound-gateway")
        .max_body(PUBLIC_IP_MAX_BODY)
        .timeout(Duration::from_secs(5))
        .send(s.connect(addr))
        .await?;
    if answer.status != 200 {
        return Err(PublicIpError::Status {
            url: url.clone(),
            status: answer.status,
        });
    }
    answer
        .body
        .parse::<IpAddr>()
        .map_err(|_| PublicIpError::NotAnIp(answer.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_public_ip_is_asked_of_an_address_only() {
        let url = HttpUrl::parse("http://ipinfo.example/").unwrap();
        let e = fetch_public_ip(&url, "lo").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"ipinfo.example\" is not an IP address: PUBLICIP_URL must be http://IP[:PORT]/path"
        );
    }

    fn state(auth: &str) -> (Shared, mpsc::Receiver<VpnCommand>, watch::Sender<bool>) {
        let (tx, rx) = mpsc::channel(4);
        let (run_tx, run_rx) = watch::channel(true);
        let (_ip_tx, ip_rx) = watch::channel(Some("203.0.113.77".parse().unwrap()));
        std::mem::forget(_ip_tx);
        let (_port_tx, port_rx) = watch::channel(0u16);
        std::mem::forget(_port_tx);
        (
            Arc::new(ControlState {
                tunnel: {
                    let (tx, rx) = watch::channel(None);
                    std::mem::forget(tx);
                    rx
                },
                restarts: Arc::new(std::sync::atomic::AtomicU64::new(2)),
                kill_switch: Default::default(),
                key_file: None,
                auth: AuthConfig::parse(auth).unwrap(),
                public_ip: ip_rx,
                vpn_running: run_rx,
                commands: tx,
                forwarded_port: port_rx,
            }),
            rx,
            run_tx,
        )
    }

    async fn call(
        s: &Shared,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = router(s.clone())
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&bytes).to_string())
    }

    const AUTH: &str = "[[roles]]\nname = \"ops\"\nroutes = [\"GET /v1/publicip/ip\", \"PUT /v1/vpn/status\"]\nauth = \"apikey\"\napikey = \"0123456789abcdef\"\n";

    #[tokio::test]
    async fn routes_need_a_role_and_answer_gluetuns_json() {
        let (s, _rx, _run) = state(AUTH);
        assert_eq!(
            call(&s, "GET", "/v1/publicip/ip", None, "").await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&s, "GET", "/v1/vpn/status", Some("0123456789abcdef"), "")
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        let (code, body) = call(&s, "GET", "/v1/publicip/ip", Some("0123456789abcdef"), "").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, r#"{"public_ip":"203.0.113.77"}"#);
    }

    #[tokio::test]
    async fn metrics_are_private_and_readable_by_a_role() {
        let (s, _rx, _run) = state(AUTH);
        // Not in the ops role: refused, like every route no role names.
        assert_eq!(
            call(&s, "GET", "/metrics", Some("0123456789abcdef"), "")
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        let auth = "[[roles]]\nname = \"metrics\"\nroutes = [\"GET /metrics\"]\nauth = \"apikey\"\napikey = \"fedcba9876543210\"\n";
        let (s, _rx, _run) = state(auth);
        let (code, body) = call(&s, "GET", "/metrics", Some("fedcba9876543210"), "").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("leakhound_gateway_tunnel_up 0\n"), "{body}");
        assert!(
            body.contains("leakhound_gateway_tunnel_restarts_total 2\n"),
            "{body}"
        );
    }

    #[test]
    fn metrics_text_reports_the_tunnel() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let t = leakhound_net::tunnel::TunnelStatus {
            handshakes: 3,
            last_handshake: Some(now - Duration::from_millis(2500)),
            tx_bytes: 1200,
            rx_bytes: 4_194_304,
            ..Default::default()
        };
        let m = metrics_text(true, Some(&t), 1, 20000, KillSwitch::Intact, now);
        for line in [
            "leakhound_gateway_tunnel_up 1",
            "leakhound_gateway_tunnel_receive_bytes_total 4194304",
            "leakhound_gateway_tunnel_transmit_bytes_total 1200",
            "leakhound_gateway_handshakes_total 3",
            "leakhound_gateway_handshake_age_seconds 2.500",
            "leakhound_gateway_tunnel_restarts_total 1",
            "leakhound_gateway_forwarded_port 20000",
            "leakhound_gateway_kill_switch_enabled 1",
            "leakhound_gateway_kill_switch_intact 1",
        ] {
            assert!(m.lines().any(|l| l == line), "{line}: {m}");
        }
        // No tunnel: down, zero bytes, no handshake age.
        let m = metrics_text(false, None, 0, 0, KillSwitch::Changed, now);
        assert!(m.contains("leakhound_gateway_tunnel_up 0\n"));
        assert!(!m.contains("handshake_age"));
        assert!(m.contains("leakhound_gateway_kill_switch_enabled 1\n"));
        assert!(m.contains("leakhound_gateway_kill_switch_intact 0\n"));
        let m = metrics_text(false, None, 0, 0, KillSwitch::Disabled, now);
        assert!(m.contains("leakhound_gateway_kill_switch_enabled 0\n"));
        assert!(m.contains("leakhound_gateway_kill_switch_intact 0\n"));
        // promtool accepts it where installed (ci/setup.sh installs it).
        if let Ok(mut c) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            use std::io::Write as _;
            c.stdin
                .take()
                .unwrap()
                .write_all(
                    metrics_text(true, Some(&t), 1, 20000, KillSwitch::Intact, now).as_bytes(),
                )
                .unwrap();
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[tokio::test]
    async fn a_bad_status_body_is_refused_and_changes_nothing() {
        let (s, mut rx, _run) = state(AUTH);
        let (code, body) = call(
            &s,
            "PUT",
            "/v1/vpn/status",
            Some("0123456789abcdef"),
            r#"{"status":"paused"}"#,
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(body.contains("running"), "{body}");
        let (code, _) = call(
            &s,
            "PUT",
            "/v1/vpn/status",
            Some("0123456789abcdef"),
            "not json",
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(
            rx.try_recv().is_err(),
            "a command was sent for a bad request"
        );
    }

    #[tokio::test]
    async fn stopping_waits_for_the_tunnel_to_stop() {
        let (s, mut rx, run) = state(AUTH);
        let loop_ = tokio::spawn(async move {
            assert_eq!(rx.recv().await, Some(VpnCommand::Stop));
            run.send_replace(false);
        });
        let (code, body) = call(
            &s,
            "PUT",
            "/v1/vpn/status",
            Some("0123456789abcdef"),
            r#"{"status":"stopped"}"#,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body, r#"{"outcome":"stopped"}"#);
        loop_.await.unwrap();
    }
}
