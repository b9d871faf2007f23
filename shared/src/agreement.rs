//! How much the workers agreed with the consensus and with each other. Pure counting, row by
//! row beside the vote, so it streams like the masks do.

use crate::mask::ABSTAIN;
use crate::vote::{for_each_not, round5};
use crate::votes::{LaneCounters, Votes};

/// Running counts for one image's included workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementCounts {
    workers: usize,
    /// Per worker: pixels where it voted, and where its vote equals the consensus.
    voting: Vec<u64>,
    matching: Vec<u64>,
    /// Per pair (i < j, row-major): pixels where both voted, and where they voted alike.
    pair_both: Vec<u64>,
    pair_equal: Vec<u64>,
}

impl AgreementCounts {
    /// Empty counts for `workers` workers.
    pub fn new(workers: usize) -> Self {
        let pairs = workers * workers.saturating_sub(1) / 2;
        Self {
            workers,
            voting: vec![0; workers],
            matching: vec![0; workers],
            pair_both: vec![0; pairs],
            pair_equal: vec![0; pairs],
        }
    }

    /// Adds one row: `rows[i]` is worker i's classes, `consensus` the fused row and
    /// `winning` its vote counts. A pixel whose winner got every worker's vote is unanimous
    /// (every count grows by one); that one comparison per pixel spares the per-worker and
    /// per-pair work everywhere but where workers disagreed.
    pub fn add_row(&mut self, rows: &[&[u8]], consensus: &[u8], winning: &[u8]) {
        let n = self.workers;
        // Pixels whose winner got every worker's vote are unanimous: a bit mask per 32 pixels
        // finds the few others.
        let unanimous = if (1..=Votes::MAX_WORKERS).contains(&n) {
            // The disputed pixels' counts go into byte counters per lane first.
            let mut lanes = LaneCounters::default();
            let unanimous = for_each_not(winning, n as u8, |px| {
                if lanes.full() {
                    self.add_lanes(&mut lanes);
                }
                let v = Votes::gather(n, |i| rows[i][px]);
                let voting = v.voting();
                let mut adds = [0u64; LaneCounters::WORDS];
                adds[0] = voting;
                adds[1] = v.for_class(consensus[px]);
                for i in 0..n {
                    let class = v.class(i);
                    adds[2 + i] = if class == ABSTAIN { 0 } else { voting };
                    adds[2 + n + i] = v.for_class(class);
                }
                lanes.add(&adds[..2 + 2 * n]);
            });
            self.add_lanes(&mut lanes);
            unanimous
        } else {
            // More workers than a word holds: one by one.
            for_each_not(winning, n as u8, |px| {
                let mut p = 0;
                for i in 0..n {
                    let u = rows[i][px];
                    if u != ABSTAIN {
                        self.voting[i] += 1;
                        self.matching[i] += u64::from(u == consensus[px]);
                    }
                    for rj in &rows[i + 1..] {
                        let v = rj[px];
                        if u != ABSTAIN && v != ABSTAIN {
                            self.pair_both[p] += 1;
                            self.pair_equal[p] += u64::from(u == v);
                        }
                        p += 1;
                    }
                }
            })
        };
        self.add_all(unanimous as u64);
    }

    /// Adds `n` unanimous pixels: every count grows by `n`.
    fn add_all(&mut self, n: u64) {
        self.voting
            .iter_mut()
            .chain(&mut self.matching)
            .for_each(|c| *c += n);
        self.pair_both
            .iter_mut()
            .chain(&mut self.pair_equal)
            .for_each(|c| *c += n);
    }

    /// Empties the lane counters into the counts: word 0 holds the voting workers, word 1
    /// those matching the consensus, words 2 + i worker i's pairs where both voted and words
    /// 2 + n + i those where they voted alike (lane j is pair (i, j)).
    fn add_lanes(&mut self, lanes: &mut LaneCounters) {
        let n = self.workers;
        let pair = |i: usize, j: usize| i * n - i * (i + 1) / 2 + (j - i - 1);
        lanes.drain(|word, lane, count| match word {
            0 => self.voting[lane] += count,
            1 => self.matching[lane] += count,
            w if w < 2 + n => {
                if lane > w - 2 {
                    self.pair_both[pair(w - 2, lane)] += count;
                }
            }
            w => {
                if lane > w - 2 - n {
                    self.pair_equal[pair(w - 2 - n, lane)] += count;
                }
            }
        });
    }

    /// Worker i's share of voting pixels equal to the consensus (5 decimals); 1.0 when it
    /// never voted (it contradicted nothing).
    pub fn agreement(&self, i: usize) -> f64 {
        ratio(self.matching[i], self.voting[i])
    }

    /// The mean over pairs of workers of the share of pixels, among those both voted on, where
    /// they voted alike; `None` with fewer than two workers.
    pub fn mean_pairwise(&self) -> Option<f64> {
        (!self.pair_both.is_empty()).then(|| {
            let sum: f64 = self
                .pair_both
                .iter()
                .zip(&self.pair_equal)
                .map(|(&b, &e)| ratio(e, b))
                .sum();
            round5(sum / self.pair_both.len() as f64)
        })
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        1.0
    } else {
        round5(num as f64 / den as f64)
    }
}

/// The disagreement map's pixel: `round(255 × (1 − winning votes ÷ included workers))`.
pub fn disagreement_pixel(winning: u8, workers: usize) -> u8 {
    let share = f64::from(winning) / workers.max(1) as f64;
    (255.0 * (1.0 - share)).round().clamp(0.0, 255.0) as u8
}

/// The disagreement pixel of each of the 256 possible winning-vote counts.
pub fn disagreement_table(workers: usize) -> [u8; 256] {
    std::array::from_fn(|v| disagreement_pixel(v as u8, workers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Adds a row whose winning counts are those of `consensus` (as the vote gives them).
    fn add(c: &mut AgreementCounts, rows: &[&[u8]], consensus: &[u8]) {
        let winning: Vec<u8> = (0..consensus.len())
            .map(|x| {
                rows.iter()
                    .filter(|r| r[x] != ABSTAIN && r[x] == consensus[x])
                    .count() as u8
            })
            .collect();
        c.add_row(rows, consensus, &winning);
    }

    #[test]
    fn agreement_counts_votes_against_the_consensus() {
        let a = [1u8, 1, 2, ABSTAIN];
        let b = [1u8, 2, 2, 2];
        let consensus = [1u8, 1, 2, 2];
        let mut c = AgreementCounts::new(2);
        add(&mut c, &[&a, &b], &consensus);
        assert_eq!(
            c.agreement(0),
            1.0,
            "3 voting pixels, all equal to the consensus"
        );
        assert_eq!(c.agreement(1), 0.75);
        // Both voted on 3 pixels and agreed on 2.
        assert_eq!(c.mean_pairwise(), Some(0.66667));
    }

    #[test]
    fn agreeing_spans_count_like_pixels() {
        let row: Vec<u8> = (0..1300).map(|i| (i % 3) as u8).collect();
        let mut fast = AgreementCounts::new(3);
        add(&mut fast, &[&row, &row, &row], &row);
        assert_eq!((fast.agreement(2), fast.mean_pairwise()), (1.0, Some(1.0)));
        assert_eq!(fast.voting, vec![1300; 3]);
        let mut other = row.clone();
        other[650] = 9;
        other[1299] = ABSTAIN;
        let mut slow = AgreementCounts::new(3);
        add(&mut slow, &[&row, &row, &other], &row);
        assert_eq!(slow.voting, vec![1300, 1300, 1299]);
        assert_eq!(slow.matching, vec![1300, 1300, 1298]);
        assert_eq!(slow.pair_both, vec![1300, 1299, 1299]);
        assert_eq!(slow.pair_equal, vec![1300, 1298, 1298]);
    }

    proptest! {
        /// Against the definition, pixel by pixel, with abstentions and any number of workers.
        #[test]
        fn counts_follow_the_definition(
            // Past 8 workers the counts take the plain loop instead of packed words.
            (n, rows) in (1usize..12).prop_flat_map(|n| {
                let value = prop_oneof![6 => 0u8..3, 1 => Just(ABSTAIN)];
                (Just(n), proptest::collection::vec(proptest::collection::vec(value, 40), n))
            })
        ) {
            // The consensus: the first non-abstaining vote (any class will do for counting).
            let consensus: Vec<u8> = (0..40)
                .map(|x| rows.iter().map(|r| r[x]).find(|&v| v != ABSTAIN).unwrap_or(0))
                .collect();
            let winning: Vec<u8> = (0..40)
                .map(|x| rows.iter().filter(|r| r[x] == consensus[x]).count() as u8)
                .collect();
            let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
            let mut c = AgreementCounts::new(n);
            c.add_row(&refs, &consensus, &winning);
            let mut p = 0;
            for i in 0..n {
                let voted = |r: &[u8], x: usize| r[x] != ABSTAIN;
                prop_assert_eq!(c.voting[i], (0..40).filter(|&x| voted(&rows[i], x)).count() as u64);
                prop_assert_eq!(c.matching[i], (0..40).filter(|&x| rows[i][x] == consensus[x]).count() as u64);
                for j in i + 1..n {
                    let both = (0..40).filter(|&x| voted(&rows[i], x) && voted(&rows[j], x));
                    prop_assert_eq!(c.pair_both[p], both.clone().count() as u64);
                    prop_assert_eq!(c.pair_equal[p], both.filter(|&x| rows[i][x] == rows[j][x]).count() as u64);
                    p += 1;
                }
            }
        }
    }

    #[test]
    fn one_worker_has_no_pairwise_agreement() {
        let mut c = AgreementCounts::new(1);
        add(&mut c, &[&[1, 2]], &[1, 2]);
        assert_eq!(c.mean_pairwise(), None);
        assert_eq!(c.agreement(0), 1.0);
    }

    #[test]
    fn disagreement_is_the_losing_share() {
        assert_eq!(disagreement_pixel(3, 3), 0);
        assert_eq!(disagreement_pixel(2, 3), 85);
        assert_eq!(disagreement_pixel(1, 3), 170);
        assert_eq!(disagreement_pixel(0, 3), 255);
        assert_eq!(disagreement_pixel(1, 1), 0);
        let t = disagreement_table(3);
        assert_eq!([t[3], t[2], t[1], t[0]], [0, 85, 170, 255]);
    }
}
