//! The run pipeline behind `run`, `compare` and `soak`: the lanes (labs
//! side by side, [`lane`]), handing out the work longest expected wait
//! first ([`schedule`]), the waivers, the skip rule and the verdict that
//! is the exit status ([`verdict`]), and writing the reports
//! ([`reports`]). The command line resolves what to run and against
//! which targets; [`run`] runs it, saying on standard error what it
//! builds (unless quiet) and streaming the runner's events to the
//! terminal display or as JSON Lines, and returns the finished run
//! ([`Finished`]), whose closing text [`crate::report::run_text`] makes.

pub mod lane;
pub mod reports;
pub mod schedule;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use lane::{DEFAULT_JOBS, Lane, lane_count};
pub use verdict::{SkipPolicy, Verdict};

use crate::lab::wgserver::ProviderKind;
use crate::lab::{self, Lab, LabError};
use crate::model::waiver::{Applied, Waiver};
use crate::profile::Profile;
use crate::report::json::Timings;
use crate::report::provenance::Provenance;
use crate::report::terminal;
use crate::scenario::model::Scenario;
use crate::scenario::runner::{Runner, ScenarioResult};
use crate::target::{GatewayTarget, TargetError};

/// Why a run could not run or could not write its reports (each says
/// what it was doing; the cause is its source).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("claiming the run id")]
    Claim(#[source] LabError),
    #[error("starting the holder container")]
    Holder(#[source] TargetError),
    #[error("building the lab")]
    BuildLab(#[source] LabError),
    #[error("starting the lab's services")]
    Services(#[source] LabError),
    #[error("starting the real dependents")]
    RealDependents(#[source] LabError),
    #[error("reading the waivers {}", .file.display())]
    ReadWaivers {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Waivers(#[from] crate::model::located::FileError),
    #[error(transparent)]
    OutDir(#[from] crate::outdir::OutDirError),
    #[error("making {} private", .dir.display())]
    Private {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("creating {}", .dir.display())]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("redacting {}", .path.display())]
    Redact {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding configuration.json")]
    Encode(#[source] serde_json::Error),
    #[error("writing {what}")]
    Write {
        what: String,
        source: std::io::Error,
    },
    #[error("writing the metrics to {}", .file.display())]
    Metrics {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// How a run runs and what it records besides its results.
pub struct Plan {
    /// Where the reports go (prepared by the caller).
    pub out: PathBuf,
    /// Labs side by side (see [`lane_count`]).
    pub jobs: Option<usize>,
    /// The WireGuard implementation of the lab's provider.
    pub provider: ProviderKind,
    /// Gateway variables for every scenario, applied last.
    pub overrides: BTreeMap<String, String>,
    /// The leak fuzzer's seed and strictness.
    pub fuzz: crate::scenario::runner::FuzzSettings,
    /// What is tested: the gateways pinned down, the run-wide variables.
    pub provenance: Provenance,
    /// The failures the user accepts.
    pub waivers: Option<Vec<Waiver>>,
    pub skips: SkipPolicy,
    /// Also write the metrics in Prometheus' text format here.
    pub prometheus: Option<PathBuf>,
    /// Events as JSON Lines on standard output, instead of the terminal
    /// display.
    pub json_lines: bool,
    /// No progress, and only the checks that did not pass.
    pub quiet: bool,
}

/// A run that ran (perhaps interrupted): its reports are written.
pub struct Finished {
    pub run_id: String,
    pub verdict: Verdict,
    /// In suite order, target by target; waivers applied.
    pub results: Vec<ScenarioResult>,
    pub timings: Timings,
    /// From the start to the reports written.
    pub total: Duration,
    /// Each scenario's wall time (named with its target when several).
    pub per_scenario: Vec<(String, Duration)>,
    /// The comparison table, with several targets (also in compare.md).
    pub table: Option<String>,
    /// The waivers as applied, when there were any.
    pub waived: Option<Applied>,
    pub interrupted: bool,
}

/// Builds the lanes and runs `scenarios` against every target, then
/// tears the lanes down, applies the waivers, decides the verdict and
/// writes the reports (also when the lab could not be built; then the
/// error is returned). `interrupt` cancelled: the scenarios in flight are
/// torn down and reported as interrupted, the others do not start.
pub async fn run(
    plan: &Plan,
    profile: &Profile,
    targets: Vec<Arc<dyn GatewayTarget>>,
    scenarios: Vec<Scenario>,
    interrupt: CancellationToken,
) -> Result<Finished, SuiteError> {
    let total = Instant::now();
    let run_id = lab::new_run_id();
    let mut timings = Timings::default();
    let lanes = build_lanes(plan, profile, &run_id, &targets, &scenarios, &mut timings).await?;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let display = if plan.json_lines {
        tokio::spawn(crate::report::jsonl::stream(rx))
    } else {
        tokio::spawn(terminal::display(rx, plan.quiet))
    };
    let several = targets.len() > 1;
    for target in &targets {
        // With several targets, each gets its own folder for pcaps and logs.
        if several {
            if !plan.quiet {
                eprintln!("target {}: {}", target.name(), target.describe());
            }
            let dir = plan.out.join(target.name());
            std::fs::create_dir_all(&dir).map_err(|source| SuiteError::Create { dir, source })?;
        }
    }
    let t = Instant::now();
    let mut finished =
        run_lanes(plan, profile, &lanes, &targets, &scenarios, &interrupt, &tx).await;
    drop(tx);
    timings.scenarios = t.elapsed().as_millis();
    let _ = display.await;
    finished.sort_by_key(|(k, _, _)| *k);
    let mut wall: Vec<(String, Duration)> = targets
        .iter()
        .map(|t| (t.name().to_string(), Duration::ZERO))
        .collect();
    let mut per_scenario: Vec<(String, Duration)> = Vec::new();
    let mut results: Vec<ScenarioResult> = Vec::new();
    for ((ti, _), r, took) in finished {
        wall[ti].1 += took;
        per_scenario.push((
            if several {
                format!("{} ({})", r.name, targets[ti].name())
            } else {
                r.name.clone()
            },
            took,
        ));
        results.push(r);
    }

    timings.teardown = lanes.into_iter().map(|l| l.teardown().as_millis()).sum();

    let waived = plan
        .waivers
        .as_deref()
        .map(|w| crate::model::waiver::apply(w, &mut results, std::time::SystemTime::now()));
    let verdict = verdict::decide(
        &results,
        waived.as_ref(),
        &plan.skips,
        interrupt.is_cancelled(),
    );
    reports::write(
        false,
        &plan.out,
        &run_id,
        &timings,
        Some(&plan.provenance),
        waived.as_ref(),
        &results,
    )?;
    if let Some(file) = &plan.prometheus {
        write_metrics(file, &results, &timings, verdict)?;
    }
    // The comparison table is a report: written whatever the terminal gets.
    let table = several.then(|| crate::report::compare::render(&results, &wall));
    if let Some(t) = &table {
        std::fs::write(plan.out.join("compare.md"), t).map_err(|source| SuiteError::Write {
            what: "compare.md".into(),
            source,
        })?;
    }
    Ok(Finished {
        run_id,
        verdict,
        results,
        timings,
        total: total.elapsed(),
        per_scenario,
        table,
        waived,
        interrupted: interrupt.is_cancelled(),
    })
}

/// The lanes, as many as the work and the plan call for (the first one's
/// lab takes `run_id`), with the time they took in `timings`. When one
/// cannot be built, those built are torn down and the reports are written
/// (empty) before the error is returned.
async fn build_lanes(
    plan: &Plan,
    profile: &Profile,
    run_id: &str,
    targets: &[Arc<dyn GatewayTarget>],
    scenarios: &[Scenario],
    timings: &mut Timings,
) -> Result<Vec<Lane>, SuiteError> {
    let holder_image = targets.iter().find_map(|t| t.holder_image());
    let lanes_wanted = lane_count(
        plan.jobs,
        holder_image.is_some(),
        targets.len() * scenarios.len(),
    );
    if !plan.quiet {
        eprintln!(
            "leakhound run {run_id}: building the lab{}",
            if lanes_wanted > 1 {
                format!(" ({lanes_wanted} labs side by side)")
            } else {
                String::new()
            }
        );
    }
    let t = Instant::now();
    let mut lanes: Vec<Lane> = Vec::new();
    for i in 0..lanes_wanted {
        let id = if i == 0 {
            run_id.to_string()
        } else {
            lab::new_run_id()
        };
        let lane = match Lab::claim(&id) {
            Ok(lock) => Lane::build(lock, holder_image.as_deref(), plan.provider, profile).await,
            Err(e) => Err(SuiteError::Claim(e)),
        };
        match lane {
            Ok(l) => lanes.push(l),
            Err(e) => {
                for l in lanes {
                    l.teardown();
                }
                reports::write(
                    false,
                    &plan.out,
                    run_id,
                    timings,
                    Some(&plan.provenance),
                    None,
                    &[],
                )?;
                return Err(e);
            }
        }
    }
    timings.lab_setup = lanes.iter().map(|l| l.lab.build_time.as_millis()).sum();
    timings.services = t.elapsed().as_millis().saturating_sub(timings.lab_setup);
    Ok(lanes)
}

/// The work: every (target, scenario), handed out longest expected wait
/// first to whichever lane is free, until it is done or `interrupt` is
/// cancelled; each result with its place in the suite and its wall time.
async fn run_lanes(
    plan: &Plan,
    profile: &Profile,
    lanes: &[Lane],
    targets: &[Arc<dyn GatewayTarget>],
    scenarios: &[Scenario],
    interrupt: &CancellationToken,
    tx: &tokio::sync::mpsc::UnboundedSender<crate::model::verdict::Event>,
) -> Vec<((usize, usize), ScenarioResult, Duration)> {
    let several = targets.len() > 1;
    let waits: Vec<Duration> = scenarios
        .iter()
        .map(|s| s.expected_wait(crate::scenario::runner::PROBE_TIMEOUT))
        .collect();
    let work = schedule::order(targets.len(), &waits);
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(work));
    let lane_runs = lanes.iter().map(|lane| {
        let (queue, tx) = (&queue, tx.clone());
        let overrides = plan.overrides.clone();
        async move {
            let mut done = Vec::new();
            loop {
                if interrupt.is_cancelled() {
                    break;
                }
                let Some((ti, si)) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let target = &targets[ti];
                let runner = Runner::builder(&lane.lab, profile, &lane.services, target.clone())
                    .out_dir(if several {
                        plan.out.join(target.name())
                    } else {
                        plan.out.clone()
                    })
                    .env_overrides(overrides.clone())
                    .fuzz(plan.fuzz)
                    .events(tx.clone())
                    .interrupt(interrupt.clone())
                    .holder(lane.holder.as_ref().map(|h| h.id().to_string()))
                    .build();
                let started = Instant::now();
                let r = runner.run(&scenarios[si]).await;
                done.push(((ti, si), r, started.elapsed()));
            }
            done
        }
    });
    futures::future::join_all(lane_runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The metrics in Prometheus' text format, written to `file` atomically.
fn write_metrics(
    file: &std::path::Path,
    results: &[ScenarioResult],
    timings: &Timings,
    verdict: Verdict,
) -> Result<(), SuiteError> {
    let took = Duration::from_millis(
        (timings.lab_setup + timings.services + timings.scenarios + timings.teardown) as u64,
    );
    crate::report::prometheus::write_atomically(
        file,
        &crate::report::prometheus::render(
            results,
            verdict == Verdict::Passed,
            std::time::SystemTime::now(),
            took,
        ),
    )
    .map_err(|source| SuiteError::Metrics {
        file: file.to_path_buf(),
        source,
    })
}
