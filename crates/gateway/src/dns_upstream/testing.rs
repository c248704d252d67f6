//! What the upstream client's unit tests share: a question by name, and a
//! server's answer to a query's bytes.

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, rdata::A};

use super::question::Question;

/// The A question for `name`.
pub(crate) fn q(name: &str) -> Question {
    Question::new(
        &Name::from_ascii(name).unwrap(),
        RecordType::A,
        DNSClass::IN,
    )
}

/// The answer to a query's bytes: its ID and question, one A record
/// (192.0.2.7).
pub(crate) fn answer(query: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    let query = q.queries[0].clone();
    m.add_answer(Record::from_rdata(
        query.name().clone(),
        60,
        RData::A(A::new(192, 0, 2, 7)),
    ));
    m.add_query(query);
    m.to_vec().unwrap()
}
