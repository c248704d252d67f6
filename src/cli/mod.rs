//! The command line's edge: the argument types ([`args`]) and, for each
//! command, a thin module that turns its arguments into library calls and
//! prints what they return; here what several share: the root check, the
//! runtime, the log level, signals, `--env`. anyhow lives here and in
//! `main.rs` only.

pub(crate) mod args;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod lab;
pub(crate) mod list;
pub(crate) mod manual;
pub(crate) mod prove;
pub(crate) mod reap;
pub(crate) mod run;
pub(crate) mod soak;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use leakhound::gateway::cli::init_tracing;

/// The harness's default log level. The lab provider's boringtun warns on
/// every handshake retry while a scenario holds the gateway's tunnel down,
/// which is what the scenario asks for, not a problem: only its errors show.
const HARNESS_LOG: &str = "warn,boringtun=error";
/// With --quiet: only errors are logged (a passing run prints nothing).
const QUIET_LOG: &str = "error,boringtun=off";

/// Starts logging for a command of the harness (run, compare, audit,
/// soak, bench): only errors with `quiet`.
fn harness_tracing(quiet: bool) {
    init_tracing(if quiet { QUIET_LOG } else { HARNESS_LOG });
}

/// Why a command needs root, as its refusal says.
const BUILDS_NAMESPACES: &str = "it builds network namespaces";
const ENTERS_NAMESPACE: &str = "it enters another network namespace";

/// The one root check: `leakhound COMMAND` refuses to start without root,
/// saying `why` it needs it.
fn require_root(command: &str, why: &str) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("leakhound {command} needs root ({why}); try sudo");
    }
    Ok(())
}

/// A multi-threaded runtime with timers and I/O.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Root check, reaping of stale namespaces, and a runtime: what every
/// command that builds a lab needs first.
fn lab_runtime(what: &str) -> Result<tokio::runtime::Runtime> {
    require_root(what, BUILDS_NAMESPACES)?;
    let rt = runtime()?;
    reap::reap_everything(&rt);
    Ok(rt)
}

/// For commands that only print: a closed pipe (`leakhound actions | head`)
/// ends the process quietly, as for any Unix filter. Not for commands that
/// use sockets, where SIGPIPE must stay ignored.
fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default has no
    // preconditions; no handler of ours is replaced.
    unsafe {
        nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_DFL);
    }
}

/// Returns at the first Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `--env NAME=VALUE` values as a map; each value is registered as a
/// secret's if its name is one (and a warning says it should not be on
/// the command line).
fn parse_env_overrides(v: &[String]) -> Result<BTreeMap<String, String>> {
    v.iter()
        .map(|kv| {
            let (k, val) = kv
                .split_once('=')
                .with_context(|| format!("--env {kv}: expected NAME=VALUE"))?;
            leakhound::model::scrub::register_variable(k, val);
            if leakhound::model::scrub::is_secret_name(k) {
                eprintln!(
                    "warning: --env {k}: a secret on the command line is seen by every user of this machine (ps, /proc/PID/cmdline) and kept in shell history; put it in a file instead (--env-file FILE or --compose FILE, or the variable's _SECRETFILE form where the gateway has one)"
                );
            }
            Ok((k.to_string(), val.to_string()))
        })
        .collect()
}
