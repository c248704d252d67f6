//! The readiness events the harness reads (leakhound's own
//! `LEAKHOUND_READINESS_FD`, set only by `leakhound run` for the built-in
//! gateway): the descriptor it names is taken at start and each fact
//! ([`ReadinessEvent`]: the kill switch closed, a tunnel up) is written to
//! it as one JSON line. Without the variable nothing is written; the log
//! lines say the same for people either way.

use std::io::Write;
use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

pub use leakhound_proto::readiness::{READINESS_FD_VARIABLE, ReadinessEvent};

/// Why the descriptor the variable names cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessFdError {
    #[error("{READINESS_FD_VARIABLE}={value:?}: not a descriptor number above 2")]
    NotADescriptor { value: String },
    #[error("{READINESS_FD_VARIABLE}={fd}: not an open descriptor")]
    NotOpen {
        fd: RawFd,
        #[source]
        source: nix::errno::Errno,
    },
}

struct Sink {
    file: Mutex<std::fs::File>,
    started: Instant,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Takes the descriptor `value` (the variable's value) names, once, for
/// the events of a gateway that started at `started`: it is marked
/// close-on-exec so the hook commands the gateway runs do not inherit it.
pub fn open(value: &str, started: Instant) -> Result<(), ReadinessFdError> {
    let fd: RawFd = value
        .trim()
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| ReadinessFdError::NotADescriptor {
            value: value.to_string(),
        })?;
    // SAFETY: only borrowed for the two fcntl calls below, which fail
    // harmlessly (EBADF) on a descriptor that is not open.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(
        borrowed,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|source| ReadinessFdError::NotOpen { fd, source })?;
    if SINK.get().is_some() {
        return Ok(());
    }
    // SAFETY: the descriptor is open (fcntl succeeded), above the standard
    // three, and given to this process for this alone by whoever set the
    // variable; nothing else here uses it, so the File owns it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = SINK.set(Sink {
        file: Mutex::new(file),
        started,
    });
    Ok(())
}

/// Writes `event` for the harness, if it asked for events (a harness that
/// went away is no error of the gateway's).
pub fn emit(event: &ReadinessEvent) {
    if let Some(sink) = SINK.get()
        && let Ok(mut f) = sink.file.lock()
        && let Err(e) = f.write_all(event.to_line().as_bytes())
    {
        tracing::debug!("{READINESS_FD_VARIABLE}: writing an event: {e}");
    }
}

/// A tunnel is up: [`ReadinessEvent::TunnelUp`], timed from the start
/// [`open`] was given.
pub fn tunnel_up() {
    if let Some(sink) = SINK.get() {
        emit(&ReadinessEvent::TunnelUp {
            since_start_us: micros(sink.started.elapsed()),
        });
    }
}

/// A duration in whole microseconds.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::fd::IntoRawFd;

    #[test]
    fn events_go_to_the_named_descriptor_as_json_lines() {
        for bad in ["", "x", "1", "-4"] {
            assert!(matches!(
                open(bad, Instant::now()),
                Err(ReadinessFdError::NotADescriptor { .. })
            ));
        }
        // A number that is no open descriptor here.
        let e = open("1000999", Instant::now()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("LEAKHOUND_READINESS_FD=1000999: not an open descriptor"),
            "{e}"
        );
        let (read, write) = nix::unistd::pipe().unwrap();
        let fd = write.into_raw_fd();
        open(&fd.to_string(), Instant::now()).unwrap();
        // Close-on-exec, so hook commands do not inherit it.
        // SAFETY: the sink owns the descriptor and keeps it open.
        let flags = nix::fcntl::fcntl(
            unsafe { BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )
        .unwrap();
        assert!(
            nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
        );
        let closed = ReadinessEvent::KillSwitchClosed {
            since_start_us: 10,
            batch_us: Some(5),
            verified_us: 3,
        };
        emit(&closed);
        tunnel_up();
        let mut lines = std::io::BufReader::new(std::fs::File::from(read)).lines();
        let first = lines.next().unwrap().unwrap();
        assert_eq!(ReadinessEvent::from_line(&first).unwrap(), closed);
        let second = lines.next().unwrap().unwrap();
        assert!(matches!(
            ReadinessEvent::from_line(&second).unwrap(),
            ReadinessEvent::TunnelUp { .. }
        ));
    }
}
