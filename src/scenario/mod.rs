//! Scenarios: the file format and default suite ([`model`]), the probes that
//! steps run inside lab hosts ([`probe`]), and the runner that executes a
//! scenario against a lab and emits events ([`runner`]).

pub mod model;
pub mod probe;
pub mod runner;
