//! `lab`: a lab with its services and a gateway to explore by hand, in
//! the foreground until Ctrl-C, or detached (`lab up`, `lab down`, `lab
//! list`, and the hidden `lab serve` that `lab up` starts). Its lane is
//! built as a run's ([`leakhound::suite::Lane`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use leakhound::lab::detached;
use leakhound::lab::wgserver::ProviderKind;
use leakhound::lab::{self, Lab};
use leakhound::scenario::model::Scenario;
use leakhound::scenario::runner::Runner;
use leakhound::suite;

use super::args::{LabAction, LabArgs, LabOpts};
use super::run::target_specs;
use super::{BUILDS_NAMESPACES, lab_runtime, parse_env_overrides, require_root, shutdown_signal};

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

/// `leakhound lab` and its subcommands.
pub(crate) fn lab(args: LabArgs) -> Result<()> {
    leakhound::gateway::cli::init_tracing("info");
    match args.action {
        None => lab_serve(args.opts, None),
        Some(LabAction::Serve { id, logs, opts }) => lab_serve(opts, Some((id, logs))),
        Some(LabAction::Up(opts)) => lab_up(opts),
        Some(LabAction::Down { id, keep_logs }) => lab_down(id.as_deref(), keep_logs),
        Some(LabAction::List) => lab_list(),
    }
}

/// `lab up`: starts `lab serve` in the background and says how to reach
/// the lab once it is ready.
fn lab_up(opts: LabOpts) -> Result<()> {
    require_root("lab up", BUILDS_NAMESPACES)?;
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

/// `lab down`: removes the lab `id` (or the only one) and waits until it
/// is gone.
fn lab_down(id: Option<&str>, keep_logs: bool) -> Result<()> {
    let st = detached::find(id)?;
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

/// `lab list`: the labs `lab up` started that are up.
fn lab_list() -> Result<()> {
    for st in detached::list_up()? {
        println!(
            "{}  process {}  gateway {}",
            st.id, st.pid, st.gateway_netns
        );
    }
    Ok(())
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
        let runner = Runner::builder(
            &lab,
            leakhound::profile::Profile::seed_ref(),
            &services,
            target,
        )
        .out_dir(out.clone())
        .env_overrides(overrides)
        .holder(holder.as_ref().map(|h| h.id().to_string()))
        .build();
        let idle = Scenario::idle("lab");
        let gw = runner
            .start_idle_gateway_async(&idle, &out.join("gateway.log"))
            .await?;
        if detached.is_some() {
            // Ready means carrying traffic: a person or an audit that starts
            // now must find the gateway as it is when deployed, not half up.
            let ready = runner
                .wait_for_traffic(tokio::time::Instant::now() + Duration::from_secs(60))
                .await;
            use leakhound::model::verdict::Outcome;
            if let Outcome::Failed { message, .. } | Outcome::Error { message, .. } = ready.outcome
            {
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
