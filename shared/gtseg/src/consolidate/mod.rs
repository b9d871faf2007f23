//! One consolidation batch against a store: read the payload as it arrives, decide each image
//! (its class list, its vote), write its mask and disagreement map under
//! `<outputConfig>/consolidated-annotation/`, and build Ground Truth's response.
//!
//! A broken answer is excluded with its reason; a broken image is left out of the response;
//! an event or payload that cannot be read, a failure to read an answer that is not the
//! answer's own fault, and a failed write fail the batch, so that Ground Truth retries it.
//!
//! Memory does not grow with the batch: the payload is split into items as it is read, and a
//! few images are in flight at once, within the budget of `budget`. The concerns live in the
//! children: `payload` (the payload's items), `batch` (the scheduler: images read and handed
//! to tasks within the budget), `read` (an image's answers, inline or from the store),
//! `answer` (one answer: its parsing, its checks, why it is excluded), `select` (an image's
//! candidates), `decode` (worker PNGs in lockstep), `image` (one image's vote, encoders and
//! agreement), `crowd` (the weighted fusion's first pass: censuses and the crowd model),
//! `retained` (masks kept between the weighted fusion's passes), `verification` (images
//! whose answers are categories, not masks), `budget` (threads and memory), `response` (the
//! response items and their extras) and `names` (keys, job names, dates). Imports go one
//! way: `answer` imports no sibling, `read` only `answer` and `payload`, `select` only
//! `answer` and `read`, `decode` only `answer` and `select`, `image` only those; `batch`,
//! `crowd` and `verification` sit on top. No two children import each other.

mod answer;
mod batch;
mod budget;
mod crowd;
mod decode;
mod image;
mod names;
mod payload;
mod read;
mod response;
mod retained;
mod select;
mod verification;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tracing::{error, info, warn};

pub use answer::{Exclusion, ParsedAnswer, decode_answer_json, parse_answer};
pub use names::{InvalidId, MAX_FILE_NAME, format_creation_date, job_name, object_file_name};
pub use response::{ExtrasError, with_extras};

use crate::category;
use crate::config::{Algorithm, Limits};
use crate::event::{ConsolidationEvent, ConsolidationResponseItem};
use crate::fusion::{CrowdModel, MAX_BATCH_VOTES};
use crate::labels::{BACKGROUND, ClassList, LabelError, MAX_LABELS};
use crate::logs::Escaped;
use crate::resolve::{Configured, LabelsError};
use crate::store::{ObjectStore, PutOptions, StoreError};
use crate::uri::{S3Uri, UriError};
use batch::{Batch, estimate};
use budget::Budget;
use crowd::{VoteShare, retained_allowance};
use image::{DecideWith, Decision, decide_image};
use read::{Answer, ImageInput, ImageKind};
use response::{BatchFacts, WrittenImage, response_item};
use retained::Retained;
use select::select;
use verification::Ballots;

/// The folder under `outputConfig` where consolidated masks go.
pub const OUTPUT_FOLDER: &str = "consolidated-annotation/output";

/// The folder under `outputConfig` where disagreement maps go.
pub const DISAGREEMENT_FOLDER: &str = "consolidated-annotation/disagreement";

/// The folder under `outputConfig` where an image's extras go when the response would be too
/// large to carry them.
pub const REPORT_FOLDER: &str = "consolidated-annotation/report";

/// The largest response returned: Lambda's 6 MB, less room for its own envelope.
pub const MAX_RESPONSE_BYTES: usize = 6_000_000;

/// S3's longest key.
const MAX_KEY: usize = 1024;

/// Why the whole batch failed: nothing could be done, something could not be read for a
/// reason that is not an answer's fault, or a mask could not be written.
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
    #[error("the payload {uri} cannot be read as a batch: {what}")]
    PayloadNotArray {
        /// The payload's URI.
        uri: String,
        /// What is wrong.
        what: String,
    },
    /// A worker's answer could not be read, and not through the answer's fault.
    #[error(
        "image `{id}`, worker `{worker}`: its answer could not be read, so the batch fails rather than lose it: {cause}"
    )]
    AnswerRead {
        /// The image's `datasetObjectId`.
        id: String,
        /// The worker.
        worker: String,
        /// What the store said.
        cause: Box<StoreError>,
    },
    /// `labelCategories` of the event cannot be a class list.
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
    /// Even without their extras, the batch's response items are over Lambda's limit.
    #[error(
        "the response for {images} images is {bytes} bytes even without the optional extras, over the limit of {MAX_RESPONSE_BYTES}; make the job's batches smaller"
    )]
    ResponseTooLarge {
        /// Images in the response.
        images: usize,
        /// The response's size.
        bytes: usize,
    },
    /// `outputConfig` is so long that a mask's key could pass S3's 1024 bytes.
    #[error(
        "outputConfig {prefix} is too long: keys under it could be {longest} bytes, over S3's 1024"
    )]
    KeyTooLong {
        /// The output prefix.
        prefix: String,
        /// The longest key it could give.
        longest: usize,
    },
    /// A mask or map could not be encoded.
    #[error("image `{id}`: encoding its mask failed: {cause}")]
    Encode {
        /// The image's `datasetObjectId`.
        id: String,
        /// What the encoder said.
        cause: crate::mask::EncodeError,
    },
}

/// Everything a batch needs besides the store.
#[derive(Debug, Clone)]
pub(crate) struct BatchContext {
    /// Bounds on hostile input.
    pub(crate) limits: Limits,
    /// `CONSOLIDATION_ALGORITHM`.
    pub(crate) algorithm: Algorithm,
    /// The `creation-date` to stamp (the clock is read at the edge).
    pub(crate) creation_date: String,
    /// Mean pairwise agreement below which an image is flagged `low-agreement`.
    pub(crate) low_agreement_threshold: f64,
    /// CPU threads for decoding; Lambda gives more vCPUs with more memory, and every one is
    /// used.
    pub(crate) parallelism: usize,
    /// The function's memory, in bytes.
    pub(crate) memory_bytes: u64,
    /// For the weighted fusion: a crowd model fitted beyond this batch (a whole job's), used
    /// instead of fitting one to the batch.
    pub(crate) model: Option<Arc<CrowdModel>>,
}

/// One image's census for a crowd model fitted beyond one batch: its workers and the
/// combinations of their votes.
pub type ImageCensus = (Vec<String>, crate::fusion::Combinations);

/// Consolidates one batch: the response items, in payload order, of the images that had at
/// least one usable answer. Every mask is written before the response is returned, so it
/// never claims a mask that is not there.
///
/// `job_labels` finds the pinned or the job's label list; it is awaited only when the event
/// has no `labelCategories`, once the payload can be read.
pub(crate) async fn consolidate_batch<S: ObjectStore>(
    store: &S,
    ctx: &BatchContext,
    event: &ConsolidationEvent,
    job_labels: impl Future<Output = Result<Configured, LabelsError>>,
) -> Result<Vec<ConsolidationResponseItem>, BatchError> {
    let (batch, output, classes, warnings) = open_batch(store, ctx, event, job_labels).await?;
    let (model, retained) = match (ctx.algorithm, &ctx.model) {
        (Algorithm::Majority, _) => (None, HashMap::new()),
        (Algorithm::Weighted, Some(model)) => (Some(Arc::clone(model)), HashMap::new()),
        (Algorithm::Weighted, None) => {
            let share = VoteShare::Shared(Arc::new(AtomicUsize::new(MAX_BATCH_VOTES)));
            let keep = retained_allowance(ctx.memory_bytes);
            let (model, retained) = crowd::fit(&batch, &classes, share, keep).await?;
            (Some(Arc::new(model)), retained)
        }
    };
    let vote = Arc::new(Vote {
        classes: classes.clone(),
        model,
        retained: std::sync::Mutex::new(retained),
        output: output.clone(),
        opts: PutOptions {
            content_type: Some("image/png"),
            kms_key_id: event.kms_key_id.clone(),
        },
    });
    let done = batch
        .each_image(move |b, image| {
            let vote = Arc::clone(&vote);
            async move {
                match image.kind() {
                    ImageKind::Masks => Ok(vote.image(&b, image).await?.map(Done::Mask)),
                    ImageKind::Categories => Ok(Some(Done::Verification(Ballots::of(
                        image,
                        &vote.classes,
                    )))),
                    ImageKind::Mixed { masks, categories } => {
                        error!(dataset_object_id = %Escaped(&image.id), masks, categories,
                               "image left out of the response (Ground Truth marks it failed): as many of its answers are masks as are verification categories, so neither rule can decide it");
                        Ok(None)
                    }
                }
            }
        })
        .await?;

    // Verification images are decided together: the workers' reliabilities come from the
    // whole batch.
    let ballots: Vec<Vec<category::Ballot<'_>>> = done
        .iter()
        .flatten()
        .filter_map(|d| match d {
            Done::Verification(b) => Some(b.ballots()),
            Done::Mask(_) => None,
        })
        .collect();
    let fit = category::consolidate(classes.labels().len(), &ballots);
    if !ballots.is_empty() {
        info!(
            images = ballots.len(),
            workers = fit.reliability.len(),
            iterations = fit.iterations,
            "verification answers merged over the batch"
        );
    }
    drop(ballots);

    let job_name = job_name(&event.labeling_job_arn);
    let facts = BatchFacts {
        label_attribute_name: &event.label_attribute_name,
        classes: &classes,
        warnings: &warnings,
        job_name: &job_name,
        creation_date: &ctx.creation_date,
    };
    let mut verdicts = fit.verdicts.iter();
    let mut items: Vec<ConsolidationResponseItem> = Vec::new();
    for d in done.iter().flatten() {
        match d {
            Done::Mask(image) => items.push(response_item(facts, image)),
            Done::Verification(image) => match verdicts.next().and_then(Option::as_ref) {
                Some(verdict) => {
                    info!(dataset_object_id = %Escaped(&image.id), workers = image.included.len(),
                          excluded = image.excluded.len(), category = verdict.category,
                          confidence = verdict.confidence, rule = verdict.rule.name(),
                          "image verified");
                    items.push(verification::response_item(facts, image, verdict, &fit));
                }
                None => {
                    error!(dataset_object_id = %Escaped(&image.id),
                           excluded = ?image.excluded.iter().map(|e| format!("{}: {}", Escaped(&e.worker_id), Escaped(&e.reason))).collect::<Vec<_>>(),
                           "image left out of the response (Ground Truth marks it failed): no usable verification answer");
                }
            },
        }
    }
    let naming = (
        event.label_attribute_name.as_str(),
        event.kms_key_id.as_deref(),
    );
    fit_response(store, &output, naming, &mut items).await?;
    Ok(items)
}

/// The weighted fusion's first pass alone: every mask image's census, for a crowd model
/// fitted over more than one batch (a whole job). Each image's census keeps at most
/// `per_image` votes, so that what the model sees does not depend on the order in which
/// images finish.
pub(crate) async fn census_batch<S: ObjectStore>(
    store: &S,
    ctx: &BatchContext,
    event: &ConsolidationEvent,
    job_labels: impl Future<Output = Result<Configured, LabelsError>>,
    per_image: usize,
) -> Result<(usize, Vec<ImageCensus>), BatchError> {
    let (batch, _, classes, _) = open_batch(store, ctx, event, job_labels).await?;
    let counted = crowd::censuses(&batch, &classes, VoteShare::PerImage(per_image), 0).await?;
    let images = counted
        .into_iter()
        .flatten()
        .map(|(_, workers, patterns, _)| (workers, patterns))
        .collect();
    Ok((classes.num_classes(), images))
}

/// The batch opened: its output prefix checked, its payload opened, its class list found.
async fn open_batch<S: ObjectStore>(
    store: &S,
    ctx: &BatchContext,
    event: &ConsolidationEvent,
    job_labels: impl Future<Output = Result<Configured, LabelsError>>,
) -> Result<(Arc<Batch<S>>, S3Uri, ClassList, Vec<String>), BatchError> {
    let payload = S3Uri::parse(&event.payload.s3_uri).map_err(BatchError::PayloadUri)?;
    let output = output_prefix(event, &payload)?;
    // Every key is the prefix, a folder and a name of at most MAX_FILE_NAME bytes: within
    // S3's limit whatever the ids, or refused here.
    let longest = output.key().len()
        + 1
        + REPORT_FOLDER.len().max(DISAGREEMENT_FOLDER.len())
        + 1
        + names::MAX_FILE_NAME;
    if longest > MAX_KEY {
        return Err(BatchError::KeyTooLong {
            prefix: output.to_string(),
            longest,
        });
    }
    let batch = Arc::new(Batch {
        store: store.clone(),
        ctx: ctx.clone(),
        payload,
        budget: Arc::new(Budget::new(ctx.parallelism, ctx.memory_bytes)),
        opened: std::sync::Mutex::new(None),
    });
    // Fail on a payload that cannot be opened before asking anyone for labels; the first
    // pass over the batch reads on from there.
    let first = batch.open().await?;
    *batch
        .opened
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(first);

    let categories = event.label_categories.as_deref().filter(|c| !c.is_empty());
    let (classes, warnings) = match categories {
        Some(cats) => (
            ClassList::from_categories(cats).map_err(BatchError::Labels)?,
            Vec::new(),
        ),
        None => match job_labels.await.map_err(BatchError::JobLabels)? {
            Configured::Labels(l) => (l.classes.clone(), Vec::new()),
            Configured::Unknown(why) => workers_labels(&batch, &why).await?,
        },
    };
    Ok((batch, output, classes, warnings))
}

/// What the batch's pass did with one image.
#[derive(Debug)]
enum Done {
    /// Its masks were voted and written.
    Mask(WrittenImage),
    /// Its categories wait for the batch-wide verification rule.
    Verification(Ballots),
}

/// Keeps the response within Lambda's limit: when it would be larger, every image's optional
/// extras (the agreement report, the excluded workers, the warnings) move to a JSON object
/// beside its mask, named in the metadata as `report-ref`; when that is not enough, the
/// verification votes and comments move too. When even the required fields are too large,
/// the batch fails and says so.
async fn fit_response<S: ObjectStore>(
    store: &S,
    output: &S3Uri,
    (attr, kms_key_id): (&str, Option<&str>),
    items: &mut [ConsolidationResponseItem],
) -> Result<(), BatchError> {
    let size = |items: &[ConsolidationResponseItem]| {
        serde_json::to_vec(items).map_or(usize::MAX, |v| v.len())
    };
    if size(items) <= MAX_RESPONSE_BYTES {
        return Ok(());
    }
    let report_of = |id: &str| {
        let file = object_file_name(id)
            .map(|f| f.trim_end_matches(".png").to_owned() + ".json")
            .unwrap_or_default();
        output.join(&format!("{REPORT_FOLDER}/{file}"))
    };
    // The first tier that fits (measured on a copy), else the last.
    let tier = response::EXTRAS
        .iter()
        .find(|keys| {
            let mut trial = items.to_vec();
            for item in &mut trial {
                let report = report_of(&item.dataset_object_id);
                response::take_extras(item, attr, &report, keys);
            }
            size(&trial) <= MAX_RESPONSE_BYTES
        })
        .unwrap_or(&response::EXTRAS[response::EXTRAS.len() - 1]);
    let opts = PutOptions {
        content_type: Some("application/json"),
        kms_key_id: kms_key_id.map(str::to_owned),
    };
    for item in items.iter_mut() {
        let uri = report_of(&item.dataset_object_id);
        if let Some(extras) = response::take_extras(item, attr, &uri, tier) {
            store
                .put(&uri, extras, &opts)
                .await
                .map_err(|e| BatchError::Write {
                    id: item.dataset_object_id.clone(),
                    cause: Box::new(e),
                })?;
        }
    }
    let bytes = size(items);
    if bytes > MAX_RESPONSE_BYTES {
        return Err(BatchError::ResponseTooLarge {
            images: items.len(),
            bytes,
        });
    }
    info!(
        images = items.len(),
        bytes,
        moved = ?tier,
        "the metadata's optional keys moved to report objects to fit Lambda's limit"
    );
    Ok(())
}

/// The sorted union of the labels the workers used (when there is no label list at all),
/// with the warning that says so. A worker whose labels cannot be classes (more than 254,
/// an empty name, `BACKGROUND`), or would make the union more than 254, is left out of it,
/// so its answer is excluded when its image is decided; the others still decide.
async fn workers_labels<S: ObjectStore>(
    batch: &Arc<Batch<S>>,
    why: &str,
) -> Result<(ClassList, Vec<String>), BatchError> {
    let per_image = batch
        .each_image(|_, image| async move {
            Ok(image
                .workers
                .into_iter()
                .filter_map(|w| match w.answer {
                    Ok(Answer::Mask(a)) => Some(a.answer.label_mappings.into_keys().collect()),
                    Ok(Answer::Category(c)) => Some(vec![c.label]),
                    Err(_) => None,
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let mut union: BTreeSet<String> = BTreeSet::new();
    for labels in per_image.into_iter().flatten() {
        let usable =
            labels.len() <= MAX_LABELS && labels.iter().all(|l| !l.is_empty() && l != BACKGROUND);
        let grown = labels.iter().filter(|l| !union.contains(*l)).count();
        if usable && union.len() + grown <= MAX_LABELS {
            union.extend(labels);
        }
    }
    let classes = ClassList::new(union).map_err(|e| match e {
        LabelError::Empty => BatchError::NoLabels,
        other => BatchError::Labels(other),
    })?;
    let w = format!(
        "no label list ({why}): classes are the sorted union of the labels the workers used, so class indices may differ between batches"
    );
    warn!("{w}");
    Ok((classes, vec![w]))
}

/// What every image's vote shares.
#[derive(Debug)]
struct Vote {
    classes: ClassList,
    model: Option<Arc<CrowdModel>>,
    /// The masks the weighted fusion's first pass kept, by image id (taken as used).
    retained: std::sync::Mutex<HashMap<String, Retained>>,
    output: S3Uri,
    opts: PutOptions,
}

impl Vote {
    /// Decides one image and writes its mask and map; `None` when no answer is usable (the
    /// image is left out, and logged).
    async fn image<S: ObjectStore>(
        self: &Arc<Self>,
        batch: &Arc<Batch<S>>,
        image: ImageInput,
    ) -> Result<Option<WrittenImage>, BatchError> {
        let ctx = &batch.ctx;
        let need = image.bytes() + estimate(&image);
        let (vote, algorithm, threshold, max_pixels) = (
            Arc::clone(self),
            ctx.algorithm,
            ctx.low_agreement_threshold,
            ctx.limits.max_pixels,
        );
        let (id, file, workers) = (image.id.clone(), image.file.clone(), image.workers.len());
        let kept = self
            .retained
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        let decision = batch
            .budget
            .run(need, move |threads| {
                let with = DecideWith {
                    classes: &vote.classes,
                    model: vote.model.as_deref(),
                    algorithm,
                    low_agreement_threshold: threshold,
                    threads,
                    retained: kept.as_ref(),
                };
                decide_image(select(&image, &vote.classes, max_pixels), with)
            })
            .await;
        let mut outcome = match decision {
            Decision::Consolidated(o) => o,
            Decision::EncodingFailed(cause) => return Err(BatchError::Encode { id, cause }),
            Decision::NoUsableAnswer(excluded) => {
                error!(dataset_object_id = %Escaped(&id), workers,
                       excluded = ?excluded.iter().map(|e| format!("{}: {}", Escaped(&e.worker_id), Escaped(&e.reason))).collect::<Vec<_>>(),
                       "image left out of the response (Ground Truth marks it failed): no usable worker answer");
                return Ok(None);
            }
        };
        let mask_uri = self.output.join(&format!("{OUTPUT_FOLDER}/{file}"));
        let map_uri = self.output.join(&format!("{DISAGREEMENT_FOLDER}/{file}"));
        outcome.report.disagreement_ref = map_uri.to_string();
        let (mask, map) = (
            std::mem::take(&mut outcome.png),
            std::mem::take(&mut outcome.disagreement_png),
        );
        let write = |uri: S3Uri, png: Vec<u8>| {
            let (store, opts, id) = (batch.store.clone(), self.opts.clone(), id.clone());
            async move {
                store
                    .put(&uri, png, &opts)
                    .await
                    .map_err(|e| BatchError::Write {
                        id,
                        cause: Box::new(e),
                    })
            }
        };
        let (a, b) = tokio::join!(write(mask_uri.clone(), mask), write(map_uri, map));
        a?;
        b?;
        for e in &outcome.excluded {
            warn!(dataset_object_id = %Escaped(&id), worker_id = %Escaped(&e.worker_id), reason = %Escaped(&e.reason), "worker answer excluded from the vote");
        }
        info!(dataset_object_id = %Escaped(&id), workers = outcome.included.len(), excluded = outcome.excluded.len(),
              confidence = outcome.confidence, pixels = outcome.pixels, unmapped = outcome.unmapped,
              mask = %mask_uri, "image consolidated");
        Ok(Some(WrittenImage {
            id,
            mask_uri,
            outcome,
        }))
    }
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
