//! The category rule of verification jobs: each image's one-category answers merged by a
//! Dawid–Skene style EM over the whole batch. Pure.
//!
//! The model gives each worker one reliability `p`: the probability that the worker picks the
//! image's true category; otherwise the worker picks any other category with equal
//! probability. Categories have a prior. EM starts from the majority vote (ties shared
//! evenly), then alternates: reliabilities and the prior from the current beliefs
//! (M-step), beliefs from the reliabilities and the prior (E-step), until no belief moves by
//! more than [`TOLERANCE`] or [`MAX_ITERATIONS`] is reached.
//!
//! Per image:
//! - one answer: that worker's category, confidence 0 (as Ground Truth does);
//! - a category with more than half the answers (a clear majority) wins, whatever the
//!   reliabilities, with its posterior as the confidence;
//! - otherwise the category with the highest posterior wins; ties go to the category with
//!   more answers, then to the lowest index.

use std::collections::HashMap;

/// EM stops after this many rounds even if beliefs still move.
pub(crate) const MAX_ITERATIONS: usize = 100;

/// EM stops once no image's belief in any category moves by more than this.
pub(crate) const TOLERANCE: f64 = 1e-9;

/// The reliability's prior, as pseudo-answers: as if every worker had already given
/// `PRIOR_RIGHT` right and `PRIOR_WRONG` wrong answers. A worker seen once is neither
/// trusted nor written off (2/3 before evidence), and no estimate reaches 0 or 1.
const PRIOR_RIGHT: f64 = 2.0;
const PRIOR_WRONG: f64 = 1.0;

/// Two posteriors closer than this are a tie.
const TIE: f64 = 1e-12;

/// One worker's answer for one image: a category index (0-based, in the job's label order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ballot<'a> {
    /// The worker.
    pub worker: &'a str,
    /// The category chosen.
    pub category: usize,
}

/// Which rule chose an image's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// One answer: it wins, confidence 0.
    SingleWorker,
    /// More than half the answers chose it.
    ClearMajority,
    /// The highest posterior (with the tie-breaks).
    Posterior,
}

impl Rule {
    /// The name the metadata uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::SingleWorker => "single-worker",
            Self::ClearMajority => "clear-majority",
            Self::Posterior => "posterior",
        }
    }
}

/// One image's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The chosen category (0-based).
    pub category: usize,
    /// The chosen category's posterior, rounded to 2 decimals; 0 with one answer.
    pub confidence: f64,
    /// The rule that chose it.
    pub rule: Rule,
    /// Answers per category.
    pub votes: Vec<u32>,
}

/// The batch's result: a verdict per image (`None` for an image without answers), and each
/// worker's estimated reliability.
#[derive(Debug, Clone)]
pub struct CategoryFit {
    /// In the order of the images given.
    pub verdicts: Vec<Option<Verdict>>,
    /// By worker id.
    pub reliability: HashMap<String, f64>,
    /// EM rounds run.
    pub iterations: usize,
}

/// Merges every image's answers, estimating the workers' reliabilities from the whole batch.
/// `categories` is the number of categories; ballots outside it are the caller's to exclude
/// and are ignored here.
pub fn consolidate(categories: usize, images: &[Vec<Ballot<'_>>]) -> CategoryFit {
    let k = categories.max(1);
    let images: Vec<Vec<Ballot<'_>>> = images
        .iter()
        .map(|b| b.iter().copied().filter(|b| b.category < k).collect())
        .collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for b in images.iter().flatten() {
        let next = index.len();
        index.entry(b.worker).or_insert(next);
    }
    let votes: Vec<Vec<u32>> = images
        .iter()
        .map(|ballots| {
            let mut v = vec![0u32; k];
            for b in ballots {
                v[b.category] += 1;
            }
            v
        })
        .collect();
    // The start: the majority vote, ties shared evenly.
    let mut belief: Vec<Vec<f64>> = votes
        .iter()
        .map(|v| {
            let top = v.iter().copied().max().unwrap_or(0);
            let winners = v.iter().filter(|&&c| c == top && c > 0).count();
            v.iter()
                .map(|&c| {
                    if c == top && c > 0 {
                        1.0 / winners as f64
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let mut reliability = vec![PRIOR_RIGHT / (PRIOR_RIGHT + PRIOR_WRONG); index.len()];
    let mut iterations = 0;
    while k > 1 && iterations < MAX_ITERATIONS {
        iterations += 1;
        // M-step: each worker's reliability and the categories' prior from the beliefs.
        let mut right = vec![PRIOR_RIGHT; index.len()];
        let mut seen = vec![PRIOR_RIGHT + PRIOR_WRONG; index.len()];
        let mut prior = vec![1.0; k];
        for (ballots, t) in images.iter().zip(&belief) {
            if ballots.is_empty() {
                continue;
            }
            for (p, t) in prior.iter_mut().zip(t) {
                *p += t;
            }
            for b in ballots {
                let j = index[b.worker];
                right[j] += t[b.category];
                seen[j] += 1.0;
            }
        }
        let total: f64 = prior.iter().sum();
        let ln_prior: Vec<f64> = prior.iter().map(|p| (p / total).ln()).collect();
        for ((r, right), seen) in reliability.iter_mut().zip(&right).zip(&seen) {
            *r = right / seen;
        }
        // E-step: beliefs from the reliabilities and the prior.
        let ln_right: Vec<f64> = reliability.iter().map(|p| p.ln()).collect();
        let ln_wrong: Vec<f64> = reliability
            .iter()
            .map(|p| ((1.0 - p) / (k - 1) as f64).ln())
            .collect();
        let mut moved: f64 = 0.0;
        for (ballots, t) in images.iter().zip(belief.iter_mut()) {
            if ballots.is_empty() {
                continue;
            }
            let mut ln = ln_prior.clone();
            let base: f64 = ballots.iter().map(|b| ln_wrong[index[b.worker]]).sum();
            for b in ballots {
                let j = index[b.worker];
                ln[b.category] += ln_right[j] - ln_wrong[j];
            }
            let top = ln.iter().copied().fold(f64::NEG_INFINITY, f64::max) + base;
            let unnorm: Vec<f64> = ln.iter().map(|l| (l + base - top).exp()).collect();
            let sum: f64 = unnorm.iter().sum();
            for (t, u) in t.iter_mut().zip(&unnorm) {
                let new = u / sum;
                moved = moved.max((new - *t).abs());
                *t = new;
            }
        }
        if moved < TOLERANCE {
            break;
        }
    }
    let verdicts = votes
        .into_iter()
        .zip(&belief)
        .map(|(votes, t)| verdict(votes, t))
        .collect();
    let reliability = index
        .into_iter()
        .map(|(w, j)| (w.to_owned(), reliability[j]))
        .collect();
    CategoryFit {
        verdicts,
        reliability,
        iterations,
    }
}

/// One image's verdict from its votes and its final belief (see the module's rules).
fn verdict(votes: Vec<u32>, belief: &[f64]) -> Option<Verdict> {
    let n: u32 = votes.iter().sum();
    if n == 0 {
        return None;
    }
    let round = |p: f64| (p * 100.0).round() / 100.0;
    // A strict majority is unique, so `position` finds the only one.
    let majority = votes.iter().position(|&c| 2 * c > n);
    let (category, rule) = match majority {
        Some(c) if n == 1 => (c, Rule::SingleWorker),
        Some(c) => (c, Rule::ClearMajority),
        None => {
            let best = (0..votes.len()).fold(0, |best, c| {
                let (a, b) = (belief[c], belief[best]);
                let better = a > b + TIE || ((a - b).abs() <= TIE && votes[c] > votes[best]);
                if better { c } else { best }
            });
            (best, Rule::Posterior)
        }
    };
    let confidence = if rule == Rule::SingleWorker {
        0.0
    } else {
        round(belief[category])
    };
    Some(Verdict {
        category,
        confidence,
        rule,
        votes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(worker: &str, category: usize) -> Ballot<'_> {
        Ballot { worker, category }
    }

    #[test]
    fn one_answer_wins_with_confidence_zero() {
        let fit = consolidate(3, &[vec![b("w", 2)]]);
        let v = fit.verdicts[0].as_ref().unwrap();
        assert_eq!(
            (v.category, v.confidence, v.rule),
            (2, 0.0, Rule::SingleWorker)
        );
    }

    #[test]
    fn an_image_without_answers_has_no_verdict() {
        let fit = consolidate(2, &[vec![], vec![b("w", 1), b("v", 1)]]);
        assert_eq!(fit.verdicts[0], None);
        assert_eq!(fit.verdicts[1].as_ref().unwrap().category, 1);
    }

    /// Workers `A`, `B`, `C` always give the true category; `D`, `E`, `F` always give the
    /// next one. Each calibration image has `A`, `B`, `C` and two of the others, so its truth
    /// is a clear majority (3 of 5) and EM learns who is reliable.
    fn calibrated(extra: Vec<Ballot<'static>>) -> Vec<Vec<Ballot<'static>>> {
        let bad = ["D", "E", "F"];
        let mut images: Vec<Vec<Ballot<'static>>> = (0..24)
            .map(|i| {
                let truth = i % 3;
                let mut v = vec![b("A", truth), b("B", truth), b("C", truth)];
                v.push(b(bad[i % 3], (truth + 1) % 3));
                v.push(b(bad[(i + 1) % 3], (truth + 1) % 3));
                v
            })
            .collect();
        images.push(extra);
        images
    }

    #[test]
    fn em_overrules_a_plurality_of_workers_who_are_usually_wrong() {
        // Plain majority picks 1 (3 of 6 answers, not more than half). EM picks 0: D, E and
        // F chose the true category in none of the 24 calibration images, where A and B
        // always did, so two of A and B outweigh three of D, E and F. C, also reliable,
        // chose 2 alone; A and B together outweigh C.
        let contested = vec![
            b("D", 1),
            b("E", 1),
            b("F", 1),
            b("A", 0),
            b("B", 0),
            b("C", 2),
        ];
        let fit = consolidate(3, &calibrated(contested));
        let v = fit.verdicts.last().unwrap().as_ref().unwrap();
        assert_eq!(v.votes, [2, 3, 1]);
        assert_eq!((v.category, v.rule), (0, Rule::Posterior));
        assert!(v.confidence > 0.9, "{v:?}");
        assert!(fit.reliability["A"] > 0.9);
        assert!(fit.reliability["D"] < 0.2);
        assert!(fit.iterations <= MAX_ITERATIONS);
        // Every calibration image gets its truth.
        for (i, v) in fit.verdicts[..24].iter().enumerate() {
            let v = v.as_ref().unwrap();
            assert_eq!((v.category, v.rule), (i % 3, Rule::ClearMajority));
        }
    }

    #[test]
    fn a_clear_majority_wins_even_of_unreliable_workers() {
        // D, E and F are 3 of 5: more than half. Their record is poor, but a clear majority
        // is never overturned.
        let contested = vec![b("D", 1), b("E", 1), b("F", 1), b("A", 0), b("B", 0)];
        let fit = consolidate(3, &calibrated(contested));
        let v = fit.verdicts.last().unwrap().as_ref().unwrap();
        assert_eq!((v.category, v.rule), (1, Rule::ClearMajority));
        assert!(
            v.confidence < 0.5,
            "its posterior is reported as it is: {v:?}"
        );
    }

    #[test]
    fn equal_evidence_goes_to_more_votes_then_the_lowest_index() {
        // Nothing tells the two workers apart: a tie, so the lowest index.
        let fit = consolidate(3, &[vec![b("x", 2), b("y", 1)]]);
        let v = fit.verdicts[0].as_ref().unwrap();
        assert_eq!((v.category, v.rule), (1, Rule::Posterior));
        // Categories 1 and 2 share most of the belief; the unchosen 0 keeps some.
        assert!(v.confidence > 0.3 && v.confidence < 0.5, "{v:?}");
    }

    #[test]
    fn one_category_needs_no_em() {
        let fit = consolidate(1, &[vec![b("x", 0), b("y", 0)], vec![b("x", 0)]]);
        assert_eq!(fit.iterations, 0);
        assert_eq!(fit.verdicts[0].as_ref().unwrap().confidence, 1.0);
        assert_eq!(fit.verdicts[1].as_ref().unwrap().confidence, 0.0);
    }

    #[test]
    fn ballots_outside_the_categories_are_ignored() {
        let fit = consolidate(2, &[vec![b("x", 7), b("y", 1)]]);
        let v = fit.verdicts[0].as_ref().unwrap();
        assert_eq!((v.category, v.rule), (1, Rule::SingleWorker));
    }

    #[test]
    fn confidences_have_two_decimals() {
        let fit = consolidate(
            3,
            &calibrated(vec![b("A", 0), b("D", 1), b("B", 0), b("C", 0)]),
        );
        for v in fit.verdicts.iter().flatten() {
            assert_eq!(v.confidence, (v.confidence * 100.0).round() / 100.0);
            assert!((0.0..=1.0).contains(&v.confidence));
        }
    }
}
