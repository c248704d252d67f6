//! The audit's self-expiring cut of a live gateway's tunnel, applied to the
//! kernel of the calling thread's network namespace over netlink
//! ([`crate::nfnl::Cut`] encodes it): armed, renewed, read back and lifted.
//! The cut lasts only while it is renewed: the kernel removes its set
//! element `timeout` after the last renewal, so a killed audit leaves
//! nothing cut for longer than that. Each call opens its own socket (the
//! audit calls from threads in the gateway's namespace).

use std::time::Duration;

use crate::apply::{FirewallError, Mismatch, Nl};
use crate::nfnl::{self, CUT_SET, CUT_TABLE, Cut};

/// Cuts the tunnel to `cut.endpoint` (replacing any cut table found) and
/// reads the element back: returns how long until the kernel lifts it.
pub fn arm(cut: &Cut) -> Result<Duration, FirewallError> {
    let mut nl = Nl::open()?;
    let seq = nl.seq_next();
    nl.transact(cut.arm_batch(seq))?;
    expiry_with(&mut nl, cut)?.ok_or_else(|| {
        Mismatch::CutMissing {
            endpoint: cut.endpoint,
            table: CUT_TABLE,
            set: CUT_SET,
        }
        .into()
    })
}

/// Gives the element its full timeout again. An error when the element
/// has expired or the table is gone: a renewal never cuts again.
pub fn renew(cut: &Cut) -> Result<(), FirewallError> {
    let mut nl = Nl::open()?;
    let seq = nl.seq_next();
    nl.transact(cut.renew_batch(seq))
}

/// How long until the kernel lifts the cut of `cut.endpoint`; `None` when
/// it is not cut (no table, or no such element: expired or removed).
pub fn expiry(cut: &Cut) -> Result<Option<Duration>, FirewallError> {
    let mut nl = Nl::open()?;
    expiry_with(&mut nl, cut)
}

fn expiry_with(nl: &mut Nl, cut: &Cut) -> Result<Option<Duration>, FirewallError> {
    let key = match cut.endpoint.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut found = None;
    let r = nl.dump_with(nfnl::cut_dump_request, |r| {
        if let Some((_, _, elems)) = nfnl::decode_set_elems(r) {
            for e in elems {
                if e.key == key {
                    found = Some(e.expires_in.unwrap_or(cut.timeout));
                }
            }
        }
    });
    match r {
        Ok(()) => Ok(found),
        // No table or no set: nothing is cut.
        Err(FirewallError::Read(e)) if e.raw_os_error() == Some(nix::libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a cut table is there (for instance one left by a killed audit).
pub fn present() -> Result<bool, FirewallError> {
    let mut nl = Nl::open()?;
    let mut found = false;
    nl.dump_with(
        |seq| nfnl::dump_request(seq, nfnl::NFPROTO_INET, None),
        |r| {
            if let Some(c) = nfnl::decode_chain(r)
                && c.table == CUT_TABLE
            {
                found = true;
            }
        },
    )?;
    Ok(found)
}

/// Removes the cut table, whatever it holds: traffic flows again from the
/// commit on. Returns whether it was there; when it was not, nothing is
/// sent (a read-only audit looking for a stale cut changes nothing).
pub fn lift() -> Result<bool, FirewallError> {
    if !present()? {
        return Ok(false);
    }
    let mut nl = Nl::open()?;
    let seq = nl.seq_next();
    nl.transact(nfnl::cut_removal_batch(seq))?;
    Ok(true)
}
