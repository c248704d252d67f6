//! The small codecs both ends speak: the gateway under test
//! (`leakhound-gateway`) and the harness (`leakhound`, through
//! `leakhound_model`, which re-exports each module at its old path). Pure:
//! no I/O, no async runtime, no root; unit-tested on literals and byte
//! arrays, and fuzzed where it parses input from outside.
//!
//! * [`dns_query`], [`dns_corpus`]: DNS queries, and malformed DNS for tests.
//! * [`echo`]: ICMP/ICMPv6 echo messages carrying a nonce.
//! * [`fuzz`]: the replay of the committed fuzz corpora as tests.
//! * [`http_url`]: plain-HTTP URLs, parsed once (the audit's, the
//!   gateway's PUBLICIP_URL).
//! * [`listen`]: Gluetun's server addresses (`HTTP_CONTROL_SERVER_ADDRESS`),
//!   read for listening (the gateway) and for reaching (the harness).
//! * [`natpmp`]: the NAT-PMP codec (RFC 6886), client and server side.
//! * [`prom`]: Prometheus' text exposition format.
//! * [`ra`]: IPv6 router advertisements, as a rogue router sends them.
//! * [`readiness`]: the built-in gateway's readiness events (the kill
//!   switch closed, a tunnel up), JSON lines the harness reads.
//! * [`scrub`]: the secret registry and the sanitiser every text leaving
//!   leakhound (the harness or the gateway) passes through.

pub mod dns_corpus;
pub mod dns_query;
pub mod echo;
pub mod fuzz;
pub mod http_url;
pub mod listen;
pub mod natpmp;
pub mod prom;
pub mod ra;
pub mod readiness;
pub mod scrub;
