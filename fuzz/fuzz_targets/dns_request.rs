//! The gateway resolver's request path (parse + policy) on arbitrary bytes:
//! it must never panic.
#![no_main]

use leakhound_gateway::dns::inspect_request;
use leakhound_gateway::dns_policy::DnsPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut policy = DnsPolicy::default();
    policy.blocked.insert("malware.lab");
    policy.doh_names.insert("dns.google");
    let _ = inspect_request(&policy, data);
});
