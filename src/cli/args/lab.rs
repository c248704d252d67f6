//! `leakhound lab`'s arguments: the foreground lab, and `lab up`, `lab
//! down`, `lab list` and the hidden `lab serve` of a detached one.

use std::path::PathBuf;

use clap::Subcommand;

use super::TargetArgs;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct LabArgs {
    #[command(subcommand)]
    pub(crate) action: Option<LabAction>,
    #[command(flatten)]
    pub(crate) opts: LabOpts,
}

#[derive(clap::Args)]
pub(crate) struct LabOpts {
    /// Set a gateway variable, as NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Subcommand)]
pub(crate) enum LabAction {
    /// Start a lab in the background and return once its gateway runs:
    /// prints its id, the gateway's namespace (for `audit --netns`) and
    /// where its logs are. It stays until `lab down`.
    Up(LabOpts),
    /// Remove a lab started by `lab up` (the only one, or the one named)
    /// and wait until it is gone.
    Down {
        /// The lab's id, as `lab up` printed it (needed when several are up).
        id: Option<String>,
        /// Keep its logs folder (removed with the lab otherwise).
        #[arg(long)]
        keep_logs: bool,
    },
    /// List the labs `lab up` started that are up.
    List,
    /// The background process of `lab up` (not for direct use).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        id: String,
        #[arg(long)]
        logs: PathBuf,
        #[command(flatten)]
        opts: LabOpts,
    },
}
