//! Malformed DNS: a fixed corpus of broken messages (each with what is wrong
//! with it) and seeded mutations of a valid query. What the `dns-garbage`
//! step throws at a resolver, and what the resolver's unit tests replay.

use crate::dns_query::a_query;

/// Malformed DNS messages, each with what is wrong with it: what the
/// `dns-garbage` step throws at a resolver.
pub fn malformed_dns() -> Vec<(&'static str, Vec<u8>)> {
    malformed_corpus()
}

/// How many mutated queries `dns_garbage` adds to the fixed corpus.
pub const MUTATIONS: usize = 300;

fn malformed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    // A header: id, flags (RD), qd/an/ns/ar counts.
    let header = |qd: u16| {
        let mut h = vec![0x12, 0x34, 0x01, 0x00];
        h.extend_from_slice(&qd.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        h
    };
    let with = |qd: u16, body: &[u8]| {
        let mut m = header(qd);
        m.extend_from_slice(body);
        m
    };
    vec![
        ("an empty datagram", vec![]),
        ("a truncated header", vec![0x12, 0x34, 0x01]),
        ("a question count with no question", header(1)),
        (
            "a label longer than 63 bytes",
            with(1, &[0x40, b'a', b'b', 0, 0, 1, 0, 1]),
        ),
        (
            "a compression pointer to itself",
            with(1, &[0xc0, 0x0c, 0, 1, 0, 1]),
        ),
        (
            "a compression pointer past the end",
            with(1, &[0xc0, 0xff, 0, 1, 0, 1]),
        ),
        (
            "two pointers in a loop",
            with(1, &[0xc0, 0x0e, 0xc0, 0x0c, 0, 1, 0, 1]),
        ),
        (
            "a name without its terminating zero",
            with(1, &[3, b'l', b'a', b'b']),
        ),
        (
            "65535 questions announced, one sent",
            with(0xffff, &[3, b'l', b'a', b'b', 0, 0, 1, 0, 1]),
        ),
        ("a huge datagram of garbage", vec![0xff; 60_000]),
        ("a response instead of a query", {
            let mut m = with(1, &[3, b'l', b'a', b'b', 0, 0, 1, 0, 1]);
            m[2] |= 0x80;
            m
        }),
    ]
}

/// `n` mutations of a valid query (bytes flipped, cut, repeated), from a
/// fixed seed so a failure can be replayed.
pub fn mutated_queries(n: usize) -> Vec<Vec<u8>> {
    let (_, base) = a_query("mutant.probe.lab.").expect("a valid name");
    // xorshift64: small, deterministic, no dependency.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let mut m = base.clone();
            for _ in 0..=(next() % 4) {
                let len = m.len().max(1) as u64;
                match next() % 4 {
                    0 => {
                        let i = (next() % len) as usize;
                        if let Some(b) = m.get_mut(i) {
                            *b = next() as u8;
                        }
                    }
                    1 => m.truncate((next() % len) as usize),
                    2 => {
                        let i = (next() % len) as usize;
                        let tail: Vec<u8> = m[i.min(m.len())..].to_vec();
                        m.extend_from_slice(&tail);
                    }
                    _ => m.push(next() as u8),
                }
            }
            m
        })
        .collect()
}
