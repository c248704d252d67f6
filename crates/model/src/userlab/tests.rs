use super::*;

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
            s("lan-denied", 9000),
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
