//! The gateway resolver's request path on arbitrary bytes: the slow path
//! (hickory's parse + policy) and the front cache's own parser and answer
//! reader must never panic.
//! The body is `leakhound_gateway::fuzz::dns_request`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_gateway::fuzz::dns_request(data));
