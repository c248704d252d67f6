//! The queries waiting on one upstream socket or connection, by ID: a
//! random ID not in use is handed out per query, and an answer is taken
//! only when its ID, its question (name without case, type, class) and,
//! on a shared UDP socket, the server it came from are those of a waiting
//! query. Pure: bytes and a random source in, the waiter's value out.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::question::Question;

/// One waiting query.
#[derive(Debug)]
struct Waiter<T> {
    question: Question,
    /// The server it was sent to (shared UDP sockets), `None` on a
    /// connection to one server.
    server: Option<SocketAddr>,
    value: T,
}

/// The waiting queries of one socket or connection.
#[derive(Debug)]
pub struct Pending<T> {
    waiting: HashMap<u16, Waiter<T>>,
    /// At most this many at once (below 65,536 so a free ID is found in a
    /// few draws).
    limit: usize,
}

/// What became of an answer.
#[derive(Debug, PartialEq)]
pub enum Taken<T> {
    /// It answers this waiter (now removed).
    Answer(T),
    /// Nobody waits for its ID (late, after a timeout, or forged).
    Unknown,
    /// Someone waits for its ID, but for another question or server: a
    /// forgery or a confused server; the waiter keeps waiting.
    Mismatch,
    /// Not a DNS response.
    NotAResponse,
}

impl<T> Pending<T> {
    pub fn new(limit: usize) -> Self {
        Pending {
            waiting: HashMap::new(),
            limit: limit.min(16_384),
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Registers a query for `question` sent to `server` and returns its
    /// ID, drawn by `draw` (random) among those not waiting; `None` when
    /// [`Pending`] is full.
    pub fn insert(
        &mut self,
        question: Question,
        server: Option<SocketAddr>,
        value: T,
        mut draw: impl FnMut() -> u16,
    ) -> Option<u16> {
        if self.waiting.len() >= self.limit {
            return None;
        }
        // At most a quarter of the IDs are taken: a free one is found
        // within a few draws.
        let id = loop {
            let id = draw();
            if !self.waiting.contains_key(&id) {
                break id;
            }
        };
        self.waiting.insert(
            id,
            Waiter {
                question,
                server,
                value,
            },
        );
        Some(id)
    }

    /// Gives up waiting for `id` (timed out, or the asker went away).
    pub fn remove(&mut self, id: u16) -> Option<T> {
        self.waiting.remove(&id).map(|w| w.value)
    }

    /// Takes the waiter `response` (from `from`, on a shared UDP socket)
    /// answers.
    pub fn take(&mut self, response: &[u8], from: Option<SocketAddr>) -> Taken<T> {
        let Some((id, question)) = response_question(response) else {
            return Taken::NotAResponse;
        };
        let Some(w) = self.waiting.get(&id) else {
            return Taken::Unknown;
        };
        if !w.question.matches(question) || (w.server.is_some() && w.server != from) {
            return Taken::Mismatch;
        }
        match self.waiting.remove(&id) {
            Some(w) => Taken::Answer(w.value),
            None => Taken::Unknown,
        }
    }

    /// Every waiter (the connection failed).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.waiting.drain().map(|(_, w)| w.value)
    }
}

/// The ID and the raw question section (one question) of a response.
pub fn response_question(b: &[u8]) -> Option<(u16, &[u8])> {
    if b.len() < 12 || b[2] & 0x80 == 0 || u16::from_be_bytes([b[4], b[5]]) != 1 {
        return None;
    }
    let id = u16::from_be_bytes([b[0], b[1]]);
    let mut at = 12;
    loop {
        let n = *b.get(at)? as usize;
        at += 1;
        if n == 0 {
            break;
        }
        // The question comes first: no compression pointer can be in it.
        if n > 63 {
            return None;
        }
        at += n;
    }
    Some((id, b.get(12..at + 4)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_upstream::testing::q;

    /// A response to `question` with `id` (the name as `spelled`).
    fn response(id: u16, spelled: &str) -> Vec<u8> {
        let mut m = hickory_proto::op::Message::response(id, hickory_proto::op::OpCode::Query);
        m.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii(spelled).unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        m.to_vec().unwrap()
    }

    #[test]
    fn ids_are_drawn_until_a_free_one_comes_and_never_beyond_the_limit() {
        let mut p = Pending::new(2);
        let mut draws = [7u16, 7, 7, 9].into_iter();
        let a = p.insert(q("a.lab."), None, 'a', || draws.next().unwrap());
        let b = p.insert(q("b.lab."), None, 'b', || draws.next().unwrap());
        assert_eq!((a, b), (Some(7), Some(9)), "7 was taken: drawn again");
        assert_eq!(p.insert(q("c.lab."), None, 'c', || 11), None, "full");
        assert_eq!(p.remove(7), Some('a'));
        assert_eq!(p.insert(q("c.lab."), None, 'c', || 7), Some(7));
    }

    #[test]
    fn an_answer_is_taken_only_for_its_id_question_and_server() {
        let server: SocketAddr = "10.64.0.1:53".parse().unwrap();
        let other: SocketAddr = "10.64.0.9:53".parse().unwrap();
        let mut p = Pending::new(8);
        let id = p.insert(q("www.lab."), Some(server), 1, || 4242).unwrap();
        assert_eq!(
            p.take(&response(id + 1, "www.lab."), Some(server)),
            Taken::Unknown
        );
        assert_eq!(
            p.take(&response(id, "evil.lab."), Some(server)),
            Taken::Mismatch
        );
        assert_eq!(
            p.take(&response(id, "www.lab."), Some(other)),
            Taken::Mismatch
        );
        assert_eq!(
            p.take(b"\x10\x92\x01\x00", Some(server)),
            Taken::NotAResponse
        );
        assert_eq!(p.len(), 1, "still waiting after forgeries");
        // The name's case does not matter (0x20 or a server's spelling).
        assert_eq!(
            p.take(&response(id, "WWW.Lab."), Some(server)),
            Taken::Answer(1)
        );
        assert_eq!(
            p.take(&response(id, "www.lab."), Some(server)),
            Taken::Unknown
        );
        assert!(p.is_empty());
    }

    #[test]
    fn a_query_is_not_an_answer_and_a_failed_connection_drains_every_waiter() {
        let mut p = Pending::new(8);
        let id = p.insert(q("www.lab."), None, 1, || 1).unwrap();
        p.insert(q("x.lab."), None, 2, || 2).unwrap();
        let mut query = response(id, "www.lab.");
        query[2] &= 0x7f;
        assert_eq!(p.take(&query, None), Taken::NotAResponse);
        let mut all: Vec<i32> = p.drain().collect();
        all.sort();
        assert_eq!(all, vec![1, 2]);
        assert!(p.is_empty());
    }
}
