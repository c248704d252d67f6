//! Concurrent and killed runs: two `leakhound run` at once both pass (their
//! labs, run locks and files are apart); a run SIGKILLed while it builds its
//! lab, in the middle of a scenario, or while it tears down leaves nothing
//! that the next `leakhound reap` does not remove. Needs root.

use crate::common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::ours;
use leakhound::lab::netns;
use leakhound::model::topology::Topology;

fn leakhound(args: &[&str], out: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leakhound"));
    c.args(args).arg("--out").arg(out);
    c
}

/// Starts a run and reads its run id from its first line.
fn start(
    args: &[&str],
    out: &std::path::Path,
) -> (Child, String, std::io::BufReader<std::process::ChildStderr>) {
    let mut child = leakhound(args, out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    // Lines about reaping may come first.
    let id = loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the run said nothing"
        );
        if let Some(id) = line
            .strip_prefix("leakhound run ")
            .and_then(|r| r.split(':').next())
        {
            break id.to_string();
        }
    };
    (child, id, err)
}

/// Waits (polling at 1 ms, up to 60 s) until `cond` holds.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGKILLs the run, then `leakhound reap` must remove everything of it:
/// namespaces, processes inside them, its files and its lock.
fn kill_and_reap(mut child: Child, id: &str, err: std::io::BufReader<std::process::ChildStderr>) {
    child.kill().unwrap();
    child.wait().unwrap();
    drop(err);
    // A child the run forked just before it was killed holds the run's
    // lock until its exec closes it (the lock is inherited across fork):
    // for that moment the run is alive, and a reap leaves it alone. So
    // `reap` is asked again until the run is gone, for at most 10 s; every
    // answer is kept for the message.
    let t = Instant::now();
    let mut said = String::new();
    let o = loop {
        let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .arg("reap")
            .output()
            .unwrap();
        said.push_str(&String::from_utf8_lossy(&o.stdout));
        said.push_str(&String::from_utf8_lossy(&o.stderr));
        if !o.status.success() || ours(id).is_empty() || t.elapsed() > Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(o.status.success(), "{said}");
    if !ours(id).is_empty() {
        // What kept them: the reaper's own words, and who holds the run's
        // lock file open (a live holder makes the run look alive).
        let lock = std::path::Path::new(netns::RUN_DIR).join(format!("{id}.lock"));
        let holders: Vec<String> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|p| {
                let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
                let holds = fds
                    .flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == lock));
                holds.then(|| {
                    let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                    format!("{} ({})", p.file_name().to_string_lossy(), comm.trim())
                })
            })
            .collect();
        let records = std::fs::read_to_string(netns::run_files(id).join("owned"));
        panic!(
            "namespaces left: {:?} after {:.1} s of reaping; reap said: {said}; the lock is held by: {holders:?}; alive: {}; records: {records:?}",
            ours(id),
            t.elapsed().as_secs_f64(),
            netns::run_is_alive(id)
        );
    }
    let files = netns::run_files(id);
    assert!(!files.exists(), "{} left", files.display());
    assert!(
        !std::path::Path::new(netns::RUN_DIR)
            .join(format!("{id}.lock"))
            .exists(),
        "lock left"
    );
}

#[test]
fn two_runs_at_once_both_pass() {
    common::require_root();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [
        "run",
        "--quiet",
        "--only",
        "baseline",
        "--only",
        "killswitch-gateway-crash",
    ];
    // At the same time, not one after the other.
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| leakhound(&args, a.path()).output().unwrap());
        let hb = s.spawn(|| leakhound(&args, b.path()).output().unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    for (r, out) in [(&ra, a.path()), (&rb, b.path())] {
        assert_eq!(
            r.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(out.join("junit.xml").exists());
    }
}

#[test]
fn a_run_killed_while_building_its_lab_is_reaped() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let (child, id, err) = start(&["run", "--only", "baseline"], out.path());
    let hosts = Topology::default_profile().hosts.len();
    // Some of its namespaces exist, not yet all.
    until("the first namespace", || !ours(&id).is_empty());
    let seen = ours(&id).len();
    kill_and_reap(child, &id, err);
    eprintln!("killed with {seen} of {hosts} namespaces built");
}

#[test]
fn a_run_killed_in_the_middle_of_a_scenario_is_reaped() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let (child, id, err) = start(&["run", "--only", "killswitch-tunnel-down"], out.path());
    // Its gateway runs: a process in its gateway namespace.
    until("the gateway process", || {
        netns::Netns::open(&format!("lh-{id}-gw"))
            .ok()
            .and_then(|ns| ns.inode().ok())
            .is_some_and(|ino| !netns::pids_in(ino).is_empty())
    });
    let ino = netns::Netns::open(&format!("lh-{id}-gw"))
        .unwrap()
        .inode()
        .unwrap();
    let pids = netns::pids_in(ino);
    kill_and_reap(child, &id, err);
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "process {p} of the killed run survived"
        );
    }
}

#[test]
fn a_run_killed_while_tearing_down_is_reaped() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let (child, id, err) = start(&["run", "--only", "baseline"], out.path());
    let hosts = Topology::default_profile().hosts.len();
    until("the whole lab", || ours(&id).len() == hosts);
    // The first namespace goes: teardown has begun.
    until("teardown", || ours(&id).len() < hosts);
    kill_and_reap(child, &id, err);
}

/// A run killed after its last namespace went leaves only its files and its
/// lock (no namespace names it any more): the reaper removes those too, and
/// leaves a live run's alone.
#[test]
fn a_run_that_left_only_files_is_reaped() {
    common::require_root();
    let dead = leakhound::lab::new_run_id();
    let files = netns::run_files(&dead);
    std::fs::create_dir_all(files.join("browser-x")).unwrap();
    std::fs::write(files.join("ca.pem"), "x").unwrap();
    let lock = std::path::Path::new(netns::RUN_DIR).join(format!("{dead}.lock"));
    std::fs::write(&lock, "").unwrap();
    // A live run: its lock held by this process.
    let alive = leakhound::lab::new_run_id();
    let held = netns::RunLock::acquire(&alive).unwrap();
    std::fs::create_dir_all(netns::run_files(&alive)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .arg("reap")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!files.exists(), "{} left", files.display());
    assert!(!lock.exists(), "{} left", lock.display());
    assert!(netns::run_files(&alive).exists(), "a live run's files went");
    std::fs::remove_dir_all(netns::run_files(&alive)).unwrap();
    drop(held);
}

/// A namespace that is not leakhound's, with a process inside: removed by
/// `ip netns del` and its process killed, however the test ends.
struct Decoy {
    name: String,
    sleeper: Child,
}

impl Decoy {
    /// `ip netns add NAME` (a user's own namespace) with a `sleep` in it.
    fn new(name: &str) -> Decoy {
        assert!(
            Command::new("ip")
                .args(["netns", "add", name])
                .status()
                .unwrap()
                .success()
        );
        let sleeper = Command::new("ip")
            .args(["netns", "exec", name, "sleep", "600"])
            .spawn()
            .unwrap();
        let ns = std::path::Path::new(netns::NETNS_DIR).join(name);
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&ns).unwrap());
        until("the decoy's process in its namespace", || {
            netns::pids_in(ino).contains(&(sleeper.id() as i32))
        });
        Decoy {
            name: name.to_string(),
            sleeper,
        }
    }

    /// Still there, with its process alive?
    fn intact(&mut self) -> bool {
        std::path::Path::new(netns::NETNS_DIR)
            .join(&self.name)
            .exists()
            && self.sleeper.try_wait().unwrap().is_none()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// What leakhound did not record making is never its to remove: a user's
/// `lh-myvpn-home`, and even a namespace named exactly like a dead run's
/// that the run never recorded, survive `leakhound reap` and a full run
/// with their processes, and `reap` names them as left alone.
#[test]
fn namespaces_leakhound_did_not_record_survive_reap_and_a_run() {
    common::require_root();
    let mut home = Decoy::new("lh-myvpn-home");
    let mut lookalike = Decoy::new(&format!("lh-{}-decoy", leakhound::lab::new_run_id()));
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .arg("reap")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(home.intact(), "reap removed lh-myvpn-home: {said}");
    assert!(
        lookalike.intact(),
        "reap removed {}: {said}",
        lookalike.name
    );
    assert!(
        said.contains("left alone") && said.contains("lh-myvpn-home"),
        "{said}"
    );
    let out = tempfile::tempdir().unwrap();
    let o = leakhound(&["run", "--quiet", "--only", "baseline"], out.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(home.intact(), "a run removed lh-myvpn-home");
    assert!(lookalike.intact(), "a run removed {}", lookalike.name);
}
