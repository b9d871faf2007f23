//! Weighted fusion (`CONSOLIDATION_ALGORITHM=weighted`): each worker's reliability is estimated
//! from the whole batch, in the manner of Dawid and Skene (1979), and lets the votes of
//! reliable workers overturn the majority where it is clearly wrong. Pure, no I/O.
//!
//! Three steps:
//! 1. [`Census`] (`census.rs`): per image, how many pixels got each combination of votes. That
//!    is all the estimate needs, and it is small: most pixels are unanimous, and disputed
//!    pixels repeat a few combinations.
//! 2. [`CrowdModel::fit`] (`model.rs`): expectation–maximisation over every image's census.
//!    Each worker has a confusion matrix (how often it paints class `l` where the truth is
//!    class `c`) and the batch has class frequencies. Starting from the majority vote, it
//!    alternates between the probable truth of every combination given the matrices, and the
//!    matrices given that truth, until the likelihood stops improving.
//! 3. [`Weighted`]: a [`Fusion`] that starts from the majority vote and lets the model change
//!    a pixel only where a worker's vote there is one of its systematic patterns, read from
//!    its confusion matrix for the classes in contention (the majority's, and the best by
//!    the posterior):
//!    - a vote that **stands for another class**: the worker paints its label where the
//!      truth is that class at least half the time and at least [`DECODES`] (2) times as
//!      often as where the truth is the label itself (an adversary, a swap). The posterior
//!      decides (class frequencies included); when its best two are within [`NEAR_TIE`] of
//!      each other, the 3×3 neighbourhood decides, each worker's votes counted by its weight;
//!    - otherwise, a vote that **tells nothing** between those classes: the worker paints its
//!      label where the truth is the other class at least [`UNINFORMATIVE`] (half) as often
//!      as where it is the label (a spammer, someone who paints only the largest class or
//!      one class as another). Such votes are set aside and the plurality of the others
//!      decides; the majority stands if they tie.
//!
//!    Anywhere else the majority stands.
//!
//! Why only there: read independently per pixel, the model also learns what every worker
//! shares, such as outlines off by a pixel either way, which make a car painted as road far
//! more often than road as car (a car is mostly outline). Let loose, it overturned 3:2 and
//! 1:1:1 splits along outlines with equally careful workers and lost to the majority on
//! honest crowds; a fixed threshold on the posterior (the rule before this one) either let
//! that through or held back the adversary. A pattern that sets one worker apart is what the
//! majority cannot see, and is the only evidence acted on (`docs/weighted-fusion.md`).

mod census;
mod model;

pub use census::{Census, Combinations, MAX_BATCH_VOTES};
use model::Confusion;
pub use model::{CrowdModel, ImageVotes};

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use super::window::break_tie;
use super::{Fusion, Majority, Rows, Split};
use crate::raster::ABSTAIN;

/// A worker's label l stands for class c when it paints l where the truth is c at least
/// this many times as often as where the truth is l (and at least half the time).
pub(crate) const DECODES: f64 = 2.0;
/// ... and at least this share of the pixels whose truth is c.
const DECODES_AT_LEAST: f64 = 0.5;
/// A worker's label l tells nothing between l and class c when it paints l where the truth
/// is c at least this share of how often it paints l where the truth is l.
pub(crate) const UNINFORMATIVE: f64 = 0.5;
/// Two classes whose log posteriors differ by less than this (odds below 2:1) are a near-tie,
/// decided by the neighbourhood.
pub(crate) const NEAR_TIE: f64 = std::f64::consts::LN_2;

impl CrowdModel {
    /// The fusion for one image whose included workers are `workers`, in vote order.
    pub fn fusion(&self, workers: &[&str]) -> Weighted<'_> {
        let slots: Vec<&Confusion> = workers.iter().map(|w| self.confusion(w)).collect();
        let tie_weight = slots.iter().map(|c| c.weight.max(0.0)).collect();
        Weighted {
            model: self,
            slots,
            tie_weight,
            known: Mutex::default(),
            sure: Mutex::default(),
        }
    }
}

/// The weighted vote of one image (see [`CrowdModel::fusion`]).
#[derive(Debug)]
pub struct Weighted<'m> {
    model: &'m CrowdModel,
    /// Per worker slot, its confusion matrix.
    slots: Vec<&'m Confusion>,
    /// Per worker slot, its weight in the neighbourhood tie-break (never negative).
    tie_weight: Vec<f64>,
    /// What becomes of the majority's class, by combination of votes and that class (in the
    /// last byte): the same few hundred combinations come back along every outline.
    known: Mutex<FxHashMap<u128, Verdict>>,
    /// The posterior probability of the winner, by combination of votes and winner (in the
    /// last byte), for the confidence.
    sure: Mutex<FxHashMap<u128, f64>>,
}

/// Combinations [`Weighted::known`] and [`Weighted::sure`] remember before they start again.
const REMEMBERED: usize = 1 << 12;

/// Remembers `value` under `key` (when the combination has one), starting again when full.
fn remember<V>(map: &mut FxHashMap<u128, V>, key: Option<u128>, value: V) {
    if let Some(k) = key {
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(k, value);
    }
}

/// The key of a combination of votes and a class in [`Weighted::known`] and
/// [`Weighted::sure`]: up to 15 votes and the class fit a u128; more are worked out every
/// time.
fn key_of(votes: &[u8], class: u8) -> Option<u128> {
    (votes.len() < 16).then(|| {
        votes
            .iter()
            .chain([&class])
            .fold(0u128, |k, &v| (k << 8) | u128::from(v))
    })
}

impl Weighted<'_> {
    /// ln P(votes | c) + ln P(c) for every class c.
    fn scores(&self, votes: &[u8], scores: &mut [f64]) {
        scores.copy_from_slice(&self.model.log_prior);
        for (conf, &l) in self.slots.iter().zip(votes) {
            if usize::from(l) < scores.len() {
                conf.add_vote(l, scores);
            }
        }
    }

    /// What becomes of the majority's `class` at a pixel with these votes (remembered by
    /// combination in `known`).
    fn verdict(
        &self,
        votes: &[u8],
        class: u8,
        scores: &mut [f64],
        known: &mut FxHashMap<u128, Verdict>,
    ) -> Verdict {
        let key = key_of(votes, class);
        if let Some(v) = key.and_then(|k| known.get(&k)) {
            return *v;
        }
        let decided = self.decide(votes, scores);
        let rivals = match decided {
            Verdict::Becomes(b) => vec![b],
            Verdict::Tied => self.tied(votes, scores),
            Verdict::Stands => Vec::new(),
        };
        let patterns = self.patterns(votes, class, &rivals);
        let v = if patterns.contains(&Pattern::Decodes) {
            decided
        } else if patterns.contains(&Pattern::Uninformative) {
            plurality_of_the_rest(votes, &patterns, class)
        } else {
            Verdict::Stands
        };
        remember(known, key, v);
        v
    }

    /// What each worker's vote is, read through its confusion matrix against the classes in
    /// contention: the majority's `class` and `rivals`.
    fn patterns(&self, votes: &[u8], class: u8, rivals: &[u8]) -> Vec<Pattern> {
        let k = self.model.classes();
        self.slots
            .iter()
            .zip(votes)
            .map(|(conf, &l)| {
                if usize::from(l) >= k {
                    return Pattern::Abstains;
                }
                let own = conf.p(l, l);
                let mut pattern = Pattern::Plain;
                for &c in rivals.iter().chain([&class]).filter(|&&c| c != l) {
                    let p = conf.p(l, c);
                    if p >= DECODES_AT_LEAST && p >= DECODES * own {
                        return Pattern::Decodes;
                    }
                    if p >= UNINFORMATIVE * own {
                        pattern = Pattern::Uninformative;
                    }
                }
                pattern
            })
            .collect()
    }

    /// The class with the highest posterior given the votes (class frequencies included), or
    /// a near-tie.
    fn decide(&self, votes: &[u8], scores: &mut [f64]) -> Verdict {
        self.scores(votes, scores);
        let (mut best, mut top) = (None, f64::NEG_INFINITY);
        for (c, &s) in scores.iter().enumerate() {
            if s > top {
                (best, top) = (Some(c as u8), s);
            }
        }
        let Some(best) = best else {
            return Verdict::Stands;
        };
        let rivals = scores
            .iter()
            .enumerate()
            .any(|(c, &s)| c != usize::from(best) && s > top - NEAR_TIE);
        if rivals {
            Verdict::Tied
        } else {
            Verdict::Becomes(best)
        }
    }

    /// The posterior probability of `class` given the votes (class frequencies included).
    fn posterior(&self, votes: &[u8], class: u8) -> f64 {
        let mut scores = vec![0.0; self.model.classes()];
        self.scores(votes, &mut scores);
        let Some(&own) = scores.get(usize::from(class)) else {
            return 0.0;
        };
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
        (own - max).exp() / sum
    }

    /// The classes of a near-tie, for the neighbourhood to decide (ascending).
    fn tied(&self, votes: &[u8], scores: &mut [f64]) -> Vec<u8> {
        self.scores(votes, scores);
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (0..scores.len())
            .filter(|&c| scores[c] >= top - NEAR_TIE)
            .map(|c| c as u8)
            .collect()
    }
}

/// What a worker's vote at a pixel is, for the classes in contention there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// It stands for another class ([`DECODES`]).
    Decodes,
    /// It tells nothing between the classes ([`UNINFORMATIVE`]).
    Uninformative,
    /// An ordinary vote.
    Plain,
    /// No vote (abstained, or a class the model does not know).
    Abstains,
}

/// The plurality of the plain votes (those not [`Pattern::Uninformative`]): the majority's
/// `class` stands unless one other class has the most of them.
fn plurality_of_the_rest(votes: &[u8], patterns: &[Pattern], class: u8) -> Verdict {
    let mut count = [0u8; 256];
    for (&v, _) in votes
        .iter()
        .zip(patterns)
        .filter(|&(_, &p)| p == Pattern::Plain)
    {
        count[usize::from(v)] += 1;
    }
    let top = count.iter().copied().max().unwrap_or(0);
    let mut best = (0..=255u8).filter(|&c| count[usize::from(c)] == top);
    match (best.next(), best.next()) {
        (Some(winner), None) if top > 0 && winner != class => Verdict::Becomes(winner),
        _ => Verdict::Stands,
    }
}

/// What the weighted vote makes of the majority's class at a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// It stands.
    Stands,
    /// It becomes this class.
    Becomes(u8),
    /// The posterior's best classes are a near-tie: the neighbourhood decides among them.
    Tied,
}

impl Fusion for Weighted<'_> {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn fuse_row(&self, workers: &[Rows<'_>], out: &mut [u8], split: &mut Vec<Split>) -> bool {
        let alone = Majority.fuse_row(workers, out, split);
        if split.is_empty() {
            return alone;
        }
        let majority = std::mem::take(split);
        // A poisoned lock only means another row's check panicked; the map is still sound.
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut scores = vec![0.0; self.model.classes()];
        let mut votes = vec![0u8; workers.len()];
        let mut neighbourhood = false;
        for s in majority {
            let x0 = s.start as usize;
            for (v, r) in votes.iter_mut().zip(workers) {
                *v = r.current[x0];
            }
            // A run of the majority's splits has one combination of votes and one winner.
            let verdict = if votes.iter().all(|&v| v == ABSTAIN) {
                Verdict::Stands
            } else {
                self.verdict(&votes, out[x0], &mut scores, &mut known)
            };
            let won = |c: u8| votes.iter().filter(|&&v| v == c).count() as u8;
            match verdict {
                Verdict::Stands => split.push(s),
                Verdict::Becomes(c) => {
                    out[s.pixels()].fill(c);
                    split.push(Split { votes: won(c), ..s });
                }
                Verdict::Tied => {
                    neighbourhood = true;
                    let tied = self.tied(&votes, &mut scores);
                    if tied.is_empty() {
                        split.push(s);
                        continue;
                    }
                    let mut last = None;
                    for x in s.pixels() {
                        let c = break_tie(workers, x, &tied, |i| self.tie_weight[i]);
                        out[x] = c;
                        Split::push(split, x, won(c), last == Some(c));
                        last = Some(c);
                    }
                }
            }
        }
        alone && !neighbourhood
    }

    /// The posterior probability of the winner given the split's votes, in votes (times the
    /// number of workers): the model's own measure of how sure it is, which predicts a
    /// pixel's accuracy better than the share of votes when some workers' votes stand for
    /// another class or tell nothing (`docs/weighted-fusion.md`).
    fn certainty(&self, workers: &[Rows<'_>], out: &[u8], split: &Split) -> f64 {
        let x0 = split.start as usize;
        let votes: Vec<u8> = workers.iter().map(|r| r.current[x0]).collect();
        let k = self.model.classes();
        if votes.iter().all(|&v| usize::from(v) >= k) {
            return f64::from(split.votes);
        }
        let class = out[x0];
        let key = key_of(&votes, class);
        // A poisoned lock only means another row's check panicked; the map is still sound.
        let mut sure = self.sure.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = key.and_then(|k| sure.get(&k)) {
            return *p;
        }
        let p = self.posterior(&votes, class) * votes.len() as f64;
        remember(&mut sure, key, p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::ClassMask;

    /// A batch of rows of `n` pixels: three reliable workers and one who paints class 2 where
    /// the truth is 1 (and is otherwise right), over a truth with classes 0, 1 and 2.
    fn confused_batch() -> (Vec<ClassMask>, Vec<u8>) {
        let truth: Vec<u8> = (0..3000).map(|i| [0, 1, 2][i % 7 % 3]).collect();
        let good = |k: usize| {
            let mut d = truth.clone();
            // Each reliable worker errs on a different tenth of a percent of the pixels.
            for i in (k..d.len()).step_by(997) {
                d[i] = (d[i] + 1) % 3;
            }
            ClassMask::from_rows(3000, &[&d])
        };
        let (a, b, c) = (good(0), good(1), good(2));
        let confused = truth
            .iter()
            .map(|&t| if t == 1 { 2 } else { t })
            .collect::<Vec<_>>();
        (
            vec![a, b, c, ClassMask::from_rows(3000, &[&confused])],
            truth,
        )
    }

    /// The model of `masks` painted by workers `ids`.
    fn fit(masks: &[ClassMask], ids: &[&str]) -> CrowdModel {
        let refs: Vec<&ClassMask> = masks.iter().collect();
        let patterns = Census::of_masks(&refs).patterns();
        let votes = ImageVotes {
            workers: ids.to_vec(),
            patterns: &patterns,
        };
        CrowdModel::fit(3, &[votes])
    }

    /// One row of one pixel per worker, as the vote gets it.
    fn window(rows: &[[u8; 1]]) -> Vec<Rows<'_>> {
        rows.iter()
            .map(|r| Rows {
                above: None,
                current: r,
                below: None,
                runs: &[],
            })
            .collect()
    }

    /// What the swappers' model makes of one pixel with these votes.
    fn pixel(votes: &[u8]) -> u8 {
        let rows: Vec<[u8; 1]> = votes.iter().map(|&v| [v]).collect();
        let (mut out, mut split) = ([9u8], Vec::new());
        SWAPPERS
            .fusion(&["good-1", "good-2", "good-3", "swap"][..votes.len()])
            .fuse_row(&window(&rows), &mut out, &mut split);
        out[0]
    }

    #[test]
    fn em_learns_a_confusion_and_weighs_workers_by_it() {
        let (masks, _) = confused_batch();
        let ids = ["a", "b", "c", "confused"];
        let model = fit(&masks, &ids);
        assert!(model.iterations > 1 && model.iterations < 100);
        for good in ["a", "b", "c"] {
            assert!(model.weight(good) > model.weight("confused") + 1.0);
        }
        // Two reliable workers saying 1 against one saying 2 and the confused worker's 2 (a
        // 2:2 tie for the majority): 1 stands, with its 2 votes.
        let (mut out, mut split) = ([9u8], Vec::new());
        model
            .fusion(&ids)
            .fuse_row(&window(&[[1], [1], [2], [2]]), &mut out, &mut split);
        let won = Split {
            start: 0,
            len: 1,
            votes: 2,
        };
        assert_eq!((out, split), ([1], vec![won]));
        assert!(
            model.kept_pairs() <= 4 * 9,
            "at most every (label, truth) pair per worker"
        );
    }

    /// Three reliable workers and one who swaps classes 1 and 2 (and is otherwise right).
    static SWAPPERS: std::sync::LazyLock<CrowdModel> = std::sync::LazyLock::new(|| {
        let truth: Vec<u8> = (0..3000).map(|i| [0, 1, 2][i % 7 % 3]).collect();
        let good = |k: usize| {
            let mut d = truth.clone();
            for i in (k..d.len()).step_by(211) {
                d[i] = (d[i] + 1) % 3;
            }
            ClassMask::from_rows(3000, &[&d])
        };
        let swapped: Vec<u8> = truth.iter().map(|&t| [0, 2, 1][usize::from(t)]).collect();
        let masks = [
            good(0),
            good(1),
            good(2),
            ClassMask::from_rows(3000, &[&swapped]),
        ];
        fit(&masks, &["good-1", "good-2", "good-3", "swap"])
    });

    #[test]
    fn the_majority_stands_unless_the_votes_rule_its_class_out() {
        let one = |v: u8| ClassMask::from_rows(1, &[&[v]]);
        // Two votes for 1 win the majority...
        assert_eq!(
            Majority.fuse(&[&one(2), &one(1), &one(0), &one(1)]).classes,
            [1]
        );
        // ...but the swapper's 1 means 2, and a reliable worker says 2: 1 is ruled out.
        assert_eq!(pixel(&[2, 1, 0, 1]), 2);
        // Everyone means 1, or 0: it stands.
        assert_eq!(pixel(&[1, 1, 1, 2]), 1);
        assert_eq!(pixel(&[0, 0, 0, 0]), 0);
        // Reliable workers split and the swapper agrees with most: the majority stands.
        assert_eq!(pixel(&[0, 1, 0, 0]), 0);
    }

    #[test]
    fn confidence_is_the_posterior_so_a_decoded_vote_counts_for_its_class() {
        let one = |v: u8| ClassMask::from_rows(1, &[&[v]]);
        let masks = [one(2), one(2), one(2), one(1)];
        let refs: Vec<&ClassMask> = masks.iter().collect();
        let ids = ["good-1", "good-2", "good-3", "swap"];
        let (weighted, majority) = (SWAPPERS.fusion(&ids).fuse(&refs), Majority.fuse(&refs));
        assert_eq!((weighted.classes[0], majority.classes[0]), (2, 2));
        // Three of four votes for the majority; the swapper's 1 means 2, so the model is sure.
        assert_eq!(majority.confidence(), 0.75);
        assert!(
            (0.99..=1.0).contains(&weighted.confidence()),
            "{}",
            weighted.confidence()
        );
    }

    #[test]
    fn votes_that_tell_nothing_are_set_aside_and_the_rest_decide() {
        use Pattern::{Plain, Uninformative};
        // Two plain votes for 1 against one plain vote for 2 and two uninformative 2s: 1.
        let votes = [1, 1, 2, 2, 2];
        let patterns = [Plain, Plain, Plain, Uninformative, Uninformative];
        assert_eq!(
            plurality_of_the_rest(&votes, &patterns, 2),
            Verdict::Becomes(1)
        );
        // The rest agree with the majority, or tie: the majority stands.
        assert_eq!(plurality_of_the_rest(&votes, &patterns, 1), Verdict::Stands);
        let tie = [Plain, Plain, Plain, Plain, Uninformative];
        assert_eq!(
            plurality_of_the_rest(&[1, 1, 2, 2, 0], &tie, 0),
            Verdict::Stands
        );
    }

    proptest::proptest! {
        #[test]
        fn splits_are_runs_of_the_same_votes(
            m in crate::fusion::testing::masks_of(
                proptest::prop_oneof![1u32..40, 500u32..530], 1u32..4, 4usize..5,
            )
        ) {
            // The model knows classes 0 to 2 only.
            let m: Vec<ClassMask> = m
                .into_iter()
                .map(|mut c| {
                    c.data.iter_mut().filter(|v| **v == 3).for_each(|v| *v = 2);
                    c
                })
                .collect();
            let fusion = SWAPPERS.fusion(&["good-1", "good-2", "good-3", "swap"]);
            proptest::prop_assert_eq!(crate::fusion::testing::split_fault(&fusion, &m), None);
        }
    }

    #[test]
    fn weighted_fusion_recovers_the_truth_where_majority_cannot() {
        let (masks, truth) = confused_batch();
        let ids = ["a", "b", "c", "confused"];
        let model = fit(&masks, &ids);
        let refs: Vec<&ClassMask> = masks.iter().collect();
        let wrong = |f: &dyn Fusion| {
            let fused = f.fuse(&refs);
            fused
                .classes
                .iter()
                .zip(&truth)
                .filter(|(a, b)| a != b)
                .count()
        };
        let (weighted, majority) = (wrong(&model.fusion(&ids)), wrong(&Majority));
        assert!(
            weighted < majority,
            "weighted {weighted} vs majority {majority}"
        );
        assert_eq!(model.fusion(&ids).name(), "weighted");
    }
}
