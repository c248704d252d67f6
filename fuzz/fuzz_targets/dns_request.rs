//! The gateway resolver's request path on arbitrary bytes: the slow path
//! (hickory's parse + policy) and the front cache's own parser and answer
//! reader must never panic.
#![no_main]

use leakhound_gateway::dns::inspect_request;
use leakhound_gateway::dns_cache::{Entry, parse_query};
use leakhound_gateway::dns_policy::DnsPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut policy = DnsPolicy::default();
    policy.blocked.insert("malware.lab");
    policy.doh_names.insert("dns.google");
    let _ = inspect_request(&policy, data);
    if let Some(q) = parse_query(data) {
        let _ = policy.decide_normalized(&q.name());
        // The query's own bytes read as an answer to it (QR unset: refused).
        let _ = Entry::from_response(&q, data, std::time::Instant::now());
    }
    // Arbitrary bytes as the answer to a fixed question.
    let asked = [
        0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 3, b'l', b'a', b'b', 0, 0, 1, 0, 1,
    ];
    if let Some(q) = parse_query(&asked) {
        let _ = Entry::from_response(&q, data, std::time::Instant::now());
    }
});
