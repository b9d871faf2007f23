//! Reading one image's answers: inline, or from the store.
//!
//! Only a problem with an answer itself excludes it: a missing object, one too large, one the
//! allow-list refuses, or content that is not an answer. Any other failure to read it (access
//! denied, throttling, timeouts, a server error) fails the batch, so that Ground Truth retries
//! it whole rather than losing the worker's answer.

use super::BatchError;
use super::answer::{Exclusion, ParsedAnswer, ReadAnswer, parse_answer};
use super::payload::Item;
use crate::config::Limits;
use crate::event::{AnnotationData, VerificationAnswer};
use crate::store::ObjectStore;
use crate::uri::S3Uri;

/// One worker's answer after reading, before decoding.
#[derive(Debug)]
pub(crate) struct WorkerInput {
    pub(crate) worker_id: String,
    pub(crate) answer: Result<Answer, Exclusion>,
}

/// A worker's answer, of either kind.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A painted mask (labeling and adjustment jobs).
    Mask(ReadAnswer),
    /// A chosen category (verification jobs).
    Category(VerificationAnswer),
}

impl WorkerInput {
    /// The mask answer, or why this worker has none.
    pub(crate) fn mask(&self) -> Result<&ReadAnswer, String> {
        match &self.answer {
            Ok(Answer::Mask(a)) => Ok(a),
            Ok(Answer::Category(_)) => Err(Exclusion::NotAMask.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What an image's answers are: the kind most of its readable answers have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageKind {
    /// Masks (or no readable answer at all): the mask vote decides.
    Masks,
    /// Categories: the verification rule decides.
    Categories,
    /// As many of each: nothing can be decided.
    Mixed {
        /// Mask answers.
        masks: usize,
        /// Category answers.
        categories: usize,
    },
}

/// One image of the payload after reading.
#[derive(Debug)]
pub(crate) struct ImageInput {
    pub(crate) id: String,
    /// The mask's file name, from the id (see [`super::object_file_name`]).
    pub(crate) file: String,
    pub(crate) workers: Vec<WorkerInput>,
}

impl ImageInput {
    /// Bytes its answers hold (the PNGs).
    pub(crate) fn bytes(&self) -> u64 {
        self.workers
            .iter()
            .filter_map(|w| w.mask().ok())
            .filter_map(|a| a.png.as_ref().ok())
            .map(|png| png.len() as u64)
            .sum()
    }

    /// Whether masks or categories decide this image: the kind most readable answers have.
    pub(crate) fn kind(&self) -> ImageKind {
        let (mut masks, mut categories) = (0, 0);
        for w in &self.workers {
            match w.answer {
                Ok(Answer::Mask(_)) => masks += 1,
                Ok(Answer::Category(_)) => categories += 1,
                Err(_) => {}
            }
        }
        match masks.cmp(&categories) {
            std::cmp::Ordering::Greater => ImageKind::Masks,
            std::cmp::Ordering::Less => ImageKind::Categories,
            std::cmp::Ordering::Equal if masks == 0 => ImageKind::Masks,
            std::cmp::Ordering::Equal => ImageKind::Mixed { masks, categories },
        }
    }
}

/// Reads every answer of one image (inline or from the store) and parses it.
pub(crate) async fn read_image<S: ObjectStore>(
    store: &S,
    limits: &Limits,
    item: Item,
) -> Result<ImageInput, BatchError> {
    let id = item.item.dataset_object_id;
    let mut workers = Vec::with_capacity(item.item.annotations.len());
    for (n, ann) in item.item.annotations.into_iter().enumerate() {
        let answer = if n >= limits.max_answers_per_image {
            Err(Exclusion::TooManyAnswers(limits.max_answers_per_image))
        } else {
            read_answer(store, limits, &ann.annotation_data)
                .await
                .map_err(|cause| BatchError::AnswerRead {
                    id: id.clone(),
                    worker: ann.worker_id.clone(),
                    cause: Box::new(cause),
                })?
        };
        workers.push(WorkerInput {
            worker_id: ann.worker_id,
            answer,
        });
    }
    Ok(ImageInput {
        id,
        file: item.file,
        workers,
    })
}

/// The answer, or why it is excluded; `Err` for a failure to read that is not the answer's.
async fn read_answer<S: ObjectStore>(
    store: &S,
    limits: &Limits,
    data: &AnnotationData,
) -> Result<Result<Answer, Exclusion>, crate::store::StoreError> {
    let fetched;
    let text: &[u8] = match (&data.content, &data.s3_uri) {
        (Some(c), _) => c.as_bytes(),
        (None, Some(u)) => {
            let uri = match S3Uri::parse(u) {
                Ok(uri) => uri,
                Err(e) => return Ok(Err(Exclusion::BadUri(e))),
            };
            match store.get(&uri, limits.max_payload_bytes).await {
                Ok(bytes) => fetched = bytes,
                Err(e) if e.is_the_object_s_fault() => {
                    return Ok(Err(Exclusion::Unreadable(Box::new(e))));
                }
                Err(e) => return Err(e),
            }
            &fetched
        }
        (None, None) => return Ok(Err(Exclusion::NoData)),
    };
    Ok(parse_answer(text).map(|parsed| match parsed {
        ParsedAnswer::Mask(a) => Answer::Mask(a.into()),
        ParsedAnswer::Verification(v) => Answer::Category(v),
    }))
}
