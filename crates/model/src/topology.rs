//! The lab's network as plain data: hosts (namespaces), the wires between
//! them, addresses, routes and NAT. The default profile is docs/DESIGN.md's copy of
//! the seed's network. Nothing here does I/O; `lab::build` applies it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Well-known lab addresses, shared by the lab, the gateway's environment,
/// the leak policy and the scenarios.
pub mod addr {
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub const GW_ETH0: Ipv4Addr = Ipv4Addr::new(172, 21, 0, 2);
    pub const GW_ETH0_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x21, 0, 0, 0, 0, 2);
    pub const HOME_GW_SIDE: Ipv4Addr = Ipv4Addr::new(172, 21, 0, 1);
    pub const HOME_GW_SIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x21, 0, 0, 0, 0, 1);
    pub const HOME_UPLINK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    pub const HOME_UPLINK_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2);
    pub const ISP_HOME_SIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    pub const ISP_HOME_SIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
    pub const ISP_VPN_SIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    pub const ISP_VPN_SIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfe, 0, 0, 0, 0, 1);
    pub const VPN_ISP_SIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
    pub const VPN_ISP_SIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfe, 0, 0, 0, 0, 2);
    pub const ISP_DNS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
    pub const WHOAMI: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
    pub const WHOAMI_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 0x80);
    /// The /64 a rogue router advertises on the gateway's LAN (`interfere`
    /// with `rogue-ra`): inside the lab's 2001:db8::/32, routed nowhere.
    pub const ROGUE_RA_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xad, 0, 0, 0, 0, 0);
    pub const DOH: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 43);
    /// The swarm's BitTorrent tracker (HTTP) on the lab's internet.
    pub const TRACKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 69);
    pub const TRACKER_PORT: u16 = 6969;
    /// The swarm's seeding peer on the lab's internet.
    pub const SEEDER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
    pub const SEEDER_PORT: u16 = 6881;
    pub const VPN_ENDPOINT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    pub const VPN_ENDPOINT_PORT: u16 = 51820;
    pub const VPN_EXIT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);
    pub const VPN_EXIT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 0x77);
    pub const TUNNEL_SERVER: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
    pub const TUNNEL_SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 1);
    pub const TUNNEL_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 2);
    pub const TUNNEL_CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 2);
    pub const LAN_ADMIN: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 10);
    pub const LAN_MEDIA: Ipv4Addr = Ipv4Addr::new(192, 168, 40, 10);
    pub const LAN_OTHER: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 10);
    pub const HOMELAB: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 10);
}

/// Short names of the lab's hosts; a namespace is `lh-<run>-<host>`.
pub mod host {
    pub const HOME: &str = "home";
    pub const ISP: &str = "isp";
    pub const VPN: &str = "vpn";
    pub const GW: &str = "gw";
    pub const LAN_ADMIN: &str = "lan-admin";
    pub const LAN_MEDIA: &str = "lan-media";
    pub const LAN_OTHER: &str = "lan-other";
    pub const HOMELAB: &str = "homelab";
}

/// Names of the lab's services, as scenarios name them in `logged-by` and
/// `not-logged-by`: each logs what it received, and from where.
pub mod service {
    pub const ISP_DNS: &str = "isp-dns";
    pub const PROVIDER_DNS: &str = "provider-dns";
    /// HTTP on every LAN host (and the home router's LAN side), port 80.
    pub const LAN_HTTP: &str = "lan";
    /// A resolver on the homelab (172.20.0.10:53), inside an allowed subnet.
    pub const LAN_DNS: &str = "lan-dns";
    /// The provider's DNS-over-TLS resolver, 10.64.0.1:853.
    pub const PROVIDER_DOT: &str = "provider-dot";
    pub const DOT: &str = "dot";
    pub const DOH: &str = "doh";
    pub const WHOAMI: &str = "whoami";
    pub const WHOAMI_TLS: &str = "whoami-tls";
    /// The dependents' stand-ins in the gateway's namespace.
    pub const DEPENDENTS: &str = "dependents";
    pub const ECHO: &str = "echo";
    /// The home router's NAT-PMP/PCP port on its LAN side (172.21.0.1:5351):
    /// logs every request, which no dependent may send.
    pub const HOME_ROUTER: &str = "home-router";
    /// The swarm's tracker: every announce that reached it, with its source
    /// (read off the ISP's wires, the far end).
    pub const TRACKER: &str = "tracker";
    /// The swarm's seeding peer: every connection that reached it.
    pub const SWARM_PEER: &str = "swarm-peer";
    /// The lab's Usenet server (NNTP over TLS, news.lab:563): every
    /// connection and every article asked for, with its source.
    pub const NEWS: &str = "news";
    /// The STUN server on whoami's addresses (UDP 3478): every Binding
    /// request, answered with the source it came from (WebRTC's view).
    pub const STUN: &str = "stun";
    /// A listener on whoami's addresses at UDP 443: every datagram (a
    /// browser's QUIC), never answered.
    pub const QUIC: &str = "quic";
    /// Not a service of its own: the resolver the gateway's configuration
    /// asks through the tunnel, whichever that is for the scenario's
    /// variables (`provider-dns` for a plain upstream, `provider-dot` for
    /// DNS over TLS, `doh` for DNS over HTTPS). Scenarios that mean "the
    /// gateway's upstream", not one transport, name it, so a user's
    /// configuration with an encrypted upstream runs them unchanged.
    pub const PROVIDER_RESOLVER: &str = "provider-resolver";
    /// Every service a scenario may ask about.
    pub const ALL: [&str; 18] = [
        PROVIDER_RESOLVER,
        PROVIDER_DOT,
        DOT,
        DOH,
        LAN_DNS,
        ISP_DNS,
        PROVIDER_DNS,
        WHOAMI,
        WHOAMI_TLS,
        DEPENDENTS,
        ECHO,
        LAN_HTTP,
        HOME_ROUTER,
        TRACKER,
        SWARM_PEER,
        NEWS,
        STUN,
        QUIC,
    ];
}

/// Names of the wires leakhound watches, and where it listens to each: at the
/// far end, so what it sees is what really left the near end.
pub mod wire {
    /// gw eth0, seen from the home router's side.
    pub const GW: &str = "gw";
    /// The home uplink, seen from the ISP's side.
    pub const UPLINK: &str = "uplink";
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub dst: IpNet,
    pub via: IpAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: &'static str,
    pub forwarding: bool,
    /// Addresses on `lo` (service addresses).
    pub loopback: Vec<IpNet>,
    pub routes: Vec<Route>,
    /// An nftables ruleset (text) applied in the namespace, for NAT.
    pub nft: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct End {
    pub host: &'static str,
    pub ifname: &'static str,
    pub addrs: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub a: End,
    pub b: End,
}

/// A watched wire: the host and interface where capture listens.
#[derive(Debug, Clone, PartialEq)]
pub struct Tap {
    pub wire: &'static str,
    pub host: &'static str,
    pub ifname: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub hosts: Vec<Host>,
    pub links: Vec<Link>,
    pub taps: Vec<Tap>,
    /// What scenario files name by role (`{lan-in}`, `{lan-out}`, ...)
    /// instead of by literal, so one file fits the seed's lab and a lab
    /// made from a user's configuration; see [`ROLES`].
    pub roles: BTreeMap<&'static str, String>,
}

/// The roles a scenario file may name as `{role}`, and what each is.
pub const ROLES: [(&str, &str); 12] = [
    ("lan-in", "a LAN host that reaches a dependent's port"),
    ("lan-in-name", "that LAN, in words"),
    ("lan-in-port", "the port it reaches"),
    ("lan-in-app", "the application on that port"),
    (
        "lan-in2",
        "a second LAN host that reaches a dependent (or the first)",
    ),
    ("lan-in2-name", "that LAN, in words"),
    ("lan-in2-port", "the port it reaches"),
    ("lan-in2-app", "the application on that port"),
    (
        "lan-out",
        "the address of a LAN host the gateway may reach (FIREWALL_OUTBOUND_SUBNETS)",
    ),
    ("lan-out-host", "that host"),
    ("lan-out-name", "that LAN, in words"),
    ("lan-dns", "the address of a resolver on that LAN"),
];

/// The seed lab's roles.
fn seed_roles() -> BTreeMap<&'static str, String> {
    [
        ("lan-in", host::LAN_ADMIN),
        ("lan-in-name", "the admin LAN"),
        ("lan-in-port", "8080"),
        ("lan-in-app", "qBittorrent"),
        ("lan-in2", host::LAN_MEDIA),
        ("lan-in2-name", "the media LAN"),
        ("lan-in2-port", "9696"),
        ("lan-in2-app", "Prowlarr"),
        ("lan-out", "172.20.0.10"),
        ("lan-out-host", host::HOMELAB),
        ("lan-out-name", "the homelab"),
        ("lan-dns", "172.20.0.10"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn net(s: &str) -> IpNet {
    s.parse().expect("topology literal")
}

fn route(dst: &str, via: IpAddr) -> Route {
    Route { dst: net(dst), via }
}

fn end(host: &'static str, ifname: &'static str, addrs: &[&str]) -> End {
    End {
        host,
        ifname,
        addrs: addrs.iter().map(|a| net(a)).collect(),
    }
}

const HOME_NAT: &str = "table ip lh_nat {
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname \"uplink\" masquerade
  }
}";

const VPN_NAT: &str = "table ip lh_nat {
  chain post { type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.64.0.0/16 oifname \"isp\" snat to 203.0.113.77
  }
}
table ip6 lh_nat6 {
  chain post { type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr fd00:64::/64 oifname \"isp\" snat to 2001:db8:77::77
  }
}";

/// A LAN host on its own subnet behind the home router.
pub(crate) fn lan(
    host: &'static str,
    home_if: &'static str,
    home: &str,
    me: &str,
    gw: Ipv4Addr,
) -> (Host, Link) {
    (
        Host {
            name: host,
            forwarding: false,
            loopback: vec![],
            routes: vec![route("0.0.0.0/0", gw.into())],
            nft: None,
        },
        Link {
            a: end(host::HOME, home_if, &[home]),
            b: end(host, "eth0", &[me]),
        },
    )
}

/// The seed's home router, ISP, VPN server and gateway.
fn seed_core_hosts() -> Vec<Host> {
    use addr::*;
    let home = Host {
        name: host::HOME,
        forwarding: true,
        loopback: vec![],
        routes: vec![
            route("0.0.0.0/0", ISP_HOME_SIDE.into()),
            route("::/0", ISP_HOME_SIDE_V6.into()),
        ],
        nft: Some(HOME_NAT),
    };
    let isp = Host {
        name: host::ISP,
        forwarding: true,
        loopback: [
            "192.0.2.53/32",
            "192.0.2.80/32",
            "192.0.2.43/32",
            "192.0.2.200/32",
            "192.0.2.66/32",
            "192.0.2.69/32",
            "2001:db8:80::80/128",
        ]
        .iter()
        .map(|a| net(a))
        .collect(),
        routes: vec![
            route("203.0.113.10/32", VPN_ISP_SIDE.into()),
            route("203.0.113.77/32", VPN_ISP_SIDE.into()),
            route("2001:db8:77::77/128", VPN_ISP_SIDE_V6.into()),
            route("2001:db8:21::/64", HOME_UPLINK_V6.into()),
        ],
        nft: None,
    };
    let vpn = Host {
        name: host::VPN,
        forwarding: true,
        loopback: ["203.0.113.10/32", "203.0.113.77/32", "2001:db8:77::77/128"]
            .iter()
            .map(|a| net(a))
            .collect(),
        routes: vec![
            route("0.0.0.0/0", ISP_VPN_SIDE.into()),
            route("::/0", ISP_VPN_SIDE_V6.into()),
        ],
        nft: Some(VPN_NAT),
    };
    let gw = Host {
        name: host::GW,
        forwarding: false,
        loopback: vec![],
        routes: vec![
            route("0.0.0.0/0", HOME_GW_SIDE.into()),
            route("::/0", HOME_GW_SIDE_V6.into()),
        ],
        nft: None,
    };
    vec![home, isp, vpn, gw]
}

/// The links between the seed's home router, gateway, ISP and VPN server.
fn seed_core_links() -> Vec<Link> {
    vec![
        Link {
            a: end(host::HOME, "gw", &["172.21.0.1/16", "2001:db8:21::1/64"]),
            b: end(host::GW, "eth0", &["172.21.0.2/16", "2001:db8:21::2/64"]),
        },
        Link {
            a: end(
                host::HOME,
                "uplink",
                &["198.51.100.2/24", "2001:db8:ff::2/64"],
            ),
            b: end(host::ISP, "home", &["198.51.100.1/24", "2001:db8:ff::1/64"]),
        },
        Link {
            a: end(host::ISP, "vpn", &["203.0.113.1/24", "2001:db8:fe::1/64"]),
            b: end(host::VPN, "isp", &["203.0.113.2/24", "2001:db8:fe::2/64"]),
        },
    ]
}

/// The seed's LANs behind the home router: admin, media, other, homelab.
fn seed_lans() -> [(Host, Link); 4] {
    [
        lan(
            host::LAN_ADMIN,
            "admin",
            "192.168.10.1/24",
            "192.168.10.10/24",
            Ipv4Addr::new(192, 168, 10, 1),
        ),
        lan(
            host::LAN_MEDIA,
            "media",
            "192.168.40.1/24",
            "192.168.40.10/24",
            Ipv4Addr::new(192, 168, 40, 1),
        ),
        lan(
            host::LAN_OTHER,
            "other",
            "192.168.30.1/24",
            "192.168.30.10/24",
            Ipv4Addr::new(192, 168, 30, 1),
        ),
        lan(
            host::HOMELAB,
            "homelab",
            "172.20.0.1/16",
            "172.20.0.10/16",
            Ipv4Addr::new(172, 20, 0, 1),
        ),
    ]
}

impl Topology {
    /// The default profile (docs/DESIGN.md, "The lab"): the seed's network.
    pub fn default_profile() -> Topology {
        let mut hosts = seed_core_hosts();
        let mut links = seed_core_links();
        for (h, l) in seed_lans() {
            hosts.push(h);
            links.push(l);
        }
        Topology {
            hosts,
            links,
            taps: vec![
                Tap {
                    wire: wire::GW,
                    host: host::HOME,
                    ifname: "gw",
                },
                Tap {
                    wire: wire::UPLINK,
                    host: host::ISP,
                    ifname: "home",
                },
            ],
            roles: seed_roles(),
        }
    }

    /// The LAN hosts: those whose only link is to the home router, other
    /// than the gateway.
    pub fn lan_hosts(&self) -> Vec<&Host> {
        self.hosts
            .iter()
            .filter(|h| h.name != host::GW)
            .filter(|h| {
                let mut links = self
                    .links
                    .iter()
                    .filter(|l| l.a.host == h.name || l.b.host == h.name);
                links.next().is_some_and(|l| l.a.host == host::HOME) && links.next().is_none()
            })
            .collect()
    }

    /// A host's first IPv4 address on its links.
    pub fn ipv4_of(&self, name: &str) -> Option<Ipv4Addr> {
        self.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.host == name)
            .flat_map(|e| e.addrs.iter())
            .find_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every address the topology assigns, with the host that holds it.
    pub fn all_addresses(&self) -> Vec<(&'static str, IpNet)> {
        let mut v = Vec::new();
        for h in &self.hosts {
            v.extend(h.loopback.iter().map(|a| (h.name, *a)));
        }
        for l in &self.links {
            for e in [&l.a, &l.b] {
                v.extend(e.addrs.iter().map(|a| (e.host, *a)));
            }
        }
        v
    }
}

/// Names made at run time (a plan's LANs) as `&'static str`, like the
/// built-in ones: each distinct name is kept once for the process's life,
/// so planning again never grows memory.
pub fn intern(s: &str) -> &'static str {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut set = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = set.get(s) {
        return n;
    }
    let kept: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(kept);
    kept
}

/// True for addresses the lab may use: documentation ranges for "public"
/// hosts, private and ULA ranges for the inside.
pub fn is_lab_address(ip: IpAddr) -> bool {
    const ALLOWED: [&str; 8] = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fd00::/8",
    ];
    ALLOWED.iter().any(|n| net(n).contains(&ip))
}

/// The IPv6 address with the given last group, for tests and probes.
pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("ipv6 literal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_address_is_a_lab_address() {
        let t = Topology::default_profile();
        for (host, a) in t.all_addresses() {
            assert!(is_lab_address(a.addr()), "{host} has non-lab address {a}");
        }
        for h in &t.hosts {
            for r in &h.routes {
                assert!(is_lab_address(r.via), "{} routes via {}", h.name, r.via);
            }
        }
    }

    #[test]
    fn no_address_is_assigned_twice() {
        let t = Topology::default_profile();
        let mut seen = HashSet::new();
        for (host, a) in t.all_addresses() {
            assert!(
                seen.insert(a.addr()),
                "{} assigned twice (again on {host})",
                a.addr()
            );
        }
    }

    #[test]
    fn links_join_known_hosts_with_unique_interface_names() {
        let t = Topology::default_profile();
        let mut names = HashSet::new();
        for l in &t.links {
            for e in [&l.a, &l.b] {
                assert!(t.host(e.host).is_some(), "unknown host {}", e.host);
                assert!(e.ifname.len() < 16);
                assert!(
                    names.insert((e.host, e.ifname)),
                    "{}:{} twice",
                    e.host,
                    e.ifname
                );
            }
        }
        for tap in &t.taps {
            assert!(
                names.contains(&(tap.host, tap.ifname)),
                "tap {} on no link",
                tap.wire
            );
        }
    }

    #[test]
    fn every_route_gateway_is_on_a_link_of_its_host() {
        let t = Topology::default_profile();
        for h in &t.hosts {
            let nets: Vec<IpNet> = t
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|e| e.host == h.name)
                .flat_map(|e| e.addrs.iter().copied())
                .collect();
            for r in &h.routes {
                assert!(
                    nets.iter().any(|n| n.contains(&r.via)),
                    "{}: gateway {} of {} is not on any of its links",
                    h.name,
                    r.via,
                    r.dst
                );
            }
        }
    }

    #[test]
    fn well_known_addresses_match_the_profile() {
        let t = Topology::default_profile();
        let all: Vec<IpAddr> = t.all_addresses().iter().map(|(_, a)| a.addr()).collect();
        for ip in [
            IpAddr::from(addr::GW_ETH0),
            addr::HOME_UPLINK.into(),
            addr::ISP_DNS.into(),
            addr::WHOAMI.into(),
            addr::WHOAMI_V6.into(),
            addr::VPN_ENDPOINT.into(),
            addr::VPN_EXIT.into(),
            addr::VPN_EXIT_V6.into(),
            addr::LAN_ADMIN.into(),
            addr::HOMELAB.into(),
        ] {
            assert!(all.contains(&ip), "{ip} missing from the profile");
        }
        assert_eq!(v6("2001:db8:21::2"), addr::GW_ETH0_V6);
    }

    #[test]
    fn ipv6_constants_are_the_addresses_the_docs_name() {
        for (c, text) in [
            (addr::GW_ETH0_V6, "2001:db8:21::2"),
            (addr::HOME_GW_SIDE_V6, "2001:db8:21::1"),
            (addr::HOME_UPLINK_V6, "2001:db8:ff::2"),
            (addr::ISP_HOME_SIDE_V6, "2001:db8:ff::1"),
            (addr::ISP_VPN_SIDE_V6, "2001:db8:fe::1"),
            (addr::VPN_ISP_SIDE_V6, "2001:db8:fe::2"),
            (addr::WHOAMI_V6, "2001:db8:80::80"),
            (addr::VPN_EXIT_V6, "2001:db8:77::77"),
            (addr::TUNNEL_SERVER_V6, "fd00:64::1"),
            (addr::TUNNEL_CLIENT_V6, "fd00:64::2"),
        ] {
            assert_eq!(c, v6(text), "{c} should be {text}");
        }
    }
}
