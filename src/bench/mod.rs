//! Measurements (never asserted in tests): `leakhound bench dns` loads the
//! gateway's resolver from a dependent's namespace and prints queries per
//! second and latency percentiles, cached and uncached, beside unbound
//! forwarding to the same upstream over the same lab path.

pub mod dns;
