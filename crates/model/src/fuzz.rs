//! The bodies of the fuzz targets for this crate's parsers (`fuzz/`, run
//! by cargo-fuzz), and their committed corpora (`fuzz/corpus/TARGET/`)
//! replayed as plain tests ([`replay`], from `leakhound_proto::fuzz`): what
//! a user or the wire feeds leakhound must give a value or a named error,
//! never a panic. Each function takes the fuzzer's bytes.

use crate::classify::{LeakPolicy, Nonces, classify_with};
use crate::natpmp::{self, Protocol, ResultCode};
use crate::topology::Topology;

/// Packets off the wire: classification of arbitrary frames.
pub fn classify_frame(data: &[u8]) {
    let policy = LeakPolicy {
        local: vec![
            "172.21.0.2".parse().expect("literal"),
            "2001:db8:21::2".parse().expect("literal"),
        ],
        endpoint: "203.0.113.10:51820".parse().expect("literal"),
        allowed: vec!["172.21.0.0/16".parse().expect("literal")],
        tunnel_mtu: Some(1420),
    };
    let _ = classify_with(
        &policy,
        data,
        &Nonces::new(["0123456789ab"]).expect("literal"),
    );
}

/// NAT-PMP messages (from the provider, or to the lab's server); whatever
/// decodes as a mapping encodes back to itself.
pub fn natpmp(data: &[u8]) {
    let _ = natpmp::decode_request(data);
    let _ = natpmp::decode_external_address(data);
    for p in [Protocol::Tcp, Protocol::Udp] {
        if let Ok(m) = natpmp::decode_mapping(data, p) {
            let back = natpmp::encode_mapping_response(ResultCode::Success, &m);
            assert_eq!(natpmp::decode_mapping(&back, p).ok(), Some(m));
        }
    }
}

/// Scenario files.
pub fn scenario(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::scenario::parse("fuzz.toml", text, &Topology::default_profile());
    }
}

/// The user's compose file (its gateway service, with `${VAR}`
/// interpolation from a few set variables), the same text as one value
/// to interpolate, and as an env file.
pub fn compose(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = |k: &str| match k {
        "FORWARD_PORT" => Some("6881".to_string()),
        "EMPTY" => Some(String::new()),
        "WG_KEY" => Some("a2V5LWZvci10aGUtZnV6emVyLW5ldmVyLXByaW50ZWQ9".to_string()),
        _ => None,
    };
    let _ = crate::userconf::parse_compose("fuzz.yml", text, None, &vars);
    let _ = crate::userconf::interpolate(text, &vars, &mut Vec::new());
    let _ = crate::userconf::parse_env_file("fuzz.env", text);
}

/// Waiver files.
pub fn waivers(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::waiver::parse("fuzz.toml", text);
    }
}

/// Audit profiles.
pub fn audit_profile(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::audit::parse("fuzz.toml", text);
    }
}

/// Targets files, and each target read from one checked.
pub fn targets_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(specs) = crate::targets::parse(text)
    {
        for s in &specs {
            let _ = crate::targets::check(s);
        }
    }
}

/// The corpus replay, shared with the gateway's replay tests (it lives in
/// `leakhound_proto`, which the gateway depends on).
pub use leakhound_proto::fuzz::replay;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_corpora_replay_without_a_panic() {
        let dir = env!("CARGO_MANIFEST_DIR");
        for (target, body) in [
            ("classify_frame", classify_frame as fn(&[u8])),
            ("natpmp", natpmp),
            ("scenario", scenario),
            ("compose", compose),
            ("waivers", waivers),
            ("audit_profile", audit_profile),
            ("targets_file", targets_file),
        ] {
            replay(dir, target, body);
        }
    }
}
