//! How much the workers agreed with the consensus and with each other. Pure counting, row by
//! row beside the vote, so it streams like the masks do.

use super::packed::Patterns;
use super::{Split, round5};
use crate::raster::ABSTAIN;

/// How much one image's included workers agreed: the counts behind the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgreementCounts {
    workers: usize,
    /// Per worker: pixels where it voted, and where its vote equals the consensus.
    voting: Vec<u64>,
    matching: Vec<u64>,
    /// Per pair (i < j, row-major): pixels where both voted, and where they voted alike.
    pair_both: Vec<u64>,
    pair_equal: Vec<u64>,
}

/// [`AgreementCounts`] being added up, row by row.
#[derive(Debug, Clone)]
pub(crate) struct AgreementTally {
    counts: AgreementCounts,
    /// The non-unanimous pixels not yet counted, by pattern of votes (tagged with the
    /// consensus); unused past [`Patterns::MAX_WORKERS`] workers.
    patterns: Patterns,
    /// What the last row added: its patterns with their pixels, and its unanimous pixels
    /// (`None` past [`Patterns::MAX_WORKERS`] workers).
    last_row: Option<(Vec<(u128, u64)>, u64)>,
}

impl AgreementTally {
    /// Empty counts for `workers` workers.
    pub(crate) fn new(workers: usize) -> Self {
        let pairs = workers * workers.saturating_sub(1) / 2;
        Self {
            counts: AgreementCounts {
                workers,
                voting: vec![0; workers],
                matching: vec![0; workers],
                pair_both: vec![0; pairs],
                pair_equal: vec![0; pairs],
            },
            patterns: Patterns::default(),
            last_row: None,
        }
    }

    /// Adds one row: `rows[i]` is worker i's classes and `consensus` the fused row; `split`
    /// holds the pixels where not every worker voted for the consensus, in runs of one pattern
    /// of votes ([`Split`]). Every other pixel is unanimous (every count grows by one), which
    /// spares the per-worker and per-pair work everywhere but where workers disagreed, and
    /// there each distinct pattern of votes is worked out once, however often it occurs.
    pub(crate) fn add_row(&mut self, rows: &[&[u8]], consensus: &[u8], split: &[Split]) {
        let n = self.counts.workers;
        let mut unanimous = consensus.len() as u64;
        if n <= Patterns::MAX_WORKERS {
            let (mut last, _) = self.last_row.take().unwrap_or_default();
            last.clear();
            // Neighbouring runs often share a pattern too: they are counted at once.
            for s in split {
                let (px, times) = (s.start as usize, u64::from(s.len));
                unanimous = unanimous.saturating_sub(times);
                let key = Patterns::key(n, |i| rows[i][px], consensus[px]);
                match last.last_mut() {
                    Some(run) if run.0 == key => run.1 += times,
                    _ => last.push((key, times)),
                }
            }
            for &run in &last {
                self.count(run);
            }
            self.last_row = Some((last, unanimous));
        } else {
            // More workers than a pattern holds: run by run.
            for s in split {
                let (px, times) = (s.start as usize, u64::from(s.len));
                unanimous = unanimous.saturating_sub(times);
                self.counts.add(|i| rows[i][px], consensus[px], times);
            }
        }
        self.counts.add_all(unanimous);
    }

    /// Adds the last row added once more (a row that repeats it), and returns true; or
    /// returns false, having done nothing, past [`Patterns::MAX_WORKERS`] workers.
    pub(crate) fn add_last_row_again(&mut self) -> bool {
        let Some((last, unanimous)) = self.last_row.take() else {
            return false;
        };
        for &run in &last {
            self.count(run);
        }
        self.counts.add_all(unanimous);
        self.last_row = Some((last, unanimous));
        true
    }

    /// The counts of every row added.
    pub(crate) fn finish(mut self) -> AgreementCounts {
        self.drain();
        self.counts
    }

    /// Counts `times` more of the pattern `key` (nothing when `times` is 0).
    fn count(&mut self, (key, times): (u128, u64)) {
        if times > 0 {
            if self.patterns.full() {
                self.drain();
            }
            self.patterns.add(key, times);
        }
    }

    fn drain(&mut self) {
        let counts = &mut self.counts;
        self.patterns.drain(|key, times| {
            counts.add(|i| Patterns::vote(key, i), Patterns::tag(key), times);
        });
    }
}

impl AgreementCounts {
    /// Adds `times` pixels where worker i voted `vote(i)` and the consensus is `consensus`.
    fn add(&mut self, vote: impl Fn(usize) -> u8, consensus: u8, times: u64) {
        let n = self.workers;
        let mut p = 0;
        for i in 0..n {
            let u = vote(i);
            if u != ABSTAIN {
                self.voting[i] += times;
                if u == consensus {
                    self.matching[i] += times;
                }
            }
            for j in i + 1..n {
                let v = vote(j);
                if u != ABSTAIN && v != ABSTAIN {
                    self.pair_both[p] += times;
                    if u == v {
                        self.pair_equal[p] += times;
                    }
                }
                p += 1;
            }
        }
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

    /// Worker i's share of voting pixels equal to the consensus (5 decimals); 1.0 when it
    /// never voted (it contradicted nothing).
    pub(crate) fn agreement(&self, i: usize) -> f64 {
        ratio(self.matching[i], self.voting[i])
    }

    /// The mean over pairs of workers of the share of pixels, among those both voted on, where
    /// they voted alike; `None` with fewer than two workers.
    pub(crate) fn mean_pairwise(&self) -> Option<f64> {
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
pub(super) fn disagreement_pixel(winning: u8, workers: usize) -> u8 {
    let share = f64::from(winning) / workers.max(1) as f64;
    (255.0 * (1.0 - share)).round().clamp(0.0, 255.0) as u8
}

/// The disagreement pixel of each of the 256 possible winning-vote counts.
pub(crate) fn disagreement_table(workers: usize) -> [u8; 256] {
    std::array::from_fn(|v| disagreement_pixel(v as u8, workers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The pixels where not every worker voted for the consensus, in runs of one pattern.
    fn split(rows: &[&[u8]], consensus: &[u8]) -> Vec<Split> {
        let mut split = Vec::new();
        for x in (0..consensus.len()).filter(|&x| rows.iter().any(|r| r[x] != consensus[x])) {
            let same =
                x > 0 && consensus[x - 1] == consensus[x] && rows.iter().all(|r| r[x - 1] == r[x]);
            Split::push(&mut split, x, 0, same);
        }
        split
    }

    /// The counts of one row.
    fn counts(workers: usize, rows: &[&[u8]], consensus: &[u8]) -> AgreementCounts {
        let mut tally = AgreementTally::new(workers);
        tally.add_row(rows, consensus, &split(rows, consensus));
        tally.finish()
    }

    #[test]
    fn agreement_counts_votes_against_the_consensus() {
        let a = [1u8, 1, 2, ABSTAIN];
        let b = [1u8, 2, 2, 2];
        let consensus = [1u8, 1, 2, 2];
        let c = counts(2, &[&a, &b], &consensus);
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
        let fast = counts(3, &[&row, &row, &row], &row);
        assert_eq!((fast.agreement(2), fast.mean_pairwise()), (1.0, Some(1.0)));
        assert_eq!(fast.voting, vec![1300; 3]);
        let mut other = row.clone();
        other[650] = 9;
        other[1299] = ABSTAIN;
        let slow = counts(3, &[&row, &row, &other], &row);
        assert_eq!(slow.voting, vec![1300, 1300, 1299]);
        assert_eq!(slow.matching, vec![1300, 1300, 1298]);
        assert_eq!(slow.pair_both, vec![1300, 1299, 1299]);
        assert_eq!(slow.pair_equal, vec![1300, 1298, 1298]);
    }

    /// The counts as defined, pixel by pixel, over rows of any width.
    fn definition(rows: &[Vec<u8>], consensus: &[u8]) -> AgreementCounts {
        let n = rows.len();
        let voted = |i: usize, x: usize| rows[i][x] != ABSTAIN;
        let pixels =
            |f: &dyn Fn(usize) -> bool| (0..consensus.len()).filter(|&x| f(x)).count() as u64;
        let pairs = || (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j)));
        AgreementCounts {
            workers: n,
            voting: (0..n).map(|i| pixels(&|x| voted(i, x))).collect(),
            matching: (0..n)
                .map(|i| pixels(&|x| rows[i][x] == consensus[x]))
                .collect(),
            pair_both: pairs()
                .map(|(i, j)| pixels(&|x| voted(i, x) && voted(j, x)))
                .collect(),
            pair_equal: pairs()
                .map(|(i, j)| pixels(&|x| voted(i, x) && voted(j, x) && rows[i][x] == rows[j][x]))
                .collect(),
        }
    }

    /// The tally of `rows` against `consensus`, both cut into rows of `width`.
    fn tallied(rows: &[Vec<u8>], consensus: &[u8], width: usize) -> AgreementCounts {
        let mut tally = AgreementTally::new(rows.len());
        for (y, cons) in consensus.chunks(width).enumerate() {
            let row: Vec<&[u8]> = rows.iter().map(|r| &r[y * width..][..cons.len()]).collect();
            tally.add_row(&row, cons, &split(&row, cons));
        }
        tally.finish()
    }

    /// The consensus for counting: the first non-abstaining vote (any class will do).
    fn first_votes(rows: &[Vec<u8>]) -> Vec<u8> {
        (0..rows[0].len())
            .map(|x| {
                rows.iter()
                    .map(|r| r[x])
                    .find(|&v| v != ABSTAIN)
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Rows of 80 pixels from 1 to 19 workers, with abstentions.
    fn rows_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
        (1usize..20).prop_flat_map(|n| {
            let value = prop_oneof![6 => 0u8..3, 1 => Just(ABSTAIN)];
            proptest::collection::vec(proptest::collection::vec(value, 80), n)
        })
    }

    proptest! {
        /// Against the definition, with abstentions and any number of workers: up to
        /// [`Patterns::MAX_WORKERS`] by patterns of votes, past it pixel by pixel.
        #[test]
        fn counts_follow_the_definition(rows in rows_strategy()) {
            let consensus = first_votes(&rows);
            prop_assert_eq!(tallied(&rows, &consensus, 40), definition(&rows, &consensus));
        }

        /// A row added again counts like the same row added twice.
        #[test]
        fn a_row_added_again_counts_twice(rows in rows_strategy()) {
            let consensus = first_votes(&rows);
            let row: Vec<&[u8]> = rows.iter().map(|r| &r[..]).collect();
            let mut tally = AgreementTally::new(rows.len());
            tally.add_row(&row, &consensus, &split(&row, &consensus));
            let again = tally.add_last_row_again();
            prop_assert_eq!(again, rows.len() <= Patterns::MAX_WORKERS);
            if !again {
                tally.add_row(&row, &consensus, &split(&row, &consensus));
            }
            let twice: Vec<Vec<u8>> = rows.iter().map(|r| [&r[..], &r[..]].concat()).collect();
            prop_assert_eq!(tally.finish(), definition(&twice, &[&consensus[..], &consensus[..]].concat()));
        }
    }

    #[test]
    fn thousands_of_distinct_patterns_are_all_counted() {
        // 12 workers, 4 values each: nearly every one of 6000 pixels is its own pattern, so
        // the table fills and drains several times.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            [0, 1, 2, ABSTAIN][(seed >> 60) as usize % 4]
        };
        let rows: Vec<Vec<u8>> = (0..12)
            .map(|_| (0..6000).map(|_| next()).collect())
            .collect();
        let consensus = first_votes(&rows);
        assert_eq!(
            tallied(&rows, &consensus, 1000),
            definition(&rows, &consensus)
        );
    }

    #[test]
    fn one_worker_has_no_pairwise_agreement() {
        let c = counts(1, &[&[1, 2]], &[1, 2]);
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
