//! The bodies of the fuzz targets for the gateway's parsers (`fuzz/`, run
//! by cargo-fuzz), replayed on their committed corpora as plain tests
//! (see `leakhound_proto::fuzz::replay`): DNS requests from the
//! dependents, DNS answers from the upstream, the environment.

use std::time::{Duration, Instant};

use crate::dns::inspect_request;
use crate::dns_cache::{Cache, Entry, parse_query};
use crate::dns_policy::DnsPolicy;

/// The question both targets ask: `a.lab. A IN`, ID 1, RD; plain or with
/// EDNS (payload 1232).
const ASKED: [u8; 23] = [
    0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 3, b'l', b'a', b'b', 0, 0, 1, 0, 1,
];
const ASKED_EDNS: [u8; 34] = [
    0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, b'a', 3, b'l', b'a', b'b', 0, 0, 1, 0, 1, 0, 0, 41, 4,
    0xd0, 0, 0, 0, 0, 0, 0,
];

fn policy() -> DnsPolicy {
    let mut policy = DnsPolicy::default();
    policy.blocked.insert("malware.lab");
    policy.doh_names.insert("dns.google");
    policy
}

/// The resolver's request path on arbitrary bytes: the slow path
/// (hickory's parse + policy) and the front cache's own parser, the
/// query's bytes read as an answer to it, and arbitrary bytes as the
/// answer to a fixed question.
pub fn dns_request(data: &[u8]) {
    let policy = policy();
    let _ = inspect_request(&policy, data);
    if let Some(q) = parse_query(data) {
        let _ = policy.decide_normalized(&q.name());
        let _ = crate::dns_cache::servfail(&q, data);
        // The query's own bytes read as an answer to it (QR unset: refused).
        let _ = Entry::from_response(&q, data, Instant::now());
    }
    if let Some(q) = parse_query(&ASKED) {
        let _ = Entry::from_response(&q, data, Instant::now());
    }
}

/// What the upstream answers, arbitrary: read by the front cache for a
/// plain and an EDNS question; what it keeps is served again to a later
/// asker of each kind (a new ID, within the asker's size), and every
/// address hickory reads from it goes through the rebinding filter.
pub fn dns_answer(data: &[u8]) {
    let t0 = Instant::now();
    let asked: [&[u8]; 2] = [&ASKED, &ASKED_EDNS];
    for req in asked {
        let Some(q) = parse_query(req) else {
            panic!("the fixed question does not parse");
        };
        let Some(e) = Entry::from_response(&q, data, t0) else {
            continue;
        };
        let mut cache = Cache::new(4);
        cache.insert(&q, e, t0);
        for later in asked {
            let mut again = later.to_vec();
            again[0..2].copy_from_slice(&7u16.to_be_bytes());
            let Some(q2) = parse_query(&again) else {
                continue;
            };
            let mut out = Vec::new();
            if cache.answer(&q2, &again, t0 + Duration::from_secs(1), &mut out) {
                assert_eq!(&out[0..2], &[0, 7], "served with another ID");
                assert!(out.len() <= q2.limit, "longer than the asker takes");
            }
        }
    }
    if let Ok(m) = hickory_proto::op::Message::from_vec(data) {
        let policy = policy();
        for r in m.answers.iter().chain(&m.additionals) {
            let ip = match &r.data {
                hickory_proto::rr::RData::A(a) => std::net::IpAddr::V4(a.0),
                hickory_proto::rr::RData::AAAA(a) => std::net::IpAddr::V6(a.0),
                _ => continue,
            };
            let _ = policy.address_allowed(&r.name.to_string(), ip);
        }
    }
}

/// The gateway's environment: NAME=VALUE lines.
pub fn gateway_env(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = text.lines().filter_map(|l| {
        let (k, v) = l.split_once('=')?;
        Some((k.to_string(), v.to_string()))
    });
    let _ = crate::config::GatewayConfig::from_env(vars);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_corpora_replay_without_a_panic() {
        let dir = env!("CARGO_MANIFEST_DIR");
        for (target, body) in [
            ("dns_request", dns_request as fn(&[u8])),
            ("dns_answer", dns_answer),
            ("gateway_env", gateway_env),
        ] {
            leakhound_proto::fuzz::replay(dir, target, body);
        }
    }

    #[test]
    fn the_fixed_questions_parse_and_a_good_answer_is_served_again() {
        let q = parse_query(&ASKED).unwrap();
        assert_eq!((q.name(), q.limit), ("a.lab".to_string(), 512));
        let q = parse_query(&ASKED_EDNS).unwrap();
        assert_eq!(q.limit, 1232);
        // A good answer for the plain question: one A record by pointer.
        let mut resp = ASKED.to_vec();
        resp[2] = 0x81;
        resp[3] = 0x80;
        resp[7] = 1;
        resp.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        assert!(
            Entry::from_response(&parse_query(&ASKED).unwrap(), &resp, Instant::now()).is_some()
        );
        dns_answer(&resp);
    }
}
