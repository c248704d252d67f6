//! Packets off the wire: classification of arbitrary frames must never
//! panic (and anything unparsable is a leak, checked by the unit tests).
//! The body is `leakhound_model::fuzz::classify_frame`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_model::fuzz::classify_frame(data));
