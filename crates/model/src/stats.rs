//! Order statistics for the figures leakhound prints (benchmarks, soak):
//! one definition of a percentile, so every figure means the same thing.

/// The `p`-th percentile (0 = min, 100 = max) of `sorted` (ascending), by
/// the nearest rank below: index `(len - 1) * p / 100`. `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(last * p.min(100) / 100).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_below() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&v, 100), Some(100));
        assert_eq!(percentile(&v, 250), Some(100));
        assert_eq!(percentile::<u32>(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
    }
}
