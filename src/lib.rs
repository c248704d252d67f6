//! leakhound proves that a VPN gateway leaks nothing.
//!
//! # Layers
//!
//! * [`model`]: pure data and logic: the lab topology, the leak policy and
//!   packet classification, scenarios and verdicts. No I/O, no root; unit
//!   tested on byte arrays and literals.
//! * [`lab`]: builds the topology out of network namespaces (pinned under
//!   `/run/netns` as `lh-<run>-<host>`), through rtnetlink from threads that
//!   have entered each namespace; runs the lab's services (the provider's
//!   WireGuard server, resolvers, whoami) on sockets bound inside it.
//! * [`gateway`]: the system under test, `leakhound gateway`, a separate
//!   process started inside the `gw` namespace and configured only by
//!   Gluetun's environment variables.
//! * [`tunnel`]: the boringtun driver both tunnel ends use.
//! * [`capture`]: AF_PACKET capture (pnet) at the far end of each watched
//!   wire, feeding the pure classifier and pcap files.
//! * [`probe`]: the small clients that run inside a lab host, each carrying
//!   a nonce; the scenarios' steps, the audit, the lab and the benchmarks
//!   use them.
//! * [`scenario`]: scenario files, their runner and the events it emits.
//! * [`suite`]: the run pipeline of `run`, `compare` and `soak`: labs
//!   side by side, the order of the work, waivers, the skip rule and the
//!   verdict (the exit status), the reports written.
//! * [`report`]: consumers of the results: JUnit XML, JSON, terminal,
//!   Prometheus.
//! * [`audit`]: checks a gateway that is already running, from inside its
//!   namespace, against a profile; its result is a scenario result, so the
//!   same reporters serve it.
//!
//! # Invariants
//!
//! * Nothing touches the host's root network namespace: every entry into a
//!   namespace passes [`lab::netns::Netns`]'s guard, which refuses the
//!   namespace of PID 1 and the one leakhound itself runs in. An audit
//!   attaches only to the namespace a user names ([`lab::netns::Netns::attach`]:
//!   never pinned, reaped or removed, never the host's initial one).
//! * Everything a run creates is removed when its [`lab::Lab`] is dropped
//!   (also on error, panic and Ctrl-C); namespaces of killed runs are reaped
//!   by the next run ([`lab::netns::reap_stale`]).
//! * A leak is proven twice: on the wire (capture) and at the far end (the
//!   service logs), each tied to the probe by a nonce.

pub mod audit;
pub mod bench;
pub mod capture;
pub mod lab;
pub mod outdir;
pub mod probe;
pub mod profile;
pub mod prove;
/// The gateway under test, its own crate (`crates/gateway`).
pub use leakhound_gateway as gateway;
/// The pure core, its own crate (`crates/model`).
pub use leakhound_model as model;
/// The plumbing shared with the gateway (`crates/net`).
pub use leakhound_net::{errfmt, httpc, netlink, poll, rawsock, tunnel};
pub mod report;
pub mod scenario;
pub mod spray;
pub mod suite;
pub mod target;
