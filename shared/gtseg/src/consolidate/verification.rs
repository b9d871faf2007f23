//! Verification images: each worker chose one category (one of the job's labels) for an
//! earlier job's mask. Their answers are collected during the batch's pass, merged after it by
//! the category rule over the whole batch (`crate::category`), and answered in Ground Truth's
//! label-verification form.

use std::collections::BTreeMap;

use serde_json::Value;

use super::answer::Exclusion;
use super::read::{Answer, ImageInput};
use super::response::{BatchFacts, labelled_item};
use crate::category::{Ballot, CategoryFit, Verdict};
use crate::event::{
    AnswersReport, ConsolidationResponseItem, ExcludedWorker, VERIFICATION_TYPE,
    VerificationMetadata, VerificationReport, VerifierReport, WorkerFeedback,
};
use crate::labels::ClassList;

/// One verification image's usable answers and its exclusions.
#[derive(Debug)]
pub(crate) struct Ballots {
    pub(crate) id: String,
    /// Included answers in payload order: the worker, the category (0-based), the comment.
    pub(crate) included: Vec<(String, usize, Option<String>)>,
    pub(crate) excluded: Vec<ExcludedWorker>,
}

impl Ballots {
    /// Sorts an image's answers: categories of the job are included; masks, unknown
    /// categories and unreadable answers are excluded with their reasons.
    pub(crate) fn of(image: ImageInput, classes: &ClassList) -> Self {
        let mut included = Vec::new();
        let mut excluded = Vec::new();
        for w in image.workers {
            let category = match w.answer {
                Ok(Answer::Category(c)) => match classes.class_of(&c.label) {
                    // Class k ≥ 1 is label k-1: categories are the labels, 0-based.
                    Some(k) => Ok((usize::from(k) - 1, c.worker_comment)),
                    None => Err(Exclusion::UnknownCategory(c.label)),
                },
                Ok(Answer::Mask(_)) => Err(Exclusion::NotACategory),
                Err(e) => Err(e),
            };
            match category {
                Ok((k, comment)) => included.push((w.worker_id, k, comment)),
                Err(e) => excluded.push(ExcludedWorker {
                    worker_id: w.worker_id,
                    reason: e.to_string(),
                }),
            }
        }
        Self {
            id: image.id,
            included,
            excluded,
        }
    }

    /// The category rule's view of this image.
    pub(crate) fn ballots(&self) -> Vec<Ballot<'_>> {
        self.included
            .iter()
            .map(|(worker, category, _)| Ballot {
                worker,
                category: *category,
            })
            .collect()
    }
}

/// The longest comment kept, in characters: a batch's comments must not push its response
/// over Lambda's limit, which would fail the batch on every retry.
pub(crate) const MAX_COMMENT_CHARS: usize = 2000;

/// A comment, cut to [`MAX_COMMENT_CHARS`] (with ` [cut]` at the end when it was).
fn capped(comment: &str) -> String {
    match comment.char_indices().nth(MAX_COMMENT_CHARS) {
        Some((at, _)) => format!("{} [cut]", &comment[..at]),
        None => comment.to_owned(),
    }
}

/// The response item of one decided verification image.
pub(crate) fn response_item(
    batch: BatchFacts<'_>,
    image: &Ballots,
    verdict: &Verdict,
    fit: &CategoryFit,
) -> ConsolidationResponseItem {
    let name = |k: usize| batch.classes.labels()[k].clone();
    let worker_feedback = image
        .included
        .iter()
        .filter_map(|(_, _, comment)| comment.as_deref())
        .filter(|c| !c.trim().is_empty())
        .map(|c| WorkerFeedback { comment: capped(c) })
        .collect();
    let votes: BTreeMap<String, u32> = verdict
        .votes
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (name(k), *n))
        .collect();
    let workers = image
        .included
        .iter()
        .map(|(worker, category, _)| VerifierReport {
            worker_id: worker.clone(),
            label: name(*category),
            reliability: fit
                .reliability
                .get(worker)
                .map_or(0.0, |p| (p * 1000.0).round() / 1000.0),
        })
        .collect();
    let meta = VerificationMetadata {
        class_name: name(verdict.category),
        confidence: verdict.confidence,
        kind: VERIFICATION_TYPE.to_owned(),
        job_name: batch.job_name.to_owned(),
        human_annotated: "yes".to_owned(),
        creation_date: batch.creation_date.to_owned(),
        worker_feedback,
        votes,
        answers: AnswersReport {
            worker_count: Some(image.included.len() as u32),
            excluded_workers: image.excluded.clone(),
            warnings: batch.warnings.to_vec(),
        },
        consolidation: Some(VerificationReport {
            algorithm: "dawid-skene".to_owned(),
            rule: verdict.rule.name().to_owned(),
            workers,
        }),
    };
    labelled_item(
        &image.id,
        batch.label_attribute_name,
        Value::from(verdict.category as u64),
        &meta,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_comments_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_COMMENT_CHARS + 5);
        let cut = capped(&long);
        assert!(cut.ends_with(" [cut]"));
        assert_eq!(cut.chars().count(), MAX_COMMENT_CHARS + " [cut]".len());
        assert_eq!(capped("short"), "short");
    }
}
