//! The user's compose file, `${VAR}` interpolation and env files: a
//! gateway service or a named error, never a panic (nor a stack overflow).
//! The body is `leakhound_model::fuzz::compose`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_model::fuzz::compose(data));
