//! What a run runs, against which gateway, and where its reports go: the
//! arguments `run` and `compare` share (and `list` the selection of).

use std::path::PathBuf;

use leakhound::lab::wgserver::ProviderKind;

use super::OutputFormat;

/// Which of the loaded scenarios run (shared by run, compare and list).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct SelectArgs {
    /// Run only the scenarios with these names (repeatable).
    #[arg(long = "only", value_name = "NAME")]
    pub(crate) only: Vec<String>,
    /// Run only scenarios with one of these tags (repeatable), e.g. smoke
    /// (baseline, one kill-switch and one IPv6 scenario).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Leave out scenarios with any of these tags (repeatable).
    #[arg(long = "exclude-tag", value_name = "TAG")]
    pub(crate) exclude_tags: Vec<String>,
    /// Run one shard of the (selected) suite, as I/N: a CI matrix of N jobs
    /// with --shard 1/N .. N/N runs every scenario exactly once, split by
    /// expected duration, the same split on every machine for the same
    /// suite (`leakhound list --shard I/N` shows it). An empty shard passes.
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<leakhound::model::shard::Shard>,
}

/// What a run runs and where its reports go (shared by run and compare).
#[derive(clap::Args, Clone)]
pub(crate) struct SuiteArgs {
    /// Also load every *.toml scenario in this directory (added to the
    /// built-in default suite).
    #[arg(long, value_name = "DIR")]
    pub(crate) scenarios: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    /// Also write the run's metrics in Prometheus' text format to FILE,
    /// atomically (for node exporter's textfile collector):
    /// leakhound_check_success{check,target}, leakhound_leaked_packets,
    /// leakhound_last_run_timestamp_seconds, leakhound_run_duration_seconds.
    #[arg(long, value_name = "FILE")]
    pub(crate) prometheus: Option<PathBuf>,
    /// Accepted failures, each with a reason and an expiry date (TOML;
    /// see docs/waivers.md): shown as waived, not failing the run, until
    /// their date; then they fail it. Stale ones are reported.
    #[arg(long, value_name = "FILE")]
    pub(crate) waivers: Option<PathBuf>,
    /// What the terminal gets: text (results as they come, then a
    /// summary), or json (JSON Lines on standard output, one event per
    /// line with a schema version, then a run_finished line with the
    /// totals; see reports/README.md).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,
    /// Where reports go (emptied first).
    #[arg(long, value_name = "DIR", default_value = "reports/latest")]
    pub(crate) out: PathBuf,
    /// Override a gateway variable for every scenario, as NAME=VALUE
    /// (repeatable); e.g. to try a config change before deploying it.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,
    /// Print nothing when the run passes (for cron, which mails any
    /// output); when it does not, print the failing checks and the
    /// summary (text output; JSON Lines are unchanged). It used to hide
    /// only the progress bar: see CHANGELOG.md.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Make a skipped check fail the run (exit 1), except those named by
    /// --allow-skip. Without it a skip does not fail the run; it is listed
    /// with its reason (terminal, junit.xml, summary.json). The same rule
    /// as `audit`.
    #[arg(long)]
    pub(crate) fail_on_skip: bool,
    /// A scenario (or `SCENARIO: CHECK`) whose skip is accepted
    /// (repeatable); naming one implies --fail-on-skip for every other.
    #[arg(long = "allow-skip", value_name = "SCENARIO")]
    pub(crate) allow_skip: Vec<String>,
    /// Which WireGuard implementation plays the VPN provider's server:
    /// boringtun (built in) or wireguard-go (Debian's; an interop run
    /// against a second, independent implementation).
    #[arg(long, value_enum, default_value_t = ProviderKind::Boringtun)]
    pub(crate) provider: ProviderKind,
    /// How many labs run scenarios side by side (each its own set of
    /// namespaces, provider and gateway). Default 8, or 1 with a container
    /// target; 1 runs everything in one lab, one scenario after another.
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Test your own configuration: the gateway service of this compose file
    /// (its environment:, env_file: and published ports; ${VAR} from the
    /// environment and the .env beside it) is the policy under test, and its
    /// firewall subnets and ports make the lab's LANs and LAN scenarios. The
    /// lab's WireGuard keys and endpoint replace yours (the report names what
    /// was replaced, never the values).
    #[arg(long, value_name = "FILE", conflicts_with = "env_file")]
    pub(crate) compose: Option<PathBuf>,
    /// With --compose: which service is the gateway, when several could be.
    #[arg(long, value_name = "NAME", requires = "compose")]
    pub(crate) service: Option<String>,
    /// Like --compose, from a plain env file (KEY=VALUE lines).
    #[arg(long = "env-file", value_name = "FILE")]
    pub(crate) env_file: Option<PathBuf>,
    /// The dependents in the gateway's namespace: real (Debian's
    /// qbittorrent-nox and nzbget on their WebUI ports, credentials made
    /// per run; Prowlarr stays a stand-in), stand-in (small HTTP servers on the WebUI
    /// ports, for quick runs), or auto (real where installed, and the run
    /// says when it is not).
    #[arg(long, value_enum, default_value_t = DependentsKind::Auto)]
    pub(crate) dependents: DependentsKind,
    /// The leak fuzzer's seed (a number): every `fuzz` step's spray derives
    /// from it, so a finding's seed replays the same packets. Default: a
    /// fresh one, printed at the start of the run.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// The leak fuzzer's root-side findings (packets that got out with a
    /// firewall mark, a socket bound to eth0 or a spoofed source: what only
    /// root in the gateway's namespace can send) fail the scenario too.
    /// Without it they are shown and do not fail.
    #[arg(long)]
    pub(crate) strict: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub(crate) enum DependentsKind {
    Auto,
    StandIn,
    Real,
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub(crate) enum TargetKind {
    /// leakhound's own gateway (`leakhound gateway`), started in the lab.
    Builtin,
    /// Any program (given after --), started in the lab's gateway
    /// namespace with the scenario's Gluetun variables; see docs/targets.md.
    Command,
    /// A container image (--image), its network namespace the lab's
    /// gateway host.
    Container,
    /// Gluetun's own image (--image qmcgaw/gluetun:TAG, on this machine)
    /// as a container, with the variables that keep it inside the lab and
    /// its capabilities (control and health server); docs/targets.md.
    Gluetun,
}

/// Which gateway is under test.
#[derive(clap::Args, Clone)]
pub(crate) struct TargetArgs {
    /// What to test: builtin (the default), command (the program after --),
    /// container (--image) or gluetun (Gluetun's image, --image). Repeatable
    /// for `compare`.
    #[arg(long = "target", value_enum)]
    pub(crate) target: Vec<TargetKind>,
    /// For --target container or gluetun: the image reference (it must
    /// exist locally; nothing is pulled).
    #[arg(long, value_name = "REF")]
    pub(crate) image: Option<String>,
    /// What a command or container target offers (repeatable):
    /// control-server, health-server, port-forwarding, blocklist-files,
    /// dot-ca-file, leakhound-variables, key-rotation, metrics (see
    /// `leakhound actions`). Scenarios that need one it lacks are skipped, with the
    /// reason. The built-in offers all.
    #[arg(long = "capability", value_name = "NAME")]
    pub(crate) capabilities: Vec<leakhound::model::scenario::Capability>,
    /// Take the targets from a file instead (TOML, `[[target]]` with name,
    /// kind, argv or image, capabilities; see docs/targets.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "image", "capabilities"])]
    pub(crate) targets: Option<PathBuf>,
    /// With --targets: only the target(s) with this name (repeatable).
    #[arg(long = "pick", value_name = "NAME", requires = "targets")]
    pub(crate) pick: Vec<String>,
    /// For --target command: the program and its arguments.
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    pub(crate) argv: Vec<String>,
}

// `run` and `compare` (one type, one path): what runs, against which
// targets. A plain comment: a doc comment here would be their help text.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) suite: SuiteArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}
