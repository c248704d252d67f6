//! Gateways that are processes in the lab's `gw` namespace: the built-in
//! one (`leakhound gateway`, this very binary) and any program a user
//! names (`--target command -- PROGRAM ARGS`).
//!
//! Both run in their own process group (a crash is SIGKILL to all of it)
//! with exactly the given variables plus PATH, their output copied line by
//! line to the scenario's gateway log, in a private mount namespace with the
//! run's resolv.conf on /etc/resolv.conf. A command also gets a fresh /run,
//! with the run's files bound back at their own paths. Logs are copied,
//! never read for meaning: the built-in says when it is ready as events on
//! a pipe of its own ([`READINESS_FD_VARIABLE`], [`super::Readiness`]).

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::{
    GatewayEnd, GatewayHandle, GatewayTarget, READINESS_FD_VARIABLE, Readiness, ReadinessEvent,
    StartContext, TargetError, TargetKind, builtin_capabilities,
};
use crate::model::scenario::Capability;

/// How long a stopped gateway gets to exit before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The built-in gateway: `leakhound gateway` in the lab.
#[derive(Debug)]
pub struct Builtin {
    name: String,
    exe: PathBuf,
    caps: BTreeSet<Capability>,
}

impl Builtin {
    pub fn new(name: &str, exe: PathBuf) -> Self {
        Builtin {
            name: name.to_string(),
            exe,
            caps: builtin_capabilities(),
        }
    }
}

/// Any program, started as the gateway.
#[derive(Debug)]
pub struct Command {
    name: String,
    argv: Vec<String>,
    caps: BTreeSet<Capability>,
}

impl Command {
    pub fn new(name: &str, argv: Vec<String>, caps: BTreeSet<Capability>) -> Self {
        Command {
            name: name.to_string(),
            argv,
            caps,
        }
    }
}

/// Why a program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("{} is not executable", .0.display())]
    NotExecutable(PathBuf),
    #[error("{0}: no such program")]
    NotFound(String),
}

/// Whether `program` (a path, or a name looked up on PATH) is an
/// executable file; `Err` says why not.
pub fn executable(program: &str) -> Result<(), ProgramError> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    for c in &candidates {
        if let Ok(m) = std::fs::metadata(c)
            && m.is_file()
        {
            return if m.permissions().mode() & 0o111 != 0 {
                Ok(())
            } else {
                Err(ProgramError::NotExecutable(c.clone()))
            };
        }
    }
    Err(ProgramError::NotFound(program.to_string()))
}

#[async_trait]
impl GatewayTarget for Builtin {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> TargetKind {
        TargetKind::Builtin
    }
    fn capabilities(&self) -> &BTreeSet<Capability> {
        &self.caps
    }
    fn describe(&self) -> String {
        format!("{} gateway", self.exe.display())
    }
    async fn preflight(&self) -> Result<(), TargetError> {
        executable(&self.exe.display().to_string())
            .map_err(|e| TargetError::unusable(&self.name, e))
    }
    async fn start(&self, ctx: StartContext<'_>) -> Result<Box<dyn GatewayHandle>, TargetError> {
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.arg("gateway")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("LEAKHOUND_GATEWAY_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .envs(&ctx.env);
        let err = |source| TargetError::Start {
            target: self.name.clone(),
            source,
        };
        // Its readiness events come on a pipe of its own: both ends
        // close-on-exec here, the writing end inherited by it alone.
        let (events, events_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| err(std::io::Error::from(e)))?;
        let tx = events_tx.as_raw_fd();
        cmd.env(READINESS_FD_VARIABLE, tx.to_string());
        ctx.ns
            .command_with_resolv_conf(&mut cmd, ctx.resolv_conf)
            .map_err(|e| err(std::io::Error::other(e)))?;
        // The gateway starts with the signals it handles blocked: one sent
        // before its handlers exist waits as pending instead of killing it
        // (it unblocks them once its handlers are installed).
        // SAFETY: only sigprocmask and fcntl between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(
                &mut cmd,
                crate::gateway::signals::block_in_child,
            );
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                inherit(tx).map_err(std::io::Error::from)
            });
        }
        let handle = ProcessHandle::spawn(cmd, ctx.log, Some(events)).map_err(err);
        // The gateway has its copy; this one would keep the pipe open.
        drop(events_tx);
        handle
    }
}

#[async_trait]
impl GatewayTarget for Command {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> TargetKind {
        TargetKind::Command
    }
    fn capabilities(&self) -> &BTreeSet<Capability> {
        &self.caps
    }
    fn describe(&self) -> String {
        self.argv.join(" ")
    }
    async fn preflight(&self) -> Result<(), TargetError> {
        executable(&self.argv[0]).map_err(|e| TargetError::unusable(&self.name, e))
    }
    async fn start(&self, ctx: StartContext<'_>) -> Result<Box<dyn GatewayHandle>, TargetError> {
        let mut cmd = std::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&ctx.env);
        let err = |source| TargetError::Start {
            target: self.name.clone(),
            source,
        };
        ctx.ns
            .command_with_private_run(&mut cmd, ctx.resolv_conf, &[ctx.run_dir])
            .map_err(|e| err(std::io::Error::other(e)))?;
        ProcessHandle::spawn(cmd, ctx.log, None).map_err(err)
    }
}

/// In the child between fork and exec: descriptor `fd` stays open across
/// the exec (its close-on-exec flag cleared).
fn inherit(fd: std::os::fd::RawFd) -> nix::Result<()> {
    // SAFETY: `fd` is the pipe's writing end, open in the parent until the
    // child has been spawned, so open in the child too.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )?;
    Ok(())
}

/// A gateway process and the task copying its output to the log.
pub struct ProcessHandle {
    child: tokio::process::Child,
    pgid: Option<Pid>,
    started: Instant,
    log_copied: Option<tokio::task::JoinHandle<()>>,
    /// The built-in's readiness events as they come.
    readiness: Option<watch::Receiver<Readiness>>,
    exit: Option<GatewayEnd>,
}

impl ProcessHandle {
    /// Spawns `cmd` in a process group of its own, stdout and stderr to
    /// `log`; `events` is the reading end of the built-in's readiness pipe.
    fn spawn(
        cmd: std::process::Command,
        log: &std::path::Path,
        events: Option<OwnedFd>,
    ) -> std::io::Result<Box<dyn GatewayHandle>> {
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // Appending: a restarted gateway continues the same log.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = cmd.spawn()?;
        let started = Instant::now();
        let pgid = child.id().map(|p| Pid::from_raw(p as i32));
        let readiness = events.map(read_events).transpose()?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for out in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let log_copied = tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(file);
            while let Some(line) = rx.recv().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
            }
            let _ = file.flush().await;
        });
        Ok(Box::new(ProcessHandle {
            child,
            pgid,
            started,
            log_copied: Some(log_copied),
            readiness,
            exit: None,
        }))
    }

    fn ended(status: std::io::Result<std::process::ExitStatus>) -> GatewayEnd {
        match status {
            Ok(s) => s.into(),
            Err(e) => GatewayEnd::Unknown(std::sync::Arc::new(e)),
        }
    }

    fn killpg(&self, sig: Signal) {
        if let Some(g) = self.pgid {
            let _ = killpg(g, sig);
        }
    }
}

/// Reads the built-in's readiness events from `fd` (the pipe's reading
/// end) as they come, each stamped with when it was read; the receiver
/// keeps them after the gateway has gone. A line that is no event is
/// logged by the harness and skipped.
fn read_events(fd: OwnedFd) -> std::io::Result<watch::Receiver<Readiness>> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let (tx, rx) = watch::channel(Readiness::default());
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match ReadinessEvent::from_line(&line) {
                Ok(e) => tx.send_modify(|r| r.events.push((Instant::now(), e))),
                Err(e) => tracing::warn!(
                    "the gateway's readiness events: {}",
                    crate::errfmt::chain(&e)
                ),
            }
        }
    });
    Ok(rx)
}

#[async_trait]
impl GatewayHandle for ProcessHandle {
    fn started(&self) -> Instant {
        self.started
    }

    fn try_exited(&mut self) -> Option<GatewayEnd> {
        if self.exit.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.exit = Some(s.into());
        }
        self.exit.clone()
    }

    async fn exited(&mut self) -> GatewayEnd {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        let e = Self::ended(self.child.wait().await);
        self.exit = Some(e.clone());
        e
    }

    async fn stop(mut self: Box<Self>) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            self.killpg(Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Whatever else of its group is left goes too.
        self.killpg(Signal::SIGKILL);
        self.log_flushed().await;
    }

    async fn kill(mut self: Box<Self>) {
        self.killpg(Signal::SIGKILL);
        let _ = self.child.kill().await;
        self.log_flushed().await;
    }

    fn readiness(&self) -> Option<watch::Receiver<Readiness>> {
        self.readiness.clone()
    }

    async fn log_flushed(&mut self) {
        if self.try_exited().is_some()
            && let Some(t) = self.log_copied.take()
        {
            // The pipes close when the whole group has gone; a child that
            // outlives the gateway must not hold this up for long.
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child.id().map(|p| Pid::from_raw(p as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_must_exist_and_be_executable() {
        assert!(executable("sh").is_ok());
        assert!(executable("/bin/sh").is_ok());
        let e = executable("/nonexistent/gw.sh").unwrap_err();
        assert_eq!(e, ProgramError::NotFound("/nonexistent/gw.sh".into()));
        assert!(e.to_string().contains("no such program"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gw.sh");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        let e = executable(&f.display().to_string()).unwrap_err();
        assert!(e.to_string().contains("is not executable"), "{e}");
    }
}
