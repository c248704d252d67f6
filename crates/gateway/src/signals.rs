//! The signals the gateway answers (SIGTERM/SIGINT stop it, SIGUSR1 stops
//! its tunnel, SIGUSR2 starts it again), installed first thing.
//!
//! A signal sent before a process has installed its handler takes the
//! default action, which for SIGUSR1 is death. So the gateway installs its
//! handlers before anything else and only then unblocks these signals; a
//! parent that starts it with them blocked ([`block_in_child`], between fork
//! and exec) makes every signal sent from the moment the process exists wait
//! as pending instead of killing it. Signal masks and pending signals survive
//! `execve`.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use tokio::signal::unix::{SignalKind, signal};

/// The signals the gateway handles.
pub const HANDLED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    set
}

/// Blocks [`HANDLED`] in the calling thread. Meant for a parent's
/// `pre_exec` (only `sigprocmask`, async-signal-safe) so the gateway starts
/// with them pending rather than deadly.
pub fn block_in_child() -> std::io::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled_set()), None)
        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

/// What a signal asks of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Shutdown,
    StopTunnel,
    StartTunnel,
}

/// The installed handlers.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime context), then unblocks
    /// the signals in the calling thread, so that any that arrived earlier
    /// are delivered now, to the handlers.
    pub fn install() -> std::io::Result<Signals> {
        let s = Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        };
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&handled_set()), None)
            .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
        Ok(s)
    }

    /// The next request (cancel-safe).
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Shutdown,
            _ = self.int.recv() => Request::Shutdown,
            _ = self.usr1.recv() => Request::StopTunnel,
            _ = self.usr2.recv() => Request::StartTunnel,
        }
    }
}
