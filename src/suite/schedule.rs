//! The order in which a run hands out its work: every (target, scenario)
//! pair, the longest expected wait first, to whichever lane is free (the
//! long scenarios do not end up last, alone in one lane).

use std::time::Duration;

/// Every (target, scenario) pair as indices into the run's targets and
/// scenarios, longest expected wait (`waits`, per scenario) first; equal
/// waits keep the suite's order, target by target.
pub fn order(targets: usize, waits: &[Duration]) -> Vec<(usize, usize)> {
    let mut work: Vec<(usize, usize)> = (0..targets)
        .flat_map(|t| (0..waits.len()).map(move |s| (t, s)))
        .collect();
    work.sort_by_key(|&(t, s)| (std::cmp::Reverse(waits[s]), t, s));
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|&s| Duration::from_secs(s)).collect()
    }

    #[test]
    fn the_longest_wait_goes_first_then_the_suite_order() {
        assert_eq!(
            order(1, &secs(&[1, 5, 3, 5])),
            [(0, 1), (0, 3), (0, 2), (0, 0)]
        );
    }

    #[test]
    fn every_target_gets_every_scenario_once() {
        let w = order(2, &secs(&[1, 5, 3]));
        assert_eq!(w, [(0, 1), (1, 1), (0, 2), (1, 2), (0, 0), (1, 0)]);
        assert!(order(0, &secs(&[1])).is_empty());
        assert!(order(3, &[]).is_empty());
    }
}
