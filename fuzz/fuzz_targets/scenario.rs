//! Scenario files: any text must parse into a scenario or give an error
//! with a position, never panic.
#![no_main]

use leakhound_model::scenario::parse;
use leakhound_model::topology::Topology;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse("fuzz.toml", text, &Topology::default_profile());
});
