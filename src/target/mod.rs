//! What is under test: the gateway as a seam. A [`GatewayTarget`] starts a
//! gateway in the lab's `gw` namespace with an environment and says what it
//! can do ([`Capability`]); the [`GatewayHandle`] it returns is stopped,
//! crashed, and watched for an exit. Everything else is judged from outside
//! by the runner, the same way for every target: the provider sees the
//! handshake, whoami sees the exit address, the health endpoint answers,
//! `PUT /v1/vpn/status` stops and starts the tunnel where the target has a
//! control server, and otherwise the tunnel dies from outside.
//!
//! Targets: the built-in gateway ([`process::Builtin`]), any program
//! ([`process::Command`]), a container image ([`container::Container`]).
//! The contract a foreign gateway implements is in `docs/targets.md`.

pub mod container;
pub mod gluetun;
pub mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::lab::netns::Netns;
use crate::model::scenario::Capability;
pub use crate::model::targets::TargetKind;
pub use leakhound_proto::readiness::{READINESS_FD_VARIABLE, ReadinessEvent};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target}")]
    Unusable {
        target: String,
        #[source]
        why: Box<Unusable>,
    },
    #[error("starting target {target}")]
    Start {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("targets file {path}: {message}")]
    File {
        path: String,
        message: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl TargetError {
    /// Target `target` cannot work at all, for this reason.
    pub fn unusable(target: impl Into<String>, why: impl Into<Unusable>) -> TargetError {
        TargetError::Unusable {
            target: target.into(),
            why: Box::new(why.into()),
        }
    }
}

/// Why a target cannot work at all.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    /// Its description is wrong.
    #[error(transparent)]
    Spec(#[from] crate::model::targets::TargetsError),
    /// Its program is not there, or not executable.
    #[error(transparent)]
    Program(#[from] process::ProgramError),
    /// Docker, the image or the container.
    #[error(transparent)]
    Container(#[from] container::ContainerError),
}

/// How a gateway under test ended. Its text is what reports and messages
/// have always said of it: a process's as its exit status shows it
/// (`exit status: 2`, `signal: 9 (SIGKILL)`), a container's as the engine
/// gives it (`container exit status: 2`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayEnd {
    /// The process exited with this code.
    #[error("exit status: {0}")]
    Exited(i32),
    /// The process was killed by this signal.
    #[error(
        "signal: {signal}{}{}",
        signal_name(*signal),
        if *core_dumped { " (core dumped)" } else { "" }
    )]
    Signalled { signal: i32, core_dumped: bool },
    /// A wait status that is neither (not seen from a plain wait).
    #[error("unrecognised wait status: {0} {0:#x}")]
    Unrecognised(i32),
    /// Waiting for the process failed: how it ended is unknown.
    #[error("its status is unknown: {0}")]
    Unknown(#[source] Arc<std::io::Error>),
    /// The container exited with this code (the engine's word).
    #[error("container exit status: {0}")]
    ContainerExited(i64),
    /// The engine reported the container's end with an error, no code.
    #[error("the container ended ({0})")]
    ContainerLost(#[source] Arc<bollard::errors::Error>),
    /// The engine stopped reporting on the container without a word.
    #[error("the container ended")]
    ContainerGone,
}

/// ` (SIGKILL)` for a known signal number, as std's exit status shows it.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| format!(" ({})", s.as_str()))
        .unwrap_or_default()
}

impl From<std::process::ExitStatus> for GatewayEnd {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(code), _) => GatewayEnd::Exited(code),
            (None, Some(signal)) => GatewayEnd::Signalled {
                signal,
                core_dumped: s.core_dumped(),
            },
            (None, None) => GatewayEnd::Unrecognised(s.into_raw()),
        }
    }
}

/// What a gateway has said of its readiness so far: its events
/// ([`ReadinessEvent`], on the descriptor [`READINESS_FD_VARIABLE`] names),
/// each with when the harness read it.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub events: Vec<(Instant, ReadinessEvent)>,
}

impl Readiness {
    /// When the gateway said its kill switch was closed (the first time).
    pub fn kill_switch_closed(&self) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, e)| matches!(e, ReadinessEvent::KillSwitchClosed { .. }))
            .map(|(at, _)| *at)
    }
}

/// Where and with what a gateway is started.
pub struct StartContext<'a> {
    /// The lab's `gw` namespace.
    pub ns: &'a Netns,
    /// The run's resolv.conf for the gateway host (bind-mounted at
    /// /etc/resolv.conf in the gateway's private mount namespace).
    pub resolv_conf: &'a Path,
    /// The run's own files (CA, auth and status files the variables name),
    /// visible at the same path to the gateway.
    pub run_dir: &'a Path,
    /// Exactly the variables the gateway gets (already filtered for foreign
    /// targets), besides PATH.
    pub env: BTreeMap<String, String>,
    /// Where its output goes (appended: a restarted gateway continues it).
    pub log: &'a Path,
    /// The container holding the gateway host's namespace, for targets
    /// that join it ([`GatewayTarget::needs_holder`]).
    pub holder: Option<&'a str>,
}

/// A gateway under test.
#[async_trait]
pub trait GatewayTarget: Send + Sync {
    /// Unique among the targets of a run (it goes into JUnit classnames).
    fn name(&self) -> &str;
    /// builtin, command or container.
    fn kind(&self) -> TargetKind;
    /// What it offers beyond start, stop and kill (declared, not probed: a
    /// declared capability that does not work is a failure).
    fn capabilities(&self) -> &BTreeSet<Capability>;
    /// The command line or image, for reports.
    fn describe(&self) -> String;
    /// Foreign targets get Gluetun's variables only; the built-in (and any
    /// target declaring `leakhound-variables`) gets leakhound's own
    /// extensions too.
    fn foreign(&self) -> bool {
        !self
            .capabilities()
            .contains(&Capability::LeakhoundVariables)
    }
    /// The image of the holder container whose namespace the lab's
    /// gateway host must be (a container target joins it); `None` for
    /// targets that need none.
    fn holder_image(&self) -> Option<String> {
        None
    }
    /// Variables the target's preset sets over every scenario's (the
    /// `gluetun` preset's, [`gluetun::lab_variables`]); none for others.
    fn preset_variables(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Checks that need no lab (the program exists and is executable, the
    /// image exists locally): a target that cannot work stops the run
    /// before any scenario (exit 2).
    async fn preflight(&self) -> Result<(), TargetError>;
    /// Starts a gateway.
    async fn start(&self, ctx: StartContext<'_>) -> Result<Box<dyn GatewayHandle>, TargetError>;
}

/// A started gateway.
#[async_trait]
pub trait GatewayHandle: Send {
    /// When it was started.
    fn started(&self) -> Instant;
    /// How it ended, if it has (non-blocking).
    fn try_exited(&mut self) -> Option<GatewayEnd>;
    /// Resolves when it ends, with how (cancel-safe).
    async fn exited(&mut self) -> GatewayEnd;
    /// SIGTERM (or `docker stop`), then SIGKILL after a grace.
    async fn stop(self: Box<Self>);
    /// A crash: SIGKILL to the whole gateway (its process group, or the
    /// container).
    async fn kill(self: Box<Self>);
    /// What the built-in gateway has said of its readiness so far (its
    /// events, [`Readiness`]); others say nothing.
    fn readiness(&self) -> Option<watch::Receiver<Readiness>> {
        None
    }
    /// Waits until everything it wrote is in its log.
    async fn log_flushed(&mut self);
    /// The main process's id, where there is one (tests send it signals).
    fn pid(&self) -> Option<nix::unistd::Pid>;
}

/// The variables a target gets: all of them for the built-in; for a
/// foreign gateway, Gluetun's alone (leakhound's own extensions removed);
/// then its preset's, over the scenario's.
pub fn variables_for(
    target: &dyn GatewayTarget,
    env: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = if target.foreign() {
        env.into_iter()
            .filter(|(k, _)| !crate::gateway::config::OWN_VARIABLES.contains(&k.as_str()))
            .collect()
    } else {
        env
    };
    for (k, v) in target.preset_variables() {
        env.insert(k.to_string(), v);
    }
    env
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

pub use crate::model::targets::TargetSpec;

/// Reads a targets file (TOML: `[[target]]` with name, kind, argv or
/// image, capabilities).
pub fn load_targets_file(path: &Path) -> Result<Vec<TargetSpec>, TargetError> {
    let err = |message: Box<dyn std::error::Error + Send + Sync>| TargetError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.into()))?;
    crate::model::targets::parse(&text).map_err(|e| err(e.into()))
}

/// The built-in target's capabilities: everything.
pub fn builtin_capabilities() -> BTreeSet<Capability> {
    crate::model::scenario::CAPABILITIES
        .iter()
        .map(|(_, c, _)| *c)
        .collect()
}

/// Builds a target from its description. `exe` is leakhound's own binary
/// (the built-in gateway is `exe gateway`).
pub fn from_spec(spec: &TargetSpec, exe: &Path) -> Result<Arc<dyn GatewayTarget>, TargetError> {
    let caps =
        crate::model::targets::check(spec).map_err(|e| TargetError::unusable(&spec.name, e))?;
    // `check` has seen that the kind is known and has what it needs.
    Ok(match (spec.kind, &spec.image) {
        (TargetKind::Command, _) => {
            Arc::new(process::Command::new(&spec.name, spec.argv.clone(), caps))
        }
        (TargetKind::Container, Some(image)) => Arc::new(container::Container::new(
            &spec.name,
            image.clone(),
            exe.to_path_buf(),
            caps,
        )),
        (TargetKind::Gluetun, Some(image)) => Arc::new(container::Container::gluetun(
            &spec.name,
            image.clone(),
            exe.to_path_buf(),
            caps,
        )),
        _ => Arc::new(process::Builtin::new(&spec.name, exe.to_path_buf())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_targets_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("targets.toml");
        std::fs::write(
            &p,
            "[[target]]\nname = \"ours\"\nkind = \"builtin\"\n\n[[target]]\nname = \"wg-quick\"\nkind = \"command\"\nargv = [\"./gw.sh\", \"--x\"]\ncapabilities = [\"health-server\"]\n",
        )
        .unwrap();
        let t = load_targets_file(&p).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].argv, ["./gw.sh", "--x"]);
        let exe = PathBuf::from("/bin/true");
        let cmd = from_spec(&t[1], &exe).unwrap();
        assert_eq!(cmd.kind(), TargetKind::Command);
        assert!(cmd.capabilities().contains(&Capability::HealthServer));
        assert!(!cmd.capabilities().contains(&Capability::ControlServer));
        assert!(!from_spec(&t[0], &exe).unwrap().foreign());

        std::fs::write(
            &p,
            "[[target]]\nname = \"x\"\nkind = \"command\"\nargv = [\"a\"]\ncolour = 1\n",
        )
        .unwrap();
        let e = load_targets_file(&p).unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("line 5"), "{e}");
        let bad = TargetSpec {
            name: "x y".into(),
            kind: TargetKind::Command,
            argv: vec!["a".into()],
            image: None,
            capabilities: vec![],
        };
        let e = from_spec(&bad, &exe).err().unwrap();
        let e = crate::errfmt::chain(&e);
        assert!(e.starts_with("target x y: name \"x y\""), "{e}");
        // An unknown kind or capability is refused where the file says it.
        std::fs::write(
            &p,
            "[[target]]\nname = \"x\"\nkind = \"command\"\nargv = [\"a\"]\ncapabilities = [\"teleport\"]\n",
        )
        .unwrap();
        let e = load_targets_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("unknown capability \"teleport\"") && e.contains("line 5"),
            "{e}"
        );
    }

    #[test]
    fn a_gateways_end_reads_as_its_exit_status_always_did() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::ExitStatus;
        // Raw wait statuses: exits 0, 2, 3; SIGKILL, SIGTERM, SIGSEGV with a
        // core; a signal number nix does not name.
        for raw in [0, 2 << 8, 3 << 8, 9, 15, 11 | 0x80, 64] {
            let status = ExitStatus::from_raw(raw);
            let end = GatewayEnd::from(status);
            assert_eq!(end.to_string(), status.to_string(), "raw {raw:#x}");
        }
        assert!(matches!(
            GatewayEnd::from(ExitStatus::from_raw(2 << 8)),
            GatewayEnd::Exited(2)
        ));
        assert!(matches!(
            GatewayEnd::from(ExitStatus::from_raw(9)),
            GatewayEnd::Signalled {
                signal: 9,
                core_dumped: false
            }
        ));
        assert_eq!(
            GatewayEnd::ContainerExited(2).to_string(),
            "container exit status: 2"
        );
        assert_eq!(GatewayEnd::ContainerGone.to_string(), "the container ended");
        let unknown = GatewayEnd::Unknown(Arc::new(std::io::Error::other("ECHILD")));
        assert_eq!(unknown.to_string(), "its status is unknown: ECHILD");
        assert!(std::error::Error::source(&unknown).is_some());
    }

    #[test]
    fn foreign_targets_get_gluetuns_variables_only() {
        let env: BTreeMap<String, String> = [
            ("VPN_ENDPOINT_IP", "203.0.113.10"),
            ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.0/24=8080"),
            ("DNS_BLOCKLIST_DIR", "/x"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let exe = PathBuf::from("/bin/true");
        let cmd = process::Command::new("c", vec!["gw".into()], BTreeSet::new());
        let v = variables_for(&cmd, env.clone());
        assert_eq!(v.keys().collect::<Vec<_>>(), ["VPN_ENDPOINT_IP"]);
        let b = process::Builtin::new("builtin", exe);
        assert_eq!(variables_for(&b, env.clone()), env);
    }
}
