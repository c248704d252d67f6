//! Reporters: consumers of the runner's results and events. JUnit XML for CI
//! systems ([`junit`]), a JSON summary ([`json`]), the terminal display
//! ([`terminal`]) and the table of `leakhound compare` ([`compare`]). None of them runs anything.

pub mod compare;
pub mod html;
pub mod json;
pub mod jsonl;
pub mod junit;
pub mod prometheus;
pub mod provenance;
pub mod terminal;
