//! The command line's shape: every subcommand and its arguments (clap
//! derive types), split by command. Nothing here runs anything; the
//! commands' modules in [`crate::cli`] turn these into library calls.

mod audit;
mod lab;
mod list;
mod measure;
mod prove;
mod suite;

pub(crate) use audit::AuditArgs;
pub(crate) use lab::{LabAction, LabArgs, LabOpts};
pub(crate) use list::{ExplainArgs, ListArgs};
pub(crate) use measure::{BenchArgs, BenchWhat, SoakArgs};
pub(crate) use prove::ProveArgs;
pub(crate) use suite::{DependentsKind, RunArgs, SelectArgs, SuiteArgs, TargetArgs, TargetKind};

use clap::{Parser, Subcommand};

/// `--version`: the package's version and the commit it was built from.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LEAKHOUND_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "leakhound",
    version = VERSION,
    about = "Proves that a VPN gateway leaks nothing.",
    long_about = "Proves that a VPN gateway leaks nothing.\n\n\
leakhound builds an isolated lab out of network namespaces (a home router, \
an ISP with a resolver and a whoami server, a VPN provider with a WireGuard \
server), starts a Gluetun-compatible gateway in it, runs scenarios against it \
while capturing every packet on the gateway's wire and the home uplink, and \
writes JUnit XML, JSON and pcap files. Nothing touches the host's own network.\n\n\
Needs root. Exit status: 0 all scenarios passed, 1 a scenario failed, 2 the \
harness could not run."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Build the lab, run the scenarios against a gateway, write reports
    /// (the main job). The gateway under test is leakhound's own unless
    /// --target says otherwise.
    Run(RunArgs),
    /// Run the suite against several gateways in one go and print a table
    /// (scenario x target: pass, fail, skip, leaks), also written to
    /// compare.md beside the reports.
    Compare(RunArgs),
    /// Run the gateway (configured by Gluetun's environment variables). `run`
    /// starts it inside the lab; you rarely start it by hand.
    Gateway {
        #[command(subcommand)]
        action: Option<GatewayAction>,
    },
    /// Check a gateway that is already running (yours, in production):
    /// from inside its network namespace, against a profile of what to
    /// expect. Read-only unless --disruptive. Exit status: 0 every check
    /// passed, 1 a check failed or leaked (or, with --fail-on-skip, was
    /// skipped), 2 the audit could not run, 130 / 143 stopped by
    /// SIGINT / SIGTERM (the checks so far reported, anything changed undone).
    Audit(AuditArgs),
    /// Prove that a gateway's nftables ruleset lets nothing out on its
    /// underlay but the VPN endpoint over UDP and the allowed subnets, or
    /// print a witness packet that it does let out. Reads the namespace's
    /// state and sends nothing (reading nftables needs CAP_NET_ADMIN
    /// there); or reads saved `nft -j list ruleset` and `ip -j addr`
    /// output. Exit status: 0 a proof, 1 a witness or "cannot prove", 2
    /// the state could not be read. docs/prove.md says what is assumed.
    Prove(ProveArgs),
    /// Remove what killed leakhound runs left behind (only what they
    /// recorded making: namespaces, their processes, containers, files).
    Reap,
    /// Print a shell completion script, e.g.
    /// `leakhound completions bash > /etc/bash_completion.d/leakhound`.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g.
    /// `leakhound man > /usr/local/share/man/man1/leakhound.1`.
    Man,
    /// List the scenarios that `run` would execute.
    List(ListArgs),
    /// What a scenario does, step by step, what would make each check fail,
    /// and the user's requirement it checks.
    Explain(ExplainArgs),
    /// Every step action a scenario file may use, with its fields, and the
    /// capabilities a scenario may require of the gateway under test.
    Actions,
    /// Measure the kill switch under repeated faults: N tunnel kills and M
    /// gateway crashes in a row under constant traffic, with routes around
    /// the tunnel after each; prints how many packets leaked and how fast
    /// each gateway closed its kill switch.
    Soak(SoakArgs),
    /// Benchmarks (printed, never asserted): `bench dns` loads the gateway's
    /// resolver from the gateway's namespace, cached and uncached, beside
    /// unbound forwarding over the same path (if unbound is installed).
    Bench(BenchArgs),
    /// Do nothing until SIGTERM: holds a container's network namespace for
    /// the gateways that join it (the container target's holder).
    #[command(hide = true)]
    Hold,
    /// Build the lab, start its services and a gateway, print how to get
    /// into each host, and wait for Ctrl-C (to explore or debug by hand with
    /// `ip netns exec`). Everything is removed on exit. `lab up` does the
    /// same in the background (for `audit`, or a session of its own) and
    /// `lab down` removes it; the reaper of later runs leaves it alone.
    Lab(LabArgs),
}

#[derive(Subcommand)]
pub(crate) enum GatewayAction {
    /// Ask the running gateway's health server (HEALTH_SERVER_ADDRESS):
    /// exit 0 when healthy, 1 otherwise. For Docker's HEALTHCHECK.
    Healthcheck,
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}
