//! `run` and `compare`: one path (`compare` takes several targets, `run`
//! one), which `soak` shares. Resolves the targets, the profile (the
//! seed's or the user's configuration), the scenarios and the plan from
//! the arguments, hands them to [`leakhound::suite::run`] under Ctrl-C
//! handling, and prints its closing text.

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;

use leakhound::profile::Profile;
use leakhound::scenario::model::{self as scenario, Scenario};
use leakhound::suite::{self, SkipPolicy, Verdict};
use leakhound::target::{TargetKind as SpecKind, TargetSpec};

use super::args::{DependentsKind, OutputFormat, RunArgs, SuiteArgs, TargetArgs, TargetKind};
use super::list::{load_scenarios, select_scenarios};
use super::{
    BUILDS_NAMESPACES, harness_tracing, parse_env_overrides, require_root, shutdown_signal,
};

/// `leakhound run`: the suite against one target.
pub(crate) fn run(args: RunArgs) -> Result<Verdict> {
    suite_command(Targets::One, args)
}

/// `leakhound compare`: the suite against several targets, and a table.
pub(crate) fn compare(args: RunArgs) -> Result<Verdict> {
    suite_command(Targets::Several, args)
}

/// How many targets a command takes.
#[derive(Clone, Copy, PartialEq)]
enum Targets {
    /// `run`
    One,
    /// `compare`
    Several,
}

/// The path `run` and `compare` share.
fn suite_command(targets: Targets, args: RunArgs) -> Result<Verdict> {
    harness_tracing(args.suite.quiet);
    let command = match targets {
        Targets::One => "run",
        Targets::Several => "compare",
    };
    require_root(command, BUILDS_NAMESPACES)?;
    let specs = target_specs(&args.target)?;
    if targets == Targets::One && specs.len() > 1 {
        bail!("run tests one target; use `leakhound compare` for several");
    }
    let profile = suite_profile(&args.suite)?;
    let scenarios = suite_scenarios(&args.suite, &profile)?;
    if scenarios.is_empty() {
        return Ok(empty_shard(&args.suite));
    }
    run_with(args.suite, specs, scenarios, false, profile)
}

/// A shard with no scenario in it: nothing to run, which passes.
fn empty_shard(a: &SuiteArgs) -> Verdict {
    if let Some(s) = a.select.shard {
        println!("shard {s} of this suite has no scenario: nothing to run");
    }
    Verdict::Passed
}

/// Builds the lab and runs `scenarios` against every target; `soak` adds
/// the kill-switch figures. A target that cannot work (an unknown
/// capability, a program that is not there or not executable, an image that
/// does not exist locally) stops the run before any scenario (exit 2). The
/// first Ctrl-C (or SIGTERM) interrupts: the scenario in flight is torn down
/// and reported as interrupted, the reports are written, exit 2. A second
/// one abandons the reports (the lab is still removed). The caller has
/// checked for root.
pub(super) fn run_with(
    args: SuiteArgs,
    specs: Vec<TargetSpec>,
    scenarios: Vec<Scenario>,
    soak: bool,
    profile: Profile,
) -> Result<Verdict> {
    check_allow_skip(&args.allow_skip, &scenarios)?;
    let overrides = parse_env_overrides(&args.env)?;
    let exe = std::env::current_exe().context("finding leakhound's own executable")?;
    // The soak times the gateway's start: as the image ships it.
    let exe = if soak {
        leakhound::bench::shipped_gateway(exe)
    } else {
        exe
    };
    let targets = specs
        .iter()
        .map(|s| leakhound::target::from_spec(s, &exe))
        .collect::<Result<Vec<_>, _>>()?;
    // What is tested: the gateways pinned down, the run-wide variables.
    let provenance = {
        let mut vars = profile.policy_env.clone();
        vars.extend(overrides.clone());
        let source = match (&args.compose, &args.env_file) {
            (Some(c), _) => c.display().to_string(),
            (None, Some(e)) => e.display().to_string(),
            (None, None) => "seed".to_string(),
        };
        leakhound::report::provenance::of_run(
            &specs,
            &exe,
            &source,
            &vars,
            &profile.config_findings,
        )
    };
    let waivers = args
        .waivers
        .as_deref()
        .map(suite::verdict::load_waivers)
        .transpose()?;
    let plan = suite::Plan {
        out: args.out.clone(),
        jobs: args.jobs,
        provider: args.provider,
        overrides,
        fuzz: leakhound::scenario::runner::FuzzSettings {
            seed: args.seed.unwrap_or_else(rand::random),
            strict: args.strict,
        },
        provenance,
        waivers,
        skips: SkipPolicy::new(args.fail_on_skip, args.allow_skip.clone()),
        prometheus: args.prometheus.clone(),
        json_lines: args.format == OutputFormat::Json,
        quiet: args.quiet,
    };
    let rt = super::runtime()?;
    for t in &targets {
        rt.block_on(t.preflight())?;
    }
    suite::reports::prepare(&args.out)?;
    if let Some(u) = &profile.user {
        suite::reports::write_user_profile(&args.out, u)?;
    }
    let (reaped, containers) = super::reap::reap_everything(&rt);
    if !reaped.is_empty() && !args.quiet {
        eprintln!("removed {} namespace(s) left by a killed run", reaped.len());
    }
    if !containers.is_empty() && !args.quiet {
        eprintln!(
            "removed {} container(s) left by a killed run: {}",
            containers.len(),
            containers.join(", ")
        );
    }
    let fuzzes = scenarios.iter().any(|s| {
        s.steps
            .iter()
            .any(|st| matches!(st.action, leakhound::model::scenario::Action::Fuzz(_)))
    });
    if fuzzes && !args.quiet && !plan.json_lines {
        eprintln!(
            "leak fuzzer seed: {} (replay its sprays with --seed {})",
            plan.fuzz.seed, plan.fuzz.seed
        );
    }
    let finished = rt.block_on(interruptible(&plan, &profile, targets, scenarios))?;
    print_end(&plan, &finished, soak);
    Ok(finished.verdict)
}

/// [`suite::run`] under Ctrl-C and SIGTERM: the first interrupts it (it
/// still writes the reports), the second abandons it.
async fn interruptible(
    plan: &suite::Plan,
    profile: &Profile,
    targets: Vec<std::sync::Arc<dyn leakhound::target::GatewayTarget>>,
    scenarios: Vec<Scenario>,
) -> Result<suite::Finished> {
    let interrupt = CancellationToken::new();
    let watcher = {
        let interrupt = interrupt.clone();
        async move {
            shutdown_signal().await;
            eprintln!(
                "interrupted: stopping the scenario in flight and writing the reports (again to abort)"
            );
            interrupt.cancel();
            shutdown_signal().await;
        }
    };
    tokio::select! {
        r = suite::run(plan, profile, targets, scenarios, interrupt) => Ok(r?),
        _ = watcher => bail!("interrupted twice; the lab was removed, no reports written"),
    }
}

/// Prints the closing text of a finished run ([`leakhound::report::run_text`]);
/// a `soak`'s figures come from its gateways' own readiness events.
fn print_end(plan: &suite::Plan, finished: &suite::Finished, soak: bool) {
    let figures: Option<Vec<String>> = soak.then(|| {
        finished
            .results
            .iter()
            .map(leakhound::report::soak::figures)
            .collect()
    });
    let failing_skips = plan
        .skips
        .fails_on_skip()
        .then(|| plan.skips.unaccepted(&finished.results));
    let end = leakhound::report::run_text::RunEnd {
        results: &finished.results,
        timings: &finished.timings,
        total: finished.total,
        per_scenario: &finished.per_scenario,
        table: finished.table.as_deref(),
        soak: figures.as_deref(),
        failing_skips: failing_skips.as_deref(),
        waived: finished.waived.as_ref(),
        out: &plan.out,
        interrupted: finished.interrupted,
        // --quiet: a passing run prints nothing more.
        quiet: plan.quiet && finished.verdict == Verdict::Passed,
        json_lines: plan.json_lines,
        findings: &plan.provenance.config.findings,
    };
    print!("{}", leakhound::report::run_text::stdout(&end));
    eprint!("{}", leakhound::report::run_text::stderr(&end));
}

/// `--allow-skip` names a scenario of this run (alone or as `SCENARIO:
/// CHECK`).
fn check_allow_skip(allowed: &[String], scenarios: &[Scenario]) -> Result<()> {
    for a in allowed {
        let scenario = a.split_once(": ").map_or(a.as_str(), |(s, _)| s);
        if !scenarios.iter().any(|s| s.name == scenario) {
            bail!(
                "--allow-skip {a}: no scenario {scenario} in this run (`leakhound list` names them)"
            );
        }
    }
    Ok(())
}

/// The targets a run tests, from the command line or a targets file.
pub(super) fn target_specs(t: &TargetArgs) -> Result<Vec<TargetSpec>> {
    if let Some(file) = &t.targets {
        let mut all = leakhound::target::load_targets_file(file)?;
        if !t.pick.is_empty() {
            for p in &t.pick {
                if !all.iter().any(|s| &s.name == p) {
                    bail!("--pick {p}: {} has no target named so", file.display());
                }
            }
            all.retain(|s| t.pick.contains(&s.name));
        }
        if all.is_empty() {
            bail!("{}: no [[target]]", file.display());
        }
        return Ok(all);
    }
    let kinds = if t.target.is_empty() {
        vec![TargetKind::Builtin]
    } else {
        t.target.clone()
    };
    let mut specs = Vec::new();
    for k in kinds {
        let (kind, argv, image, caps) = match k {
            TargetKind::Builtin => (SpecKind::Builtin, vec![], None, vec![]),
            TargetKind::Command => {
                if t.argv.is_empty() {
                    bail!(
                        "--target command needs the program after --, e.g. `leakhound run --target command -- ./my-gateway.sh`"
                    );
                }
                (
                    SpecKind::Command,
                    t.argv.clone(),
                    None,
                    t.capabilities.clone(),
                )
            }
            TargetKind::Container | TargetKind::Gluetun => {
                let kind = if k == TargetKind::Gluetun {
                    SpecKind::Gluetun
                } else {
                    SpecKind::Container
                };
                let Some(image) = t.image.clone() else {
                    bail!("--target {kind} needs --image REF (an image that exists locally)");
                };
                (kind, vec![], Some(image), t.capabilities.clone())
            }
        };
        let name = kind.name();
        if specs.iter().any(|s: &TargetSpec| s.name == name) {
            bail!(
                "--target {name} twice: use a targets file (--targets) to compare several of a kind"
            );
        }
        specs.push(TargetSpec {
            name: name.into(),
            kind,
            argv,
            image,
            capabilities: caps,
        });
    }
    if !t.argv.is_empty() && !specs.iter().any(|s| s.kind == SpecKind::Command) {
        bail!("a program after -- is only for --target command");
    }
    Ok(specs)
}

/// The network and policy under test: the seed's, or the user's own
/// (`--compose`, `--env-file`).
fn suite_profile(a: &SuiteArgs) -> Result<Profile> {
    let p = match (&a.compose, &a.env_file) {
        (Some(c), _) => Profile::from_compose(c, a.service.as_deref())?,
        (None, Some(e)) => Profile::from_env_file(e)?,
        (None, None) => Profile::seed(),
    };
    let p = match a.dependents {
        DependentsKind::StandIn => p,
        DependentsKind::Real => {
            p.with_real_dependents(true)
                .map_err(|why| anyhow::anyhow!("--dependents real: {why}"))?
                .0
        }
        DependentsKind::Auto => match p.clone().with_real_dependents(false) {
            Ok((real, stayed)) => {
                for s in stayed.iter().filter(|_| !a.quiet) {
                    eprintln!("dependents: {s}");
                }
                real
            }
            Err(why) => {
                if !a.quiet {
                    eprintln!("dependents: stand-ins ({why})");
                }
                p
            }
        },
    };
    if let Some(u) = p.user.as_ref().filter(|_| !a.quiet) {
        eprintln!("{}", leakhound::report::terminal::user_profile(u));
    }
    Ok(p)
}

/// The scenarios a run executes: the built-in suite plus `--scenarios`,
/// narrowed by `--only`, `--tag` and `--exclude-tag`. With the user's own
/// configuration, the LAN matrix and the outbound subnets are the ones
/// made from it.
fn suite_scenarios(a: &SuiteArgs, profile: &Profile) -> Result<Vec<Scenario>> {
    let mut all = load_scenarios(a.scenarios.as_deref(), &profile.topology)?;
    if let Some(u) = &profile.user {
        for (name, text) in &u.scenarios {
            let made = scenario::parse(&format!("made:{name}"), text, &profile.topology)
                .with_context(|| format!("the {name} scenario made from {}", u.file))?;
            match all.iter_mut().find(|s| &s.name == name) {
                Some(s) => *s = made,
                None => all.push(made),
            }
        }
    }
    select_scenarios(all, &a.select)
}
