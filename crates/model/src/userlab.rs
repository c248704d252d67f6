//! The lab made from the user's own configuration (`run --compose`,
//! `--env-file`): which LANs sit behind the home router, which inbound
//! ports are probed from which LAN and what each probe must find, and
//! which of the user's variables the lab replaces. Pure: the gateway's
//! parsed settings in, a plan out; building it is the harness's.
//!
//! The rules (README, "Your own configuration"):
//! - every IPv4 subnet of FIREWALL_OUTBOUND_SUBNETS and of
//!   FIREWALL_INPUT_SUBNET_PORTS becomes a LAN with one host (`.10`)
//!   behind the home router (`.1`); the gateway's own network
//!   (172.21.0.0/16, the seed's `media`) is the link it already has;
//! - one more LAN outside every allowed subnet is always added and probed:
//!   the denied LAN;
//! - the ports probed are the gateway service's published TCP ports and
//!   every port of FIREWALL_INPUT_PORTS and FIREWALL_INPUT_SUBNET_PORTS;
//! - a probe must be answered when the port is in FIREWALL_INPUT_PORTS, or
//!   the LAN lies in a FIREWALL_INPUT_SUBNET_PORTS subnet that lists it,
//!   or (when the file sets no FIREWALL_INPUT_SUBNET_PORTS) the port is
//!   published and the LAN is one of FIREWALL_OUTBOUND_SUBNETS: what
//!   publishing a port means for the LANs the user lets the gateway talk
//!   to; every other probe must find no answer;
//! - a subnet overlapping the lab's own ranges is refused, naming both.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use crate::userconf::Published;

/// The lab's own ranges: no user subnet may overlap them.
pub const LAB_RANGES: [(&str, &str); 7] = [
    ("192.0.2.0/24", "the lab's internet services"),
    ("198.51.100.0/24", "the lab's home uplink"),
    ("203.0.113.0/24", "the lab's VPN provider"),
    ("10.64.0.0/16", "the lab's tunnel addresses"),
    ("127.0.0.0/8", "loopback"),
    ("0.0.0.0/8", "this network"),
    ("224.0.0.0/3", "multicast and reserved"),
];

/// The gateway's own network in the lab (the seed's `media` network).
pub const GATEWAY_NET: &str = "172.21.0.0/16";

/// LANs the default lab has, by name: a user subnet equal to one of them
/// keeps the name (so the seed's own file makes the default lab, and the
/// built-in scenarios that name these hosts apply).
const KNOWN: [(&str, &str, &str); 4] = [
    ("lan-admin", "admin", "192.168.10.0/24"),
    ("lan-media", "media", "192.168.40.0/24"),
    ("homelab", "homelab", "172.20.0.0/16"),
    ("lan-other", "other", "192.168.30.0/24"),
];

/// Subnets tried, in order, for the denied LAN.
const DENIED_CANDIDATES: [&str; 5] = [
    "192.168.30.0/24",
    "192.168.99.0/24",
    "10.99.0.0/24",
    "172.30.0.0/24",
    "10.250.0.0/24",
];

/// Why a LAN is in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// In FIREWALL_OUTBOUND_SUBNETS: the gateway may reach it.
    pub outbound: bool,
    /// In FIREWALL_INPUT_SUBNET_PORTS: some ports are open to it.
    pub inbound: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lan {
    /// The host's name (`lan-admin`, `lan-2`, `lan-denied`, ...).
    pub name: String,
    /// The home router's interface towards it (at most 15 bytes).
    pub ifname: String,
    pub subnet: Ipv4Net,
    pub host: Ipv4Addr,
    pub router: Ipv4Addr,
    /// `None`: the denied LAN.
    pub roles: Option<Roles>,
}

/// One probe of the LAN matrix: from `lan` to the gateway's `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub lan: String,
    pub port: u16,
    pub open: bool,
    /// Why it must (not) answer, for the step's name and the report.
    pub why: String,
}

/// The plan: LANs in order, the ports probed, the matrix, and what the
/// user wrote that the lab does not carry (IPv6 subnets, UDP ports).
#[derive(Debug, Clone, PartialEq)]
pub struct UserLab {
    pub lans: Vec<Lan>,
    pub ports: Vec<u16>,
    pub matrix: Vec<Cell>,
    /// Subnets of FIREWALL_OUTBOUND_SUBNETS the gateway may reach: the
    /// outbound-subnet scenario's "reached" hosts. Includes the gateway's
    /// own network when the user lists it (the home router's side).
    pub reachable: Vec<String>,
    pub notes: Vec<String>,
}

/// What the planner refuses: always names the variable and the subnets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{var}: {subnet} overlaps {range} ({what}): choose a subnet outside it")]
    Overlap {
        var: &'static str,
        subnet: IpNet,
        range: IpNet,
        what: &'static str,
    },
    #[error(
        "{var}: {subnet} is not a private subnet (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8): the lab gives LAN hosts private addresses only"
    )]
    NotPrivate { var: &'static str, subnet: IpNet },
    #[error("no free subnet for the denied LAN: every candidate overlaps the user's subnets")]
    NoDeniedSubnet,
}

/// The gateway's parsed firewall settings the plan needs.
#[derive(Debug, Clone, Default)]
pub struct UserFirewall<'a> {
    pub outbound_subnets: &'a [IpNet],
    pub input_ports: &'a [u16],
    pub subnet_ports: &'a [(IpNet, Vec<u16>)],
    pub published: &'a [Published],
}

fn net(s: &str) -> IpNet {
    s.parse().expect("planner literal")
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check(var: &'static str, subnet: &IpNet) -> Result<(), PlanError> {
    for (r, what) in LAB_RANGES {
        let range = net(r);
        if overlaps(subnet, &range) {
            return Err(PlanError::Overlap {
                var,
                subnet: *subnet,
                range,
                what,
            });
        }
    }
    let gw = net(GATEWAY_NET);
    // The gateway's network itself (or one holding it) is the link the
    // gateway already has; a part of it would split that link.
    if overlaps(subnet, &gw) && subnet.prefix_len() > gw.prefix_len() {
        return Err(PlanError::Overlap {
            var,
            subnet: *subnet,
            range: gw,
            what: "the gateway's own network in the lab",
        });
    }
    let private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"];
    if !private.iter().any(|p| {
        let p = net(p);
        p.contains(&subnet.network()) && p.prefix_len() <= subnet.prefix_len()
    }) {
        return Err(PlanError::NotPrivate {
            var,
            subnet: *subnet,
        });
    }
    Ok(())
}

/// The `n`-th address of a subnet (n small; the subnet holds it).
fn nth(s: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(s.network()) + n)
}

fn lan(name: String, ifname: String, subnet: Ipv4Net, roles: Option<Roles>) -> Lan {
    // .1 the router, .10 the host; a /29 or smaller: .1 and .2.
    let host_n = if subnet.prefix_len() <= 28 { 10 } else { 2 };
    Lan {
        name,
        ifname,
        subnet,
        host: nth(&subnet, host_n),
        router: nth(&subnet, 1),
        roles,
    }
}

/// Makes the plan. IPv6 subnets are noted, not built (the lab's LANs are
/// IPv4, as the seed's are).
pub fn plan(fw: &UserFirewall<'_>) -> Result<UserLab, PlanError> {
    let mut notes = Vec::new();
    let mut subnets: Vec<(Ipv4Net, Roles)> = Vec::new();
    let mut reachable = Vec::new();
    let gw_net = net(GATEWAY_NET);
    let mut add = |var: &'static str, s: &IpNet, outbound: bool, notes: &mut Vec<String>| {
        check(var, s)?;
        let IpNet::V4(v4) = s else {
            notes.push(format!(
                "{var}: {s} is IPv6; the lab's LANs are IPv4, so it is not probed"
            ));
            return Ok(());
        };
        let v4 = v4.trunc();
        if overlaps(s, &gw_net) {
            if outbound {
                reachable.push(crate::topology::host::HOME.to_string());
            }
            return Ok(());
        }
        match subnets.iter_mut().find(|(n, _)| *n == v4) {
            Some((_, r)) => {
                r.outbound |= outbound;
                r.inbound |= !outbound;
            }
            None => subnets.push((
                v4,
                Roles {
                    outbound,
                    inbound: !outbound,
                },
            )),
        }
        Ok::<(), PlanError>(())
    };
    for s in fw.outbound_subnets {
        add("FIREWALL_OUTBOUND_SUBNETS", s, true, &mut notes)?;
    }
    for (s, _) in fw.subnet_ports {
        add("FIREWALL_INPUT_SUBNET_PORTS", s, false, &mut notes)?;
    }
    let mut lans = Vec::new();
    let mut generic = 0;
    for (s, roles) in &subnets {
        let (name, ifname) = match KNOWN.iter().find(|(_, _, k)| net(k) == IpNet::V4(*s)) {
            Some((n, i, _)) => (n.to_string(), i.to_string()),
            None => {
                generic += 1;
                (format!("lan-{generic}"), format!("lan{generic}"))
            }
        };
        if roles.outbound {
            reachable.push(name.clone());
        }
        lans.push(lan(name, ifname, *s, Some(*roles)));
    }
    let taken: Vec<IpNet> = subnets.iter().map(|(s, _)| IpNet::V4(*s)).collect();
    let denied = DENIED_CANDIDATES
        .iter()
        .map(|c| net(c))
        .find(|c| !taken.iter().any(|t| overlaps(t, c)))
        .ok_or(PlanError::NoDeniedSubnet)?;
    let IpNet::V4(denied) = denied else {
        unreachable!("the candidates are IPv4")
    };
    let (dname, dif) = if denied.to_string() == "192.168.30.0/24" {
        ("lan-other", "other")
    } else {
        ("lan-denied", "denied")
    };
    lans.push(lan(dname.into(), dif.into(), denied, None));

    let mut ports: Vec<u16> = fw
        .published
        .iter()
        .filter(|p| !p.udp)
        .map(|p| p.target)
        .chain(fw.input_ports.iter().copied())
        .chain(fw.subnet_ports.iter().flat_map(|(_, p)| p.iter().copied()))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    for p in fw.published.iter().filter(|p| p.udp) {
        notes.push(format!(
            "ports: {}:{}/udp is not probed from the LANs (an unanswered UDP probe proves nothing)",
            p.published, p.target
        ));
    }
    let published = |port: u16| fw.published.iter().any(|p| !p.udp && p.target == port);
    let mut matrix = Vec::new();
    for l in &lans {
        for &port in &ports {
            let why_open = if fw.input_ports.contains(&port) {
                Some("FIREWALL_INPUT_PORTS opens it to every source".to_string())
            } else if let Some((s, _)) = fw
                .subnet_ports
                .iter()
                .find(|(s, p)| s.contains(&std::net::IpAddr::V4(l.host)) && p.contains(&port))
            {
                Some(format!("FIREWALL_INPUT_SUBNET_PORTS opens it to {s}"))
            } else if fw.subnet_ports.is_empty()
                && published(port)
                && l.roles.is_some_and(|r| r.outbound)
            {
                Some("published, to a LAN of FIREWALL_OUTBOUND_SUBNETS".to_string())
            } else {
                None
            };
            let why = match &why_open {
                Some(w) => w.clone(),
                None if l.roles.is_none() => "the denied LAN, outside every allowed subnet".into(),
                None => format!("no rule opens {port} to {}", l.subnet),
            };
            matrix.push(Cell {
                lan: l.name.clone(),
                port,
                open: why_open.is_some(),
                why,
            });
        }
    }
    Ok(UserLab {
        lans,
        ports,
        matrix,
        reachable,
        notes,
    })
}

#[cfg(test)]
mod tests;
