//! The gateway's environment: arbitrary NAME=VALUE lines must be either a
//! configuration or a named refusal, never a panic.
//! The body is `leakhound_gateway::fuzz::gateway_env`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_gateway::fuzz::gateway_env(data));
