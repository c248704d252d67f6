//! leakhound's command line, a switchboard: parse the arguments, hand the
//! command to its module in `cli/`, turn what it returns into the exit
//! status (0 passed, 1 a finding, 2 the harness could not run, 128+N
//! stopped by signal N). The commands:
//!
//! * `run`: build the lab, run the scenarios against a gateway, write reports.
//! * `compare`: the same against several gateways, and a table of them.
//! * `gateway`: the gateway under test (`gateway healthcheck`: ask it).
//! * `audit`: check a gateway that is already running, against a profile.
//! * `reap`: remove what killed runs left behind.
//! * `completions`: print a shell completion script.
//! * `man`: print the manual page.
//! * `list`: list the scenarios `run` would execute.
//! * `explain`: what a scenario does and what would make it fail.
//! * `actions`: the step actions and capabilities a scenario may use.
//! * `soak`: the kill switch under repeated faults, measured.
//! * `bench`: benchmarks (`bench dns`, `bench tunnel`), printed.
//! * `hold` (hidden): hold a container's network namespace until SIGTERM.
//! * `lab`: a lab to explore by hand (`lab up`, `lab down`, `lab list`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use leakhound::gateway::cli as gateway;
use leakhound::suite::Verdict;

mod cli;

use cli::args::{Cli, Command, GatewayAction};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => verdict_exit(cli::run::run(args)),
        Command::Compare(args) => verdict_exit(cli::run::compare(args)),
        Command::Gateway { action: None } => gateway::gateway_main(),
        Command::Gateway {
            action: Some(GatewayAction::Healthcheck),
        } => gateway::healthcheck_main(),
        Command::Audit(args) => verdict_exit(cli::audit::audit(args)),
        Command::Prove(args) => match cli::prove::prove(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => error_exit(&e),
        },
        Command::Reap => harness_exit(cli::reap::reap()),
        Command::Completions { shell } => harness_exit(cli::manual::completions(shell)),
        Command::Man => harness_exit(cli::manual::man()),
        Command::List(args) => harness_exit(cli::list::list(args)),
        Command::Explain(args) => harness_exit(cli::list::explain(args)),
        Command::Actions => harness_exit(cli::list::actions()),
        Command::Soak(args) => verdict_exit(cli::soak::soak(args)),
        Command::Bench(args) => harness_exit(cli::bench::bench(args)),
        Command::Hold => gateway::hold_main(),
        Command::Lab(args) => harness_exit(cli::lab::lab(args)),
    }
}

/// The exit status of a command with a verdict (run, compare, soak,
/// audit).
fn verdict_exit(r: Result<Verdict>) -> ExitCode {
    match r {
        Ok(v) => ExitCode::from(v.exit_code()),
        Err(e) => error_exit(&e),
    }
}

/// The exit status of a command that only fails when the harness cannot
/// do its part.
fn harness_exit(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error_exit(&e),
    }
}

/// Says the error as the terminal shows it (its causes, secrets redacted,
/// control bytes shown escaped: a cause may quote a file or a log); exit 2.
fn error_exit(e: &anyhow::Error) -> ExitCode {
    let shown = leakhound::model::scrub::clean_capped(&format!("{e:#}"), usize::MAX);
    eprintln!("error: {shown}");
    ExitCode::from(2)
}
