//! The run's batches: each prepared (its worker responses read, its payload written), then
//! consolidated here or on the deployed function, and its response saved, the mark that it is
//! done. With `weighted` here, a first pass fits one crowd model to the whole job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use gtseg::event::ExcludedWorker;
use gtseg::event::{ConsolidationEvent, LabelCategory, PayloadRef};
use gtseg::finished::{
    BatchNotes, FailedImage, Saved, SavedAnswer, excluded_by_user, newest_per_worker,
    note_excluded, parse_worker_response, payload_item,
};
use gtseg::{CrowdModel, ImageCensus, ImageVotes, MAX_BATCH_VOTES, ObjectStore, PutOptions};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::plan::Run;
use crate::progress::Progress;

/// The answers left out of a batch before consolidation (by `--exclude-worker`, or malformed
/// in their worker-response object), by image id: noted in the images' metadata.
pub(super) type Dropped = HashMap<String, Vec<ExcludedWorker>>;

/// Worker-response objects read at once.
const READS_IN_FLIGHT: usize = 16;

/// One worker-response object of an image, read: its answers, or why the image cannot be
/// decided from it (a reason outside the workers' data).
type ReadObject = Result<(Saved, Vec<Result<SavedAnswer, ExcludedWorker>>), String>;

/// What a finished batch gave.
struct BatchDone {
    images: usize,
    consolidated: usize,
}

impl Run {
    /// The consolidation event of batch `k`.
    fn event(&self, k: usize) -> ConsolidationEvent {
        ConsolidationEvent {
            version: Some("2018-10-06".to_owned()),
            labeling_job_arn: self.job_arn.clone(),
            label_categories: Some(
                self.labels
                    .iter()
                    .map(|l| LabelCategory::Name(l.clone()))
                    .collect(),
            ),
            label_attribute_name: self.attr.clone(),
            role_arn: None,
            output_config: Some(self.layout.output_config().to_string()),
            max_human_workers_per_data_object: None,
            kms_key_id: None,
            vpc_enabled: None,
            payload: PayloadRef {
                s3_uri: self.layout.request_uri(k).to_string(),
            },
        }
    }

    /// Reads the worker-response objects of batch `k`'s images, a few at once, by (image,
    /// object). An object that is not there, too large, or not a worker-response object fails
    /// only its image; any other failure to read (throttling, access denied) fails the batch.
    async fn read_answers(
        self: &Arc<Self>,
        k: usize,
    ) -> anyhow::Result<BTreeMap<(usize, usize), ReadObject>> {
        let reads = Arc::new(Semaphore::new(READS_IN_FLIGHT));
        let mut reading = tokio::task::JoinSet::new();
        for i in self.batches[k].clone() {
            for (n, (at, uri)) in self.responses[i].iter().enumerate() {
                let (run, reads, at, uri) = (
                    Arc::clone(self),
                    Arc::clone(&reads),
                    at.clone(),
                    uri.clone(),
                );
                reading.spawn(async move {
                    let _permit = reads.acquire().await?;
                    let read = match run.store.get(&uri, run.limits.max_payload_bytes).await {
                        Ok(bytes) => parse_worker_response(&bytes)
                            .map(|answers| (at, answers))
                            .map_err(|e| {
                                format!("its worker-response object {uri} is unusable: {e}")
                            }),
                        Err(e) if e.is_the_object_s_fault() => {
                            Err(format!("its worker-response object cannot be read: {e}"))
                        }
                        Err(e) => return Err(e).context("reading a worker response"),
                    };
                    anyhow::Ok(((i, n), read))
                });
            }
        }
        let mut by_object = BTreeMap::new();
        while let Some(joined) = reading.join_next().await {
            let (place, read) = joined??;
            by_object.insert(place, read);
        }
        Ok(by_object)
    }

    /// Prepares batch `k`: reads its worker responses, writes its notes (the images it cannot
    /// send, and why) and its payload; returns the answers left out, by image id.
    pub(super) async fn prepare(self: &Arc<Self>, k: usize) -> anyhow::Result<Dropped> {
        let mut by_object = self.read_answers(k).await?;
        let (mut items, mut dropped, mut notes) =
            (Vec::new(), HashMap::new(), BatchNotes::default());
        for i in self.batches[k].clone() {
            // This image's objects, taken (the images come in order).
            let rest = by_object.split_off(&(i + 1, 0));
            let objects = std::mem::replace(&mut by_object, rest);
            let id = i.to_string();
            match self.image_answers(objects) {
                Ok((answers, out)) if answers.is_empty() && !out.is_empty() => {
                    let reasons: Vec<String> = out
                        .iter()
                        .map(|e| format!("{}: {}", e.worker_id, e.reason))
                        .collect();
                    let reason = format!("no usable worker answer: {}", reasons.join("; "));
                    notes.failed.insert(
                        id,
                        FailedImage {
                            reason,
                            retry: false,
                        },
                    );
                }
                Ok((answers, _)) if answers.is_empty() => {}
                Ok((answers, out)) => {
                    items.push(payload_item(&id, self.source(i), &answers));
                    if !out.is_empty() {
                        dropped.insert(id, out);
                    }
                }
                Err(reason) => {
                    notes.failed.insert(
                        id,
                        FailedImage {
                            reason,
                            retry: true,
                        },
                    );
                }
            }
        }
        let notes_uri = self.layout.notes_uri(k);
        if !notes.failed.is_empty() {
            warn!(
                batch = k,
                images = notes.failed.len(),
                "images that cannot be consolidated, with why, in {notes_uri}"
            );
            self.put_json(&notes_uri, serde_json::to_vec_pretty(&notes)?)
                .await
                .context("writing the batch's notes")?;
        } else if self.noted.contains(&k) {
            // Notes of an earlier attempt at this batch no longer hold.
            self.store.delete(&notes_uri).await?;
        }
        let uri = self.layout.request_uri(k);
        self.put_json(&uri, serde_json::to_vec(&items)?)
            .await
            .context("writing the batch's payload")?;
        Ok(dropped)
    }

    /// One image's answers from its objects: each worker's newest usable answer, and the
    /// answers left out (by `--exclude-worker`, or malformed, unless the worker has a usable
    /// one). `Err` when one of its objects is unusable: the image waits for a `--resume`.
    fn image_answers(
        &self,
        objects: BTreeMap<(usize, usize), ReadObject>,
    ) -> Result<(Vec<SavedAnswer>, Vec<ExcludedWorker>), String> {
        let (mut saved, mut malformed) = (Vec::new(), Vec::new());
        for object in objects.into_values() {
            let (at, answers) = object?;
            for answer in answers {
                match answer {
                    Ok(a) => saved.push((at.clone(), a)),
                    Err(bad) => malformed.push(bad),
                }
            }
        }
        let (answers, by_user) = newest_per_worker(saved, &self.exclude);
        let mut out: Vec<ExcludedWorker> = by_user.iter().map(|w| excluded_by_user(w)).collect();
        out.extend(
            malformed
                .into_iter()
                .filter(|bad| !answers.iter().any(|a| a.worker_id == bad.worker_id)),
        );
        Ok((answers, out))
    }

    /// Consolidates batch `k` (prepared) here or on the function, notes the workers left out,
    /// and saves its response: the mark that the batch is done.
    async fn consolidate(
        &self,
        k: usize,
        dropped: &Dropped,
        model: Option<Arc<CrowdModel>>,
    ) -> anyhow::Result<BatchDone> {
        let event = self.event(k);
        let mut items = match &self.lambda {
            Some(f) => f.consolidate(&event).await?,
            None => {
                self.service
                    .consolidation_with_model(&event, self.now, model)
                    .await?
            }
        };
        for item in &mut items {
            if let Some(out) = dropped.get(&item.dataset_object_id) {
                note_excluded(item, &self.attr, out);
            }
        }
        let uri = self.layout.response_uri(k);
        self.put_json(&uri, serde_json::to_vec(&items)?)
            .await
            .context("saving the batch's response")?;
        Ok(BatchDone {
            images: self.batches[k].len(),
            consolidated: items.len(),
        })
    }

    async fn put_json(&self, uri: &gtseg::S3Uri, body: Vec<u8>) -> anyhow::Result<()> {
        let opts = PutOptions {
            content_type: Some("application/json"),
            kms_key_id: None,
        };
        Ok(self.store.put(uri, body, &opts).await?)
    }
}

/// The batches an earlier run finished (their response is saved), but those with an image to
/// try again (see `BatchNotes`).
pub(super) async fn finished(run: &Run) -> anyhow::Result<Vec<usize>> {
    let keys = run
        .store
        .list(&run.layout.responses_folder())
        .await
        .context("--resume: listing the saved responses")?;
    let notes = run.batch_notes().await?;
    let done: Vec<usize> = keys
        .iter()
        .filter_map(|u| run.layout.batch_of_response(u.key()))
        .filter(|&k| k < run.batches.len())
        .filter(|k| !notes.get(k).is_some_and(BatchNotes::wants_retry))
        .collect();
    info!(
        done = done.len(),
        batches = run.batches.len(),
        "resuming: finished batches are kept"
    );
    Ok(done)
}

/// The weighted fusion's crowd model fitted to the whole job: a first pass over every batch
/// (its payload written on the way), keeping at most `MAX_BATCH_VOTES` votes for the whole job,
/// the same share for every image. Returns the model, and what preparing each batch left out
/// (its payload is written, so the second pass does not prepare it again).
pub(super) async fn fit_job_model(
    run: &Arc<Run>,
) -> anyhow::Result<(CrowdModel, HashMap<usize, Dropped>)> {
    let images: usize = run.batches.iter().map(ExactSizeIterator::len).sum();
    // The job keeps MAX_BATCH_VOTES votes, as one Lambda batch does, shared evenly.
    let per_image = MAX_BATCH_VOTES / images.max(1);
    let mut progress = Progress::new("estimating reliabilities", images as u64);
    let mut censuses: Vec<ImageCensus> = Vec::new();
    let mut classes = 0;
    let mut prepared = HashMap::new();
    for k in 0..run.batches.len() {
        prepared.insert(k, run.prepare(k).await?);
        let (n, found) = run
            .service
            .census(&run.event(k), per_image)
            .await
            .with_context(|| format!("batch {k}"))?;
        classes = n;
        censuses.extend(found);
        progress.add(run.batches[k].len() as u64, 0);
    }
    progress.finish();
    let votes: Vec<ImageVotes<'_>> = censuses
        .iter()
        .map(|(workers, patterns)| ImageVotes {
            workers: workers.iter().map(String::as_str).collect(),
            patterns,
        })
        .collect();
    let model = CrowdModel::fit(classes, &votes);
    info!(
        workers = model.worker_count(),
        images = votes.len(),
        iterations = model.iterations,
        "crowd model fitted to the whole job"
    );
    Ok((model, prepared))
}

/// Runs every batch not yet finished, `concurrency` at a time (here: one consolidating while
/// the next is read), and returns the batches that failed with why.
pub(super) async fn consolidate_all(
    run: Arc<Run>,
    model: Option<Arc<CrowdModel>>,
    mut prepared: HashMap<usize, Dropped>,
    finished: Vec<usize>,
    concurrency: usize,
) -> anyhow::Result<Vec<(usize, anyhow::Error)>> {
    let todo: Vec<usize> = (0..run.batches.len())
        .filter(|k| !finished.contains(k))
        .collect();
    let images: usize = todo.iter().map(|&k| run.batches[k].len()).sum();
    let mut progress = Progress::new("consolidating", images as u64);
    // Consolidating here uses every core for one batch; reading the next overlaps it.
    let deciding = Arc::new(Semaphore::new(if run.lambda.is_some() {
        concurrency
    } else {
        1
    }));
    let mut running = tokio::task::JoinSet::new();
    let (mut failed, mut consolidated) = (Vec::new(), 0usize);
    let mut next = todo.into_iter();
    loop {
        while running.len() < concurrency {
            let Some(k) = next.next() else { break };
            let (run, model, deciding) = (Arc::clone(&run), model.clone(), Arc::clone(&deciding));
            let ready = prepared.remove(&k);
            running.spawn(async move {
                let result = async {
                    let dropped = match ready {
                        Some(dropped) => dropped,
                        None => run.prepare(k).await?,
                    };
                    let _permit = deciding.acquire().await?;
                    run.consolidate(k, &dropped, model).await
                };
                (k, result.await)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (k, result) = joined.context("a batch's task failed")?;
        let size = run.batches[k].len() as u64;
        match result {
            Ok(done) => {
                consolidated += done.consolidated;
                let lost = done.images.saturating_sub(done.consolidated) as u64;
                progress.add(done.images as u64, lost);
            }
            Err(why) => {
                progress.add(size, size);
                failed.push((k, why));
            }
        }
    }
    progress.finish();
    info!(
        images,
        consolidated,
        batches_failed = failed.len(),
        seconds = format!("{:.1}", progress.elapsed().as_secs_f64()),
        images_per_second = format!("{:.1}", progress.rate()),
        "batches consolidated"
    );
    Ok(failed)
}
