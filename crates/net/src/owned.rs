//! What leakhound owns on this machine, and the proof of it.
//!
//! A thing is leakhound's only if a run of this machine's leakhound recorded
//! making it: a name that looks like ours is a hint, never proof. Each run
//! has a strict id (six lowercase hex digits, [`is_run_id`]) and a folder
//! `/run/leakhound/<id>/` (0700) holding its records (`owned`, one line per
//! thing, written *before* the thing is made, and again with its namespace
//! inode once it is). The reaper ([`crate::netns::reap_stale`]) reads these
//! records for runs that are dead (no process holds their lock) and removes
//! only what they list, and only if it is still the same thing (the same
//! namespace inode).
//!
//! Containers carry the [`Identity`] of the leakhound that made them
//! (machine id and the inode of its PID namespace, which differs between
//! two CI jobs in containers sharing one Docker engine) and the boot id: a
//! container of another identity is never touched, and a changed boot id
//! marks its run dead (its records were in /run, which a reboot empties).
//!
//! Everything here that decides is pure and unit-tested: the id and name
//! formats, the record format, and which inodes may never be acted on.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where leakhound keeps its runs' locks, records and files.
pub const RUN_DIR: &str = "/run/leakhound";
/// Every namespace leakhound makes is named `lh-<run id>-<host>`.
pub const PREFIX: &str = "lh-";
/// A run's records, inside its folder.
const RECORDS: &str = "owned";
/// The longest host part of a namespace name (a Linux interface-name-sized
/// word is plenty; `ip netns` allows longer, we never make them).
const MAX_HOST: usize = 40;

/// The kernel's initial network namespace has this fixed inode number
/// (PROC_NET_INIT_INO, Linux 6.x).
pub const INIT_NET_INO: u64 = 0xEFFF_FFF9;

/// True for the one format a run id has: six lowercase hex digits.
pub fn is_run_id(s: &str) -> bool {
    s.len() == 6
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True for a host part of a namespace name: a lowercase word of letters,
/// digits and inner dashes (`gw`, `lan-admin`).
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HOST
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `(run id, host)` of a namespace name of leakhound's format
/// `lh-<run id>-<host>`, or `None` for any other name (`lh-myvpn-home`,
/// `lh-..-x`, `lh-.-x`, `lh-ZZZZZZ-x`).
pub fn ns_name_parts(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (id, host) = rest.split_once('-')?;
    (is_run_id(id) && is_host_name(host)).then_some((id, host))
}

/// The run id of a namespace name of leakhound's format.
pub fn run_id_of(name: &str) -> Option<&str> {
    ns_name_parts(name).map(|(id, _)| id)
}

/// The run id of an entry of [`RUN_DIR`]: a run's folder (`<id>`), its lock
/// (`<id>.lock`) or a detached lab's state file (`<id>.json`).
pub fn run_id_of_entry(entry: &str) -> Option<&str> {
    let id = entry
        .strip_suffix(".lock")
        .or_else(|| entry.strip_suffix(".json"))
        .unwrap_or(entry);
    is_run_id(id).then_some(id)
}

/// A run's folder: `/run/leakhound/<id>`. The id is checked against its
/// format first, so no path built here ever leaves that folder.
///
/// # Panics
/// On an id that is not a run id: every id in leakhound comes from
/// [`is_run_id`]-checked input, so this is a bug, and a crash is safer than
/// a path like `/run/leakhound/..`.
pub fn run_dir(id: &str) -> PathBuf {
    assert!(is_run_id(id), "not a run id: {id:?}");
    Path::new(RUN_DIR).join(id)
}

/// The one folder of run `id` a gateway under test may write to
/// (`{lab_dir}` in gateway variables: status, key, public IP and
/// port-command files): a container target gets it read-write and the rest
/// of the run's folder read-only, so nothing leakhound writes or reads
/// elsewhere in the run's folder can be swapped for a link by a gateway.
pub fn gateway_dir(id: &str) -> PathBuf {
    run_dir(id).join("gateway")
}

/// Is `path` a file directly inside run `id`'s gateway folder (absolute,
/// no `.` or `..` parts, no sub-folder a gateway could swap for a link)?
/// The harness writes, reads and removes files that scenario variables name
/// (a key file, a status file) only when this holds.
pub fn inside_run_dir(id: &str, path: &Path) -> bool {
    use std::path::Component;
    is_run_id(id)
        && path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && path.parent() == Some(gateway_dir(id).as_path())
}

/// Reads a small file of a run's folder that a gateway under test writes
/// (a status file): never through a link, at most 64 KiB.
pub fn read_run_file(path: &Path) -> io::Result<String> {
    let f = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    f.take(64 * 1024).read_to_string(&mut text)?;
    Ok(text)
}

/// What a run recorded making.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A pinned network namespace; `ino` once it exists (absent: the run
    /// died between recording and pinning, or while pinning).
    Netns { name: String, ino: Option<u64> },
    /// A container, by its name (`lh-<run id>-<word>`, unique on a Docker
    /// engine), recorded before it is created.
    Container { name: String },
}

impl Record {
    /// The record's line in the `owned` file.
    fn line(&self) -> String {
        match self {
            Record::Netns { name, ino: None } => format!("netns {name}\n"),
            Record::Netns {
                name,
                ino: Some(ino),
            } => format!("netns {name} {ino}\n"),
            Record::Container { name } => format!("container {name}\n"),
        }
    }
}

/// The run id of a container name of leakhound's format `lh-<run id>-<word>`
/// (the word in Docker's name alphabet: letters, digits, `_`, `.`, `-`).
pub fn run_id_of_container(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let (id, word) = rest.split_once('-')?;
    let ok = is_run_id(id)
        && !word.is_empty()
        && word.len() <= 128
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    ok.then_some(id)
}

/// Reads the records of run `id` from the text of its `owned` file. Lines
/// that do not parse, and namespaces not named for run `id`, are dropped (a
/// record can only claim its own run's names). A namespace recorded twice
/// (before and after pinning) becomes one record with the inode.
pub fn parse_records(id: &str, text: &str) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for line in text.lines() {
        let mut w = line.split(' ');
        let rec = match (w.next(), w.next(), w.next(), w.next()) {
            (Some("netns"), Some(name), ino, None) if run_id_of(name) == Some(id) => {
                let ino = match ino {
                    None => None,
                    Some(i) => match i.parse::<u64>() {
                        Ok(i) => Some(i),
                        Err(_) => continue,
                    },
                };
                Record::Netns {
                    name: name.to_string(),
                    ino,
                }
            }
            (Some("container"), Some(c), None, None) if run_id_of_container(c) == Some(id) => {
                Record::Container {
                    name: c.to_string(),
                }
            }
            _ => continue,
        };
        match (&rec, out.iter_mut().find(|r| same_thing(r, &rec))) {
            (Record::Netns { ino: Some(i), .. }, Some(Record::Netns { ino, .. })) => {
                *ino = Some(*i)
            }
            (_, Some(_)) => {}
            (_, None) => out.push(rec),
        }
    }
    out
}

fn same_thing(a: &Record, b: &Record) -> bool {
    match (a, b) {
        (Record::Netns { name: x, .. }, Record::Netns { name: y, .. }) => x == y,
        (Record::Container { name: x }, Record::Container { name: y }) => x == y,
        _ => false,
    }
}

/// Appends `rec` to run `id`'s records (the run's folder must exist: it is
/// made when the run claims its id). Opened without following links, and
/// synced, so the record is on file before the thing is made.
pub fn record(id: &str, rec: &Record) -> io::Result<()> {
    let named_for_run = match rec {
        Record::Netns { name, .. } => run_id_of(name) == Some(id),
        Record::Container { name } => run_id_of_container(name) == Some(id),
    };
    if !named_for_run {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rec:?} is not named for run {id}"),
        ));
    }
    let mut f = File::options()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(run_dir(id).join(RECORDS))?;
    f.write_all(rec.line().as_bytes())?;
    f.sync_data()
}

/// The records of run `id` (none when it has no folder or no file).
pub fn records(id: &str) -> Vec<Record> {
    let mut text = String::new();
    let opened = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(run_dir(id).join(RECORDS));
    match opened {
        Ok(mut f) if f.metadata().is_ok_and(|m| m.is_file()) => {
            if f.read_to_string(&mut text).is_err() {
                return Vec::new();
            }
        }
        _ => return Vec::new(),
    }
    parse_records(id, &text)
}

/// Makes run `id`'s folder, 0700, as a new directory (never through a link).
/// An existing folder is an error: the caller removes a dead run's first.
pub fn make_run_dir(id: &str) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(run_dir(id))
}

/// Makes [`RUN_DIR`] if missing (0755: it only holds 0700 folders and lock
/// files), refusing it if it is a link.
pub fn make_base_dir() -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(RUN_DIR) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = fs::symlink_metadata(RUN_DIR)?;
            if m.is_dir() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{RUN_DIR} exists and is not a directory"
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// The namespaces leakhound must never act on (kill in, unmount, remove):
/// the kernel's initial one, PID 1's and the one this process runs in.
pub fn forbidden_ns_inodes() -> Vec<u64> {
    let mut v = vec![INIT_NET_INO];
    v.extend(
        ["/proc/1/ns/net", "/proc/self/ns/net"]
            .iter()
            .filter_map(|p| fs::metadata(p).ok().map(|m| m.ino())),
    );
    v
}

/// May the reaper act on the namespace whose inode is `found`, recorded as
/// `recorded`? Never on a forbidden one; never on one other than recorded.
/// A record without an inode (the run died while pinning) only allows a
/// namespace that is not forbidden.
pub fn may_act_on(found: u64, recorded: Option<u64>, forbidden: &[u64]) -> bool {
    !forbidden.contains(&found) && recorded.is_none_or(|r| r == found)
}

/// Who made a container: this machine and this leakhound's PID namespace
/// (two CI jobs in two containers on one Docker engine differ here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(String);

impl Identity {
    /// This process's identity: `<machine id>/<PID namespace inode>`.
    pub fn current() -> Identity {
        let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "no-machine-id".into());
        let pidns = fs::metadata("/proc/self/ns/pid")
            .map(|m| m.ino())
            .unwrap_or(0);
        Identity::of(&machine, pidns)
    }

    pub fn of(machine: &str, pidns: u64) -> Identity {
        Identity(format!("{machine}/{pidns}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// This boot's id (changes at every boot).
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What a container's labels say about whether the reaper may remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerFate {
    /// Another leakhound's (another machine, another CI job): never touched.
    NotOurs,
    /// Its run is alive: left alone.
    Alive,
    /// Ours, and its run is dead (recorded by that run, or made before this
    /// boot): removed.
    Remove,
    /// Ours by label, its run dead, but not in its run's records: left
    /// alone (a name or label is no proof).
    Unrecorded,
}

/// The pure decision for one container: its labels (owner identity, run id,
/// boot id), ours, whether its run is alive and whether its run recorded it.
pub fn container_fate(
    owner: Option<&str>,
    run: Option<&str>,
    boot: Option<&str>,
    me: &Identity,
    this_boot: &str,
    run_alive: impl Fn(&str) -> bool,
    recorded: impl Fn(&str) -> bool,
) -> ContainerFate {
    let (Some(owner), Some(run)) = (owner, run) else {
        return ContainerFate::NotOurs;
    };
    if owner != me.as_str() || !is_run_id(run) {
        return ContainerFate::NotOurs;
    }
    if boot.is_some_and(|b| b != this_boot) {
        // Made before a reboot by this identity: its run is over, and its
        // records went with the old /run.
        return ContainerFate::Remove;
    }
    if run_alive(run) {
        ContainerFate::Alive
    } else if recorded(run) {
        ContainerFate::Remove
    } else {
        ContainerFate::Unrecorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strict_names_are_ours() {
        assert_eq!(ns_name_parts("lh-ab12cd-gw"), Some(("ab12cd", "gw")));
        assert_eq!(
            ns_name_parts("lh-ab12cd-lan-admin"),
            Some(("ab12cd", "lan-admin"))
        );
        for bad in [
            "lh-myvpn-home",
            "lh-..-x",
            "lh-.-x",
            "lh-ZZZZZZ-x",
            "lh-AB12CD-gw",
            "lh-ab12cd",
            "lh-ab12cd-",
            "lh-ab12cd-gw/../x",
            "lh-ab12cd-Gw",
            "lh-ab12c-gw",
            "lh-ab12cde-gw",
            "other-ab12cd-gw",
            "lh-ab12cd--",
        ] {
            assert_eq!(ns_name_parts(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_dir_entries_name_their_run() {
        assert_eq!(run_id_of_entry("c2b57b"), Some("c2b57b"));
        assert_eq!(run_id_of_entry("c2b57b.lock"), Some("c2b57b"));
        assert_eq!(run_id_of_entry("c2b57b.json"), Some("c2b57b"));
        for bad in [
            "reap.lock",
            "netns-dir.lock",
            "C2B57B",
            "c2b57",
            "..",
            ".",
            "...lock",
            "labs",
        ] {
            assert_eq!(run_id_of_entry(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_dir_never_leaves_its_folder() {
        assert_eq!(run_dir("c2b57b"), Path::new("/run/leakhound/c2b57b"));
        for bad in ["..", ".", "", "a/b", "../../etc", "ZZZZZZ"] {
            assert!(
                std::panic::catch_unwind(|| run_dir(bad)).is_err(),
                "{bad:?} gave a path"
            );
        }
    }

    #[test]
    fn records_round_trip_and_claim_only_their_own_run() {
        let c = "lh-ab12cd-holder";
        let text = format!(
            "netns lh-ab12cd-gw\nnetns lh-ab12cd-gw 4026532999\nnetns lh-ab12cd-isp\n\
             netns lh-ffffff-gw 1\nnetns lh-..-x 2\nnetns lh-ab12cd-vpn x\n\
             container {c}\ncontainer ../x\ncontainer lh-ffffff-holder\ncontainer lh-ab12cd-a/b\n\
             garbage\nnetns lh-ab12cd-home 5 6\n"
        );
        assert_eq!(
            parse_records("ab12cd", &text),
            vec![
                Record::Netns {
                    name: "lh-ab12cd-gw".into(),
                    ino: Some(4026532999)
                },
                Record::Netns {
                    name: "lh-ab12cd-isp".into(),
                    ino: None
                },
                Record::Container { name: c.into() },
            ]
        );
        let r = Record::Netns {
            name: "lh-ab12cd-gw".into(),
            ino: Some(7),
        };
        assert_eq!(parse_records("ab12cd", &r.line()), vec![r]);
    }

    #[test]
    fn harness_files_stay_inside_the_run_folder() {
        let ok = Path::new("/run/leakhound/ab12cd/gateway/forwarded_port");
        assert!(inside_run_dir("ab12cd", ok));
        for bad in [
            "/run/leakhound/ab12cd",
            "/run/leakhound/ab12cd/forwarded_port",
            "/run/leakhound/ab12cd/owned",
            "/run/leakhound/ab12cd/gateway",
            "/run/leakhound/ab12cd/gateway/sub/key",
            "/run/leakhound/ab12cd/gateway/../owned",
            "/run/leakhound/ab12cd/../x",
            "/run/leakhound/ab12ce/x",
            "/etc/shadow",
            "run/leakhound/ab12cd/x",
            "/run/leakhound/ab12cdx/y",
        ] {
            assert!(!inside_run_dir("ab12cd", Path::new(bad)), "{bad}");
        }
        assert!(!inside_run_dir("..", ok));
    }

    #[test]
    fn run_files_are_read_never_through_links() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "42\n").unwrap();
        assert_eq!(read_run_file(&f).unwrap(), "42\n");
        let l = t.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(read_run_file(&l).is_err());
    }

    #[test]
    fn the_hosts_namespaces_are_never_acted_on() {
        let forbidden = [INIT_NET_INO, 4026531840, 4026532001];
        assert!(!may_act_on(INIT_NET_INO, None, &forbidden));
        assert!(!may_act_on(4026531840, None, &forbidden));
        // Even when a (forged or stale) record names it.
        assert!(!may_act_on(4026531840, Some(4026531840), &forbidden));
        // A recorded namespace replaced by another one since.
        assert!(!may_act_on(4026533333, Some(4026532222), &forbidden));
        assert!(may_act_on(4026532222, Some(4026532222), &forbidden));
        assert!(may_act_on(4026532222, None, &forbidden));
    }

    #[test]
    fn the_live_forbidden_list_holds_our_own_namespace() {
        let me = fs::metadata("/proc/self/ns/net").unwrap().ino();
        let f = forbidden_ns_inodes();
        assert!(f.contains(&me) && f.contains(&INIT_NET_INO), "{f:?}");
    }

    #[test]
    fn containers_of_another_identity_are_never_touched() {
        let me = Identity::of("m1", 100);
        let dead = |_: &str| false;
        let alive = |_: &str| true;
        let yes = |_: &str| true;
        let no = |_: &str| false;
        let f = |owner, run, boot, alive: &dyn Fn(&str) -> bool, rec: &dyn Fn(&str) -> bool| {
            container_fate(owner, run, boot, &me, "b1", alive, rec)
        };
        // Another CI job's container on the same engine (same machine id,
        // another PID namespace), and another machine's.
        assert_eq!(
            f(Some("m1/200"), Some("ab12cd"), Some("b1"), &dead, &yes),
            ContainerFate::NotOurs
        );
        assert_eq!(
            f(Some("m2/100"), Some("ab12cd"), Some("b0"), &dead, &yes),
            ContainerFate::NotOurs
        );
        // No owner label (an older leakhound's, or anybody's).
        assert_eq!(
            f(None, Some("ab12cd"), Some("b1"), &dead, &yes),
            ContainerFate::NotOurs
        );
        assert_eq!(
            f(Some("m1/100"), Some(".."), Some("b1"), &dead, &yes),
            ContainerFate::NotOurs
        );
        assert_eq!(
            f(Some("m1/100"), Some("ab12cd"), Some("b1"), &alive, &yes),
            ContainerFate::Alive
        );
        assert_eq!(
            f(Some("m1/100"), Some("ab12cd"), Some("b1"), &dead, &yes),
            ContainerFate::Remove
        );
        assert_eq!(
            f(Some("m1/100"), Some("ab12cd"), Some("b1"), &dead, &no),
            ContainerFate::Unrecorded
        );
        // Made before this boot: the run is over, whatever its lock says.
        assert_eq!(
            f(Some("m1/100"), Some("ab12cd"), Some("b0"), &alive, &no),
            ContainerFate::Remove
        );
    }
}
