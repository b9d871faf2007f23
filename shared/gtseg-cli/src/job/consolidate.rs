//! `gtseg job consolidate`: a finished job's worker responses consolidated again, in batches,
//! with the consolidation function's own code (in this process, or the deployed function with
//! `--via-lambda`), then a complete output manifest and a job report.
//!
//! Each batch is a payload object under `--output` (what Ground Truth would have sent), and its
//! response is saved beside it once its masks are written: a saved response is the mark of a
//! finished batch, so `--resume` redoes only the batches without one, and an interrupted run
//! leaves only whole objects behind. The manifest and the report are written last, and only
//! when every batch succeeded.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use gtseg::finished::{
    CONSOLIDATION_RESPONSES, Saved, SavedAnswer, note_excluded, parse_worker_response,
    payload_item, worker_response_key,
};
use gtseg::{
    Algorithm, AnyStore, CrowdModel, ImageCensus, ImageVotes, MAX_BATCH_VOTES, ObjectStore, S3Uri,
    Service,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::lambda::Function;
use crate::progress::Progress;
use report::write_manifest_and_report;

mod report;

/// Options of `gtseg job consolidate`.
#[derive(Debug, clap::Args)]
pub struct ConsolidateArgs {
    #[command(flatten)]
    job: super::JobLocation,
    /// Where the masks, the disagreement maps, `manifests/output/output.manifest` and
    /// `manifests/output/job-report.json` go.
    #[arg(long, value_name = "URI")]
    output: String,
    /// The label category configuration (an s3:// URI or a local path), as
    /// LABEL_CATEGORY_CONFIG.
    #[arg(long, value_name = "URI", conflicts_with = "labeling_job")]
    label_config: Option<String>,
    /// The job's saved `aws sagemaker describe-labeling-job` output: its label
    /// configuration and name are used.
    #[arg(long, value_name = "FILE")]
    labeling_job: Option<PathBuf>,
    /// `majority` or `weighted` (default: CONSOLIDATION_ALGORITHM, else majority). Locally,
    /// `weighted` estimates every worker's reliability from the whole job.
    #[arg(long, value_name = "NAME")]
    algorithm: Option<String>,
    /// Leave this worker's answers out everywhere (repeat for more); the metadata says so.
    #[arg(long, value_name = "ID")]
    exclude_worker: Vec<String>,
    /// Redo only the batches an earlier run with the same options did not finish.
    #[arg(long)]
    resume: bool,
    /// Images per batch (per invocation with --via-lambda).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Invoke this deployed consolidation function (name or ARN) for each batch instead of
    /// consolidating here; `AWS_ENDPOINT_URL_LAMBDA` is honoured.
    #[arg(long, value_name = "FUNCTION")]
    via_lambda: Option<String>,
    /// Batches in flight at once with --via-lambda.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Stamp this creation-date (RFC 3339, UTC) instead of the time of the first run, for
    /// reproducible reruns.
    #[arg(long, value_name = "TIME")]
    creation_date: Option<String>,
}

/// The workers `--exclude-worker` left out of a batch, by image id.
type Dropped = HashMap<String, Vec<String>>;

/// Worker-response objects read at once.
const READS_IN_FLIGHT: usize = 16;

/// What every batch of the run shares.
struct Run {
    store: AnyStore,
    service: Service<AnyStore>,
    lambda: Option<Function>,
    job_arn: String,
    /// The job's labels, sent in every event as `labelCategories`.
    labels: Vec<String>,
    attr: String,
    output: S3Uri,
    exclude: Vec<String>,
    now: SystemTime,
    /// This run's name in its objects' names (its creation time, in microseconds): objects of
    /// an earlier run into the same output are never taken for this one's.
    run_id: String,
    /// The input manifest's `source-ref` by line.
    sources: Vec<Option<String>>,
    /// Each image's worker-response objects, by line.
    responses: Vec<Vec<(Saved, S3Uri)>>,
    /// The images of each batch.
    batches: Vec<Range<usize>>,
}

/// What a finished batch gave.
struct BatchDone {
    images: usize,
    consolidated: usize,
}

/// The options and inputs a run's output depends on: a `--resume` must have the same ones.
fn state_json(
    a: &ConsolidateArgs,
    algorithm: Algorithm,
    labels: &[String],
    created: u128,
    images: usize,
) -> Value {
    json!({"label-attribute-name": a.job.label_attribute_name, "batch-size": a.batch_size,
           "algorithm": algorithm.name(), "exclude-workers": a.exclude_worker,
           "labels": labels, "images": images, "creation-time-micros": created.to_string(),
           "job-output": a.job.job_output, "manifest": a.job.manifest,
           "via-lambda": a.via_lambda})
}

/// Runs `gtseg job consolidate`.
pub async fn run(a: ConsolidateArgs) -> Result<(), String> {
    if a.batch_size == 0 || !(1..=1000).contains(&a.concurrency) {
        return Err("--batch-size must be at least 1, and --concurrency from 1 to 1000".into());
    }
    let store = super::open_store(a.job.store.as_deref()).await?;
    let job = super::folder(&a.job.job_output, "--job-output")?;
    let output = super::folder(&a.output, "--output")?;
    let manifest = super::object(&a.job.manifest, "--manifest")?;
    let mut config = gtseg::Config::from_env().map_err(|e| e.to_string())?;
    match a.algorithm.as_deref() {
        None => {}
        Some("majority") => config.algorithm = Algorithm::Majority,
        Some("weighted") => config.algorithm = Algorithm::Weighted,
        Some(other) => return Err(format!("--algorithm {other}: use majority or weighted")),
    }
    // The job's labels, read once here and sent in every batch's event, so that the function
    // (here or deployed) uses them whatever its own settings.
    let job_name = job.key().rsplit('/').next().unwrap_or("job").to_owned();
    let (label_config, job_arn) = match (&a.label_config, &a.labeling_job) {
        (Some(c), _) => (c.clone(), None),
        (None, Some(f)) => {
            let text = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let described: Value = serde_json::from_slice(&text)
                .map_err(|e| format!("{} is not JSON: {e}", f.display()))?;
            let arn = described["LabelingJobArn"].as_str().map(str::to_owned);
            let uri = described["LabelCategoryConfigS3Uri"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{} has no LabelCategoryConfigS3Uri", f.display()))?;
            (uri, arn)
        }
        (None, None) => match &config.label_category_config {
            Some(c) => (c.clone(), None),
            None => {
                return Err("give --label-config or --labeling-job (or set LABEL_CATEGORY_CONFIG): every batch of a job must use the job's one label list".into());
            }
        },
    };
    let labels = read_labels(&store, &label_config).await?;
    let job_arn = job_arn.unwrap_or_else(|| {
        format!("arn:aws:sagemaker:us-east-1:000000000000:labeling-job/{job_name}")
    });
    let algorithm = config.algorithm;
    let service = Service::new(store.clone(), config);
    let lambda = match &a.via_lambda {
        Some(f) => Some(Function::new(f).await?),
        None => None,
    };

    let lines = super::read_manifest(&store, &manifest).await?;
    let sources: Vec<Option<String>> = lines
        .iter()
        .map(|l| {
            l.as_ref()
                .ok()
                .and_then(|m| m.get("source-ref")?.as_str().map(str::to_owned))
        })
        .collect();
    let responses = list_responses(&store, &job, lines.len()).await?;
    let batches: Vec<Range<usize>> = (0..lines.len())
        .step_by(a.batch_size)
        .map(|s| s..(s + a.batch_size).min(lines.len()))
        .collect();

    // The creation date and the options: kept from an earlier run when resuming.
    let state_uri = output.join("annotations/consolidated-annotation/gtseg-job.json");
    let now = match &a.creation_date {
        Some(t) => parse_time(t)?,
        None => SystemTime::now(),
    };
    let micros = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros()
    };
    let mut state = state_json(&a, algorithm, &labels, micros(now), lines.len());
    let earlier = if a.resume {
        read_state(&store, &state_uri).await?
    } else {
        None
    };
    let now = match earlier {
        Some(before) => {
            let created: u128 = before["creation-time-micros"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            state["creation-time-micros"] = before["creation-time-micros"].clone();
            if before != state {
                return Err(format!(
                    "--resume: the earlier run at {state_uri} used other options ({before}); rerun without --resume, or with the same options"
                ));
            }
            SystemTime::UNIX_EPOCH
                + std::time::Duration::from_micros(u64::try_from(created).unwrap_or(0))
        }
        None => {
            super::put_text(&store, &state_uri, state.to_string(), "application/json").await?;
            now
        }
    };

    let run = Arc::new(Run {
        store,
        service,
        lambda,
        job_arn,
        labels,
        attr: a.job.label_attribute_name.clone(),
        output,
        exclude: a.exclude_worker.clone(),
        now,
        run_id: format!("{:016}", micros(now)),
        sources,
        responses,
        batches,
    });
    let finished = if a.resume {
        finished_batches(&run).await?
    } else {
        Vec::new()
    };
    let (model, prepared) = if algorithm == Algorithm::Weighted && run.lambda.is_none() {
        let (model, prepared) = fit_job_model(&run).await?;
        (Some(Arc::new(model)), prepared)
    } else {
        (None, HashMap::new())
    };
    let concurrency = if run.lambda.is_some() {
        a.concurrency
    } else {
        2
    };
    let work = consolidate_batches(Arc::clone(&run), model, prepared, finished, concurrency);
    let failed = tokio::select! {
        r = work => r?,
        _ = tokio::signal::ctrl_c() => {
            return Err("interrupted: the batches finished so far are saved; rerun with --resume to do the rest".into());
        }
    };
    if !failed.is_empty() {
        for (k, why) in &failed {
            warn!(batch = k, "{why}");
        }
        return Err(format!(
            "{} of {} batches failed (see the log); nothing else is lost: rerun with --resume to redo only those",
            failed.len(),
            run.batches.len()
        ));
    }
    write_manifest_and_report(&run, &lines, algorithm).await
}

/// The labels of a label category configuration (an `s3://` URI, read from the store, or a
/// local path), checked as a class list.
async fn read_labels(store: &AnyStore, config: &str) -> Result<Vec<String>, String> {
    let bytes = match S3Uri::parse(config) {
        Ok(uri) => store
            .get(&uri, gtseg::MAX_LABEL_CONFIG_BYTES)
            .await
            .map_err(|e| format!("cannot read the label category configuration: {e}"))?,
        Err(_) => {
            let size = std::fs::metadata(config)
                .map_err(|e| format!("cannot read the label category configuration {config}: {e}"))?
                .len();
            if size > gtseg::MAX_LABEL_CONFIG_BYTES {
                return Err(format!(
                    "the label category configuration {config} is {size} bytes, over the limit of {}",
                    gtseg::MAX_LABEL_CONFIG_BYTES
                ));
            }
            std::fs::read(config).map_err(|e| format!("cannot read {config}: {e}"))?
        }
    };
    let parsed: gtseg::event::LabelCategoryConfig =
        gtseg::event::from_slice("the label category configuration", &bytes)
            .map_err(|e| format!("{config}: {e}"))?;
    let classes =
        gtseg::ClassList::from_categories(&parsed.labels).map_err(|e| format!("{config}: {e}"))?;
    Ok(classes.labels().to_vec())
}

/// `2026-11-30T10:00:00Z` (a `Z` is added when missing) as a time.
fn parse_time(text: &str) -> Result<SystemTime, String> {
    // An offset after the time (Z, +hh:mm or -hh:mm) is kept; none means UTC.
    let has_offset = text.ends_with('Z')
        || text
            .rsplit_once('T')
            .is_some_and(|(_, time)| time.contains('+') || time.contains('-'));
    let t = if has_offset {
        text.to_owned()
    } else {
        format!("{text}Z")
    };
    aws_smithy_types::DateTime::from_str(&t, aws_smithy_types::date_time::Format::DateTime)
        .ok()
        .and_then(|d| SystemTime::try_from(d).ok())
        .ok_or_else(|| {
            format!(
                "--creation-date {text}: expected an RFC 3339 time such as 2026-11-30T10:00:00Z"
            )
        })
}

async fn read_state(store: &AnyStore, uri: &S3Uri) -> Result<Option<Value>, String> {
    match store.get(uri, 1 << 20).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{uri} is not the state of a gtseg job run: {e}")),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(format!("cannot read {uri}: {e}")),
    }
}

/// Every worker-response object of the job, by image (line); objects of ids outside the
/// manifest are left out with a warning.
async fn list_responses(
    store: &AnyStore,
    job: &S3Uri,
    images: usize,
) -> Result<Vec<Vec<(Saved, S3Uri)>>, String> {
    let folder = job.join(gtseg::finished::WORKER_RESPONSES);
    let keys = store
        .list(&folder)
        .await
        .map_err(|e| format!("cannot list the job's worker responses: {e}"))?;
    let mut by_image: Vec<Vec<(Saved, S3Uri)>> = vec![Vec::new(); images];
    let mut outside = 0usize;
    for uri in keys {
        let rel = &uri.key()[folder.key().len()..];
        let Some((id, saved)) = worker_response_key(rel) else {
            continue;
        };
        match id.parse::<usize>().ok().filter(|&i| i < images) {
            Some(i) => by_image[i].push((saved, uri)),
            None => outside += 1,
        }
    }
    if outside > 0 {
        warn!(
            objects = outside,
            "worker responses whose datasetObjectId is not a line of the manifest are left out"
        );
    }
    let found = by_image.iter().filter(|r| !r.is_empty()).count();
    info!(
        images,
        with_responses = found,
        "the job's worker responses listed"
    );
    Ok(by_image)
}

impl Run {
    fn request_uri(&self, k: usize) -> S3Uri {
        self.output.join(&format!(
            "annotations/consolidated-annotation/consolidation-request/iteration-1/{}-batch-{k:06}.json",
            self.run_id
        ))
    }

    fn response_uri(&self, k: usize) -> S3Uri {
        self.output.join(&format!(
            "{CONSOLIDATION_RESPONSES}iteration-1/{}-batch-{k:06}.json",
            self.run_id
        ))
    }

    /// The consolidation event of batch `k`.
    fn event(&self, k: usize) -> Value {
        json!({"version": "2018-10-06", "labelingJobArn": self.job_arn,
               "labelCategories": self.labels, "labelAttributeName": self.attr,
               "outputConfig": self.output.join("annotations").to_string(),
               "payload": {"s3Uri": self.request_uri(k).to_string()}})
    }

    /// Reads batch `k`'s worker responses (a few at once) and writes its payload; returns the
    /// workers left out by `--exclude-worker`, by image id.
    async fn prepare(self: &Arc<Self>, k: usize) -> Result<Dropped, String> {
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
                    let _permit = reads.acquire().await.map_err(|e| e.to_string())?;
                    let bytes = run
                        .store
                        .get(&uri, gtseg::Config::default().limits.max_payload_bytes)
                        .await
                        .map_err(|e| format!("cannot read a worker response: {e}"))?;
                    let answers = match parse_worker_response(&bytes) {
                        Ok(a) => a,
                        Err(e) => {
                            warn!(object = %uri, "worker response left out: {e}");
                            Vec::new()
                        }
                    };
                    Ok::<_, String>(((i, n), at, answers))
                });
            }
        }
        let mut by_image: BTreeMap<(usize, usize), (Saved, Vec<SavedAnswer>)> = BTreeMap::new();
        while let Some(joined) = reading.join_next().await {
            let (place, at, answers) = joined.map_err(|e| e.to_string())??;
            by_image.insert(place, (at, answers));
        }
        let mut items = Vec::new();
        let mut dropped = HashMap::new();
        for i in self.batches[k].clone() {
            // This image's objects, taken (the images come in order).
            let rest = by_image.split_off(&(i + 1, 0));
            let saved: Vec<(Saved, SavedAnswer)> = std::mem::replace(&mut by_image, rest)
                .into_values()
                .flat_map(|(at, answers)| answers.into_iter().map(move |a| (at.clone(), a)))
                .collect();
            let (answers, out) = gtseg::finished::newest_per_worker(saved, &self.exclude);
            if answers.is_empty() {
                continue;
            }
            let id = i.to_string();
            items.push(payload_item(&id, self.sources[i].as_deref(), &answers));
            if !out.is_empty() {
                dropped.insert(id, out);
            }
        }
        let body = serde_json::to_vec(&items).map_err(|e| e.to_string())?;
        let opts = gtseg::PutOptions {
            content_type: Some("application/json"),
            kms_key_id: None,
        };
        self.store
            .put(&self.request_uri(k), body, &opts)
            .await
            .map_err(|e| format!("cannot write the batch's payload: {e}"))?;
        Ok(dropped)
    }

    /// Consolidates batch `k` (prepared) here or on the function, notes the workers left out,
    /// and saves its response: the mark that the batch is done.
    async fn consolidate(
        &self,
        k: usize,
        dropped: &HashMap<String, Vec<String>>,
        model: Option<Arc<CrowdModel>>,
    ) -> Result<BatchDone, String> {
        let event = self.event(k);
        let mut items = match &self.lambda {
            Some(f) => f.consolidate(&event).await?,
            None => self
                .service
                .consolidation_with_model(&event, self.now, model)
                .await
                .map_err(|e| e.to_string())?,
        };
        for item in &mut items {
            if let Some(out) = dropped.get(&item.dataset_object_id) {
                note_excluded(item, &self.attr, out);
            }
        }
        let body = serde_json::to_vec(&items).map_err(|e| e.to_string())?;
        let opts = gtseg::PutOptions {
            content_type: Some("application/json"),
            kms_key_id: None,
        };
        self.store
            .put(&self.response_uri(k), body, &opts)
            .await
            .map_err(|e| format!("cannot save the batch's response: {e}"))?;
        Ok(BatchDone {
            images: self.batches[k].len(),
            consolidated: items.len(),
        })
    }
}

/// The batches an earlier run finished (their response is saved).
async fn finished_batches(run: &Run) -> Result<Vec<usize>, String> {
    let folder = run
        .output
        .join(&format!("{CONSOLIDATION_RESPONSES}iteration-1/"));
    let keys = run
        .store
        .list(&folder)
        .await
        .map_err(|e| format!("--resume: cannot list the saved responses: {e}"))?;
    let done: Vec<usize> = keys
        .iter()
        .filter_map(|u| {
            let name = u.key().rsplit('/').next()?;
            name.strip_prefix(&format!("{}-batch-", run.run_id))?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .filter(|&k| k < run.batches.len())
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
/// the same share for every image.
/// Returns the model, and what preparing each batch left out (its payload is written, so the
/// second pass does not prepare it again).
async fn fit_job_model(run: &Arc<Run>) -> Result<(CrowdModel, HashMap<usize, Dropped>), String> {
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
            .map_err(|e| format!("batch {k}: {e}"))?;
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
async fn consolidate_batches(
    run: Arc<Run>,
    model: Option<Arc<CrowdModel>>,
    mut prepared: HashMap<usize, Dropped>,
    finished: Vec<usize>,
    concurrency: usize,
) -> Result<Vec<(usize, String)>, String> {
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
    let mut failed = Vec::new();
    let mut next = todo.into_iter();
    let mut consolidated = 0usize;
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
                    let _permit = deciding.acquire().await.map_err(|e| e.to_string())?;
                    run.consolidate(k, &dropped, model).await
                };
                (k, result.await)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (k, result) = joined.map_err(|e| format!("a batch's task failed: {e}"))?;
        match result {
            Ok(done) => {
                consolidated += done.consolidated;
                progress.add(
                    done.images as u64,
                    done.images.saturating_sub(done.consolidated) as u64,
                );
            }
            Err(why) => {
                progress.add(run.batches[k].len() as u64, run.batches[k].len() as u64);
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
