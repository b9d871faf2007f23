//! The fusion rule: many workers' class masks in, one consolidated mask out. Pure, no I/O.
//!
//! [`Fusion`] is the small interface that algorithms implement; [`Majority`] is the default:
//! per-pixel plurality, ties broken by the 3×3 neighbourhood vote among the tied classes,
//! then by the lowest class index.

use crate::mask::{ABSTAIN, ClassMask};

/// The result of fusing the included workers' masks of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fused {
    pub width: u32,
    pub height: u32,
    /// The winning class of every pixel (0 where nobody voted).
    pub classes: Vec<u8>,
    /// How many workers voted for the winning class at every pixel.
    pub winning_votes: Vec<u8>,
    /// How many workers took part.
    pub workers: usize,
}

impl Fused {
    /// Mean over pixels of winning votes ÷ included workers, rounded to 5 decimals; 0.0 with
    /// fewer than two workers (Ground Truth does the same).
    pub fn confidence(&self) -> f64 {
        let pixels = self.classes.len() as f64;
        if self.workers < 2 || pixels == 0.0 {
            return 0.0;
        }
        let sum: u64 = self.winning_votes.iter().map(|&v| u64::from(v)).sum();
        round5(sum as f64 / (pixels * self.workers as f64))
    }
}

/// Rounds to 5 decimals, as Ground Truth reports confidences.
pub fn round5(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}

/// A fusion algorithm. Implementations must be deterministic and must not depend on the order
/// of `masks` beyond what they document.
pub trait Fusion: std::fmt::Debug + Send + Sync {
    /// The name reported in metadata (e.g. `majority`).
    fn name(&self) -> &'static str;
    /// Fuses same-sized masks (the caller guarantees at least one, all of one size, and fewer
    /// than 255 of them).
    fn fuse(&self, masks: &[&ClassMask]) -> Fused;
}

/// Per-pixel plurality vote with a neighbourhood tie-break (SPEC §3, the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Majority;

impl Fusion for Majority {
    fn name(&self) -> &'static str {
        "majority"
    }

    fn fuse(&self, masks: &[&ClassMask]) -> Fused {
        let (width, height) = (masks[0].width, masks[0].height);
        let (w, h) = (width as usize, height as usize);
        let mut classes = vec![0u8; w * h];
        let mut winning_votes = vec![0u8; w * h];
        let mut votes: Vec<u8> = Vec::with_capacity(masks.len());
        let mut tied: Vec<u8> = Vec::with_capacity(masks.len());
        for i in 0..w * h {
            votes.clear();
            votes.extend(masks.iter().map(|m| m.data[i]).filter(|&v| v != ABSTAIN));
            let Some(&first) = votes.first() else {
                continue;
            };
            if votes.iter().all(|&v| v == first) {
                classes[i] = first;
                winning_votes[i] = votes.len() as u8;
                continue;
            }
            votes.sort_unstable();
            let best = plurality(&votes, &mut tied);
            winning_votes[i] = best;
            classes[i] = if tied.len() == 1 {
                tied[0]
            } else {
                break_tie(masks, w, h, i, &tied)
            };
        }
        Fused {
            width,
            height,
            classes,
            winning_votes,
            workers: masks.len(),
        }
    }
}

/// Given sorted votes, fills `tied` with the classes that have the most votes (ascending) and
/// returns that count.
fn plurality(sorted: &[u8], tied: &mut Vec<u8>) -> u8 {
    tied.clear();
    let mut best = 0u8;
    for run in sorted.chunk_by(|a, b| a == b) {
        let n = run.len() as u8;
        if n > best {
            best = n;
            tied.clear();
        }
        if n == best {
            tied.push(run[0]);
        }
    }
    best
}

/// Among `tied` (ascending), the class with the most votes over the 3×3 neighbourhood of
/// pixel `i` (clipped at the border); the lowest index if that still ties.
fn break_tie(masks: &[&ClassMask], w: usize, h: usize, i: usize, tied: &[u8]) -> u8 {
    let (x, y) = (i % w, i / w);
    let (x0, x1) = (x.saturating_sub(1), (x + 1).min(w - 1));
    let (y0, y1) = (y.saturating_sub(1), (y + 1).min(h - 1));
    let mut best = (0u32, tied[0]);
    for &c in tied {
        let mut n = 0u32;
        for yy in y0..=y1 {
            for m in masks {
                n += m.data[yy * w + x0..=yy * w + x1]
                    .iter()
                    .filter(|&&v| v == c)
                    .count() as u32;
            }
        }
        // Strictly greater: on equal sums the earlier (lower) class stays.
        if n > best.0 {
            best = (n, c);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mask(w: u32, rows: &[&[u8]]) -> ClassMask {
        ClassMask {
            width: w,
            height: rows.len() as u32,
            data: rows.concat(),
        }
    }

    fn fuse(ms: &[ClassMask]) -> Fused {
        Majority.fuse(&ms.iter().collect::<Vec<_>>())
    }

    #[test]
    fn plurality_wins_per_pixel() {
        let f = fuse(&[
            mask(3, &[&[1, 2, 0]]),
            mask(3, &[&[1, 2, 2]]),
            mask(3, &[&[3, 1, 2]]),
        ]);
        assert_eq!(f.classes, [1, 2, 2]);
        assert_eq!(f.winning_votes, [2, 2, 2]);
    }

    #[test]
    fn tie_is_broken_by_neighbourhood() {
        // Centre pixel: one vote for 1, one for 2. Around it, worker B's class 2 dominates.
        let a = mask(3, &[&[0, 0, 0], &[0, 1, 0], &[0, 0, 0]]);
        let b = mask(3, &[&[2, 2, 0], &[2, 2, 0], &[0, 0, 0]]);
        let f = fuse(&[a, b]);
        assert_eq!(f.classes[4], 2);
        assert_eq!(f.winning_votes[4], 1);
    }

    #[test]
    fn neighbourhood_counts_only_tied_classes() {
        // Class 3 is everywhere around but is not tied at the centre, so it cannot win there.
        let a = mask(3, &[&[3, 3, 3], &[3, 1, 3], &[3, 3, 3]]);
        let b = mask(3, &[&[3, 3, 3], &[3, 2, 3], &[3, 3, 3]]);
        assert_eq!(fuse(&[a, b]).classes[4], 1);
    }

    #[test]
    fn three_way_tie_falls_to_lowest_index() {
        let f = fuse(&[mask(1, &[&[3]]), mask(1, &[&[1]]), mask(1, &[&[2]])]);
        assert_eq!(f.classes, [1]);
    }

    #[test]
    fn tie_break_is_clipped_at_the_border() {
        // Corner pixel (0,0): tie 1 vs 2; the in-image neighbours favour 2.
        let a = mask(2, &[&[1, 0], &[0, 0]]);
        let b = mask(2, &[&[2, 2], &[2, 0]]);
        assert_eq!(fuse(&[a, b]).classes[0], 2);
    }

    #[test]
    fn nobody_voted_is_background() {
        let f = fuse(&[mask(2, &[&[ABSTAIN, 1]]), mask(2, &[&[ABSTAIN, 1]])]);
        assert_eq!(f.classes, [0, 1]);
        assert_eq!(f.winning_votes, [0, 2]);
    }

    #[test]
    fn abstentions_do_not_count() {
        let f = fuse(&[
            mask(1, &[&[ABSTAIN]]),
            mask(1, &[&[ABSTAIN]]),
            mask(1, &[&[4]]),
        ]);
        assert_eq!(f.classes, [4]);
    }

    #[test]
    fn confidence_is_mean_share_of_winning_votes() {
        let f = fuse(&[
            mask(2, &[&[1, 1]]),
            mask(2, &[&[1, 2]]),
            mask(2, &[&[1, 0]]),
        ]);
        // pixel 0: 3/3; pixel 1: three-way tie, 1/3.
        assert_eq!(f.confidence(), round5((1.0 + 1.0 / 3.0) / 2.0));
        assert_eq!(f.confidence(), 0.66667);
        assert_eq!(fuse(&[mask(2, &[&[1, 1]])]).confidence(), 0.0);
    }

    fn masks_strategy() -> impl Strategy<Value = Vec<ClassMask>> {
        (1u32..6, 1u32..6, 1usize..6).prop_flat_map(|(w, h, n)| {
            let px = (w * h) as usize;
            let value = prop_oneof![8 => 0u8..4, 1 => Just(ABSTAIN)];
            proptest::collection::vec(proptest::collection::vec(value, px), n).prop_map(move |ds| {
                ds.into_iter()
                    .map(|data| ClassMask {
                        width: w,
                        height: h,
                        data,
                    })
                    .collect()
            })
        })
    }

    proptest! {
        #[test]
        fn unanimity_returns_the_common_mask(m in masks_strategy(), n in 1usize..5) {
            let one = m[0].clone();
            let f = fuse(&vec![one.clone(); n]);
            let want: Vec<u8> = one.data.iter().map(|&v| if v == ABSTAIN { 0 } else { v }).collect();
            prop_assert_eq!(f.classes, want);
        }

        #[test]
        fn one_worker_gives_back_its_own_mask(m in masks_strategy()) {
            let f = fuse(&m[..1]);
            let want: Vec<u8> = m[0].data.iter().map(|&v| if v == ABSTAIN { 0 } else { v }).collect();
            prop_assert_eq!(&f.classes, &want);
            prop_assert_eq!(f.confidence(), 0.0);
        }

        #[test]
        fn result_does_not_depend_on_worker_order(m in masks_strategy(), seed in any::<u64>()) {
            let mut shuffled = m.clone();
            // A deterministic permutation driven by the seed.
            let n = shuffled.len();
            for i in (1..n).rev() {
                shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % (i + 1));
            }
            prop_assert_eq!(fuse(&m), fuse(&shuffled));
        }

        #[test]
        fn every_winner_has_the_highest_vote_count(m in masks_strategy()) {
            let f = fuse(&m);
            for i in 0..f.classes.len() {
                let count = |c: u8| m.iter().filter(|x| x.data[i] == c).count();
                let max = (0u8..4).map(count).max().unwrap_or(0);
                prop_assert_eq!(f.winning_votes[i] as usize, max);
                if max > 0 {
                    prop_assert_eq!(count(f.classes[i]), max);
                } else {
                    prop_assert_eq!(f.classes[i], 0);
                }
            }
        }
    }
}
