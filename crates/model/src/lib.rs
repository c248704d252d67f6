//! leakhound's pure core: what the lab looks like, what a leak is, and the
//! wire formats both tunnel ends and the harness share. No I/O, no async
//! runtime, no root: everything here is unit-tested on literals and byte
//! arrays, and fuzzed where it parses input from outside.
//!
//! The codecs the gateway speaks too ([`dns_query`], [`dns_corpus`],
//! [`echo`], [`natpmp`], [`prom`], [`scrub`], and the corpus replay of
//! [`fuzz`]) live in `leakhound_proto`, so that the gateway does not depend
//! on this crate; they are re-exported here at their old paths.
//!
//! * [`topology`]: the lab's hosts, links, addresses, routes and taps.
//! * [`classify`]: which captured frame is a leak under a wire's policy.
//! * [`dns_query`], [`dns_corpus`]: DNS queries, and malformed DNS for tests.
//! * [`fuzz`]: the fuzz targets' bodies, and the replay of their corpora.
//! * [`echo`]: ICMP/ICMPv6 echo messages carrying a nonce.
//! * [`located`]: the error of an input file that cannot be used (file,
//!   line, column).
//! * [`natpmp`]: the NAT-PMP codec (RFC 6886), client and server side.
//! * [`scenario`]: scenario files: their format, typed steps, the parser.
//! * [`scrub`]: the secret registry and the sanitiser every text leaving
//!   leakhound passes through.
//! * [`targets`]: targets files: the gateways under test, described.
//! * [`torrent`]: BitTorrent for the lab's swarm: torrents made from bytes,
//!   the peer handshake, announces read off a wire, scrape answers.
//! * [`usenet`]: yEnc, NZB files and NNTP commands for the lab's news
//!   server.
//! * [`userconf`]: the user's own configuration (a compose file's gateway
//!   service, an env file) read into variables, ports and dependents.
//! * [`spray`]: the leak fuzzer's seeded spray of packets, their bytes,
//!   and which of them leaked.
//! * [`verdict`]: result types, and the pure function from captured frames,
//!   the step timeline and the wires' policies to leak records and cases.

pub mod audit;
pub mod browser;
pub mod classify;
pub mod fuzz;
pub mod located;
pub mod scenario;
pub mod shard;
pub mod spray;
pub mod stats;
pub mod targets;
pub mod topology;
pub mod torrent;
pub mod upnp;
pub mod usenet;
pub mod userconf;
pub mod userlab;
pub mod verdict;
pub mod waiver;

// The codecs the gateway shares, at their old paths.
pub use leakhound_proto::{dns_corpus, dns_query, echo, natpmp, prom, ra, scrub};
