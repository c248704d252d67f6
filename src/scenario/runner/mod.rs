//! The engine: the [`Runner`] (a lab, its services, a profile and a gateway
//! target to run scenarios against, made with [`Runner::builder`]), the
//! state a scenario's steps share while it runs ([`state`]), and running
//! one scenario ([`run`]: `prepare` it, `execute` its steps, `judge` what
//! the capture saw). What each step does is [`super::steps`]'. The public
//! names of `scenario::runner` are all here, re-exported.

mod context;
mod execute;
mod judge;
mod prepare;
pub mod run;
pub mod state;

pub use context::{FuzzSettings, PROBE_TIMEOUT, Runner, RunnerBuilder, policies};
pub(crate) use context::{fail, run_file};
pub use run::{CLOCK_SKEW, EVIDENCE, POSITIVE_CONTROL, STAYED_UP};
pub use state::{
    AbortOnDrop, ExitCause, GatewayExit, GivenNzb, RunState, ScenarioSwarm, SprayRun, Storm,
    WitnessRun,
};

pub use crate::model::verdict::{
    CaseResult, Event, LeakRecord, Outcome, ScenarioResult, format_leak,
};
pub use crate::profile::{SEED_INPUT_SUBNET_PORTS, SEED_OUTBOUND_SUBNETS, lab_env};
