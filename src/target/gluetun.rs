//! The `gluetun` target preset: Gluetun's own image (`qmcgaw/gluetun`, or a
//! build of it) as a container target, with the variables that keep it
//! inside the lab and the capabilities it really has. What the preset
//! replaces, and what the lab cannot imitate for it, is data here: the
//! runner applies [`LAB_VARIABLES`] over every scenario's variables, the
//! preset declares [`CAPABILITIES`], and `docs/targets.md` renders both
//! tables (a test keeps them equal).
//!
//! Read from Gluetun's source (v3.41.1 and master of 2026-05), see
//! `docs/research/gluetun-inventory.md` §4: its DoT and DoH upstreams, its
//! default health targets, its DNS small check, its path-MTU and IPv6
//! probes, its block lists and its version check all name real public
//! addresses. The lab never impersonates one, so each is pointed at a lab
//! service or switched off.

use crate::model::scenario::Capability;
use crate::model::topology::addr;

/// What Gluetun offers that the lab can check: its control server (with
/// the lab's roles file) and its health server.
pub const CAPABILITIES: [Capability; 2] = [Capability::ControlServer, Capability::HealthServer];

/// One variable the preset sets for every scenario, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabVariable {
    pub name: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// The variables the preset sets over every scenario's (the scenario's
/// own provider, keys and endpoint stay: the lab's, as for every target).
pub fn lab_variables() -> Vec<LabVariable> {
    let whoami = addr::WHOAMI;
    let v = |name, value: String, why| LabVariable { name, value, why };
    vec![
        v(
            "DNS_UPSTREAM_RESOLVER_TYPE",
            "plain".into(),
            "Gluetun's DoT and DoH upstreams are fixed public addresses (1.1.1.1, 9.9.9.9...): the lab asks its provider's plain resolver instead",
        ),
        v(
            "DNS_UPSTREAM_PLAIN_ADDRESSES",
            format!("{}:53", addr::TUNNEL_SERVER),
            "the provider's resolver, through the tunnel (master's name; v3.41.1 reads DNS_ADDRESS, which the lab sets too)",
        ),
        v(
            "BLOCK_MALICIOUS",
            "off".into(),
            "the lists are downloaded from GitHub; on v3.41.1 a failed download falls back to 1.1.1.1",
        ),
        v("BLOCK_SURVEILLANCE", "off".into(), "as BLOCK_MALICIOUS"),
        v("BLOCK_ADS", "off".into(), "as BLOCK_MALICIOUS"),
        v("DNS_UPDATE_PERIOD", "0".into(), "no periodic list download"),
        v(
            "HEALTH_TARGET_ADDRESSES",
            format!("{whoami}:80"),
            "whoami, by address and on port 80: a TCP connect (port 443 would mean TLS against the image's system roots, which do not know the lab's CA)",
        ),
        v(
            "HEALTH_ICMP_TARGET_IPS",
            whoami.to_string(),
            "whoami instead of 1.1.1.1 and 8.8.8.8",
        ),
        v(
            "HEALTH_SMALL_CHECK_TYPE",
            "icmp".into(),
            "the dns small check asks a hard-coded rotation of public resolvers",
        ),
        v(
            "PUBLICIP_API",
            format!("echoip#http://{whoami}"),
            "whoami answers echoip's GET /json with the caller's address",
        ),
        v(
            "VERSION_INFORMATION",
            "off".into(),
            "asks GitHub for the latest release",
        ),
        v(
            "UPDATER_PERIOD",
            "0".into(),
            "the servers updater asks the providers' APIs",
        ),
        v(
            "PMTUD_ICMP_ADDRESSES",
            whoami.to_string(),
            "master's path-MTU probes (1.1.1.1, 8.8.8.8 by default); WIREGUARD_MTU is set, which skips them, but never at a public address",
        ),
        v(
            "PMTUD_TCP_ADDRESSES",
            format!("{whoami}:80"),
            "as PMTUD_ICMP_ADDRESSES",
        ),
        v(
            "IPV6_CHECK_ADDRESSES",
            format!("[{}]:80", addr::WHOAMI_V6),
            "master's IPv6 support check dials public resolvers",
        ),
    ]
}

/// What the lab cannot imitate for Gluetun's image, and what follows: the
/// scenarios that need a capability it does not declare are skipped with
/// the capability named.
pub const CANNOT_IMITATE: [(&str, &str); 6] = [
    (
        "DNS over TLS and over HTTPS upstreams",
        "their servers are fixed public addresses; `dns-over-tls` and `dns-over-https` need dot-ca-file and leakhound-variables: skipped",
    ),
    (
        "block lists",
        "downloaded from GitHub at start; `dns-blocklist` needs blocklist-files: skipped",
    ),
    (
        "port forwarding",
        "Gluetun forwards ports with its providers' own APIs (PIA, ProtonVPN's NAT-PMP at its fixed gateway), none of which the lab provider speaks; the `forwarded-port*` scenarios need port-forwarding: skipped",
    ),
    (
        "WireGuard key rotation and byte-counter metrics",
        "Gluetun has neither `PUT /v1/wireguard/key` nor `/metrics`; `key-rotation` and `bandwidth-metrics`: skipped",
    ),
    (
        "master's leak check",
        "asks ipleak.net after the tunnel is up and cannot be switched off: it goes into the tunnel and gets no answer (not a leak; a warning in Gluetun's log)",
    ),
    (
        "the kill switch's closing time",
        "Gluetun does not say when its kill switch is in place, so `killswitch-startup` probes from the container's start, as for every foreign gateway",
    ),
];

/// The markers around the preset's tables in docs/targets.md.
pub const BEGIN: &str = "<!-- gluetun-preset: begin (rendered from src/target/gluetun.rs) -->";
pub const END: &str = "<!-- gluetun-preset: end -->";

/// The preset's two tables as docs/targets.md shows them.
pub fn render_markdown() -> String {
    let mut out = String::from("| variable | value | why |\n|---|---|---|\n");
    for v in lab_variables() {
        out.push_str(&format!("| `{}` | `{}` | {} |\n", v.name, v.value, v.why));
    }
    out.push_str("\n| what the lab cannot imitate | and so |\n|---|---|\n");
    for (what, so) in CANNOT_IMITATE {
        out.push_str(&format!("| {what} | {so} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_targets_md_shows_the_presets_tables() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/targets.md"))
            .unwrap();
        let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
        let end = doc.find(END).expect("the end marker");
        let rendered = render_markdown();
        assert!(
            doc[start..end].trim() == rendered.trim(),
            "docs/targets.md's gluetun preset is not src/target/gluetun.rs's: paste this between the markers:\n{rendered}"
        );
    }

    #[test]
    fn the_preset_names_no_public_address() {
        for v in lab_variables() {
            for word in v.value.split([',', '#', '/', '[', ']']) {
                let host = word
                    .rsplit_once(':')
                    .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                    .map_or(word, |(h, _)| h);
                if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                    assert!(
                        crate::model::topology::is_lab_address(ip),
                        "{}={} names {ip}",
                        v.name,
                        v.value
                    );
                }
            }
        }
    }

    #[test]
    fn every_variable_is_one_the_gateway_knows() {
        for v in lab_variables() {
            assert!(
                crate::gateway::variables::find(v.name).is_some(),
                "{} is not in Gluetun's table",
                v.name
            );
        }
    }
}
