//! `prove`'s edges: the live state of a namespace read for the engine
//! (`nft -j list ruleset` and its text listing, `ip -j addr`, the
//! forwarding switches), and the policy taken from flags or an env file of
//! Gluetun's variables. The question itself is `leakhound_prove`'s, pure.
//! Reading sends nothing and changes nothing; reading nftables needs
//! CAP_NET_ADMIN in the namespace. Writing the witnesses (the lab's
//! `prove` step, `audit --prove --disruptive`) is [`write_witnesses`].

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

use ipnet::IpNet;
use leakhound_net::netns::Netns;
pub mod flow;
pub mod wire;

use leakhound_prove::{Forwarding, Links, Policy, Ruleset};

/// Why the state or the policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("running `{command}` in the namespace")]
    Run {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` in the namespace failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error(transparent)]
    Netns(#[from] leakhound_net::netns::NetnsError),
    #[error("{what}: {source}")]
    Ruleset {
        what: String,
        #[source]
        source: leakhound_prove::ReadError,
    },
    #[error("{what}: not `ip -j addr`'s JSON: {source}")]
    Addresses {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: {message}")]
    Env { file: String, message: String },
    #[error("the underlay {0:?} is not among the namespace's interfaces")]
    NoUnderlay(String),
}

/// What the engine reads of one namespace.
#[derive(Debug, Clone)]
pub struct State {
    pub ruleset: Ruleset,
    pub links: Links,
    pub forwarding: Forwarding,
    /// iptables-legacy tables registered in the namespace
    /// (ip_tables_names, ip6_tables_names under /proc/thread-self/net): rules
    /// nft cannot see.
    pub legacy_tables: Vec<String>,
}

/// The engine's answer for `state`; "cannot prove" where iptables-legacy
/// tables hold rules nft cannot see.
pub fn answer(state: &State, policy: &Policy) -> leakhound_prove::Answer {
    if !state.legacy_tables.is_empty() {
        return leakhound_prove::Answer::Cannot(leakhound_prove::Cannot {
            rule: format!("iptables-legacy tables {}", state.legacy_tables.join(", ")),
            why: "their rules are not in nftables, so nft cannot show them (iptables-legacy-save does)".into(),
        });
    }
    leakhound_prove::prove(&state.ruleset, &state.links, policy, state.forwarding)
}

/// One witness tried on the wire: the packet as text, the marker it
/// carries, and whether it was written (why not, if not).
pub type Tried = (String, Vec<u8>, Result<(), String>);

/// The verdict on the witnesses `tried` (a failure either way): its
/// message, and what became of each. `seen` is the witness the wire
/// showed leaving with that frame ("WIRE: summary"); `wires` the wires
/// looked at.
pub fn witness_verdict(
    tried: &[Tried],
    seen: Option<(&str, &str)>,
    wires: &str,
) -> (String, Vec<String>) {
    let why = tried
        .iter()
        .map(|(packet, _, sent)| match sent {
            Ok(()) if seen.is_some_and(|(p, _)| p == packet) => {
                format!("{packet}: written, seen leaving")
            }
            Ok(()) => format!("{packet}: written, not seen leaving on {wires}"),
            Err(e) => format!("{packet}: {e}"),
        })
        .collect();
    let message = match seen {
        Some((packet, frame)) => {
            format!("the witness left, confirmed on the wire: {frame} (witness: {packet})")
        }
        None => "a model-only witness: the model lets it out, the wire did not show it".into(),
    };
    (message, why)
}

/// Where witnesses may be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A lab's namespace: its wires end at the lab's own hosts, and the
    /// lab's teardown removes whatever a witness needed.
    Lab,
    /// A live gateway ([`live_refusal`]): only raw IP frames from the
    /// underlay's own or a documentation address to a documentation
    /// address, to the link's broadcast address, which no router
    /// forwards; nothing is made in its kernel for them.
    Live,
}

/// Whether `a` is a documentation address (RFC 5737, RFC 3849).
pub fn documentation(a: IpAddr) -> bool {
    let nets: [IpNet; 4] = [
        "192.0.2.0/24".parse().expect("literal"),
        "198.51.100.0/24".parse().expect("literal"),
        "203.0.113.0/24".parse().expect("literal"),
        "2001:db8::/32".parse().expect("literal"),
    ];
    nets.iter().any(|n| n.contains(&a))
}

/// Why `packet` is not written on a live gateway whose underlay has the
/// addresses `own`, if it is not: a process's packet would reach the wire
/// only through the gateway's router (which forwards it on) or through a
/// neighbour entry leakhound would have to make in the gateway's kernel
/// (and which a killed audit would leave behind), and one in state
/// established through a conntrack entry likewise; a frame that is not
/// IP, or to or from an address that is not the gateway's own or a
/// documentation one, could reach or name a real host.
pub fn live_refusal(packet: &leakhound_prove::Packet, own: &[IpAddr]) -> Option<String> {
    if packet.path != leakhound_prove::Path::Raw {
        return Some(format!(
            "not written on a live gateway: a packet {} would leave only through the gateway's router, which forwards it, or a neighbour entry leakhound would have to make in the gateway's kernel (the raw-frame witness is written instead, where there is one)",
            packet.path.describe()
        ));
    }
    if !matches!(packet.ether_type, 0x0800 | 0x86dd) {
        return Some(format!(
            "not written on a live gateway: a frame of EtherType {:#06x} is broadcast to every host of the link",
            packet.ether_type
        ));
    }
    if !documentation(packet.daddr) {
        return Some(format!(
            "not written on a live gateway: {} is not a documentation address (TEST-NET, 2001:db8::/32), so it could reach a real host",
            packet.daddr
        ));
    }
    if !documentation(packet.saddr) && !own.contains(&packet.saddr) {
        return Some(format!(
            "not written on a live gateway: its source {} is neither the underlay's own address nor a documentation address",
            packet.saddr
        ));
    }
    None
}

/// Writes every path's witness for `policy` from `ns` onto `underlay`, the
/// `i`th with the marker `{tag}-{i}`, while the namespace is as `state`
/// was read: the first may rest on a match the model took both ways (an
/// iptables `xt` match) and be stopped, where a raw frame's is not. On a
/// live gateway only what [`live_refusal`] lets through. Once `stop`
/// says so (the audit was interrupted), nothing more is written.
/// Blocking.
pub fn write_witnesses(
    ns: &Netns,
    state: &State,
    policy: &leakhound_prove::Policy,
    underlay: &str,
    tag: &str,
    reach: Reach,
    stop: &dyn Fn() -> bool,
) -> Vec<Tried> {
    let all = leakhound_prove::witnesses(&state.ruleset, &state.links, policy, state.forwarding)
        .unwrap_or_default();
    all.iter()
        .enumerate()
        .map(|(i, packet)| {
            let marker = format!("{tag}-{i}").into_bytes();
            let refused = match reach {
                Reach::Live => live_refusal(packet, &state.links.underlay_addrs),
                Reach::Lab => None,
            };
            let sent = if stop() {
                Err("not written: the run was interrupted".into())
            } else if let Some(why) = refused {
                Err(why)
            } else {
                write_witness(ns, packet, underlay, i as u16, &marker)
            };
            (packet.to_string(), marker, sent)
        })
        .collect()
}

/// Writes one witness from `ns`, one in conntrack state established after
/// its connection is built, one sent by a process with a neighbour entry
/// for its destination where the namespace has none (each taken out
/// again: [`flow`]); why not, where it
/// cannot be (a forwarded packet needs a neighbour to send it in, one in
/// state related an expectation: model-only witnesses).
fn write_witness(
    ns: &Netns,
    packet: &leakhound_prove::Packet,
    underlay: &str,
    id: u16,
    marker: &[u8],
) -> Result<(), String> {
    if packet.path == leakhound_prove::Path::Forward {
        return Err(format!(
            "a packet {} cannot be written from the namespace",
            packet.path.describe()
        ));
    }
    if packet.ct_state == "related" {
        return Err(
            "it needs a connection in conntrack state related first (an expectation or an ICMP error of a known connection), which leakhound does not build".into(),
        );
    }
    let _flow = if packet.ct_state == "established" {
        Some(
            flow::Flow::build(ns, packet, id)
                .map_err(|e| format!("its connection could not be built (`conntrack -I`): {e}"))?,
        )
    } else {
        None
    };
    // Sent by a process: a next hop that needs no answer.
    let _neighbour = if packet.path == leakhound_prove::Path::Output {
        flow::Neighbour::ensure(ns, packet.daddr, underlay).map_err(|e| {
            format!("its neighbour entry could not be made (`ip neigh replace`): {e}")
        })?
    } else {
        None
    };
    ns.run(|| wire::write(packet, underlay, id, marker))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the kernel refused it: {e}"))
}

fn run_in(ns: &Netns, program: &str, args: &[&str]) -> Result<String, ProveError> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args);
    ns.command(&mut cmd)?;
    let out = cmd.output().map_err(|source| ProveError::Run {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(ProveError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the live state of `ns`, with `underlay` as its underlay.
pub fn read_live(ns: &Netns, underlay: &str) -> Result<State, ProveError> {
    let json = run_in(ns, "nft", &["-j", "list", "ruleset"])?;
    let text = run_in(ns, "nft", &["list", "ruleset"])?;
    // An empty ruleset lists as nothing at all in some nft versions.
    let json = if json.trim().is_empty() {
        "{\"nftables\": []}".to_string()
    } else {
        json
    };
    let mut ruleset = Ruleset::from_json(&json).map_err(|source| ProveError::Ruleset {
        what: "nft -j list ruleset".into(),
        source,
    })?;
    ruleset.devices_from_text(&text);
    let addrs = run_in(ns, "ip", &["-j", "addr"])?;
    let links = leakhound_prove::links_from_ip_json(&addrs, underlay).map_err(|source| {
        ProveError::Addresses {
            what: "ip -j addr".into(),
            source,
        }
    })?;
    if !links.names.iter().any(|(n, _)| n == underlay) {
        return Err(ProveError::NoUnderlay(underlay.into()));
    }
    let read = |key: &'static str| {
        ns.run(move || std::fs::read_to_string(format!("/proc/sys/{key}")))
            .ok()
            .and_then(Result::ok)
            // Unreadable: taken as on (the sound side).
            .is_none_or(|v| v.trim() != "0")
    };
    let forwarding = Forwarding {
        v4: read("net/ipv4/ip_forward"),
        v6: read("net/ipv6/conf/all/forwarding"),
    };
    let mut legacy_tables = Vec::new();
    for (family, file) in [("ip", "ip_tables_names"), ("ip6", "ip6_tables_names")] {
        let names = ns
            .run(move || std::fs::read_to_string(format!("/proc/thread-self/net/{file}")))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        legacy_tables.extend(names.split_whitespace().map(|t| format!("{family} {t}")));
    }
    Ok(State {
        ruleset,
        links,
        forwarding,
        legacy_tables,
    })
}

/// Reads saved state: `nft -j list ruleset` (and, where nft's JSON leaves
/// out a netdev chain's device, `nft list ruleset`), `ip -j addr`.
pub fn read_files(
    ruleset: (&str, &str),
    text: Option<&str>,
    addresses: (&str, &str),
    underlay: &str,
    forwarding: Forwarding,
) -> Result<State, ProveError> {
    let mut rs = Ruleset::from_json(ruleset.1).map_err(|source| ProveError::Ruleset {
        what: ruleset.0.into(),
        source,
    })?;
    if let Some(t) = text {
        rs.devices_from_text(t);
    }
    let links = leakhound_prove::links_from_ip_json(addresses.1, underlay).map_err(|source| {
        ProveError::Addresses {
            what: addresses.0.into(),
            source,
        }
    })?;
    if !links.names.iter().any(|(n, _)| n == underlay) {
        return Err(ProveError::NoUnderlay(underlay.into()));
    }
    Ok(State {
        ruleset: rs,
        links,
        forwarding,
        legacy_tables: Vec::new(),
    })
}

/// The policy from Gluetun's variables in an env file: the endpoint
/// (`VPN_ENDPOINT_IP` or `WIREGUARD_ENDPOINT_IP`, port `VPN_ENDPOINT_PORT`
/// or `WIREGUARD_ENDPOINT_PORT`, default 51820) and
/// `FIREWALL_OUTBOUND_SUBNETS`.
pub fn policy_from_env(file: &str, text: &str) -> Result<Policy, ProveError> {
    let vars =
        leakhound_model::userconf::parse_env_file(file, text).map_err(|e| ProveError::Env {
            file: file.into(),
            message: e.to_string(),
        })?;
    let get = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            vars.iter()
                .rev()
                .find(|v| v.key == *k)
                .map(|v| (v.key.clone(), v.line, v.value.expose().trim().to_string()))
        })
    };
    let bad = |key: &str, line: Option<usize>, what: String| ProveError::Env {
        file: match line {
            Some(l) => format!("{file}:{l}"),
            None => file.into(),
        },
        message: format!("{key}: {what}"),
    };
    let mut policy = Policy {
        endpoints: Vec::new(),
        allow: Vec::new(),
    };
    if let Some((key, line, ip)) = get(&["VPN_ENDPOINT_IP", "WIREGUARD_ENDPOINT_IP"]) {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad(&key, line, format!("{ip:?} is not an IP address")))?;
        let port = match get(&["VPN_ENDPOINT_PORT", "WIREGUARD_ENDPOINT_PORT"]) {
            Some((pkey, pline, p)) => p
                .parse::<u16>()
                .map_err(|_| bad(&pkey, pline, format!("{p:?} is not a port")))?,
            None => 51820,
        };
        policy.endpoints.push((ip, port));
    }
    if let Some((key, line, list)) = get(&["FIREWALL_OUTBOUND_SUBNETS"]) {
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            policy.allow.push(
                s.parse::<IpNet>()
                    .map_err(|_| bad(&key, line, format!("{s:?} is not a subnet")))?,
            );
        }
    }
    Ok(policy)
}

/// `--endpoint IP:PORT`.
pub fn parse_endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    s.parse::<SocketAddr>()
        .map(|a| (a.ip(), a.port()))
        .map_err(|_| format!("{s:?}: expected IP:PORT (an IPv6 one as [ADDR]:PORT)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(
        path: leakhound_prove::Path,
        ether_type: u16,
        saddr: &str,
        daddr: &str,
    ) -> leakhound_prove::Packet {
        leakhound_prove::Packet {
            path,
            ether_type,
            l4: 6,
            saddr: saddr.parse().unwrap(),
            daddr: daddr.parse().unwrap(),
            ports: Some((40000, 80)),
            icmp: None,
            tcp_flags: Some(2),
            mark: 0,
            ct_state: "invalid",
            fragment: false,
            dscp: 0,
            iif: None,
        }
    }

    #[test]
    fn a_live_gateway_gets_only_ip_frames_between_its_own_and_documentation_addresses() {
        use leakhound_prove::Path;
        let own: Vec<IpAddr> = vec!["172.17.0.5".parse().unwrap()];
        assert_eq!(
            live_refusal(&frame(Path::Raw, 0x0800, "172.17.0.5", "192.0.2.80"), &own),
            None
        );
        assert_eq!(
            live_refusal(&frame(Path::Raw, 0x0800, "203.0.113.9", "192.0.2.80"), &own),
            None
        );
        for (p, why) in [
            (
                frame(Path::Output, 0x0800, "172.17.0.5", "192.0.2.80"),
                "router",
            ),
            (
                frame(Path::Raw, 0x88cc, "172.17.0.5", "192.0.2.80"),
                "EtherType",
            ),
            (
                frame(Path::Raw, 0x0800, "172.17.0.5", "9.9.9.9"),
                "9.9.9.9 is not a documentation address",
            ),
            (
                frame(Path::Raw, 0x0800, "8.8.8.8", "192.0.2.80"),
                "its source 8.8.8.8",
            ),
        ] {
            let r = live_refusal(&p, &own).unwrap_or_else(|| panic!("{p} written"));
            assert!(r.contains(why), "{r}");
        }
    }

    #[test]
    fn only_documentation_addresses_are_written_to_on_a_live_gateway() {
        for a in [
            "192.0.2.80",
            "198.51.100.7",
            "203.0.113.255",
            "2001:db8:80::80",
        ] {
            assert!(documentation(a.parse().unwrap()), "{a}");
        }
        for a in [
            "1.1.1.1",
            "192.0.3.1",
            "172.21.0.1",
            "2001:4860::8888",
            "::1",
        ] {
            assert!(!documentation(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn the_policy_comes_from_gluetuns_variables() {
        let p = policy_from_env(
            "gw.env",
            "VPN_ENDPOINT_IP=203.0.113.10\nVPN_ENDPOINT_PORT=51820\nFIREWALL_OUTBOUND_SUBNETS=172.20.0.0/16, 192.168.10.0/24\n",
        )
        .unwrap();
        assert_eq!(p.endpoints, [("203.0.113.10".parse().unwrap(), 51820)]);
        assert_eq!(p.allow.len(), 2);
        let e = policy_from_env("gw.env", "\nWIREGUARD_ENDPOINT_IP=nope\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "gw.env:2: WIREGUARD_ENDPOINT_IP: \"nope\" is not an IP address"
        );
        assert_eq!(parse_endpoint("[2001:db8::1]:51820").unwrap().1, 51820);
        assert!(parse_endpoint("203.0.113.10").is_err());
    }
}
