//! Weighted fusion (`CONSOLIDATION_ALGORITHM=weighted`): each worker's reliability is estimated
//! from the whole batch, in the manner of Dawid and Skene (1979), and the votes are weighed by
//! it. Pure, no I/O.
//!
//! Three steps:
//! 1. [`Census`]: per image, how many pixels got each combination of votes. That is all the
//!    estimate needs, and it is small: most pixels are unanimous, and disputed pixels repeat a
//!    few combinations.
//! 2. [`CrowdModel::fit`]: expectation–maximisation over every image's census. Each worker has
//!    a confusion matrix (how often it paints class `l` where the truth is class `c`) and the
//!    batch has class frequencies. Starting from the majority vote, it alternates between the
//!    probable truth of every combination given the matrices, and the matrices given that
//!    truth, until the likelihood stops improving.
//! 3. [`Weighted`]: a [`Fusion`] that gives each pixel the class with the highest posterior
//!    probability. When the best two are within [`NEAR_TIE`] of each other, the 3×3
//!    neighbourhood decides, each worker's votes counted by its weight.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::scan::{Span, scan_row};
use super::window::break_tie;
use super::{Fusion, Rows, Split, for_each_window, round5};
use crate::raster::{ABSTAIN, ClassMask};

/// Iterations of EM at most; it usually settles in a few dozen.
const MAX_ITERATIONS: usize = 100;
/// EM stops when the log-likelihood per pixel improves by less than this.
const TOLERANCE: f64 = 1e-9;
/// Pseudo-counts added to every cell of a confusion matrix and to every class frequency, so a
/// worker seen on few pixels is not judged on them alone and no probability is zero.
const SMOOTHING: f64 = 1.0;
/// Two classes whose log posteriors differ by less than this (odds below 2:1) are a near-tie,
/// decided by the neighbourhood.
pub(super) const NEAR_TIE: f64 = std::f64::consts::LN_2;
/// Worker weights are clamped to ±this (a worker agreeing on every pixel would be infinite).
const MAX_WEIGHT: f64 = 20.0;
/// Distinct disputed combinations a census keeps per image. Real masks give a few hundred;
/// random masks could give one per pixel, so the census stops learning new ones here, which
/// bounds its memory (about 1 MiB per image).
/// Pixels with combinations beyond it still vote; they only do not inform the model.
pub(super) const MAX_COMBINATIONS: usize = 1 << 12;

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
        scan_row(rows, |span| match span {
            Span::Unanimous(r) => first[r]
                .iter()
                .for_each(|&c| unanimous[usize::from(c)] += 1),
            Span::Disputed(x) => {
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
    pub fn patterns(&self) -> Vec<(Vec<u8>, u64)> {
        let mut out: Vec<(Vec<u8>, u64)> = self
            .unanimous
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(c, &n)| (vec![c as u8; self.workers], n))
            .chain(self.disputed.iter().map(|(k, &n)| (k.to_vec(), n)))
            .collect();
        out.sort_unstable();
        out
    }
}

/// One image's part of the batch, for [`CrowdModel::fit`]: its included workers' ids (in the
/// order of the census) and its census.
#[derive(Debug, Clone)]
pub struct ImageVotes<'a> {
    /// The included workers' ids, in the census's order.
    pub workers: Vec<&'a str>,
    /// The image's census: each combination of votes with its pixel count.
    pub patterns: &'a [(Vec<u8>, u64)],
}

/// What EM learnt about one worker.
#[derive(Debug, Clone, PartialEq)]
struct WorkerModel {
    /// ln P(worker paints label l | truth c), at `[l * classes + c]`.
    log_confusion: Vec<f64>,
    /// The log-odds of the worker painting the true class.
    weight: f64,
}

/// The batch's class frequencies and every worker's confusion matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdModel {
    classes: usize,
    log_prior: Vec<f64>,
    workers: HashMap<String, WorkerModel>,
    /// EM iterations run.
    pub iterations: usize,
}

/// One pattern of one image, with the model indices of the workers who voted.
struct Item {
    votes: Vec<(usize, usize)>,
    count: f64,
}

impl CrowdModel {
    /// Fits the model to every image's census by EM (see the module documentation).
    /// `classes` is the number of classes including BACKGROUND; votes outside them are ignored.
    pub fn fit(classes: usize, images: &[ImageVotes<'_>]) -> Self {
        let k = classes;
        let mut ids: Vec<&str> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut items = Vec::new();
        for img in images {
            let slots: Vec<usize> = img
                .workers
                .iter()
                .map(|id| {
                    *index.entry(id).or_insert_with(|| {
                        ids.push(id);
                        ids.len() - 1
                    })
                })
                .collect();
            for (pattern, count) in img.patterns {
                let votes: Vec<(usize, usize)> = pattern
                    .iter()
                    .zip(&slots)
                    .filter(|&(&l, _)| usize::from(l) < k)
                    .map(|(&l, &w)| (w, usize::from(l)))
                    .collect();
                if !votes.is_empty() {
                    items.push(Item {
                        votes,
                        count: *count as f64,
                    });
                }
            }
        }
        let pixels: f64 = items.iter().map(|i| i.count).sum::<f64>().max(1.0);
        // Start from the majority vote's shares, then alternate.
        let mut posterior: Vec<f64> = items
            .iter()
            .flat_map(|it| {
                let mut p = vec![0.0; k];
                for &(_, l) in &it.votes {
                    p[l] += 1.0 / it.votes.len() as f64;
                }
                p
            })
            .collect();
        let mut log_prior = vec![0.0; k];
        let mut log_conf = vec![vec![0.0; k * k]; ids.len()];
        let mut last = f64::NEG_INFINITY;
        let mut iterations = 0;
        let mut scores = vec![0.0; k];
        while iterations < MAX_ITERATIONS {
            iterations += 1;
            // M-step: class frequencies and confusion matrices from the current posteriors.
            let mut prior = vec![SMOOTHING; k];
            let mut conf = vec![vec![SMOOTHING; k * k]; ids.len()];
            for (it, p) in items.iter().zip(posterior.chunks_exact(k)) {
                for (c, &pc) in p.iter().enumerate() {
                    let m = it.count * pc;
                    prior[c] += m;
                    for &(w, l) in &it.votes {
                        conf[w][l * k + c] += m;
                    }
                }
            }
            let total: f64 = prior.iter().sum();
            for (lp, p) in log_prior.iter_mut().zip(&prior) {
                *lp = (p / total).ln();
            }
            for (lc, m) in log_conf.iter_mut().zip(&conf) {
                for c in 0..k {
                    let col: f64 = (0..k).map(|l| m[l * k + c]).sum();
                    for l in 0..k {
                        lc[l * k + c] = (m[l * k + c] / col).ln();
                    }
                }
            }
            // E-step: the posterior of every pattern, and the likelihood of the data.
            let mut likelihood = 0.0;
            for (it, p) in items.iter().zip(posterior.chunks_exact_mut(k)) {
                scores.copy_from_slice(&log_prior);
                for &(w, l) in &it.votes {
                    for (s, lc) in scores.iter_mut().zip(&log_conf[w][l * k..(l + 1) * k]) {
                        *s += lc;
                    }
                }
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for (pc, s) in p.iter_mut().zip(&scores) {
                    *pc = (s - max).exp() / sum;
                }
                likelihood += it.count * (max + sum.ln());
            }
            let per_pixel = likelihood / pixels;
            if per_pixel - last < TOLERANCE {
                break;
            }
            last = per_pixel;
        }
        let prior: Vec<f64> = log_prior.iter().map(|l| l.exp()).collect();

        let workers = ids
            .iter()
            .zip(log_conf)
            .map(|(id, lc)| {
                let accuracy: f64 = (0..k).map(|c| prior[c] * lc[c * k + c].exp()).sum();
                let weight = (accuracy / (1.0 - accuracy)).ln();
                let model = WorkerModel {
                    log_confusion: lc,
                    weight: weight.clamp(-MAX_WEIGHT, MAX_WEIGHT),
                };
                ((*id).to_owned(), model)
            })
            .collect();
        Self {
            classes: k,
            log_prior,
            workers,
            iterations,
        }
    }

    /// How many distinct workers the model knows.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// The reported weight of a worker: the log-odds of it painting the true class, 5 decimals
    /// (0.0 for a worker the model has not seen).
    pub fn weight(&self, worker: &str) -> f64 {
        round5(self.workers.get(worker).map_or(0.0, |w| w.weight))
    }

    /// The fusion for one image whose included workers are `workers`, in vote order.
    pub fn fusion(&self, workers: &[&str]) -> Weighted {
        let k = self.classes;
        let unseen = WorkerModel {
            // A worker without a fit (cannot happen for fitted images) votes with no weight.
            log_confusion: vec![-(k as f64).ln(); k * k],
            weight: 0.0,
        };
        let models: Vec<&WorkerModel> = workers
            .iter()
            .map(|w| self.workers.get(*w).unwrap_or(&unseen))
            .collect();
        let log_confusion: Vec<f64> = models
            .iter()
            .flat_map(|m| m.log_confusion.iter().copied())
            .collect();
        let tie_weight = models.iter().map(|m| m.weight.max(0.0)).collect();
        let mut fusion = Weighted {
            classes: k,
            log_prior: self.log_prior.clone(),
            log_confusion,
            tie_weight,
            unanimous: [0; 256],
        };
        for c in 0..k.min(256) {
            let pattern = vec![c as u8; workers.len()];
            fusion.unanimous[c] = fusion.decide(&pattern, &mut vec![0.0; k], None).0;
        }
        fusion
    }
}

/// The weighted vote of one image (see [`CrowdModel::fusion`]).
#[derive(Debug, Clone)]
pub struct Weighted {
    classes: usize,
    log_prior: Vec<f64>,
    /// Per worker slot, ln P(label l | class c) at `[slot * k * k + l * k + c]`.
    log_confusion: Vec<f64>,
    /// Per worker slot, its weight in the neighbourhood tie-break (never negative).
    tie_weight: Vec<f64>,
    /// The decision where every worker painted class c.
    unanimous: [u8; 256],
}

impl Weighted {
    /// The class with the highest posterior given one pixel's votes, and whether that was a
    /// near-tie. Near-ties go to the neighbourhood when `window` gives one, else to the tied
    /// class with the most votes.
    fn decide(
        &self,
        votes: &[u8],
        scores: &mut [f64],
        window: Option<(&[Rows<'_>], usize)>,
    ) -> (u8, bool) {
        let k = self.classes;
        scores.copy_from_slice(&self.log_prior);
        for (slot, &l) in votes.iter().enumerate() {
            let l = usize::from(l);
            if l < k {
                let at = slot * k * k + l * k;
                for (s, lc) in scores.iter_mut().zip(&self.log_confusion[at..at + k]) {
                    *s += lc;
                }
            }
        }
        let (mut best, mut top) = (0, f64::NEG_INFINITY);
        for (c, &s) in scores.iter().enumerate() {
            if s > top {
                (best, top) = (c, s);
            }
        }
        let near = |s: f64| s > top - NEAR_TIE;
        if scores.iter().filter(|&&s| near(s)).count() == 1 {
            return (best as u8, false);
        }
        let tied: Vec<u8> = (0..k)
            .filter(|&c| near(scores[c]))
            .map(|c| c as u8)
            .collect();
        let class = match window {
            Some((workers, x)) => break_tie(workers, x, &tied, |i| self.tie_weight[i]),
            // Without a neighbourhood (the unanimous table): the tied class with the most
            // votes, then the lowest.
            None => tied
                .iter()
                .copied()
                .rev()
                .max_by_key(|&c| votes.iter().filter(|&&v| v == c).count())
                .unwrap_or(0),
        };
        (class, true)
    }
}

impl Fusion for Weighted {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn fuse_row(&self, workers: &[Rows<'_>], out: &mut [u8], split: &mut Vec<Split>) -> bool {
        let first = workers[0].current;
        let mut votes = vec![0u8; workers.len()];
        let mut scores = vec![0.0; self.classes];
        let (mut last_votes, mut last) = (vec![0u8; workers.len()], None);
        split.clear();
        // What the pixel last split was, to tell whether the next one repeats its votes.
        #[derive(PartialEq)]
        enum Prev {
            None,
            /// Everyone voted this class, and another won.
            Unanimous(u8),
            /// Disputed, with `last_votes` and the kept decision `last`.
            Kept,
        }
        let mut prev = Prev::None;
        scan_row(workers, |span| match span {
            Span::Unanimous(r) => {
                for x in r {
                    let c = self.unanimous[usize::from(first[x])];
                    out[x] = c;
                    if c != first[x] {
                        let same = prev == Prev::Unanimous(first[x]);
                        Split::push(split, x, 0, same);
                        prev = Prev::Unanimous(first[x]);
                    }
                }
            }
            Span::Disputed(x) => {
                for (v, r) in votes.iter_mut().zip(workers) {
                    *v = r.current[x];
                }
                if votes.iter().all(|&v| v == ABSTAIN) {
                    out[x] = 0;
                    Split::push(split, x, 0, false);
                    prev = Prev::None;
                    return;
                }
                // Neighbouring pixels often repeat a combination; a near-tie depends on the
                // neighbourhood, so only clear decisions are remembered.
                let (c, again) = match last {
                    Some(c) if votes == last_votes => (c, true),
                    _ => {
                        let (c, tie) = self.decide(&votes, &mut scores, Some((workers, x)));
                        last_votes.copy_from_slice(&votes);
                        last = (!tie).then_some(c);
                        (c, false)
                    }
                };
                out[x] = c;
                let won = votes.iter().filter(|&&v| v == c).count() as u8;
                Split::push(split, x, won, again && prev == Prev::Kept);
                prev = if last.is_some() {
                    Prev::Kept
                } else {
                    Prev::None
                };
            }
        });
        // Near-ties go to the neighbourhood; whether one came up is not tracked.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_counts_each_combination_of_votes() {
        let a = ClassMask::from_rows(4, &[&[1, 1, 2, ABSTAIN]]);
        let b = ClassMask::from_rows(4, &[&[1, 2, 2, ABSTAIN]]);
        let patterns = Census::of_masks(&[&a, &b]).patterns();
        // The all-abstain pixel is no evidence and is not counted.
        assert_eq!(
            patterns,
            vec![(vec![1, 1], 1), (vec![1, 2], 1), (vec![2, 2], 1)]
        );
        let long: Vec<u8> = (0..1100).map(|i| (i / 100 % 3) as u8).collect();
        let m = ClassMask::from_rows(1100, &[&long]);
        let total: u64 = Census::of_masks(&[&m, &m, &m])
            .patterns()
            .iter()
            .map(|p| p.1)
            .sum();
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

    /// The confused batch, its truth, its worker ids and the model fitted to it.
    fn fitted() -> (Vec<ClassMask>, Vec<u8>, [&'static str; 4], CrowdModel) {
        let (masks, truth) = confused_batch();
        let refs: Vec<&ClassMask> = masks.iter().collect();
        let ids = ["a", "b", "c", "confused"];
        let patterns = Census::of_masks(&refs).patterns();
        let votes = ImageVotes {
            workers: ids.to_vec(),
            patterns: &patterns,
        };
        let model = CrowdModel::fit(3, &[votes]);
        (masks, truth, ids, model)
    }

    #[test]
    fn em_learns_a_confusion_and_weighs_workers_by_it() {
        let (_, _, ids, model) = fitted();
        assert!(model.iterations > 1 && model.iterations < MAX_ITERATIONS);
        for good in ["a", "b", "c"] {
            assert!(model.weight(good) > model.weight("confused") + 1.0);
        }
        // The confused worker's 2 is read as "1 or 2", so two reliable workers saying 1
        // against one saying 2 win even though the confused worker sides with 2.
        let fusion = model.fusion(&ids);
        let row: [&[u8]; 4] = [&[1], &[1], &[2], &[2]];
        let window: Vec<Rows<'_>> = row
            .iter()
            .map(|r| Rows {
                above: None,
                current: r,
                below: None,
                runs: &[],
            })
            .collect();
        let (mut out, mut split) = ([9u8], Vec::new());
        fusion.fuse_row(&window, &mut out, &mut split);
        let won = Split {
            start: 0,
            len: 1,
            votes: 2,
        };
        assert_eq!((out, split), ([1], vec![won]));
        // Unanimity keeps its class.
        assert_eq!(&fusion.unanimous[..3], &[0, 1, 2]);
    }

    /// The fitted fusion of [`fitted`], but with unanimous votes for class 2 read as class 1,
    /// so that every path of the row's decisions is taken.
    static REMAPPING: std::sync::LazyLock<Weighted> = std::sync::LazyLock::new(|| {
        let (_, _, ids, model) = fitted();
        let mut fusion = model.fusion(&ids);
        fusion.unanimous[2] = 1;
        fusion
    });

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
            proptest::prop_assert_eq!(crate::fusion::testing::split_fault(&*REMAPPING, &m), None);
        }
    }

    #[test]
    fn weighted_fusion_recovers_the_truth_where_majority_cannot() {
        let (masks, truth, ids, model) = fitted();
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
        let (weighted, majority) = (wrong(&model.fusion(&ids)), wrong(&crate::fusion::Majority));
        assert!(
            weighted < majority,
            "weighted {weighted} vs majority {majority}"
        );
        assert_eq!(model.fusion(&ids).name(), "weighted");
    }
}
