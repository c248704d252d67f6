//! The JSON summary of a run (`summary.json`): every scenario with its cases,
//! leaks, frame counts, pcap paths and timings, for scripts and dashboards.

use serde::Serialize;

use crate::model::verdict::ScenarioResult;

#[derive(Serialize)]
pub struct Summary<'a> {
    pub run_id: &'a str,
    pub passed: bool,
    pub scenarios: usize,
    pub failed_scenarios: usize,
    pub leaks: usize,
    pub timings_ms: &'a Timings,
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

pub fn render(run_id: &str, timings: &Timings, results: &[ScenarioResult]) -> String {
    let s = Summary {
        run_id,
        passed: results.iter().all(|r| r.passed()),
        scenarios: results.len(),
        failed_scenarios: results.iter().filter(|r| !r.passed()).count(),
        leaks: results.iter().map(|r| r.leaks.len()).sum(),
        timings_ms: timings,
        results,
    };
    serde_json::to_string_pretty(&s).expect("summary serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_failures_and_leaks() {
        let results = crate::report::junit::tests_sample();
        let v: serde_json::Value =
            serde_json::from_str(&render("abc123", &Timings::default(), &results)).unwrap();
        assert_eq!(v["passed"], false);
        assert_eq!(v["failed_scenarios"], 1);
        assert_eq!(v["leaks"], 1);
        assert_eq!(v["results"][0]["leaks"][0]["packet"]["dport"], 80);
        assert_eq!(v["results"][0]["cases"][1]["outcome"]["status"], "failed");
    }
}
