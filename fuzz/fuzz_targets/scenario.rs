//! Scenario files: any text must parse into a scenario or give an error
//! with a position, never panic.
//! The body is `leakhound_model::fuzz::scenario`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_model::fuzz::scenario(data));
