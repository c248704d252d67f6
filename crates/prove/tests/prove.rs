//! The engine on the built-in gateway's own ruleset (read from a lab run
//! with `nft -j list ruleset`) and on that ruleset broken in known ways:
//! the proof holds for the first, and each break gives a witness of its
//! own kind, or "cannot prove" for what the model does not know.

use leakhound_prove::{Answer, Forwarding, Path, Policy, Ruleset, links_from_ip_json, prove};
use serde_json::{Value, json};

const BUILTIN: &str = include_str!("data/builtin-ruleset.json");
const BUILTIN_TEXT: &str = include_str!("data/builtin-ruleset.txt");
const ADDR: &str = include_str!("data/builtin-addr.json");

fn policy() -> Policy {
    Policy {
        endpoints: vec![("203.0.113.10".parse().unwrap(), 51820)],
        allow: [
            "172.21.0.0/16",
            "172.20.0.0/16",
            "192.168.10.0/24",
            "192.168.40.0/24",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect(),
    }
}

const FWD: Forwarding = Forwarding {
    v4: true,
    v6: false,
};

fn answer(rs: &Value) -> Answer {
    let mut rs = Ruleset::from_json(&rs.to_string()).unwrap();
    rs.devices_from_text(BUILTIN_TEXT);
    let links = links_from_ip_json(ADDR, "eth0").unwrap();
    prove(&rs, &links, &policy(), FWD)
}

fn builtin() -> Value {
    serde_json::from_str(BUILTIN).unwrap()
}

fn items(v: &mut Value) -> &mut Vec<Value> {
    v["nftables"].as_array_mut().unwrap()
}

/// Puts `expr` as a rule first in chain `chain` of table `family table`.
fn insert_rule(v: &mut Value, family: &str, table: &str, chain: &str, expr: Value) {
    let at = items(v)
        .iter()
        .position(|i| {
            i.get("rule").is_some_and(|r| {
                r["family"] == family && r["table"] == table && r["chain"] == chain
            })
        })
        .unwrap_or(items(v).len());
    items(v).insert(
        at,
        json!({"rule": {"family": family, "table": table, "chain": chain, "handle": 999, "expr": expr}}),
    );
}

fn witness(a: &Answer) -> &leakhound_prove::Packet {
    match a {
        Answer::Witness { packet, .. } => packet,
        other => panic!("no witness: {other:#?}"),
    }
}

#[test]
fn the_builtin_gateways_ruleset_is_proven() {
    let a = answer(&builtin());
    assert!(a.is_proof(), "{a:#?}");
    let Answer::Proof { assumptions } = a else {
        unreachable!()
    };
    assert!(
        assumptions
            .iter()
            .any(|s| s.contains("conntrack state treated as any"))
    );
    assert!(
        assumptions
            .iter()
            .any(|s| s.contains("forwarding is on for IPv4"))
    );
}

#[test]
fn without_any_ruleset_the_first_packet_is_a_witness() {
    let a = answer(&json!({"nftables": []}));
    let p = witness(&a);
    assert_eq!(p.path, Path::Output);
    assert_eq!(
        p.to_string(),
        "TCP 172.21.0.2:40000 -> 192.0.2.80:80 flags 0x02, ct state new, mark 0; sent by a process in the namespace"
    );
}

fn without_egress(v: &mut Value) {
    items(v).retain(|i| {
        !["table", "chain", "rule"].iter().any(|k| {
            i.get(*k)
                .is_some_and(|o| o["family"] == "netdev" || o["table"] == "leakhound_egress")
        })
    });
}

#[test]
fn without_the_egress_filter_what_only_it_held_back_leaks() {
    let mut v = builtin();
    without_egress(&mut v);
    // The output chain lets ICMPv6 housekeeping out from any source; only
    // the egress filter held it to link-local ones.
    let p = witness(&answer(&v)).clone();
    assert_eq!(p.path, Path::Output, "{p}");
    assert_eq!(p.l4, 58, "{p}");
    assert!(!p.saddr.to_string().starts_with("fe80"), "{p}");
}

#[test]
fn a_strict_output_chain_without_an_egress_filter_leaks_raw_frames() {
    let mut v = builtin();
    without_egress(&mut v);
    items(&mut v).retain(|i| i.get("rule").is_none_or(|r| r["chain"] != "output"));
    let p = witness(&answer(&v)).clone();
    assert_eq!(p.path, Path::Raw, "{p}");
    assert_eq!(
        p.to_string(),
        "TCP 172.21.0.2:40000 -> 192.0.2.80:80 flags 0x02, ct state invalid, mark 0; written to the underlay as a raw frame (AF_PACKET)"
    );
}

/// A frame written past the IP stack has no conntrack entry: an egress
/// rule that accepts established packets does not let raw frames out (nft
/// reads their state as invalid), while the IP stack's established
/// packets pass both hooks.
#[test]
fn a_raw_frame_is_never_established() {
    let mut v = builtin();
    let est = json!([
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "established"}},
        {"accept": null}
    ]);
    insert_rule(&mut v, "netdev", "leakhound_egress", "egress", est);
    let mut rs = Ruleset::from_json(&v.to_string()).unwrap();
    rs.devices_from_text(BUILTIN_TEXT);
    let links = links_from_ip_json(ADDR, "eth0").unwrap();
    let all = leakhound_prove::witnesses(&rs, &links, &policy(), FWD).unwrap();
    // The output chain's established packets that only the egress filter
    // narrowed leak now (ICMPv6 housekeeping to any address); no frame.
    assert!(
        all.iter().all(|p| p.path != Path::Raw),
        "{:#?}",
        all.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    assert!(all.iter().any(|p| p.ct_state == "established"), "{all:#?}");
    let mut v = builtin();
    let any = json!([
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}},
        {"accept": null}
    ]);
    insert_rule(&mut v, "netdev", "leakhound_egress", "egress", any);
    let mut rs = Ruleset::from_json(&v.to_string()).unwrap();
    rs.devices_from_text(BUILTIN_TEXT);
    let all = leakhound_prove::witnesses(&rs, &links, &policy(), FWD).unwrap();
    let raw = all
        .iter()
        .find(|p| p.path == Path::Raw)
        .unwrap_or_else(|| panic!("no raw frame through `ct state invalid`: {all:#?}"));
    assert_eq!(raw.ct_state, "invalid", "{raw}");
}

#[test]
fn an_accept_for_established_traffic_leaks_established_packets() {
    let mut v = builtin();
    let est = json!([
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "established"}},
        {"accept": null}
    ]);
    insert_rule(&mut v, "inet", "leakhound", "output", est.clone());
    insert_rule(&mut v, "netdev", "leakhound_egress", "egress", est);
    let p = witness(&answer(&v)).clone();
    assert_eq!(p.ct_state, "established", "{p}");
    assert_eq!(p.path, Path::Output);
    // An ACK: what conntrack takes as part of an established connection.
    assert_eq!(p.tcp_flags, Some(0x10), "{p}");
}

#[test]
fn an_ipv6_hole_gives_an_ipv6_witness() {
    let mut v = builtin();
    let ip6 = json!([
        {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}},
        {"accept": null}
    ]);
    insert_rule(&mut v, "inet", "leakhound", "output", ip6);
    let eg = json!([
        {"match": {"op": "==", "left": {"meta": {"key": "protocol"}}, "right": "ip6"}},
        {"accept": null}
    ]);
    insert_rule(&mut v, "netdev", "leakhound_egress", "egress", eg);
    let p = witness(&answer(&v)).clone();
    assert!(p.daddr.is_ipv6(), "{p}");
    assert_eq!(p.daddr.to_string(), "2001:db8:80::80");
}

#[test]
fn one_dscp_class_let_through_is_found() {
    let mut v = builtin();
    let dscp = |proto: &str| {
        json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dscp"}}, "right": 46}},
            {"accept": null}
        ])
    };
    insert_rule(&mut v, "inet", "leakhound", "output", dscp("ip"));
    insert_rule(&mut v, "netdev", "leakhound_egress", "egress", dscp("ip"));
    let p = witness(&answer(&v)).clone();
    assert_eq!(p.dscp, 46, "{p}");
}

#[test]
fn an_expression_the_model_does_not_know_is_cannot_prove_never_a_pass() {
    let mut v = builtin();
    insert_rule(
        &mut v,
        "inet",
        "leakhound",
        "output",
        json!([{"xt": {"type": "target", "name": "MARK"}}]),
    );
    match answer(&v) {
        Answer::Cannot(c) => {
            assert!(c.rule.contains("chain output handle 999"), "{c}");
            assert!(c.why.contains("iptables target"), "{c}");
        }
        other => panic!("{other:#?}"),
    }
    let mut v = builtin();
    insert_rule(
        &mut v,
        "inet",
        "leakhound",
        "output",
        json!([{"meta": {"key": "secpath"}}, {"accept": null}]),
    );
    assert!(matches!(answer(&v), Answer::Cannot(_)));
}

/// iptables-nft's conntrack match (Gluetun's `ESTABLISHED,RELATED
/// ACCEPT`) shows in nft's JSON without its states: taken both ways, it
/// gives a witness, and the answer names it.
#[test]
fn an_iptables_match_without_its_meaning_is_taken_both_ways_and_named() {
    let mut v = builtin();
    let xt = json!([{"xt": {"type": "match", "name": "conntrack"}}, {"accept": null}]);
    insert_rule(&mut v, "inet", "leakhound", "output", xt.clone());
    insert_rule(&mut v, "netdev", "leakhound_egress", "egress", xt);
    match answer(&v) {
        Answer::Witness {
            assumptions,
            packet,
        } => assert!(
            assumptions.iter().any(|a| a
                .contains("xt match conntrack at table inet leakhound chain output handle 999")),
            "{packet} {assumptions:#?}"
        ),
        other => panic!("{other:#?}"),
    }
}

#[test]
fn a_rule_no_packet_reaches_does_not_stop_the_proof() {
    let mut v = builtin();
    // After the endpoint rule, only for the endpoint: behind an accept.
    let unreachable = json!([
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "nothere0"}},
        {"xt": {"type": "match", "name": "owner"}},
        {"accept": null}
    ]);
    insert_rule(&mut v, "inet", "leakhound", "output", unreachable);
    assert!(answer(&v).is_proof());
}

/// Gluetun's own firewall as the Gluetun-faithful reference writes it
/// (iptables-nft; read from a lab run): its `ESTABLISHED,RELATED ACCEPT`
/// shows as an xt match without its states, so the witness rests on it,
/// and the answer says so.
#[test]
fn the_gluetun_faithful_ruleset_has_a_witness_through_its_conntrack_accept() {
    let mut rs = Ruleset::from_json(include_str!("data/gluetun-faithful-ruleset.json")).unwrap();
    rs.devices_from_text(include_str!("data/gluetun-faithful-ruleset.txt"));
    let links =
        links_from_ip_json(include_str!("data/gluetun-faithful-addr.json"), "eth0").unwrap();
    match prove(&rs, &links, &policy(), Forwarding::default()) {
        Answer::Witness {
            packet,
            assumptions,
        } => {
            assert_eq!(packet.path, Path::Output, "{packet}");
            assert!(
                assumptions
                    .iter()
                    .any(|a| a.starts_with("xt match conntrack at table ip filter chain OUTPUT")),
                "{assumptions:#?}"
            );
        }
        other => panic!("{other:#?}"),
    }
}
