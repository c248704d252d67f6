//! Splitting a suite over the jobs of a CI matrix (`--shard i/n`), pure:
//! every scenario lands in exactly one of the n shards, the same one on
//! every machine for the same suite, and the shards take about as long
//! (longest first, each to the shard with the least work so far).

use std::time::Duration;

/// One shard of n, 1-based as people count CI jobs (`--shard 2/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// A `--shard` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a shard: write I/N with 1 <= I <= N, e.g. 2/4")]
pub struct NotAShard(pub String);

impl std::str::FromStr for Shard {
    type Err = NotAShard;

    fn from_str(s: &str) -> Result<Shard, NotAShard> {
        let bad = || NotAShard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard (1-based) of each item, given its name and its expected
/// duration: longest first (ties by name), each to the shard with the least
/// work so far (ties to the lowest). Depends only on the items, not on
/// their order.
pub fn assign(items: &[(&str, Duration)], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].1.cmp(&items[a].1).then(items[a].0.cmp(items[b].0)));
    let mut load = vec![Duration::ZERO; count];
    let mut out = vec![0; items.len()];
    for i in order {
        let (shard, _) = load
            .iter()
            .enumerate()
            .min_by(|(ia, a), (ib, b)| a.cmp(b).then(ia.cmp(ib)))
            .expect("at least one shard");
        load[shard] += items[i].1;
        out[i] = shard + 1;
    }
    out
}

/// Which of `items` belong to `shard` (by position).
pub fn select(items: &[(&str, Duration)], shard: Shard) -> Vec<bool> {
    assign(items, shard.count)
        .into_iter()
        .map(|s| s == shard.index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Vec<(String, Duration)> {
        (0..31)
            .map(|i| {
                (
                    format!("scenario-{i:02}"),
                    Duration::from_millis(200 + (i * 7919 % 13) * 1000),
                )
            })
            .collect()
    }

    fn refs(v: &[(String, Duration)]) -> Vec<(&str, Duration)> {
        v.iter().map(|(n, d)| (n.as_str(), *d)).collect()
    }

    #[test]
    fn shards_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in ["0/3", "4/3", "1/0", "a/b", "3", "", "1/2/3", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert_eq!(
                e,
                format!("{bad:?} is not a shard: write I/N with 1 <= I <= N, e.g. 2/4")
            );
        }
    }

    #[test]
    fn every_item_is_in_exactly_one_shard_and_the_union_is_the_suite() {
        let s = suite();
        let items = refs(&s);
        for n in 1..=6 {
            let mut seen = vec![0; items.len()];
            for i in 1..=n {
                for (k, inside) in select(&items, Shard { index: i, count: n })
                    .into_iter()
                    .enumerate()
                {
                    seen[k] += usize::from(inside);
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "n={n}: {seen:?}");
        }
    }

    #[test]
    fn the_split_does_not_depend_on_the_order_and_is_balanced() {
        let s = suite();
        let items = refs(&s);
        let mut reversed = items.clone();
        reversed.reverse();
        let a = assign(&items, 4);
        let mut b = assign(&reversed, 4);
        b.reverse();
        assert_eq!(a, b);
        let mut load = [Duration::ZERO; 4];
        for (k, shard) in a.iter().enumerate() {
            load[shard - 1] += items[k].1;
        }
        let (min, max) = (load.iter().min().unwrap(), load.iter().max().unwrap());
        // Longest-first greedy: no shard is more than the longest item
        // above the lightest.
        let longest = items.iter().map(|i| i.1).max().unwrap();
        assert!(*max - *min <= longest, "{load:?}");
    }

    #[test]
    fn more_shards_than_items_leaves_some_empty() {
        let items = [("a", Duration::from_secs(1)), ("b", Duration::from_secs(2))];
        assert_eq!(assign(&items, 3), vec![2, 1]);
        assert_eq!(
            select(&items, Shard { index: 3, count: 3 }),
            vec![false, false]
        );
    }
}
