//! `list`, `explain` and `actions`: the suite's scenarios, what one
//! checks, and what a scenario file may say; printed, nothing run. Also
//! how every command loads and selects the scenarios.

use std::path::Path;

use anyhow::{Context, Result, bail};

use leakhound::model::topology::Topology;
use leakhound::scenario::model::{self as scenario, Scenario};

use super::args::{ExplainArgs, ListArgs, OutputFormat, SelectArgs};
use super::default_sigpipe;

/// `leakhound list`: a line per selected scenario, or one JSON array.
pub(crate) fn list(args: ListArgs) -> Result<()> {
    default_sigpipe();
    let all = load_scenarios(args.scenarios.as_deref(), &Topology::default_profile())
        .and_then(|all| select_scenarios(all, &args.select))?;
    if args.format == OutputFormat::Json {
        let list: Vec<serde_json::Value> = all.iter().map(scenario_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for s in all {
            println!("{:<28} {}", s.name, s.source);
        }
    }
    Ok(())
}

/// `leakhound explain`: the scenario, its text and where it lives.
pub(crate) fn explain(args: ExplainArgs) -> Result<()> {
    default_sigpipe();
    print!("{}", explanation(&args)?);
    Ok(())
}

/// `leakhound actions`: every step action and every capability.
pub(crate) fn actions() -> Result<()> {
    use leakhound::model::scenario::{CAPABILITIES, actions::ACTIONS};
    default_sigpipe();
    println!("Step actions (action = \"NAME\" in a [[step]]; every step also takes `name`):\n");
    for a in ACTIONS {
        println!("  {}\n      {}\n", a.name, a.help);
    }
    println!("Capabilities (requires = [...] in a scenario; a target lacking one skips it):\n");
    for (name, _, what) in CAPABILITIES {
        println!("  {name}\n      {what}\n");
    }
    Ok(())
}

/// What `explain` prints, in its format.
fn explanation(a: &ExplainArgs) -> Result<String> {
    let all = load_scenarios(a.scenarios.as_deref(), &Topology::default_profile())?;
    let Some(scn) = all.iter().find(|s| s.name == a.scenario) else {
        bail!("no scenario named {:?} (see `leakhound list`)", a.scenario);
    };
    let (text, file) = match scn.source.strip_prefix("builtin:") {
        Some(name) => (
            scenario::BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .unwrap_or_default(),
            format!("built in, from scenarios/{name}.toml"),
        ),
        None => (
            std::fs::read_to_string(&scn.source)
                .with_context(|| format!("reading {}", scn.source))?,
            scn.source.clone(),
        ),
    };
    let explanation = leakhound::model::scenario::explain::explain(scn, &text, &file);
    if a.format == OutputFormat::Json {
        let mut v = scenario_json(scn);
        v["requirement"] = leakhound::model::scenario::explain::seed_of(&text).into();
        v["steps"] = scn
            .steps
            .iter()
            .map(|st| serde_json::Value::from(st.name.clone()))
            .collect();
        v["explanation"] = explanation.into();
        leakhound::model::scrub::clean_json(&mut v);
        return Ok(format!("{v}\n"));
    }
    Ok(explanation)
}

/// A scenario as `list --format json` and `explain --format json` show it.
fn scenario_json(s: &Scenario) -> serde_json::Value {
    let mut v = serde_json::json!({
        "name": s.name,
        "source": s.source,
        "description": s.description,
        "tags": s.tags,
        "requires": s.requirements().iter().map(|c| c.name()).collect::<Vec<_>>(),
    });
    leakhound::model::scrub::clean_json(&mut v);
    v
}

/// The built-in suite for `topo`, plus every scenario in `dir`.
pub(super) fn load_scenarios(dir: Option<&Path>, topo: &Topology) -> Result<Vec<Scenario>> {
    let mut all = scenario::builtin_for(topo);
    if let Some(d) = dir {
        let extra =
            scenario::load_dir(d, topo).with_context(|| format!("scenarios in {}", d.display()))?;
        for s in extra {
            if all.iter().any(|a| a.name == s.name) {
                bail!("{}: a scenario named {:?} exists already", s.source, s.name);
            }
            all.push(s);
        }
    }
    Ok(all)
}

/// Applies --only, --tag, --exclude-tag and --shard. Empty is an error,
/// except for a shard (a CI job with nothing to do passes).
pub(super) fn select_scenarios(mut all: Vec<Scenario>, a: &SelectArgs) -> Result<Vec<Scenario>> {
    if !a.only.is_empty() {
        for o in &a.only {
            if !all.iter().any(|s| &s.name == o) {
                bail!("--only {o}: no such scenario (see `leakhound list`)");
            }
        }
        all.retain(|s| a.only.contains(&s.name));
    }
    if !a.tags.is_empty() {
        all.retain(|s| s.tags.iter().any(|t| a.tags.contains(t)));
    }
    all.retain(|s| !s.tags.iter().any(|t| a.exclude_tags.contains(t)));
    if all.is_empty() {
        bail!("no scenario is left after --only/--tag/--exclude-tag (see `leakhound list`)");
    }
    if let Some(shard) = a.shard {
        // Weighted by what each scenario waits, plus a second for its
        // setup and teardown.
        let items: Vec<(&str, std::time::Duration)> = all
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.expected_wait(leakhound::scenario::runner::PROBE_TIMEOUT)
                        + std::time::Duration::from_secs(1),
                )
            })
            .collect();
        let keep = leakhound::model::shard::select(&items, shard);
        let mut k = keep.into_iter();
        all.retain(|_| k.next().unwrap_or(false));
    }
    Ok(all)
}
