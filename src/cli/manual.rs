//! `completions` and `man`: the shell completion scripts and the manual
//! page, both made from the argument types.

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::args::Cli;
use super::default_sigpipe;

/// `leakhound completions SHELL`.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<()> {
    default_sigpipe();
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "leakhound", &mut std::io::stdout());
    Ok(())
}

/// `leakhound man`: the manual page (roff).
pub(crate) fn man() -> Result<()> {
    default_sigpipe();
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .context("writing the manual page")
}
