//! The gateway under test as a child process inside the lab's `gw` host:
//! started with exactly the Gluetun variables a scenario gives it, its log
//! copied to a file line by line, and its "firewall closed" line turned into
//! an event the runner can wait on (no sleeping for readiness).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::lab::LabError;
use crate::lab::netns::Netns;

/// The line the gateway logs once its kill switch is in the kernel.
pub const FIREWALL_CLOSED: &str = "firewall closed";
/// Lines the gateway logs when its tunnel goes down and comes up.
pub const TUNNEL_DOWN: &str = "tunnel down";
pub const TUNNEL_UP: &str = "tunnel up";

/// How often the gateway's tunnel went down and came up (from its log).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TunnelEvents {
    pub downs: u64,
    pub ups: u64,
}

pub struct GatewayProc {
    pub child: tokio::process::Child,
    pub started: Instant,
    /// Set (to the time it was seen) when the gateway logs FIREWALL_CLOSED.
    pub firewall_closed: watch::Receiver<Option<Instant>>,
    /// Counts of the gateway's "tunnel down"/"tunnel up" lines: its
    /// acknowledgements of SIGUSR1/SIGUSR2.
    pub tunnel: watch::Receiver<TunnelEvents>,
    /// Ends when the gateway's stderr closes and its log is on disk.
    log_copied: Option<tokio::task::JoinHandle<()>>,
}

fn err(source: std::io::Error) -> LabError {
    LabError::Service {
        service: "gateway".into(),
        source,
    }
}

impl GatewayProc {
    /// Starts `exe gateway` inside `ns` with only `env` (and PATH, RUST_LOG).
    pub fn start(
        ns: &Netns,
        resolv_conf: &Path,
        exe: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        log: &Path,
    ) -> Result<GatewayProc, LabError> {
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("gateway")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("LEAKHOUND_GATEWAY_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        ns.command_with_resolv_conf(&mut cmd, resolv_conf)?;
        // The gateway starts with the signals it handles blocked: one sent
        // before its handlers exist waits as pending instead of killing it
        // (it unblocks them once its handlers are installed).
        // SAFETY: only sigprocmask between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(
                &mut cmd,
                crate::gateway::signals::block_in_child,
            );
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().map_err(err)?;
        let started = Instant::now();
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = watch::channel(None);
        let (tunnel_tx, tunnel_rx) = watch::channel(TunnelEvents::default());
        let path = log.to_path_buf();
        // Appending: a restarted gateway continues the same log.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let log_copied = tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(file);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(FIREWALL_CLOSED) {
                    let _ = tx.send(Some(Instant::now()));
                }
                if line.contains(TUNNEL_DOWN) {
                    tunnel_tx.send_modify(|e| e.downs += 1);
                } else if line.contains(TUNNEL_UP) {
                    tunnel_tx.send_modify(|e| e.ups += 1);
                }
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
            }
            let _ = file.flush().await;
        });
        Ok(GatewayProc {
            child,
            started,
            firewall_closed: rx,
            tunnel: tunnel_rx,
            log_copied: Some(log_copied),
        })
    }

    /// After the gateway exited: waits until everything it wrote is in the
    /// log file.
    pub async fn log_flushed(&mut self) {
        if let Some(t) = self.log_copied.take() {
            let _ = t.await;
        }
    }

    /// If the gateway has exited, waits until its log is on disk.
    pub async fn log_flushed_if_exited(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            self.log_flushed().await;
        }
    }

    pub fn pid(&self) -> Option<nix::unistd::Pid> {
        self.child
            .id()
            .map(|p| nix::unistd::Pid::from_raw(p as i32))
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<(), LabError> {
        let pid = self
            .pid()
            .ok_or_else(|| err(std::io::Error::other("the gateway has exited")))?;
        nix::sys::signal::kill(pid, sig)
            .map_err(|e| err(std::io::Error::from_raw_os_error(e as i32)))
    }

    /// SIGKILL, and wait until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 5 s.
    pub async fn stop(mut self) {
        let _ = self.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
