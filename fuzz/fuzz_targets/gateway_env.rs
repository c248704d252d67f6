//! The gateway's environment: arbitrary NAME=VALUE lines must be either a
//! configuration or a named refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = text.lines().filter_map(|l| {
        let (k, v) = l.split_once('=')?;
        Some((k.to_string(), v.to_string()))
    });
    let _ = leakhound_gateway::config::GatewayConfig::from_env(vars);
});
