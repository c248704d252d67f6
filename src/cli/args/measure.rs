//! The arguments of the measuring commands: `soak` (the kill switch under
//! repeated faults) and `bench` (benchmarks, printed, never asserted).

use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct SoakArgs {
    /// Tunnel kills in a row, each under constant traffic from the
    /// dependents and followed by recovery; nothing may leak.
    #[arg(long, default_value_t = 100)]
    pub(crate) tunnel_kills: u32,
    /// Gateway crashes (SIGKILL) after the tunnel kills, each under
    /// constant traffic and followed by a restart; nothing may leak.
    #[arg(long, default_value_t = 20)]
    pub(crate) crashes: u32,
    /// Provider outages (each until the gateway turns unhealthy), timed
    /// from the provider's return to traffic flowing again.
    #[arg(long, default_value_t = 0)]
    pub(crate) reconnects: u32,
    /// Where reports go (emptied first).
    #[arg(long, value_name = "DIR", default_value = "reports/soak")]
    pub(crate) out: PathBuf,
}

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub(crate) what: BenchWhat,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    pub(crate) seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Runs of each measurement (`bench prove`).
    #[arg(long, default_value_t = 20)]
    pub(crate) runs: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum BenchWhat {
    /// Queries per second and p50/p99 through the gateway's resolver.
    Dns,
    /// Throughput (iperf3 TCP up/down, UDP up) and CPU per Gbit through the
    /// gateway beside Debian's wireguard-go, with both lab providers.
    Tunnel,
    /// One proof of the built-in gateway's ruleset (`prove` on its live
    /// namespace), --runs times: median, p90, fastest and slowest, beside
    /// `nft -j list ruleset` alone in the same namespace.
    Prove,
}
