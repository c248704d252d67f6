//! The gateway's command line, shared by its own thin binary
//! (`leakhound-gateway [healthcheck]`) and the harness's `leakhound gateway
//! [healthcheck]`: configuration from the environment only, errors shown
//! with their causes, exit statuses for supervisors and Docker.

use std::process::ExitCode;
use std::time::Duration;

use leakhound_net::errfmt::chain;

use crate::GatewayConfig;

/// A log line's writer: every registered secret
/// ([`leakhound_proto::scrub`]) replaced before it reaches stderr, and,
/// without colours, control bytes shown escaped (a logged message may
/// quote anything). The fmt layer writes each event in one `write`, so a
/// secret is never split.
struct Redacting<W> {
    inner: W,
    sanitize: bool,
}

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use leakhound_proto::scrub;
        let text = scrub::redact(&String::from_utf8_lossy(buf));
        let text = if self.sanitize {
            scrub::sanitize_capped(&text, usize::MAX)
        } else {
            text
        };
        self.inner.write_all(text.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Registers the secrets of this process's environment before anything
/// can print them: secret-looking names' values and the credentials
/// inside UP/DOWN commands.
pub fn register_env_secrets() {
    use leakhound_proto::scrub;
    for (k, v) in std::env::vars() {
        scrub::register_variable(&k, &v);
    }
}

/// Logs to stderr, secrets redacted (harness and gateway alike);
/// `LEAKHOUND_LOG` or `RUST_LOG` choose the level.
pub fn init_tracing(default: &str) {
    register_env_secrets();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAKHOUND_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || Redacting {
            inner: std::io::stderr(),
            sanitize: !ansi,
        })
        .with_ansi(ansi)
        .init();
}

/// `healthcheck`: asks the running gateway's health server
/// (HEALTH_SERVER_ADDRESS) and turns the answer into an exit status (0
/// healthy, 1 not) for Docker's HEALTHCHECK.
pub fn healthcheck_main() -> ExitCode {
    let addr = std::env::var("HEALTH_SERVER_ADDRESS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| crate::config::DEFAULT_HEALTH_SERVER.into());
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.clone()
    };
    let Ok(sock) = full.parse::<std::net::SocketAddr>() else {
        eprintln!("HEALTH_SERVER_ADDRESS={addr:?} is not ADDRESS:PORT");
        return ExitCode::from(1);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no health server on {sock}: starting a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let asked = rt.block_on(crate::health::ask(sock, Duration::from_secs(3)));
    match asked {
        Ok((true, body)) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((false, body)) => {
            println!("{body}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("no health server on {sock}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the gateway from its environment until SIGTERM/SIGINT. Exit status:
/// 0 stopped cleanly, 1 failed while running, 2 refused its configuration
/// (the namespace is then closed).
pub fn gateway_main() -> ExitCode {
    let started = std::time::Instant::now();
    init_tracing("info");
    // The harness's descriptor for readiness events, if it gave one.
    if let Ok(v) = std::env::var(crate::readiness::READINESS_FD_VARIABLE)
        && let Err(e) = crate::readiness::open(&v, started)
    {
        tracing::warn!("{e}: no readiness events are written");
    }
    // A gateway's work is small and bursty: two workers whatever the host's
    // core count, and glibc limited to two malloc arenas (it would make one
    // per thread that ever allocates, each holding freed memory).
    // SAFETY: called before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("leakhound gateway: {e}");
            return ExitCode::from(2);
        }
    };
    // The signal handlers first: a stop sent the moment this process exists
    // (a runner may have started it with them blocked, so they wait as
    // pending) is honoured, never fatal.
    let signals = {
        let _in_rt = rt.enter();
        match crate::signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("leakhound gateway: installing signal handlers: {e}");
                return ExitCode::from(2);
            }
        }
    };
    // A gateway that cannot run closes its namespace (everything but
    // loopback) before it exits: bad input never leaves it open.
    let lock_down = |rt: &tokio::runtime::Runtime| {
        match rt.block_on(crate::lock_down()) {
        Ok(()) => "the namespace is closed (everything but loopback) until a gateway starts with a good configuration".to_string(),
        Err(le) => format!("and closing the namespace failed too: {}", chain(&le)),
    }
    };
    // Everything is checked before anything is touched.
    let cfg = match GatewayConfig::from_env(std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            let closed = lock_down(&rt);
            tracing::error!("refusing to start: {e}; {closed}");
            eprintln!(
                "{}",
                leakhound_proto::scrub::redact(&format!(
                    "leakhound gateway: refusing to start: {e}; {closed}"
                ))
            );
            return ExitCode::from(2);
        }
    };
    // Its keys as they would be written (base64), whatever they came from.
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        leakhound_proto::scrub::register(&b64.encode(cfg.private_key));
        if let Some(k) = cfg.preshared_key {
            leakhound_proto::scrub::register(&b64.encode(k));
        }
    }
    let firewall_wanted = cfg.firewall.enabled;
    // The kill switch on this thread, before the runtime's threads have any
    // work: nothing waits for a scheduler between exec and closed rules.
    let result = crate::close_kill_switch(&cfg, started)
        .and_then(|closed| rt.block_on(crate::run(cfg, closed, signals)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = chain(&e);
            let closed = if firewall_wanted {
                lock_down(&rt)
            } else {
                "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT=off: left open".into()
            };
            tracing::error!("{e}; {closed}");
            eprintln!(
                "{}",
                leakhound_proto::scrub::redact(&format!("leakhound gateway: {e}; {closed}"))
            );
            ExitCode::from(1)
        }
    }
}

/// `hold`: does nothing until SIGTERM or SIGINT. A container running this
/// holds a network namespace for others to join (`--network container:`),
/// as Kubernetes' pause container does: leakhound's container target builds
/// the lab's gateway host in it.
pub fn hold_main() -> ExitCode {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    if let Err(e) = set.thread_block() {
        eprintln!("leakhound-gateway hold: blocking signals: {e}");
        return ExitCode::from(2);
    }
    match set.wait() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leakhound-gateway hold: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn log_lines_lose_their_secrets_and_control_bytes() {
        leakhound_proto::scrub::register("canary-log-writer-1414");
        let line = "up command done: curl canary-log-writer-1414 \u{1b}[2J\u{0}\n";
        let mut w = super::Redacting {
            inner: Vec::new(),
            sanitize: true,
        };
        w.write_all(line.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "up command done: curl <redacted> \\x1b[2J\\x00\n"
        );
        // With colours (a terminal) only the secret goes.
        let mut w = super::Redacting {
            inner: Vec::new(),
            sanitize: false,
        };
        w.write_all(line.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "up command done: curl <redacted> \u{1b}[2J\u{0}\n"
        );
    }
}
