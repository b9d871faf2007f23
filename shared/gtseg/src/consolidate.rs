//! Orchestration of one consolidation batch against a store (SPEC §3).
//!
//! Reads the payload and the worker answers, decides the class list, turns each answer into a
//! class mask, votes, writes one palette PNG per image under
//! `<outputConfig>/consolidated-annotation/output/`, and builds Ground Truth's response.
//! A broken answer is excluded with its reason; a broken image is left out of the response;
//! only an unreadable event or payload, or a failed write, fails the batch.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Map, Value};
use tracing::{error, info, warn};

use crate::agreement::{AgreementCounts, AgreementTally, disagreement_table};
use crate::config::{Algorithm, Limits};
use crate::event::{
    AnnotationData, ColorMapEntry, ConsolidatedAnnotation, ConsolidationEvent, ConsolidationReport,
    ConsolidationResponseItem, ExcludedWorker, PayloadItem, SEGMENTATION_TYPE,
    SegmentationMetadata, ShapeError, WorkerAnswer, WorkerReport, find_answer_object, from_slice,
    from_value,
};
use crate::labels::{ClassList, LabelError, Rgb, assign_palette};
use crate::mask::{
    ClassMask, ColorLookup, GreyRowEncoder, MaskError, MaskReader, PaletteRowEncoder, Run,
    decode_class_mask, png_dimensions,
};
use crate::store::{ObjectStore, PutOptions, StoreError};
use crate::uri::{S3Uri, UriError};
use crate::vote::{Fusion, Majority, RowFuser, Rows, confidence, stream_windows};
use crate::weighted::{Census, CrowdModel, ImageVotes};

/// The folder under `outputConfig` where consolidated masks go.
pub const OUTPUT_FOLDER: &str = "consolidated-annotation/output";
/// The folder under `outputConfig` where disagreement maps go.
pub const DISAGREEMENT_FOLDER: &str = "consolidated-annotation/disagreement";

/// Why the whole batch failed: nothing could be done, or a mask could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("payload.s3Uri is unusable: {0}")]
    PayloadUri(#[source] UriError),
    #[error("outputConfig is unusable: {0}")]
    OutputConfig(#[source] UriError),
    #[error(
        "the event has no outputConfig and payload URI {0} has no `/consolidated-annotation/` segment to derive it from; set outputConfig"
    )]
    NoOutputConfig(String),
    #[error("cannot read the payload: {0}")]
    PayloadRead(#[source] Box<StoreError>),
    #[error(transparent)]
    PayloadShape(ShapeError),
    #[error("labelCategories of the event is unusable: {0}")]
    Labels(#[source] LabelError),
    #[error(
        "no image of the batch has a usable answer, so the class list cannot be derived from them; set labelCategories or LABEL_CATEGORY_CONFIG"
    )]
    NoLabels,
    #[error(
        "image `{id}`: writing its mask failed, so the batch fails rather than claim it: {source}"
    )]
    Write {
        id: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("image `{id}`: encoding its mask failed: {source}")]
    Encode {
        id: String,
        #[source]
        source: png::EncodingError,
    },
}

/// Why one worker answer was left out of the vote. The text goes into the metadata.
#[derive(Debug, thiserror::Error)]
pub enum Exclusion {
    #[error("annotationData has neither `content` nor `s3Uri`")]
    NoData,
    #[error("annotation s3Uri is unusable: {0}")]
    BadUri(#[source] UriError),
    #[error("the annotation object could not be read: {0}")]
    Unreadable(#[source] StoreError),
    #[error("the answer is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the answer has no object holding `labeledImage` (not a semantic-segmentation answer)")]
    NoAnswerObject,
    #[error(transparent)]
    Shape(ShapeError),
    #[error("labelMappings names label `{0}`, which is not in the job's label list")]
    UnknownLabel(String),
    #[error("labelMappings gives label `{label}` the colour {color:?}, which is not #rrggbb")]
    BadColor { label: String, color: String },
    #[error(
        "labelMappings gives labels `{a}` and `{b}` the same colour {color}, so its pixels are ambiguous"
    )]
    SharedColor { a: String, b: String, color: Rgb },
    #[error("pngImageData is not valid base64: {0}")]
    Base64(#[source] base64::DecodeError),
    #[error("pngImageData: {0}")]
    Mask(#[source] MaskError),
    #[error("the PNG is {png_w}×{png_h} but inputImageProperties says {w}×{h}")]
    PropsMismatch {
        png_w: u32,
        png_h: u32,
        w: u32,
        h: u32,
    },
    #[error("the PNG is {w}×{h} but the other workers' masks are {ref_w}×{ref_h}")]
    SizeMismatch {
        w: u32,
        h: u32,
        ref_w: u32,
        ref_h: u32,
    },
    #[error("more than {0} answers for this image (MAX_ANSWERS_PER_IMAGE); this one was not used")]
    TooManyAnswers(usize),
}

/// One worker's answer after reading, before decoding.
#[derive(Debug)]
struct WorkerInput {
    worker_id: String,
    answer: Result<WorkerAnswer, Exclusion>,
}

/// One image of the payload after reading.
#[derive(Debug)]
struct ImageInput {
    id: String,
    /// The mask's file name, from the id (see [`object_file_name`]).
    file: String,
    workers: Vec<WorkerInput>,
}

/// A consolidated image, ready to be written.
#[derive(Debug)]
struct ImageOutcome {
    png: Vec<u8>,
    disagreement_png: Vec<u8>,
    /// The agreement report, without `disagreement-ref` (known once the key is).
    report: ConsolidationReport,
    palette: Vec<Rgb>,
    confidence: f64,
    included: Vec<String>,
    excluded: Vec<ExcludedWorker>,
    pixels: u64,
    unmapped: u64,
}

/// Everything a batch needs besides the store.
#[derive(Debug, Clone)]
pub struct BatchContext {
    pub limits: Limits,
    /// `CONSOLIDATION_ALGORITHM`.
    pub algorithm: Algorithm,
    /// The labels from `LABEL_CATEGORY_CONFIG`, when configured.
    pub configured_labels: Option<ClassList>,
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

/// What deciding one image gave: an outcome to write, or the exclusions of every answer.
type Decision = Result<Result<ImageOutcome, png::EncodingError>, Vec<ExcludedWorker>>;

/// Consolidates one batch: the response items, in payload order, of the images that had at
/// least one usable answer.
///
/// Three phases: the answers are fetched concurrently; the images are decided in parallel on
/// blocking threads; the masks are written concurrently. The response is built only when
/// every mask is written, so it never claims a mask that is not there.
pub async fn consolidate_batch<S: ObjectStore>(
    store: &S,
    ctx: &BatchContext,
    event: &ConsolidationEvent,
) -> Result<Vec<ConsolidationResponseItem>, BatchError> {
    let payload_uri = S3Uri::parse(&event.payload.s3_uri).map_err(BatchError::PayloadUri)?;
    let output = output_prefix(event, &payload_uri)?;
    let bytes = store
        .get(&payload_uri, ctx.limits.max_payload_bytes)
        .await
        .map_err(|e| BatchError::PayloadRead(Box::new(e)))?;
    let items: Vec<Value> = from_slice("the payload", &bytes).map_err(BatchError::PayloadShape)?;
    drop(bytes);

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
    drop(items);
    let images = read_images(store, ctx.limits, unique).await;

    let (classes, warnings) = class_list(event, ctx.configured_labels.as_ref(), &images)?;
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
    let mut pending = Vec::new();
    for (image, decision) in decided {
        let mut outcome = match decision {
            Ok(o) => o.map_err(|source| BatchError::Encode {
                id: image.id.clone(),
                source,
            })?,
            Err(excluded) => {
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
                        source: Box::new(e),
                    })
            });
        }
        pending.push((image.id, mask_uri, outcome));
    }
    while !writes.is_empty() {
        join_next(&mut writes).await.unwrap_or(Ok(()))?;
    }

    let job_name = job_name(&event.labeling_job_arn);
    let mut response = Vec::with_capacity(pending.len());
    for (id, mask_uri, outcome) in pending {
        for e in &outcome.excluded {
            warn!(dataset_object_id = %id, worker_id = %e.worker_id, reason = %e.reason, "worker answer excluded from the vote");
        }
        info!(dataset_object_id = %id, workers = outcome.included.len(), excluded = outcome.excluded.len(),
              confidence = outcome.confidence, pixels = outcome.pixels, unmapped = outcome.unmapped,
              mask = %mask_uri, "image consolidated");
        response.push(response_item(
            event,
            &id,
            &mask_uri,
            &classes,
            &outcome,
            &warnings,
            &job_name,
            &ctx.creation_date,
        ));
    }
    Ok(response)
}

/// The next finished task of `tasks` (`None` when there is none). A task that panicked
/// panics here too, so no image or write can vanish silently.
async fn join_next<T: 'static>(tasks: &mut tokio::task::JoinSet<T>) -> Option<T> {
    match tasks.join_next().await? {
        Ok(v) => Some(v),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Reads every image's answers, several images at once, keeping payload order.
async fn read_images<S: ObjectStore>(
    store: &S,
    limits: Limits,
    items: Vec<(PayloadItem, String)>,
) -> Vec<ImageInput> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut slots: Vec<Option<ImageInput>> = (0..items.len()).map(|_| None).collect();
    for (i, (item, file)) in items.into_iter().enumerate() {
        while tasks.len() >= IO_CONCURRENCY {
            if let Some((k, img)) = join_next(&mut tasks).await {
                slots[k] = Some(img);
            }
        }
        let store = store.clone();
        tasks.spawn(async move { (i, read_image(&store, &limits, item, file).await) });
    }
    while let Some((k, img)) = join_next(&mut tasks).await {
        slots[k] = Some(img);
    }
    slots.into_iter().flatten().collect()
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
    let per_image = (ctx.parallelism / images.len().max(1)).max(1);
    let select = |image| select(image, classes, ctx.limits.max_pixels);
    let decisions = match ctx.algorithm {
        // One pass, each image checked and decided on the same thread.
        Algorithm::Majority => par_map(images.iter().collect(), ctx.parallelism, |image| {
            decide_image(select(image), classes, ctx, None, per_image)
        }),
        Algorithm::Weighted => {
            let counted = par_map(images.iter().collect(), ctx.parallelism, |image| {
                let mut sel = select(image);
                let census = stream_until_decoded(&mut sel, |cands| census(cands, per_image));
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
            par_map(counted, ctx.parallelism, |(sel, _)| {
                decide_image(sel, classes, ctx, Some(&model), per_image)
            })
        }
    };
    images.into_iter().zip(decisions).collect()
}

/// `f` over every item on up to `threads` threads; results in input order. A panic in `f`
/// is re-raised here (by the thread scope).
fn par_map<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let next = AtomicUsize::new(0);
    let inputs: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let outputs: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = inputs.get(i) else { break };
                    if let Some(item) = slot.lock().ok().and_then(|mut t| t.take()) {
                        let r = f(item);
                        if let Ok(mut out) = outputs[i].lock() {
                            *out = Some(r);
                        }
                    }
                }
            });
        }
    });
    outputs
        .into_iter()
        .filter_map(|o| o.into_inner().ok().flatten())
        .collect()
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

/// Reads every answer of one image (inline or from the store) and parses it.
async fn read_image<S: ObjectStore>(
    store: &S,
    limits: &Limits,
    item: PayloadItem,
    file: String,
) -> ImageInput {
    let mut workers = Vec::with_capacity(item.annotations.len());
    for (n, ann) in item.annotations.into_iter().enumerate() {
        let answer = if n >= limits.max_answers_per_image {
            Err(Exclusion::TooManyAnswers(limits.max_answers_per_image))
        } else {
            read_answer(store, limits, &ann.annotation_data).await
        };
        workers.push(WorkerInput {
            worker_id: ann.worker_id,
            answer,
        });
    }
    ImageInput {
        id: item.dataset_object_id,
        file,
        workers,
    }
}

async fn read_answer<S: ObjectStore>(
    store: &S,
    limits: &Limits,
    data: &AnnotationData,
) -> Result<WorkerAnswer, Exclusion> {
    let fetched;
    let text: &[u8] = match (&data.content, &data.s3_uri) {
        (Some(c), _) => c.as_bytes(),
        (None, Some(u)) => {
            let uri = S3Uri::parse(u).map_err(Exclusion::BadUri)?;
            fetched = store
                .get(&uri, limits.max_payload_bytes)
                .await
                .map_err(Exclusion::Unreadable)?;
            &fetched
        }
        (None, None) => return Err(Exclusion::NoData),
    };
    parse_answer(text)
}

/// Parses a worker's answer JSON (the `content` string, or the object an `s3Uri` names) and
/// finds the answer by its shape.
pub fn parse_answer(json: &[u8]) -> Result<WorkerAnswer, Exclusion> {
    let root: Value = serde_json::from_slice(json).map_err(Exclusion::NotJson)?;
    let obj = find_answer_object(&root).ok_or(Exclusion::NoAnswerObject)?;
    from_value("the worker answer", obj).map_err(Exclusion::Shape)
}

/// A worker's answer JSON all the way to its class mask (and its count of unmapped pixels):
/// everything one answer goes through before the vote. Used by the fuzz targets.
pub fn decode_answer_json(
    json: &[u8],
    classes: &ClassList,
    max_pixels: u64,
) -> Result<(ClassMask, u64), Exclusion> {
    decode_worker(&parse_answer(json)?, classes, max_pixels)
}

/// The batch's class list and any warning about where it came from.
fn class_list(
    event: &ConsolidationEvent,
    configured: Option<&ClassList>,
    images: &[ImageInput],
) -> Result<(ClassList, Vec<String>), BatchError> {
    if let Some(cats) = event.label_categories.as_deref().filter(|c| !c.is_empty()) {
        return Ok((
            ClassList::from_categories(cats).map_err(BatchError::Labels)?,
            Vec::new(),
        ));
    }
    if let Some(c) = configured {
        return Ok((c.clone(), Vec::new()));
    }
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
    let w = "the event has no labelCategories and LABEL_CATEGORY_CONFIG is not set: classes are the sorted union of the labels the workers used, so class indices may differ between batches".to_owned();
    warn!("{w}");
    Ok((classes, vec![w]))
}

/// One image's answers after the checks that need no pixel data: the candidates for the
/// vote, and the answers excluded so far with their reasons.
struct Selection<'a> {
    image: &'a ImageInput,
    cands: Vec<Candidate<'a>>,
    excluded: Vec<ExcludedWorker>,
}

/// The candidates' worker ids, in vote order (how the crowd model knows them).
fn worker_ids<'a>(cands: &[Candidate<'a>]) -> Vec<&'a str> {
    cands.iter().map(|c| c.worker.worker_id.as_str()).collect()
}

/// Runs every check on an image's answers that needs no pixel data: labels, colours, base64,
/// PNG header, size. The reference size is the most common one (ties: the earliest worker's).
fn select<'a>(image: &'a ImageInput, classes: &ClassList, max_pixels: u64) -> Selection<'a> {
    let mut excluded = Vec::new();
    let mut cands: Vec<Candidate<'_>> = Vec::new();
    for w in &image.workers {
        let prepared = w.answer.as_ref().map_err(|e| e.to_string()).and_then(|a| {
            prepare(a, classes, max_pixels)
                .map(|Prepared { png, lookup, size }| Candidate {
                    worker: w,
                    answer: a,
                    png,
                    lookup,
                    size,
                })
                .map_err(|e| e.to_string())
        });
        match prepared {
            Ok(c) => cands.push(c),
            Err(reason) => excluded.push(ExcludedWorker {
                worker_id: w.worker_id.clone(),
                reason,
            }),
        }
    }
    let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
    for c in &cands {
        *counts.entry(c.size).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    if let Some((ref_w, ref_h)) = cands.iter().map(|c| c.size).find(|s| counts[s] == best) {
        cands.retain(|c| {
            let ok = c.size == (ref_w, ref_h);
            if !ok {
                let (w, h) = c.size;
                let reason = Exclusion::SizeMismatch { w, h, ref_w, ref_h }.to_string();
                excluded.push(ExcludedWorker {
                    worker_id: c.worker.worker_id.clone(),
                    reason,
                });
            }
            ok
        });
    }
    Selection {
        image,
        cands,
        excluded,
    }
}

/// Runs `pass` (which decodes the candidates' PNGs) until it succeeds: a PNG that turns out
/// corrupt mid-stream excludes its worker and the pass restarts without it. `None` when no
/// candidate is left.
fn stream_until_decoded<T>(
    sel: &mut Selection<'_>,
    mut pass: impl FnMut(&[Candidate<'_>]) -> Result<T, (usize, Exclusion)>,
) -> Option<T> {
    while !sel.cands.is_empty() {
        match pass(&sel.cands) {
            Ok(done) => return Some(done),
            Err((i, e)) => {
                let c = sel.cands.remove(i);
                sel.excluded.push(ExcludedWorker {
                    worker_id: c.worker.worker_id.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    None
}

/// Decodes the candidates in lockstep into a [`Census`] of their votes (weighted fusion).
fn census(cands: &[Candidate<'_>], threads: usize) -> Result<Census, (usize, Exclusion)> {
    let mut census = Census::new(cands.len());
    stream_decoded(cands, threads, |window| census.add_row(window))?;
    Ok(census)
}

/// Decodes and votes one image. `Err` holds the exclusions when no answer is usable.
///
/// The included PNGs are decoded in lockstep, row by row, straight into the vote, so no
/// worker's mask is ever held whole. With a crowd `model`, the vote is the weighted one.
fn decide_image(
    mut sel: Selection<'_>,
    classes: &ClassList,
    ctx: &BatchContext,
    model: Option<&CrowdModel>,
    threads: usize,
) -> Decision {
    let image = sel.image;
    let fusion = |cands: &[Candidate<'_>]| -> Box<dyn Fusion> {
        match model {
            Some(m) => Box::new(m.fusion(&worker_ids(cands))),
            None => Box::new(Majority),
        }
    };
    let fused = stream_until_decoded(&mut sel, |cands| {
        let palette = palette_of(cands, classes);
        stream_vote(cands, fusion(cands).as_ref(), palette, threads)
    });
    let Selection {
        cands,
        mut excluded,
        ..
    } = sel;
    let Some(fused) = fused else {
        if image.workers.is_empty() {
            excluded.push(ExcludedWorker {
                worker_id: String::new(),
                reason: "the image has zero answers".into(),
            });
        }
        sort_by_payload_order(&mut excluded, image);
        return Err(excluded);
    };
    sort_by_payload_order(&mut excluded, image);
    let pixels = u64::from(fused.width) * u64::from(fused.height);
    let weights: Option<Vec<f64>> = model.map(|m| {
        cands
            .iter()
            .map(|c| m.weight(&c.worker.worker_id))
            .collect()
    });
    let report = agreement_report(
        image,
        &cands,
        &fused,
        &excluded,
        ctx.algorithm,
        weights.as_deref(),
        ctx.low_agreement_threshold,
    );
    let n = cands.len();
    let (confidence_votes, unmapped) = (fused.winning_sum, fused.unmapped.iter().sum());
    let encoded = fused.png.and_then(|png| Ok((png, fused.disagreement_png?)));
    Ok(encoded.map(|(png, disagreement_png)| ImageOutcome {
        png,
        disagreement_png,
        report,
        palette: fused.palette,
        confidence: confidence(confidence_votes, pixels, n),
        included: cands.iter().map(|c| c.worker.worker_id.clone()).collect(),
        excluded,
        pixels,
        unmapped,
    }))
}

/// The output palette: the first included worker (payload order) who maps a label gives its
/// colour.
fn palette_of(cands: &[Candidate<'_>], classes: &ClassList) -> Vec<Rgb> {
    let mut preferred = vec![None; classes.num_classes()];
    for c in cands {
        for (label, color) in &c.answer.label_mappings {
            if let (Some(k), Some(rgb)) = (classes.class_of(label), Rgb::parse_hex(&color.color)) {
                preferred[usize::from(k)].get_or_insert(rgb);
            }
        }
    }
    assign_palette(&preferred)
}

/// Every answer of the image in payload order: included ones with their agreement, excluded
/// ones with their reason.
fn agreement_report(
    image: &ImageInput,
    cands: &[Candidate<'_>],
    fused: &StreamFused,
    excluded: &[ExcludedWorker],
    algorithm: Algorithm,
    weights: Option<&[f64]>,
    threshold: f64,
) -> ConsolidationReport {
    let mut reasons: Vec<&ExcludedWorker> = excluded.iter().collect();
    let workers = image
        .workers
        .iter()
        .map(
            |w| match cands.iter().position(|c| std::ptr::eq(c.worker, w)) {
                Some(k) => WorkerReport {
                    worker_id: w.worker_id.clone(),
                    included: true,
                    agreement: Some(fused.agreement.agreement(k)),
                    unmapped_pixels: Some(fused.unmapped[k]),
                    weight: weights.map(|w| w[k]),
                    reason: None,
                },
                None => {
                    let reason = reasons
                        .iter()
                        .position(|e| e.worker_id == w.worker_id)
                        .map(|p| reasons.remove(p).reason.clone());
                    WorkerReport {
                        worker_id: w.worker_id.clone(),
                        included: false,
                        agreement: None,
                        unmapped_pixels: None,
                        weight: None,
                        reason,
                    }
                }
            },
        )
        .collect();
    let mean = fused.agreement.mean_pairwise();
    ConsolidationReport {
        algorithm: algorithm.name().to_owned(),
        workers,
        mean_pairwise_agreement: mean,
        low_agreement: mean.is_some_and(|m| m < threshold),
        disagreement_ref: String::new(),
    }
}

/// Exclusions in the order of the payload's answers (size and mid-stream exclusions are
/// found late).
fn sort_by_payload_order(excluded: &mut [ExcludedWorker], image: &ImageInput) {
    let order: HashMap<&str, usize> = image
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.worker_id.as_str(), i))
        .collect();
    excluded.sort_by_key(|e| {
        order
            .get(e.worker_id.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    });
}

/// A worker PNG ready to decode: its bytes, its colour table and its size.
struct Prepared {
    png: Vec<u8>,
    lookup: ColorLookup,
    size: (u32, u32),
}

/// An answer that passed every check that needs no pixel data.
struct Candidate<'a> {
    worker: &'a WorkerInput,
    answer: &'a WorkerAnswer,
    png: Vec<u8>,
    lookup: ColorLookup,
    size: (u32, u32),
}

/// The fused classes of one image, encoded, and the sum of the winning votes.
struct StreamFused {
    width: u32,
    height: u32,
    /// The consolidated mask, encoded as its rows were decided, and its palette.
    png: Result<Vec<u8>, png::EncodingError>,
    palette: Vec<Rgb>,
    /// Votes for the winner, in total (for the confidence).
    winning_sum: u64,
    /// The disagreement map, encoded while the rows were decided.
    disagreement_png: Result<Vec<u8>, png::EncodingError>,
    agreement: AgreementCounts,
    /// Per included worker: pixels whose colour matched none of its labels.
    unmapped: Vec<u64>,
}

/// Decodes every candidate in lockstep into the vote (see [`stream_decoded`]).
fn stream_vote(
    cands: &[Candidate<'_>],
    fusion: &dyn Fusion,
    palette: Vec<Rgb>,
    threads: usize,
) -> Result<StreamFused, (usize, Exclusion)> {
    let (width, height) = cands[0].size;
    let w = width as usize;
    // The mask and the disagreement map are encoded as the rows are decided: neither is
    // ever held whole.
    let mut mask = PaletteRowEncoder::new(width, height, &palette);
    let mut winning_sum = 0u64;
    let mut agreement = AgreementTally::new(cands.len());
    let table = disagreement_table(cands.len());
    // Fewer than 255 candidates (MAX_ANSWERS_PER_IMAGE), so the count fits a byte.
    let n = cands.len() as u8;
    let mut map = GreyRowEncoder::new(width, height);
    let mut map_row = vec![0u8; w];
    // The winning votes of the row.
    let mut row_votes = 0u64;
    let mut rows = RowFuser::new(fusion, w, cands.len());
    let unmapped = stream_decoded(cands, threads, |window| {
        // `split` holds the pixels of the row where not every worker voted for the winner:
        // few, and all that the map, the confidence and the agreement need to look at.
        let (out, split, repeated) = rows.fuse_row(window);
        if let Ok(enc) = mask.as_mut()
            && let Err(e) = enc.write_row(out)
        {
            mask = Err(e);
        }
        if !repeated {
            // Black where every worker voted for the winner, which is nearly everywhere.
            map_row.fill(table[usize::from(n)]);
            let (mut short, mut votes) = (0u64, 0u64);
            for s in split {
                map_row[s.pixels()].fill(table[usize::from(s.votes)]);
                short += u64::from(s.len);
                votes += u64::from(s.len) * u64::from(s.votes);
            }
            row_votes = u64::from(n) * (w as u64).saturating_sub(short) + votes;
        }
        if let Ok(enc) = map.as_mut()
            && let Err(e) = enc.write_row(&map_row)
        {
            map = Err(e);
        }
        winning_sum += row_votes;
        if !(repeated && agreement.add_last_row_again()) {
            let current: Vec<&[u8]> = window.iter().map(|r| r.current).collect();
            agreement.add_row(&current, out, split);
        }
    })?;
    let disagreement_png = map.and_then(GreyRowEncoder::finish);
    Ok(StreamFused {
        width,
        height,
        png: mask.and_then(PaletteRowEncoder::finish),
        palette,
        winning_sum,
        agreement: agreement.finish(),
        unmapped,
        disagreement_png,
    })
}

/// Decodes every candidate in lockstep, handing `visit` each row with its 3-row window, and
/// returns each candidate's count of unmapped pixels. On a decoding error, names the
/// candidate at fault. With `threads` > 1 each worker's PNG is decoded on its own thread, a
/// few rows ahead.
fn stream_decoded(
    cands: &[Candidate<'_>],
    threads: usize,
    visit: impl FnMut(&[Rows<'_>]),
) -> Result<Vec<u64>, (usize, Exclusion)> {
    if threads > 1 && cands.len() > 1 {
        decode_in_parallel(cands, visit)
    } else {
        let mut readers = Vec::with_capacity(cands.len());
        for (i, c) in cands.iter().enumerate() {
            // The pixel limit was checked on the header already.
            readers.push(
                MaskReader::new(&c.png, &c.lookup, u64::MAX)
                    .map_err(|e| (i, Exclusion::Mask(e)))?,
            );
        }
        stream_windows(
            cands[0].size,
            cands.len(),
            |i, row, runs| readers[i].read_row(row, runs),
            visit,
        )
        .map_err(|(i, e)| (i, Exclusion::Mask(e)))?;
        let mut unmapped = Vec::with_capacity(readers.len());
        for (i, r) in readers.into_iter().enumerate() {
            unmapped.push(r.finish().map_err(|e| (i, Exclusion::Mask(e)))?);
        }
        Ok(unmapped)
    }
}

/// Rows a decoding thread hands over at once.
const CHUNK_ROWS: usize = 32;

/// Rows of classes a decoding thread fills, with the runs of each; sent back to be reused.
#[derive(Default)]
struct RowBatch {
    classes: Vec<u8>,
    runs: Vec<Vec<Run>>,
}

/// What a decoding thread sends to the vote.
enum Chunk {
    /// Rows, and how many of them are filled.
    Rows(RowBatch, usize),
    Done(u64),
    Failed(MaskError),
}

/// [`stream_windows`] with one decoding thread per worker, each at most two chunks ahead
/// (bounded memory). Returns each worker's count of unmapped pixels.
fn decode_in_parallel(
    cands: &[Candidate<'_>],
    visit: impl FnMut(&[Rows<'_>]),
) -> Result<Vec<u64>, (usize, Exclusion)> {
    let (width, height) = cands[0].size;
    let (w, h) = (width as usize, height as usize);
    std::thread::scope(|scope| {
        let mut inbox = Vec::with_capacity(cands.len());
        let mut recycle = Vec::with_capacity(cands.len());
        for c in cands {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
            let (back_tx, back_rx) = std::sync::mpsc::channel::<RowBatch>();
            scope.spawn(move || {
                let mut reader = match MaskReader::new(&c.png, &c.lookup, u64::MAX) {
                    Ok(r) => r,
                    Err(e) => return drop(tx.send(Chunk::Failed(e))),
                };
                let mut left = h;
                while left > 0 {
                    let n = left.min(CHUNK_ROWS);
                    let mut buf = back_rx.try_recv().unwrap_or_default();
                    buf.classes.resize(CHUNK_ROWS * w, 0);
                    buf.runs.resize_with(CHUNK_ROWS, Vec::new);
                    let rows = buf.classes.chunks_exact_mut(w).zip(&mut buf.runs);
                    for (row, runs) in rows.take(n) {
                        if let Err(e) = reader.read_row(row, runs) {
                            return drop(tx.send(Chunk::Failed(e)));
                        }
                    }
                    if tx.send(Chunk::Rows(buf, n)).is_err() {
                        return; // the vote stopped: another worker failed
                    }
                    left -= n;
                }
                let _ = tx.send(match reader.finish() {
                    Ok(u) => Chunk::Done(u),
                    Err(e) => Chunk::Failed(e),
                });
            });
            inbox.push(rx);
            recycle.push(back_tx);
        }
        // Per worker: the chunk being read, its row count, and the next row in it.
        let mut current: Vec<(RowBatch, usize, usize)> = (0..cands.len())
            .map(|_| (RowBatch::default(), 0, 0))
            .collect();
        let lost = || MaskError::Png(png::DecodingError::LimitsExceeded);
        stream_windows(
            (width, height),
            cands.len(),
            |i, row, runs| {
                let (buf, rows, next) = &mut current[i];
                if *next == *rows {
                    match inbox[i].recv() {
                        Ok(Chunk::Rows(b, n)) => {
                            let used = std::mem::replace(buf, b);
                            if !used.classes.is_empty() {
                                let _ = recycle[i].send(used);
                            }
                            (*rows, *next) = (n, 0);
                        }
                        Ok(Chunk::Failed(e)) => return Err(e),
                        Ok(Chunk::Done(_)) | Err(_) => return Err(lost()),
                    }
                }
                row.copy_from_slice(&buf.classes[*next * w..(*next + 1) * w]);
                // The ring's old runs go back with the chunk, to be filled again.
                std::mem::swap(runs, &mut buf.runs[*next]);
                *next += 1;
                Ok(())
            },
            visit,
        )
        .map_err(|(i, e)| (i, Exclusion::Mask(e)))?;
        let mut unmapped = Vec::with_capacity(inbox.len());
        for (i, rx) in inbox.iter().enumerate() {
            match rx.recv() {
                Ok(Chunk::Done(u)) => unmapped.push(u),
                Ok(Chunk::Failed(e)) => return Err((i, Exclusion::Mask(e))),
                Ok(Chunk::Rows(..)) | Err(_) => return Err((i, Exclusion::Mask(lost()))),
            }
        }
        Ok(unmapped)
    })
}

/// The checks on one answer that need no pixel data: its labels and colours, its base64, and
/// its PNG header (size, pixel limit, `inputImageProperties`). Returns the PNG bytes, the
/// worker's colour table and the size.
fn prepare(
    answer: &WorkerAnswer,
    classes: &ClassList,
    max_pixels: u64,
) -> Result<Prepared, Exclusion> {
    let mut pairs = Vec::with_capacity(answer.label_mappings.len());
    let mut by_colour: HashMap<Rgb, &str> = HashMap::new();
    for (label, c) in &answer.label_mappings {
        let k = classes
            .class_of(label)
            .ok_or_else(|| Exclusion::UnknownLabel(label.clone()))?;
        let rgb = Rgb::parse_hex(&c.color).ok_or_else(|| Exclusion::BadColor {
            label: label.clone(),
            color: c.color.clone(),
        })?;
        if let Some(other) = by_colour.insert(rgb, label) {
            return Err(Exclusion::SharedColor {
                a: other.to_owned(),
                b: label.clone(),
                color: rgb,
            });
        }
        pairs.push((rgb, k));
    }
    let png = base64::engine::general_purpose::STANDARD
        .decode(answer.labeled_image.png_image_data.trim())
        .map_err(Exclusion::Base64)?;
    let (width, height) = png_dimensions(&png, max_pixels).map_err(Exclusion::Mask)?;
    if let Some(p) = answer.input_image_properties
        && (p.width, p.height) != (width, height)
    {
        return Err(Exclusion::PropsMismatch {
            png_w: width,
            png_h: height,
            w: p.width,
            h: p.height,
        });
    }
    Ok(Prepared {
        png,
        lookup: ColorLookup::new(pairs),
        size: (width, height),
    })
}

/// One worker's answer → class mask (and its count of unmapped pixels), or why not.
fn decode_worker(
    answer: &WorkerAnswer,
    classes: &ClassList,
    max_pixels: u64,
) -> Result<(ClassMask, u64), Exclusion> {
    let Prepared { png, lookup, .. } = prepare(answer, classes, max_pixels)?;
    let d = decode_class_mask(&png, &lookup, max_pixels).map_err(Exclusion::Mask)?;
    Ok((d.mask, d.unmapped))
}

#[allow(clippy::too_many_arguments)]
fn response_item(
    event: &ConsolidationEvent,
    id: &str,
    mask_uri: &S3Uri,
    classes: &ClassList,
    outcome: &ImageOutcome,
    warnings: &[String],
    job_name: &str,
    creation_date: &str,
) -> ConsolidationResponseItem {
    let internal_color_map: BTreeMap<String, ColorMapEntry> = (0..classes.num_classes())
        .map(|k| {
            let entry = ColorMapEntry {
                class_name: classes.name(k).to_owned(),
                hex_color: outcome.palette[k].to_string(),
                confidence: Some(outcome.confidence),
            };
            (k.to_string(), entry)
        })
        .collect();
    let meta = SegmentationMetadata {
        internal_color_map,
        kind: SEGMENTATION_TYPE.to_owned(),
        human_annotated: "yes".to_owned(),
        creation_date: creation_date.to_owned(),
        job_name: job_name.to_owned(),
        worker_count: Some(outcome.included.len() as u32),
        excluded_workers: outcome.excluded.clone(),
        warnings: warnings.to_vec(),
        consolidation: Some(outcome.report.clone()),
    };
    let attr = &event.label_attribute_name;
    let mut content = Map::new();
    content.insert(attr.clone(), Value::String(mask_uri.to_string()));
    // Serialising a struct of strings, numbers and maps with string keys cannot fail.
    content.insert(
        format!("{attr}-metadata"),
        serde_json::to_value(meta).unwrap_or(Value::Null),
    );
    ConsolidationResponseItem {
        dataset_object_id: id.to_owned(),
        consolidated_annotation: ConsolidatedAnnotation { content },
    }
}

/// A `datasetObjectId` that is empty or longer than 512 bytes: no key can be made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the datasetObjectId is empty or longer than 512 bytes")]
pub struct InvalidId;

/// The file name of an image's mask: the id itself when it is a plain token of
/// `[A-Za-z0-9._-]` (not starting with `.`), else its bytes percent-encoded so the name can
/// neither leave the output folder nor collide with a plain id.
pub fn object_file_name(id: &str) -> Result<String, InvalidId> {
    if id.is_empty() || id.len() > 512 {
        return Err(InvalidId);
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    if id.bytes().all(plain) && !id.starts_with('.') {
        return Ok(format!("{id}.png"));
    }
    let mut out = String::with_capacity(id.len() * 3 + 4);
    for (i, b) in id.bytes().enumerate() {
        if plain(b) && !(i == 0 && b == b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".png");
    Ok(out)
}

/// `labeling-job/<name>` from a labeling-job ARN.
pub fn job_name(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    if resource.starts_with("labeling-job/") {
        resource.to_owned()
    } else {
        format!(
            "labeling-job/{}",
            resource.rsplit('/').next().unwrap_or(resource)
        )
    }
}

/// UTC as naive ISO 8601 with microseconds, as Ground Truth writes `creation-date`.
pub fn format_creation_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (H. Hinnant), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn creation_date_is_naive_utc_with_microseconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_687_200_123_456);
        assert_eq!(format_creation_date(t), "2026-11-26T10:00:00.123456");
        assert_eq!(
            format_creation_date(UNIX_EPOCH),
            "1970-01-01T00:00:00.000000"
        );
        assert_eq!(
            format_creation_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000"
        );
    }

    #[test]
    fn job_name_comes_from_the_arn() {
        assert_eq!(
            job_name("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes"),
            "labeling-job/street-scenes"
        );
        assert_eq!(job_name("street-scenes"), "labeling-job/street-scenes");
    }

    #[test]
    fn plain_ids_are_kept_and_others_cannot_escape() {
        assert_eq!(object_file_name("0").unwrap(), "0.png");
        assert_eq!(object_file_name("img_01.a-b").unwrap(), "img_01.a-b.png");
        assert_eq!(object_file_name("../../x").unwrap(), "%2E.%2F..%2Fx.png");
        assert_eq!(object_file_name("a/b").unwrap(), "a%2Fb.png");
        assert_eq!(object_file_name(".hidden").unwrap(), "%2Ehidden.png");
        assert_eq!(
            object_file_name("a%2Fb").unwrap(),
            "a%252Fb.png",
            "no collision with a/b"
        );
        assert!(object_file_name("").is_err());
        assert!(object_file_name(&"x".repeat(513)).is_err());
        for id in ["../../x", "a/b", "..", "/", "é", "a\\b"] {
            let f = object_file_name(id).unwrap();
            assert!(
                !f.contains('/') && !f.contains('\\') && !f.starts_with('.'),
                "{id} → {f}"
            );
        }
    }
}
