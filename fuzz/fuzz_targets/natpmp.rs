//! NAT-PMP messages off the wire (from the provider, or to the lab's
//! server): decoding arbitrary bytes must never panic, and whatever decodes
//! as a mapping encodes back to a well-formed response.
//! The body is `leakhound_model::fuzz::natpmp`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_model::fuzz::natpmp(data));
