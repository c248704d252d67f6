//! `leakhound audit`'s arguments: where the running gateway is, the
//! profile, and what the audit prints and writes.

use std::path::PathBuf;

use super::OutputFormat;

/// Which running gateway's namespace to enter (`audit`, `prove`): one of
/// the three.
#[derive(clap::Args)]
pub(crate) struct WhereArgs {
    /// The gateway's network namespace by name (as `ip netns list` shows
    /// it), or `self`: the one leakhound runs in (a sidecar container that
    /// shares the gateway's network).
    #[arg(long, value_name = "NAME|self")]
    pub(crate) netns: Option<String>,
    /// The network namespace of this process (e.g. the gateway's).
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<i32>,
    /// The network namespace of this running Docker container.
    #[arg(long, value_name = "ID")]
    pub(crate) container: Option<String>,
}

impl WhereArgs {
    /// The namespace named, if one is.
    pub(crate) fn attach(&self) -> Option<leakhound::audit::Attach> {
        use leakhound::audit::Attach;
        match (&self.netns, self.pid, &self.container) {
            (Some(n), _, _) if n == "self" => Some(Attach::SelfNs),
            (Some(n), _, _) => Some(Attach::Netns(n.clone())),
            (_, Some(p), _) => Some(Attach::Pid(p)),
            (_, _, Some(c)) => Some(Attach::Container(c.clone())),
            _ => None,
        }
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["netns", "pid", "container"])))]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) at: WhereArgs,
    /// What to expect and which endpoints to probe (TOML; see
    /// docs/AUDIT.md and docs/examples/audit/).
    #[arg(long, value_name = "FILE")]
    pub(crate) profile: PathBuf,
    /// Also run the checks that disturb the gateway: its tunnel's packets
    /// are dropped for a moment (nothing may leak, traffic must stop and
    /// come back); with --prove, a witness packet found is written from
    /// the namespace for the capture to confirm (check prove-witness).
    #[arg(long)]
    pub(crate) disruptive: bool,
    /// Also prove the gateway's nftables ruleset (as `leakhound prove`,
    /// reading only): no packet but UDP to [capture] endpoint and the
    /// [capture] allowed subnets leaves on [capture] interface, or a
    /// witness packet (sent only with --disruptive). Needs CAP_NET_ADMIN
    /// in the namespace, and nft and ip (the image of `docker/build.sh
    /// --audit-prove` has them).
    #[arg(long)]
    pub(crate) prove: bool,
    /// Make a skipped check (e.g. no-leak when the profile has no [capture]
    /// endpoint) fail the audit (exit 1), except those named by
    /// --allow-skip. Without it a skip does not fail the audit; it is
    /// listed with its reason. The same rule as `run`.
    #[arg(long)]
    pub(crate) fail_on_skip: bool,
    /// A check (kind or full name) whose skip is accepted (repeatable);
    /// naming one implies --fail-on-skip for every other.
    #[arg(long = "allow-skip", value_name = "CHECK")]
    pub(crate) allow_skip: Vec<String>,
    /// Print nothing when the audit passes (for cron, which mails any
    /// output); when it does not, print every check and the summary.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Where junit.xml, summary.json, report.html and the pcap go (emptied
    /// first).
    #[arg(long, value_name = "DIR", default_value = "reports/audit")]
    pub(crate) out: PathBuf,
    /// Also write Prometheus metrics to FILE, atomically (for node
    /// exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub(crate) prometheus: Option<PathBuf>,
    /// How the terminal gets the result: text, or JSON Lines.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: OutputFormat,
    /// Audit again and again, this long apart (e.g. 15m), until SIGTERM
    /// (a sidecar's mode: reports and metrics are rewritten each time).
    #[arg(long, value_name = "DURATION")]
    pub(crate) every: Option<humantime::Duration>,
}
