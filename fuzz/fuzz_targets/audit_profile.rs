//! Audit profiles: a profile or an error with a position, never a panic.
//! The body is `leakhound_model::fuzz::audit_profile`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_model::fuzz::audit_profile(data));
