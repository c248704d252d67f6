//! Scenarios: the file format and default suite ([`model`]), the probes that
//! steps run inside lab hosts ([`probe`]), and the runner that executes a
//! scenario against a lab and emits events ([`runner`]), what each step
//! does ([`steps`]); the gateway it drives is a [`crate::target`].

pub mod browser_steps;
pub mod evidence;
pub mod external;
pub mod model;
pub mod probe;
pub mod runner;
pub mod soak;
pub mod steps;
pub mod swarm_steps;
pub mod usenet_steps;
