//! Applies a [`FirewallPolicy`] to the kernel as one atomic batch (nft's JSON
//! interface through the `nftables` crate), then reads both tables back and
//! checks that every chain drops by default and every rule is there.
//!
//! Why the JSON interface and not netlink directly: the pure-Rust netlink
//! crate (rustables) is GPL-3.0, which would bind the whole project, and
//! nftnl wraps the C libnftnl; nft's JSON is a stable, documented interface
//! that the `nftables` crate types (MIT/Apache), and `nft -f` applies a batch
//! atomically. The cost is the `nft` binary at run time.

use std::time::{Duration, Instant};

use nftables::helper::{self, NftablesError};
use nftables::schema::{NfListObject, NfObject};
use nftables::types::NfChainPolicy;

use super::policy::{EGRESS_TABLE, FirewallPolicy, TABLE};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("applying the kill switch with nft")]
    Apply(#[source] NftablesError),
    #[error("reading the kill switch back")]
    Read(#[source] NftablesError),
    #[error("the kill switch read back from the kernel is not the one applied: {0}")]
    Mismatch(String),
}

/// How long applying took: until the batch was committed (the kill switch
/// is closed from then on), and the read-back after it.
#[derive(Debug, Clone, Copy)]
pub struct ApplyTimes {
    pub closed: Duration,
    pub verified: Duration,
}

/// Applies `policy` and verifies it.
pub fn apply(policy: &FirewallPolicy) -> Result<ApplyTimes, FirewallError> {
    let t = Instant::now();
    helper::apply_ruleset(&policy.compile()).map_err(FirewallError::Apply)?;
    let closed = t.elapsed();
    verify(policy)?;
    Ok(ApplyTimes {
        closed,
        verified: t.elapsed() - closed,
    })
}

/// Closes everything but loopback (a gateway that cannot start). The
/// devices are this namespace's interfaces.
pub fn lockdown(devices: &[String]) -> Result<(), FirewallError> {
    helper::apply_ruleset(&FirewallPolicy::lockdown(devices)).map_err(FirewallError::Apply)
}

/// Removes both of leakhound's tables (no error if they are absent).
pub fn remove() -> Result<(), FirewallError> {
    helper::apply_ruleset(&FirewallPolicy::removal()).map_err(FirewallError::Apply)
}

fn list(family: &str, table: &str) -> Result<Vec<NfObject<'static>>, FirewallError> {
    let r = helper::get_current_ruleset_with_args(None::<&str>, ["list", "table", family, table])
        .map_err(FirewallError::Read)?;
    Ok(r.objects.into_owned())
}

/// Reads the tables back: the base chains are exactly the policy's, with
/// its chain policies, and the rules are exactly the policy's (by their
/// comments).
pub fn verify(policy: &FirewallPolicy) -> Result<(), FirewallError> {
    let mut objs = list("inet", TABLE)?;
    objs.extend(list("netdev", EGRESS_TABLE)?);
    let mut chains = Vec::new();
    let mut comments = Vec::new();
    for o in &objs {
        match o {
            NfObject::ListObject(NfListObject::Chain(c)) => {
                chains.push((c.name.to_string(), c.policy));
            }
            NfObject::ListObject(NfListObject::Rule(r)) => {
                if let Some(c) = &r.comment {
                    comments.push((r.chain.to_string(), c.to_string()));
                }
            }
            _ => {}
        }
    }
    chains.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Option<NfChainPolicy>)> = policy
        .chains()
        .into_iter()
        .map(|(n, p)| (n.to_string(), Some(p)))
        .collect();
    if chains != want {
        return Err(FirewallError::Mismatch(format!(
            "chains {chains:?}, expected {want:?}"
        )));
    }
    let mut expected = policy.comments();
    expected.sort();
    comments.retain(|(_, c)| !c.starts_with("debug:"));
    comments.sort();
    if comments != expected {
        let (missing, extra) = multiset_diff(&expected, &comments);
        return Err(FirewallError::Mismatch(format!(
            "missing rules {missing:?}, unexpected rules {extra:?}"
        )));
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
    use super::multiset_diff;

    #[test]
    fn multiset_diff_counts_repeats() {
        let (a, b) = multiset_diff(&[1, 2, 2, 3], &[2, 3, 3, 4]);
        assert_eq!(a, vec![1, 2]);
        assert_eq!(b, vec![3, 4]);
        assert_eq!(multiset_diff(&[1, 2], &[1, 2]), (vec![], vec![]));
    }
}
