//! `leakhound bench prove`: how long one proof of a gateway's ruleset
//! takes, read from its live namespace: the read (`nft -j list ruleset`,
//! its text listing, `ip -j addr`, the switches), the engine's answer on
//! what was read, and both together, each over repeated runs; beside the
//! yardstick measured in the same namespace in the same run, `nft -j list
//! ruleset` alone, which any tool that reads the ruleset pays. The
//! statistics are pure ([`Stats::of`]); the runs are the edge.

use std::time::{Duration, Instant};

use leakhound_net::netns::Netns;
use leakhound_prove::Policy;

use crate::prove::ProveError;

/// Median, 90th percentile, fastest and slowest of some runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub runs: usize,
    pub median: Duration,
    pub p90: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Stats {
    /// The statistics of `samples` (none: all zero). The median of an even
    /// count is the mean of the middle two; the 90th percentile is the
    /// sample at rank ceil(0.9 n).
    pub fn of(samples: &[Duration]) -> Stats {
        let mut s = samples.to_vec();
        s.sort();
        let n = s.len();
        if n == 0 {
            return Stats {
                runs: 0,
                median: Duration::ZERO,
                p90: Duration::ZERO,
                min: Duration::ZERO,
                max: Duration::ZERO,
            };
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2
        };
        let rank = (n * 9).div_ceil(10).max(1);
        Stats {
            runs: n,
            median,
            p90: s[rank - 1],
            min: s[0],
            max: s[n - 1],
        }
    }
}

/// What `bench prove` measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Reading the state and answering, as `prove --netns` does.
    pub total: Stats,
    /// Reading the state alone.
    pub read: Stats,
    /// The engine alone, on the state read.
    pub engine: Stats,
    /// The yardstick: `nft -j list ruleset` alone.
    pub nft_list: Stats,
    /// The answer (each run's is the same: the state did not change).
    pub answer: String,
    /// The ruleset's size: rules in every table.
    pub rules: usize,
}

/// Runs the proof of `ns` against `policy` `runs` times, and the
/// yardstick as often, alternating so that both see the same machine.
/// Blocking.
pub fn measure(
    ns: &Netns,
    underlay: &str,
    policy: &Policy,
    runs: usize,
) -> Result<Figures, ProveError> {
    let (mut total, mut read, mut engine, mut nft) = (vec![], vec![], vec![], vec![]);
    let mut answer = String::new();
    let mut rules = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let mut cmd = std::process::Command::new("nft");
        cmd.args(["-j", "list", "ruleset"]);
        ns.command(&mut cmd)?;
        let out = cmd.output().map_err(|source| ProveError::Run {
            command: "nft -j list ruleset".into(),
            source,
        })?;
        nft.push(t.elapsed());
        if !out.status.success() {
            return Err(ProveError::Failed {
                command: "nft -j list ruleset".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let t = Instant::now();
        let state = crate::prove::read_live(ns, underlay)?;
        let r = t.elapsed();
        let a = crate::prove::answer(&state, policy);
        let whole = t.elapsed();
        read.push(r);
        engine.push(whole - r);
        total.push(whole);
        answer = match a {
            leakhound_prove::Answer::Proof { .. } => "PROOF".into(),
            leakhound_prove::Answer::Witness { packet, .. } => format!("WITNESS {packet}"),
            leakhound_prove::Answer::Cannot(c) => format!("CANNOT PROVE {c}"),
        };
        rules = state.ruleset.chains.values().map(|c| c.rules.len()).sum();
    }
    Ok(Figures {
        total: Stats::of(&total),
        read: Stats::of(&read),
        engine: Stats::of(&engine),
        nft_list: Stats::of(&nft),
        answer,
        rules,
    })
}

/// The figures as a table, one row per measurement.
pub fn table(f: &Figures) -> String {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let mut s = format!(
        "{:<44} {:>5} {:>10} {:>10} {:>10} {:>10}\n",
        "ms", "runs", "median", "p90", "min", "max"
    );
    for (name, st) in [
        ("prove (read the state and answer)", f.total),
        ("  reading the state (nft twice, ip)", f.read),
        ("  the engine", f.engine),
        ("yardstick: nft -j list ruleset alone", f.nft_list),
    ] {
        s.push_str(&format!(
            "{name:<44} {:>5} {:>10} {:>10} {:>10} {:>10}\n",
            st.runs,
            ms(st.median),
            ms(st.p90),
            ms(st.min),
            ms(st.max)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_sample() {
        let s = Stats::of(&ms(&[30, 10, 20]));
        assert_eq!(s.median, Duration::from_millis(20));
        assert_eq!(s.min, Duration::from_millis(10));
        assert_eq!(s.max, Duration::from_millis(30));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Stats::of(&ms(&[40, 10, 20, 30]));
        assert_eq!(s.median, Duration::from_millis(25));
    }

    #[test]
    fn the_90th_percentile_of_twenty_is_the_eighteenth() {
        let v: Vec<u64> = (1..=20).rev().collect();
        let s = Stats::of(&ms(&v));
        assert_eq!(s.p90, Duration::from_millis(18));
        assert_eq!(s.runs, 20);
    }

    #[test]
    fn no_samples_are_zeros_not_a_panic() {
        assert_eq!(Stats::of(&[]).runs, 0);
    }
}
