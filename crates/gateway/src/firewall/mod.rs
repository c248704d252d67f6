//! The gateway's kill switch: the policy value and its compilation
//! ([`policy`]), its nf_tables netlink encoding ([`nfnl`]), and applying it
//! to the kernel and reading it back ([`apply`]). Rules live in the kernel,
//! so a crashed gateway stays closed.

pub mod apply;
pub mod nfnl;
pub mod policy;

pub use apply::{FirewallError, apply, lockdown, remove};
pub use policy::{FirewallPolicy, SubnetPorts};
