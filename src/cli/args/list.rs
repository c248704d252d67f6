//! The arguments of `list` and `explain` (the suite's scenarios, without
//! running them).

use std::path::PathBuf;

use super::{OutputFormat, SelectArgs};

#[derive(clap::Args)]
pub(crate) struct ListArgs {
    /// Also load every *.toml scenario in this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) scenarios: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    /// text: a line per scenario (name, source); json: one JSON array of
    /// objects (name, source, description, tags, requires).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
}

#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    /// The scenario's name (see `leakhound list`).
    pub(crate) scenario: String,
    /// Also load every *.toml scenario in this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) scenarios: Option<PathBuf>,
    /// text: for people; json: one JSON object (name, source, description,
    /// tags, requires, requirement, steps, and the text as `explanation`).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
}
