//! The user's own configuration as the lab's (`run --compose`, `--env-file`):
//! the seed's layout written as a compose file and a different home network
//! both pass with LAN matrices that follow the files; a gateway that opens
//! more than the file says fails the made matrix; no secret of the files
//! appears in the terminal, the reports, the logs or the pcaps; bad files
//! are refused naming file, line and column, or service and key. Needs root.

use std::path::{Path, PathBuf};

use crate::common::{fresh_path, leakhound_run, printed};

/// A run with the user's file; not `--quiet`: these tests read what it
/// prints of the file (its LANs, what the lab replaced) and the summary.
fn run_user(args: &[&str], out: &Path) -> std::process::Output {
    leakhound_run(args, out)
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples")
}

/// Every value of a KEY=VALUE file whose key names a secret.
fn secrets_of(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.contains("KEY"))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// Fails if any file under `dir` (reports, logs, pcaps, made scenarios)
/// or `output` holds one of `secrets`, as text or as bytes.
fn assert_no_secret(dir: &Path, output: &str, secrets: &[String]) {
    assert!(!secrets.is_empty());
    let files = crate::common::files_under(dir);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "pcap"))
    );
    for s in secrets {
        assert!(
            !output.contains(s.as_str()),
            "a secret in the terminal output"
        );
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "a secret in {}",
                f.display()
            );
        }
    }
}

#[test]
fn the_seed_written_as_a_compose_file_passes_and_keeps_its_secrets() {
    let out = fresh_path("seed");
    let compose = examples().join("seed/docker-compose.yml");
    let o = run_user(
        &[
            "--compose",
            compose.to_str().unwrap(),
            "--only",
            "lan-matrix",
            "--only",
            "outbound-subnets",
        ],
        &out,
    );
    let t = printed(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("lan-admin 192.168.10.0/24 (inbound)"), "{t}");
    assert!(t.contains("replaced by the lab's"), "{t}");
    let conf = std::fs::read_to_string(out.join("configuration.json")).unwrap();
    assert!(conf.contains("\"WIREGUARD_PRIVATE_KEY\""), "{conf}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("lan-media cannot reach the gateway&apos;s port 6789")
            || junit.contains("lan-media cannot reach the gateway's port 6789")
    );
    assert_no_secret(&out, &t, &secrets_of(&examples().join("seed/.env")));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn another_home_network_gets_its_own_lans_and_runs_the_whole_suite() {
    let out = fresh_path("other");
    let compose = examples().join("other/docker-compose.yml");
    let o = run_user(&["--compose", compose.to_str().unwrap()], &out);
    let t = printed(&o);
    assert!(o.status.success(), "{t}");
    // Every built-in scenario fits this lab (its roles are this file's LANs
    // and ports): none failed, and only the Usenet one is skipped, with the
    // reason: this stack has no NZBGet (no 6789), so there is none to drive.
    assert!(!t.lines().any(|l| l.starts_with("FAIL")), "{t}");
    let skipped: Vec<&str> = t.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert!(
        skipped
            .iter()
            .all(|l| l.starts_with("SKIP usenet-through-tunnel")),
        "{skipped:?}"
    );
    assert!(
        t.contains("it drives the real NZBGet, and this run has none"),
        "{t}"
    );
    // qBittorrent is the file's: the torrent scenarios run with the real one.
    assert!(t.contains("PASS torrent-through-tunnel"), "{t}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("tunnel down: lan-1 (10.10.0.0/24) still reaches qBittorrent (8080)"),
        "{junit}"
    );
    assert!(t.contains("lan-1 10.10.0.0/24 (outbound)"), "{t}");
    assert!(t.contains("SERVER_CITIES"), "{t}");
    // 8191 is published on 127.0.0.1 only: not a LAN port.
    assert!(
        t.contains("8191:8191 is published on a loopback address only"),
        "{t}"
    );
    let matrix = std::fs::read_to_string(out.join("made-scenarios/lan-matrix.toml")).unwrap();
    assert!(matrix.contains("from = \"lan-1\"\ntarget = \"172.21.0.2:8080\"\nexpect = \"answer\""));
    assert!(
        matrix.contains("from = \"lan-other\"\ntarget = \"172.21.0.2:8080\"\nexpect = \"fail\"")
    );
    assert!(!matrix.contains("8191"));
    assert_no_secret(&out, &t, &secrets_of(&examples().join("other/vpn.env")));
    let _ = std::fs::remove_dir_all(&out);
}

/// A compose file in today's Gluetun names (its wiki, v3.41: a DoT upstream
/// by resolver names, today's health and control-server variables) runs the
/// whole default suite as it is: nothing fails, nothing is refused, the
/// gateway reads no retired name, and the DNS checks follow the file's
/// encrypted upstream (the provider's DoT resolver, never its plain one).
#[test]
fn todays_gluetun_compose_file_runs_the_whole_suite_as_it_is() {
    let out = fresh_path("gluetun-current");
    let compose = examples().join("gluetun-current/docker-compose.yml");
    let o = run_user(&["--compose", compose.to_str().unwrap()], &out);
    let t = printed(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.lines().any(|l| l.starts_with("FAIL")), "{t}");
    let skipped: Vec<&str> = t.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(t.contains("PASS baseline"), "{t}");
    assert!(t.contains("added: DOT_SERVER_ADDRESS=10.64.0.1"), "{t}");
    // Today's names need no mapping: no gateway log calls one of the
    // file's variables old (the lab's own endpoint names are retired on
    // purpose: every Gluetun reads them).
    let file = std::fs::read_to_string(&compose).unwrap();
    let keys: Vec<&str> = file
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(keys.contains(&"DNS_UPSTREAM_RESOLVER_TYPE"), "{keys:?}");
    let mut logs = 0;
    for f in crate::common::files_under(&out) {
        if f.to_string_lossy().ends_with("-gateway.log") {
            logs += 1;
            let log = std::fs::read_to_string(&f).unwrap();
            for k in &keys {
                assert!(
                    !log.contains(&format!("old environment variable {k},")),
                    "{}: {k}",
                    f.display()
                );
            }
        }
    }
    assert!(logs > 10, "{logs} gateway logs");
    // The baseline's query went to the provider's DoT resolver.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("provider-dot logged the query"), "{junit}");
    assert_no_secret(
        &out,
        &t,
        &secrets_of(&examples().join("gluetun-current/.env")),
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_gateway_that_opens_more_than_the_file_says_fails_the_made_matrix() {
    let out = fresh_path("tamper");
    let compose = examples().join("other/docker-compose.yml");
    // qBittorrent opened to the denied LAN.
    let o = run_user(
        &[
            "--compose",
            compose.to_str().unwrap(),
            "--only",
            "lan-matrix",
            "--env",
            "FIREWALL_INPUT_SUBNET_PORTS=10.10.0.0/24=8080;192.168.30.0/24=8080",
        ],
        &out,
    );
    let t = printed(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL lan-matrix"), "{t}");
    assert!(
        t.contains("lan-other cannot reach the gateway's port 8080"),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn refused(compose: &str, extra: &[&str]) -> String {
    let dir = fresh_path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("docker-compose.yml");
    std::fs::write(&f, compose).unwrap();
    let mut args = vec!["--compose", f.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run_user(&args, &dir.join("out"));
    let t = printed(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
    t
}

#[test]
fn bad_files_are_refused_naming_what_is_wrong() {
    let t = refused("services:\n  gluetun:\n    image: [unclosed\n", &[]);
    assert!(t.contains("docker-compose.yml:"), "{t}");
    assert!(t.contains(":3:"), "{t}");
    let t = refused(
        "services:\n  a:\n    image: qmcgaw/gluetun\n  b:\n    image: qmcgaw/gluetun\n",
        &[],
    );
    assert!(t.contains("2 services could be the gateway (a, b)"), "{t}");
    // A Gluetun feature the gateway lacks: its parser refuses it.
    let t = refused(
        "services:\n  gluetun:\n    image: qmcgaw/gluetun\n    environment:\n      HTTPPROXY: \"on\"\n",
        &[],
    );
    assert!(
        t.contains("service gluetun: HTTPPROXY=\"on\" is refused by leakhound's gateway"),
        "{t}"
    );
    // A name nobody knows (a typo of today's DNS_UPSTREAM_RESOLVER_TYPE).
    let t = refused(
        "services:\n  gluetun:\n    image: qmcgaw/gluetun\n    environment:\n      DNS_UPSTREAM_RESOLVER: dot\n",
        &[],
    );
    assert!(
        t.contains("service gluetun: DNS_UPSTREAM_RESOLVER: leakhound's gateway cannot honour it"),
        "{t}"
    );
    let t = refused(
        "services:\n  gluetun:\n    image: qmcgaw/gluetun\n    environment:\n      FIREWALL_OUTBOUND_SUBNETS: 10.64.1.0/24\n",
        &[],
    );
    assert!(t.contains("10.64.1.0/24 overlaps 10.64.0.0/16"), "{t}");
    let secret = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1wcmludD0=";
    let t = refused(
        &format!(
            "services:\n  gluetun:\n    image: qmcgaw/gluetun\n    environment:\n      WIREGUARD_PRIVATE_KEY: {secret}\n      FIREWALL_INPUT_PORTS: nope\n"
        ),
        &[],
    );
    assert!(t.contains("FIREWALL_INPUT_PORTS"), "{t}");
    assert!(!t.contains(secret), "{t}");
}
