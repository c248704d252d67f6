//! Writing a run's (or an audit's) reports into its folder: junit.xml,
//! summary.json and report.html, the gateway logs redacted first; beside
//! them what a run made of the user's configuration. An audit's folder and
//! files are private (its pcap holds other people's traffic).

use std::collections::BTreeMap;
use std::path::Path;

use super::SuiteError;
use crate::model::verdict::ScenarioResult;
use crate::model::waiver::Applied;
use crate::report::json::{self, Timings};
use crate::report::junit;
use crate::report::provenance::Provenance;

/// A run's reports folder: emptied (only one leakhound made; see
/// [`crate::outdir`]).
pub fn prepare(out: &Path) -> Result<(), SuiteError> {
    Ok(crate::outdir::prepare(out)?)
}

/// An audit's reports folder: emptied, and only its owner may enter it
/// (0700); what is written there is 0600 (a live audit's reports and pcap
/// hold other people's traffic).
pub fn prepare_private(out: &Path) -> Result<(), SuiteError> {
    use std::os::unix::fs::PermissionsExt;
    prepare(out)?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        SuiteError::Private {
            dir: out.to_path_buf(),
            source,
        }
    })
}

/// Writes a report; `private`: readable by its owner only (0600 from its
/// creation on).
fn write_report(private: bool, path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    if private {
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    if private {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents.as_ref())
}

/// A write's error, naming the file.
fn writing(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SuiteError {
    let what = what.into();
    move |source| SuiteError::Write { what, source }
}

/// Writes junit.xml, summary.json and report.html for whatever ran, after
/// redacting the gateway logs the results point at.
pub fn write(
    private: bool,
    out: &Path,
    run_id: &str,
    timings: &Timings,
    provenance: Option<&Provenance>,
    waivers: Option<&Applied>,
    results: &[ScenarioResult],
) -> Result<(), SuiteError> {
    for r in results {
        crate::report::scrub_log(&r.gateway_log).map_err(|source| SuiteError::Redact {
            path: r.gateway_log.clone(),
            source,
        })?;
    }
    write_report(private, &out.join("junit.xml"), junit::render(results))
        .map_err(writing("junit.xml"))?;
    write_report(
        private,
        &out.join("summary.json"),
        json::render(run_id, timings, provenance, waivers, results),
    )
    .map_err(writing("summary.json"))?;
    write_report(
        private,
        &out.join("report.html"),
        crate::report::html::render(
            &format!("run {run_id}"),
            results,
            &requirements(results),
            provenance.map_or(&[], |p| p.config.findings.as_slice()),
        ),
    )
    .map_err(writing("report.html"))
}

/// Each scenario's requirement, from its file's `# Seed:` comment, by
/// the scenario's source.
fn requirements(results: &[ScenarioResult]) -> BTreeMap<String, String> {
    let mut requirements = BTreeMap::new();
    for r in results {
        let text = match r.source.strip_prefix("builtin:") {
            Some(name) => crate::scenario::model::BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string()),
            None => std::fs::read_to_string(&r.source).ok(),
        };
        if let Some(seed) = text.and_then(|t| crate::model::scenario::explain::seed_of(&t)) {
            requirements.insert(r.source.clone(), seed);
        }
    }
    requirements
}

/// Beside the reports, what the run made of the user's configuration:
/// `configuration.json` (names, never values) and the made scenario files.
pub fn write_user_profile(out: &Path, u: &crate::profile::UserProfile) -> Result<(), SuiteError> {
    let mut v = serde_json::to_value(u).map_err(SuiteError::Encode)?;
    crate::model::scrub::clean_json(&mut v);
    let json = serde_json::to_string_pretty(&v).map_err(SuiteError::Encode)?;
    std::fs::write(out.join("configuration.json"), json + "\n")
        .map_err(writing("configuration.json"))?;
    let dir = out.join("made-scenarios");
    std::fs::create_dir_all(&dir).map_err(|source| SuiteError::Create {
        dir: dir.clone(),
        source,
    })?;
    for (name, text) in &u.scenarios {
        let text = crate::model::scrub::redact(text);
        std::fs::write(dir.join(format!("{name}.toml")), text)
            .map_err(writing(format!("{name}.toml")))?;
    }
    Ok(())
}
