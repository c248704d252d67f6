//! leakhound's command line: `run` (build the lab, run scenarios, write
//! reports), `gateway` (the gateway under test, started by `run` inside the
//! lab), `reap` (remove namespaces left by killed runs). Errors get context
//! here and map to exit codes: 0 all passed, 1 a scenario failed, 2 the
//! harness could not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use leakhound::gateway::cli::init_tracing;

/// The harness's default log level. The lab provider's boringtun warns on
/// every handshake retry while a scenario holds the gateway's tunnel down,
/// which is what the scenario asks for, not a problem: only its errors show.
const HARNESS_LOG: &str = "warn,boringtun=error";
/// With --quiet: only errors are logged (a passing run prints nothing).
const QUIET_LOG: &str = "error,boringtun=off";
use tokio_util::sync::CancellationToken;

use leakhound::lab::services::{LabKeys, LabServices};
use leakhound::lab::wgserver::ProviderKind;
use leakhound::lab::{self, Lab, netns};
use leakhound::model::topology::Topology;
use leakhound::profile::Profile;
use leakhound::scenario::model::{self as scenario, Scenario};
use leakhound::scenario::runner::Runner;
use leakhound::target::TargetSpec;
use std::sync::Arc;

use leakhound::suite::{self, SkipPolicy, Verdict};

mod cli;

use cli::args::*;

/// The targets a run tests, from the command line or a targets file.
fn target_specs(t: &TargetArgs) -> Result<Vec<TargetSpec>> {
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
        let (name, argv, image, caps) = match k {
            TargetKind::Builtin => ("builtin", vec![], None, vec![]),
            TargetKind::Command => {
                if t.argv.is_empty() {
                    bail!(
                        "--target command needs the program after --, e.g. `leakhound run --target command -- ./my-gateway.sh`"
                    );
                }
                ("command", t.argv.clone(), None, t.capabilities.clone())
            }
            TargetKind::Container => {
                let Some(image) = t.image.clone() else {
                    bail!("--target container needs --image REF (an image that exists locally)");
                };
                ("container", vec![], Some(image), t.capabilities.clone())
            }
        };
        if specs.iter().any(|s: &TargetSpec| s.name == name) {
            bail!(
                "--target {name} twice: use a targets file (--targets) to compare several of a kind"
            );
        }
        specs.push(TargetSpec {
            name: name.into(),
            kind: name.into(),
            argv,
            image,
            capabilities: caps,
        });
    }
    if !t.argv.is_empty() && !specs.iter().any(|s| s.kind == "command") {
        bail!("a program after -- is only for --target command");
    }
    Ok(specs)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Gateway { action: None } => leakhound::gateway::cli::gateway_main(),
        Command::Gateway {
            action: Some(GatewayAction::Healthcheck),
        } => leakhound::gateway::cli::healthcheck_main(),
        Command::Hold => leakhound::gateway::cli::hold_main(),
        Command::Completions { shell } => {
            default_sigpipe();
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "leakhound", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            default_sigpipe();
            let cmd = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("leakhound: writing the manual page: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Reap => {
            init_tracing("info");
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                eprintln!("leakhound: could not start the async runtime");
                return ExitCode::from(2);
            };
            let (reaped, containers) = reap_everything(&rt);
            println!("removed {} stale namespace(s)", reaped.len());
            for n in reaped {
                println!("  {n}");
            }
            let foreign = netns::unrecorded();
            if !foreign.is_empty() {
                println!(
                    "left alone {} namespace(s) named like leakhound's that no run of it recorded making:",
                    foreign.len()
                );
                for n in foreign {
                    println!("  {n}");
                }
            }
            println!("removed {} stale container(s)", containers.len());
            for c in containers {
                println!("  {c}");
            }
            ExitCode::SUCCESS
        }
        Command::Actions => {
            use leakhound::model::scenario::{CAPABILITIES, actions::ACTIONS};
            default_sigpipe();
            println!(
                "Step actions (action = \"NAME\" in a [[step]]; every step also takes `name`):\n"
            );
            for a in ACTIONS {
                println!("  {}\n      {}\n", a.name, a.help);
            }
            println!(
                "Capabilities (requires = [...] in a scenario; a target lacking one skips it):\n"
            );
            for (name, _, what) in CAPABILITIES {
                println!("  {name}\n      {what}\n");
            }
            ExitCode::SUCCESS
        }
        Command::List(args) => {
            default_sigpipe();
            match load_scenarios(args.scenarios.as_deref(), &Topology::default_profile())
                .and_then(|all| select_scenarios(all, &args.select))
            {
                Ok(all) if args.format == OutputFormat::Json => {
                    let list: Vec<serde_json::Value> = all.iter().map(scenario_json).collect();
                    println!("{}", serde_json::Value::Array(list));
                    ExitCode::SUCCESS
                }
                Ok(all) => {
                    for s in all {
                        println!("{:<28} {}", s.name, s.source);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Explain(args) => {
            default_sigpipe();
            match explain_main(&args) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Audit(args) => {
            init_tracing(if args.quiet { QUIET_LOG } else { HARNESS_LOG });
            verdict_exit(audit_main(args))
        }
        Command::Soak(args) => {
            init_tracing(HARNESS_LOG);
            let scn = leakhound::scenario::soak::soak_scenario(
                args.tunnel_kills,
                args.crashes,
                args.reconnects,
            );
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
            };
            let specs = vec![TargetSpec {
                name: "builtin".into(),
                kind: "builtin".into(),
                argv: vec![],
                image: None,
                capabilities: vec![],
            }];
            verdict_exit(run_with(suite, specs, vec![scn], true, Profile::seed()))
        }
        Command::Bench(args) => {
            init_tracing(HARNESS_LOG);
            harness_exit(bench_main(args))
        }
        Command::Lab(args) => {
            init_tracing("info");
            harness_exit(lab_main(args))
        }
        Command::Compare(args) => {
            init_tracing(if args.suite.quiet {
                QUIET_LOG
            } else {
                HARNESS_LOG
            });
            verdict_exit(compare_main(args))
        }
        Command::Run(args) => {
            init_tracing(if args.suite.quiet {
                QUIET_LOG
            } else {
                HARNESS_LOG
            });
            verdict_exit(run_main(args))
        }
    }
}

/// For commands that only print: a closed pipe (`leakhound actions | head`)
/// ends the process quietly, as for any Unix filter. Not for commands that
/// use sockets, where SIGPIPE must stay ignored.
fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default has no
    // preconditions; no handler of ours is replaced.
    unsafe {
        nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_DFL);
    }
}

fn verdict_exit(r: Result<Verdict>) -> ExitCode {
    match r {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Failed) => ExitCode::from(1),
        Ok(Verdict::HarnessError) => ExitCode::from(2),
        Ok(Verdict::Interrupted(sig)) => ExitCode::from(128 + sig as u8),
        Err(e) => {
            eprintln!("error: {}", shown_error(&e));
            ExitCode::from(2)
        }
    }
}

/// Exit status for commands that only fail when the harness cannot run.
fn harness_exit(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", shown_error(&e));
            ExitCode::from(2)
        }
    }
}

/// An error as the terminal shows it: its causes, secrets redacted and
/// control bytes shown escaped (a cause may quote a file or a log).
fn shown_error(e: &anyhow::Error) -> String {
    leakhound::model::scrub::clean_capped(&format!("{e:#}"), usize::MAX)
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

/// Applies --only, --tag, --exclude-tag and --shard. Empty is an error,
/// except for a shard (a CI job with nothing to do passes).
fn select_scenarios(mut all: Vec<Scenario>, a: &SelectArgs) -> Result<Vec<Scenario>> {
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

/// `leakhound explain`: the scenario, its text and where it lives.
fn explain_main(a: &ExplainArgs) -> Result<String> {
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

fn load_scenarios(dir: Option<&Path>, topo: &Topology) -> Result<Vec<Scenario>> {
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

/// How `lab up` hands its `--env` values to its background process: in
/// the environment (JSON), never in the argument list.
const LAB_ENV_VAR: &str = "LEAKHOUND_LAB_ENV";

/// `args` without `--env NAME=VALUE` / `--env=NAME=VALUE`.
fn without_env_args(args: &[std::ffi::OsString]) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(it.by_ref().cloned());
        } else if a == "--env" {
            it.next();
        } else if !a.to_string_lossy().starts_with("--env=") {
            out.push(a.clone());
        }
    }
    out
}

fn parse_env_overrides(v: &[String]) -> Result<BTreeMap<String, String>> {
    v.iter()
        .map(|kv| {
            let (k, val) = kv
                .split_once('=')
                .with_context(|| format!("--env {kv}: expected NAME=VALUE"))?;
            leakhound::model::scrub::register_variable(k, val);
            if leakhound::model::scrub::is_secret_name(k) {
                eprintln!(
                    "warning: --env {k}: a secret on the command line is seen by every user of this machine (ps, /proc/PID/cmdline) and kept in shell history; put it in a file instead (--env-file FILE or --compose FILE, or the variable's _SECRETFILE form where the gateway has one)"
                );
            }
            Ok((k.to_string(), val.to_string()))
        })
        .collect()
}

fn run_main(args: RunArgs) -> Result<Verdict> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("leakhound run needs root (it builds network namespaces); try sudo");
    }
    let specs = target_specs(&args.target)?;
    if specs.len() > 1 {
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

fn compare_main(args: CompareArgs) -> Result<Verdict> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("leakhound compare needs root (it builds network namespaces); try sudo");
    }
    let specs = target_specs(&args.target)?;
    let profile = suite_profile(&args.suite)?;
    let scenarios = suite_scenarios(&args.suite, &profile)?;
    if scenarios.is_empty() {
        return Ok(empty_shard(&args.suite));
    }
    run_with(args.suite, specs, scenarios, false, profile)
}

/// Builds the lab and runs `scenarios` against every target; `soak` adds
/// the kill-switch figures. A target that cannot work (an unknown
/// capability, a program that is not there or not executable, an image that
/// does not exist locally) stops the run before any scenario (exit 2). The
/// first Ctrl-C (or SIGTERM) interrupts: the scenario in flight is torn down
/// and reported as interrupted, the reports are written, exit 2. A second
/// one abandons the reports (the lab is still removed).
fn run_with(
    args: SuiteArgs,
    specs: Vec<TargetSpec>,
    scenarios: Vec<Scenario>,
    soak: bool,
    profile: Profile,
) -> Result<Verdict> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("leakhound needs root (it builds network namespaces); try sudo");
    }
    for a in &args.allow_skip {
        let scenario = a.split_once(": ").map_or(a.as_str(), |(s, _)| s);
        if !scenarios.iter().any(|s| s.name == scenario) {
            bail!(
                "--allow-skip {a}: no scenario {scenario} in this run (`leakhound list` names them)"
            );
        }
    }
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
        leakhound::report::provenance::of_run(&specs, &exe, &source, &vars)
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
        provenance,
        waivers,
        skips: SkipPolicy::new(args.fail_on_skip, args.allow_skip.clone()),
        prometheus: args.prometheus.clone(),
        json_lines: args.format == OutputFormat::Json,
        quiet: args.quiet,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    for t in &targets {
        rt.block_on(t.preflight())?;
    }
    suite::reports::prepare(&args.out)?;
    if let Some(u) = &profile.user {
        suite::reports::write_user_profile(&args.out, u)?;
    }
    let (reaped, containers) = reap_everything(&rt);
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
    let finished = rt.block_on(async {
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
            r = suite::run(&plan, &profile, targets, scenarios, interrupt) => Ok(r?),
            _ = watcher => bail!("interrupted twice; the lab was removed, no reports written"),
        }
    })?;
    // A soak's figures come from each gateway's own log.
    let figures: Option<Vec<String>> = soak.then(|| {
        finished
            .results
            .iter()
            .map(|r| {
                let log = std::fs::read_to_string(&r.gateway_log).unwrap_or_default();
                leakhound::report::soak::figures(r, &log)
            })
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
    };
    print!("{}", leakhound::report::run_text::stdout(&end));
    eprint!("{}", leakhound::report::run_text::stderr(&end));
    Ok(finished.verdict)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Root check, reaping of stale namespaces, and a runtime: what every
/// command that builds a lab needs first.
fn lab_runtime(what: &str) -> Result<tokio::runtime::Runtime> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("leakhound {what} needs root (it builds network namespaces); try sudo");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    reap_everything(&rt);
    Ok(rt)
}

/// Removes what killed runs of this leakhound recorded: their containers
/// (read from their records first), then their namespaces and files.
/// Returns the names of both.
fn reap_everything(rt: &tokio::runtime::Runtime) -> (Vec<String>, Vec<String>) {
    let recorded = netns::dead_runs_containers();
    let containers = if recorded.is_empty() {
        // Only containers made before this boot could still be ours.
        rt.block_on(leakhound::target::container::reap_stale(&[]))
    } else {
        rt.block_on(leakhound::target::container::reap_stale(&recorded))
    };
    (netns::reap_stale(), containers)
}

/// `leakhound audit`: attach, check, report; the exit status as for runs.
fn audit_main(args: AuditArgs) -> Result<Verdict> {
    use leakhound::audit::{self, Attach};
    let text = std::fs::read_to_string(&args.profile)
        .with_context(|| format!("reading the profile {}", args.profile.display()))?;
    let profile_file = args.profile.display().to_string();
    let profile = leakhound::model::audit::parse(&profile_file, &text)?;
    for a in &args.allow_skip {
        let kind = a.split(' ').next().unwrap_or(a);
        if !leakhound::model::audit::CHECK_KINDS
            .iter()
            .any(|(k, _)| *k == kind)
        {
            let known: Vec<&str> = leakhound::model::audit::CHECK_KINDS
                .iter()
                .map(|(k, _)| *k)
                .collect();
            bail!(
                "--allow-skip {a}: no such check (checks: {})",
                known.join(", ")
            );
        }
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("leakhound audit needs root (it enters another network namespace); try sudo");
    }
    let which = match (&args.netns, args.pid, &args.container) {
        (Some(n), _, _) if n == "self" => Attach::SelfNs,
        (Some(n), _, _) => Attach::Netns(n.clone()),
        (_, Some(p), _) => Attach::Pid(p),
        (_, _, Some(c)) => Attach::Container(c.clone()),
        _ => bail!("name the gateway: --netns, --pid or --container"),
    };
    let ns = audit::attach(&which)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The handlers, before the audit changes anything: SIGINT or SIGTERM
    // lifts the audit's cut at once (whatever the audit is doing), then
    // ends the audit in flight, which reports what it saw; a second one
    // exits at once.
    let interrupt = Interrupt::default();
    {
        use tokio::signal::unix::{SignalKind, signal};
        let _rt = rt.enter();
        let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let (ns, disruptive, i) = (ns.try_clone()?, args.disruptive, interrupt.clone());
        rt.spawn(async move {
            use nix::sys::signal::Signal;
            let sig = tokio::select! {
                _ = int.recv() => Signal::SIGINT,
                _ = term.recv() => Signal::SIGTERM,
            };
            let lift = || {
                if disruptive && let Err(e) = audit::lift_cut(&ns) {
                    eprintln!(
                        "error: {:#} (the kernel lifts the cut within {:?})",
                        anyhow::Error::from(e),
                        audit::CUT_TIMEOUT
                    );
                }
            };
            lift();
            eprintln!("{sig}: stopping the audit");
            let _ = i.signal.set(sig);
            i.token.cancel();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            lift();
            std::process::exit(128 + sig as i32);
        });
    }
    let once = || {
        audit_once(
            &rt,
            &args,
            &which,
            &ns,
            (&profile, &profile_file, &text),
            &interrupt,
        )
    };
    let Some(every) = args.every else {
        return once();
    };
    // A sidecar's loop: an audit, then the interval. A signal between two
    // audits ends it with status 0 (being stopped is not a finding); one
    // during an audit ends that audit, which reports, and the loop.
    loop {
        // A failed audit is in its reports and metrics; one that could not
        // run is said, and the next one tries again.
        match once() {
            Ok(v @ Verdict::Interrupted(_)) => return Ok(v),
            Ok(_) => {}
            Err(e) => eprintln!("error: {e:#}"),
        }
        if let Some(sig) = interrupt.signal.get() {
            return Ok(Verdict::Interrupted(*sig));
        }
        let stop = rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(every.into()) => false,
                _ = interrupt.token.cancelled() => true,
            }
        });
        if stop {
            return Ok(Verdict::Passed);
        }
    }
}

/// The audit's interrupt: cancelled on the first SIGINT or SIGTERM, which
/// is kept for the exit status.
#[derive(Clone, Default)]
struct Interrupt {
    token: tokio_util::sync::CancellationToken,
    signal: Arc<std::sync::OnceLock<nix::sys::signal::Signal>>,
}

/// One audit: run it, write its reports and metrics, print it. The
/// profile comes as (profile, its file's name, its text).
fn audit_once(
    rt: &tokio::runtime::Runtime,
    args: &AuditArgs,
    which: &leakhound::audit::Attach,
    ns: &netns::Netns,
    (profile, profile_file, profile_text): (&leakhound::model::audit::AuditProfile, &str, &str),
    interrupt: &Interrupt,
) -> Result<Verdict> {
    use leakhound::audit;
    suite::reports::prepare_private(&args.out)?;
    let t0 = Instant::now();
    let result = rt
        .block_on(audit::run(audit::AuditRequest {
            ns: ns.try_clone()?,
            profile: profile.clone(),
            profile_file: profile_file.to_string(),
            disruptive: args.disruptive,
            out: args.out.clone(),
            interrupt: interrupt.token.clone(),
        }))
        .context("auditing")?;
    let failing = audit::failing(
        &result,
        args.fail_on_skip || !args.allow_skip.is_empty(),
        &args.allow_skip,
    );
    let id = format!(
        "audit-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    );
    let results = std::slice::from_ref(&result);
    let provenance = leakhound::report::provenance::Provenance {
        leakhound_version: env!("CARGO_PKG_VERSION"),
        targets: vec![leakhound::report::provenance::TargetIdentity {
            name: profile.name.clone(),
            kind: "live".into(),
            binary_sha256: None,
            image: None,
            image_id: None,
            command: vec![which.to_string()],
            note: None,
        }],
        // The profile names no secrets (only where they are): its hash.
        config: leakhound::report::provenance::RedactedConfig {
            source: profile_file.to_string(),
            variables: BTreeMap::new(),
            sha256: leakhound::report::provenance::sha256_hex(profile_text.as_bytes()),
        },
    };
    suite::reports::write(
        true,
        &args.out,
        &id,
        &Default::default(),
        Some(&provenance),
        None,
        results,
    )?;
    if let Some(file) = &args.prometheus {
        leakhound::report::prometheus::write_atomically(
            file,
            &leakhound::report::prometheus::render_audit(
                &result,
                failing.is_empty(),
                std::time::SystemTime::now(),
                t0.elapsed(),
            ),
        )
        .with_context(|| format!("writing the metrics to {}", file.display()))?;
    }
    match args.format {
        OutputFormat::Json => print!(
            "{}",
            leakhound::report::audit_text::json_lines(&result, &failing, &args.out)
        ),
        // --quiet: a passing audit prints nothing.
        OutputFormat::Text if args.quiet && failing.is_empty() => {}
        OutputFormat::Text => print!(
            "{}",
            leakhound::report::audit_text::text(&result, which, &failing, &args.out)
        ),
    }
    let signal = interrupt.signal.get().copied();
    if let Some(sig) = signal {
        print!("{}", leakhound::report::audit_text::interrupted(sig));
    }
    Ok(Verdict::of_checks(failing.len(), signal))
}

/// A fresh lab with its services running, under run id `run_id`.
async fn lab_with_services(provider: ProviderKind, run_id: &str) -> Result<(Lab, LabServices)> {
    let lab = Lab::build(Topology::default_profile(), run_id)
        .await
        .context("building the lab")?;
    let services = LabServices::start_with(
        &lab,
        LabKeys::generate(),
        provider,
        &leakhound::lab::dependents::default_stand_ins(),
    )
    .await
    .context("starting the lab's services")?;
    Ok((lab, services))
}

fn lab_main(args: LabArgs) -> Result<()> {
    use leakhound::lab::detached;
    match args.action {
        None => lab_serve(args.opts, None),
        Some(LabAction::Serve { id, logs, opts }) => lab_serve(opts, Some((id, logs))),
        Some(LabAction::Up(opts)) => {
            if !nix::unistd::Uid::effective().is_root() {
                bail!("leakhound lab up needs root (it builds network namespaces); try sudo");
            }
            // Checked here, so that a mistake is said at once, not in a log.
            let overrides = parse_env_overrides(&opts.env)?;
            target_specs(&opts.target)?;
            let id = lab::new_run_id();
            // A fresh folder of its own (mkdtemp, 0700): never a
            // predictable path another local user could plant a link on.
            let logs = tempfile::Builder::new()
                .prefix(&format!("leakhound-lab-{id}-"))
                .tempdir()
                .context("making the lab's logs folder")?
                .keep();
            let mut argv: Vec<std::ffi::OsString> = vec![
                "lab".into(),
                "serve".into(),
                "--id".into(),
                id.clone().into(),
                "--logs".into(),
                logs.clone().into(),
            ];
            // The rest of the command line, as given after `lab up`, but
            // the --env values: they go by the environment
            // (LAB_ENV_VAR), which only root reads, not by the argument
            // list, which every user sees in /proc/PID/cmdline.
            let given: Vec<std::ffi::OsString> = std::env::args_os()
                .skip_while(|a| a != "up")
                .skip(1)
                .collect();
            argv.extend(without_env_args(&given));
            let env = [(LAB_ENV_VAR.to_string(), serde_json::to_string(&overrides)?)];
            let st = detached::spawn(
                &std::env::current_exe()?,
                &argv,
                &env,
                &logs.join("lab.log"),
            )
            .context("starting the lab in the background")?;
            println!("lab {} is up (process {})", st.id, st.pid);
            println!("  gateway namespace: {}", st.gateway_netns);
            println!(
                "  audit it:          leakhound audit --netns {} --profile docs/examples/audit/lab.toml",
                st.gateway_netns
            );
            println!("  logs:              {}", st.logs.display());
            println!("  remove it:         leakhound lab down {}", st.id);
            Ok(())
        }
        Some(LabAction::Down { id, keep_logs }) => {
            let st = detached::find(id.as_deref())?;
            detached::stop(&st, Duration::from_secs(60))
                .with_context(|| format!("removing lab {}", st.id))?;
            if keep_logs {
                println!(
                    "lab {} is removed; its logs are in {}",
                    st.id,
                    st.logs.display()
                );
            } else {
                let _ = std::fs::remove_dir_all(&st.logs);
                println!(
                    "lab {} is removed (with its logs; --keep-logs keeps them)",
                    st.id
                );
            }
            Ok(())
        }
        Some(LabAction::List) => {
            for st in detached::list_up()? {
                println!(
                    "{}  process {}  gateway {}",
                    st.id, st.pid, st.gateway_netns
                );
            }
            Ok(())
        }
    }
}

/// Runs a lab until SIGTERM or Ctrl-C: in the foreground (`lab`), or as the
/// background process of `lab up` (`detached`: its id and log folder), which
/// says when it is ready on its standard output and keeps a state file.
fn lab_serve(args: LabOpts, detached: Option<(String, PathBuf)>) -> Result<()> {
    let mut overrides = parse_env_overrides(&args.env)?;
    if detached.is_some()
        && let Ok(json) = std::env::var(LAB_ENV_VAR)
    {
        let given: BTreeMap<String, String> = serde_json::from_str(&json)
            .with_context(|| format!("{LAB_ENV_VAR} is not a JSON map"))?;
        for (k, v) in &given {
            leakhound::model::scrub::register_variable(k, v);
        }
        overrides.extend(given);
        // SAFETY: no other thread exists yet (the runtime is made below).
        unsafe { std::env::remove_var(LAB_ENV_VAR) };
    }
    let rt = lab_runtime("lab")?;
    let specs = target_specs(&args.target)?;
    let [spec] = specs.as_slice() else {
        bail!("lab starts one target");
    };
    let target = leakhound::target::from_spec(spec, &std::env::current_exe()?)?;
    rt.block_on(target.preflight())?;
    rt.block_on(async {
        let run_id = detached
            .as_ref()
            .map_or_else(lab::new_run_id, |(id, _)| id.clone());
        // A container target's gateway lives in a holder container's
        // network namespace, which the lab adopts (as a run's lane does).
        let lane = suite::Lane::build(
            Lab::claim(&run_id)?,
            target.holder_image().as_deref(),
            ProviderKind::Boringtun,
            leakhound::profile::Profile::seed_ref(),
        )
        .await?;
        let suite::Lane {
            lab,
            services,
            holder,
        } = lane;
        let out = match &detached {
            Some((_, logs)) => logs.clone(),
            None => tempfile::Builder::new()
                .prefix(&format!("leakhound-lab-{run_id}-"))
                .tempdir()
                .context("making the lab's logs folder")?
                .keep(),
        };
        let runner = Runner {
            lab: &lab,
            profile: leakhound::profile::Profile::seed_ref(),
            services: &services,
            out_dir: out.clone(),
            target,
            env_overrides: overrides,
            events: None,
            interrupt: CancellationToken::new(),
            holder: holder.as_ref().map(|h| h.id().to_string()),
        };
        let idle = Scenario::idle("lab");
        let gw = runner
            .start_idle_gateway_async(&idle, &out.join("gateway.log"))
            .await?;
        if detached.is_some() {
            // Ready means carrying traffic: a person or an audit that starts
            // now must find the gateway as it is when deployed, not half up.
            let mut log = Vec::new();
            let ready = runner
                .wait_traffic(
                    tokio::time::Instant::now() + Duration::from_secs(60),
                    &mut log,
                )
                .await;
            use leakhound::model::verdict::Outcome;
            if let Outcome::Failed { message, .. } | Outcome::Error { message, .. } = ready {
                bail!(
                    "{message}; the gateway's log is {}",
                    out.join("gateway.log").display()
                );
            }
            let st = leakhound::lab::detached::LabState {
                id: run_id.clone(),
                pid: std::process::id(),
                gateway_netns: lab.ns_name("gw"),
                gateway_pid: gw.pid().map(|p| p.as_raw() as u32),
                namespaces: lab
                    .topology()
                    .hosts
                    .iter()
                    .map(|h| (h.name.to_string(), lab.ns_name(h.name)))
                    .collect(),
                logs: out.clone(),
            };
            leakhound::lab::detached::write_state(&st)?;
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            writeln!(
                o,
                "{}{}",
                leakhound::lab::detached::READY,
                serde_json::to_string(&st)?
            )?;
            o.flush()?;
            tracing::info!("lab {run_id} is up");
        } else {
            println!(
                "lab {run_id} is up; the gateway logs to {}",
                out.join("gateway.log").display()
            );
            for h in &lab.topology().hosts {
                println!(
                    "  {:<10} ip netns exec {} bash",
                    h.name,
                    lab.ns_name(h.name)
                );
            }
            println!("Ctrl-C removes everything.");
        }
        shutdown_signal().await;
        gw.stop().await;
        if detached.is_some() {
            leakhound::lab::detached::remove_state(&run_id);
        }
        drop(services);
        drop(lab);
        Ok(())
    })
}

fn bench_tunnel(seconds: u64) -> Result<()> {
    use leakhound::bench::tunnel;
    let rt = lab_runtime("bench")?;
    rt.block_on(async {
        let mut rows = Vec::new();
        for provider in [ProviderKind::Boringtun, ProviderKind::WireguardGo] {
            let (lab, services) = lab_with_services(provider, &lab::new_run_id()).await?;
            // Gateway logs are kept (a failed load is explained there).
            let out = PathBuf::from("reports/bench-tunnel");
            std::fs::create_dir_all(&out)?;
            let gateway = leakhound::bench::shipped_gateway(std::env::current_exe()?);
            for target in tunnel::targets(gateway) {
                let runner = Runner {
                    lab: &lab,
                    profile: leakhound::profile::Profile::seed_ref(),
                    services: &services,
                    out_dir: out.clone(),
                    target,
                    // A saturating load starves the health checks (as it does
                    // Gluetun's); a restart would cut the load short. The
                    // yardsticks have no health checks at all.
                    env_overrides: [("HEALTH_RESTART_VPN".into(), "off".into())].into(),
                    events: None,
                    interrupt: CancellationToken::new(),
                    holder: None,
                };
                match tunnel::measure(&runner, provider, seconds).await {
                    Ok(r) => rows.extend(r),
                    Err(e) => eprintln!("{}: {e:#}", runner.target.name()),
                }
            }
        }
        tunnel::print(&rows, seconds);
        Ok(())
    })
}

fn bench_main(args: BenchArgs) -> Result<()> {
    use leakhound::bench::dns::{Names, load, unbound_conf, wait_answering};
    if let BenchWhat::Tunnel = args.what {
        return bench_tunnel(args.seconds);
    }
    let rt = lab_runtime("bench")?;
    rt.block_on(async {
        let (lab, services) = lab_with_services(ProviderKind::Boringtun, &lab::new_run_id()).await?;
        let run_id = lab.run_id().to_string();
        let out = netns::run_files(&run_id);
        // Its resident memory is then its own, not the harness's code pages.
        let gateway_exe = leakhound::bench::shipped_gateway(std::env::current_exe()?);
        let runner = Runner {
            lab: &lab,
            profile: leakhound::profile::Profile::seed_ref(),
            services: &services,
            out_dir: out.clone(),
            target: Arc::new(leakhound::target::process::Builtin::new("builtin", gateway_exe.clone())),
            env_overrides: Default::default(),
            events: None,
            interrupt: CancellationToken::new(),
            holder: None,
        };
        let idle = Scenario::idle("bench");
        let gw = runner.start_idle_gateway_async(&idle, &out.join("gateway.log")).await?;
        let mut status = services.wg.status.clone();
        tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| s.handshakes > 0))
            .await
            .context("no WireGuard handshake within 15 s")??;
        let ns = lab.ns(leakhound::model::topology::host::GW)?;
        let ours: std::net::SocketAddr = "127.0.0.1:53".parse()?;
        if !wait_answering(ns, ours, Duration::from_secs(10)).await {
            bail!("the gateway's resolver did not answer within 10 s (see {})", out.join("gateway.log").display());
        }
        let gw_pid = gw.pid().map(|p| p.as_raw());
        let rss = |field: &str| -> Option<u64> {
            let text = std::fs::read_to_string(format!("/proc/{}/status", gw_pid?)).ok()?;
            text.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        let idle_rss = rss("VmRSS:");
        let dur = Duration::from_secs(args.seconds);
        let mut rows = Vec::new();
        for names in [Names::Cached, Names::Uncached] {
            let cpu = leakhound::bench::dns::cpu_seconds(gw_pid);
            let r = load(ns, ours, names, args.concurrency, dur).await?;
            let cpu = leakhound::bench::dns::cpu_seconds(gw_pid).zip(cpu).map(|(b, a)| b - a);
            rows.push(("leakhound gateway resolver", names, r, cpu));
        }
        let peak_rss = rss("VmHWM:");
        let anon_rss = rss("RssAnon:");
        let unbound_ok = std::process::Command::new("unbound")
            .arg("-V")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if unbound_ok {
            // unbound in the same namespace, forwarding to the same upstream
            // through the same tunnel; the kill switch lets its user out.
            let dir = out.join("unbound");
            std::fs::create_dir_all(&dir)?;
            let listen: std::net::SocketAddr = "127.0.0.2:53".parse()?;
            let conf = dir.join("unbound.conf");
            std::fs::write(&conf, unbound_conf(listen, leakhound::model::topology::addr::TUNNEL_SERVER.into(), &dir))?;
            lab.nft(
                leakhound::model::topology::host::GW,
                "insert rule inet leakhound output meta skuid \"unbound\" oifname \"wg0\" accept\n",
            )?;
            let mut cmd = std::process::Command::new("unbound");
            cmd.args(["-d", "-c"]).arg(&conf).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            ns.command(&mut cmd)?;
            let mut child = cmd.spawn().context("starting unbound")?;
            if wait_answering(ns, listen, Duration::from_secs(10)).await {
                // The tunnel's share of the uncached load runs in the
                // gateway: counted for unbound too.
                for names in [Names::Cached, Names::Uncached] {
                    let pids = [Some(child.id() as i32), gw_pid];
                    let before: Option<f64> = pids.iter().map(|p| leakhound::bench::dns::cpu_seconds(*p)).sum();
                    let r = load(ns, listen, names, args.concurrency, dur).await?;
                    let after: Option<f64> = pids.iter().map(|p| leakhound::bench::dns::cpu_seconds(*p)).sum();
                    rows.push(("unbound (same path)", names, r, after.zip(before).map(|(b, a)| b - a)));
                }
            } else {
                eprintln!("unbound did not answer within 10 s; its figures are missing");
            }
            let _ = child.kill();
            let _ = child.wait();
        } else {
            eprintln!("unbound is not installed (apt-get install unbound): no yardstick");
        }
        println!(
            "DNS from the gateway's namespace, {} clients, {} s each, upstream {} through the tunnel:",
            args.concurrency,
            args.seconds,
            leakhound::model::topology::addr::TUNNEL_SERVER
        );
        println!("{:<28} {:<9} {:>10} {:>9} {:>9} {:>8} {:>13}", "resolver", "names", "queries/s", "p50 ms", "p99 ms", "failed", "CPU µs/query");
        for (who, names, r, cpu) in &rows {
            println!(
                "{:<28} {:<9} {:>10.0} {:>9.3} {:>9.3} {:>8} {:>13}",
                who,
                if *names == Names::Cached { "cached" } else { "uncached" },
                r.qps(),
                r.percentile(50).as_secs_f64() * 1000.0,
                r.percentile(99).as_secs_f64() * 1000.0,
                r.failed,
                cpu.map(|c| format!("{:.1}", c * 1e6 / r.answered.max(1) as f64)).unwrap_or("?".into())
            );
        }
        println!("(CPU: the resolver's process; for unbound also the gateway's, which carries its upstream queries through the tunnel)");
        let kb = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or("?".into());
        println!(
            "gateway resident memory ({}): idle {} kB, peak under this load {} kB (of it anonymous after the load: {} kB; the rest is the binary's pages)",
            gateway_exe.display(),
            kb(idle_rss),
            kb(peak_rss),
            kb(anon_rss)
        );
        gw.stop().await;
        Ok(())
    })
}
