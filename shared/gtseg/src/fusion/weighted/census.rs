//! The census of one image: how many pixels got each combination of votes.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use crate::fusion::scan::{Span, scan_row};
use crate::fusion::{Rows, for_each_window};
use crate::raster::{ABSTAIN, ClassMask};

/// Distinct disputed combinations a census keeps per image. Real masks give a few hundred;
/// random masks could give one per pixel, so the census stops learning new ones here, which
/// bounds its memory (about 1 MiB per image).
/// Pixels with combinations beyond it still vote; they only do not inform the model.
pub(crate) const MAX_COMBINATIONS: usize = 1 << 12;

/// Votes (combinations × workers) the censuses of one batch keep together, which bounds the
/// crowd model's memory (a few hundred bytes a vote) however many images, workers and classes
/// the batch has. Real batches stay far below it; random masks reach it.
pub const MAX_BATCH_VOTES: usize = 1 << 21;

/// An image's combinations of votes with their pixel counts, stored flat (a batch holds many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combinations {
    workers: usize,
    votes: Vec<u8>,
    counts: Vec<u64>,
}

impl Combinations {
    /// Each combination (one vote per worker, in worker order) with its pixel count.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.votes
            .chunks_exact(self.workers.max(1))
            .zip(self.counts.iter().copied())
    }

    /// How many combinations there are.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Owned copies, for comparisons.
    pub fn to_vec(&self) -> Vec<(Vec<u8>, u64)> {
        self.iter().map(|(v, n)| (v.to_vec(), n)).collect()
    }
}

/// How many pixels of one image got each combination of votes (in worker order; [`ABSTAIN`]
/// where a worker painted nothing usable). Pixels nobody voted on are not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    workers: usize,
    /// Pixels where every worker voted class c.
    unanimous: Vec<u64>,
    disputed: FxHashMap<Box<[u8]>, u64>,
    /// Disputed pixels left out because their combination came after [`MAX_COMBINATIONS`].
    overflow: u64,
}

impl Census {
    /// An empty census of `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            unanimous: vec![0; 256],
            disputed: HashMap::default(),
            overflow: 0,
        }
    }

    /// Counts one row (`rows[i]` is worker i's window, as the vote gets it).
    pub fn add_row(&mut self, rows: &[Rows<'_>]) {
        let first = rows[0].current;
        let (unanimous, disputed, overflow) =
            (&mut self.unanimous, &mut self.disputed, &mut self.overflow);
        // Neighbouring disputed pixels often repeat a combination: count runs, hash once.
        let (mut run, mut run_len) = (Vec::with_capacity(rows.len()), 0u64);
        let mut key = Vec::with_capacity(rows.len());
        let mut flush = |run: &[u8], n: u64| {
            if n > 0 {
                let full = disputed.len() >= MAX_COMBINATIONS;
                match disputed.get_mut(run) {
                    Some(count) => *count += n,
                    None if full => *overflow += n,
                    None => {
                        disputed.insert(run.into(), n);
                    }
                }
            }
        };
        // With the first worker's runs, its whole row is counted run by run and its disputed
        // pixels taken back out, instead of counting the unanimous pixels one by one.
        let by_runs = !rows[0].runs.is_empty();
        if by_runs {
            let mut start = 0;
            for r in rows[0].runs {
                unanimous[usize::from(r.class)] += u64::from(r.end) - start;
                start = u64::from(r.end);
            }
        }
        scan_row(rows, |span| match span {
            Span::Unanimous(_) if by_runs => {}
            Span::Unanimous(r) => first[r]
                .iter()
                .for_each(|&c| unanimous[usize::from(c)] += 1),
            Span::Disputed(x) => {
                if by_runs {
                    unanimous[usize::from(first[x])] -= 1;
                }
                key.clear();
                key.extend(rows.iter().map(|r| r.current[x]));
                if key.iter().all(|&v| v == ABSTAIN) {
                    return;
                }
                if key != run {
                    flush(&run, run_len);
                    std::mem::swap(&mut run, &mut key);
                    run_len = 0;
                }
                run_len += 1;
            }
        });
        flush(&run, run_len);
    }

    /// The census of whole same-sized masks (the batch streams rows instead).
    pub fn of_masks(masks: &[&ClassMask]) -> Self {
        let mut census = Self::new(masks.len());
        for_each_window(masks, |_, window| census.add_row(window));
        census
    }

    /// Disputed pixels left out of the census: it keeps at most 4096 distinct combinations
    /// per image, which bounds its memory.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// Every combination seen, with its pixel count, sorted (so the fit is deterministic).
    pub fn patterns(&self) -> Combinations {
        self.patterns_within(usize::MAX).0
    }

    /// The `most` most frequent combinations (ties: the lower combination), sorted, and the
    /// pixels of the combinations left out.
    pub fn patterns_within(&self, most: usize) -> (Combinations, u64) {
        let mut all: Vec<(&[u8], u64)> = self.disputed.iter().map(|(k, &n)| (&k[..], n)).collect();
        let unanimous: Vec<Vec<u8>> = (0..=255u8)
            .filter(|&c| self.unanimous[usize::from(c)] > 0)
            .map(|c| vec![c; self.workers])
            .collect();
        all.extend(
            unanimous
                .iter()
                .map(|v| (v.as_slice(), self.unanimous[usize::from(v[0])])),
        );
        let mut left_out = 0;
        if all.len() > most {
            all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            left_out = all[most..].iter().map(|p| p.1).sum();
            all.truncate(most);
        }
        all.sort_unstable();
        let mut out = Combinations {
            workers: self.workers,
            votes: Vec::with_capacity(all.len() * self.workers),
            counts: Vec::with_capacity(all.len()),
        };
        for (votes, n) in all {
            out.votes.extend_from_slice(votes);
            out.counts.push(n);
        }
        (out, left_out)
    }

    /// Votes the census holds: combinations × workers.
    pub fn votes(&self) -> usize {
        (self.disputed.len() + self.unanimous.iter().filter(|&&n| n > 0).count()) * self.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_counts_each_combination_of_votes() {
        let a = ClassMask::from_rows(4, &[&[1, 1, 2, ABSTAIN]]);
        let b = ClassMask::from_rows(4, &[&[1, 2, 2, ABSTAIN]]);
        let census = Census::of_masks(&[&a, &b]);
        // The all-abstain pixel is no evidence and is not counted.
        assert_eq!(
            census.patterns().to_vec(),
            vec![(vec![1, 1], 1), (vec![1, 2], 1), (vec![2, 2], 1)]
        );
        assert_eq!(census.votes(), 6);
        let long: Vec<u8> = (0..1100).map(|i| (i / 100 % 3) as u8).collect();
        let m = ClassMask::from_rows(1100, &[&long]);
        let total: u64 = Census::of_masks(&[&m, &m, &m])
            .patterns()
            .iter()
            .map(|p| p.1)
            .sum();
        assert_eq!(Census::of_masks(&[&m, &m, &m]).patterns().len(), 3);
        assert_eq!(total, 1100, "unanimous spans count every pixel");
    }

    #[test]
    fn census_memory_is_bounded_and_overflow_is_counted() {
        // Every pixel its own combination: far more than MAX_COMBINATIONS.
        let w = 3 * MAX_COMBINATIONS as u32;
        let a: Vec<u8> = (0..w).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..w).map(|i| (i / 251 % 251) as u8).collect();
        let (a, b) = (
            ClassMask::from_rows(w, &[&a]),
            ClassMask::from_rows(w, &[&b]),
        );
        let census = Census::of_masks(&[&a, &b]);
        let kept: u64 = census.patterns().iter().map(|p| p.1).sum();
        assert_eq!(census.disputed.len(), MAX_COMBINATIONS);
        assert_eq!(
            kept + census.overflow(),
            u64::from(w),
            "every pixel is counted once"
        );
        assert!(census.overflow() > 0);
    }

    proptest::proptest! {
        #[test]
        fn counting_by_runs_counts_the_same(
            m in crate::fusion::testing::masks_of(1u32..70, 1u32..4, 1usize..5)
        ) {
            let refs: Vec<&ClassMask> = m.iter().collect();
            let mut by_runs = Census::new(m.len());
            crate::fusion::testing::for_each_window_with_runs(&refs, |window| {
                by_runs.add_row(window);
            });
            proptest::prop_assert_eq!(by_runs.patterns(), Census::of_masks(&refs).patterns());
        }
    }

    #[test]
    fn the_most_frequent_combinations_are_kept_within_a_limit() {
        let a = ClassMask::from_rows(6, &[&[1, 1, 1, 2, 2, 3]]);
        let b = ClassMask::from_rows(6, &[&[1, 1, 1, 2, 3, 3]]);
        let census = Census::of_masks(&[&a, &b]);
        let (kept, left_out) = census.patterns_within(2);
        assert_eq!(
            (kept.to_vec(), left_out),
            (vec![(vec![1, 1], 3), (vec![2, 2], 1)], 2),
            "the 3-pixel combination, then the lowest of the 1-pixel ones"
        );
        assert_eq!(census.patterns_within(9).1, 0);
    }
}
