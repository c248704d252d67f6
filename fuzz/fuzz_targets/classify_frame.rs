//! Packets off the wire: classification of arbitrary frames must never
//! panic (and anything unparsable is a leak, checked by the unit tests).
#![no_main]

use leakhound_model::classify::{LeakPolicy, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = LeakPolicy {
        local: vec!["172.21.0.2".parse().unwrap(), "2001:db8:21::2".parse().unwrap()],
        endpoint: "203.0.113.10:51820".parse().unwrap(),
        allowed: vec!["172.21.0.0/16".parse().unwrap()],
    };
    let _ = classify(&policy, data);
});
