//! Proof that every scenario can fail: each test breaks the gateway from
//! outside (flushes its kill switch, deletes the egress filter, opens a port,
//! routes around the tunnel) once it has set itself up, and checks that the
//! scenario reports the fault, with the leaked packets named in the JUnit
//! failure. No fault switch exists inside the gateway. Needs root.

use crate::common::{FLUSH_KILL_SWITCH, Tamper, TestLab, assert_no_error, builtin, tampered};
use leakhound::report::junit;
use leakhound::scenario::runner::ScenarioResult;

async fn run_tampered(name: &str, tamper: Tamper) -> (ScenarioResult, String) {
    run_with(name, Some(tamper), &[]).await
}

/// Runs built-in scenario `name` in a fresh lab, with extra gateway
/// variables and damage; returns the result and its JUnit.
async fn run_with(
    name: &str,
    tamper: Option<Tamper>,
    env: &[(&str, String)],
) -> (ScenarioResult, String) {
    run_in(TestLab::new().await, name, tamper, env).await
}

/// Like [`run_with`], in a lab whose qBittorrent is the real one (the
/// swarm scenarios).
async fn run_torrent(
    name: &str,
    tamper: Option<Tamper>,
    env: &[(&str, String)],
) -> (ScenarioResult, String) {
    let (r, xml) = run_in(TestLab::with_real_qbittorrent().await, name, tamper, env).await;
    // It failed for the damage, not because qBittorrent never got going.
    let f = r.failures();
    assert!(
        !f.iter()
            .any(|(c, _)| c == "qBittorrent is given the run's torrent"),
        "{f:#?}"
    );
    (r, xml)
}

async fn run_in(
    t: TestLab,
    name: &str,
    tamper: Option<Tamper>,
    env: &[(&str, String)],
) -> (ScenarioResult, String) {
    let out = tempfile::tempdir().unwrap();
    let scn = match &tamper {
        Some(d) => tampered(builtin(name), d),
        None => builtin(name),
    };
    let r = t.runner(out.path(), env).run(&scn).await;
    t.finish();
    let xml = junit::render(std::slice::from_ref(&r));
    (r, xml)
}

/// Asserts that a case failed whose name is `case` (a trailing "…" matches
/// any name starting with the rest; "" any case) and whose failure message
/// contains every one of `says`.
fn assert_failed(r: &ScenarioResult, case: &str, says: &[&str]) {
    assert_no_error(r);
    let f = r.failures();
    let name_matches = |c: &str| {
        case.is_empty()
            || match case.strip_suffix('…') {
                Some(prefix) => c.starts_with(prefix),
                None => c == case,
            }
    };
    assert!(
        f.iter()
            .any(|(c, m)| name_matches(c) && says.iter().all(|s| m.contains(s))),
        "{}: no failed case {case:?} saying {says:?}: {f:#?}",
        r.name
    );
}

/// The scenario failed, its leak case on `wire` names leaked packets in the
/// JUnit failure, and one of them contains `packet`.
fn assert_leak_reported(r: &ScenarioResult, xml: &str, wire: &str, packet: &str) {
    assert_no_error(r);
    assert!(!r.passed(), "{} passed despite the tampering", r.name);
    let f = r.failures();
    let case = format!("no packet on {wire} is a leak");
    let (_, msg) = f
        .iter()
        .find(|(c, _)| *c == case)
        .unwrap_or_else(|| panic!("{case:?} did not fail: {f:#?}"));
    assert!(msg.contains("leaked on"), "{msg}");
    assert!(
        r.leaks
            .iter()
            .any(|l| l.wire == wire && l.packet.to_string().contains(packet)),
        "no leak containing {packet:?} on {wire}: {:#?}",
        r.leaks
    );
    let failure = &xml[xml.find(&format!("name=\"{case}\"")).unwrap()..];
    let failure = &failure[..failure.find("</testcase>").unwrap()];
    assert!(failure.contains("<failure"), "{failure}");
    assert!(
        failure.contains(packet),
        "the JUnit failure does not name {packet:?}: {failure}"
    );
}

/// Damage done with an nftables script in the gateway's namespace.
fn nft(script: &str) -> Tamper {
    Tamper {
        nft: Some(script.into()),
        ..Default::default()
    }
}

fn flush_and_route_around() -> Tamper {
    Tamper {
        route_around: true,
        ..nft(FLUSH_KILL_SWITCH)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_fails_when_traffic_goes_around_the_tunnel() {
    let (r, xml) = run_tampered("baseline", flush_and_route_around()).await;
    assert_failed(&r, "", &["whoami saw 198.51.100.2"]);
    assert_leak_reported(&r, &xml, "uplink", "198.51.100.2");
}

/// The scenario's `prove` step found a witness, and the wire showed it
/// leave on gw; the witness names `packet`.
fn assert_witness_confirmed(r: &ScenarioResult, packet: &str) {
    let f = r.failures();
    assert!(
        f.iter().any(
            |(c, m)| c.contains("the ruleset is proven to let nothing else out")
                && m.contains("a packet outside the policy leaves on eth0")
                && m.contains(packet)
        ),
        "{f:#?}"
    );
    assert!(
        f.iter()
            .any(|(c, m)| c.starts_with("prove, the witness on the wire")
                && m.contains("confirmed on the wire: gw:")),
        "{f:#?}"
    );
}

/// Without the netdev egress filter the scripted probes of
/// killswitch-tunnel-down still stay in (the output hook holds for them),
/// but `prove` finds what gets past: neighbour discovery's ICMPv6 types
/// to any address, which the output chain lets through for the egress
/// filter to narrow to the link. The wire shows the witness leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killswitch_tunnel_down_proves_the_hole_left_without_the_egress_filter() {
    let tamper = nft("delete table netdev leakhound_egress\n");
    let (r, _) = run_tampered("killswitch-tunnel-down", tamper).await;
    assert_witness_confirmed(&r, "ICMPv6 2001:db8:21::2 -> 2001:db8:80::80 type 133");
    assert!(
        !r.failures()
            .iter()
            .any(|(c, _)| c == "tunnel down: no HTTP over IPv4 to the internet"),
        "the output hook should still hold: {:#?}",
        r.failures()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killswitch_tunnel_down_fails_without_a_kill_switch() {
    let (r, xml) = run_tampered("killswitch-tunnel-down", nft(FLUSH_KILL_SWITCH)).await;
    assert_witness_confirmed(&r, "TCP ");
    assert_failed(&r, "", &["isp-dns received the query"]);
    assert_failed(&r, "", &["whoami received the request"]);
    assert_leak_reported(&r, &xml, "gw", "172.21.0.2");
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.80:80");
    // IPv6 leaks too, and DNS leaks are named by their query.
    assert!(
        r.leaks
            .iter()
            .any(|l| l.packet.src.is_some_and(|s| s.is_ipv6()) && l.wire == "gw"),
        "{:#?}",
        r.leaks
    );
    assert!(r.leaks.iter().any(|l| {
        l.packet
            .dns_name
            .as_deref()
            .is_some_and(|n| n.ends_with(".probe.lab."))
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killswitch_server_gone_fails_without_a_kill_switch() {
    let (r, xml) = run_tampered("killswitch-server-gone", nft(FLUSH_KILL_SWITCH)).await;
    assert_witness_confirmed(&r, "TCP ");
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.53:53");
    assert_failed(&r, "provider gone:…", &[]);
    assert_failed(&r, "WireGuard blocked:…", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killswitch_gateway_crash_fails_without_a_kill_switch() {
    let (r, xml) = run_tampered("killswitch-gateway-crash", nft(FLUSH_KILL_SWITCH)).await;
    assert_witness_confirmed(&r, "TCP ");
    assert_leak_reported(&r, &xml, "gw", "-> 192.0.2.80:80");
    assert_failed(
        &r,
        "gateway dead: no UDP to the internet",
        &["echo received the datagram from 198.51.100.2"],
    );
    assert_failed(
        &r,
        "gateway dead: DNS straight to the ISP resolver fails and never arrives",
        &["isp-dns received the query from 198.51.100.2"],
    );
    assert!(
        r.leaks
            .iter()
            .any(|l| l.step.starts_with("gateway dead") || l.step.contains("gateway dead:")),
        "no leak attributed to the crash's probes: {:#?}",
        r.leaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killswitch_startup_fails_when_startup_traffic_goes_around_the_tunnel() {
    let tamper = Tamper {
        after_step: Some("the gateway reports its kill switch closed".into()),
        ..flush_and_route_around()
    };
    let (r, xml) = run_tampered("killswitch-startup", tamper).await;
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.53:53");
    // The storm's own queries (storm<N>.probe.lab.) are what leaked, on
    // the home uplink, after the tamper.
    assert!(
        r.leaks.iter().any(|l| l.wire == "uplink"
            && l.packet
                .dns_name
                .as_deref()
                .is_some_and(|n| n.starts_with("storm"))),
        "{:#?}",
        r.leaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_leak_fails_when_ipv6_output_is_opened() {
    // Both layers: an IPv6 hole in the inet output chain alone is still
    // stopped by the netdev egress filter.
    let tamper = nft(
        "insert rule inet leakhound output meta nfproto ipv6 accept\ndelete table netdev leakhound_egress\n",
    );
    let (r, xml) = run_tampered("ipv6-leak", tamper).await;
    assert_leak_reported(&r, &xml, "gw", "2001:db8:21::2");
    // The SYN leaks (named above); the echo service proves UDP got out.
    assert_failed(&r, "no UDP over IPv6", &["echo received"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_tunnel_fails_when_ipv6_is_routed_around_the_tunnel() {
    let (r, _) = run_tampered(
        "ipv6-tunnel",
        Tamper {
            route_around: true,
            ..Default::default()
        },
    )
    .await;
    // The routes go around the tunnel and the kill switch refuses them:
    // the IPv6 exit is never reached.
    assert_failed(
        &r,
        "whoami sees the VPN's IPv6 exit",
        &["expected whoami to see 2001:db8:77::77, but the request failed"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_socket_leak_fails_without_the_egress_filter() {
    let tamper = nft("delete table netdev leakhound_egress\n");
    let (r, xml) = run_tampered("raw-socket-leak", tamper).await;
    assert_failed(&r, "", &["isp-dns received the raw frame"]);
    assert_leak_reported(&r, &xml, "gw", "DNS query");
}

/// Gluetun's own rule (`-d <vpnip> -o eth0 -p udp --dport <port> -j
/// ACCEPT`, no mark): any process may write to the endpoint's port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ip_fails_when_any_process_may_write_to_the_endpoints_port() {
    let tamper = nft(
        "insert rule inet leakhound output ip daddr 203.0.113.10 udp dport 51820 accept\n\
         insert rule netdev leakhound_egress egress ip daddr 203.0.113.10 udp dport 51820 accept\n",
    );
    let (r, xml) = run_tampered("server-ip", tamper).await;
    let plaintext = "UDP 172.21.0.2";
    assert_leak_reported(
        &r,
        &xml,
        "gw",
        "203.0.113.10:51820: not WireGuard: type byte",
    );
    assert_leak_reported(&r, &xml, "uplink", "203.0.113.10:51820: not WireGuard");
    assert!(
        r.leaks.iter().any(|l| l.wire == "gw"
            && l.packet.to_string().starts_with(plaintext)
            && l.step
                .contains("tunnel up: plaintext to the endpoint's WireGuard port")),
        "{:#?}",
        r.leaks
    );
    assert!(
        r.leaks.iter().any(|l| l
            .step
            .contains("tunnel down: plaintext to the endpoint's WireGuard port")),
        "{:#?}",
        r.leaks
    );
}

/// A gateway that honours a public outbound subnet, as Gluetun does: the
/// route and the accept rules for whoami's address that it would add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_net_fails_when_the_public_outbound_subnet_is_let_around_the_tunnel() {
    let tamper = Tamper {
        route_around: true,
        ..nft(
            "insert rule inet leakhound output ip daddr 192.0.2.80 accept\n\
             insert rule inet leakhound input ip saddr 192.0.2.80 accept\n\
             insert rule netdev leakhound_egress egress ip daddr 192.0.2.80 accept\n",
        )
    };
    let (r, xml) = run_tampered("local-net", tamper).await;
    assert_failed(
        &r,
        "whoami, inside the public outbound subnet, sees only the VPN exit",
        &["whoami saw 198.51.100.2"],
    );
    assert_failed(
        &r,
        "tunnel down: nothing reaches the public outbound subnet",
        &["answered"],
    );
    assert_leak_reported(&r, &xml, "uplink", "198.51.100.2");
    assert_leak_reported(&r, &xml, "gw", "-> 192.0.2.80:80");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_injection_fails_without_a_kill_switch() {
    let (r, xml) = run_tampered("route-injection", nft(FLUSH_KILL_SWITCH)).await;
    assert_leak_reported(&r, &xml, "uplink", "198.51.100.2");
    assert_leak_reported(&r, &xml, "gw", "-> 192.0.2.80:80");
    // Each injection leaks in its own phase: the lower metric before the
    // /1 routes are there.
    for phase in [
        "metric injected: HTTP over IPv4",
        "routes injected: HTTP over IPv4",
    ] {
        assert!(
            r.leaks.iter().any(|l| l.step.contains(phase)
                && l.wire == "gw"
                && l.packet.to_string().contains("-> 192.0.2.80:80")),
            "no leak in {phase:?}: {:#?}",
            r.leaks
        );
    }
}

/// A kill switch that lets IPv6 out, on a LAN without IPv6 until a rogue
/// router advertises it: the address the advertisement gave is the leak's
/// source, and nothing of IPv6 leaked before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_ra_fails_when_the_kill_switch_lets_ipv6_out() {
    let tamper = nft(
        "insert rule inet leakhound output meta nfproto ipv6 accept\n\
         insert rule netdev leakhound_egress egress meta protocol ip6 accept\n",
    );
    let (r, xml) = run_tampered("rogue-ra", tamper).await;
    assert_leak_reported(&r, &xml, "gw", "2001:db8:ad:");
    assert_failed(
        &r,
        "advertised: no UDP over IPv6",
        &["echo received the datagram from [2001:db8:ad:", "(a leak)"],
    );
    let v6: Vec<_> = r
        .leaks
        .iter()
        .filter(|l| l.packet.to_string().contains("2001:db8:"))
        .collect();
    assert!(
        // (Probes in a row run together: "3 probes waiting together: …".)
        v6.iter().all(|l| l.step.contains("advertised:")),
        "IPv6 leaked before the advertisement: {v6:#?}"
    );
    assert!(
        v6.iter()
            .any(|l| l.packet.to_string().contains("-> [2001:db8:80::80]:80")
                || l.packet.to_string().contains("-> 2001:db8:80::80")),
        "no leak to whoami over IPv6: {v6:#?}"
    );
}

/// Gluetun's `ESTABLISHED,RELATED ACCEPT` on any interface (#2621), in
/// both of the built-in gateway's layers (its egress filter cannot see
/// conntrack, so there it lets the tunnel's address out): the flows made
/// through the tunnel keep their source, and once the injected policy rule
/// sends them around the tunnel they leave in clear; new connections
/// (another source, no conntrack entry) stay refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_injection_fails_when_established_flows_may_leave_on_the_underlay() {
    let tamper = nft(
        "insert rule inet leakhound output ct state established accept\n\
         insert rule netdev leakhound_egress egress ip saddr 10.64.0.2 accept\n",
    );
    let (r, xml) = run_tampered("route-injection", tamper).await;
    assert_leak_reported(&r, &xml, "gw", "10.64.0.2:");
    assert_leak_reported(&r, &xml, "uplink", "198.51.100.2");
    // The UDP flow leaks during the policy rule's own phase (the lower
    // metric and the /1 routes before it already let the built-in
    // gateway's flows out: its tunnel routes sit in the main table); TCP,
    // in retransmit backoff by then, in whichever phase it retransmits.
    let flow_leak = |proto: &str, port: &str, phase: &str| {
        r.leaks.iter().any(|l| {
            let p = l.packet.to_string();
            l.wire == "gw"
                && l.step.contains(phase)
                && p.starts_with(proto)
                && p.contains("10.64.0.2:")
                && p.contains(&format!("-> 192.0.2.80{port}"))
        })
    };
    assert!(
        flow_leak("UDP", ":7", "rule injected: the flows made before"),
        "no UDP flow leak from the tunnel's address after the policy rule: {:#?}",
        r.leaks
    );
    assert!(
        flow_leak("TCP", ":80", ""),
        "no TCP flow leak from the tunnel's address: {:#?}",
        r.leaks
    );
    assert!(
        r.leaks
            .iter()
            .filter(|l| l.wire == "gw")
            .all(|l| l.packet.to_string().contains("10.64.0.2")),
        "only the flows made before may leak: {:#?}",
        r.leaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cve_2019_14899_fails_when_the_tunnel_address_is_open_on_the_underlay() {
    let tamper = nft(
        "insert rule inet leakhound input ip daddr 10.64.0.2 accept\ninsert rule inet leakhound output ip daddr 172.21.0.1 accept\n",
    );
    let (r, _) = run_tampered("cve-2019-14899", tamper).await;
    assert_failed(&r, "", &["CVE-2019-14899", "from 10.64.0.2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_matrix_fails_when_a_port_is_opened_to_the_denied_subnet() {
    let (r, xml) = run_tampered("lan-matrix", flush_and_route_around()).await;
    assert_failed(&r, "lan-other cannot reach qBittorrent (8080)", &[]);
    assert_failed(&r, "lan-media cannot reach NZBGet (6789)", &[]);
    assert_leak_reported(&r, &xml, "gw", "172.21.0.2:8080 -> 192.168.30.10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_subnets_fails_when_the_gateway_reaches_other_lans() {
    let (r, _) = run_tampered("outbound-subnets", nft(FLUSH_KILL_SWITCH)).await;
    // (The denied LAN has no route back from the home router: only the
    // two the router serves answer.)
    for case in [
        "the gateway cannot reach the admin LAN",
        "the gateway cannot reach the media LAN",
    ] {
        assert_failed(
            &r,
            case,
            &[
                "should have failed, but it was answered",
                "lan received the request from 172.21.0.2",
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_leak_fails_when_port_53_is_opened_around_the_gateways_resolver() {
    let tamper = nft(
        "insert rule inet leakhound output udp dport 53 accept\ninsert rule inet leakhound output tcp dport 53 accept\n",
    );
    let (r, _) = run_tampered("dns-leak", tamper).await;
    assert_failed(
        &r,
        "a query straight to the ISP resolver…",
        &["isp-dns received the query"],
    );
    assert_failed(
        &r,
        "a query straight to a LAN resolver…",
        &["lan-dns received the query"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_leak_names_the_leaked_query_on_the_wire() {
    let (r, xml) = run_tampered("dns-leak", flush_and_route_around()).await;
    assert_leak_reported(&r, &xml, "uplink", "DNS query");
    assert!(
        r.leaks.iter().any(|l| l.packet.dport == Some(53)
            && l.packet
                .dns_name
                .as_deref()
                .is_some_and(|n| n.ends_with(".probe.lab."))),
        "{:#?}",
        r.leaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_blocklist_fails_when_queries_bypass_the_gateways_resolver() {
    // A gateway without these protections: the namespace's queries go
    // straight to the provider, which answers everything.
    let tamper = Tamper {
        nft: Some("insert rule inet leakhound output udp dport 53 accept\n".into()),
        resolv_conf: Some("nameserver 10.64.0.1\n".into()),
        ..Default::default()
    };
    let (r, _) = run_tampered("dns-blocklist", tamper).await;
    for case in [
        "a malicious name is refused and never asked upstream",
        "a surveillance name is refused",
        "a DNS-over-HTTPS hostname answers NXDOMAIN",
        "a public name with a private address gets no address (rebinding)",
    ] {
        assert_failed(&r, case, &["expected the name not to resolve"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_bad_input_fails_when_the_resolver_dies_after_garbage() {
    // What a crash would look like from outside: after the garbage, the
    // resolver no longer answers.
    let tamper = Tamper {
        nft: Some("insert rule inet leakhound input iifname \"lo\" udp dport 53 drop\n".into()),
        after_step: Some("malformed messages to the gateway's resolver".into()),
        ..Default::default()
    };
    let (r, _) = run_tampered("dns-bad-input", tamper).await;
    let f = r.failures();
    assert!(
        f.iter().any(
            |(c, m)| c == "the resolver still answers, through the provider"
                && m.contains("expected an answer")
        ),
        "{f:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_dot_bypass_fails_when_443_and_853_are_let_through() {
    let tamper = nft("insert rule inet leakhound output tcp dport { 443, 853 } accept\n");
    let (r, _) = run_tampered("doh-dot-bypass", tamper).await;
    assert_failed(&r, "DoH by address…", &["doh received the query"]);
    assert_failed(&r, "DoT from a dependent…", &["dot received the query"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tls_fails_with_a_ca_that_did_not_sign_the_provider() {
    let other = leakhound::lab::tls::LabTls::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap();
    let (r, _) = run_with(
        "dns-over-tls",
        None,
        &[("DOT_CA_FILE", ca.display().to_string())],
    )
    .await;
    assert_failed(
        &r,
        "the system resolver answers, over TLS through the provider",
        &["provider-dot never received the query"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tls_fails_when_the_gateway_asks_in_plain_text() {
    let (r, _) = run_with(
        "dns-over-tls",
        None,
        &[
            ("DNS_UPSTREAM_RESOLVER_TYPE", "plain".into()),
            ("DNS_UPSTREAM_PLAIN_ADDRESSES", "10.64.0.1:53".into()),
        ],
    )
    .await;
    let f = r.failures();
    assert!(
        f.iter()
            .any(|(_, m)| m.contains("provider-dns received the query")
                || m.contains("provider-dot never received")),
        "{f:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_https_fails_when_a_dependents_doh_gets_through() {
    let tamper = nft("insert rule inet leakhound output tcp dport 443 accept\n");
    let (r, _) = run_tampered("dns-over-https", tamper).await;
    assert_failed(
        &r,
        "DoH from a dependent straight to the same server is still refused",
        &["doh received the query"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_https_fails_when_the_gateway_asks_in_plain_text() {
    let (r, _) = run_with(
        "dns-over-https",
        None,
        &[
            ("DNS_UPSTREAM_RESOLVER_TYPE", "plain".into()),
            ("DNS_UPSTREAM_PLAIN_ADDRESSES", "10.64.0.1:53".into()),
        ],
    )
    .await;
    assert_failed(
        &r,
        "the system resolver answers, over HTTPS through the tunnel",
        &["provider-dns received the query"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_plain_upstream_fails_when_port_53_is_opened_around_the_gateways_resolver() {
    let tamper = nft(
        "insert rule inet leakhound output udp dport 53 accept\ninsert rule inet leakhound output tcp dport 53 accept\n",
    );
    let (r, _) = run_tampered("dns-plain-upstream", tamper).await;
    assert_failed(
        &r,
        "a query straight to the provider's resolver, bypassing the gateway's, fails",
        &["provider-dns received the query"],
    );
    assert_failed(
        &r,
        "a query straight to the ISP resolver fails and never arrives",
        &["isp-dns received the query"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_plain_upstream_fails_when_blocked_addresses_are_let_through() {
    let (r, _) = run_with(
        "dns-plain-upstream",
        None,
        &[("DNS_BLOCK_IP_PREFIXES", String::new())],
    )
    .await;
    assert_failed(
        &r,
        "an answer holding a blocked address is refused, exempt name or not",
        &["expected the name not to resolve"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_upstream_failure_fails_when_the_gateway_falls_back_to_the_hosts_resolver() {
    // What a gateway that hands a failing upstream's queries to the
    // resolver the host wrote would look like from outside: the
    // namespace's queries go to the ISP's resolver (through the tunnel, so
    // the wires see no leak: the far end's log is the proof).
    let tamper = Tamper {
        nft: Some(
            "insert rule inet leakhound output udp dport 53 accept\ninsert rule inet leakhound output tcp dport 53 accept\n"
                .into(),
        ),
        resolv_conf: Some("nameserver 192.0.2.53\n".into()),
        ..Default::default()
    };
    let (r, _) = run_tampered("dns-upstream-failure", tamper).await;
    for case in [
        "the system resolver fails and no other resolver hears the query",
        "asked again, it fails again and still no other resolver hears it",
    ] {
        assert_failed(&r, case, &["isp-dns received the query"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_server_off_fails_without_a_kill_switch() {
    let (r, xml) = run_tampered("dns-server-off", flush_and_route_around()).await;
    assert_leak_reported(&r, &xml, "gw", "DNS query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_when_the_health_endpoint_is_cut_off() {
    let tamper = nft("insert rule inet leakhound input tcp dport 9999 drop\n");
    let (r, _) = run_tampered("health", tamper).await;
    assert_failed(
        &r,
        "the health endpoint says healthy",
        &["did not say healthy"],
    );
}

/// The failing check's reason, from the step that waited for "healthy".
fn unhealthy_because(r: &ScenarioResult) -> String {
    let f = r.failures();
    let (_, m) = f
        .iter()
        .find(|(c, _)| c == "the health endpoint says healthy")
        .unwrap_or_else(|| panic!("the health scenario did not fail where expected: {f:#?}"));
    assert!(m.contains("did not say healthy"), "{m}");
    m.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_when_the_pings_through_the_tunnel_go_unanswered() {
    // Nobody has 192.0.2.99: pings die at the far end, TLS still works.
    let (r, _) = run_with(
        "health",
        None,
        &[("HEALTH_ICMP_TARGET_IPS", "192.0.2.99".into())],
    )
    .await;
    let m = unhealthy_because(&r);
    assert!(
        m.contains("small check: 192.0.2.99: no ICMP echo reply"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_when_the_full_check_cannot_complete_its_tls_handshake() {
    // A CA that did not sign whoami.lab: TCP connects, pings answer, the
    // handshake must not pass.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(
        &other_ca,
        leakhound::lab::tls::LabTls::generate().unwrap().ca_pem,
    )
    .unwrap();
    let (r, _) = run_with(
        "health",
        None,
        &[("HEALTH_TARGET_CA_FILE", other_ca.display().to_string())],
    )
    .await;
    let m = unhealthy_because(&r);
    assert!(
        m.contains("full check: whoami.lab:443: TLS with 192.0.2.80"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_when_the_full_checks_target_port_is_closed() {
    let (r, _) = run_with(
        "health",
        None,
        &[("HEALTH_TARGET_ADDRESSES", "whoami.lab:444".into())],
    )
    .await;
    let m = unhealthy_because(&r);
    assert!(
        m.contains("full check: whoami.lab:444: TCP to 192.0.2.80"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_fails_when_the_gateway_never_restarts_its_tunnel() {
    let (r, _) = run_with("reconnect", None, &[("HEALTH_RESTART_VPN", "off".into())]).await;
    assert_failed(
        &r,
        "the gateway restarts its tunnel…",
        &["did not restart its tunnel"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_fails_when_the_gateway_cannot_reach_the_endpoint_again() {
    let tamper = Tamper {
        nft: Some("insert rule inet leakhound output udp dport 51820 drop\n".into()),
        after_step: Some("the provider stops answering".into()),
        ..Default::default()
    };
    let (r, _) = run_tampered("reconnect", tamper).await;
    assert_failed(
        &r,
        "the gateway is healthy again by itself",
        &["did not say healthy"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_auth_fails_when_every_route_is_public() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.toml");
    let routes: Vec<String> = leakhound::gateway::control_auth::ROUTES
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    std::fs::write(
        &open,
        format!(
            "[[roles]]\nname = \"everyone\"\nroutes = [{}]\nauth = \"none\"\n",
            routes.join(", ")
        ),
    )
    .unwrap();
    let (r, _) = run_with(
        "control-auth",
        None,
        &[(
            "HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH",
            open.display().to_string(),
        )],
    )
    .await;
    assert_failed(
        &r,
        "GET /v1/publicip/ip without credentials is refused",
        &["expected 401, got 200"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_port_fails_when_the_port_is_open_on_the_underlay() {
    let port = leakhound::lab::natpmp_server::FIRST_PORT;
    let tamper = Tamper {
        nft: Some(format!(
            "insert rule inet leakhound input iifname \"eth0\" tcp dport {port} accept\n\
             insert rule inet leakhound output oifname \"eth0\" tcp sport {port} accept\n"
        )),
        // Once the gateway has its port (it re-applies its kill switch then).
        after_step: Some(
            "a prober on the internet reaches the forwarded port at the VPN exit".into(),
        ),
        ..Default::default()
    };
    let (r, _) = run_tampered("forwarded-port", tamper).await;
    assert_failed(
        &r,
        "the same port from the LAN on eth0 is closed",
        &["answered at 172.21.0.2"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_port_fails_when_the_down_command_does_not_withdraw_the_port() {
    // A DOWN command that does nothing: the dependent would keep announcing
    // a port that no longer exists.
    let (r, _) = run_with(
        "forwarded-port",
        None,
        &[("VPN_PORT_FORWARDING_DOWN_COMMAND", "true".into())],
    )
    .await;
    let port = leakhound::lab::natpmp_server::FIRST_PORT;
    assert_failed(
        &r,
        "tunnel down: the DOWN command withdraws the port",
        &[
            "DOWN command did not run as expected",
            &format!("down {port} {port} wg0"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_port_refused_fails_when_the_gateway_cannot_ask_again() {
    // NAT-PMP cut off inside the gateway once the provider grants again: the
    // port must not appear from anywhere else.
    let tamper = Tamper {
        nft: Some("insert rule inet leakhound output udp dport 5351 drop\n".into()),
        after_step: Some("the provider grants ports again".into()),
        ..Default::default()
    };
    let (r, _) = run_with("forwarded-port-refused", Some(tamper), &[]).await;
    assert_failed(
        &r,
        "the gateway gets a port by itself and announces it",
        &["UP command did not run as expected"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_port_redirect_fails_when_the_redirect_is_gone() {
    // The nat rule removed once the port works; the reconnect keeps the same
    // port, so nothing puts it back.
    let tamper = Tamper {
        nft: Some("flush chain inet leakhound prerouting\n".into()),
        after_step: Some(
            "a prober on the internet reaches the dependent on 6881 through the forwarded port"
                .into(),
        ),
        ..Default::default()
    };
    let (r, _) = run_with("forwarded-port-redirect", Some(tamper), &[]).await;
    assert_failed(
        &r,
        "after the reconnect the redirect still reaches the dependent",
        &["did not answer at 203.0.113.77"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_restart_fails_when_the_new_gateway_cuts_the_dependents_off() {
    let tamper = Tamper {
        nft: Some("insert rule inet leakhound input tcp dport 8080 drop\n".into()),
        after_step: Some("the new gateway's handshake completes".into()),
        ..Default::default()
    };
    let (r, _) = run_tampered("gateway-restart", tamper).await;
    let f = r.failures();
    assert_failed(
        &r,
        "the admin LAN still reaches qBittorrent, which was not restarted",
        &["expected an answer"],
    );
    // Prowlarr's port was left alone: only the broken part fails.
    assert!(
        !f.iter()
            .any(|(c, _)| c == "the media LAN still reaches Prowlarr"),
        "{f:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_matrix_fails_when_the_control_server_is_open_to_the_lan() {
    let (r, _) = run_with(
        "lan-matrix",
        None,
        &[("FIREWALL_INPUT_PORTS", "8000".into())],
    )
    .await;
    let f = r.failures();
    assert_eq!(
        f.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["lan-admin cannot reach the gateway's control server (8000)"],
        "{f:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtu_fails_when_the_tunnel_takes_packets_bigger_than_1420() {
    // A tunnel MTU of 1500: the 1421-byte don't-fragment echo is no longer
    // refused, and WireGuard datagrams outgrow the underlay.
    let (r, _) = run_with("mtu", None, &[("WIREGUARD_MTU", "1500".into())]).await;
    assert_failed(
        &r,
        "a 1421-byte echo with don't-fragment is refused by the gateway's own stack",
        &["should have failed"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_fails_when_the_kill_switch_is_gone_around_the_switch() {
    // While the dependents send through the rotation, the kill switch is
    // flushed and the default routes point around the tunnel: their
    // traffic leaves on the uplink (the restarted tunnel takes the routes
    // back; what is left is the leak during the switch).
    let (r, xml) = run_tampered(
        "key-rotation",
        Tamper {
            after_step: Some("the dependents keep sending".into()),
            ..flush_and_route_around()
        },
    )
    .await;
    assert_leak_reported(&r, &xml, "uplink", "198.51.100.2");
    // Leaked after the tamper (which follows "the dependents keep
    // sending"), during the rotation's steps: never before it.
    let before = [
        "the WireGuard handshake completes on the first key",
        "traffic goes through the VPN exit",
    ];
    assert!(
        r.leaks.iter().all(|l| !before.contains(&l.step.as_str())),
        "{:#?}",
        r.leaks
    );
    assert!(
        r.leaks.iter().any(|l| l.wire == "uplink"
            && (l.step == "the lab issues a new key and tells the gateway"
                || l.step == "the WireGuard handshake completes on the new key"
                || l.step == "20 more rounds of traffic on the new key")),
        "{:#?}",
        r.leaks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_fails_when_the_gateway_keeps_its_old_key() {
    // The key pinned in WIREGUARD_PRIVATE_KEY: the gateway has no secret
    // file to read a new one from.
    let out = tempfile::tempdir().unwrap();
    let t = TestLab::new().await;
    let pinned = leakhound::tunnel::encode_key(&t.services.keys.client_private);
    let r = t
        .runner(out.path(), &[("WIREGUARD_PRIVATE_KEY", pinned)])
        .run(&builtin("key-rotation"))
        .await;
    t.finish();
    assert_failed(
        &r,
        "the lab issues a new key and tells the gateway",
        &["409"],
    );
    assert_failed(&r, "the WireGuard handshake completes on the new key", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_mapping_requests_fails_when_the_home_router_can_be_asked() {
    // Without the kill switch a dependent's PCP request reaches the home
    // router: the far end logs it, and the capture names it a leak although
    // 172.21.0.0/16 is an allowed subnet.
    let (r, xml) = run_tampered("port-mapping-requests", nft(FLUSH_KILL_SWITCH)).await;
    assert_failed(
        &r,
        "a port mapping request to the home router (IPv4) gets nothing",
        &["home-router received"],
    );
    assert_failed(
        &r,
        "tunnel stopped, routes around it: a UPnP discovery (SSDP) never reaches the home router",
        &["home-router received"],
    );
    assert_failed(
        &r,
        "the home router (answering NAT-PMP and UPnP) heard nothing…",
        &["home-router heard from 172.21.0.2"],
    );
    assert_leak_reported(&r, &xml, "gw", "172.21.0.1:5351");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrent_through_tunnel_fails_when_the_swarm_is_reached_around_the_tunnel() {
    // No kill switch and the routes around the tunnel: qBittorrent's
    // announces and peer connections leave from the home address, and the
    // far end says so.
    let (r, xml) = run_torrent(
        "torrent-through-tunnel",
        Some(flush_and_route_around()),
        &[],
    )
    .await;
    assert_failed(
        &r,
        "the tracker and the seeder saw only the VPN exit address",
        &["the tracker saw an announce from 198.51.100.2"],
    );
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.69:6969");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrent_killswitch_fails_without_a_kill_switch() {
    // The kill switch gone before the tunnel dies: the announce qBittorrent
    // is asked for mid-download reaches the tracker from the home address.
    let (r, xml) = run_torrent("torrent-killswitch", Some(nft(FLUSH_KILL_SWITCH)), &[]).await;
    assert_failed(
        &r,
        "tunnel down: an announce qBittorrent is asked for never reaches the tracker",
        &["an announce reached the tracker from 198.51.100.2"],
    );
    // qBittorrent at its defaults asks the home router to expose it.
    assert_failed(
        &r,
        "the home router never heard from qBittorrent…",
        &["home-router heard from 172.21.0.2"],
    );
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.69:6969");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrent_forwarded_port_fails_when_the_gateway_drops_the_forwarded_port() {
    // The kill switch drops the forwarded port on the tunnel once
    // qBittorrent has it: no peer on the internet gets a handshake.
    let port = leakhound::lab::natpmp_server::FIRST_PORT;
    let tamper = Tamper {
        nft: Some(format!(
            "insert rule inet leakhound input tcp dport {port} drop\n"
        )),
        after_step: Some(
            "the UP command set qBittorrent's listening port to the forwarded port".into(),
        ),
        ..Default::default()
    };
    let (r, _) = run_torrent("torrent-forwarded-port", Some(tamper), &[]).await;
    assert_failed(
        &r,
        "a peer on the internet handshakes with qBittorrent at the VPN exit",
        &["did not handshake", "203.0.113.77"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torrent_forwarded_port_fails_when_the_up_command_does_nothing() {
    // An UP command that does not reach qBittorrent: it keeps its own port.
    let (r, _) = run_torrent(
        "torrent-forwarded-port",
        None,
        &[("VPN_PORT_FORWARDING_UP_COMMAND", "true".into())],
    )
    .await;
    assert_failed(
        &r,
        "the UP command set qBittorrent's listening port to the forwarded port",
        &["did not follow the forwarded port"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usenet_through_tunnel_fails_when_the_news_server_is_reached_around_the_tunnel() {
    // No kill switch, the routes around the tunnel and the ISP's resolver:
    // NZBGet fetches its articles from the home address, and the news
    // server says so.
    let tamper = Tamper {
        resolv_conf: Some("nameserver 192.0.2.53\n".into()),
        ..flush_and_route_around()
    };
    let (r, xml) = run_in(
        TestLab::with_real_nzbget().await,
        "usenet-through-tunnel",
        Some(tamper),
        &[],
    )
    .await;
    assert!(
        !r.failures()
            .iter()
            .any(|(c, _)| c == "NZBGet is given the run's NZB"),
        "{:#?}",
        r.failures()
    );
    assert_failed(
        &r,
        "the news server saw only the VPN exit address",
        &["from 198.51.100.2"],
    );
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.80:563");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_mapping_requests_fails_when_raw_frames_pass_the_underlay() {
    // An egress filter that lets port mapping requests to the allowed
    // subnets through (as it did before it refused them): a request written
    // straight to eth0 passes the output chain's refusal and reaches the
    // home router.
    let (r, xml) = run_tampered(
        "port-mapping-requests",
        nft("insert rule netdev leakhound_egress egress udp dport 5351 accept\n"),
    )
    .await;
    assert_failed(
        &r,
        "a port mapping request written straight to eth0 (a raw socket) never reaches the home router",
        &["home-router received"],
    );
    assert_leak_reported(&r, &xml, "gw", "172.21.0.1:5351");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_leaks_fails_without_a_kill_switch() {
    // No kill switch, the routes around the tunnel and the ISP's resolver:
    // Byparr's stand-in is seen from the home address by whoami, the STUN
    // server (WebRTC tells the page so) and the QUIC listener.
    let tamper = Tamper {
        resolv_conf: Some("nameserver 192.0.2.53\n".into()),
        ..flush_and_route_around()
    };
    let (r, xml) = run_tampered("browser-leaks", tamper).await;
    assert_failed(
        &r,
        "the browser's page, WebRTC and QUIC…",
        &[
            "saw the browser as 198.51.100.2",
            "WebRTC told the page the public address 198.51.100.2",
            "QUIC on UDP 443 arrived from 198.51.100.2",
        ],
    );
    assert_failed(
        &r,
        "tunnel down: nothing of the browser's…",
        &[
            "should have failed",
            "a STUN request arrived from 198.51.100.2",
        ],
    );
    assert_leak_reported(&r, &xml, "uplink", "-> 192.0.2.80:3478");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_leaks_fails_when_the_browsers_own_doh_gets_through() {
    // HTTPS and QUIC let through to any address: the browser's own DoH
    // reaches the lab's DoH server (through the tunnel) and resolves the
    // page's names past the gateway's resolver and its blocklists.
    let (r, _) = run_tampered(
        "browser-leaks",
        nft("insert rule inet leakhound output meta l4proto { tcp, udp } th dport 443 accept\n"),
    )
    .await;
    assert_failed(
        &r,
        "the browser's page, WebRTC and QUIC…",
        &["the DoH server got a query from 203.0.113.77"],
    );
}

/// The growth check can fail: asked for far more than crossed the tunnel,
/// the byte counters fall short, and the scenario says by how much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_metrics_fails_when_the_counters_fall_short_of_the_traffic() {
    let mut scn = builtin("bandwidth-metrics");
    for s in &mut scn.steps {
        if let leakhound::scenario::model::Action::Control { grows, .. } = &mut s.action {
            for g in grows.iter_mut() {
                g.1 = 1 << 30;
            }
        }
    }
    let t = TestLab::new().await;
    let out = tempfile::tempdir().unwrap();
    let r = t.runner(out.path(), &[]).run(&scn).await;
    t.finish();
    assert_failed(
        &r,
        "the tunnel's byte counters grew by at least the datagram, both ways",
        &["less than 1073741824"],
    );
}

/// The gateway's metrics read the kill switch back from the kernel: with
/// it flushed from outside, they say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_metrics_fails_when_the_kill_switch_is_flushed() {
    let (r, _) = run_tampered("bandwidth-metrics", nft(FLUSH_KILL_SWITCH)).await;
    assert_failed(
        &r,
        "the gateway's metrics say its kill switch is in the kernel as installed",
        &["does not contain", "leakhound_gateway_kill_switch_intact 0"],
    );
}
