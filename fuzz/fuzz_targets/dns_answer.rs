//! What the upstream DNS server answers, arbitrary: the front cache reads,
//! keeps and serves it again, the rebinding filter reads its addresses,
//! never a panic, never an answer with another ID or too long.
//! The body is `leakhound_gateway::fuzz::dns_answer`, which the corpus replay tests share.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| leakhound_gateway::fuzz::dns_answer(data));
