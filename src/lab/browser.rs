//! The browser probe: Byparr's stand-in (Byparr is a headless browser
//! behind an HTTP API; Debian has no package of it). Debian's Chromium runs
//! headless in the gateway's namespace for one step, as Byparr's would,
//! with what a browser brings on its own: DNS-over-HTTPS it chose itself
//! (a managed policy sets "automatic" mode with the lab's DoH server by
//! address, as Chrome upgrades to a known resolver's DoH), QUIC on UDP 443
//! (forced on for one lab name) and WebRTC's STUN. It loads a page from a
//! server on the gateway's loopback ([`crate::model::browser::page`]) that
//! runs those checks and posts what it found back; the far end (whoami,
//! the STUN server, the UDP 443 listener, the DoH server) says where
//! everything came from. The policy and the resolver the browser reads
//! are bind mounts in a mount namespace of its own: nothing of the host's
//! changes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::mpsc;

use super::tls::LabTls;
use super::{Lab, LabError};
use crate::model::browser::{self, Report};
use crate::model::topology::{addr, host};

/// The name the browser goes by in messages.
pub const CHROMIUM: &str = "chromium";
/// The browsers the probe can drive, first found on PATH wins, each with
/// where it reads its managed policies from (the lab binds its own
/// directory over it in the browser's mount namespace): Debian's
/// `chromium`, the `chromium-browser` of older Ubuntu and other
/// distributions, and Google Chrome.
pub const BROWSERS: [(&str, &str); 4] = [
    ("chromium", "/etc/chromium"),
    ("chromium-browser", "/etc/chromium-browser"),
    ("google-chrome-stable", "/etc/opt/chrome"),
    ("google-chrome", "/etc/opt/chrome"),
];

/// None of [`BROWSERS`] is on PATH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "none of {} is on PATH (bash ci/setup.sh installs Debian's chromium)",
    BROWSERS.map(|(program, _)| program).join(", ")
)]
pub struct NoBrowser;

/// The first browser of [`BROWSERS`] on PATH, or why there is none.
pub fn find() -> Result<(&'static str, &'static str), NoBrowser> {
    BROWSERS
        .iter()
        .copied()
        .find(|(program, _)| crate::target::process::executable(program).is_ok())
        .ok_or(NoBrowser)
}
/// How long the page may take to report, start-up included (its own
/// checks end after [`browser::PAGE_CHECK_MS`]).
pub const REPORT_WITHIN: Duration = Duration::from_secs(30);

fn err(what: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LabError {
    LabError::Service {
        service: CHROMIUM.into(),
        source: std::io::Error::other(what),
    }
}

/// Why the browser probe cannot run here, if it cannot.
pub fn unfit() -> Option<String> {
    let (program, policy_root) = match find() {
        Ok(b) => b,
        Err(why) => {
            return Some(format!(
                "the browser probe (Byparr's stand-in) needs Chromium or Chrome: {why}"
            ));
        }
    };
    if !Path::new(policy_root).is_dir() {
        return Some(format!(
            "{policy_root} is missing: the browser probe binds its policy for {program} there (mkdir -p {policy_root})"
        ));
    }
    None
}

/// Chromium's managed policy for the lab: DoH "automatic" with the lab's
/// DoH server by address (Chrome's upgrade to a known resolver's DoH,
/// which then falls back to the system's resolver when it fails), and the
/// lab CA trusted (so a DoH or QUIC exchange that got through would
/// complete, not stop at the certificate).
pub fn policy(ca_der: &[u8]) -> String {
    use base64::Engine as _;
    serde_json::json!({
        "DnsOverHttpsMode": "automatic",
        "DnsOverHttpsTemplates": format!("https://{}/dns-query", addr::DOH),
        "CACertificates": [base64::engine::general_purpose::STANDARD.encode(ca_der)],
    })
    .to_string()
}

/// Chromium's pin of a key: base64 of the SHA-256 of its
/// SubjectPublicKeyInfo.
pub fn spki_pin(spki_der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, spki_der))
}

/// Why a visit gave no report.
#[derive(Debug, thiserror::Error)]
pub enum NoReport {
    #[error(transparent)]
    Invalid(#[from] browser::ReportError),
    #[error("the page's server stopped")]
    ServerStopped,
    /// The browser ended first; `log` is the tail of its log.
    #[error("{CHROMIUM} exited ({status}) before the page reported; its log:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("the page did not report within {} s; {CHROMIUM}'s log:\n{log}", REPORT_WITHIN.as_secs())]
    Silent { log: String },
}

/// What one run of the page gave: its report, or why there is none (with
/// Chromium's log tail), and the command line for the step's log.
#[derive(Debug)]
pub struct Visit {
    pub command: String,
    pub report: Result<Report, NoReport>,
}

/// Kills the browser's process group when the visit ends, however it ends.
struct Group(Option<std::process::Child>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// Runs Chromium headless in the gateway's namespace on the page for
/// `nonce` and returns what it reported within [`REPORT_WITHIN`].
pub async fn visit(lab: &Lab, nonce: &str, tls: &LabTls) -> Result<Visit, LabError> {
    if let Some(why) = unfit() {
        return Err(err(why));
    }
    let (program, policy_root) = find().map_err(err)?;
    let ns = lab.ns(host::GW)?;
    let dir: PathBuf = crate::lab::netns::run_files(lab.run_id()).join(format!("browser-{nonce}"));
    let io = |what: &str, e: std::io::Error| err(format!("{what}: {e}"));
    let policies = dir.join("etc/policies/managed");
    std::fs::create_dir_all(&policies).map_err(|e| io("creating its profile", e))?;
    std::fs::write(policies.join("leakhound.json"), policy(&tls.ca_der))
        .map_err(|e| io("writing its policy", e))?;

    // The page's server, on the gateway's loopback.
    let listener = super::http::listen(ns, CHROMIUM, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let port = listener
        .local_addr()
        .map_err(|e| io("the page's server", e))?
        .port();
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(1);
    let page = browser::page(nonce, addr::WHOAMI);
    let app = Router::new()
        .route(
            "/",
            get(move || async move { axum::response::Html(page.clone()) }),
        )
        .route(
            "/report",
            post(move |body: bytes::Bytes| async move {
                let _ = tx.send(body).await;
                ""
            }),
        );
    // Stops with the visit, however it ends.
    let _server = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }));

    let quic_origins = browser::quic_origins(nonce, addr::WHOAMI).join(",");
    let url = format!("http://127.0.0.1:{port}/");
    let args = [
        "--headless".to_string(),
        // As root there is no user namespace sandbox to drop into.
        "--no-sandbox".into(),
        format!("--user-data-dir={}", dir.join("profile").display()),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-gpu".into(),
        // The lab CA comes with the policy, which Chromium applies a moment
        // after it starts; the servers' key is trusted from the first
        // connection on (a DoH exchange that got through must complete).
        format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_pin(&tls.server_spki)
        ),
        "--enable-quic".into(),
        format!("--origin-to-force-quic-on={quic_origins}"),
        url,
    ];
    let log_file = dir.join("chromium.log");
    let out = std::fs::File::create(&log_file).map_err(|e| io("its log", e))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(&args)
        .env("HOME", &dir)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().map_err(|e| io("its log", e))?)
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let binds = [
        (lab.resolv_conf(host::GW), PathBuf::from("/etc/resolv.conf")),
        (dir.join("etc"), PathBuf::from(policy_root)),
    ];
    ns.command_with_binds(&mut cmd, &binds)
        .map_err(|e| err(format!("entering the gateway's namespace: {e}")))?;
    let command = format!("{program} {}", args.join(" "));
    let child = cmd
        .spawn()
        .map_err(|e| io(&format!("starting {program}"), e))?;
    let mut group = Group(Some(child));

    let deadline = Instant::now() + REPORT_WITHIN;
    let report = loop {
        tokio::select! {
            body = rx.recv() => {
                break match body {
                    Some(b) => browser::parse_report(&b).map_err(NoReport::from),
                    None => Err(NoReport::ServerStopped),
                };
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(c) = group.0.as_mut()
                    && let Ok(Some(status)) = c.try_wait()
                {
                    group.0 = None;
                    break Err(NoReport::Exited {
                        status,
                        log: super::apps::tail_of(&log_file),
                    });
                }
                if Instant::now() >= deadline {
                    break Err(NoReport::Silent {
                        log: super::apps::tail_of(&log_file),
                    });
                }
            }
        }
    };
    drop(group);
    Ok(Visit { command, report })
}

/// The lab's side of what the browser asks on the internet besides whoami:
/// a STUN server (on whoami's addresses, UDP [`browser::STUN_PORT`],
/// service `stun`) answering each Binding request with the source it saw,
/// and a listener on UDP 443 there (service `quic`) that logs each
/// datagram (a QUIC Initial) without answering: the browser's QUIC never
/// completes, and where it came from is what counts.
pub fn start_far_end(
    ns: &crate::lab::netns::Netns,
    log: super::service_log::ServiceLog,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(), LabError> {
    use crate::model::topology::service;
    for ip in [std::net::IpAddr::from(addr::WHOAMI), addr::WHOAMI_V6.into()] {
        let at = SocketAddr::new(ip, browser::STUN_PORT);
        let sock = super::udp::bind(ns, service::STUN, move || std::net::UdpSocket::bind(at))?;
        let stun_log = log.clone();
        super::udp::serve(sock, None, cancel.clone(), move |datagram, from| {
            let answer = browser::stun_answer(datagram, from);
            let what = match answer {
                Some(_) => format!("binding request on {at}"),
                None => format!("not a binding request ({} bytes) on {at}", datagram.len()),
            };
            stun_log.record(service::STUN, from, what);
            answer
        });
        let at = SocketAddr::new(ip, 443);
        let sock = super::udp::bind(ns, service::QUIC, move || std::net::UdpSocket::bind(at))?;
        let quic_log = log.clone();
        super::udp::serve(sock, None, cancel.clone(), move |datagram, from| {
            quic_log.record(
                service::QUIC,
                from,
                format!("datagram ({} bytes) on {at}", datagram.len()),
            );
            None
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_browser_or_a_report_the_message_says_why() {
        assert_eq!(
            NoBrowser.to_string(),
            "none of chromium, chromium-browser, google-chrome-stable, google-chrome is on PATH (bash ci/setup.sh installs Debian's chromium)"
        );
        assert_eq!(
            NoReport::ServerStopped.to_string(),
            "the page's server stopped"
        );
        assert_eq!(
            NoReport::Silent { log: "tail".into() }.to_string(),
            format!(
                "the page did not report within {} s; chromium's log:\ntail",
                REPORT_WITHIN.as_secs()
            )
        );
        let invalid = NoReport::from(browser::parse_report(b"[").unwrap_err());
        assert!(
            invalid
                .to_string()
                .starts_with("the page's report is not valid: "),
            "{invalid}"
        );
    }
}
