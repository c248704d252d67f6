//! Reading a scenario file: the TOML document with its spans, the
//! scenario's own keys through serde (unknown keys refused), each step
//! through its action's typed struct ([`super::actions`]), and every error
//! named with file, line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::actions::{self, FieldError, StepError};
use super::placeholder;
use super::{Capability, Scenario, Step};
use crate::topology::{Topology, wire};

/// A scenario file that cannot be used, with where and why.
pub use crate::located::FileError as ScenarioError;

use crate::located::Doc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    leaks: Option<RawLeaks>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    start: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeaks {
    wires: Vec<Spanned<String>>,
}

/// Parses and validates one scenario file's text.
pub fn parse(file: &str, text: &str, topo: &Topology) -> Result<Scenario, ScenarioError> {
    let filled = fill_roles(&Doc { file, text }, topo)?;
    let text = filled.as_str();
    let doc = Doc { file, text };
    let mut root = DeTable::parse(text).map_err(|e| doc.de(&e, 0, ""))?;
    let root_span = root.span();
    let steps_value = root.get_mut().remove("step");
    let raw = RawScenario::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| doc.de(&e, root_span.start, ""))?;
    if !super::is_file_name_word(&raw.name) {
        return Err(doc.at(
            0,
            format!(
                "name = {:?}: use letters, digits, - and _, at most 64 (it names report files)",
                raw.name
            ),
        ));
    }
    let Some(steps_value) = steps_value else {
        return Err(ScenarioError::File {
            file: file.to_string(),
            message: "no [[step]]: a scenario must do something".into(),
        });
    };
    let steps_span = steps_value.span();
    let DeValue::Array(items) = steps_value.into_inner() else {
        return Err(doc.at(
            steps_span.start,
            "`step` must be an array of tables ([[step]])",
        ));
    };
    let mut steps = Vec::new();
    let mut running = Running::default();
    for (i, item) in items.into_iter().enumerate() {
        let at = item.span().start;
        let step = parse_step(&doc, i + 1, item, topo)?;
        running
            .after(&step.action)
            .map_err(|why| doc.at(at, format!("step {}: {why}", i + 1)))?;
        steps.push(step);
    }
    if steps.is_empty() {
        return Err(ScenarioError::File {
            file: file.to_string(),
            message: "no [[step]]: a scenario must do something".into(),
        });
    }
    let known_wires: Vec<&str> = topo.taps.iter().map(|t| t.wire).collect();
    let leak_wires = match raw.leaks {
        None => vec![wire::GW.to_string(), wire::UPLINK.to_string()],
        Some(l) => {
            let mut v = Vec::new();
            for w in l.wires {
                if !known_wires.contains(&w.get_ref().as_str()) {
                    return Err(doc.at(
                        w.span().start,
                        format!(
                            "leaks.wires: unknown wire {:?} ({})",
                            w.get_ref(),
                            known_wires.join(", ")
                        ),
                    ));
                }
                v.push(w.into_inner());
            }
            v
        }
    };
    let gateway_env = checked_env(&doc, raw.gateway.env)?;
    let mut requires = Vec::new();
    for r in raw.requires {
        match r.get_ref().parse::<Capability>() {
            Ok(c) => requires.push(c),
            Err(e) => return Err(doc.at(r.span().start, format!("requires: {e}"))),
        }
    }
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        tags: raw.tags,
        source: file.to_string(),
        gateway_env,
        gateway_start: raw.gateway.start.unwrap_or(true),
        steps,
        leak_wires,
        requires,
        unfit: None,
    })
}

/// What a scenario has running in the background at a point of its steps:
/// a wait or a stop for something that was never started (or a second
/// start while it runs) is an error of the file, at the step's place, not a
/// failed step when the scenario runs.
#[derive(Default)]
struct Running {
    storm: bool,
    flows: bool,
}

impl Running {
    fn after(&mut self, action: &super::Action) -> Result<(), String> {
        use super::Action::*;
        match action {
            StormStart { .. } | StartGatewayStorming { .. } if self.storm => {
                return Err("background traffic is already running (a storm-stop first)".into());
            }
            StormStart { .. } | StartGatewayStorming { .. } => self.storm = true,
            StormWait { .. } | StormStop if !self.storm => {
                return Err(
                    "no background traffic runs here (a storm-start, or a start-gateway with storm-from, first)"
                        .into(),
                );
            }
            StormStop => self.storm = false,
            FlowsStart { .. } if self.flows => {
                return Err("the flows are already running (a flows-stop first)".into());
            }
            FlowsStart { .. } => self.flows = true,
            FlowsWait { .. } | FlowsStop if !self.flows => {
                return Err("no flows run here (a flows-start first)".into());
            }
            FlowsStop => self.flows = false,
            _ => {}
        }
        Ok(())
    }
}

/// The gateway's variables, each `{name}` in their values checked: a
/// placeholder the runner fills ([`super::placeholder`]), or an error at
/// its place naming the known ones (roles were filled before: an unknown
/// role is unknown here too).
fn checked_env(
    doc: &Doc<'_>,
    env: BTreeMap<String, Spanned<String>>,
) -> Result<BTreeMap<String, String>, ScenarioError> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        for f in placeholder::find(v.get_ref()) {
            if f.placeholder.is_some() {
                continue;
            }
            // Where it is in the file: the same text, counted among its
            // like in the value's own source (escapes before it would
            // shift a computed offset; a `{name}` has none).
            let token = format!("{{{}}}", f.name);
            let nth = placeholder::find(&v.get_ref()[..f.at])
                .iter()
                .filter(|g| g.name == f.name)
                .count();
            let span = v.span();
            let at = doc.text[span.clone()]
                .match_indices(&token)
                .nth(nth)
                .map_or(span.start, |(i, _)| span.start + i);
            let roles: Vec<&str> = crate::topology::ROLES.iter().map(|(r, _)| *r).collect();
            return Err(doc.at(
                at,
                format!(
                    "gateway.env.{k}: unknown placeholder {token} (the run's: {}; the lab's roles: {})",
                    placeholder::known(),
                    roles.join(", ")
                ),
            ));
        }
        out.insert(k, v.into_inner());
    }
    Ok(out)
}

/// Puts the lab's value in place of every `{role}` the file names
/// ([`crate::topology::ROLES`]); other braces (`{lab_ca}`, checked by
/// [`checked_env`]) stay. A role this lab has no value for is an error at
/// its place. (Later errors count columns in the filled text.)
fn fill_roles(doc: &Doc<'_>, topo: &Topology) -> Result<String, ScenarioError> {
    let text = doc.text;
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'{'
            && let Some(len) = text[i + 1..].find('}')
        {
            let name = &text[i + 1..i + 1 + len];
            if let Some((role, what)) = crate::topology::ROLES.iter().find(|(r, _)| *r == name) {
                let Some(v) = topo.roles.get(role) else {
                    return Err(doc.at(
                        i,
                        format!("{{{role}}}: no host of this lab can play it ({what})"),
                    ));
                };
                out.push_str(&text[rest..i]);
                out.push_str(v);
                i += len + 2;
                rest = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[rest..]);
    Ok(out)
}

/// One `[[step]]`: its name and action, then the action's own fields.
fn parse_step(
    doc: &Doc<'_>,
    n: usize,
    item: Spanned<DeValue<'_>>,
    topo: &Topology,
) -> Result<Step, ScenarioError> {
    let span = item.span();
    let DeValue::Table(mut table) = item.into_inner() else {
        return Err(doc.at(span.start, format!("step {n} is not a table")));
    };
    let string = |v: Spanned<DeValue<'_>>, key: &str| -> Result<(usize, String), ScenarioError> {
        let at = v.span().start;
        match v.into_inner() {
            DeValue::String(s) => Ok((at, s.into_owned())),
            _ => Err(doc.at(at, format!("step {n}: `{key}` must be a string"))),
        }
    };
    let name = table
        .remove("name")
        .map(|v| string(v, "name"))
        .transpose()?
        .map(|(_, s)| s);
    let Some(action) = table.remove("action") else {
        let label = name.clone().unwrap_or_default();
        return Err(doc.at(
            span.start,
            format!(
                "step {n} ({label}): no `action` (one of: {})",
                actions::names()
            ),
        ));
    };
    let (action_at, action) = string(action, "action")?;
    let name = name.unwrap_or_else(|| action.clone());
    let prefix = format!("step {n} ({name}): ");
    let Some(spec) = actions::lookup(&action) else {
        return Err(doc.at(
            action_at,
            format!(
                "{prefix}unknown action {action:?} (known: {})",
                actions::names()
            ),
        ));
    };
    let spans: BTreeMap<String, usize> = table
        .iter()
        .map(|(k, v)| (k.get_ref().to_string(), v.span().start))
        .collect();
    let fields = Spanned::new(span.clone(), DeValue::Table(table));
    match (spec.parse)(toml::de::ValueDeserializer::from(fields), &action, topo) {
        Ok(a) => Ok(Step { name, action: a }),
        Err(StepError::De(e)) => Err(doc.de(&e, span.start, &prefix)),
        Err(StepError::Field(FieldError { field, message })) => {
            let at = if field == "action" {
                action_at
            } else {
                spans.get(field).copied().unwrap_or(span.start)
            };
            Err(doc.at(at, format!("{prefix}{field}: {message}")))
        }
    }
}
