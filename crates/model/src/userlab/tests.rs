use super::*;
use crate::topology::is_lab_address;
use std::net::IpAddr;

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn tcp(ports: &[u16]) -> Vec<Published> {
    ports
        .iter()
        .map(|&p| Published {
            published: p,
            target: p,
            udp: false,
            host_only: false,
        })
        .collect()
}

fn open_cells(l: &UserLab) -> Vec<(String, u16)> {
    l.matrix
        .iter()
        .filter(|c| c.open)
        .map(|c| (c.lan.clone(), c.port))
        .collect()
}

#[test]
fn the_seed_file_makes_the_default_lab_and_its_matrix() {
    let outbound = nets(&["172.21.0.0/16", "172.20.0.0/16"]);
    let subnet_ports = vec![
        ("192.168.10.0/24".parse().unwrap(), vec![8080, 9696, 6789]),
        ("192.168.40.0/24".parse().unwrap(), vec![8080, 9696]),
    ];
    let mut published = tcp(&[8080, 9696, 6789]);
    published.push(Published {
        published: 51820,
        target: 51820,
        udp: true,
        host_only: false,
    });
    let l = plan(&UserFirewall {
        outbound_subnets: &outbound,
        input_ports: &[],
        subnet_ports: &subnet_ports,
        published: &published,
    })
    .unwrap();
    let names: Vec<&str> = l.lans.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["homelab", "lan-admin", "lan-media", "lan-other"]);
    let homelab = &l.lans[0];
    assert_eq!(homelab.host, Ipv4Addr::new(172, 20, 0, 10));
    assert_eq!(homelab.router, Ipv4Addr::new(172, 20, 0, 1));
    assert_eq!(homelab.ifname, "homelab");
    assert_eq!(l.ports, [6789, 8080, 9696]);
    assert_eq!(l.reachable, ["home", "homelab"]);
    let s = |n: &str, p| (n.to_string(), p);
    assert_eq!(
        open_cells(&l),
        [
            s("lan-admin", 6789),
            s("lan-admin", 8080),
            s("lan-admin", 9696),
            s("lan-media", 8080),
            s("lan-media", 9696),
        ]
    );
    assert_eq!(l.matrix.len(), 12);
    assert!(l.notes.iter().any(|n| n.contains("51820/udp")));
    let denied = l.matrix.iter().find(|c| c.lan == "lan-other").unwrap();
    assert!(denied.why.contains("denied LAN"));
}

#[test]
fn another_file_makes_other_lans_and_published_ports_open_to_outbound_ones() {
    let outbound = nets(&["10.10.0.0/24", "192.168.30.0/24", "fd00:1::/64"]);
    let published = tcp(&[8080, 3000]);
    let l = plan(&UserFirewall {
        outbound_subnets: &outbound,
        input_ports: &[9000],
        subnet_ports: &[],
        published: &published,
    })
    .unwrap();
    let lans: Vec<(&str, String)> = l
        .lans
        .iter()
        .map(|l| (l.name.as_str(), l.subnet.to_string()))
        .collect();
    // 192.168.30.0/24 is the user's here: the denied LAN moves.
    assert_eq!(
        lans,
        [
            ("lan-1", "10.10.0.0/24".to_string()),
            ("lan-other", "192.168.30.0/24".to_string()),
            ("lan-denied", "192.168.99.0/24".to_string()),
        ]
    );
    assert_eq!(l.lans[0].ifname, "lan1");
    assert_eq!(
        l.lans[1].roles,
        Some(Roles {
            outbound: true,
            inbound: false
        })
    );
    assert_eq!(l.lans[2].roles, None);
    let s = |n: &str, p| (n.to_string(), p);
    assert_eq!(
        open_cells(&l),
        [
            s("lan-1", 3000),
            s("lan-1", 8080),
            s("lan-1", 9000),
            s("lan-other", 3000),
            s("lan-other", 8080),
            s("lan-other", 9000),
        ]
    );
    assert!(l.notes.iter().any(|n| n.contains("fd00:1::/64")));
    assert_eq!(l.reachable, ["lan-1", "lan-other"]);
}

#[test]
fn subnets_that_overlap_the_lab_are_refused_naming_both() {
    let refuse = |s: &str| {
        let outbound = nets(&[s]);
        plan(&UserFirewall {
            outbound_subnets: &outbound,
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        refuse("203.0.113.0/25"),
        "FIREWALL_OUTBOUND_SUBNETS: 203.0.113.0/25 overlaps 203.0.113.0/24 (the lab's VPN provider): choose a subnet outside it"
    );
    assert!(refuse("10.0.0.0/8").contains("10.64.0.0/16"));
    assert!(refuse("172.21.5.0/24").contains("the gateway's own network"));
    assert!(refuse("0.0.0.0/0").contains("overlaps 192.0.2.0/24"));
    assert!(refuse("96.0.0.0/4").contains("not a private subnet"));
    assert!(refuse("100.64.0.0/10").contains("not a private subnet"));
}

#[test]
fn a_small_subnet_gets_its_first_addresses() {
    let outbound = nets(&["192.168.5.8/29"]);
    let l = plan(&UserFirewall {
        outbound_subnets: &outbound,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(l.lans[0].router, Ipv4Addr::new(192, 168, 5, 9));
    assert_eq!(l.lans[0].host, Ipv4Addr::new(192, 168, 5, 10));
    // No ports at all: nothing to probe, still a denied LAN.
    assert!(l.matrix.is_empty());
    assert_eq!(l.lans.len(), 2);
}

#[test]
fn the_made_scenarios_parse_against_the_made_lab_and_follow_the_plan() {
    use crate::scenario::{Action, Expect};
    use crate::topology::Topology;
    let outbound = nets(&["10.10.0.0/24", "172.21.0.0/16"]);
    let subnet_ports = vec![("10.20.0.0/24".parse().unwrap(), vec![3000])];
    let published = tcp(&[3000, 8080]);
    let p = plan(&UserFirewall {
        outbound_subnets: &outbound,
        input_ports: &[],
        subnet_ports: &subnet_ports,
        published: &published,
    })
    .unwrap();
    let topo = Topology::with_lans(&p);
    let m = crate::scenario::parse(
        "made:lan-matrix",
        &lan_matrix_toml(&p, "my \"compose\".yml"),
        &topo,
    )
    .unwrap();
    let probes: Vec<(String, String, bool)> = m
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Http {
                from,
                target,
                check,
                ..
            } => Some((
                from.clone(),
                target.to_string(),
                check.expect == Expect::Answer,
            )),
            _ => None,
        })
        .collect();
    let want = |f: &str, port: u16, open: bool| (f.to_string(), format!("172.21.0.2:{port}"), open);
    assert_eq!(
        probes,
        [
            // 10.10.0.0/24: outbound only, and FIREWALL_INPUT_SUBNET_PORTS is
            // set, so publishing alone opens nothing to it.
            want("lan-2", 3000, true),
            want("lan-1", 3000, false),
            want("lan-1", 8080, false),
            want("lan-2", 8080, false),
            want("lan-other", 3000, false),
            want("lan-other", 8080, false),
            want("lan-1", 8000, false),
        ]
    );
    let o = crate::scenario::parse("made:outbound-subnets", &outbound_toml(&p, "c.yml"), &topo)
        .unwrap();
    let probes: Vec<(String, bool)> = o
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Http { target, check, .. } => {
                Some((target.to_string(), check.expect == Expect::Answer))
            }
            _ => None,
        })
        .collect();
    let w = |t: &str, a: bool| (t.to_string(), a);
    assert_eq!(
        probes,
        [
            w("172.21.0.1:80", true),
            w("10.10.0.10:80", true),
            w("10.20.0.10:80", false),
            w("192.168.30.10:80", false),
        ]
    );
}

#[test]
fn the_labs_variables_replace_the_users_and_later_ones_win() {
    use crate::userconf::{Value, Var, parse_env_file};
    let vars = parse_env_file(
        "gluetun.env",
        "WIREGUARD_PRIVATE_KEY=bXktcmVhbC1rZXk=\nSERVER_COUNTRIES=Sweden\nTZ=Europe/Berlin\nFIREWALL_OUTBOUND_SUBNETS=10.0.0.0/24\nDOT=on\n",
    )
    .unwrap();
    let mut all = vars.clone();
    all.push(Var {
        key: "FIREWALL_OUTBOUND_SUBNETS".into(),
        value: Value::Plain("10.10.0.0/24".into()),
        line: None,
    });
    let e = split_env(&all);
    assert_eq!(e.replaced, ["WIREGUARD_PRIVATE_KEY", "SERVER_COUNTRIES"]);
    assert_eq!(e.inert, ["TZ"]);
    let kept: Vec<(&str, &str)> = e
        .kept
        .iter()
        .map(|v| (v.key.as_str(), v.value.expose()))
        .collect();
    assert_eq!(
        kept,
        [("DOT", "on"), ("FIREWALL_OUTBOUND_SUBNETS", "10.10.0.0/24")]
    );
    assert!(is_off("Off") && is_off("") && !is_off("on"));
}

#[test]
fn roles_follow_the_plan_and_a_missing_one_is_an_error_at_its_place() {
    use crate::topology::Topology;
    let outbound = nets(&["10.10.0.0/24", "10.30.0.0/16"]);
    let published = tcp(&[3000]);
    let p = plan(&UserFirewall {
        outbound_subnets: &outbound,
        published: &published,
        ..Default::default()
    })
    .unwrap();
    let get = |k: &str| {
        p.roles
            .iter()
            .find(|(r, _)| r == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("lan-in"), Some("lan-1"));
    assert_eq!(get("lan-in-port"), Some("3000"));
    assert_eq!(get("lan-in-app"), Some("the service on port 3000"));
    assert_eq!(get("lan-in2"), Some("lan-2"));
    assert_eq!(get("lan-out"), Some("10.10.0.10"));
    assert_eq!(get("lan-dns"), Some("10.10.0.10"));
    assert_eq!(get("lan-out-name"), Some("lan-1 (10.10.0.0/24)"));
    let text = "name = \"x\"\n[[step]]\nname = \"a\"\naction = \"http\"\nfrom = \"{lan-in}\"\ntarget = \"172.21.0.2:{lan-in-port}\"\nexpect = \"answer\"\n";
    let s = crate::scenario::parse("x.toml", text, &Topology::with_lans(&p)).unwrap();
    assert!(
        matches!(&s.steps[0].action, crate::scenario::Action::Http { from, target, .. }
        if from == "lan-1" && target.port() == 3000)
    );
    // No published port: no LAN reaches a dependent, so no `{lan-in}`.
    let bare = plan(&UserFirewall {
        outbound_subnets: &outbound,
        ..Default::default()
    })
    .unwrap();
    let e = crate::scenario::parse("x.toml", text, &Topology::with_lans(&bare))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("x.toml:5:9: {lan-in}: no host of this lab can play it"),
        "{e}"
    );
}

#[test]
fn a_plans_lans_replace_the_default_ones() {
    let outbound: Vec<IpNet> = nets(&["10.10.0.0/24", "172.21.0.0/16"]);
    let p = plan(&UserFirewall {
        outbound_subnets: &outbound,
        ..Default::default()
    })
    .unwrap();
    let t = Topology::with_lans(&p);
    let mut lans: Vec<&str> = t.lan_hosts().iter().map(|h| h.name).collect();
    lans.sort();
    assert_eq!(lans, ["lan-1", "lan-other"]);
    assert_eq!(t.ipv4_of("lan-1"), Some(Ipv4Addr::new(10, 10, 0, 10)));
    assert_eq!(
        t.host("lan-1").unwrap().routes[0].via,
        IpAddr::from(Ipv4Addr::new(10, 10, 0, 1))
    );
    assert!(t.host(host::LAN_ADMIN).is_none());
    for (host, a) in t.all_addresses() {
        assert!(is_lab_address(a.addr()), "{host} has non-lab address {a}");
    }
    // The default profile's LANs are the four the seed names.
    let mut d: Vec<&str> = Topology::default_profile()
        .lan_hosts()
        .iter()
        .map(|h| h.name)
        .collect();
    d.sort();
    assert_eq!(d, ["homelab", "lan-admin", "lan-media", "lan-other"]);
    assert!(std::ptr::eq(intern("lan-1"), intern("lan-1")));
}
