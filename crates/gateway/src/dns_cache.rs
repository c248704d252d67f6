//! The resolver's front cache: complete UDP answers kept as wire bytes,
//! keyed by the question (name in lower case, type, class, whether the asker
//! spoke EDNS and set DO), and served again with the asker's ID, RD/CD flags
//! and spelling of the name, every TTL counted down by the answer's age.
//!
//! Pure: bytes and `now` in, bytes out; `dns` runs the socket. What the
//! policy refuses never reaches the cache (the caller decides first, on every
//! query), and only what the policy let through (rebinding answers already
//! removed) is stored: NOERROR with at least one answer, not truncated, every
//! TTL above zero. Anything the fast parser does not fully understand
//! (compression in the question, odd characters, more than one question,
//! records other than one OPT) takes the slow path through hickory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const HEADER: usize = 12;
/// Longest name on the wire (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// Answers older than this are asked again whatever their TTL.
pub const MAX_TTL: u32 = 86_400;
const TYPE_OPT: u16 = 41;
const QR: u16 = 0x8000;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;

/// A query the fast path understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    flags: u16,
    /// Lower-cased name on the wire, type, class, EDNS byte.
    key: Vec<u8>,
    /// End of the question in the request (it starts at 12).
    question_end: usize,
    /// The largest UDP answer the asker takes.
    pub limit: usize,
}

impl Query {
    /// The cache key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The asked name as the policy reads it: lower case, labels joined
    /// by dots, no trailing dot (the root is ""). The fast path only takes
    /// letters, digits, '-' and '_' in labels, so the text is unambiguous.
    pub fn name(&self) -> String {
        let mut out = String::with_capacity(self.key.len());
        let mut i = 0;
        while i < self.key.len() {
            let n = self.key[i] as usize;
            if n == 0 {
                break;
            }
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(std::str::from_utf8(&self.key[i + 1..i + 1 + n]).unwrap_or("?"));
            i += 1 + n;
        }
        out
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The header's question, answer, authority and additional counts.
fn section_counts(b: &[u8]) -> Option<[u16; 4]> {
    Some([u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?])
}

/// Reads a request the fast path can answer; `None` sends it the slow way.
pub fn parse_query(req: &[u8]) -> Option<Query> {
    let id = u16_at(req, 0)?;
    let flags = u16_at(req, 2)?;
    // A query (QR 0), opcode QUERY, one question, nothing else but an OPT.
    if flags & QR != 0 || (flags >> 11) & 0xf != 0 {
        return None;
    }
    let counts = section_counts(req)?;
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return None;
    }
    let mut key = Vec::with_capacity(64);
    let mut at = HEADER;
    loop {
        let n = *req.get(at)? as usize;
        if n == 0 {
            key.push(0);
            at += 1;
            break;
        }
        // No compression pointers (or reserved label types) in a question.
        if n > 63 || key.len() + 1 + n + 1 > MAX_NAME {
            return None;
        }
        let label = req.get(at + 1..at + 1 + n)?;
        if !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        key.push(n as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
        at += 1 + n;
    }
    key.extend_from_slice(req.get(at..at + 4)?);
    at += 4;
    let question_end = at;
    let (limit, edns) = if counts[3] == 1 {
        // The OPT pseudo-record: root name, type 41, class = payload size,
        // TTL = extended rcode, version, flags (DO is the top bit).
        if *req.get(at)? != 0 || u16_at(req, at + 1)? != TYPE_OPT {
            return None;
        }
        let payload = u16_at(req, at + 3)? as usize;
        let version = *req.get(at + 6)?;
        if version != 0 {
            return None; // hickory answers BADVERS
        }
        let dnssec_ok = u16_at(req, at + 7)? & 0x8000 != 0;
        let rdlen = u16_at(req, at + 9)? as usize;
        at += 11 + rdlen;
        (payload.max(512), if dnssec_ok { 2 } else { 1 })
    } else {
        (512, 0)
    };
    if at != req.len() {
        return None;
    }
    key.push(edns);
    Some(Query {
        id,
        flags,
        key,
        question_end,
        limit,
    })
}

/// A SERVFAIL answer to `q` (asked with the bytes `req`): the asker's ID,
/// RD and CD, its question as it spelled it, no records.
pub fn servfail(q: &Query, req: &[u8]) -> Vec<u8> {
    let mut out = req[..q.question_end].to_vec();
    const RA: u16 = 0x0080;
    const SERVFAIL: u16 = 2;
    let flags = QR | (q.flags & (RD | CD)) | RA | SERVFAIL;
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out
}

/// Skips a (possibly compressed) name starting at `at`; returns its end.
fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let n = *b.get(at)?;
        match n & 0xc0 {
            0x00 if n == 0 => return Some(at + 1),
            0x00 => at += 1 + n as usize,
            0xc0 => return (at + 2 <= b.len()).then_some(at + 2),
            _ => return None,
        }
    }
    None
}

/// One cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    bytes: Vec<u8>,
    question_end: usize,
    /// (offset, TTL as stored) of every record's TTL field but the OPT's.
    ttls: Vec<(usize, u32)>,
    stored: Instant,
    expires: Instant,
}

impl Entry {
    /// An answer worth keeping, from the response sent for `q`: NOERROR,
    /// not truncated, at least one answer, every TTL above zero. The entry
    /// lives as long as its shortest TTL (at most [`MAX_TTL`]).
    pub fn from_response(q: &Query, resp: &[u8], now: Instant) -> Option<Entry> {
        if resp.len() > q.limit || u16_at(resp, 0)? != q.id {
            return None;
        }
        let flags = u16_at(resp, 2)?;
        if flags & QR == 0 || flags & TC != 0 || flags & 0x000f != 0 {
            return None;
        }
        let counts = section_counts(resp)?;
        if counts[0] != 1 || counts[1] == 0 {
            return None;
        }
        // The question must be the one asked (so the asker's spelling can
        // be put back in place).
        // (A short answer may end inside its question: `get`, not a slice.)
        let question_end = skip_name(resp, HEADER)? + 4;
        let asked = &q.key[..q.key.len() - 1];
        if question_end != q.question_end
            || !resp
                .get(HEADER..question_end)?
                .iter()
                .map(u8::to_ascii_lowercase)
                .eq(asked.iter().copied())
        {
            return None;
        }
        let mut at = question_end;
        let mut ttls = Vec::new();
        let records: usize = counts[1..].iter().map(|c| *c as usize).sum();
        for _ in 0..records {
            at = skip_name(resp, at)?;
            let rtype = u16_at(resp, at)?;
            let ttl = u32_at(resp, at + 4)?;
            let rdlen = u16_at(resp, at + 8)? as usize;
            if rtype != TYPE_OPT {
                ttls.push((at + 4, ttl));
            }
            at += 10 + rdlen;
        }
        if at != resp.len() {
            return None;
        }
        let shortest = ttls.iter().map(|(_, t)| *t).min()?.min(MAX_TTL);
        if shortest == 0 {
            return None;
        }
        Some(Entry {
            bytes: resp.to_vec(),
            question_end,
            ttls,
            stored: now,
            expires: now + Duration::from_secs(u64::from(shortest)),
        })
    }
}

/// The cache: at most `capacity` answers.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Box<[u8]>, Entry>,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::with_capacity(capacity.min(4096)),
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the answer for `q` (asked with the bytes `req`) into `out`, or
    /// returns false when there is none that is still fresh at `now`. An
    /// answer longer than the asker takes goes out truncated (TC, no
    /// records), so the asker retries over TCP.
    pub fn answer(&mut self, q: &Query, req: &[u8], now: Instant, out: &mut Vec<u8>) -> bool {
        let Some(e) = self.entries.get(q.key()) else {
            self.misses += 1;
            return false;
        };
        if now >= e.expires {
            self.entries.remove(q.key());
            self.misses += 1;
            return false;
        }
        self.hits += 1;
        let age = u32::try_from(now.duration_since(e.stored).as_secs()).unwrap_or(u32::MAX);
        out.clear();
        out.extend_from_slice(&e.bytes);
        out[0..2].copy_from_slice(&q.id.to_be_bytes());
        let flags = (u16::from_be_bytes([out[2], out[3]]) & !(RD | CD)) | (q.flags & (RD | CD));
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[HEADER..e.question_end].copy_from_slice(&req[HEADER..q.question_end]);
        for (at, ttl) in &e.ttls {
            out[*at..*at + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
        }
        if out.len() > q.limit {
            out.truncate(e.question_end);
            out[2..4].copy_from_slice(&(flags | TC).to_be_bytes());
            out[6..12].fill(0);
        }
        true
    }

    /// Keeps `entry` for `q`. When full, expired answers go first, then
    /// those closest to expiring, down to 7/8 of the capacity.
    pub fn insert(&mut self, q: &Query, entry: Entry, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(q.key()) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.capacity {
                let keep = self.capacity - self.capacity.div_ceil(8);
                let mut by_expiry: Vec<(Instant, Box<[u8]>)> = self
                    .entries
                    .iter()
                    .map(|(k, e)| (e.expires, k.clone()))
                    .collect();
                by_expiry.sort_unstable();
                for (_, k) in by_expiry.into_iter().take(self.entries.len() - keep) {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(q.key().into(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery};
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

    fn request(name: &str, id: u16, edns: Option<bool>) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(
            Name::from_ascii(name).unwrap(),
            RecordType::A,
        ));
        if let Some(dnssec_ok) = edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn response(req: &[u8], ttls: &[u32]) -> Vec<u8> {
        let q = Message::from_vec(req).unwrap();
        let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = q.metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.add_query(q.queries[0].clone());
        for (i, ttl) in ttls.iter().enumerate() {
            m.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                *ttl,
                RData::A(A::new(192, 0, 2, i as u8 + 1)),
            ));
        }
        if let Some(e) = &q.edns {
            m.set_edns(e.clone());
        }
        m.to_vec().unwrap()
    }

    fn ttls_of(bytes: &[u8]) -> Vec<u32> {
        Message::from_vec(bytes)
            .unwrap()
            .answers
            .iter()
            .map(|r| r.ttl)
            .collect()
    }

    #[test]
    fn a_hit_carries_the_askers_id_spelling_and_flags_and_counts_ttls_down() {
        let t0 = Instant::now();
        let mut c = Cache::new(16);
        let first = request("Www.Example.LAB.", 7, None);
        let q1 = parse_query(&first).unwrap();
        assert_eq!(q1.name(), "www.example.lab");
        assert_eq!(q1.name(), crate::dns_policy::normalize("Www.Example.LAB."));
        let mut out = Vec::new();
        assert!(!c.answer(&q1, &first, t0, &mut out));
        let e = Entry::from_response(&q1, &response(&first, &[300, 60]), t0).unwrap();
        c.insert(&q1, e, t0);

        let second = request("www.EXAMPLE.lab.", 9, None);
        let q2 = parse_query(&second).unwrap();
        assert_eq!(q1.key(), q2.key());
        assert!(c.answer(&q2, &second, t0 + Duration::from_secs(10), &mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 9);
        assert_eq!(m.queries[0].name().to_string(), "www.EXAMPLE.lab.");
        assert!(m.metadata.recursion_desired);
        assert_eq!(ttls_of(&out), vec![290, 50]);
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn an_answer_expires_with_its_shortest_ttl() {
        let t0 = Instant::now();
        let mut c = Cache::new(16);
        let req = request("a.lab.", 1, None);
        let q = parse_query(&req).unwrap();
        c.insert(
            &q,
            Entry::from_response(&q, &response(&req, &[300, 5]), t0).unwrap(),
            t0,
        );
        let mut out = Vec::new();
        assert!(c.answer(&q, &req, t0 + Duration::from_millis(4999), &mut out));
        assert_eq!(ttls_of(&out), vec![296, 1]);
        assert!(!c.answer(&q, &req, t0 + Duration::from_secs(5), &mut out));
        assert!(c.is_empty());
    }

    #[test]
    fn edns_and_the_do_bit_are_part_of_the_key() {
        let plain = parse_query(&request("a.lab.", 1, None)).unwrap();
        let edns = parse_query(&request("a.lab.", 1, Some(false))).unwrap();
        let dnssec = parse_query(&request("a.lab.", 1, Some(true))).unwrap();
        assert_ne!(plain.key(), edns.key());
        assert_ne!(edns.key(), dnssec.key());
        assert_eq!(plain.limit, 512);
        assert_eq!(edns.limit, 1232);
        let mut c = Cache::new(16);
        let t0 = Instant::now();
        let req = request("a.lab.", 1, Some(false));
        c.insert(
            &edns,
            Entry::from_response(&edns, &response(&req, &[60]), t0).unwrap(),
            t0,
        );
        let mut out = Vec::new();
        assert!(!c.answer(&plain, &request("a.lab.", 1, None), t0, &mut out));
        assert!(c.answer(&edns, &req, t0, &mut out));
        assert!(Message::from_vec(&out).unwrap().edns.is_some());
    }

    #[test]
    fn what_is_not_a_clean_positive_answer_is_not_kept() {
        let t0 = Instant::now();
        let req = request("a.lab.", 1, None);
        let q = parse_query(&req).unwrap();
        // No answers, zero TTL, another ID, truncated, an error code.
        assert!(Entry::from_response(&q, &response(&req, &[]), t0).is_none());
        assert!(Entry::from_response(&q, &response(&req, &[60, 0]), t0).is_none());
        let mut other = response(&req, &[60]);
        other[1] ^= 1;
        assert!(Entry::from_response(&q, &other, t0).is_none());
        let mut tc = response(&req, &[60]);
        tc[2] |= 0x02;
        assert!(Entry::from_response(&q, &tc, t0).is_none());
        let mut servfail = response(&req, &[60]);
        servfail[3] |= 2;
        assert!(Entry::from_response(&q, &servfail, t0).is_none());
        // An answer to another question (of the same length) is refused,
        // one with the asked name in other letter case is kept.
        let mut wrong = response(&req, &[60]);
        wrong[13] = b'b';
        assert!(Entry::from_response(&q, &wrong, t0).is_none());
        let mut upper = response(&req, &[60]);
        upper[13] = b'A';
        assert!(Entry::from_response(&q, &upper, t0).is_some());
        // A response longer than the asker takes.
        let many: Vec<u32> = (0..40).map(|_| 60).collect();
        assert!(Entry::from_response(&q, &response(&req, &many), t0).is_none());
    }

    /// Found by `ci/fuzz.sh` (dns_request): an upstream answer that ends
    /// inside its own question (the question's name complete, its type cut)
    /// made the question's comparison slice past the end. Refused now, as
    /// is every prefix of a good answer.
    #[test]
    fn an_answer_cut_inside_its_question_is_refused_not_a_panic() {
        let asked = [
            0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 3, b'l', b'a', b'b', 0, 0, 1, 0, 1,
        ];
        let q = parse_query(&asked).unwrap();
        let crash = [
            0u8, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'a', 3, b'l', b'a', b'b', 0, 0,
        ];
        assert!(Entry::from_response(&q, &crash, Instant::now()).is_none());
        let on_disk = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/dns_request/seed-crash-answer-cut-in-question");
        assert_eq!(std::fs::read(on_disk).unwrap(), crash, "the fuzz seed");
        let req = request("a.lab.", 1, None);
        let q = parse_query(&req).unwrap();
        let good = response(&req, &[60, 60]);
        assert!(Entry::from_response(&q, &good, Instant::now()).is_some());
        for n in 0..good.len() {
            assert!(Entry::from_response(&q, &good[..n], Instant::now()).is_none());
        }
    }

    #[test]
    fn servfail_answers_the_question_as_asked_with_no_records() {
        let req = request("Www.Example.LAB.", 4242, Some(true));
        let q = parse_query(&req).unwrap();
        let m = Message::from_vec(&servfail(&q, &req)).unwrap();
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::ServFail
        );
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name().to_string(), "Www.Example.LAB.");
        assert!(m.answers.is_empty() && m.additionals.is_empty() && m.edns.is_none());
    }

    #[test]
    fn an_answer_too_long_for_a_later_asker_goes_out_truncated() {
        let t0 = Instant::now();
        let mut c = Cache::new(16);
        let big = request("a.lab.", 1, Some(false));
        let q = parse_query(&big).unwrap();
        let many: Vec<u32> = (0..40).map(|_| 60).collect();
        c.insert(
            &q,
            Entry::from_response(&q, &response(&big, &many), t0).unwrap(),
            t0,
        );
        // Same key, but this asker says it takes 512 bytes only.
        let mut small = big.clone();
        let at = small.len() - 11 + 3;
        small[at..at + 2].copy_from_slice(&512u16.to_be_bytes());
        let q2 = parse_query(&small).unwrap();
        assert_eq!(q2.key(), q.key());
        let mut out = Vec::new();
        assert!(c.answer(&q2, &small, t0, &mut out));
        assert!(out.len() <= 512);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn a_full_cache_drops_the_expired_then_the_soonest_to_expire() {
        let t0 = Instant::now();
        let mut c = Cache::new(8);
        for i in 0..8u32 {
            let req = request(&format!("n{i}.lab."), 1, None);
            let q = parse_query(&req).unwrap();
            c.insert(
                &q,
                Entry::from_response(&q, &response(&req, &[10 + i]), t0).unwrap(),
                t0,
            );
        }
        assert_eq!(c.len(), 8);
        let req = request("new.lab.", 1, None);
        let q = parse_query(&req).unwrap();
        c.insert(
            &q,
            Entry::from_response(&q, &response(&req, &[100]), t0).unwrap(),
            t0,
        );
        assert_eq!(c.len(), 8, "one dropped (7/8 kept) and one added");
        let mut out = Vec::new();
        let n0 = request("n0.lab.", 1, None);
        assert!(!c.answer(&parse_query(&n0).unwrap(), &n0, t0, &mut out));
        let n7 = request("n7.lab.", 1, None);
        assert!(c.answer(&parse_query(&n7).unwrap(), &n7, t0, &mut out));
        // Later, the expired go first.
        let later = t0 + Duration::from_secs(16);
        let req = request("newer.lab.", 1, None);
        let q = parse_query(&req).unwrap();
        c.insert(
            &q,
            Entry::from_response(&q, &response(&req, &[100]), later).unwrap(),
            later,
        );
        assert_eq!(
            c.len(),
            3,
            "n1..n6 expired at 11..16 s and were swept: n7, new, newer"
        );
        let mut none = Cache::new(0);
        none.insert(
            &q,
            Entry::from_response(&q, &response(&req, &[100]), t0).unwrap(),
            t0,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn what_the_fast_parser_does_not_fully_understand_goes_the_slow_way() {
        let ok = request("a.lab.", 1, None);
        assert!(parse_query(&ok).is_some());
        // A response, another opcode, two questions, trailing bytes.
        let mut resp = ok.clone();
        resp[2] |= 0x80;
        assert!(parse_query(&resp).is_none());
        let mut notify = ok.clone();
        notify[2] |= 4 << 3;
        assert!(parse_query(&notify).is_none());
        let mut two = ok.clone();
        two[5] = 2;
        assert!(parse_query(&two).is_none());
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(parse_query(&trailing).is_none());
        // A dot inside a label, a compression pointer.
        let mut dotted = ok.clone();
        dotted[13] = b'.';
        assert!(parse_query(&dotted).is_none());
        let mut pointer = ok[..12].to_vec();
        pointer.extend([0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(parse_query(&pointer).is_none());
        // Every prefix of a good query, and garbage, are refused quietly.
        for n in 0..ok.len() {
            assert!(parse_query(&ok[..n]).is_none());
        }
        for (_, bad) in leakhound_proto::dns_corpus::malformed_dns() {
            let _ = parse_query(&bad);
        }
        for m in leakhound_proto::dns_corpus::mutated_queries(2000) {
            if let Some(q) = parse_query(&m) {
                let _ = q.name();
            }
        }
    }
}
