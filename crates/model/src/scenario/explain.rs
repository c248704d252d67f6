//! `leakhound explain SCENARIO`, pure: what a scenario does, step by step,
//! what would make each of its checks fail, and the user's requirement it
//! checks (its file's `# Seed:` comment), from the scenario and its text.

use std::fmt::Write as _;

use super::Scenario;
use super::actions;

/// The seed requirement a scenario file names: its `# Seed:` comment and
/// the comment lines that follow it.
pub fn seed_of(text: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("# Seed:"));
    let first = lines
        .next()?
        .trim_start()
        .trim_start_matches("# Seed:")
        .trim();
    let mut out = first.to_string();
    for l in lines {
        let Some(rest) = l.trim_start().strip_prefix('#') else {
            break;
        };
        out.push(' ');
        out.push_str(rest.trim());
    }
    Some(out.trim().to_string())
}

/// The explanation of `scn`, whose file's text is `text`.
pub fn explain(scn: &Scenario, text: &str, file: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} ({file})", scn.name);
    let _ = writeln!(o, "\n{}\n", scn.description);
    if let Some(seed) = seed_of(text) {
        let _ = writeln!(o, "The user's requirement it checks: {seed}\n");
    }
    if !scn.tags.is_empty() {
        let _ = writeln!(o, "Tags: {}\n", scn.tags.join(", "));
    }
    if !scn.gateway_env.is_empty() {
        let _ = writeln!(o, "Gateway variables it sets:");
        for (k, v) in &scn.gateway_env {
            let _ = writeln!(o, "  {k}={v}");
        }
        o.push('\n');
    }
    // The raw steps, for their fields as the file writes them.
    let raw: Vec<toml::Table> = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("step").cloned())
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "Steps (each is a JUnit testcase; it fails when what it says does not hold):"
    );
    for (i, step) in scn.steps.iter().enumerate() {
        let r = raw.get(i);
        let action = r
            .and_then(|t| t.get("action"))
            .and_then(|a| a.as_str())
            .unwrap_or("?");
        let _ = writeln!(o, "  {}. {}", i + 1, step.name);
        let fields: Vec<String> = r
            .map(|t| {
                t.iter()
                    .filter(|(k, _)| *k != "name" && *k != "action")
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "     action {action}{}",
            if fields.is_empty() {
                String::new()
            } else {
                format!(" ({})", fields.join(", "))
            }
        );
        if let Some(spec) = actions::lookup(action) {
            let _ = writeln!(o, "     {}", spec.help);
        }
    }
    let _ = writeln!(o, "\nIt also fails when:");
    for w in &scn.leak_wires {
        let _ = writeln!(
            o,
            "  - any packet on the {w} wire is a leak (anything but WireGuard to the endpoint, traffic to an allowed subnet, or link housekeeping; see docs/DESIGN.md, \"What counts as a leak\")"
        );
    }
    if scn.needs_gateway() {
        let _ = writeln!(
            o,
            "  - the gateway under test exits on its own (a step that kills it expects that)"
        );
    }
    let _ = writeln!(
        o,
        "  - the capture did not see the traffic of a step that passed (the evidence would be missing)"
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# x\n# Seed: \"Kill switch MUST be enabled\",\n# section 5.\nname = \"x\"\ndescription = \"Does x.\"\ntags = [\"seed\"]\n\n[[step]]\nname = \"whoami sees the exit\"\naction = \"http\"\nfrom = \"gw\"\ntarget = \"192.0.2.80:80\"\nexpect = \"seen-as 203.0.113.77\"\n\n[leaks]\nwires = [\"gw\"]\n";

    #[test]
    fn the_seed_comment_is_read_across_lines() {
        assert_eq!(
            seed_of(TEXT).as_deref(),
            Some("\"Kill switch MUST be enabled\", section 5.")
        );
        assert_eq!(seed_of("name = \"x\"\n"), None);
    }

    #[test]
    fn an_explanation_names_steps_fields_and_failure_conditions() {
        let scn = super::super::parse(
            "t.toml",
            TEXT,
            &crate::topology::Topology::default_profile(),
        )
        .unwrap();
        let e = explain(&scn, TEXT, "scenarios/x.toml");
        assert!(e.starts_with("x (scenarios/x.toml)\n"), "{e}");
        assert!(e.contains("requirement it checks: \"Kill switch MUST be enabled\", section 5."));
        assert!(e.contains("  1. whoami sees the exit\n     action http (expect = \"seen-as 203.0.113.77\", from = \"gw\", target = \"192.0.2.80:80\")"), "{e}");
        assert!(e.contains(actions::lookup("http").unwrap().help));
        assert!(e.contains("any packet on the gw wire is a leak"));
        assert!(e.contains("gateway under test exits on its own"));
    }
}
