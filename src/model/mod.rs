//! Pure data and logic: topology, leak policy and classification, verdicts.

pub mod classify;
pub mod dns_query;
pub mod echo;
pub mod topology;
