//! The harness's side of scenario files: the default suite compiled into
//! the binary from `scenarios/`, and loading a directory of the user's own.
//! The format itself, its typed steps and its parser are pure and live in
//! the model crate ([`crate::model::scenario`]), re-exported here.

pub use crate::model::scenario::*;
use crate::model::topology::Topology;

/// The default suite, compiled into the binary from `scenarios/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("baseline", include_str!("../../scenarios/baseline.toml")),
    (
        "killswitch-tunnel-down",
        include_str!("../../scenarios/killswitch-tunnel-down.toml"),
    ),
    (
        "killswitch-server-gone",
        include_str!("../../scenarios/killswitch-server-gone.toml"),
    ),
    (
        "killswitch-gateway-crash",
        include_str!("../../scenarios/killswitch-gateway-crash.toml"),
    ),
    (
        "killswitch-startup",
        include_str!("../../scenarios/killswitch-startup.toml"),
    ),
    ("ipv6-leak", include_str!("../../scenarios/ipv6-leak.toml")),
    (
        "ipv6-tunnel",
        include_str!("../../scenarios/ipv6-tunnel.toml"),
    ),
    (
        "raw-socket-leak",
        include_str!("../../scenarios/raw-socket-leak.toml"),
    ),
    ("server-ip", include_str!("../../scenarios/server-ip.toml")),
    ("local-net", include_str!("../../scenarios/local-net.toml")),
    (
        "route-injection",
        include_str!("../../scenarios/route-injection.toml"),
    ),
    ("rogue-ra", include_str!("../../scenarios/rogue-ra.toml")),
    (
        "cve-2019-14899",
        include_str!("../../scenarios/cve-2019-14899.toml"),
    ),
    (
        "lan-matrix",
        include_str!("../../scenarios/lan-matrix.toml"),
    ),
    (
        "outbound-subnets",
        include_str!("../../scenarios/outbound-subnets.toml"),
    ),
    ("dns-leak", include_str!("../../scenarios/dns-leak.toml")),
    (
        "dns-blocklist",
        include_str!("../../scenarios/dns-blocklist.toml"),
    ),
    (
        "dns-bad-input",
        include_str!("../../scenarios/dns-bad-input.toml"),
    ),
    (
        "doh-dot-bypass",
        include_str!("../../scenarios/doh-dot-bypass.toml"),
    ),
    (
        "dns-over-tls",
        include_str!("../../scenarios/dns-over-tls.toml"),
    ),
    (
        "dns-over-https",
        include_str!("../../scenarios/dns-over-https.toml"),
    ),
    (
        "dns-plain-upstream",
        include_str!("../../scenarios/dns-plain-upstream.toml"),
    ),
    (
        "dns-upstream-failure",
        include_str!("../../scenarios/dns-upstream-failure.toml"),
    ),
    (
        "dns-server-off",
        include_str!("../../scenarios/dns-server-off.toml"),
    ),
    ("health", include_str!("../../scenarios/health.toml")),
    ("reconnect", include_str!("../../scenarios/reconnect.toml")),
    (
        "gateway-restart",
        include_str!("../../scenarios/gateway-restart.toml"),
    ),
    (
        "control-auth",
        include_str!("../../scenarios/control-auth.toml"),
    ),
    (
        "bandwidth-metrics",
        include_str!("../../scenarios/bandwidth-metrics.toml"),
    ),
    (
        "forwarded-port",
        include_str!("../../scenarios/forwarded-port.toml"),
    ),
    (
        "forwarded-port-refused",
        include_str!("../../scenarios/forwarded-port-refused.toml"),
    ),
    (
        "forwarded-port-redirect",
        include_str!("../../scenarios/forwarded-port-redirect.toml"),
    ),
    ("mtu", include_str!("../../scenarios/mtu.toml")),
    (
        "key-rotation",
        include_str!("../../scenarios/key-rotation.toml"),
    ),
    (
        "port-mapping-requests",
        include_str!("../../scenarios/port-mapping-requests.toml"),
    ),
    (
        "torrent-through-tunnel",
        include_str!("../../scenarios/torrent-through-tunnel.toml"),
    ),
    (
        "torrent-killswitch",
        include_str!("../../scenarios/torrent-killswitch.toml"),
    ),
    (
        "torrent-forwarded-port",
        include_str!("../../scenarios/torrent-forwarded-port.toml"),
    ),
    (
        "usenet-through-tunnel",
        include_str!("../../scenarios/usenet-through-tunnel.toml"),
    ),
    (
        "browser-leaks",
        include_str!("../../scenarios/browser-leaks.toml"),
    ),
];

pub fn builtin(topo: &Topology) -> Result<Vec<Scenario>, ScenarioError> {
    BUILTIN
        .iter()
        .map(|(name, text)| parse(&format!("builtin:{name}"), text, topo))
        .collect()
}

/// The built-in scenarios with `topo`'s roles filled in (a lab made from a
/// user's configuration). One that names a role this lab lacks is kept,
/// as the seed's lab has it, with `unfit` saying why: its run is a skip.
pub fn builtin_for(topo: &Topology) -> Vec<Scenario> {
    let seed = Topology::default_profile();
    BUILTIN
        .iter()
        .map(|(name, text)| {
            let source = format!("builtin:{name}");
            parse(&source, text, topo).unwrap_or_else(|e| {
                let mut s =
                    parse(&source, text, &seed).expect("built-in scenarios fit the seed's lab");
                s.unfit = Some(e.to_string());
                s
            })
        })
        .collect()
}

/// Loads every `*.toml` in `dir`, sorted by file name.
pub fn load_dir(dir: &std::path::Path, topo: &Topology) -> Result<Vec<Scenario>, ScenarioError> {
    let io = |e: std::io::Error| ScenarioError::File {
        file: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| ScenarioError::File {
                file: p.display().to_string(),
                message: e.to_string(),
            })?;
            parse(&p.display().to_string(), &text, topo)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology::default_profile()
    }

    #[test]
    fn the_builtin_suite_parses() {
        let all = builtin(&topo()).unwrap();
        let baseline = all.iter().find(|s| s.name == "baseline").unwrap();
        assert!(matches!(
            baseline.steps[0].action,
            Action::WaitHandshake { .. }
        ));
        assert!(baseline.steps.iter().any(|s| matches!(
            &s.action,
            Action::Http { check: Check { expect: Expect::SeenAs(ip), .. }, .. } if ip.to_string() == "203.0.113.77"
        )));
        assert_eq!(baseline.leak_wires, vec!["gw", "uplink"]);
    }

    #[test]
    fn scenario_files_in_the_repo_match_the_builtin_list() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let on_disk = load_dir(&dir, &topo()).unwrap();
        let builtin = builtin(&topo()).unwrap();
        let names = |v: &[Scenario]| {
            let mut n: Vec<String> = v.iter().map(|s| s.name.clone()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&on_disk), names(&builtin));
    }
}
