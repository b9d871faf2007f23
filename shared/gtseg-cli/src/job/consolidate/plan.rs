//! A run's inputs, gathered before any batch: the store, the job's labels (read once and sent
//! in every batch's event), the input manifest, each image's worker-response objects, the
//! batches, and the run's state (kept from an earlier run with `--resume`).

use std::ops::Range;
use std::time::SystemTime;

use anyhow::Context as _;
use gtseg::finished::{
    InputLine, RunLayout, RunState, Saved, WORKER_RESPONSES, epoch_micros, state_uri,
    worker_response_key,
};
use gtseg::{
    Algorithm, AnyStore, Config, Limits, Location, ObjectStore, S3Uri, SavedJobs, Service,
    read_label_config,
};
use tracing::{info, warn};

use super::Args;
use crate::job::lambda::Function;

/// What every batch of the run shares.
pub(super) struct Run {
    pub(super) store: AnyStore,
    pub(super) service: Service<AnyStore>,
    pub(super) lambda: Option<Function>,
    pub(super) algorithm: Algorithm,
    /// `MAX_PAYLOAD_BYTES` and the other bounds on what is read.
    pub(super) limits: Limits,
    pub(super) job_arn: String,
    /// The job's labels, sent in every event as `labelCategories`.
    pub(super) labels: Vec<String>,
    pub(super) attr: String,
    /// Where the run writes, and its name in its objects' names.
    pub(super) layout: RunLayout,
    pub(super) exclude: Vec<String>,
    /// The run's creation time (the first run's, when resuming).
    pub(super) now: SystemTime,
    /// The input manifest's lines, each a JSON object or why it is not.
    pub(super) lines: Vec<InputLine>,
    /// Each image's worker-response objects, by line.
    pub(super) responses: Vec<Vec<(Saved, S3Uri)>>,
    /// The images of each batch.
    pub(super) batches: Vec<Range<usize>>,
}

impl Run {
    /// Gathers the run's inputs from the command's options.
    pub(super) async fn open(a: &Args) -> anyhow::Result<Self> {
        let (store, job, manifest) = crate::job::open(&a.job).await?;
        let output = crate::store::folder(&a.output, "--output", a.job.store.as_deref())?;
        let mut config = Config::from_env()?;
        if let Some(algorithm) = a.algorithm {
            config.algorithm = algorithm.0;
        }
        let algorithm = config.algorithm;
        let (labels, job_arn) = job_labels(a, &store, &config).await?;
        let job_name = job.key().rsplit('/').next().unwrap_or("job");
        let job_arn = job_arn.unwrap_or_else(|| {
            format!("arn:aws:sagemaker:us-east-1:000000000000:labeling-job/{job_name}")
        });
        let lambda = match &a.via_lambda {
            Some(f) => Some(Function::new(f).await?),
            None => None,
        };
        let lines = crate::job::read_manifest(&store, &manifest).await?;
        let responses = list_responses(&store, &job, lines.len()).await?;
        let batches = (0..lines.len())
            .step_by(a.batch_size)
            .map(|s| s..(s + a.batch_size).min(lines.len()))
            .collect();
        let now = creation_time(a, &store, &output, algorithm, &labels, lines.len()).await?;
        Ok(Self {
            limits: config.limits,
            service: Service::new(store.clone(), config),
            store,
            lambda,
            algorithm,
            job_arn,
            labels,
            attr: a.label_attribute_name.clone(),
            layout: RunLayout::new(output, now),
            exclude: a.exclude_worker.clone(),
            now,
            lines,
            responses,
            batches,
        })
    }

    /// The input manifest's `source-ref` of line `i`.
    pub(super) fn source(&self, i: usize) -> Option<&str> {
        self.lines[i].as_ref().ok()?.get("source-ref")?.as_str()
    }
}

/// The job's labels, read once here so that every batch (here or on the deployed function)
/// uses the job's one list, and the job's ARN when a saved description names it.
async fn job_labels(
    a: &Args,
    store: &AnyStore,
    config: &Config,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let dir = a.job.store.as_deref();
    let (location, arn) = match (&a.label_config, &a.labeling_job) {
        (Some(c), _) => (crate::store::file(c, "--label-config", dir)?, None),
        (None, Some(f)) => {
            let saved = SavedJobs::read_file(f).await?;
            let job = saved
                .jobs()
                .first()
                .with_context(|| format!("{} describes no job", f.display()))?;
            let uri = job
                .label_category_config
                .as_deref()
                .with_context(|| format!("{} has no LabelCategoryConfigS3Uri", f.display()))?;
            (Location::parse(uri, None)?, Some(job.arn.clone()))
        }
        (None, None) => match &config.label_category_config {
            Some(c) => (crate::store::file(c, "LABEL_CATEGORY_CONFIG", dir)?, None),
            None => anyhow::bail!(
                "give --label-config or --labeling-job (or set LABEL_CATEGORY_CONFIG): every batch of a job must use the job's one label list"
            ),
        },
    };
    let labels = read_label_config(store, &location).await?;
    Ok((labels.classes.labels().to_vec(), arn))
}

/// The run's creation time: `--creation-date`, else now; with `--resume`, the earlier run's,
/// once its saved options are found to be these. A new run saves its state.
async fn creation_time(
    a: &Args,
    store: &AnyStore,
    output: &S3Uri,
    algorithm: Algorithm,
    labels: &[String],
    images: usize,
) -> anyhow::Result<SystemTime> {
    let now = match &a.creation_date {
        Some(t) => parse_time(t)?,
        None => SystemTime::now(),
    };
    let state = RunState {
        label_attribute_name: a.label_attribute_name.clone(),
        batch_size: a.batch_size,
        algorithm: algorithm.name().to_owned(),
        exclude_workers: a.exclude_worker.clone(),
        labels: labels.to_vec(),
        images,
        creation_time_micros: epoch_micros(now),
        job_output: a.job.job_output.clone(),
        manifest: a.job.manifest.clone(),
        via_lambda: a.via_lambda.clone(),
    };
    let uri = state_uri(output);
    if a.resume {
        match store.get(&uri, 1 << 20).await {
            Ok(bytes) => {
                let before = RunState::parse(&uri, &bytes)?;
                before.check_resume(&state, &uri)?;
                return Ok(before.created());
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).context("--resume: reading the earlier run's state"),
        }
    }
    crate::job::put_text(store, &uri, state.to_json(), "application/json").await?;
    Ok(now)
}

/// `2026-11-30T10:00:00Z` (a `Z` is added when missing) as a time.
fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
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
        .with_context(|| {
            format!(
                "--creation-date {text}: expected an RFC 3339 time such as 2026-11-30T10:00:00Z"
            )
        })
}

/// Every worker-response object of the job, by image (line); objects of ids outside the
/// manifest are left out with a warning.
async fn list_responses(
    store: &AnyStore,
    job: &S3Uri,
    images: usize,
) -> anyhow::Result<Vec<Vec<(Saved, S3Uri)>>> {
    let folder = job.join(WORKER_RESPONSES);
    let keys = store
        .list(&folder)
        .await
        .context("listing the job's worker responses")?;
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
