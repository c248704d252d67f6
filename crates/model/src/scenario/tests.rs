//! The parser's tests: every error names file, line and column; typed steps
//! refuse keys their action does not know.

use super::*;
use crate::topology::Topology;

fn topo() -> Topology {
    Topology::default_profile()
}

fn err(text: &str) -> String {
    parse("t.toml", text, &topo()).unwrap_err().to_string()
}

fn ok(text: &str) -> Scenario {
    parse("t.toml", text, &topo()).unwrap()
}

#[test]
fn a_probe_step_becomes_its_typed_action() {
    let s = ok(
        "name = \"x\"\n[[step]]\nname = \"probe\"\naction = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"seen-as 203.0.113.77\"\nlogged-by = [\"whoami\"]\n",
    );
    assert_eq!(s.steps[0].name, "probe");
    assert_eq!(
        s.steps[0].action,
        Action::Http {
            from: "gw".into(),
            target: "192.0.2.80:80".parse().unwrap(),
            check: Check {
                expect: Expect::SeenAs("203.0.113.77".parse().unwrap()),
                logged_by: vec!["whoami".into()],
                not_logged_by: vec![],
            },
        }
    );
    assert_eq!(s.leak_wires, vec!["gw", "uplink"]);
    assert!(s.gateway_start && s.requires.is_empty());
}

#[test]
fn syntax_errors_name_the_file_line_and_column() {
    let e = err("name = \"x\"\n[[step]\n");
    assert!(e.starts_with("t.toml:2:"), "{e}");
}

#[test]
fn a_misspelt_key_is_named_with_its_line_and_column() {
    let e = err(
        "name = \"x\"\n[[step]]\naction = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"fail\"\ncolour = \"red\"\n",
    );
    assert!(e.starts_with("t.toml:7:1: step 1 (http): "), "{e}");
    assert!(e.contains("colour"), "{e}");
    // A key of another action is just as unknown here.
    let e = err("name = \"x\"\n[[step]]\naction = \"wait-handshake\"\nfrom = \"gw\"\n");
    assert!(e.starts_with("t.toml:4:1:") && e.contains("from"), "{e}");
    // ... and at the scenario's own level.
    let e = err("name = \"x\"\ncolor = 1\n[[step]]\naction = \"storm-stop\"\n");
    assert!(e.starts_with("t.toml:2:1:") && e.contains("color"), "{e}");
}

#[test]
fn unknown_and_missing_actions_are_named() {
    let e = err("name = \"x\"\n[[step]]\naction = \"teleport\"\n");
    assert!(
        e.starts_with("t.toml:3:10: step 1 (teleport): unknown action \"teleport\""),
        "{e}"
    );
    assert!(
        e.contains("wait-handshake"),
        "the known actions are listed: {e}"
    );
    let e = err("name = \"x\"\n[[step]]\nname = \"nothing\"\n");
    assert!(
        e.starts_with("t.toml:2:1: step 1 (nothing): no `action`"),
        "{e}"
    );
}

#[test]
fn bad_values_are_named_at_their_position() {
    let cases = [
        (
            "action = \"http\"\nfrom = \"mars\"\ntarget = \"192.0.2.80:80\"\nexpect = \"fail\"",
            "5:8",
            "not a lab host",
        ),
        (
            "action = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80\"\nexpect = \"fail\"",
            "6:10",
            "not an address:port",
        ),
        (
            "action = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"",
            "2:1",
            "missing field `expect`",
        ),
        (
            "action = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"seen-as nowhere\"",
            "7:10",
            "not an IP address",
        ),
        (
            "action = \"dns\"\nfrom = \"gw\"\nserver = \"10.64.0.1:53\"\nexpect = \"answer\"\nlogged-by = [\"nsa\"]",
            "8:13",
            "unknown service \"nsa\"",
        ),
        (
            "action = \"dns\"\nfrom = \"gw\"\nserver = \"10.64.0.1:53\"\nexpect = \"seen-as 1.2.3.4\"",
            "7:10",
            "expects \"answer\", \"fail\" or \"any\"",
        ),
        (
            "action = \"forwarded-port\"\nvia = \"exit\"\nexpect = \"any\"",
            "6:10",
            "expects \"answer\" or \"fail\"",
        ),
        (
            "action = \"wait-handshake\"\ntimeout = \"soon\"",
            "5:11",
            "\"soon\" is not a duration",
        ),
        ("action = \"storm-wait\"\nrounds = 0", "5:10", "at least 1"),
        ("action = \"interfere\"", "4:10", "needs at least one of"),
        (
            "action = \"raw-frame\"\nfrom = \"gw\"\ntarget = \"192.0.2.53:53\"\nexpect = \"answer\"",
            "7:10",
            "raw-frame expects \"fail\"",
        ),
    ];
    for (body, at, want) in cases {
        let e = err(&format!("name = \"x\"\n[[step]]\nname = \"s\"\n{body}\n"));
        assert!(
            e.starts_with(&format!("t.toml:{at}: step 1 (s): ")),
            "{at}: {e}"
        );
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn empty_scenarios_bad_names_unknown_wires_and_capabilities_are_refused() {
    assert!(err("name = \"x\"\n").contains("no [[step]]"));
    assert!(err("name = \"../etc\"\n[[step]]\naction = \"wait-handshake\"\n").contains("name ="));
    let e =
        err("name = \"x\"\n[[step]]\naction = \"wait-handshake\"\n[leaks]\nwires = [\"wifi\"]\n");
    assert!(
        e.starts_with("t.toml:5:10:") && e.contains("unknown wire \"wifi\""),
        "{e}"
    );
    let e =
        err("name = \"x\"\nrequires = [\"teleporter\"]\n[[step]]\naction = \"wait-handshake\"\n");
    assert!(
        e.starts_with("t.toml:2:13:") && e.contains("unknown capability"),
        "{e}"
    );
}

#[test]
fn requirements_are_declared_and_implied_by_steps() {
    let s = ok(
        "name = \"x\"\nrequires = [\"blocklist-files\"]\n[[step]]\naction = \"health\"\nexpect = \"healthy\"\n[[step]]\naction = \"forwarded-port\"\nvia = \"exit\"\nexpect = \"answer\"\n",
    );
    let r: Vec<Capability> = s.requirements().into_iter().collect();
    assert_eq!(
        r,
        [
            Capability::HealthServer,
            Capability::PortForwarding,
            Capability::BlocklistFiles
        ]
    );
}

#[test]
fn every_action_in_the_table_parses_with_its_documented_fields() {
    // One minimal step per action, so the table and the parser cannot drift.
    let bodies: &[(&str, &str)] = &[
        ("wait-handshake", ""),
        ("wait-firewall", "timeout = \"1s\""),
        ("wait-tunnel-restart", ""),
        ("wait-traffic", "timeout = \"2s\""),
        (
            "http",
            "from = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"answer\"",
        ),
        (
            "dns",
            "from = \"gw\"\nserver = \"system\"\nexpect = \"fail\"\nquery = \"malware.lab\"",
        ),
        (
            "dot",
            "from = \"gw\"\ntarget = \"192.0.2.43:853\"\nexpect = \"fail\"",
        ),
        (
            "doh",
            "from = \"gw\"\ntarget = \"192.0.2.43:443\"\nexpect = \"fail\"",
        ),
        (
            "udp",
            "from = \"gw\"\ntarget = \"192.0.2.80:7\"\nexpect = \"fail\"",
        ),
        (
            "raw-frame",
            "from = \"gw\"\ntarget = \"192.0.2.53:53\"\nexpect = \"fail\"",
        ),
        (
            "ping",
            "from = \"gw\"\ntarget = \"192.0.2.80\"\nexpect = \"fail\"",
        ),
        (
            "inject-synack",
            "from = \"home\"\ntarget = \"10.64.0.2:22\"\nexpect = \"fail\"",
        ),
        ("storm-start", "from = \"gw\""),
        ("storm-wait", "rounds = 3"),
        ("storm-stop", ""),
        ("flows-start", "from = \"gw\""),
        ("flows-wait", "rounds = 3"),
        ("flows-stop", ""),
        ("dns-garbage", "from = \"gw\"\nserver = \"127.0.0.1:53\""),
        ("health", "expect = \"unhealthy\""),
        (
            "control",
            "path = \"/v1/vpn/status\"\nstatus = 401\nauth = \"apikey k\"",
        ),
        ("forwarded-port", "via = \"lan\"\nexpect = \"fail\""),
        ("torrent-wait", "progress = \"25%\""),
        ("torrent-announce", "expect = \"fail\""),
        ("swarm-seen", "expect = \"seen-as 203.0.113.77\""),
        ("news-seen", "expect = \"seen-as 203.0.113.77\""),
        ("nzb-wait", "expect = \"answer\""),
        ("browse", "expect = \"fail\""),
        ("unheard", "by = [\"home-router\"]"),
        ("port-command", "expect = \"none\""),
        ("interfere", "kill = true"),
    ];
    for spec in actions::ACTIONS {
        let body = bodies
            .iter()
            .find(|(n, _)| *n == spec.name)
            .map(|(_, b)| *b)
            .unwrap_or("");
        // A wait or stop of background work needs its start before it.
        let before = match spec.name {
            "storm-wait" | "storm-stop" => "[[step]]\naction = \"storm-start\"\nfrom = \"gw\"\n",
            "flows-wait" | "flows-stop" => "[[step]]\naction = \"flows-start\"\nfrom = \"gw\"\n",
            _ => "",
        };
        let text = format!(
            "name = \"x\"\n{before}[[step]]\naction = \"{}\"\n{body}\n",
            spec.name
        );
        if let Err(e) = parse("t.toml", &text, &topo()) {
            panic!("{}: {e}", spec.name);
        }
    }
}

#[test]
fn background_work_is_waited_for_and_stopped_only_after_its_start() {
    let cases = [
        (
            "[[step]]\naction = \"flows-wait\"\nrounds = 3\n",
            "t.toml:2:1: step 1: no flows run here (a flows-start first)",
        ),
        (
            "[[step]]\naction = \"flows-start\"\nfrom = \"gw\"\n[[step]]\naction = \"flows-stop\"\n[[step]]\naction = \"flows-stop\"\n",
            "t.toml:7:1: step 3: no flows run here (a flows-start first)",
        ),
        (
            "[[step]]\naction = \"flows-start\"\nfrom = \"gw\"\n[[step]]\naction = \"flows-start\"\nfrom = \"gw\"\n",
            "t.toml:5:1: step 2: the flows are already running (a flows-stop first)",
        ),
        (
            "[[step]]\naction = \"storm-stop\"\n",
            "t.toml:2:1: step 1: no background traffic runs here",
        ),
        (
            "[[step]]\naction = \"start-gateway\"\nstorm-from = \"gw\"\n[[step]]\naction = \"storm-start\"\nfrom = \"gw\"\n",
            "t.toml:5:1: step 2: background traffic is already running",
        ),
    ];
    for (steps, want) in cases {
        let e = parse("t.toml", &format!("name = \"x\"\n{steps}"), &topo())
            .expect_err(steps)
            .to_string();
        assert!(e.starts_with(want), "{want}\n{e}");
    }
    let ok = "name = \"x\"\n[[step]]\naction = \"start-gateway\"\nstorm-from = \"gw\"\n\
              [[step]]\naction = \"storm-wait\"\nrounds = 2\n[[step]]\naction = \"storm-stop\"\n\
              [[step]]\naction = \"flows-start\"\nfrom = \"gw\"\n";
    parse("t.toml", ok, &topo()).unwrap();
}

/// Silent probes (a, b, d), an answered one, a fault and a raw frame.
const MIXED_STEPS: &str = r#"
name = "t"
description = "d"
[[step]]
name = "a"
action = "http"
from = "gw"
target = "192.0.2.80:80"
expect = "fail"
[[step]]
name = "b"
action = "ping"
from = "gw"
target = "192.0.2.80"
expect = "fail"
[[step]]
name = "c"
action = "http"
from = "gw"
target = "192.0.2.80:80"
expect = "answer"
[[step]]
name = "d"
action = "dns"
from = "gw"
server = "system"
expect = "fail"
[[step]]
name = "e"
action = "stop-tunnel"
[[step]]
name = "f"
action = "raw-frame"
from = "gw"
target = "192.0.2.53:53"
expect = "fail"
"#;

#[test]
fn the_expected_wait_counts_silent_probes_and_faults() {
    let s = ok(MIXED_STEPS);
    // a and b wait together (3 s), d alone (3 s), the fault 1 s, the raw
    // frame (not a silent probe) 3 s.
    assert_eq!(
        s.expected_wait(Duration::from_secs(3)),
        Duration::from_secs(10)
    );
}

#[test]
fn silent_probes_are_the_stateless_ones_that_expect_no_answer() {
    let s = ok(MIXED_STEPS);
    let silent: Vec<bool> = s.steps.iter().map(|s| s.action.is_silent_probe()).collect();
    assert_eq!(silent, [true, true, false, true, false, false]);
    let targets: Vec<_> = s.steps.iter().map(|s| s.action.probe_target()).collect();
    assert_eq!(targets[0], Some(("192.0.2.80".parse().unwrap(), Some(80))));
    assert_eq!(targets[1], Some(("192.0.2.80".parse().unwrap(), None)));
    // The host's own resolver: where it goes is not known here.
    assert_eq!(targets[3], None);
}

#[test]
fn torrent_steps_parse_and_bad_values_are_named() {
    let text = "name = \"x\"\n[[step]]\naction = \"torrent-wait\"\nprogress = \"100%\"\ntimeout = \"9s\"\n[[step]]\naction = \"forwarded-port\"\nvia = \"exit\"\nprotocol = \"bittorrent\"\nexpect = \"answer\"\n";
    let s = parse("t.toml", text, &topo()).unwrap();
    assert_eq!(
        s.steps[0].action,
        Action::TorrentWait {
            progress: 1.0,
            timeout: std::time::Duration::from_secs(9)
        }
    );
    assert!(matches!(
        s.steps[1].action,
        Action::ForwardedPort {
            bittorrent: true,
            ..
        }
    ));
    assert!(s.needs_swarm());
    for (body, says) in [
        (
            "action = \"torrent-wait\"\nprogress = \"150%\"",
            "percentage",
        ),
        (
            "action = \"torrent-wait\"\nprogress = \"half\"",
            "percentage",
        ),
        ("action = \"swarm-seen\"\nexpect = \"answer\"", "seen-as"),
        (
            "action = \"forwarded-port\"\nvia = \"exit\"\nexpect = \"answer\"\nprotocol = \"smtp\"",
            "bittorrent",
        ),
    ] {
        let e = parse(
            "t.toml",
            &format!("name = \"x\"\n[[step]]\n{body}\n"),
            &topo(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(says) && e.contains("t.toml:"), "{body}: {e}");
    }
}

#[test]
fn a_browse_step_takes_seen_as_or_fail_only() {
    let s = ok(
        "name = \"x\"\n[[step]]\nname = \"b\"\naction = \"browse\"\nexpect = \"seen-as 203.0.113.77\"\n",
    );
    assert_eq!(
        s.steps[0].action,
        Action::Browse {
            expect: Expect::SeenAs("203.0.113.77".parse().unwrap())
        }
    );
    assert!(s.needs_browser());
    let e = err("name = \"x\"\n[[step]]\nname = \"b\"\naction = \"browse\"\nexpect = \"answer\"\n");
    assert!(
        e.contains("t.toml:5:10") && e.contains("\"seen-as ADDRESS\" or \"fail\""),
        "{e}"
    );
    let e = err(
        "name = \"x\"\n[[step]]\nname = \"b\"\naction = \"browse\"\nexpect = \"fail\"\nfrom = \"gw\"\n",
    );
    assert!(e.contains("from"), "{e}");
}

#[test]
fn an_unheard_check_names_known_services() {
    let s =
        ok("name = \"x\"\n[[step]]\nname = \"u\"\naction = \"unheard\"\nby = [\"home-router\"]\n");
    assert_eq!(
        s.steps[0].action,
        Action::Unheard {
            by: vec!["home-router".into()]
        }
    );
    let e = err("name = \"x\"\n[[step]]\nname = \"u\"\naction = \"unheard\"\nby = [\"router\"]\n");
    assert!(e.contains("unknown service \"router\""), "{e}");
    let e = err("name = \"x\"\n[[step]]\nname = \"u\"\naction = \"unheard\"\nby = []\n");
    assert!(e.contains("name at least one service"), "{e}");
}

#[test]
fn provider_resolver_becomes_the_service_the_variables_choose() {
    let s = ok(
        "name = \"x\"\n[[step]]\nname = \"q\"\naction = \"dns\"\nfrom = \"gw\"\nserver = \"system\"\nexpect = \"answer\"\nlogged-by = [\"provider-resolver\"]\nnot-logged-by = [\"isp-dns\", \"provider-resolver\"]\n[[step]]\nname = \"other\"\naction = \"dns\"\nfrom = \"gw\"\nserver = \"system\"\nexpect = \"answer\"\nlogged-by = [\"provider-dns\"]\n",
    );
    let resolved = s.steps[0].action.with_provider_resolver("provider-dot");
    let c = resolved.check().unwrap();
    assert_eq!(c.logged_by, ["provider-dot"]);
    assert_eq!(c.not_logged_by, ["isp-dns", "provider-dot"]);
    // An action that does not name it is the same action, not a copy.
    assert!(matches!(
        s.steps[1].action.with_provider_resolver("provider-dot"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert!(err(
        "name = \"x\"\n[[step]]\nname = \"q\"\naction = \"dns\"\nfrom = \"gw\"\nserver = \"system\"\nexpect = \"answer\"\nlogged-by = [\"provider-resolvr\"]\n"
    )
    .contains("unknown service \"provider-resolvr\""));
}

#[test]
fn via_is_read_as_its_enum_and_a_misspelt_one_is_refused_at_its_place() {
    for (word, via) in [("exit", Via::Exit), ("home", Via::Home), ("lan", Via::Lan)] {
        let s = ok(&format!(
            "name = \"x\"\n[[step]]\naction = \"forwarded-port\"\nvia = \"{word}\"\nexpect = \"answer\"\nprotocol = \"stand-in\"\n"
        ));
        assert_eq!(
            s.steps[0].action,
            Action::ForwardedPort {
                via,
                expect: Expect::Answer,
                bittorrent: false,
            }
        );
    }
    let e = err(
        "name = \"x\"\n[[step]]\naction = \"forwarded-port\"\nvia = \"exlt\"\nexpect = \"answer\"\n",
    );
    assert!(
        e.starts_with("t.toml:4:7: step 1 (forwarded-port): "),
        "{e}"
    );
    assert!(
        e.contains("exlt") && e.contains("exit") && e.contains("home") && e.contains("lan"),
        "{e}"
    );
}

#[test]
fn a_misspelt_placeholder_in_a_gateway_variable_is_refused_at_its_place() {
    let s = ok(
        "name = \"x\"\n[gateway.env]\nDOT_CA_FILE = \"{lab_ca}\"\nVPN_UP_COMMAND = \"/bin/sh -c 'echo {{VPN_INTERFACE}} ${HOME} >> {lab_dir}/hooks'\"\nFIREWALL_OUTBOUND_SUBNETS = \"{lan-out}/32\"\n[[step]]\naction = \"wait-handshake\"\n",
    );
    // Placeholders stay for the runner; roles are filled; Gluetun's own
    // double braces and the shell's are left alone.
    assert_eq!(s.gateway_env["DOT_CA_FILE"], "{lab_ca}");
    assert_eq!(
        s.gateway_env["VPN_UP_COMMAND"],
        "/bin/sh -c 'echo {{VPN_INTERFACE}} ${HOME} >> {lab_dir}/hooks'"
    );
    assert!(!s.gateway_env["FIREWALL_OUTBOUND_SUBNETS"].contains('{'));
    // `\t` before it: the column counts the file's characters, not the
    // value's.
    let e = err(
        "name = \"x\"\n[gateway.env]\nVPN_UP_COMMAND = \"a\\tb {{PORTS}} {lab_dir} {lab_dri}/x\"\n[[step]]\naction = \"wait-handshake\"\n",
    );
    assert!(
        e.starts_with("t.toml:3:44: gateway.env.VPN_UP_COMMAND: unknown placeholder {lab_dri}"),
        "{e}"
    );
    assert!(
        e.contains("lab_ca, lab_dir, port_commands") && e.contains("lan-in"),
        "{e}"
    );
    // A misspelt role is unknown too.
    let e = err(
        "name = \"x\"\n[gateway.env]\nFIREWALL_OUTBOUND_SUBNETS = \"{lan-ot}\"\n[[step]]\naction = \"wait-handshake\"\n",
    );
    assert!(
        e.starts_with("t.toml:3:30: ") && e.contains("{lan-ot}"),
        "{e}"
    );
}

#[test]
fn a_lower_metric_default_route_goes_below_or_ahead_of_the_lowest() {
    use super::MetricPlan;
    let home: std::net::IpAddr = "172.21.0.1".parse().unwrap();
    let other: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(MetricPlan::for_routes(&[], home, false), MetricPlan::Add(0));
    assert_eq!(
        MetricPlan::for_routes(&[], home, true),
        MetricPlan::Add(1024)
    );
    assert_eq!(
        MetricPlan::for_routes(&[(100, None), (50, Some(other))], home, false),
        MetricPlan::Below(49)
    );
    assert_eq!(
        MetricPlan::for_routes(&[(0, None)], home, false),
        MetricPlan::Ahead(0)
    );
    assert_eq!(
        MetricPlan::for_routes(&[(1024, None)], home, true),
        MetricPlan::Below(1023)
    );
    assert_eq!(
        MetricPlan::for_routes(&[(1, None)], home, true),
        MetricPlan::Ahead(1)
    );
    // Already via the home router at the lowest metric there is.
    assert_eq!(
        MetricPlan::for_routes(&[(0, Some(home)), (0, None)], home, false),
        MetricPlan::Already(0)
    );
    // Via the home router, but at a metric that can still go lower.
    assert_eq!(
        MetricPlan::for_routes(&[(10, Some(home))], home, false),
        MetricPlan::Below(9)
    );
}
