//! `audit`: checks a gateway that is already running, from inside its
//! network namespace, against a profile; once, or `--every` interval
//! until a signal. Attaches, installs the signal handlers that lift a
//! disruptive audit's cut, calls [`leakhound::audit::run`], writes the
//! (private) reports and metrics and prints the result
//! ([`leakhound::report::audit_text`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use leakhound::lab::netns;
use leakhound::suite::{self, SkipPolicy, Verdict};

use super::args::{AuditArgs, OutputFormat};
use super::{ENTERS_NAMESPACE, harness_tracing, require_root};

/// `leakhound audit`: attach, check, report; the exit status as for runs.
pub(crate) fn audit(args: AuditArgs) -> Result<Verdict> {
    use leakhound::audit;
    harness_tracing(args.quiet);
    let text = std::fs::read_to_string(&args.profile)
        .with_context(|| format!("reading the profile {}", args.profile.display()))?;
    let profile_file = args.profile.display().to_string();
    let profile = leakhound::model::audit::parse(&profile_file, &text)?;
    check_allow_skip(&args.allow_skip)?;
    require_root("audit", ENTERS_NAMESPACE)?;
    let Some(which) = args.at.attach() else {
        bail!("name the gateway: --netns, --pid or --container");
    };
    let ns = audit::attach(&which)?;
    let rt = super::runtime()?;
    let interrupt = on_signals(&rt, &ns, args.disruptive)?;
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

/// The audit's signal handlers, installed before the audit changes
/// anything: SIGINT or SIGTERM lifts a `disruptive` audit's cut at once
/// (whatever the audit is doing), then ends the audit in flight, which
/// reports what it saw; a second one exits at once.
fn on_signals(
    rt: &tokio::runtime::Runtime,
    ns: &netns::Netns,
    disruptive: bool,
) -> Result<Interrupt> {
    use leakhound::audit;
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = Interrupt::default();
    let _rt = rt.enter();
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let (ns, i) = (ns.try_clone()?, interrupt.clone());
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
    Ok(interrupt)
}

/// `--allow-skip` names a kind of check (its first word) the audit knows.
fn check_allow_skip(allowed: &[String]) -> Result<()> {
    for a in allowed {
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
    Ok(())
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
            prove: args.prove,
            out: args.out.clone(),
            interrupt: interrupt.token.clone(),
        }))
        .context("auditing")?;
    let skips = SkipPolicy::new(args.fail_on_skip, args.allow_skip.clone());
    let failing = audit::failing(&result, skips.fails_on_skip(), skips.allowed());
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
            kind: leakhound::report::provenance::IdentityKind::Live,
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
            findings: Vec::new(),
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
