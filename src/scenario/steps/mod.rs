//! What each step of a scenario does, by family: the gateway's
//! [`lifecycle`], the [`probe`]s (each with its nonce and its far-end check
//! in the lab services' log), the [`wait`]s, the [`fault`]s done to the lab
//! or the gateway, the gateway's [`control`] API (and key rotation through
//! it), the [`forwarded_port`], the [`attack`]s (raw frames, a forged
//! SYN-ACK, malformed DNS), the leak [`fuzz`]er's spray, the background traffic ([`storm`]), the long-lived [`flows`], and the
//! real applications' steps ([`torrent`], [`usenet`], [`browser`]). A step
//! ends in a [`report::StepReport`] (its outcome and its log); only a
//! harness problem (the lab cannot do what is asked) is an error
//! ([`report::StepError`]). Which family runs an action is [`dispatch`]'s.

pub mod apps;
pub mod attack;
pub mod browser;
pub mod control;
pub mod dispatch;
pub mod fault;
pub mod flows;
pub mod forwarded_port;
pub mod fuzz;
pub mod lifecycle;
pub mod probe;
pub mod prove;
pub mod report;
pub mod storm;
pub mod torrent;
pub mod usenet;
pub mod wait;
