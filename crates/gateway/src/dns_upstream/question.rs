//! A question as the upstream client sends it and matches it in answers:
//! the name in wire form in lower case, its type and class; and the query
//! asking it (plain, or framed for TCP and TLS). Pure.

use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The UDP payload the upstream may send (EDNS, RFC 6891; the DNS flag
/// day's size).
pub const EDNS_PAYLOAD: u16 = 1232;

/// A question as it goes upstream and is matched in answers: the name in
/// wire form in lower case, its type and class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Question(Box<[u8]>);

impl Question {
    pub fn new(name: &Name, rtype: RecordType, class: DNSClass) -> Question {
        let mut wire = Vec::with_capacity(name.len() + 6);
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        wire.extend_from_slice(&u16::from(rtype).to_be_bytes());
        wire.extend_from_slice(&u16::from(class).to_be_bytes());
        Question(wire.into())
    }

    /// From a question already in wire form with its name in lower case
    /// (the front cache's key without its EDNS byte).
    pub fn from_lowercase_wire(wire: &[u8]) -> Question {
        Question(wire.into())
    }

    /// Whether `raw` (a question section as a server sent it back) is this
    /// question, the name's case aside.
    pub fn matches(&self, raw: &[u8]) -> bool {
        raw.len() == self.0.len()
            && raw
                .iter()
                .zip(self.0.iter())
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
    }

    /// The query asking it with `id`: recursion desired, with an EDNS OPT
    /// record offering [`EDNS_PAYLOAD`] bytes.
    pub fn query(&self, id: u16) -> Vec<u8> {
        let mut q = Vec::with_capacity(12 + self.0.len() + 11);
        q.extend_from_slice(&id.to_be_bytes());
        // RD; one question, one additional (the OPT).
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
        q.extend_from_slice(&self.0);
        // OPT: root name, type 41, class = payload, TTL 0, no data.
        q.push(0);
        q.extend_from_slice(&41u16.to_be_bytes());
        q.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        q
    }

    /// [`Question::query`] as it goes over TCP and TLS: its length first
    /// (RFC 1035 4.2.2).
    pub fn tcp_frame(&self, id: u16) -> Vec<u8> {
        let q = self.query(id);
        let mut f = Vec::with_capacity(q.len() + 2);
        f.extend_from_slice(&(q.len() as u16).to_be_bytes());
        f.extend_from_slice(&q);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;

    #[test]
    fn a_question_is_lower_case_wire_and_its_query_offers_edns() {
        let q = Question::new(
            &Name::from_ascii("WwW.Lab.").unwrap(),
            RecordType::AAAA,
            DNSClass::IN,
        );
        assert_eq!(&*q.0, b"\x03www\x03lab\x00\x00\x1c\x00\x01");
        let bytes = q.query(0xbeef);
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name().to_ascii(), "www.lab.");
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
        assert_eq!(m.edns.unwrap().max_payload(), EDNS_PAYLOAD);
        assert!(q.matches(b"\x03WWW\x03lab\x00\x00\x1c\x00\x01"));
        assert!(
            !q.matches(b"\x03www\x03lab\x00\x00\x01\x00\x01"),
            "another type"
        );
        assert!(!q.matches(b"\x03www\x03lab\x00\x00\x1c\x00"), "cut short");
    }
}
