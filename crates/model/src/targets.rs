//! Targets files (`--targets FILE`, TOML `[[target]]`): what each gateway
//! under test is, read and checked without starting anything. The harness
//! (`leakhound::target`) builds the targets from these descriptions.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::scenario::Capability;

/// What a target is: leakhound's own gateway, any program, or a container
/// image (`kind` in targets files and reports, `--target` on the command
/// line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Builtin,
    Command,
    Container,
    /// Gluetun's own image (or a build of it) as a container target, with
    /// the preset that keeps it inside the lab (`leakhound::target::gluetun`).
    Gluetun,
}

impl TargetKind {
    /// Its name, as targets files write it.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Builtin => "builtin",
            TargetKind::Command => "command",
            TargetKind::Container => "container",
            TargetKind::Gluetun => "gluetun",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One target as a targets file (or the command line) describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    pub kind: TargetKind,
    /// For `command`: the program and its arguments.
    #[serde(default)]
    pub argv: Vec<String>,
    /// For `container`: the image reference (must exist locally).
    pub image: Option<String>,
    /// What it offers (see `leakhound actions`); nothing means the
    /// Gluetun-compatible minimum: start, stop, kill. An unknown name is
    /// refused where it is written.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Why a targets file, or one target's description, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    /// TOML, an unknown key, kind or capability: with its line and column.
    #[error("{}", .0.to_string().trim())]
    Toml(#[from] toml::de::Error),
    #[error("two targets are named {0:?}")]
    DuplicateName(String),
    #[error(
        "name {0:?}: use letters, digits, - and _, at most 64, as for scenarios (it names report folders and files)"
    )]
    BadName(String),
    #[error("a builtin target takes no argv or image")]
    BuiltinTakesNothing,
    #[error("a command target needs argv (the program and its arguments)")]
    CommandNeedsArgv,
    #[error("a {0} target needs image")]
    ContainerNeedsImage(TargetKind),
    #[error("a {0} target takes no argv (its image has its own entrypoint)")]
    ImageTakesNoArgv(TargetKind),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    target: Vec<TargetSpec>,
}

/// Reads a targets file's text: TOML errors (an unknown kind or capability
/// among them) say where (line, column), two targets may not share a name.
pub fn parse(text: &str) -> Result<Vec<TargetSpec>, TargetsError> {
    let f: TargetsFile = toml::from_str(text)?;
    let mut seen = BTreeSet::new();
    for t in &f.target {
        if !seen.insert(t.name.as_str()) {
            return Err(TargetsError::DuplicateName(t.name.clone()));
        }
    }
    Ok(f.target)
}

/// Checks a description: a usable name, and what its kind needs (argv for
/// `command`, image for `container`, neither for `builtin`). Returns its
/// capabilities, or what is wrong.
pub fn check(spec: &TargetSpec) -> Result<BTreeSet<Capability>, TargetsError> {
    if !crate::scenario::is_file_name_word(&spec.name) {
        return Err(TargetsError::BadName(spec.name.clone()));
    }
    match spec.kind {
        TargetKind::Builtin if !spec.argv.is_empty() || spec.image.is_some() => {
            Err(TargetsError::BuiltinTakesNothing)
        }
        TargetKind::Command if spec.argv.is_empty() => Err(TargetsError::CommandNeedsArgv),
        TargetKind::Container | TargetKind::Gluetun if spec.image.is_none() => {
            Err(TargetsError::ContainerNeedsImage(spec.kind))
        }
        TargetKind::Container | TargetKind::Gluetun if !spec.argv.is_empty() => {
            Err(TargetsError::ImageTakesNoArgv(spec.kind))
        }
        _ => Ok(spec.capabilities.iter().copied().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_file_is_read_and_each_target_checked() {
        let t = parse(
            "[[target]]\nname = \"ours\"\nkind = \"builtin\"\n\n[[target]]\nname = \"wg-quick\"\nkind = \"command\"\nargv = [\"./gw.sh\"]\ncapabilities = [\"health-server\"]\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert!(check(&t[0]).unwrap().is_empty());
        assert_eq!(
            check(&t[1]).unwrap().into_iter().collect::<Vec<_>>(),
            [Capability::HealthServer]
        );
        let e = parse("[[target]]\nname = \"a\"\nkind = \"builtin\"\n[[target]]\nname = \"a\"\nkind = \"builtin\"\n").unwrap_err();
        assert!(matches!(&e, TargetsError::DuplicateName(n) if n == "a"));
        assert_eq!(e.to_string(), "two targets are named \"a\"");
        let e = parse("[[target]]\nname = \"x\"\nkind = \"command\"\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && e.contains("line 4"), "{e}");
        let e = parse("[[target]]\nname = \"a\"\nkind = \"vm\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("unknown variant `vm`") && e.contains("container"),
            "{e}"
        );
        let e = parse(
            "[[target]]\nname = \"a\"\nkind = \"command\"\nargv = [\"x\"]\ncapabilities = [\"health-server\", \"teleport\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 5")
                && e.contains("unknown capability \"teleport\"")
                && e.contains("control-server, health-server"),
            "{e}"
        );
        let spec = |name: &str, kind: TargetKind, argv: &[&str], image: Option<&str>| TargetSpec {
            name: name.into(),
            kind,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            image: image.map(str::to_string),
            capabilities: vec![],
        };
        use TargetKind::{Builtin, Command, Container};
        for (s, says) in [
            (spec("a b", Builtin, &[], None), "name \"a b\""),
            (spec("", Builtin, &[], None), "name \"\""),
            // A target's name becomes a report folder (compare): never a path.
            (spec("..", Builtin, &[], None), "name \"..\""),
            (spec(".", Builtin, &[], None), "name \".\""),
            (spec("x.y", Builtin, &[], None), "name \"x.y\""),
            (spec("a/b", Builtin, &[], None), "name \"a/b\""),
            (spec("a", Builtin, &["x"], None), "takes no argv"),
            (spec("a", Command, &[], None), "needs argv"),
            (spec("a", Container, &[], None), "needs image"),
        ] {
            let e = check(&s).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn kinds_and_capabilities_keep_their_names_both_ways() {
        for k in [
            TargetKind::Builtin,
            TargetKind::Command,
            TargetKind::Container,
        ] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<TargetKind>(&json).unwrap(), k);
        }
        for (name, c, _) in crate::scenario::CAPABILITIES {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Capability>(&json).unwrap(), c);
            assert_eq!(name.parse::<Capability>().unwrap(), c);
        }
        let e = "teleport".parse::<Capability>().unwrap_err().to_string();
        assert!(
            e.starts_with("unknown capability \"teleport\" (control-server, ")
                && e.contains("metrics"),
            "{e}"
        );
    }
}
