//! The lab made from the user's own configuration (`run --compose`,
//! `--env-file`): which LANs sit behind the home router, which inbound
//! ports are probed from which LAN and what each probe must find, and
//! which of the user's variables the lab replaces. Pure: the gateway's
//! parsed settings in, a plan out; building it is the harness's.
//!
//! The rules (docs/your-configuration.md):
//! - every IPv4 subnet of FIREWALL_OUTBOUND_SUBNETS and of
//!   FIREWALL_INPUT_SUBNET_PORTS becomes a LAN with one host (`.10`)
//!   behind the home router (`.1`); the gateway's own network
//!   (172.21.0.0/16, the seed's `media`) is the link it already has;
//! - one more LAN outside every allowed subnet is always added and probed:
//!   the denied LAN;
//! - the ports probed are the gateway service's published TCP ports and
//!   every port of FIREWALL_INPUT_PORTS and FIREWALL_INPUT_SUBNET_PORTS;
//! - a probe from an allowed LAN must be answered when the port is in
//!   FIREWALL_INPUT_PORTS, or the LAN lies in a FIREWALL_INPUT_SUBNET_PORTS
//!   subnet that lists it, or (when the file sets no
//!   FIREWALL_INPUT_SUBNET_PORTS) the port is published and the LAN is one
//!   of FIREWALL_OUTBOUND_SUBNETS: what publishing a port means for the
//!   LANs the user lets the gateway talk to; every other probe, and every
//!   probe from the denied LAN, must find no answer (the seed's "Deny All
//!   from Any to Gluetun": a gateway that answers the denied LAN, as
//!   Gluetun's accept-everything-to-its-own-network rule does, fails);
//! - a subnet overlapping the lab's own ranges is refused, naming both.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use crate::topology::{ROLES, Topology, host, intern, lan as lan_host};
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
    /// What scenario files name by role ([`crate::topology::ROLES`]) in
    /// this lab; a role no LAN can play is absent.
    pub roles: Vec<(String, String)>,
}

/// Made here, beside the plan it reads, so that the topology knows nothing
/// of users' configurations.
impl Topology {
    /// The default lab with its LANs replaced by a plan's (made from the
    /// user's configuration, this module): each LAN one host behind
    /// the home router; the roles the plan found.
    pub fn with_lans(plan: &UserLab) -> Topology {
        let lans = &plan.lans;
        const DEFAULT_LANS: [&str; 4] = [
            host::LAN_ADMIN,
            host::LAN_MEDIA,
            host::LAN_OTHER,
            host::HOMELAB,
        ];
        let mut t = Topology::default_profile();
        t.hosts.retain(|h| !DEFAULT_LANS.contains(&h.name));
        t.links
            .retain(|l| !DEFAULT_LANS.contains(&l.a.host) && !DEFAULT_LANS.contains(&l.b.host));
        for l in lans {
            let prefix = l.subnet.prefix_len();
            let (h, link) = lan_host(
                intern(&l.name),
                intern(&l.ifname),
                &format!("{}/{prefix}", l.router),
                &format!("{}/{prefix}", l.host),
                l.router,
            );
            t.hosts.push(h);
            t.links.push(link);
        }
        t.roles = plan
            .roles
            .iter()
            .filter_map(|(k, v)| {
                ROLES
                    .iter()
                    .find(|(r, _)| r == k)
                    .map(|(r, _)| (*r, v.clone()))
            })
            .collect();
        t
    }
}

/// The application usually behind a WebUI port, for names people read.
pub fn application(port: u16) -> String {
    match port {
        8080 => "qBittorrent".into(),
        9696 => "Prowlarr".into(),
        6789 => "NZBGet".into(),
        8191 => "Byparr".into(),
        p => format!("the service on port {p}"),
    }
}

/// The roles of a plan's lab: the first two LANs with an open cell play
/// `lan-in` and `lan-in2` (the first twice when there is one), the first
/// LAN of FIREWALL_OUTBOUND_SUBNETS `lan-out` (its host runs the LAN
/// resolver, `lan-dns`), else the gateway's own network's router when the
/// user lists that network (no resolver there).
fn roles_of(lans: &[Lan], matrix: &[Cell], reachable: &[String]) -> Vec<(String, String)> {
    let mut roles = Vec::new();
    let mut ins: Vec<&Cell> = Vec::new();
    for c in matrix.iter().filter(|c| c.open) {
        if !ins.iter().any(|i| i.lan == c.lan) {
            ins.push(c);
        }
    }
    let describe = |name: &str| {
        lans.iter()
            .find(|l| l.name == name)
            .map(|l| format!("{} ({})", l.name, l.subnet))
            .unwrap_or_else(|| name.to_string())
    };
    let mut put = |k: &str, v: String| roles.push((k.to_string(), v));
    for (i, prefix) in ["lan-in", "lan-in2"].iter().enumerate() {
        if let Some(c) = ins.get(i).or(ins.first()) {
            put(prefix, c.lan.clone());
            put(&format!("{prefix}-name"), describe(&c.lan));
            put(&format!("{prefix}-port"), c.port.to_string());
            put(&format!("{prefix}-app"), application(c.port));
        }
    }
    let home = crate::topology::host::HOME;
    if let Some(l) = lans.iter().find(|l| reachable.contains(&l.name)) {
        put("lan-out", l.host.to_string());
        put("lan-out-host", l.name.clone());
        put("lan-out-name", describe(&l.name));
        put("lan-dns", l.host.to_string());
    } else if reachable.iter().any(|r| r == home) {
        put("lan-out", crate::topology::addr::HOME_GW_SIDE.to_string());
        put("lan-out-host", home.to_string());
        put("lan-out-name", "the gateway's own network".to_string());
    }
    roles
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
    let mut reachable = Vec::new();
    let subnets = allowed_subnets(fw, &mut notes, &mut reachable)?;
    let lans = lans_of(&subnets, &mut reachable)?;
    let ports = probed_ports(fw, &mut notes);
    let matrix = port_matrix(fw, &lans, &ports);
    let roles = roles_of(&lans, &matrix, &reachable);
    Ok(UserLab {
        lans,
        ports,
        matrix,
        reachable,
        notes,
        roles,
    })
}

/// The IPv4 subnets FIREWALL_OUTBOUND_SUBNETS and
/// FIREWALL_INPUT_SUBNET_PORTS allow, each with its roles; an IPv6 one is
/// noted, and one overlapping the gateway's own network makes the home
/// router reachable (when outbound) instead of becoming a LAN.
fn allowed_subnets(
    fw: &UserFirewall<'_>,
    notes: &mut Vec<String>,
    reachable: &mut Vec<String>,
) -> Result<Vec<(Ipv4Net, Roles)>, PlanError> {
    let mut subnets: Vec<(Ipv4Net, Roles)> = Vec::new();
    let gw_net = net(GATEWAY_NET);
    let mut add = |var: &'static str, s: &IpNet, outbound: bool| {
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
        add("FIREWALL_OUTBOUND_SUBNETS", s, true)?;
    }
    for (s, _) in fw.subnet_ports {
        add("FIREWALL_INPUT_SUBNET_PORTS", s, false)?;
    }
    Ok(subnets)
}

/// A LAN per allowed subnet (the seed's names for the seed's subnets), the
/// outbound ones added to `reachable`, and the denied LAN last: the first
/// candidate no allowed subnet overlaps.
fn lans_of(
    subnets: &[(Ipv4Net, Roles)],
    reachable: &mut Vec<String>,
) -> Result<Vec<Lan>, PlanError> {
    let mut lans = Vec::new();
    let mut generic = 0;
    for (s, roles) in subnets {
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
    Ok(lans)
}

/// A published port the LANs can be probed on: TCP, not on loopback only.
fn lan_published(p: &&Published) -> bool {
    !p.udp && !p.host_only
}

/// The TCP ports probed from every LAN (published, FIREWALL_INPUT_PORTS,
/// FIREWALL_INPUT_SUBNET_PORTS), sorted; the published ports that are not
/// are noted.
fn probed_ports(fw: &UserFirewall<'_>, notes: &mut Vec<String>) -> Vec<u16> {
    let mut ports: Vec<u16> = fw
        .published
        .iter()
        .filter(lan_published)
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
    for p in fw.published.iter().filter(|p| p.host_only) {
        notes.push(format!(
            "ports: {}:{} is published on a loopback address only (the Docker host alone reaches it), so it is not probed from the LANs",
            p.published, p.target
        ));
    }
    ports
}

/// For every LAN and port, whether the configuration opens it and why.
fn port_matrix(fw: &UserFirewall<'_>, lans: &[Lan], ports: &[u16]) -> Vec<Cell> {
    let mut matrix = Vec::new();
    for l in lans {
        for &port in ports {
            let opened_by = why_open(fw, l, port);
            let why = match &opened_by {
                Some(w) => w.clone(),
                None if l.roles.is_none() => "the denied LAN, outside every allowed subnet".into(),
                None => format!("no rule opens {port} to {}", l.subnet),
            };
            matrix.push(Cell {
                lan: l.name.clone(),
                port,
                open: opened_by.is_some(),
                why,
            });
        }
    }
    matrix
}

/// The rule that opens `port` to the LAN `l`, if one does.
fn why_open(fw: &UserFirewall<'_>, l: &Lan, port: u16) -> Option<String> {
    let published = fw
        .published
        .iter()
        .any(|p| lan_published(&p) && p.target == port);
    if fw.input_ports.contains(&port) && l.roles.is_some() {
        Some("FIREWALL_INPUT_PORTS opens it to the allowed LANs".to_string())
    } else if let Some((s, _)) = fw
        .subnet_ports
        .iter()
        .find(|(s, p)| s.contains(&std::net::IpAddr::V4(l.host)) && p.contains(&port))
    {
        Some(format!("FIREWALL_INPUT_SUBNET_PORTS opens it to {s}"))
    } else if fw.subnet_ports.is_empty() && published && l.roles.is_some_and(|r| r.outbound) {
        Some("published, to a LAN of FIREWALL_OUTBOUND_SUBNETS".to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests;

/// A TOML basic string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const HANDSHAKE_STEP: &str = "[[step]]\nname = \"the WireGuard handshake completes\"\naction = \"wait-handshake\"\ntimeout = \"15s\"\n";

/// The gateway's address on its own network in the lab.
const GW: &str = "172.21.0.2";

/// The LAN matrix made from the plan, as a scenario file (`source` names
/// the user's file in its comment): every LAN against every probed port,
/// answered exactly where the plan says, and the control server closed to
/// the LAN.
pub fn lan_matrix_toml(p: &UserLab, source: &str) -> String {
    let mut t = format!(
        "# lan-matrix: made by leakhound from {source}.\nname = \"lan-matrix\"\ndescription = {}\ntags = [\"lan\", \"user\"]\n\n{HANDSHAKE_STEP}",
        q(&format!(
            "Every LAN of {source} against every inbound port ({}): open exactly where its firewall settings say; the denied LAN reaches none.",
            p.ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
    );
    // Answered probes first, then every silent one: consecutive silent
    // probes wait out their timeout together.
    let ordered = p
        .matrix
        .iter()
        .filter(|c| c.open)
        .chain(p.matrix.iter().filter(|c| !c.open));
    for c in ordered {
        let (verb, expect, log) = if c.open {
            ("reaches", "answer", "logged-by")
        } else {
            ("cannot reach", "fail", "not-logged-by")
        };
        t.push_str(&format!(
            "\n# {}\n[[step]]\nname = {}\naction = \"http\"\nfrom = {}\ntarget = \"{GW}:{}\"\nexpect = \"{expect}\"\n{log} = [\"dependents\"]\n",
            c.why,
            q(&format!("{} {verb} the gateway's port {}", c.lan, c.port)),
            q(&c.lan),
            c.port
        ));
    }
    if let Some(first) = p.lans.first()
        && !p.ports.contains(&8000)
    {
        t.push_str(&format!(
            "\n[[step]]\nname = {}\naction = \"http\"\nfrom = {}\ntarget = \"{GW}:8000\"\nexpect = \"fail\"\n",
            q(&format!("{} cannot reach the gateway's control server (8000)", first.name)),
            q(&first.name)
        ));
    }
    t.push_str("\n[leaks]\nwires = [\"gw\", \"uplink\"]\n");
    t
}

/// The outbound subnets made from the plan, as a scenario file: the
/// gateway reaches every LAN of FIREWALL_OUTBOUND_SUBNETS outside the
/// tunnel (its own network's router when the user lists that) and no other.
pub fn outbound_toml(p: &UserLab, source: &str) -> String {
    let mut t = format!(
        "# outbound-subnets: made by leakhound from {source}.\nname = \"outbound-subnets\"\ndescription = {}\ntags = [\"lan\", \"user\"]\n\n{HANDSHAKE_STEP}",
        q(&format!(
            "The gateway reaches the LANs of {source}'s FIREWALL_OUTBOUND_SUBNETS outside the tunnel, and no other LAN."
        ))
    );
    let home = crate::topology::host::HOME;
    let mut targets: Vec<(String, String, bool)> = Vec::new();
    // Its own network only when listed: unlisted, gateways differ (Gluetun
    // always lets its container reach its own network).
    if p.reachable.iter().any(|r| r == home) {
        targets.push((
            format!("its own network's router ({home})"),
            "172.21.0.1".into(),
            true,
        ));
    }
    for l in &p.lans {
        targets.push((
            format!("{} ({})", l.name, l.subnet),
            l.host.to_string(),
            p.reachable.contains(&l.name),
        ));
    }
    for (what, ip, reach) in targets {
        let (verb, expect, log) = if reach {
            ("reaches", "answer", "logged-by")
        } else {
            ("cannot reach", "fail", "not-logged-by")
        };
        t.push_str(&format!(
            "\n[[step]]\nname = {}\naction = \"http\"\nfrom = \"gw\"\ntarget = \"{ip}:80\"\nexpect = \"{expect}\"\n{log} = [\"lan\"]\n",
            q(&format!("the gateway {verb} {what}"))
        ));
    }
    t.push_str("\n[leaks]\nwires = [\"gw\", \"uplink\"]\n");
    t
}

/// Variables the lab sets itself, whatever the user's file says: the
/// provider's side (keys, endpoint, addresses, server selection) and what
/// points outside the lab (the DNS upstream: the retired DNS_ADDRESS and
/// DNS_PLAINTEXT_ADDRESS, today's DNS_UPSTREAM_PLAIN_ADDRESSES; health
/// targets, public-IP service, the control server's auth file). Exact
/// names, then prefixes.
const LAB_OWNED: [&str; 26] = [
    "VPN_SERVICE_PROVIDER",
    "VPN_TYPE",
    "VPN_ENDPOINT_IP",
    "VPN_ENDPOINT_PORT",
    "WIREGUARD_ENDPOINT_IP",
    "WIREGUARD_ENDPOINT_PORT",
    "WIREGUARD_PRIVATE_KEY",
    "WIREGUARD_PRIVATE_KEY_SECRETFILE",
    "WIREGUARD_PUBLIC_KEY",
    "WIREGUARD_PRESHARED_KEY",
    "WIREGUARD_PRESHARED_KEY_SECRETFILE",
    "WIREGUARD_ADDRESSES",
    "WIREGUARD_ADDRESSES_SECRETFILE",
    "WIREGUARD_ADDRESS",
    "VPN_PORT_FORWARDING_PROVIDER",
    "DNS_ADDRESS",
    "DNS_PLAINTEXT_ADDRESS",
    "DNS_UPSTREAM_PLAIN_ADDRESSES",
    "DOT_PROVIDERS",
    "HEALTH_TARGET_ADDRESS",
    "HEALTH_TARGET_ADDRESSES",
    "HEALTH_ICMP_TARGET_IP",
    "HEALTH_ICMP_TARGET_IPS",
    "PUBLICIP_API",
    "PUBLICIP_URL",
    "HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH",
];
const LAB_OWNED_PREFIXES: [&str; 2] = ["SERVER_", "OPENVPN_"];

/// Variables without meaning for the network (time zone, file owners, log
/// verbosity, updater): accepted and left out.
const INERT: [&str; 9] = [
    "TZ",
    "PUID",
    "PGID",
    "UMASK",
    "LOG_LEVEL",
    "VERSION_INFORMATION",
    "UPDATER_PERIOD",
    "UPDATER_VPN_SERVICE_PROVIDERS",
    "STORAGE_FILEPATH",
];

/// Whether the lab replaces this variable.
pub fn lab_owned(key: &str) -> bool {
    LAB_OWNED.contains(&key) || LAB_OWNED_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The user's variables sorted for the lab: `kept` go to the gateway,
/// `replaced` (names only) are set by the lab instead, `inert` are left
/// out. A later definition of a name wins (list `env_file:` variables
/// before `environment:`, as compose does).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserEnv {
    pub kept: Vec<crate::userconf::Var>,
    pub replaced: Vec<String>,
    pub inert: Vec<String>,
}

pub fn split_env(vars: &[crate::userconf::Var]) -> UserEnv {
    let mut last: Vec<&crate::userconf::Var> = Vec::new();
    for v in vars {
        last.retain(|o| o.key != v.key);
        last.push(v);
    }
    let mut out = UserEnv::default();
    for v in last {
        if lab_owned(&v.key) {
            out.replaced.push(v.key.clone());
        } else if INERT.contains(&v.key.as_str()) {
            out.inert.push(v.key.clone());
        } else {
            out.kept.push(v.clone());
        }
    }
    out
}

/// Whether a value switches a feature off (`off`, `no`, `false`, `0`, or
/// empty): a variable the gateway does not know may say that harmlessly.
pub fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "off" | "no" | "false" | "0"
    )
}
