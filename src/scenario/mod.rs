//! Scenarios: the file format and default suite ([`model`]), and the runner
//! that executes a scenario against a lab and emits events ([`runner`]),
//! what each step does ([`steps`]); the probes the steps run inside lab
//! hosts are [`crate::probe`]'s; the gateway it drives is a
//! [`crate::target`].

pub mod evidence;
pub mod external;
pub mod model;
/// The probes moved to the top of the library ([`crate::probe`]); this
/// path stays for code that still names it.
pub use crate::probe;
pub mod runner;
pub mod soak;
pub mod steps;
