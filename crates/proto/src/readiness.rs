//! The built-in gateway's readiness facts, for the harness that started it:
//! one JSON object a line ([`ReadinessEvent`]), written to the descriptor
//! the harness names in [`READINESS_FD_VARIABLE`] (a leakhound extension
//! that only the built-in gets; other gateways say nothing of the kind and
//! are judged from outside). The gateway's log lines say the same for
//! people; the harness reads these, never the prose.

use serde::{Deserialize, Serialize};

/// The variable naming the descriptor (a pipe's writing end, inherited)
/// that the gateway writes its events to.
pub const READINESS_FD_VARIABLE: &str = "LEAKHOUND_READINESS_FD";

/// One readiness fact. Times are microseconds; "since start" counts from
/// the gateway process's own start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ReadinessEvent {
    /// The kill switch is in the kernel and read back: from here on
    /// nothing leaves but through the tunnel and the allowed subnets.
    KillSwitchClosed {
        /// From the process's start to the rules in place.
        since_start_us: u64,
        /// How long the nftables batch took; `None`: the rules were found
        /// in place (a restart after a crash) and not rewritten.
        batch_us: Option<u64>,
        /// How long reading them back and comparing took.
        verified_us: u64,
    },
    /// A tunnel is up: its device, addresses and routes in place and its
    /// socket open (the handshake follows; the provider sees it).
    TunnelUp {
        /// From the process's start.
        since_start_us: u64,
    },
}

/// A line that is not a readiness event.
#[derive(Debug, thiserror::Error)]
#[error("not a readiness event: {line:?}")]
pub struct ReadinessError {
    pub line: String,
    #[source]
    pub source: serde_json::Error,
}

impl ReadinessEvent {
    /// The event as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("an event serializes");
        s.push('\n');
        s
    }

    /// Reads one line (its newline optional).
    pub fn from_line(line: &str) -> Result<ReadinessEvent, ReadinessError> {
        serde_json::from_str(line.trim_end()).map_err(|source| ReadinessError {
            line: line.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_line_each_and_read_back() {
        let closed = ReadinessEvent::KillSwitchClosed {
            since_start_us: 3940,
            batch_us: Some(2522),
            verified_us: 1355,
        };
        let line = closed.to_line();
        assert_eq!(
            line,
            "{\"event\":\"kill-switch-closed\",\"since_start_us\":3940,\"batch_us\":2522,\"verified_us\":1355}\n"
        );
        assert_eq!(ReadinessEvent::from_line(&line).unwrap(), closed);
        let found = ReadinessEvent::KillSwitchClosed {
            since_start_us: 900,
            batch_us: None,
            verified_us: 700,
        };
        assert_eq!(ReadinessEvent::from_line(&found.to_line()).unwrap(), found);
        let up = ReadinessEvent::TunnelUp {
            since_start_us: 12_000,
        };
        assert_eq!(
            up.to_line(),
            "{\"event\":\"tunnel-up\",\"since_start_us\":12000}\n"
        );
        assert_eq!(ReadinessEvent::from_line(&up.to_line()).unwrap(), up);
    }

    #[test]
    fn anything_else_is_refused_with_the_line() {
        for bad in [
            "firewall closed 3940 us after start",
            "{\"event\":\"kettle-boiled\"}",
            "{\"event\":\"tunnel-up\"}",
            "{\"event\":\"tunnel-up\",\"since_start_us\":1,\"colour\":2}",
            "",
        ] {
            let e = ReadinessEvent::from_line(bad).unwrap_err();
            assert_eq!(e.line, bad);
            assert!(e.to_string().starts_with("not a readiness event"), "{e}");
        }
    }
}
