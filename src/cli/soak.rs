//! `soak`: the kill switch under repeated faults, as one long scenario
//! ([`leakhound::scenario::soak`]) run like a suite of one against the
//! built-in gateway, as the image ships it; prints its figures.

use anyhow::Result;

use leakhound::lab::wgserver::ProviderKind;
use leakhound::profile::Profile;
use leakhound::suite::Verdict;
use leakhound::target::TargetSpec;

use super::args::{DependentsKind, OutputFormat, SelectArgs, SoakArgs, SuiteArgs};
use super::{BUILDS_NAMESPACES, harness_tracing, require_root};

/// `leakhound soak`.
pub(crate) fn soak(args: SoakArgs) -> Result<Verdict> {
    harness_tracing(false);
    require_root("soak", BUILDS_NAMESPACES)?;
    let scn =
        leakhound::scenario::soak::soak_scenario(args.tunnel_kills, args.crashes, args.reconnects);
    let suite = SuiteArgs {
        scenarios: None,
        select: SelectArgs::default(),
        prometheus: None,
        waivers: None,
        format: OutputFormat::Text,
        out: args.out,
        env: vec![],
        quiet: false,
        fail_on_skip: false,
        allow_skip: vec![],
        provider: ProviderKind::Boringtun,
        jobs: Some(1),
        compose: None,
        service: None,
        env_file: None,
        dependents: DependentsKind::StandIn,
        seed: None,
        strict: false,
    };
    let specs = vec![TargetSpec {
        name: "builtin".into(),
        kind: leakhound::target::TargetKind::Builtin,
        argv: vec![],
        image: None,
        capabilities: vec![],
    }];
    super::run::run_with(suite, specs, vec![scn], true, Profile::seed())
}
