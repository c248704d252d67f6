//! Targets files (`--targets FILE`, TOML `[[target]]`): what each gateway
//! under test is, read and checked without starting anything. The harness
//! (`leakhound::target`) builds the targets from these descriptions.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::scenario::{CAPABILITIES, Capability};

/// One target as a targets file (or the command line) describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    pub kind: String,
    /// For `command`: the program and its arguments.
    #[serde(default)]
    pub argv: Vec<String>,
    /// For `container`: the image reference (must exist locally).
    pub image: Option<String>,
    /// What it offers (see `leakhound actions`); nothing means the
    /// Gluetun-compatible minimum: start, stop, kill.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    target: Vec<TargetSpec>,
}

/// Reads a targets file's text: TOML errors say where (line, column), two
/// targets may not share a name.
pub fn parse(text: &str) -> Result<Vec<TargetSpec>, String> {
    let f: TargetsFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    let mut seen = BTreeSet::new();
    for t in &f.target {
        if !seen.insert(t.name.as_str()) {
            return Err(format!("two targets are named {:?}", t.name));
        }
    }
    Ok(f.target)
}

/// Checks a description: a usable name, known capabilities, a known kind
/// with what it needs (argv for `command`, image for `container`, neither
/// for `builtin`). Returns its capabilities, or what is wrong.
pub fn check(spec: &TargetSpec) -> Result<BTreeSet<Capability>, String> {
    if !crate::scenario::is_file_name_word(&spec.name) {
        return Err(format!(
            "name {:?}: use letters, digits, - and _, at most 64, as for scenarios (it names report folders and files)",
            spec.name
        ));
    }
    let mut caps = BTreeSet::new();
    for c in &spec.capabilities {
        caps.insert(Capability::from_name(c).ok_or_else(|| {
            let known: Vec<&str> = CAPABILITIES.iter().map(|(n, _, _)| *n).collect();
            format!("unknown capability {c:?} ({})", known.join(", "))
        })?);
    }
    match spec.kind.as_str() {
        "builtin" if !spec.argv.is_empty() || spec.image.is_some() => {
            Err("a builtin target takes no argv or image".into())
        }
        "command" if spec.argv.is_empty() => {
            Err("a command target needs argv (the program and its arguments)".into())
        }
        "container" if spec.image.is_none() => Err("a container target needs image".into()),
        "builtin" | "command" | "container" => Ok(caps),
        other => Err(format!(
            "unknown kind {other:?}: use builtin, command or container"
        )),
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
        assert_eq!(e, "two targets are named \"a\"");
        let e = parse("[[target]]\nname = \"x\"\nkind = \"command\"\ncolour = 1\n").unwrap_err();
        assert!(e.contains("colour") && e.contains("line 4"), "{e}");
        let spec = |name: &str, kind: &str, argv: &[&str], image: Option<&str>, caps: &[&str]| {
            TargetSpec {
                name: name.into(),
                kind: kind.into(),
                argv: argv.iter().map(|s| s.to_string()).collect(),
                image: image.map(str::to_string),
                capabilities: caps.iter().map(|s| s.to_string()).collect(),
            }
        };
        for (s, says) in [
            (spec("a b", "builtin", &[], None, &[]), "name \"a b\""),
            (spec("", "builtin", &[], None, &[]), "name \"\""),
            // A target's name becomes a report folder (compare): never a path.
            (spec("..", "builtin", &[], None, &[]), "name \"..\""),
            (spec(".", "builtin", &[], None, &[]), "name \".\""),
            (spec("x.y", "builtin", &[], None, &[]), "name \"x.y\""),
            (spec("a/b", "builtin", &[], None, &[]), "name \"a/b\""),
            (spec("a", "vm", &[], None, &[]), "unknown kind \"vm\""),
            (spec("a", "builtin", &["x"], None, &[]), "takes no argv"),
            (spec("a", "command", &[], None, &[]), "needs argv"),
            (spec("a", "container", &[], None, &[]), "needs image"),
            (
                spec("a", "command", &["x"], None, &["teleport"]),
                "unknown capability \"teleport\"",
            ),
        ] {
            let e = check(&s).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
