//! The JSON summary of a run (`summary.json`): every scenario with its cases,
//! leaks, frame counts, pcap paths and timings, for scripts and dashboards.

use serde::Serialize;

use crate::model::verdict::ScenarioResult;

/// The version of summary.json's shape; it changes when a field changes
/// meaning or goes away (new fields may appear without it).
pub const SCHEMA: u32 = 2;

#[derive(Serialize)]
pub struct Summary<'a> {
    /// [`SCHEMA`]; 2 since skipped scenarios are counted apart from failed
    /// ones.
    pub schema: u32,
    /// The leakhound that wrote it.
    pub leakhound_version: &'static str,
    pub run_id: &'a str,
    pub passed: bool,
    pub scenarios: usize,
    /// Scenarios that ran and failed (skipped ones are not failures).
    pub failed_scenarios: usize,
    /// Scenarios skipped entirely (the target or the lab cannot run them).
    pub skipped_scenarios: usize,
    pub leaks: usize,
    pub timings_ms: &'a Timings,
    /// What was tested (the gateways pinned down, the redacted config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<&'a super::provenance::Provenance>,
    /// What `--waivers` did: checks waived, waivers expired (they fail the
    /// run) or stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waivers: Option<&'a crate::model::waiver::Applied>,
    /// Variables of the configuration under test that today's Gluetun
    /// reads otherwise than their names say (the seed's `DOT=off` switches
    /// the DNS server off): not failures, but what the user should know.
    pub configuration_findings: &'a [crate::gateway::variables::Finding],
    pub results: &'a [ScenarioResult],
}

/// Where the wall time of a run went.
#[derive(Debug, Default, Serialize, Clone)]
pub struct Timings {
    pub lab_setup: u128,
    pub services: u128,
    pub scenarios: u128,
    pub teardown: u128,
}

pub fn render(
    run_id: &str,
    timings: &Timings,
    provenance: Option<&super::provenance::Provenance>,
    waivers: Option<&crate::model::waiver::Applied>,
    results: &[ScenarioResult],
) -> String {
    let s = Summary {
        schema: SCHEMA,
        leakhound_version: env!("CARGO_PKG_VERSION"),
        run_id,
        passed: results.iter().all(ScenarioResult::ok)
            && waivers.is_none_or(|w| w.expired.is_empty()),
        scenarios: results.len(),
        failed_scenarios: results.iter().filter(|r| !r.ok()).count(),
        skipped_scenarios: results.iter().filter(|r| r.skipped()).count(),
        leaks: results.iter().map(|r| r.leaks.len()).sum(),
        timings_ms: timings,
        provenance,
        waivers,
        configuration_findings: provenance.map_or(&[], |p| p.config.findings.as_slice()),
        results,
    };
    // Every string cleaned once, here: secrets redacted, control bytes
    // shown escaped, lengths capped.
    let mut v = serde_json::to_value(&s).expect("summary serializes");
    crate::model::scrub::clean_json(&mut v);
    serde_json::to_string_pretty(&v).expect("summary serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_failures_and_leaks() {
        let results = crate::report::junit::tests_sample();
        let v: serde_json::Value =
            serde_json::from_str(&render("abc123", &Timings::default(), None, None, &results))
                .unwrap();
        assert_eq!(v["passed"], false);
        assert_eq!(v["failed_scenarios"], 1);
        assert_eq!(v["skipped_scenarios"], 0);
        assert_eq!(v["schema"], SCHEMA);
        // A skipped scenario is neither a failure nor a pass.
        let mut skipped = results.clone();
        skipped[0].cases = vec![crate::model::verdict::CaseResult {
            name: "x".into(),
            outcome: crate::model::verdict::Outcome::Skipped { reason: "r".into() },
            duration: std::time::Duration::ZERO,
            log: vec![],
        }];
        skipped[0].leaks.clear();
        let w: serde_json::Value =
            serde_json::from_str(&render("abc123", &Timings::default(), None, None, &skipped))
                .unwrap();
        assert_eq!(
            (
                &w["passed"],
                &w["failed_scenarios"],
                &w["skipped_scenarios"]
            ),
            (
                &serde_json::json!(true),
                &serde_json::json!(0),
                &serde_json::json!(1)
            )
        );
        assert_eq!(v["leaks"], 1);
        assert_eq!(v["results"][0]["leaks"][0]["packet"]["dport"], 80);
        assert_eq!(v["results"][0]["cases"][1]["outcome"]["status"], "failed");
        assert_eq!(v["configuration_findings"], serde_json::json!([]));
    }

    #[test]
    fn the_seed_s_changed_meanings_are_configuration_findings_in_the_summary() {
        let seed = crate::profile::Profile::seed();
        let p = crate::report::provenance::of_run(
            &[],
            std::path::Path::new("/nonexistent"),
            "seed",
            &seed.policy_env,
            &seed.config_findings,
        );
        let results = crate::report::junit::tests_sample();
        let v: serde_json::Value = serde_json::from_str(&render(
            "abc123",
            &Timings::default(),
            Some(&p),
            None,
            &results,
        ))
        .unwrap();
        let f = &v["configuration_findings"];
        let names: Vec<&str> = f
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["variable"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["DNS_KEEP_NAMESERVER", "DOT", "DNS_ADDRESS"]);
        assert_eq!(f[1]["kind"], "meaning-changed");
        assert_eq!(f[1]["now_read_as"], "DNS_SERVER");
        assert_eq!(v["provenance"]["config"]["findings"], *f);
        let html = crate::report::html::render(
            "run abc123",
            &results,
            &Default::default(),
            &p.config.findings,
        );
        assert!(html.contains("Configuration findings"));
        assert!(html.contains("DOT: meaning changed"), "{html}");
    }
}
