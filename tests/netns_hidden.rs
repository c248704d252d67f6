//! A pin hidden under another tool's mount: a namespace pinned before
//! /run/netns was a mount point, then `ip netns add` (its first run binds
//! /run/netns onto itself) covers it. `reap` still removes it, with the
//! process inside, and leaves no mount behind. Its own test binary: it
//! unmounts /run/netns's cover to recreate the old order, which no other lab
//! may be using at that moment (cargo runs test binaries one at a time).
//! Needs root.

mod common;

use std::process::Command;

use leakhound::lab::netns::{self, NETNS_DIR};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

fn mountinfo_mentions(what: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(what)
}

/// Puts iproute2's convention back (/run/netns a shared mount of itself)
/// however the test ends, panics included: it changes machine-wide state.
struct RestoreNetnsDir;

impl Drop for RestoreNetnsDir {
    fn drop(&mut self) {
        if let Err(e) = netns::share_netns_dir() {
            eprintln!("could not restore {NETNS_DIR}: {e}");
        }
    }
}

#[test]
fn a_pin_hidden_by_a_later_ip_netns_add_is_still_reaped() {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    std::fs::create_dir_all(NETNS_DIR).unwrap();
    let _restore = RestoreNetnsDir;
    // A run of leakhound, killed later: its claim and its records first.
    let (lock, id, name) = common::run_recording("gw");
    // The old order: /run/netns a plain directory...
    while umount2(NETNS_DIR, MntFlags::MNT_DETACH).is_ok() {}
    let path = std::path::Path::new(NETNS_DIR).join(&name);
    std::fs::File::create(&path).unwrap();
    // ... a namespace pinned in it, with a process inside (a killed run's
    // gateway) ...
    let target = path.clone();
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    })
    .join()
    .unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("300");
    let ns = netns::Netns::open(&name).unwrap();
    ns.command(&mut cmd).unwrap();
    let mut sleeper = cmd.spawn().unwrap();
    drop(ns);
    // The run is killed.
    lock.abandon();
    // ... then another tool's first `ip netns add` covers the directory.
    let other = format!("other-{id}");
    assert!(
        Command::new("ip")
            .args(["netns", "add", &other])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(NETNS_DIR)),
        "ip netns add did not cover {NETNS_DIR}"
    );

    // A plain unmount and unlink no longer work here; reap must.
    let reaped = netns::reap_stale();
    assert!(reaped.contains(&name), "reaped {reaped:?}");
    assert!(!path.exists(), "{} is still there", path.display());
    assert!(
        !mountinfo_mentions(&format!("/run/netns/{name} ")),
        "a mount of the pin is left"
    );
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the process inside was not killed");
    assert!(
        Command::new("ip")
            .args(["netns", "del", &other])
            .status()
            .unwrap()
            .success()
    );
    // Our own order from now on: the convention is back in place.
    netns::share_netns_dir().unwrap();
}
