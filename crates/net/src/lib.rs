//! leakhound's plumbing, shared by the gateway under test and the harness
//! (neither owns it): entering and pinning network namespaces ([`netns`]),
//! links, addresses and routes over rtnetlink ([`netlink`]), the boringtun
//! WireGuard driver both tunnel ends run ([`tunnel`]), raw sockets
//! ([`rawsock`]), datagrams in batches ([`udp_batch`]), the HTTP/1.1 client's
//! requests and answers ([`httpc`]), waiting until something is ready
//! ([`poll`]),
//! and how errors are shown to people ([`errfmt`]).

pub mod errfmt;
pub mod httpc;
pub mod netlink;
pub mod netns;
pub mod owned;
pub use leakhound_poll as poll;
pub mod rawsock;
pub mod tunnel;
pub mod udp_batch;
