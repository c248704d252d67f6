//! The command line's edge: the argument types ([`args`]) and, for each
//! command, a thin module that turns its arguments into library calls and
//! prints what they return. anyhow lives here and in `main.rs` only.

pub(crate) mod args;
