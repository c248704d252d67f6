//! Measurements (never asserted in tests): `leakhound bench dns` loads the
//! gateway's resolver from a dependent's namespace and prints queries per
//! second and latency percentiles, cached and uncached, beside unbound
//! forwarding to the same upstream over the same lab path; `leakhound bench
//! tunnel` measures throughput and CPU per Gbit through the gateway beside
//! the yardsticks (Debian's wireguard-go, gotatun), with either lab
//! provider; `leakhound bench prove` times one proof of the gateway's
//! ruleset beside `nft -j list ruleset`. Measured gateways run as the
//! image ships them ([`shipped_gateway`]).

pub mod dns;
pub mod prove;
pub mod tunnel;

use std::path::{Path, PathBuf};

/// A program built beside `exe` (cargo puts a workspace's binaries side by
/// side in `target/release`), if it is there.
pub fn beside(exe: &Path, name: &str) -> Option<PathBuf> {
    Some(exe.parent()?.join(name)).filter(|p| p.is_file())
}

/// The gateway as the image ships it, for measurements: the standalone
/// `leakhound-gateway` binary beside `exe` when it was built (its memory
/// and start time are then its own, not the harness binary's), else `exe`,
/// whose `gateway` command is the same gateway.
pub fn shipped_gateway(exe: PathBuf) -> PathBuf {
    beside(&exe, "leakhound-gateway").unwrap_or(exe)
}
