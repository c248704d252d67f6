//! Reporters: consumers of the runner's results and events. JUnit XML for CI
//! systems ([`junit`]), a JSON summary ([`json`]), and the terminal display
//! ([`terminal`]). None of them runs anything.

pub mod json;
pub mod junit;
pub mod terminal;
