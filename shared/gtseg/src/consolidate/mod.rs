//! One consolidation batch against a store: read the payload and the answers, decide the
//! class list, decide every image, write its mask and disagreement map under
//! `<outputConfig>/consolidated-annotation/`, and build Ground Truth's response.
//!
//! A broken answer is excluded with its reason; a broken image is left out of the response;
//! only an unreadable event or payload, or a failed write, fails the batch. The concerns live
//! in the children: `read` (payload and answers), `validate` (the checks that need no
//! pixels), `decode` (worker PNGs in lockstep), `image` (one image's vote, encoders and
//! agreement), `pool` (threads), `response` (the response items) and `names` (keys, job
//! names, dates).

mod decode;
mod image;
mod names;
mod pool;
mod read;
mod response;
mod validate;

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;
use tracing::{error, info, warn};

pub use names::{InvalidId, format_creation_date, job_name, object_file_name};
pub use read::parse_answer;
pub use validate::{Exclusion, decode_answer_json};

use crate::config::{Algorithm, Limits};
use crate::event::{
    ConsolidationEvent, ConsolidationResponseItem, PayloadItem, ShapeError, from_slice, from_value,
};
use crate::fusion::{CrowdModel, ImageVotes};
use crate::labels::{ClassList, LabelError};
use crate::resolve::{Configured, LabelsError};
use crate::store::{ObjectStore, PutOptions, StoreError};
use crate::uri::{S3Uri, UriError};
use image::{DecideWith, Decision, census, decide_image};
use pool::par_map;
use read::{ImageInput, read_images};
use response::{BatchFacts, WrittenImage, response_item};
use validate::{select, worker_ids};

/// The folder under `outputConfig` where consolidated masks go.
pub const OUTPUT_FOLDER: &str = "consolidated-annotation/output";

/// The folder under `outputConfig` where disagreement maps go.
pub const DISAGREEMENT_FOLDER: &str = "consolidated-annotation/disagreement";

/// Why the whole batch failed: nothing could be done, or a mask could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// `payload.s3Uri` is not an `s3://` URI.
    #[error("payload.s3Uri is unusable: {0}")]
    PayloadUri(UriError),
    /// `outputConfig` is not an `s3://` URI.
    #[error("outputConfig is unusable: {0}")]
    OutputConfig(UriError),
    /// There is no `outputConfig`, and none can be derived from the payload's URI.
    #[error(
        "the event has no outputConfig and payload URI {0} has no `/consolidated-annotation/` segment to derive it from; set outputConfig"
    )]
    NoOutputConfig(String),
    /// The payload could not be read.
    #[error("cannot read the payload: {0}")]
    PayloadRead(Box<StoreError>),
    /// The payload is not a JSON array.
    #[error("{0}")]
    PayloadShape(ShapeError),
    /// The event's `labelCategories` cannot be a class list.
    #[error("labelCategories of the event is unusable: {0}")]
    Labels(LabelError),
    /// The pinned or the job's label list could not be had.
    #[error("{0}")]
    JobLabels(LabelsError),
    /// No class list is configured and no answer names a label.
    #[error(
        "no image of the batch has a usable answer, so the class list cannot be derived from them; give the job a LabelCategoryConfigS3Uri or set LABEL_CATEGORY_CONFIG"
    )]
    NoLabels,
    /// A mask or map could not be written: the batch fails rather than claim it.
    #[error(
        "image `{id}`: writing its mask failed, so the batch fails rather than claim it: {cause}"
    )]
    Write {
        /// The image's `datasetObjectId`.
        id: String,
        /// What the store said.
        cause: Box<StoreError>,
    },
    /// A mask or map could not be encoded.
    #[error("image `{id}`: encoding its mask failed: {cause}")]
    Encode {
        /// The image's `datasetObjectId`.
        id: String,
        /// What the encoder said.
        cause: png::EncodingError,
    },
}

/// Everything a batch needs besides the store.
#[derive(Debug, Clone)]
pub(crate) struct BatchContext {
    /// Bounds on hostile input.
    pub limits: Limits,
    /// `CONSOLIDATION_ALGORITHM`.
    pub algorithm: Algorithm,
    /// The `creation-date` to stamp (the clock is read at the edge).
    pub creation_date: String,
    /// Mean pairwise agreement below which an image is flagged `low-agreement`.
    pub low_agreement_threshold: f64,
    /// How many images are decoded at once (CPU threads); Lambda gives more vCPUs with more
    /// memory, and every one is used.
    pub parallelism: usize,
}

/// How many S3 reads or writes of one batch are in flight at once.
const IO_CONCURRENCY: usize = 16;

/// Consolidates one batch: the response items, in payload order, of the images that had at
/// least one usable answer.
///
/// Three phases: the answers are fetched concurrently; the images are decided in parallel on
/// blocking threads; the masks are written concurrently. The response is built only when
/// every mask is written, so it never claims a mask that is not there.
///
/// `job_labels` finds the pinned or the job's label list; it is awaited only when the event
/// has no `labelCategories`, once the payload is read.
pub(crate) async fn consolidate_batch<S: ObjectStore>(
    store: &S,
    ctx: &BatchContext,
    event: &ConsolidationEvent,
    job_labels: impl Future<Output = Result<Configured, LabelsError>>,
) -> Result<Vec<ConsolidationResponseItem>, BatchError> {
    let payload_uri = S3Uri::parse(&event.payload.s3_uri).map_err(BatchError::PayloadUri)?;
    let output = output_prefix(event, &payload_uri)?;
    let bytes = store
        .get(&payload_uri, ctx.limits.max_payload_bytes)
        .await
        .map_err(|e| BatchError::PayloadRead(Box::new(e)))?;
    let items: Vec<Value> = from_slice("the payload", &bytes).map_err(BatchError::PayloadShape)?;
    drop(bytes);
    let has_categories = event
        .label_categories
        .as_ref()
        .is_some_and(|c| !c.is_empty());
    let configured = if has_categories {
        None
    } else {
        Some(job_labels.await.map_err(BatchError::JobLabels)?)
    };
    let images = read_images(store, ctx.limits, unique_items(&items)).await;
    drop(items);

    let (classes, warnings) = class_list(event, configured, &images)?;
    let decided = {
        let (classes, ctx) = (classes.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || decide_all(images, &classes, &ctx))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    };

    // Write every mask (concurrently), then answer in payload order.
    let opts = PutOptions {
        content_type: Some("image/png"),
        kms_key_id: event.kms_key_id.clone(),
    };
    let mut writes = tokio::task::JoinSet::new();
    let mut written = Vec::new();
    for (image, decision) in decided {
        let mut outcome = match decision {
            Decision::Consolidated(o) => o,
            Decision::EncodingFailed(cause) => {
                return Err(BatchError::Encode {
                    id: image.id,
                    cause,
                });
            }
            Decision::NoUsableAnswer(excluded) => {
                error!(dataset_object_id = %image.id, workers = image.workers.len(),
                       excluded = ?excluded.iter().map(|e| format!("{}: {}", e.worker_id, e.reason)).collect::<Vec<_>>(),
                       "image left out of the response (Ground Truth marks it failed): no usable worker answer");
                continue;
            }
        };
        let mask_uri = output.join(&format!("{OUTPUT_FOLDER}/{}", image.file));
        let map_uri = output.join(&format!("{DISAGREEMENT_FOLDER}/{}", image.file));
        outcome.report.disagreement_ref = map_uri.to_string();
        for (uri, png) in [
            (mask_uri.clone(), std::mem::take(&mut outcome.png)),
            (map_uri, std::mem::take(&mut outcome.disagreement_png)),
        ] {
            while writes.len() >= IO_CONCURRENCY {
                join_next(&mut writes).await.unwrap_or(Ok(()))?;
            }
            let (store, opts, id) = (store.clone(), opts.clone(), image.id.clone());
            writes.spawn(async move {
                store
                    .put(&uri, png, &opts)
                    .await
                    .map_err(|e| BatchError::Write {
                        id,
                        cause: Box::new(e),
                    })
            });
        }
        written.push(WrittenImage {
            id: image.id,
            mask_uri,
            outcome,
        });
    }
    while !writes.is_empty() {
        join_next(&mut writes).await.unwrap_or(Ok(()))?;
    }

    let job_name = job_name(&event.labeling_job_arn);
    let facts = BatchFacts {
        label_attribute_name: &event.label_attribute_name,
        classes: &classes,
        warnings: &warnings,
        job_name: &job_name,
        creation_date: &ctx.creation_date,
    };
    let mut response = Vec::with_capacity(written.len());
    for image in &written {
        let (id, outcome) = (&image.id, &image.outcome);
        for e in &outcome.excluded {
            warn!(dataset_object_id = %id, worker_id = %e.worker_id, reason = %e.reason, "worker answer excluded from the vote");
        }
        info!(dataset_object_id = %id, workers = outcome.included.len(), excluded = outcome.excluded.len(),
              confidence = outcome.confidence, pixels = outcome.pixels, unmapped = outcome.unmapped,
              mask = %image.mask_uri, "image consolidated");
        response.push(response_item(facts, image));
    }
    Ok(response)
}

/// The payload's items that can be answered, each with its mask's file name: unreadable
/// items, repeated ids and ids no key can be made from are logged and left out.
fn unique_items(items: &[Value]) -> Vec<(PayloadItem, String)> {
    let mut unique = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let item: PayloadItem = match from_value("a payload item", item) {
            Ok(it) => it,
            Err(e) => {
                error!(payload_index = i, error = %e, "payload item skipped: it cannot be read, so it cannot be answered");
                continue;
            }
        };
        if !seen.insert(item.dataset_object_id.clone()) {
            // Both would write the same key; keeping the first keeps retries deterministic.
            error!(dataset_object_id = %item.dataset_object_id, payload_index = i,
                   "duplicate datasetObjectId in the payload: only its first occurrence is consolidated");
            continue;
        }
        let Ok(file) = object_file_name(&item.dataset_object_id) else {
            error!(dataset_object_id = %item.dataset_object_id, payload_index = i,
                   "image skipped: its datasetObjectId is empty or longer than 512 bytes");
            continue;
        };
        unique.push((item, file));
    }
    unique
}

/// The next finished task of `tasks` (`None` when there is none). A task that panicked
/// panics here too, so no image or write can vanish silently.
pub(crate) async fn join_next<T: 'static>(tasks: &mut tokio::task::JoinSet<T>) -> Option<T> {
    match tasks.join_next().await? {
        Ok(v) => Some(v),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Decides every image on `ctx.parallelism` threads; results in input order.
///
/// With the weighted algorithm, every image is first decoded once for its census, the crowd
/// model is fitted to the whole batch, and the images are then decoded again into the vote.
fn decide_all(
    images: Vec<ImageInput>,
    classes: &ClassList,
    ctx: &BatchContext,
) -> Vec<(ImageInput, Decision)> {
    // Spare cores (fewer images than threads) decode an image's workers in parallel.
    let threads = (ctx.parallelism / images.len().max(1)).max(1);
    let with = DecideWith {
        classes,
        model: None,
        algorithm: ctx.algorithm,
        low_agreement_threshold: ctx.low_agreement_threshold,
        threads,
    };
    let select = |image| select(image, classes, ctx.limits.max_pixels);
    let decisions = match ctx.algorithm {
        // One pass, each image checked and decided on the same thread.
        Algorithm::Majority => par_map(images.iter().collect(), ctx.parallelism, |image| {
            decide_image(select(image), with)
        }),
        Algorithm::Weighted => {
            let counted = par_map(images.iter().collect(), ctx.parallelism, |image| {
                let mut sel = select(image);
                let census = match sel.decode_until_ok(|cands| census(cands, threads)) {
                    Ok(c) => c,
                    Err(never) => match never {},
                };
                if let Some(c) = census.as_ref().filter(|c| c.overflow() > 0) {
                    warn!(dataset_object_id = %image.id, pixels = c.overflow(),
                          "weighted fusion: this image's workers disagree in more combinations than the census keeps; those pixels still vote but do not inform the model");
                }
                (sel, census.map(|c| c.patterns()))
            });
            let votes: Vec<ImageVotes<'_>> = counted
                .iter()
                .filter_map(|(sel, patterns)| {
                    Some(ImageVotes {
                        workers: worker_ids(&sel.cands),
                        patterns: patterns.as_deref()?,
                    })
                })
                .collect();
            let model = CrowdModel::fit(classes.num_classes(), &votes);
            info!(
                workers = model.worker_count(),
                combinations = votes.iter().map(|v| v.patterns.len()).sum::<usize>(),
                iterations = model.iterations,
                "crowd model fitted to the batch"
            );
            let with = DecideWith {
                model: Some(&model),
                ..with
            };
            par_map(counted, ctx.parallelism, |(sel, _)| decide_image(sel, with))
        }
    };
    images.into_iter().zip(decisions).collect()
}

/// `outputConfig`, or the payload URI cut at `/consolidated-annotation/`.
fn output_prefix(event: &ConsolidationEvent, payload: &S3Uri) -> Result<S3Uri, BatchError> {
    match &event.output_config {
        Some(o) => S3Uri::parse(o.trim_end_matches('/')).map_err(BatchError::OutputConfig),
        None => {
            let s = payload.to_string();
            let cut = s
                .find("/consolidated-annotation/")
                .ok_or_else(|| BatchError::NoOutputConfig(s.clone()))?;
            S3Uri::parse(&s[..cut]).map_err(BatchError::OutputConfig)
        }
    }
}

/// The batch's class list and any warning about where it came from.
fn class_list(
    event: &ConsolidationEvent,
    configured: Option<Configured>,
    images: &[ImageInput],
) -> Result<(ClassList, Vec<String>), BatchError> {
    if let Some(cats) = event.label_categories.as_deref().filter(|c| !c.is_empty()) {
        return Ok((
            ClassList::from_categories(cats).map_err(BatchError::Labels)?,
            Vec::new(),
        ));
    }
    let why = match configured {
        Some(Configured::Labels(l)) => return Ok((l.classes.clone(), Vec::new())),
        Some(Configured::Unknown(why)) => why,
        None => "the event has no labelCategories".to_owned(),
    };
    let used: BTreeSet<&str> = images
        .iter()
        .flat_map(|i| &i.workers)
        .filter_map(|w| w.answer.as_ref().ok())
        .flat_map(|a| a.label_mappings.keys().map(String::as_str))
        .collect();
    let classes = ClassList::new(used.iter().copied()).map_err(|e| match e {
        LabelError::Empty => BatchError::NoLabels,
        other => BatchError::Labels(other),
    })?;
    let w = format!(
        "no label list ({why}): classes are the sorted union of the labels the workers used, so class indices may differ between batches"
    );
    warn!("{w}");
    Ok((classes, vec![w]))
}
