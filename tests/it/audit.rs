//! `leakhound audit` against live gateways in the lab: a lab started with
//! `lab up` (its gateway runs on its own, as a deployed one does) passes
//! an audit with the lab's profile, and the audit changes nothing there
//! (firewall, routes, DNS configuration); the gateway's namespace and its
//! processes survive the audit, `reap` and a later `run`; a sidecar audit
//! (`--netns self`, run inside the gateway's namespace) passes too; a
//! deliberately leaky gateway fails the audit with the leaked packets
//! named; `--disruptive` cuts the tunnel for a moment and puts everything
//! back; what cannot be attached, and a bad profile, get exit 2 with the
//! reason. Needs root.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use crate::common::UpLab;
use leakhound::lab::netns;

const PROFILE: &str = "docs/examples/audit/lab.toml";

fn leakhound(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(args)
        .output()
        .unwrap()
}

/// `leakhound audit --netns GW --profile PROFILE --out OUT EXTRA...`.
fn audit(lab: &UpLab, extra: &[&str], out: &Path) -> Output {
    let mut args = vec![
        "audit",
        "--netns",
        lab.gw(),
        "--profile",
        PROFILE,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    leakhound(&args)
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What an audit must not change: the namespace's nftables ruleset, its
/// routes (both families, every table) and the resolv.conf its gateway sees.
fn snapshot(lab: &UpLab) -> String {
    let ns = netns::Netns::open(lab.gw()).unwrap();
    let mut s = String::new();
    for argv in [
        &["nft", "list", "ruleset"][..],
        &["ip", "-4", "route", "show", "table", "all"],
        &["ip", "-6", "route", "show", "table", "all"],
        &["ip", "rule", "show"],
    ] {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        ns.command(&mut cmd).unwrap();
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{argv:?}: {}", text(&o));
        s.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    let pid = lab.state.gateway_pid.expect("the gateway's pid");
    s.push_str(&std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf")).unwrap());
    s
}

fn pids(lab: &UpLab) -> Vec<i32> {
    let ino = netns::Netns::open(lab.gw()).unwrap().inode().unwrap();
    let mut v = netns::pids_in(ino);
    v.sort();
    v
}

#[test]
fn a_live_lab_gateway_passes_and_the_audit_changes_nothing() {
    common::require_root();
    let lab = UpLab::up();
    let before = snapshot(&lab);
    let procs = pids(&lab);
    assert!(!procs.is_empty(), "the gateway runs");
    let out = tempfile::tempdir().unwrap();
    let prom = out.path().join("metrics/audit.prom");
    let o = audit(
        &lab,
        &["--prometheus", prom.to_str().unwrap(), "--prove"],
        &out.path().join("r"),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for check in [
        "PASS  prove",
        "PASS  exit-address",
        "PASS  dns-resolvers",
        "PASS  bypass dot 192.0.2.43:853",
        "PASS  lan 192.168.10.10:80",
        "PASS  no-leak",
    ] {
        assert!(t.contains(check), "{check}: {t}");
    }
    // The capture was on the outside end of the gateway's veth.
    assert!(t.contains("the outside end of eth0"), "{t}");
    assert!(out.path().join("r/outside.pcap").exists());
    let junit = std::fs::read_to_string(out.path().join("r/junit.xml")).unwrap();
    common::assert_valid_junit(&junit);
    assert!(junit.contains("tests=\"12\""), "{junit}");
    assert!(junit.contains("failures=\"0\""), "{junit}");
    // The metrics: promtool accepts them, and they say it passed.
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.lines().any(|l| l == "leakhound_run_success 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leakhound_check_success{check=\"no-leak\",target=\"lab-gateway\"} 1"),
        "{metrics}"
    );
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .expect("promtool (ci/setup.sh installs Debian's prometheus)");
    assert!(check.status.success(), "{}", text(&check));

    // --quiet: a passing audit prints nothing (cron mails only failures).
    let o = audit(&lab, &["--quiet"], &out.path().join("quiet"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", text(&o));

    // The skip rule `run` follows too: without [capture] endpoint the
    // no-leak check is skipped, which alone passes; --fail-on-skip fails
    // it, and --allow-skip no-leak accepts it.
    let blind = out.path().join("blind.toml");
    let profile = std::fs::read_to_string(PROFILE).unwrap();
    let profile: String = profile
        .lines()
        .filter(|l| !l.starts_with("endpoint"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&blind, profile).unwrap();
    let blind_audit = |extra: &[&str], dir: &str| {
        let mut args = vec![
            "audit",
            "--netns",
            lab.gw(),
            "--profile",
            blind.to_str().unwrap(),
            "--out",
        ];
        let dir = out.path().join(dir);
        args.push(dir.to_str().unwrap());
        args.extend_from_slice(extra);
        leakhound(&args)
    };
    let o = blind_audit(&[], "blind");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("SKIP  no-leak"), "{}", text(&o));
    let o = blind_audit(&["--fail-on-skip"], "blind-strict");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = blind_audit(&["--allow-skip", "no-leak"], "blind-accepted");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Sidecar mode: leakhound inside the gateway's namespace audits it
    // (with JSON Lines on its standard output, as a log shipper reads it).
    let ns = netns::Netns::open(lab.gw()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakhound"));
    cmd.args([
        "audit",
        "--netns",
        "self",
        "--format",
        "json",
        "--profile",
        PROFILE,
        "--out",
    ])
    .arg(out.path().join("sidecar"));
    ns.command(&mut cmd).unwrap();
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12, "{lines:#?}");
    assert!(
        lines[..11]
            .iter()
            .all(|l| l["event"] == "case_finished" && l["outcome"] == "passed")
    );
    assert_eq!(lines[11]["event"], "audit_finished");
    assert_eq!(lines[11]["passed"], true);
    assert_eq!(lines[11]["schema"], 1);

    // Nothing changed; the namespace and its processes survive the audit,
    // `reap` and a later run (whose reaper leaves the detached lab alone).
    assert_eq!(
        before,
        snapshot(&lab),
        "the audit changed the gateway's namespace"
    );
    assert_eq!(procs, pids(&lab));
    let o = leakhound(&["reap"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(procs, pids(&lab), "reap touched the live lab");
    let o = common::leakhound_run(
        &["--only", "baseline", "--dependents", "stand-in", "--quiet"],
        &out.path().join("run"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(procs, pids(&lab), "a later run touched the live lab");
    assert!(!common::ours(&lab.state.id).is_empty());
}

#[test]
fn a_leaky_live_gateway_fails_the_audit_with_the_packets_named() {
    common::require_root();
    let lab = UpLab::up();
    // Break it from outside, as a misconfiguration would: no kill switch,
    // and a route to the internet around the tunnel.
    let ns = netns::Netns::open(lab.gw()).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "nft delete table inet leakhound && nft delete table netdev leakhound_egress && ip route add 192.0.2.0/24 via 172.21.0.1",
    ]);
    ns.command(&mut cmd).unwrap();
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = tempfile::tempdir().unwrap();
    let prom = out.path().join("audit.prom");
    let o = audit(
        &lab,
        &["--prometheus", prom.to_str().unwrap(), "--prove"],
        out.path(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    // The proof names a packet that leaves, without sending it.
    assert!(t.contains("FAIL  prove"), "{t}");
    assert!(
        t.contains("a packet outside the policy leaves on eth0 (found in"),
        "{t}"
    );
    assert!(t.contains("ms, not sent): "), "{t}");
    assert!(!t.contains("prove-witness"), "{t}");
    assert!(
        t.contains("FAIL  exit-address                 the exit is 198.51.100.2"),
        "{t}"
    );
    assert!(t.contains("FAIL  no-leak"), "{t}");
    // The leaked packets, named with the check that sent them.
    assert!(
        t.contains("LEAK  during exit-address: TCP 172.21.0.2:"),
        "{t}"
    );
    assert!(t.contains("-> 192.0.2.80:80"), "{t}");
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(junit.contains("-> 192.0.2.53:53 (DNS query"), "{junit}");
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.lines().any(|l| l == "leakhound_run_success 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("leakhound_check_success{check=\"exit-address\",target=\"lab-gateway\"} 0"),
        "{metrics}"
    );
    let leaked = metrics
        .lines()
        .find(|l| l.starts_with("leakhound_leaked_packets{check=\"exit-address\""))
        .unwrap();
    assert!(!leaked.ends_with(" 0"), "{leaked}");
    // --quiet still says every check when the audit fails.
    let o = audit(&lab, &["--quiet"], &out.path().join("quiet"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL  no-leak"), "{}", text(&o));
    // With --disruptive, the witness is written and the capture sees it
    // leave; the conntrack table holds nothing of it afterwards.
    let o = audit(
        &lab,
        &["--prove", "--disruptive"],
        &out.path().join("disruptive"),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("see prove-witness): TCP 172.21.0.2:40000"),
        "{t}"
    );
    assert!(t.contains("FAIL  prove-witness"), "{t}");
    assert!(
        t.contains(
            "the witness left, confirmed on the wire: eth0: TCP 172.21.0.2:40000 -> 192.0.2.80:80"
        ),
        "{t}"
    );
}

/// The lab gateway's ruleset changed by the nft commands `rules`, then
/// audited with `--prove --disruptive`, which fails: its output folder and
/// what it printed.
fn disruptive_proof_of(lab: &UpLab, ns: &netns::Netns, rules: &str) -> (tempfile::TempDir, String) {
    let mut cmd = Command::new("nft");
    cmd.arg(rules);
    ns.command(&mut cmd).unwrap();
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = tempfile::tempdir().unwrap();
    let o = audit(lab, &["--prove", "--disruptive"], out.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    (out, t)
}

/// `audit --prove --disruptive` on a live gateway whose kill switch lets
/// every established connection out (and whose egress filter, which
/// cannot tell established packets, lets TCP to port 80 by): the
/// established witness would need a connection and a neighbour entry in
/// the gateway's kernel, so it is not written (the lab's scenarios build
/// both); the raw-frame witness is, and the capture sees it leave. The
/// gateway's conntrack and neighbour tables get nothing of the audit's.
#[test]
fn a_disruptive_proof_makes_nothing_in_a_live_gateways_kernel() {
    common::require_root();
    let lab = UpLab::up();
    let ns = netns::Netns::open(lab.gw()).unwrap();
    let (out, t) = disruptive_proof_of(
        &lab,
        &ns,
        "insert rule inet leakhound output ct state established accept ; insert rule netdev leakhound_egress egress tcp dport 80 accept",
    );
    assert!(t.contains("FAIL  prove-witness"), "{t}");
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("flags 0x10, ct state established, mark 0; sent by a process in the namespace: not written on a live gateway"),
        "{junit}"
    );
    assert!(
        junit.contains("confirmed on the wire: eth0: TCP 172.21.0.2:40000 -&gt; 192.0.2.80:80 (witness: TCP 172.21.0.2:40000 -&gt; 192.0.2.80:80 flags 0x02, ct state invalid, mark 0; written to the underlay as a raw frame"),
        "{junit}"
    );
    for argv in [
        &["ip", "neigh", "show", "to", "192.0.2.80"][..],
        // The witness's connection (the gateway's health checks and the
        // audit's probes have their own to 192.0.2.80).
        &[
            "conntrack",
            "-L",
            "-p",
            "tcp",
            "-s",
            "172.21.0.2",
            "-d",
            "192.0.2.80",
            "--sport",
            "40000",
        ],
    ] {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        ns.command(&mut cmd).unwrap();
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{argv:?}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{argv:?}: {}", text(&o));
    }
}

#[test]
fn a_disruptive_audit_cuts_the_tunnel_and_puts_everything_back() {
    common::require_root();
    let lab = UpLab::up();
    let before = snapshot(&lab);
    let out = tempfile::tempdir().unwrap();
    let o = audit(&lab, &["--disruptive"], out.path());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS  tunnel-down"), "{t}");
    assert!(t.contains("back through the tunnel after"), "{t}");
    // The audit's table is gone again. (The gateway may have rebuilt its
    // tunnel interface meanwhile: only its link-local address differs.)
    let stable = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("fe80::") || l.contains("/64"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let after = snapshot(&lab);
    assert!(!after.contains("leakhound_audit_block"), "{after}");
    assert_eq!(stable(&before), stable(&after));
}

#[test]
fn what_cannot_be_audited_is_refused_with_the_reason() {
    common::require_root();
    let refused = |args: &[&str], says: &str| {
        let o = leakhound(args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(says), "{args:?}: {t}");
    };
    let p = [
        "--profile",
        PROFILE,
        "--out",
        "/tmp/leakhound-audit-refused",
    ];
    refused(
        &[&["audit", "--netns", "lh-nosuch-gw"][..], &p].concat(),
        "no such namespace",
    );
    refused(
        &[&["audit", "--pid", "999999999"][..], &p].concat(),
        "no such process",
    );
    // The host's own namespace is no gateway's.
    refused(
        &[&["audit", "--netns", "self"][..], &p].concat(),
        "host's own network namespace",
    );
    refused(
        &[
            &["audit", "--container", "leakhound-no-such-container"][..],
            &p,
        ]
        .concat(),
        "--container leakhound-no-such-container",
    );
    refused(&["audit", "--profile", PROFILE], "--netns");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[exit]\nwhoami-url = \"http://192.0.2.80/\"\nnevr = [\"1.2.3.4\"]\n",
    )
    .unwrap();
    refused(
        &["audit", "--netns", "x", "--profile", bad.to_str().unwrap()],
        &format!("{}:3:1: unknown field `nevr`", bad.display()),
    );
    refused(
        &[
            "audit",
            "--netns",
            "x",
            "--profile",
            PROFILE,
            "--allow-skip",
            "everything",
        ],
        "--allow-skip everything: no such check",
    );
}

#[test]
fn the_forwarded_port_is_read_with_the_control_servers_key_and_probed_at_the_exit() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let key = format!("audit-key-{}", leakhound::probe::nonce());
    let roles = dir.path().join("auth.toml");
    std::fs::write(
        &roles,
        format!("[[roles]]\nname = \"audit\"\nroutes = [\"GET /v1/portforward\"]\nauth = \"apikey\"\napikey = \"{key}\"\n"),
    )
    .unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let profile = dir.path().join("pf.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"pf\"\n[forwarded-port]\ncontrol-url = \"http://127.0.0.1:8000\"\napi-key-file = \"{}\"\nprober-url = \"http://192.0.2.80/leakhound/probe?port={{port}}\"\nqbittorrent-url = \"http://127.0.0.1:18080\"\n[capture]\nendpoint = \"203.0.113.10:51820\"\nallowed = [\"172.21.0.0/16\", \"172.20.0.0/16\"]\n",
            key_file.display()
        ),
    )
    .unwrap();
    let lab = UpLab::up_with(&[
        "VPN_PORT_FORWARDING=on".into(),
        "VPN_PORT_FORWARDING_GATEWAY=10.64.0.1".into(),
        format!(
            "HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH={}",
            roles.display()
        ),
    ]);
    let ns = netns::Netns::open(lab.gw()).unwrap();
    // The gateway asks the provider for its port after the tunnel is up:
    // wait until the control server has one (as a port hook would).
    let port = {
        let t = std::time::Instant::now();
        loop {
            let mut cmd = Command::new("curl");
            cmd.args([
                "-s",
                "-m",
                "2",
                "-H",
                &format!("X-API-Key: {key}"),
                "http://127.0.0.1:8000/v1/portforward",
            ]);
            ns.command(&mut cmd).unwrap();
            let body = String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned();
            let port = leakhound::model::audit::control_port(&body).unwrap_or(0);
            if port != 0 {
                break port;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "no port: {body}"
            );
        }
    };
    // qBittorrent's WebUI as the audit asks it (GET
    // /api/v2/app/preferences from localhost, no login), listening first
    // on the wrong port.
    let listen_port = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(port + 1));
    let webui = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:18080"))
        .unwrap()
        .unwrap();
    {
        let listen_port = listen_port.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut c in webui.incoming().flatten() {
                let mut buf = [0u8; 2048];
                let n = c.read(&mut buf).unwrap_or(0);
                let asked = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = if asked.starts_with("GET /api/v2/app/preferences ") {
                    format!(
                        "{{\"listen_port\":{},\"upnp\":true}}",
                        listen_port.load(std::sync::atomic::Ordering::SeqCst)
                    )
                } else {
                    String::new()
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
    let audit = |out: &Path| {
        let o = leakhound(&[
            "audit",
            "--netns",
            lab.gw(),
            "--profile",
            profile.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let t = text(&o);
        // The key never shows: not on the terminal, not in the reports.
        assert!(!t.contains(&key), "{t}");
        for f in ["junit.xml", "summary.json"] {
            let r = std::fs::read_to_string(out.join(f)).unwrap();
            assert!(!r.contains(&key), "{f}");
        }
        (o.status.code(), t)
    };
    // Nothing listens on the port yet: the prober finds it closed.
    let out = tempfile::tempdir().unwrap();
    let (code, t) = audit(out.path());
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "port {port} is the forwarded port, and the prober found it closed"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "qBittorrent listens on {}, the forwarded port is {port}",
            port + 1
        )),
        "{t}"
    );
    // qBittorrent follows the port, and listens on it: open at the exit.
    listen_port.store(port, std::sync::atomic::Ordering::SeqCst);
    let listener = ns
        .run(move || std::net::TcpListener::bind(("0.0.0.0", port)))
        .unwrap()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, t) = audit(out.path());
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains(&format!("port {port} is open at the exit")),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "PASS  forwarded-port-client        qBittorrent listens on {port}"
        )),
        "{t}"
    );
    drop(listener);
}

/// The audit's cut of the lab's tunnel (203.0.113.10:51820), as the kernel
/// holds it: how long until it lifts it, or `None`.
fn cut_left(lab: &UpLab) -> Option<std::time::Duration> {
    use leakhound::gateway::firewall::{cut, nfnl::Cut};
    let c = Cut {
        endpoint: "203.0.113.10:51820".parse().unwrap(),
        timeout: leakhound::audit::CUT_TIMEOUT,
    };
    netns::Netns::open(lab.gw())
        .unwrap()
        .run(|| cut::expiry(&c))
        .unwrap()
        .unwrap()
}

/// Starts `audit --disruptive EXTRA...` and returns it once its cut is in
/// the kernel (polled every 50 ms, for up to 60 s).
fn audit_until_cut(lab: &UpLab, extra: &[&str], out: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "audit",
            "--netns",
            lab.gw(),
            "--profile",
            PROFILE,
            "--disruptive",
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while cut_left(lab).is_none() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the audit ended ({st}) before cutting the tunnel");
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "no cut within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

/// Seconds until whoami answers from the gateway's namespace again (asked
/// with a 1 s timeout, again and again, for up to `limit`).
fn seconds_until_traffic(lab: &UpLab, limit: std::time::Duration) -> f64 {
    let ns = netns::Netns::open(lab.gw()).unwrap();
    let t = std::time::Instant::now();
    loop {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-m", "1", "http://192.0.2.80/"]);
        ns.command(&mut cmd).unwrap();
        let o = cmd.output().unwrap();
        if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("203.0.113.77") {
            return t.elapsed().as_secs_f64();
        }
        assert!(
            t.elapsed() < limit,
            "no traffic within {limit:?} of the interruption"
        );
    }
}

#[test]
fn an_interrupted_disruptive_audit_heals_the_tunnel_even_when_killed() {
    use std::os::unix::fs::PermissionsExt;
    common::require_root();
    let lab = UpLab::up();
    let out = tempfile::tempdir().unwrap();

    // SIGKILL in the middle of the cut: nothing of leakhound runs any more,
    // and the kernel lifts the cut by itself within CUT_TIMEOUT.
    let mut child = audit_until_cut(&lab, &[], &out.path().join("killed"));
    let left = cut_left(&lab).unwrap();
    assert!(left <= leakhound::audit::CUT_TIMEOUT, "{left:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let back = seconds_until_traffic(&lab, std::time::Duration::from_secs(30));
    assert!(
        back > 1.0,
        "traffic came back before the kernel lifted the cut ({back} s)"
    );
    assert_eq!(cut_left(&lab), None, "the element expired");

    // SIGTERM during an --every audit's cut: answered within 1 s, the cut
    // lifted at once, the reports written (private), exit 128 + 15. The
    // audit first removed the table the killed one had left.
    let reports = out.path().join("term");
    let mut child = audit_until_cut(&lab, &["--every", "1h"], &reports);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "SIGTERM not answered within 1 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(status.code(), Some(143), "{t}");
    assert!(t.contains("ERROR tunnel-down"), "{t}");
    assert!(
        t.contains("interrupted by a signal while this check ran"),
        "{t}"
    );
    assert!(t.contains("INTERRUPTED by SIGTERM"), "{t}");
    let back = seconds_until_traffic(&lab, std::time::Duration::from_secs(30));
    assert!(back < 10.0, "{back} s");
    assert!(
        !snapshot(&lab).contains("leakhound_audit_block"),
        "the cut's table is gone"
    );
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(
        junit.contains("removed the table leakhound_audit_block an interrupted audit had left"),
        "{junit}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&reports), 0o700);
    for f in ["junit.xml", "summary.json", "report.html", "outside.pcap"] {
        assert_eq!(mode(&reports.join(f)), 0o600, "{f}");
    }
}

/// On a live gateway a witness to an address that is not a documentation
/// address is never written: a hole only to a real resolver's address
/// gives a model-only witness that says why, and nothing to it appears on
/// the wire.
#[test]
fn a_disruptive_proof_writes_no_witness_to_a_real_address() {
    common::require_root();
    let lab = UpLab::up();
    let ns = netns::Netns::open(lab.gw()).unwrap();
    let (out, t) = disruptive_proof_of(
        &lab,
        &ns,
        "insert rule inet leakhound output ip daddr 9.9.9.9 udp dport 53 accept ; insert rule netdev leakhound_egress egress ip daddr 9.9.9.9 udp dport 53 accept",
    );
    assert!(t.contains("-> 9.9.9.9:53"), "{t}");
    assert!(t.contains("FAIL  prove-witness"), "{t}");
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(junit.contains("a model-only witness"), "{junit}");
    assert!(
        junit.contains("not written on a live gateway: 9.9.9.9 is not a documentation address"),
        "{junit}"
    );
    let pcap = std::fs::read(out.path().join(format!("{}.pcap", leakhound::audit::WIRE))).unwrap();
    assert!(
        !pcap.windows(b"lhwitness".len()).any(|w| w == b"lhwitness"),
        "a witness was written"
    );
}
