//! The DNS question every part of leakhound asks: an A query for one name
//! with recursion desired, as bytes, with its id (probes, the health check,
//! the storm, the benchmark and tests all send it). Pure.

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// Why an A query could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{name:?}: {source}")]
    Name {
        name: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
    #[error("encoding the query for {name:?}: {source}")]
    Encode {
        name: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
}

/// An A query for `name`: (message id, wire bytes); an error names why
/// `name` is not a DNS name.
pub fn a_query(name: &str) -> Result<(u16, Vec<u8>), QueryError> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).map_err(|source| QueryError::Name {
            name: name.to_string(),
            source,
        })?,
        RecordType::A,
    ));
    let bytes = m.to_vec().map_err(|source| QueryError::Encode {
        name: name.to_string(),
        source,
    })?;
    Ok((m.metadata.id, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_asks_for_the_name_with_recursion() {
        let (id, bytes) = a_query("x.probe.lab.").unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, id);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name().to_string(), "x.probe.lab.");
        assert_eq!(m.queries[0].query_type(), RecordType::A);
        let e = a_query("bad..name").unwrap_err();
        assert!(matches!(e, QueryError::Name { .. }), "{e:?}");
        assert!(e.to_string().starts_with("\"bad..name\": "), "{e}");
    }
}
