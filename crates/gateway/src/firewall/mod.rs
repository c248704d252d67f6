//! The gateway's kill switch: the policy value and its rules ([`policy`]),
//! the kernel ruleset it becomes ([`ruleset`]), and applying it to the
//! kernel and reading it back ([`apply`]). The nf_tables netlink codec
//! ([`nfnl`]) and the audit's self-expiring cut of a live gateway's tunnel
//! ([`cut`]) are `leakhound_nft`'s, re-exported here at their old paths.
//! Rules live in the kernel, so a crashed gateway stays closed.

pub mod apply;
pub mod policy;
pub mod ruleset;

pub use leakhound_nft::{cut, nfnl};

pub use apply::{FirewallError, apply, lockdown, remove, verify};

/// How the gateway's log says that a start found its kill switch still in
/// the kernel and only read it back (the soak counts these starts apart).
pub const FOUND_IN_PLACE: &str = "found in place, not rewritten";
pub use policy::{FirewallPolicy, SubnetPorts};
