//! `reap`: removes what killed leakhound runs left behind, only what they
//! recorded making (namespaces, their processes, containers, files), and
//! says what it left alone. Every lab-building command reaps first too.

use anyhow::{Context, Result};

use leakhound::lab::netns;

/// `leakhound reap`.
pub(crate) fn reap() -> Result<()> {
    leakhound::gateway::cli::init_tracing("info");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
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
    Ok(())
}

/// Removes what killed runs of this leakhound recorded: their containers
/// (read from their records first), then their namespaces and files.
/// Returns the names of both.
pub(super) fn reap_everything(rt: &tokio::runtime::Runtime) -> (Vec<String>, Vec<String>) {
    let recorded = netns::dead_runs_containers();
    let containers = if recorded.is_empty() {
        // Only containers made before this boot could still be ours.
        rt.block_on(leakhound::target::container::reap_stale(&[]))
    } else {
        rt.block_on(leakhound::target::container::reap_stale(&recorded))
    };
    (netns::reap_stale(), containers)
}
