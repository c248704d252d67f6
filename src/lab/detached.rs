//! Detached labs (`leakhound lab up` / `lab down`): a lab with its services
//! and a gateway, kept by a background process of its own until `lab down`,
//! so that something else (an audit, a person with `ip netns exec`) can use
//! it. The process holds the lab's run lock for as long as it lives, which
//! is what makes the reaper of any later run leave the lab alone; it writes
//! a state file under `/run/leakhound/labs/` saying where everything is.
//! This module owns the state file, starting the process and waiting for it
//! to be ready, and stopping it; the lab itself is built by the process
//! (`lab serve`, hidden) exactly as `lab` builds one in the foreground.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::netns;

/// What a detached lab's process tells the world: its state file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    /// The lab's run id (its namespaces are `lh-ID-HOST`).
    pub id: String,
    /// The process that keeps it (SIGTERM removes the lab).
    pub pid: u32,
    /// The gateway's namespace, for `audit --netns`.
    pub gateway_netns: String,
    /// The gateway's process.
    pub gateway_pid: Option<u32>,
    /// Every host's namespace, by host.
    pub namespaces: BTreeMap<String, String>,
    /// Where its logs go (the lab's and the gateway's).
    pub logs: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DetachedError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the state file {path}")]
    State {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the lab's process ended before it was ready; its log {log} ends with:\n{tail}")]
    NotReady { log: String, tail: String },
    #[error("no detached lab is up (`leakhound lab up` starts one)")]
    NoneUp,
    #[error("several labs are up ({0}): name one")]
    Several(String),
    #[error("no detached lab {0} is up")]
    NoSuch(String),
    #[error("lab {0}'s process did not end within {1:?} of SIGTERM")]
    Stuck(String, Duration),
}

/// Where the state files live.
pub fn state_dir() -> PathBuf {
    Path::new(netns::RUN_DIR).join("labs")
}

fn state_path(id: &str) -> PathBuf {
    state_dir().join(format!("{id}.json"))
}

/// Written by the lab's process once everything is up (atomically).
pub fn write_state(s: &LabState) -> Result<(), DetachedError> {
    std::fs::create_dir_all(state_dir())?;
    let tmp = state_dir().join(format!(".{}.json.tmp", s.id));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(s).expect("state serializes"),
    )?;
    std::fs::rename(tmp, state_path(&s.id))?;
    Ok(())
}

/// Removed by the lab's process as it goes (and by `lab down`, the reaper).
pub fn remove_state(id: &str) {
    let _ = std::fs::remove_file(state_path(id));
}

/// The labs that are up: state files whose process still holds the run's
/// lock (files of dead ones are left to the reaper).
pub fn list_up() -> Result<Vec<LabState>, DetachedError> {
    let mut v = Vec::new();
    let dir = match std::fs::read_dir(state_dir()) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e.into()),
    };
    for e in dir.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read(&path)?;
        let s: LabState = serde_json::from_slice(&text).map_err(|source| DetachedError::State {
            path: path.display().to_string(),
            source,
        })?;
        if netns::run_is_alive(&s.id) {
            v.push(s);
        }
    }
    v.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(v)
}

/// The lab `id` names, or the only one that is up.
pub fn find(id: Option<&str>) -> Result<LabState, DetachedError> {
    let up = list_up()?;
    match id {
        Some(id) => up
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| DetachedError::NoSuch(id.to_string())),
        None => match up.len() {
            0 => Err(DetachedError::NoneUp),
            1 => Ok(up.into_iter().next().expect("one")),
            _ => Err(DetachedError::Several(
                up.iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        },
    }
}

/// The line the lab's process prints on its standard output once ready.
pub const READY: &str = "leakhound-lab-ready ";

/// Starts `exe` with `args` (the hidden `lab serve`) in a session of its
/// own, its log in `log`, and waits until it says it is ready (its first
/// line on standard output) or ends.
pub fn spawn(
    exe: &Path,
    args: &[OsString],
    env: &[(String, String)],
    log: &Path,
) -> Result<LabState, DetachedError> {
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::File::create(log)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log_file);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork
    // and exec. A session of its own: the shell's Ctrl-C and hang-up do not
    // reach the lab.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(out).lines();
    let ready = lines.find_map(|l| l.ok()?.strip_prefix(READY).map(str::to_string));
    match ready {
        Some(json) => {
            // The process lives on; nobody waits for it but init.
            drop(child);
            serde_json::from_str(&json).map_err(|source| DetachedError::State {
                path: "(the lab's ready line)".into(),
                source,
            })
        }
        None => {
            let _ = child.wait();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            Err(DetachedError::NotReady {
                log: log.display().to_string(),
                tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            })
        }
    }
}

/// Stops a detached lab: SIGTERM to its process, then waits (up to `wait`)
/// until the process has let go of the run's lock, i.e. has removed the lab
/// and ended. Anything a crash left behind is the reaper's.
pub fn stop(s: &LabState, wait: Duration) -> Result<(), DetachedError> {
    let pid = nix::unistd::Pid::from_raw(s.pid as i32);
    match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => return Err(std::io::Error::from(e).into()),
    }
    let id = s.id.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Blocks until the holder is gone (or the file is, with it).
        let _ = tx.send(netns::wait_run_ended(&id));
    });
    match rx.recv_timeout(wait) {
        Ok(r) => r?,
        Err(_) => return Err(DetachedError::Stuck(s.id.clone(), wait)),
    }
    remove_state(&s.id);
    Ok(())
}
