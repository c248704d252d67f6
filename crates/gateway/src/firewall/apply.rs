//! Applies a [`FirewallPolicy`] to the kernel: its ruleset
//! ([`FirewallPolicy::ruleset`]) sent as one atomic nf_tables batch over a
//! netlink socket, in-process, then both tables dumped back and compared
//! with it chain by chain and rule by rule, expression by expression
//! (`leakhound_nft::apply` does both). The lockdown of a gateway that
//! cannot start, and the removal of both tables, likewise.

pub use leakhound_nft::apply::{ApplyTimes, FirewallError, compare};
use leakhound_nft::nfnl::Ruleset;

use super::policy::{FirewallPolicy, TABLES};

/// Applies `policy` and verifies it; nothing is rewritten when the kernel
/// already holds exactly this ruleset.
pub fn apply(policy: &FirewallPolicy) -> Result<ApplyTimes, FirewallError> {
    leakhound_nft::apply::apply(&policy.ruleset())
}

/// Closes everything but loopback (a gateway that cannot start). The
/// devices are this namespace's interfaces.
pub fn lockdown(devices: &[String]) -> Result<(), FirewallError> {
    leakhound_nft::apply::install(&Ruleset::lockdown(TABLES, devices))
}

/// Removes both of leakhound's tables (no error if they are absent).
pub fn remove() -> Result<(), FirewallError> {
    leakhound_nft::apply::remove(TABLES)
}

/// Reads the tables back and checks them against `policy`.
pub fn verify(policy: &FirewallPolicy) -> Result<(), FirewallError> {
    leakhound_nft::apply::verify(&policy.ruleset())
}
