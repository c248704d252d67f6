//! The real download clients as dependents (`run --dependents real`):
//! Debian's qBittorrent (`qbittorrent-nox`) and NZBGet (`nzbget`) in the
//! gateway's namespace with lab-made configurations (WebUI on its port,
//! credentials made per run and never printed, qBittorrent's legal notice
//! accepted, NZBGet's news server the lab's, everything else as shipped),
//! and the proof that a LAN probe reached it: a watch on the gateway's
//! eth0 ties each HTTP request to the application's answer leaving the
//! namespace (an answer on the wire has passed the kill switch; a request
//! alone proves nothing, it arrives before any filter) and records it in
//! the lab's log as the `dependents` service, as the stand-ins do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use pnet::packet::Packet;
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::tcp::TcpPacket;

use super::service_log::ServiceLog;
use super::{Lab, LabError};
use crate::capture::Watch;
use crate::model::topology::host;
use crate::model::userconf::Secret;
use crate::poll::poll_until;

/// A real application, as Debian ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    Qbittorrent,
    Nzbget,
}

impl App {
    /// The program on PATH.
    pub fn program(self) -> &'static str {
        match self {
            App::Qbittorrent => QBITTORRENT,
            App::Nzbget => NZBGET,
        }
    }

    /// The name people know it by (the stand-ins' name for its port).
    pub fn name(self) -> &'static str {
        match self {
            App::Qbittorrent => "qBittorrent",
            App::Nzbget => "NZBGet",
        }
    }

    pub const ALL: [App; 2] = [App::Qbittorrent, App::Nzbget];
}

pub const QBITTORRENT: &str = "qbittorrent-nox";
pub const NZBGET: &str = "nzbget";
/// Debian's NZBGet configuration, the template the lab's is made from:
/// Debian 12 ships it in /etc, Debian 13 only under /usr/share. The first
/// that exists is used.
pub const NZBGET_TEMPLATES: [&str; 2] = ["/etc/nzbget.conf", "/usr/share/nzbget/nzbget.conf"];

/// None of the candidate files could be read: each path tried, with why.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}",
    .0.iter().map(|(path, e)| format!("{path}: {e}")).collect::<Vec<_>>().join("; ")
)]
pub struct NoneReadable(pub Vec<(String, std::io::Error)>);

/// The first of `candidates` that can be read, with its text; or every
/// path tried, with why, for the message.
pub fn read_first(candidates: &[&str]) -> Result<(String, String), NoneReadable> {
    let mut tried = Vec::new();
    for c in candidates {
        match std::fs::read_to_string(c) {
            Ok(text) => return Ok((c.to_string(), text)),
            Err(e) => tried.push((c.to_string(), e)),
        }
    }
    Err(NoneReadable(tried))
}

/// NZBGet's configuration: Debian's template with the lab's lines in place
/// of its own (the WebUI on every address at `port`, the credentials, no
/// login from 127.0.0.1 (`AuthorizedIP`, so the lab drives it from the
/// gateway's loopback), its files under `dir`, the lab's news server over
/// TLS with its certificate checked against the lab CA `ca_file`, log to
/// the file only).
pub fn nzbget_conf(
    template: &str,
    dir: &Path,
    port: u16,
    user: &str,
    password: &str,
    ca_file: &Path,
) -> String {
    let ours = [
        ("MainDir", dir.display().to_string()),
        ("ControlIP", "0.0.0.0".to_string()),
        ("ControlPort", port.to_string()),
        ("ControlUsername", user.to_string()),
        ("ControlPassword", password.to_string()),
        ("RestrictedUsername", String::new()),
        ("AddUsername", String::new()),
        ("DaemonUsername", "root".to_string()),
        ("AuthorizedIP", "127.0.0.1".to_string()),
        ("Server1.Active", "yes".to_string()),
        ("Server1.Name", "lab".to_string()),
        ("Server1.Host", super::news::HOST.to_string()),
        ("Server1.Port", super::news::PORT.to_string()),
        ("Server1.Encryption", "yes".to_string()),
        ("Server1.Username", String::new()),
        ("Server1.Password", String::new()),
        ("Server1.Connections", "2".to_string()),
        // The lab's tunnel carries IPv4 only (but in ipv6-tunnel), and the
        // resolver answers AAAA for news.lab too: with `auto` NZBGet would
        // wait out ArticleTimeout (60 s) on an IPv6 connect the kill switch
        // drops before it tries IPv4.
        ("Server1.IpVersion", "ipv4".to_string()),
        ("CertCheck", "yes".to_string()),
        ("CertStore", ca_file.display().to_string()),
        ("OutputMode", "loggable".to_string()),
        ("UpdateCheck", "none".to_string()),
    ];
    let mut out: Vec<String> = template
        .lines()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            !ours.iter().any(|(k, _)| *k == key)
        })
        .map(str::to_string)
        .collect();
    out.extend(ours.iter().map(|(k, v)| format!("{k}={v}")));
    out.join("\n") + "\n"
}

/// What a frame on the gateway's wire says about an application's WebUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// An HTTP request to an application port: its first line.
    Request {
        client: SocketAddr,
        port: u16,
        line: String,
    },
    /// An HTTP answer from an application port to a client.
    Answer { client: SocketAddr, port: u16 },
}

/// Reads one Ethernet frame (pure): an HTTP request to, or an answer
/// from, one of `ports`; anything else is `None`.
pub fn exchange(frame: &[u8], ports: &[u16]) -> Option<Exchange> {
    // Borrowed from the frame: this runs for every frame on the wire.
    let (src, dst, proto, tcp_bytes) = crate::model::verdict::ip_transport(frame)?;
    if proto != IpNextHeaderProtocols::Tcp.0 {
        return None;
    }
    let tcp = TcpPacket::new(tcp_bytes)?;
    let payload = tcp.payload();
    if payload.is_empty() {
        return None;
    }
    let (sport, dport) = (tcp.get_source(), tcp.get_destination());
    if ports.contains(&dport) {
        const METHODS: [&[u8]; 5] = [b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE "];
        if !METHODS.iter().any(|m| payload.starts_with(m)) {
            return None;
        }
        let end = payload
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(payload.len());
        return Some(Exchange::Request {
            client: SocketAddr::new(src, sport),
            port: dport,
            line: String::from_utf8_lossy(&payload[..end]).into_owned(),
        });
    }
    if ports.contains(&sport) && payload.starts_with(b"HTTP/1.") {
        return Some(Exchange::Answer {
            client: SocketAddr::new(dst, dport),
            port: sport,
        });
    }
    None
}

/// PBKDF2-HMAC-SHA512 over `password` with `salt`, 100,000 rounds, in the
/// form qBittorrent stores it (`WebUI\Password_PBKDF2`).
pub fn qbittorrent_password(password: &str, salt: &[u8; 16]) -> String {
    use base64::Engine as _;
    let mut hash = [0u8; 64];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        std::num::NonZeroU32::new(100_000).expect("non-zero"),
        salt,
        password.as_bytes(),
        &mut hash,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("@ByteArray({}:{})", b64.encode(salt), b64.encode(hash))
}

/// qBittorrent's configuration file: only what is needed to drive it (the
/// WebUI's port and credentials, the legal notice, a fixed BitTorrent
/// port, [`QBITTORRENT_LISTEN_PORT`]); DHT, LSD, UPnP/NAT-PMP
/// and IPv6 stay as shipped, the worst case for the gateway. Host header
/// validation is off so LAN clients may use the gateway's address; clients
/// on localhost need no login (`LocalHostAuth=false`), as Gluetun's
/// documentation has users set it for the port-forwarding hook that sets
/// qBittorrent's listening port (and the lab drives it the same way).
pub fn qbittorrent_conf(port: u16, user: &str, password_field: &str) -> String {
    format!(
        "[LegalNotice]\nAccepted=true\n\n[BitTorrent]\nSession\\Port={QBITTORRENT_LISTEN_PORT}\n\n[Preferences]\nWebUI\\Port={port}\nWebUI\\Username={user}\nWebUI\\Password_PBKDF2=\"{password_field}\"\nWebUI\\HostHeaderValidation=false\nWebUI\\LocalHostAuth=false\n"
    )
}

/// qBittorrent's BitTorrent port in the lab (its own default is random):
/// outside the provider's forwarded ports (from 20000) and the stand-ins'
/// (6881), so no scenario's listener finds it taken; a scenario whose UP
/// command moved it puts it back at its end.
pub const QBITTORRENT_LISTEN_PORT: u16 = 51413;

/// The gateway's namespace before any gateway runs there: nothing leaves
/// but to loopback (where the lab checks the WebUIs are up).
pub const CLOSED_BEFORE_GATEWAY: &str = "table inet leakhound_lab_closed {
  chain out { type filter hook output priority 0; policy drop; oif \"lo\" accept; }
}
";

/// A WebUI's credentials, made per run.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl Credentials {
    fn generate() -> Credentials {
        use rand::RngExt;
        let mut rng = rand::rng();
        let word = |n: usize, rng: &mut rand::rngs::ThreadRng| {
            (0..n)
                .map(|_| {
                    const A: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
                    A[rng.random_range(0..A.len())] as char
                })
                .collect::<String>()
        };
        Credentials {
            user: format!("lab-{}", word(6, &mut rng)),
            password: Secret::new(word(24, &mut rng)),
        }
    }
}

/// The real applications running for a lab, and the watch that proves
/// what reached them. Dropping it stops them.
pub struct Apps {
    children: Vec<std::process::Child>,
    _watch: Watch,
    /// Each application's WebUI credentials (never printed).
    pub credentials: Vec<(App, Credentials)>,
    ports: Vec<(App, u16)>,
    /// The applications that did not start, and why (with their log tail).
    pub failed: Vec<(App, String)>,
}

impl Drop for Apps {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn app_err(app: App, what: String) -> LabError {
    LabError::Service {
        service: app.program().into(),
        source: std::io::Error::other(what),
    }
}

/// The last lines of a log file, for errors.
pub(crate) fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Writes `app`'s configuration under `dir` and returns the command that
/// runs it (not yet in any namespace).
fn prepare(
    app: App,
    dir: &Path,
    port: u16,
    creds: &Credentials,
    ca_file: &Path,
) -> Result<std::process::Command, LabError> {
    let io = |what: &str, e: std::io::Error| app_err(app, format!("{what}: {e}"));
    match app {
        App::Qbittorrent => {
            let conf_dir = dir.join("qBittorrent/config");
            std::fs::create_dir_all(&conf_dir).map_err(|e| io("creating its profile", e))?;
            let salt: [u8; 16] = rand::random();
            let field = qbittorrent_password(creds.password.expose(), &salt);
            std::fs::write(
                conf_dir.join("qBittorrent.conf"),
                qbittorrent_conf(port, &creds.user, &field),
            )
            .map_err(|e| io("writing its configuration", e))?;
            let mut cmd = std::process::Command::new(QBITTORRENT);
            cmd.arg(format!("--profile={}", dir.display()));
            Ok(cmd)
        }
        App::Nzbget => {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::create_dir_all(dir).map_err(|e| io("creating its directory", e))?;
            let (_, template) = read_first(&NZBGET_TEMPLATES).map_err(|why| {
                io(
                    "reading Debian's configuration template",
                    std::io::Error::new(std::io::ErrorKind::NotFound, why),
                )
            })?;
            let conf = dir.join("nzbget.conf");
            // The password is in it: readable by its owner only.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&conf)
                .map_err(|e| io("writing its configuration", e))?;
            std::io::Write::write_all(
                &mut f,
                nzbget_conf(
                    &template,
                    dir,
                    port,
                    &creds.user,
                    creds.password.expose(),
                    ca_file,
                )
                .as_bytes(),
            )
            .map_err(|e| io("writing its configuration", e))?;
            let mut cmd = std::process::Command::new(NZBGET);
            // -s: the server in the foreground, so the lab owns the process.
            cmd.arg("-c").arg(&conf).arg("-s");
            Ok(cmd)
        }
    }
}

/// Starts one application in the gateway's namespace; returns once its
/// WebUI answers (any HTTP status), or why not, with its log tail.
async fn start_one(
    lab: &Lab,
    ns: &crate::lab::netns::Netns,
    app: App,
    port: u16,
) -> Result<(std::process::Child, Credentials), LabError> {
    // Its port must be free: the readiness check below would take
    // anything else's answer there for the application's.
    let port_free = ns
        .run(move || std::net::TcpListener::bind(("0.0.0.0", port)).map(drop))
        .map_err(|e| app_err(app, format!("entering the gateway's namespace: {e}")))?;
    if let Err(e) = port_free {
        return Err(app_err(
            app,
            format!("its WebUI port {port} is taken in the gateway's namespace: {e}"),
        ));
    }
    let dir = crate::lab::netns::run_files(lab.run_id()).join(app.program());
    let creds = Credentials::generate();
    let mut cmd = prepare(app, &dir, port, &creds, &lab.ca_file())?;
    let log_file = dir.join("app.log");
    let out = std::fs::File::create(&log_file)
        .map_err(|e| app_err(app, format!("creating its log: {e}")))?;
    cmd.env("HOME", &dir)
        .stdin(std::process::Stdio::null())
        .stdout(
            out.try_clone()
                .map_err(|e| app_err(app, format!("its log: {e}")))?,
        )
        .stderr(out);
    // Names resolve as anything in the gateway's namespace resolves
    // them: through the lab's resolv.conf for that host.
    ns.command_with_resolv_conf(&mut cmd, &lab.resolv_conf(host::GW))
        .map_err(|e| app_err(app, format!("entering the gateway's namespace: {e}")))?;
    let mut child = cmd
        .spawn()
        .map_err(|e| app_err(app, format!("starting {}: {e}", app.program())))?;
    lab.spare(child.id() as i32);
    // Ready when the WebUI answers on the namespace's loopback.
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let ready = poll_until(Duration::from_secs(15), Duration::from_millis(50), || {
        let exited = child.try_wait();
        async move {
            if let Ok(Some(status)) = exited {
                return ControlFlow::Break(Err(status));
            }
            match crate::probe::http_get(ns, target, "/", Duration::from_millis(500)).await {
                Ok(_) => ControlFlow::Break(Ok(())),
                Err(_) => ControlFlow::Continue(()),
            }
        }
    })
    .await;
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(status)) => {
            return Err(app_err(
                app,
                format!(
                    "{} exited ({status}) before its WebUI answered; its log:\n{}",
                    app.program(),
                    tail_of(&log_file)
                ),
            ));
        }
        Err(()) => {
            let _ = child.kill();
            return Err(app_err(
                app,
                format!(
                    "{}'s WebUI did not answer on {target} within 15 s; its log:\n{}",
                    app.program(),
                    tail_of(&log_file)
                ),
            ));
        }
    }
    Ok((child, creds))
}

impl Apps {
    /// Freezes the applications (SIGSTOP) while the lab resets the gateway's
    /// namespace and no kill switch stands there: in a deployment the
    /// dependents cannot outlive their gateway's namespace, so what they
    /// would send in that lab-made window is no gateway's doing.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Why `app` did not start, when it was asked for and did not.
    pub fn failure(&self, app: App) -> Option<&str> {
        self.failed
            .iter()
            .find(|(a, _)| *a == app)
            .map(|(_, why)| why.as_str())
    }

    /// The WebUI port of `app`, when it runs.
    pub fn port_of(&self, app: App) -> Option<u16> {
        self.ports.iter().find(|(a, _)| *a == app).map(|(_, p)| *p)
    }

    /// Lets them run again (SIGCONT), once a gateway has closed its kill
    /// switch (or, for one that does not say, once it has started).
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        for c in &self.children {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// Starts each `(app, port)` in the gateway's namespace, its files under
    /// the run's; returns once every WebUI answers (any HTTP status). One
    /// that does not start is in [`Apps::failed`] with the reason and its
    /// log tail, and the others run; an error only when none can be tried
    /// (a program not installed, the watch).
    pub async fn start(lab: &Lab, log: ServiceLog, apps: &[(App, u16)]) -> Result<Apps, LabError> {
        for (app, _) in apps {
            if let Err(why) = crate::target::process::executable(app.program()) {
                return Err(app_err(
                    *app,
                    format!("{why} (bash ci/setup.sh installs it)"),
                ));
            }
        }
        let ns = lab.ns(host::GW)?;
        // Closed until a gateway stands there: what they send at start-up
        // (DHT bootstrap, port mapping requests to the home router, ...)
        // goes nowhere, as in a deployment where they start behind their
        // gateway. The first scenario's reset removes the table.
        super::nft_in(ns, CLOSED_BEFORE_GATEWAY).map_err(|e| LabError::Service {
            service: "closing the gateway's namespace before the dependents start".into(),
            source: std::io::Error::other(e),
        })?;
        // The watch first: no answer can be missed.
        let pending: std::sync::Arc<std::sync::Mutex<HashMap<SocketAddr, String>>> =
            Default::default();
        let ports: Vec<u16> = apps.iter().map(|(_, p)| *p).collect();
        let names: Vec<(u16, &'static str)> = apps.iter().map(|(a, p)| (*p, a.name())).collect();
        let watch = Watch::start(ns, "eth0", move |frame, _| match exchange(frame, &ports) {
            Some(Exchange::Request { client, line, .. }) => {
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(client, line);
            }
            Some(Exchange::Answer { client, port }) => {
                if let Some(line) = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&client)
                {
                    let name = names
                        .iter()
                        .find(|(p, _)| *p == port)
                        .map_or("?", |(_, n)| *n);
                    log.record(
                        crate::lab::dependents::SERVICE,
                        client,
                        format!("{line} (answered by {name} on {port})"),
                    );
                }
            }
            None => {}
        })
        .map_err(|e| LabError::Service {
            service: "dependents' watch".into(),
            source: std::io::Error::other(e),
        })?;
        let mut started = Apps {
            children: Vec::new(),
            _watch: watch,
            credentials: Vec::new(),
            ports: Vec::new(),
            failed: Vec::new(),
        };
        for (app, port) in apps {
            let (app, port) = (*app, *port);
            match start_one(lab, ns, app, port).await {
                Ok((child, creds)) => {
                    started.children.push(child);
                    started.credentials.push((app, creds));
                    started.ports.push((app, port));
                }
                // The run goes on: the scenarios that need it fail with
                // this reason, the others use a stand-in on its port.
                Err(e) => {
                    let why = crate::errfmt::chain(&e);
                    tracing::warn!("{} did not start: {why}", app.name());
                    started.failed.push((app, why));
                }
            }
        }
        Ok(started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 13's nzbget has no /etc/nzbget.conf: the template under
    /// /usr/share is taken; with none, the message names every path tried.
    #[test]
    fn the_first_template_that_exists_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("etc.conf"), dir.path().join("share.conf"));
        std::fs::write(&b, "MainDir=~/downloads\n").unwrap();
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        let (used, text) = read_first(&[a, b]).unwrap();
        assert_eq!((used.as_str(), text.as_str()), (b, "MainDir=~/downloads\n"));
        let why = read_first(&[a, a]).unwrap_err();
        assert_eq!(why.0.len(), 2);
        assert_eq!(why.0[0].1.kind(), std::io::ErrorKind::NotFound);
        let why = why.to_string();
        assert!(
            why.starts_with(&format!("{a}: No such file")) && why.contains(&format!("; {a}: ")),
            "{why}"
        );
    }

    #[test]
    fn the_password_field_is_qbittorrents_pbkdf2() {
        // Cross-checked with Python: hashlib.pbkdf2_hmac("sha512",
        // b"adminadmin", bytes(range(16)), 100000, 64).
        let f = qbittorrent_password("adminadmin", &core::array::from_fn(|i| i as u8));
        assert_eq!(
            f,
            "@ByteArray(AAECAwQFBgcICQoLDA0ODw==:UC4grCR8uxnR4Gzyoule02IP9X8mRb7SaEfCylvs19kyzc76Vdb/0xQlSKu43sz2Dl4vz2SIZymUO3PvTxIfVQ==)"
        );
        let conf = qbittorrent_conf(8080, "lab-x", &f);
        assert!(conf.contains("WebUI\\Port=8080\n"));
        assert!(conf.contains("[LegalNotice]\nAccepted=true"));
        assert!(conf.contains("WebUI\\LocalHostAuth=false\n"));
        assert!(conf.contains("[BitTorrent]\nSession\\Port=51413\n"));
        assert!(!conf.contains("adminadmin"));
    }

    #[test]
    fn nzbgets_configuration_is_debians_with_the_labs_lines() {
        let template = "MainDir=~/downloads\nControlPort=6789\n# ControlPassword is secret\nControlPassword=tegbzn6789\nServer1.Active=yes\nWebDir=/usr/share/nzbget/webui/\n";
        let c = nzbget_conf(
            template,
            Path::new("/run/x/nzbget"),
            6789,
            "lab-u",
            "pw",
            Path::new("/run/x/ca.pem"),
        );
        assert!(!c.contains("tegbzn6789"));
        assert!(!c.contains("~/downloads"));
        assert!(c.contains("WebDir=/usr/share/nzbget/webui/\n"));
        assert!(c.contains("# ControlPassword is secret\n"));
        for line in [
            "MainDir=/run/x/nzbget",
            "ControlIP=0.0.0.0",
            "ControlPort=6789",
            "ControlUsername=lab-u",
            "ControlPassword=pw",
            "AuthorizedIP=127.0.0.1",
            "Server1.Active=yes",
            "Server1.Host=news.lab",
            "Server1.Port=563",
            "Server1.Encryption=yes",
            "CertCheck=yes",
            "CertStore=/run/x/ca.pem",
        ] {
            assert_eq!(c.lines().filter(|l| *l == line).count(), 1, "{line}: {c}");
        }
    }

    fn frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
        use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
        use pnet::packet::ipv4::MutableIpv4Packet;
        use pnet::packet::tcp::MutableTcpPacket;
        let mut tcp = vec![0u8; 20 + payload.len()];
        {
            let mut t = MutableTcpPacket::new(&mut tcp).unwrap();
            t.set_source(src.1);
            t.set_destination(dst.1);
            t.set_data_offset(5);
            t.set_payload(payload);
        }
        let mut ip = vec![0u8; 20 + tcp.len()];
        {
            let mut p = MutableIpv4Packet::new(&mut ip).unwrap();
            p.set_version(4);
            p.set_header_length(5);
            p.set_total_length((20 + tcp.len()) as u16);
            p.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
            p.set_source(src.0.into());
            p.set_destination(dst.0.into());
            p.set_payload(&tcp);
        }
        let mut eth = vec![0u8; 14 + ip.len()];
        {
            let mut e = MutableEthernetPacket::new(&mut eth).unwrap();
            e.set_ethertype(EtherTypes::Ipv4);
            e.set_payload(&ip);
        }
        eth
    }

    #[test]
    fn requests_and_answers_on_the_wire_are_told_apart() {
        let client = ([192, 168, 10, 10], 40000);
        let gw = ([172, 21, 0, 2], 8080);
        assert_eq!(
            exchange(
                &frame(
                    client,
                    gw,
                    b"GET /leakhound/abc HTTP/1.1\r\nHost: x\r\n\r\n"
                ),
                &[8080]
            ),
            Some(Exchange::Request {
                client: "192.168.10.10:40000".parse().unwrap(),
                port: 8080,
                line: "GET /leakhound/abc HTTP/1.1".into()
            })
        );
        assert_eq!(
            exchange(&frame(gw, client, b"HTTP/1.1 404 Not Found\r\n"), &[8080]),
            Some(Exchange::Answer {
                client: "192.168.10.10:40000".parse().unwrap(),
                port: 8080
            })
        );
        // Another port, a bare ACK, not HTTP: nothing.
        assert_eq!(
            exchange(&frame(client, gw, b"GET / HTTP/1.1\r\n"), &[9696]),
            None
        );
        assert_eq!(exchange(&frame(client, gw, b""), &[8080]), None);
        assert_eq!(exchange(&frame(client, gw, b"\x16\x03\x01"), &[8080]), None);
        assert_eq!(exchange(b"short", &[8080]), None);
    }
}
