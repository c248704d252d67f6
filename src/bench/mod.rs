//! Measurements (never asserted in tests): `leakhound bench dns` loads the
//! gateway's resolver from a dependent's namespace and prints queries per
//! second and latency percentiles, cached and uncached, beside unbound
//! forwarding to the same upstream over the same lab path; `leakhound bench
//! tunnel` measures throughput and CPU per Gbit through the gateway beside
//! Debian's wireguard-go, with either lab provider.

pub mod dns;
pub mod tunnel;
