//! The upstream's answers as the resolver keeps them: per question, the
//! response code and the answer records as the upstream sent them (before
//! the policy, which the resolver applies on every use), for as long as
//! their shortest TTL; NXDOMAIN and empty answers for their SOA's negative
//! TTL when the upstream gave one. Pure: records and `now` in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record};

use super::question::Question;

/// Answers older than this are asked again whatever their TTL.
pub const MAX_TTL: u32 = 86_400;

/// What the upstream answered to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// NOERROR or NXDOMAIN (anything else is an upstream failure).
    pub rcode: ResponseCode,
    /// The answer section (CNAMEs included), OPT removed.
    pub records: Vec<Record>,
    /// How long it may be kept: the shortest TTL, or the SOA's negative
    /// TTL for an answer without records; `None`: not kept.
    pub ttl: Option<u32>,
}

impl Answer {
    /// The answer in an upstream response (NOERROR or NXDOMAIN).
    pub fn from_message(m: Message) -> Answer {
        let ttl = if m.answers.is_empty() {
            // RFC 2308: the SOA's TTL, at most its MINIMUM.
            m.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
        } else {
            m.answers.iter().map(|r| r.ttl).min()
        }
        .map(|t| t.min(MAX_TTL))
        .filter(|t| *t > 0);
        Answer {
            rcode: m.metadata.response_code,
            records: m.answers,
            ttl,
        }
    }

    /// The records `age` seconds after they were received, TTLs counted
    /// down.
    pub fn aged(&self, age: u32) -> Vec<Record> {
        self.records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.ttl = r.ttl.saturating_sub(age);
                r
            })
            .collect()
    }
}

#[derive(Debug)]
struct Kept {
    answer: Arc<Answer>,
    stored: Instant,
    expires: Instant,
}

/// At most `capacity` answers.
#[derive(Debug)]
pub struct Answers {
    entries: HashMap<Question, Kept>,
    capacity: usize,
}

impl Answers {
    pub fn new(capacity: usize) -> Answers {
        Answers {
            entries: HashMap::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The answer to `q` still fresh at `now`, and its age in seconds.
    pub fn get(&mut self, q: &Question, now: Instant) -> Option<(Arc<Answer>, u32)> {
        let k = self.entries.get(q)?;
        if now >= k.expires {
            self.entries.remove(q);
            return None;
        }
        let age = u32::try_from(now.duration_since(k.stored).as_secs()).unwrap_or(u32::MAX);
        Some((k.answer.clone(), age))
    }

    /// Keeps `answer` to `q` if it may be kept. When full, expired answers
    /// go first, then those closest to expiring, down to 7/8 of the
    /// capacity.
    pub fn insert(&mut self, q: &Question, answer: Arc<Answer>, now: Instant) {
        let Some(ttl) = answer.ttl else { return };
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(q) {
            self.entries.retain(|_, k| k.expires > now);
            if self.entries.len() >= self.capacity {
                let keep = self.capacity - self.capacity.div_ceil(8);
                let mut by_expiry: Vec<(Instant, Question)> = self
                    .entries
                    .iter()
                    .map(|(q, k)| (k.expires, q.clone()))
                    .collect();
                by_expiry.sort_unstable();
                for (_, q) in by_expiry.into_iter().take(self.entries.len() - keep) {
                    self.entries.remove(&q);
                }
            }
        }
        self.entries.insert(
            q.clone(),
            Kept {
                answer,
                stored: now,
                expires: now + Duration::from_secs(u64::from(ttl)),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_upstream::testing::q;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};

    fn message(ttls: &[u32], soa: Option<(u32, u32)>, rcode: ResponseCode) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        let name = Name::from_ascii("www.lab.").unwrap();
        for t in ttls {
            m.add_answer(Record::from_rdata(
                name.clone(),
                *t,
                RData::A(A::new(192, 0, 2, 7)),
            ));
        }
        if let Some((ttl, minimum)) = soa {
            let soa = SOA::new(name.clone(), name.clone(), 1, 60, 60, 60, minimum);
            m.add_authority(Record::from_rdata(name, ttl, RData::SOA(soa)));
        }
        m
    }

    #[test]
    fn an_answer_lives_as_long_as_its_shortest_ttl_or_its_negative_ttl() {
        let a = Answer::from_message(message(&[300, 60], None, ResponseCode::NoError));
        assert_eq!((a.records.len(), a.ttl), (2, Some(60)));
        let nx = Answer::from_message(message(&[], Some((900, 30)), ResponseCode::NXDomain));
        assert_eq!((nx.rcode, nx.ttl), (ResponseCode::NXDomain, Some(30)));
        let bare = Answer::from_message(message(&[], None, ResponseCode::NXDomain));
        assert_eq!(bare.ttl, None, "no SOA: not kept");
        let zero = Answer::from_message(message(&[0, 60], None, ResponseCode::NoError));
        assert_eq!(zero.ttl, None);
        let long = Answer::from_message(message(&[u32::MAX], None, ResponseCode::NoError));
        assert_eq!(long.ttl, Some(MAX_TTL));
    }

    #[test]
    fn a_kept_answer_is_served_with_its_age_until_it_expires() {
        let t0 = Instant::now();
        let mut c = Answers::new(8);
        let a = Arc::new(Answer::from_message(message(
            &[60],
            None,
            ResponseCode::NoError,
        )));
        c.insert(&q("WWW.lab."), a.clone(), t0);
        let (got, age) = c.get(&q("www.LAB."), t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(
            (got.as_ref(), age),
            (a.as_ref(), 20),
            "the case does not matter"
        );
        assert_eq!(got.aged(age)[0].ttl, 40);
        assert!(
            c.get(&q("www.lab."), t0 + Duration::from_secs(60))
                .is_none()
        );
        assert!(c.is_empty(), "an expired answer is dropped when asked");
        let unkept = Arc::new(Answer::from_message(message(
            &[],
            None,
            ResponseCode::NXDomain,
        )));
        c.insert(&q("nx.lab."), unkept, t0);
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_cache_drops_the_answers_closest_to_expiring() {
        let t0 = Instant::now();
        let mut c = Answers::new(8);
        for i in 0..8u32 {
            let a = Arc::new(Answer::from_message(message(
                &[100 + i],
                None,
                ResponseCode::NoError,
            )));
            c.insert(&q(&format!("n{i}.lab.")), a, t0);
        }
        let a = Arc::new(Answer::from_message(message(
            &[500],
            None,
            ResponseCode::NoError,
        )));
        c.insert(&q("new.lab."), a, t0);
        assert_eq!(c.len(), 8, "down to 7, then the new one");
        assert!(c.get(&q("n0.lab."), t0).is_none());
        assert!(c.get(&q("n1.lab."), t0).is_some());
        assert!(c.get(&q("new.lab."), t0).is_some());
    }
}
