//! nf_tables over netlink, in-process: what the gateway's kill switch and
//! the audit's cut of a live tunnel are written with. No `nft` binary, no
//! libnftnl (GPL, and no static build in Debian); the dozen message and
//! expression types needed, written against the kernel's uapi numbers and
//! checked by reading the result back.
//!
//! * [`rules`]: rules as values (base chain, typed matches, verdict,
//!   comment).
//! * [`nfnl`]: the codec: rules lowered to kernel expressions, batches
//!   encoded, dumps decoded; the cut's table, set and element messages.
//! * [`apply`]: the netfilter socket; a [`nfnl::Ruleset`] applied as one
//!   atomic batch and verified against the kernel's dump.
//! * [`cut`]: the audit's self-expiring cut armed, renewed, read back and
//!   lifted.

pub mod apply;
pub mod cut;
pub mod nfnl;
pub mod rules;

pub use apply::{ApplyTimes, FirewallError};
