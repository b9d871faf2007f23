//! The crowd model: every worker's confusion matrix and the batch's class frequencies,
//! estimated by expectation–maximisation over the images' censuses (Dawid and Skene, 1979).
//!
//! Its memory is bounded by the censuses, whatever the number of workers and classes: a
//! confusion matrix keeps only the (label, truth) pairs its worker was seen with, and each
//! combination of votes keeps only its few most probable truths between steps.

use std::collections::HashMap;

use super::census::Combinations;
use crate::fusion::round5;

/// Iterations of EM at most; it usually settles in a few dozen.
const MAX_ITERATIONS: usize = 100;
/// EM stops when the log-likelihood per pixel improves by less than this.
const TOLERANCE: f64 = 1e-7;
/// Pseudo-counts added to every cell of a confusion matrix and to every class frequency, so a
/// worker seen on few pixels is not judged on them alone and no probability is zero.
const SMOOTHING: f64 = 1.0;
/// Worker weights are clamped to ±this (a worker agreeing on every pixel would be infinite).
const MAX_WEIGHT: f64 = 20.0;
/// Probable truths kept per combination of votes between the steps of EM.
const KEPT_TRUTHS: usize = 4;
/// A truth less probable than this is dropped from a combination's posterior.
const NEGLIGIBLE: f64 = 1e-4;

/// One image's part of the batch, for [`CrowdModel::fit`]: its included workers' ids (in the
/// order of the census) and its census.
#[derive(Debug, Clone)]
pub struct ImageVotes<'a> {
    /// The included workers' ids, in the census's order.
    pub workers: Vec<&'a str>,
    /// The image's census: each combination of votes with its pixel count.
    pub patterns: &'a Combinations,
}

/// What EM learnt about one worker: its confusion matrix, P(paints label l | truth c), kept
/// sparse, and its weight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Confusion {
    /// Per truth c, ln of (the pixels of truth c this worker voted on, as EM apportions them,
    /// plus the pseudo-counts of every label) ÷ one pseudo-count: so that an unseen pair's
    /// ln P(l | c) is minus this.
    ln_total: Vec<f64>,
    /// `(label, truth, ln((pixels + SMOOTHING) ÷ SMOOTHING))` for the pairs this worker was
    /// seen with, sorted: what they add to an unseen pair's ln P(l | c).
    seen: Vec<(u8, u8, f64)>,
    /// The log-odds of the worker painting the true class.
    pub(crate) weight: f64,
}

impl Confusion {
    /// The matrix of a worker the model has not seen: every label equally likely.
    fn uniform(classes: usize) -> Self {
        Self {
            ln_total: vec![(classes as f64).ln(); classes],
            seen: Vec::new(),
            weight: 0.0,
        }
    }

    /// Adds ln P(label | c) to `scores[c]` for every class c.
    pub(crate) fn add_vote(&self, label: u8, scores: &mut [f64]) {
        for (s, t) in scores.iter_mut().zip(&self.ln_total) {
            *s -= t;
        }
        let from = self.seen.partition_point(|&(l, _, _)| l < label);
        for &(_, c, more) in self.seen[from..].iter().take_while(|e| e.0 == label) {
            scores[usize::from(c)] += more;
        }
    }

    /// P(label | truth).
    pub(crate) fn p(&self, label: u8, truth: u8) -> f64 {
        let more = self
            .seen
            .binary_search_by(|&(l, c, _)| (l, c).cmp(&(label, truth)))
            .map_or(0.0, |i| self.seen[i].2);
        (more - self.ln_total[usize::from(truth)]).exp()
    }
}

/// The batch's class frequencies and every worker's confusion matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdModel {
    classes: usize,
    pub(crate) log_prior: Vec<f64>,
    workers: HashMap<String, Confusion>,
    uniform: Confusion,
    /// EM iterations run.
    pub iterations: usize,
}

/// One combination of votes of one image: where the votes of its workers (model index and
/// label) start in the batch's list and how many there are, its pixel count, and its probable
/// truths (compact: there are as many items as combinations in the batch).
struct Item {
    start: u32,
    len: u16,
    kept: u8,
    classes: [u8; KEPT_TRUTHS],
    probabilities: [f32; KEPT_TRUTHS],
    count: f64,
}

impl Item {
    fn votes(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + usize::from(self.len)
    }

    /// The kept truths and their probabilities.
    fn truths(&self) -> impl Iterator<Item = (u8, f64)> + '_ {
        let n = usize::from(self.kept);
        self.classes[..n]
            .iter()
            .zip(&self.probabilities[..n])
            .map(|(&c, &p)| (c, f64::from(p)))
    }

    /// Keeps the most probable truths of `posterior` (ties: the lower class), renormalised.
    fn keep(&mut self, posterior: &[f64]) {
        let mut best = [(0u8, 0.0f64); KEPT_TRUTHS];
        let mut kept = 0;
        for (c, &p) in posterior.iter().enumerate() {
            if p < NEGLIGIBLE {
                continue;
            }
            let at = best[..kept].partition_point(|&(_, q)| q >= p);
            if at < KEPT_TRUTHS {
                best.copy_within(at..KEPT_TRUTHS - 1, at + 1);
                best[at] = (c as u8, p);
                kept = (kept + 1).min(KEPT_TRUTHS);
            }
        }
        let sum: f64 = best[..kept].iter().map(|t| t.1).sum();
        for (i, &(c, p)) in best[..kept].iter().enumerate() {
            self.classes[i] = c;
            self.probabilities[i] = (p / sum) as f32;
        }
        self.kept = kept as u8;
    }
}

impl CrowdModel {
    /// Fits the model to every image's census by EM (see the module documentation).
    /// `classes` is the number of classes including BACKGROUND; votes outside them are ignored.
    pub fn fit(classes: usize, images: &[ImageVotes<'_>]) -> Self {
        let k = classes.clamp(1, 256);
        let mut ids: Vec<&str> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut votes: Vec<(u32, u8)> = Vec::new();
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
            for (pattern, count) in img.patterns.iter() {
                let from = votes.len();
                votes.extend(
                    pattern
                        .iter()
                        .zip(&slots)
                        .filter(|&(&l, _)| usize::from(l) < k)
                        .map(|(&l, &w)| (w as u32, l)),
                );
                if votes.len() > from {
                    items.push(Item {
                        start: from as u32,
                        // At most 254 workers vote (MAX_ANSWERS_PER_IMAGE).
                        len: (votes.len() - from) as u16,
                        kept: 0,
                        classes: [0; KEPT_TRUTHS],
                        probabilities: [0.0; KEPT_TRUTHS],
                        count: count as f64,
                    });
                }
            }
        }
        let pixels: f64 = items.iter().map(|i| i.count).sum::<f64>().max(1.0);
        // Each worker's votes, as (combination, label), for the M-step.
        let mut by_worker: Vec<Vec<(u32, u8)>> = vec![Vec::new(); ids.len()];
        for (i, it) in items.iter().enumerate() {
            for &(w, l) in &votes[it.votes()] {
                by_worker[w as usize].push((i as u32, l));
            }
        }
        // Start from the majority vote's shares, then alternate.
        let mut shares = vec![0.0; k];
        for it in &mut items {
            shares.fill(0.0);
            let n = f64::from(it.len);
            for &(_, l) in &votes[it.votes()] {
                shares[usize::from(l)] += 1.0 / n;
            }
            it.keep(&shares);
        }
        let mut log_prior = vec![0.0; k];
        let mut confusions: Vec<Confusion> = Vec::new();
        let mut last = f64::NEG_INFINITY;
        let mut iterations = 0;
        let mut scores = vec![0.0; k];
        // One worker's matrix at a time, dense while it is counted (the cells it touched are
        // kept, sparse, and cleared for the next worker).
        let mut dense = vec![0.0; k * k];
        let mut touched: Vec<usize> = Vec::new();
        while iterations < MAX_ITERATIONS {
            iterations += 1;
            // M-step: class frequencies and confusion matrices from the current posteriors.
            let mut prior = vec![SMOOTHING; k];
            for it in &items {
                for (c, p) in it.truths() {
                    prior[usize::from(c)] += it.count * p;
                }
            }
            let total: f64 = prior.iter().sum();
            for (lp, p) in log_prior.iter_mut().zip(&prior) {
                *lp = (p / total).ln();
            }
            confusions = by_worker
                .iter()
                .map(|mine| {
                    let mut totals = vec![SMOOTHING * k as f64; k];
                    for &(i, l) in mine {
                        let it = &items[i as usize];
                        for (c, p) in it.truths() {
                            let m = it.count * p;
                            totals[usize::from(c)] += m;
                            let cell = usize::from(l) * k + usize::from(c);
                            if dense[cell] == 0.0 {
                                touched.push(cell);
                            }
                            dense[cell] += m;
                        }
                    }
                    touched.sort_unstable();
                    let seen = touched
                        .drain(..)
                        .map(|cell| {
                            let n = std::mem::take(&mut dense[cell]);
                            let more = (n / SMOOTHING).ln_1p();
                            ((cell / k) as u8, (cell % k) as u8, more)
                        })
                        .collect();
                    Confusion {
                        ln_total: totals.iter().map(|x| (x / SMOOTHING).ln()).collect(),
                        seen,
                        weight: 0.0,
                    }
                })
                .collect();
            // E-step: the posterior of every combination, and the likelihood of the data.
            let mut likelihood = 0.0;
            for it in &mut items {
                scores.copy_from_slice(&log_prior);
                for &(w, l) in &votes[it.votes()] {
                    confusions[w as usize].add_vote(l, &mut scores);
                }
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                scores.iter_mut().for_each(|s| *s /= sum);
                it.keep(&scores);
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
            .zip(confusions)
            .map(|(id, mut conf)| {
                let accuracy: f64 = (0..k).map(|c| prior[c] * conf.p(c as u8, c as u8)).sum();
                let weight = (accuracy / (1.0 - accuracy)).ln();
                conf.weight = weight.clamp(-MAX_WEIGHT, MAX_WEIGHT);
                ((*id).to_owned(), conf)
            })
            .collect();
        Self {
            classes: k,
            log_prior,
            workers,
            uniform: Confusion::uniform(k),
            iterations,
        }
    }

    /// The number of classes, BACKGROUND included.
    pub(crate) fn classes(&self) -> usize {
        self.classes
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

    /// A worker's confusion matrix (every label equally likely for a worker not seen, which
    /// cannot happen for a fitted image).
    pub(crate) fn confusion(&self, worker: &str) -> &Confusion {
        self.workers.get(worker).unwrap_or(&self.uniform)
    }

    /// Pairs of (label, truth) the matrices keep, over all workers: what the model's memory
    /// grows with.
    pub fn kept_pairs(&self) -> usize {
        self.workers.values().map(|w| w.seen.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combination_keeps_its_most_probable_truths_renormalised() {
        let mut it = Item {
            start: 0,
            len: 0,
            kept: 0,
            classes: [0; KEPT_TRUTHS],
            probabilities: [0.0; KEPT_TRUTHS],
            count: 1.0,
        };
        it.keep(&[0.1, 0.00001, 0.3, 0.2, 0.15, 0.25]);
        let kept: Vec<u8> = it.truths().map(|t| t.0).collect();
        assert_eq!(kept, [2, 5, 3, 4]);
        let sum: f64 = it.truths().map(|t| t.1).sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_sparse_confusion_matrix_reads_like_a_dense_one() {
        let conf = Confusion {
            ln_total: vec![10f64.ln(), 4f64.ln()],
            seen: vec![(0, 0, 8f64.ln()), (1, 1, 3f64.ln())],
            weight: 0.0,
        };
        assert!((conf.p(0, 0) - 0.8).abs() < 1e-12);
        assert!(
            (conf.p(1, 0) - 0.1).abs() < 1e-12,
            "unseen: the pseudo-count"
        );
        let mut scores = [0.0, 0.0];
        conf.add_vote(1, &mut scores);
        assert!((scores[0] - 0.1f64.ln()).abs() < 1e-12);
        assert!((scores[1] - 0.75f64.ln()).abs() < 1e-12);
    }
}
