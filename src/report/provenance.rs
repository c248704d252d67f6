//! What a run tested, for `summary.json`'s `provenance`: the leakhound that
//! ran, each gateway under test pinned down (the built-in's and a command's
//! binary by SHA-256, a container's image by its id, a command's argument
//! list), and the configuration the gateways got (the policy's variables
//! and `--env`), with secrets' values replaced by `<redacted>` and a
//! SHA-256 of that redacted form, so two runs can be compared without a
//! secret ever being written. Reading binaries and asking Docker are the
//! only I/O; redaction and hashing are pure.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::model::scrub::{self, REDACTED};
use crate::model::userconf::is_secret;
use crate::target::{TargetKind, TargetSpec};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Provenance {
    pub leakhound_version: &'static str,
    pub targets: Vec<TargetIdentity>,
    pub config: RedactedConfig,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetIdentity {
    pub name: String,
    pub kind: IdentityKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Why something above is missing (a binary that could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What was under test: a target of a run or compare (its kind, as targets
/// files write it), or a gateway already running that `audit` checked.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    Builtin,
    Command,
    Container,
    /// Gluetun's image with the lab's preset.
    Gluetun,
    /// `audit`: a live gateway, where it runs.
    Live,
}

impl From<TargetKind> for IdentityKind {
    fn from(k: TargetKind) -> Self {
        match k {
            TargetKind::Builtin => IdentityKind::Builtin,
            TargetKind::Command => IdentityKind::Command,
            TargetKind::Container => IdentityKind::Container,
            TargetKind::Gluetun => IdentityKind::Gluetun,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedactedConfig {
    /// Where it came from: `seed` (the built-in policy), or the user's file.
    pub source: String,
    pub variables: BTreeMap<String, String>,
    /// SHA-256 of the redacted variables as compact JSON (sorted keys).
    pub sha256: String,
    /// Variables of `source` that today's Gluetun reads otherwise than
    /// their names say (names only; not part of the hash).
    pub findings: Vec<crate::gateway::variables::Finding>,
}

/// A SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The configuration with every secret's value replaced, and its hash: a
/// secret-looking name's whole value; in the others every registered
/// secret, after the credentials inside UP/DOWN commands are registered
/// ([`scrub::register_variable`]).
pub fn redact(source: &str, vars: &BTreeMap<String, String>) -> RedactedConfig {
    let variables: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| {
            let v = if is_secret(k) {
                REDACTED.to_string()
            } else {
                scrub::register_variable(k, v);
                scrub::clean(v)
            };
            (k.clone(), v)
        })
        .collect();
    let json = serde_json::to_vec(&variables).expect("a map of strings serializes");
    RedactedConfig {
        source: source.to_string(),
        sha256: sha256_hex(&json),
        variables,
        findings: Vec::new(),
    }
}

/// A gateway under test, pinned down. `exe` is leakhound's own binary (the
/// built-in gateway's).
pub fn identify(spec: &TargetSpec, exe: &Path) -> TargetIdentity {
    let mut id = TargetIdentity {
        name: spec.name.clone(),
        kind: spec.kind.into(),
        binary_sha256: None,
        image: spec.image.clone(),
        image_id: None,
        command: spec.argv.clone(),
        note: None,
    };
    let binary = match spec.kind {
        TargetKind::Builtin => Some(exe.to_path_buf()),
        TargetKind::Command => spec.argv.first().map(|p| {
            let p = Path::new(p);
            if p.components().count() > 1 {
                p.to_path_buf()
            } else {
                // A bare name, as the shell would find it.
                std::env::var_os("PATH")
                    .and_then(|path| {
                        std::env::split_paths(&path)
                            .map(|d| d.join(p))
                            .find(|c| c.is_file())
                    })
                    .unwrap_or_else(|| p.to_path_buf())
            }
        }),
        TargetKind::Container | TargetKind::Gluetun => None,
    };
    if let Some(b) = binary {
        match std::fs::read(&b) {
            Ok(bytes) => id.binary_sha256 = Some(sha256_hex(&bytes)),
            Err(e) => id.note = Some(format!("{}: {e}", b.display())),
        }
    }
    if let Some(image) = &spec.image {
        match std::process::Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
        {
            Ok(o) if o.status.success() => {
                id.image_id = Some(String::from_utf8_lossy(&o.stdout).trim().to_string());
            }
            Ok(o) => id.note = Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => id.note = Some(format!("docker: {e}")),
        }
    }
    id
}

/// The provenance of a run (or an audit: its profile file as the source).
pub fn of_run(
    specs: &[TargetSpec],
    exe: &Path,
    source: &str,
    vars: &BTreeMap<String, String>,
    findings: &[crate::gateway::variables::Finding],
) -> Provenance {
    Provenance {
        leakhound_version: env!("CARGO_PKG_VERSION"),
        targets: specs.iter().map(|s| identify(s, exe)).collect(),
        config: RedactedConfig {
            findings: findings.to_vec(),
            ..redact(source, vars)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_hash_follows_the_rest() {
        let mut v = BTreeMap::new();
        v.insert(
            "WIREGUARD_PRIVATE_KEY".to_string(),
            "kPriv+abc=".to_string(),
        );
        v.insert(
            "FIREWALL_OUTBOUND_SUBNETS".to_string(),
            "10.0.0.0/8".to_string(),
        );
        v.insert("OPENVPN_PASSWORD".to_string(), "hunter2".to_string());
        let a = redact("seed", &v);
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            !json.contains("kPriv") && !json.contains("hunter2"),
            "{json}"
        );
        assert_eq!(a.variables["WIREGUARD_PRIVATE_KEY"], REDACTED);
        assert_eq!(a.variables["FIREWALL_OUTBOUND_SUBNETS"], "10.0.0.0/8");
        assert_eq!(a.sha256.len(), 64);
        // Another secret: the same hash (nothing about secrets leaks);
        // another subnet: another hash.
        v.insert("WIREGUARD_PRIVATE_KEY".to_string(), "other".to_string());
        assert_eq!(redact("seed", &v).sha256, a.sha256);
        v.insert(
            "FIREWALL_OUTBOUND_SUBNETS".to_string(),
            "10.1.0.0/16".to_string(),
        );
        assert_ne!(redact("seed", &v).sha256, a.sha256);
        // The credentials in an UP command, by value.
        v.insert(
            "VPN_PORT_FORWARDING_UP_COMMAND".to_string(),
            "curl -u qbt:canary-up-cmd-9931 http://127.0.0.1:8080/".to_string(),
        );
        let c = redact("seed", &v);
        let up = &c.variables["VPN_PORT_FORWARDING_UP_COMMAND"];
        assert!(!up.contains("canary-up-cmd-9931"), "{up}");
        assert!(up.starts_with("curl -u <redacted>"), "{up}");
    }

    #[test]
    fn a_target_is_pinned_by_its_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("gw");
        std::fs::write(&bin, b"abc").unwrap();
        let spec = TargetSpec {
            name: "mine".into(),
            kind: TargetKind::Command,
            argv: vec![bin.display().to_string(), "--flag".into()],
            image: None,
            capabilities: vec![],
        };
        let id = identify(&spec, Path::new("/nonexistent"));
        assert_eq!(
            id.binary_sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(id.command.len(), 2);
        // The kind is written as targets files write it.
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(json["kind"], "command");
        let live = serde_json::to_value(IdentityKind::Live).unwrap();
        assert_eq!(live, "live");
        let builtin = TargetSpec {
            kind: TargetKind::Builtin,
            argv: vec![],
            ..spec
        };
        let id = identify(&builtin, Path::new("/nonexistent/leakhound"));
        assert!(id.binary_sha256.is_none());
        assert!(id.note.unwrap().contains("/nonexistent/leakhound"));
    }
}
