//! Targets files: targets (each checked) or a named error, never a panic.
//! The body is `leakhound_model::fuzz::targets_file`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_model::fuzz::targets_file(data));
