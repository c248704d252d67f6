//! Applies a [`Ruleset`] to the kernel as one atomic nf_tables batch over
//! a netlink socket, in-process ([`crate::nfnl`] encodes it), then dumps
//! both of its tables back and checks that every base chain has its hook
//! and policy and that every rule is there, in order, expression by
//! expression. Owns the netfilter socket (also what
//! [`crate::cut`] talks through) and its errors ([`FirewallError`]).
//!
//! Why our own encoding: the pure-Rust nftables netlink crate (rustables)
//! is GPL-3.0 and libnftnl is GPL-2.0+ (and has no static build in Debian
//! for a static image); the kill switch needs a dozen message and
//! expression types, written against the kernel's uapi numbers and checked
//! by reading the result back. Spawning `nft` (the earlier way) cost about
//! 20 ms per apply, nearly all of it `nft` parsing JSON, and put the `nft`
//! binary in the image.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};

use crate::nfnl::{self, Ruleset, Tables};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("opening a netfilter netlink socket")]
    Socket(#[source] std::io::Error),
    #[error("sending the kill switch to the kernel")]
    Send(#[source] std::io::Error),
    #[error("the kernel refused {what}")]
    Refused {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel did not acknowledge {0}")]
    Unacknowledged(String),
    #[error("reading the kill switch back")]
    Read(#[source] std::io::Error),
    #[error("reading the kill switch back: {0}")]
    Decode(#[from] nfnl::DecodeError),
    #[error("the kill switch read back from the kernel is not the one applied: {0}")]
    Mismatch(#[from] Box<Mismatch>),
}

impl From<Mismatch> for FirewallError {
    fn from(m: Mismatch) -> FirewallError {
        FirewallError::Mismatch(Box::new(m))
    }
}

/// How what the kernel holds differs from what was applied: the first
/// difference found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("table {table} has none of its chains")]
    NoChains { table: String },
    /// The base chains differ (counting repeats).
    #[error("chains missing {missing:?}, unexpected chains {extra:?}")]
    Chains {
        missing: Vec<ChainKey>,
        extra: Vec<ChainKey>,
    },
    /// A chain holds another number of rules (their comments named).
    #[error(
        "chain {table} {chain}: {} rules applied, {} read back (applied: {}; read back: {})",
        applied.len(),
        read_back.len(),
        applied.join(", "),
        read_back.join(", ")
    )]
    RuleCount {
        table: &'static str,
        chain: String,
        applied: Vec<String>,
        read_back: Vec<String>,
    },
    /// A rule (1-based `index` in its chain) reads back otherwise.
    #[error(
        "chain {table} {chain} rule {index}: applied {applied:?} ({applied_exprs} expressions), read back {read_back:?} ({} expressions: {})",
        read_back_exprs.len(),
        read_back_exprs.join(" ")
    )]
    Rule {
        table: &'static str,
        chain: String,
        index: usize,
        applied: String,
        applied_exprs: usize,
        read_back: String,
        read_back_exprs: Vec<String>,
    },
    /// The audit's cut is not in its set right after it was armed.
    #[error("the cut of {endpoint} is not in set {table} {set} after arming it")]
    CutMissing {
        endpoint: std::net::SocketAddr,
        table: &'static str,
        set: &'static str,
    },
}

/// How long applying took: until the batch was committed (the kill switch
/// is closed from then on), and the read-back after it. When the kernel
/// already held exactly this ruleset (a gateway restarted after a crash
/// leaves its kill switch closed), nothing is rewritten: `closed` is then
/// the read-back that proved it, `verified` zero.
#[derive(Debug, Clone, Copy)]
pub struct ApplyTimes {
    pub closed: Duration,
    pub verified: Duration,
    pub rewritten: bool,
}

/// A netfilter netlink socket.
pub(crate) struct Nl {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Nl {
    pub(crate) fn open() -> Result<Nl, FirewallError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| FirewallError::Socket(e.into()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| FirewallError::Socket(e.into()))?;
        // Room for an acknowledgement per message; a dump's replies.
        let _ = setsockopt(&fd, sockopt::RcvBufForce, &(4 << 20));
        // A kernel that never answers is an error, not a hang.
        let tv = nix::sys::time::TimeVal::new(2, 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &tv)
            .map_err(|e| FirewallError::Socket(e.into()))?;
        Ok(Nl {
            fd,
            // Distinct from other processes' batches in error reports.
            seq: std::process::id().wrapping_mul(1000),
            buf: vec![0u8; 256 * 1024],
        })
    }

    fn send(&self, bytes: &[u8]) -> Result<(), FirewallError> {
        let n = send(self.fd.as_raw_fd(), bytes, MsgFlags::empty())
            .map_err(|e| FirewallError::Send(e.into()))?;
        if n != bytes.len() {
            return Err(FirewallError::Send(std::io::Error::other(format!(
                "sent {n} of {} bytes",
                bytes.len()
            ))));
        }
        Ok(())
    }

    /// The sequence number the next batch starts at.
    pub(crate) fn seq_next(&self) -> u32 {
        self.seq
    }

    /// Sends a batch and waits for every acknowledgement; the first error
    /// names the message the kernel refused (and the whole batch is void).
    pub(crate) fn transact(
        &mut self,
        (bytes, acked): (Vec<u8>, Vec<(u32, String)>),
    ) -> Result<(), FirewallError> {
        self.seq = self.seq.wrapping_add(acked.len() as u32 + 2);
        self.send(&bytes)?;
        let mut waiting: std::collections::HashMap<u32, String> = acked.into_iter().collect();
        let mut refused: Option<FirewallError> = None;
        while !waiting.is_empty() {
            // The kernel handles a batch while it is sent, so after an error
            // everything it will say is queued already.
            let flags = if refused.is_some() {
                MsgFlags::MSG_DONTWAIT
            } else {
                MsgFlags::empty()
            };
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, flags) {
                Ok(n) => n,
                Err(_) if refused.is_some() => break,
                Err(nix::errno::Errno::EAGAIN) => {
                    let first = waiting.values().next().cloned().unwrap_or_default();
                    return Err(FirewallError::Unacknowledged(first));
                }
                Err(e) => return Err(FirewallError::Read(e.into())),
            };
            for r in nfnl::replies(&self.buf[..n])? {
                if let Some((errno, seq)) = nfnl::error_of(&r) {
                    let what = waiting.remove(&seq);
                    if errno != 0 && refused.is_none() {
                        refused = Some(FirewallError::Refused {
                            what: what.unwrap_or_else(|| format!("message {seq}")),
                            source: std::io::Error::from_raw_os_error(errno),
                        });
                    }
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends the dump request `request` makes for a sequence number and
    /// hands every reply to `each`, decoded in place, until the kernel says
    /// the dump is done. Takes the next sequence number itself.
    pub(crate) fn dump_with(
        &mut self,
        request: impl FnOnce(u32) -> Vec<u8>,
        mut each: impl FnMut(&nfnl::Reply<'_>),
    ) -> Result<(), FirewallError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.send(&request(seq))?;
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())
                .map_err(|e| FirewallError::Read(e.into()))?;
            for r in nfnl::replies(&self.buf[..n])? {
                if let Some((errno, _)) = nfnl::error_of(&r)
                    && errno != 0
                {
                    return Err(FirewallError::Read(std::io::Error::from_raw_os_error(
                        errno,
                    )));
                }
                if r.ty == nfnl::NLMSG_DONE {
                    return Ok(());
                }
                each(&r);
                if nfnl::is_done(&r) {
                    return Ok(());
                }
            }
        }
    }

    fn dump(
        &mut self,
        family: u8,
        rules_of: Option<&str>,
        each: impl FnMut(&nfnl::Reply<'_>),
    ) -> Result<(), FirewallError> {
        self.dump_with(|seq| nfnl::dump_request(seq, family, rules_of), each)
    }
}

/// The process's netfilter socket, opened once and kept: closing one makes
/// the kernel wait for the old ruleset to be freed (an RCU grace period,
/// about 9 ms measured here), which would sit between the gateway's start
/// and a verified kill switch.
/// A socket belongs to the network namespace it was opened in, so it is
/// kept with that namespace's identity (the inode of the calling thread's
/// namespace) and a caller in another namespace gets a new one.
static SOCKET: std::sync::Mutex<Option<(u64, Nl)>> = std::sync::Mutex::new(None);

fn current_netns() -> Result<u64, FirewallError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .map_err(FirewallError::Socket)
}

/// Runs `f` with the shared socket of the caller's namespace (opened on
/// first use; dropped after an error, so the next call starts clean).
fn with_socket<T>(f: impl FnOnce(&mut Nl) -> Result<T, FirewallError>) -> Result<T, FirewallError> {
    let ns = current_netns()?;
    let mut guard = SOCKET.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_none_or(|(n, _)| *n != ns) {
        *guard = Some((ns, Nl::open()?));
    }
    let (_, nl) = guard.as_mut().expect("opened above");
    let r = f(nl);
    if r.is_err() {
        *guard = None;
    }
    r
}

/// Applies `rs` and verifies it; nothing is written when the kernel holds
/// it already.
pub fn apply(rs: &Ruleset) -> Result<ApplyTimes, FirewallError> {
    with_socket(|nl| apply_with(nl, rs))
}

fn apply_with(nl: &mut Nl, rs: &Ruleset) -> Result<ApplyTimes, FirewallError> {
    let t = Instant::now();
    // Already in the kernel, expression by expression: rewriting it would
    // only unhook and re-hook the same chains (an RCU grace period each).
    // Any difference, absence or read error: written as always.
    if verify_with(nl, rs).is_ok() {
        return Ok(ApplyTimes {
            closed: t.elapsed(),
            verified: Duration::ZERO,
            rewritten: false,
        });
    }
    let t = Instant::now();
    let seq = nl.seq;
    nl.transact(rs.batch(seq))?;
    let closed = t.elapsed();
    verify_with(nl, rs)?;
    Ok(ApplyTimes {
        closed,
        verified: t.elapsed() - closed,
        rewritten: true,
    })
}

/// Writes `rs` whatever the kernel holds, and verifies it (the lockdown of
/// a gateway that cannot start).
pub fn install(rs: &Ruleset) -> Result<(), FirewallError> {
    with_socket(|nl| {
        let seq = nl.seq;
        nl.transact(rs.batch(seq))?;
        verify_with(nl, rs)
    })
}

/// Removes both `tables` (no error if they are absent).
pub fn remove(tables: Tables) -> Result<(), FirewallError> {
    with_socket(|nl| {
        let seq = nl.seq;
        nl.transact(nfnl::removal_batch(tables, seq))
    })
}

/// Reads the tables back and checks them against `want`.
pub fn verify(want: &Ruleset) -> Result<(), FirewallError> {
    with_socket(|nl| verify_with(nl, want))
}

fn verify_with(nl: &mut Nl, want: &Ruleset) -> Result<(), FirewallError> {
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    for (family, table) in want.tables.both() {
        let before = chains.len();
        nl.dump(family, None, |r| {
            if let Some(c) = nfnl::decode_chain(r)
                && c.table == table
            {
                chains.push(c);
            }
        })?;
        // A table with none of its chains (a fresh namespace, the common
        // start) is a mismatch already: no need to dump the rest.
        let wanted = want
            .chains
            .iter()
            .any(|c| c.family == family && c.table == table);
        if wanted && chains.len() == before {
            return Err(Mismatch::NoChains {
                table: table.to_string(),
            }
            .into());
        }
        nl.dump(family, Some(table), |r| {
            if let Some(d) = nfnl::decode_rule(r)
                && d.table == table
            {
                rules.push(d);
            }
        })?;
    }
    Ok(compare(want, &chains, &rules)?)
}

/// (family, table, name, hook, policy) of a base chain.
pub type ChainKey = (u8, String, String, Option<u32>, Option<u32>);

/// What differs between the ruleset applied and what the kernel dumped;
/// `Err` names the first difference.
pub fn compare(
    want: &Ruleset,
    chains: &[nfnl::DumpedChain],
    rules: &[nfnl::DumpedRule],
) -> Result<(), Box<Mismatch>> {
    let mut got: Vec<ChainKey> = chains
        .iter()
        .map(|c| (c.family, c.table.clone(), c.name.clone(), c.hook, c.policy))
        .collect();
    let mut expected: Vec<ChainKey> = want
        .chains
        .iter()
        .map(|c| {
            (
                c.family,
                c.table.to_string(),
                c.name.clone(),
                Some(c.hook),
                Some(c.policy),
            )
        })
        .collect();
    got.sort();
    expected.sort();
    if got != expected {
        let (missing, extra) = multiset_diff(&expected, &got);
        return Err(Box::new(Mismatch::Chains { missing, extra }));
    }
    for c in &want.chains {
        let sent: Vec<_> = want
            .rules
            .iter()
            .filter(|(f, t, r)| *f == c.family && *t == c.table && r.chain == c.name)
            .map(|(_, _, r)| r)
            .collect();
        let dumped: Vec<_> = rules
            .iter()
            .filter(|d| d.family == c.family && d.table == c.table && d.chain == c.name)
            .collect();
        if sent.len() != dumped.len() {
            return Err(Box::new(Mismatch::RuleCount {
                table: c.table,
                chain: c.name.clone(),
                applied: sent.iter().map(|r| r.comment.clone()).collect(),
                read_back: dumped
                    .iter()
                    .map(|d| d.comment.clone().unwrap_or_default())
                    .collect(),
            }));
        }
        for (i, (s, d)) in sent.iter().zip(&dumped).enumerate() {
            let want_exprs = nfnl::expected_raw(s);
            let same = d.comment.as_deref() == Some(s.comment.as_str())
                && want_exprs.len() == d.exprs.len()
                && want_exprs
                    .iter()
                    .zip(&d.exprs)
                    .all(|(w, g)| nfnl::same_expr(w, g));
            if !same {
                return Err(Box::new(Mismatch::Rule {
                    table: c.table,
                    chain: c.name.clone(),
                    index: i + 1,
                    applied: s.comment.clone(),
                    applied_exprs: want_exprs.len(),
                    read_back: d.comment.clone().unwrap_or_default(),
                    read_back_exprs: d.exprs.iter().map(|e| e.0.clone()).collect(),
                }));
            }
        }
    }
    Ok(())
}

/// (in `a` but not `b`, in `b` but not `a`), counting repeats; both sorted.
fn multiset_diff<T: Ord + Clone>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::{Mismatch, compare, multiset_diff};
    use crate::nfnl::{self, DumpedChain, DumpedRule, Ruleset, Tables};

    /// What the kernel would dump back for `want`, exactly.
    fn dumped(want: &Ruleset) -> (Vec<DumpedChain>, Vec<DumpedRule>) {
        let chains = want
            .chains
            .iter()
            .map(|c| DumpedChain {
                family: c.family,
                table: c.table.into(),
                name: c.name.clone(),
                hook: Some(c.hook),
                policy: Some(c.policy),
            })
            .collect();
        let rules = want
            .rules
            .iter()
            .map(|(f, t, r)| DumpedRule {
                family: *f,
                table: t.to_string(),
                chain: r.chain.into(),
                comment: Some(r.comment.clone()),
                exprs: nfnl::expected_raw(r),
            })
            .collect();
        (chains, rules)
    }

    #[test]
    fn the_first_difference_read_back_is_named() {
        let tables = Tables {
            inet: "t_inet",
            netdev: "t_dev",
        };
        let want = Ruleset::lockdown(tables, &[]);
        let (chains, rules) = dumped(&want);
        assert_eq!(compare(&want, &chains, &rules), Ok(()));
        // No chains at all: every chain is missing.
        let e = compare(&want, &[], &[]).unwrap_err();
        assert!(
            matches!(&*e, Mismatch::Chains { missing, extra } if missing.len() == 3 && extra.is_empty()),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("chains missing [("), "{e}");
        // The chains, none of their rules.
        let e = compare(&want, &chains, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chain t_inet input: 1 rules applied, 0 read back (applied: loopback in; read back: )"
        );
        // A rule that reads back otherwise.
        let mut edited = rules.clone();
        edited[0].comment = Some("edited".into());
        edited[0].exprs.truncate(1);
        let e = compare(&want, &chains, &edited).unwrap_err();
        assert!(
            matches!(&*e, Mismatch::Rule { index: 1, read_back, .. } if read_back == "edited"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("chain t_inet input rule 1: applied \"loopback in\" ("),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("read back \"edited\" (1 expressions: "),
            "{e}"
        );
    }

    #[test]
    fn multiset_diff_counts_repeats() {
        let (a, b) = multiset_diff(&[1, 2, 2, 3], &[2, 3, 3, 4]);
        assert_eq!(a, vec![1, 2]);
        assert_eq!(b, vec![3, 4]);
        assert_eq!(multiset_diff(&[1, 2], &[1, 2]), (vec![], vec![]));
    }
}
