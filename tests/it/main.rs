//! The integration tests, as one binary: a binary per file compiled and
//! linked each test file's share of tokio, serde and the rest again, which
//! cost more than running them. Each file is a module here and keeps its
//! own `//!` saying what it proves; `common` is what they share. Run one
//! file's tests with `cargo test --release --test it FILE::`. Most need
//! root and build labs; they run six at a time (.cargo/config.toml).
//! tests/netns_hidden.rs stays a binary of its own: it covers /run/netns
//! with a mount, which every lab built beside it would see.

// A test reads as one story from lab to verdict: tests are exempt from the
// length limit the rest of the code keeps (clippy.toml).
#![allow(clippy::too_many_lines)]

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod ci_templates;
mod cli;
mod container;
mod docs;
mod findings;
mod firewall;
mod fuzzer;
mod gateway_abuse;
mod html_report;
mod interop;
mod lab_e2e;
mod module_cycles;
mod prove_kernel;
mod real_dependents;
mod resolver;
mod robustness;
mod schemas;
mod scrub;
mod setup_script;
mod tamper;
mod targets;
mod user_config;
mod waivers;
