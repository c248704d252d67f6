//! The gateway's kill switch: the policy value and its compilation
//! ([`policy`]), its nf_tables netlink encoding ([`nfnl`]), and applying it
//! to the kernel and reading it back ([`apply`]); and the audit's
//! self-expiring cut of a live gateway's tunnel ([`cut`]). Rules live in the kernel,
//! so a crashed gateway stays closed.

pub mod apply;
pub mod cut;
pub mod nfnl;
pub mod policy;

pub use apply::{FirewallError, apply, lockdown, remove, verify};

/// How the gateway's log says that a start found its kill switch still in
/// the kernel and only read it back (the soak counts these starts apart).
pub const FOUND_IN_PLACE: &str = "found in place, not rewritten";
pub use policy::{FirewallPolicy, SubnetPorts};
