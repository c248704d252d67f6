//! ci/setup.sh plans by a table, per distribution, and degrades: tried by
//! simulation (SETUP_OS, SETUP_AVAILABLE, SETUP_INSTALLED: nothing is
//! installed), since only Debian 12 runs here. A package the archive lacks
//! is named and skipped, Ubuntu's snap-only chromium is skipped with what to
//! do instead, only a missing required package (nftables, iproute2, gcc) fails, and `--main` plans only what
//! the main job uses. No root needed.

use std::process::Command;

const ALL: &str = "nftables iproute2 gcc knot-dnsutils curl ca-certificates wget qbittorrent-nox nzbget \
    opentracker aria2 chromium libxml2-utils tcpdump wireguard-go wireguard-tools dnsmasq-base \
    stress-ng prometheus yamllint systemd python3-junitparser python3-jsonschema unbound iperf3";

fn plan(os: &str, available: &str, args: &[&str]) -> (i32, String) {
    let o = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/setup.sh"))
        .args(args)
        .env("SETUP_OS", os)
        .env("SETUP_AVAILABLE", available)
        .env("SETUP_INSTALLED", "")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn installing(out: &str) -> Vec<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("ci/setup.sh: installing "))
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn without(pkgs: &[&str]) -> String {
    ALL.split_whitespace()
        .filter(|p| !pkgs.contains(p))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn debian_gets_everything_but_the_benchmarks() {
    let (code, out) = plan("debian-12", ALL, &[]);
    assert_eq!(code, 0, "{out}");
    let i = installing(&out);
    for p in ["nftables", "chromium", "tcpdump", "python3-junitparser"] {
        assert!(i.contains(&p.to_string()), "{p}: {out}");
    }
    assert!(!i.contains(&"unbound".to_string()), "{out}");
    let (_, out) = plan("debian-13", ALL, &["--bench"]);
    assert!(installing(&out).contains(&"iperf3".to_string()), "{out}");
}

#[test]
fn a_package_the_archive_lacks_is_named_and_skipped() {
    let (code, out) = plan("debian-13", &without(&["nzbget", "wireguard-go"]), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("skipped nzbget (the real NZBGet as a dependent (else a stand-in)): not in this system's package archive"),
        "{out}"
    );
    assert!(out.contains("skipped wireguard-go"), "{out}");
    assert!(!installing(&out).contains(&"nzbget".to_string()), "{out}");
    assert!(installing(&out).contains(&"nftables".to_string()), "{out}");
}

#[test]
fn ubuntus_snap_chromium_is_skipped_with_what_to_do() {
    for os in ["ubuntu-22.04", "ubuntu-24.04"] {
        let (code, out) = plan(os, ALL, &[]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("skipped chromium") && out.contains("google-chrome-stable"),
            "{os}: {out}"
        );
        assert!(!installing(&out).contains(&"chromium".to_string()), "{out}");
    }
}

#[test]
fn only_a_missing_required_package_fails() {
    let (code, out) = plan("debian-12", &without(&["nftables"]), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot install nftables"), "{out}");
    let (code, out) = plan("debian-13", &without(&["iproute2"]), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot install iproute2"), "{out}");
    let (code, out) = plan("ubuntu-24.04", &without(&["gcc"]), &["--main"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot install gcc"), "{out}");
}

#[test]
fn main_plans_only_what_the_main_job_uses() {
    let (code, out) = plan("debian-12", ALL, &["--main"]);
    assert_eq!(code, 0, "{out}");
    let i = installing(&out);
    assert!(i.contains(&"nftables".to_string()) && i.contains(&"knot-dnsutils".to_string()));
    for p in ["tcpdump", "yamllint", "prometheus", "libxml2-utils"] {
        assert!(!i.contains(&p.to_string()), "{p}: {out}");
    }
}

/// The real archive query (no SETUP_AVAILABLE), with stand-ins for apt-get
/// and apt-cache on PATH: an apt-cache whose answer is long (a package with
/// many versions, more than a pipe holds) is still read to its end. With
/// `apt-cache policy | grep -q` under pipefail, grep's early exit killed
/// apt-cache with SIGPIPE and every such package looked missing (found in a
/// Debian 13 root, where --dry-run skipped curl, tcpdump and 12 others).
#[test]
fn a_long_answer_of_apt_cache_is_read_whole() {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let p = bin.path().join(name);
        std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("apt-get", "exit 0");
    // A candidate at the top, then 200 KiB of version table.
    script(
        "apt-cache",
        "echo \"$2:\"; echo '  Installed: (none)'; echo '  Candidate: 1.0-1'; \
         for i in $(seq 1 4000); do echo \"     0.$i-1 500 http://deb.debian.org/debian trixie/main amd64 Packages\"; done",
    );
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/setup.sh"))
        .arg("--dry-run")
        .env("SETUP_OS", "debian-13")
        .env("SETUP_INSTALLED", "")
        .env_remove("SETUP_AVAILABLE")
        .env("PATH", path)
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("skipped"), "{out}");
    for p in [
        "nftables",
        "curl",
        "tcpdump",
        "chromium",
        "python3-jsonschema",
    ] {
        assert!(installing(&out).contains(&p.to_string()), "{p}: {out}");
    }
}
