//! A run's inputs, gathered and checked before any batch: the store, the job's labels (read
//! once and sent in every batch's event), the input manifest, each image's worker-response
//! objects, the lines the job labelled by machine, the batches, the output's lock, and the
//! run's state (kept from an earlier run with `--resume`).
//!
//! The checks keep the job's objects safe: the output is never the job's own folder nor one
//! of Ground Truth's folders in it, never holds an object the run reads, and never gets a
//! label attribute that would replace a line's own fields.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use gtseg::finished::{
    BatchNotes, Holder, InputLine, OutputLock, RunLayout, RunState, Saved, WORKER_RESPONSES,
    attribute_collision, epoch_micros, machine_label, new_run_id, output_manifest_uri,
    parse_manifest, parse_worker_response, state_uri, worker_response_key,
};
use gtseg::{
    Algorithm, AnyStore, Config, Limits, Location, ObjectStore, S3Uri, SavedJobs, Service,
    read_label_config,
};
use serde_json::Value;
use tokio::sync::Semaphore;
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
    /// The lines the job labelled by machine and no worker answered: their label and its
    /// metadata, kept as they are.
    pub(super) machine: HashMap<usize, (Value, Value)>,
    /// The images of each batch.
    pub(super) batches: Vec<Range<usize>>,
    /// The batches that have notes from an earlier attempt (with `--resume`).
    pub(super) noted: HashSet<usize>,
}

impl Run {
    /// Gathers and checks the run's inputs, and takes the output's lock (released by the
    /// caller).
    pub(super) async fn open(a: &Args) -> anyhow::Result<(Self, OutputLock)> {
        let (store, job, manifest) = crate::job::open(&a.job).await?;
        let dir = a.job.store.as_deref();
        let output = crate::store::folder(&a.output, "--output", dir)?;
        let label_config = match &a.label_config {
            Some(c) => Some(crate::store::file(c, "--label-config", dir)?),
            None => None,
        };
        check_output(
            &job,
            &output,
            &[
                ("--manifest", Some(&manifest)),
                ("--label-config", label_config.as_ref()),
            ],
        )?;
        let mut config = Config::from_env()?;
        if let Some(algorithm) = a.algorithm {
            config.algorithm = algorithm.0;
        }
        let (labels, job_arn) = job_labels(a, &store, &config, label_config).await?;
        let job_name = job.key().rsplit('/').next().unwrap_or("job");
        let job_arn = job_arn.unwrap_or_else(|| {
            format!("arn:aws:sagemaker:us-east-1:000000000000:labeling-job/{job_name}")
        });
        let lines = crate::job::read_manifest(&store, &manifest).await?;
        let first = lines.iter().find_map(|l| l.as_ref().ok());
        if let Some(why) = attribute_collision(&a.label_attribute_name, first) {
            anyhow::bail!("--label-attribute-name: {why}");
        }
        let responses = list_responses(&store, &job, lines.len()).await?;
        if !a.exclude_worker.is_empty() {
            check_excluded(&store, &responses, &a.exclude_worker, config.limits).await?;
        }
        let machine = machine_labels(&store, &job, &responses).await?;
        let lambda = match &a.via_lambda {
            Some(f) => Some(Function::new(f).await?),
            None => None,
        };
        let (lock, run_id, now) =
            claim_output(a, &store, &output, config.algorithm, &labels, lines.len()).await?;
        let batches = (0..lines.len())
            .step_by(a.batch_size)
            .map(|s| s..(s + a.batch_size).min(lines.len()))
            .collect();
        let mut run = Self {
            limits: config.limits,
            algorithm: config.algorithm,
            service: Service::new(store.clone(), config),
            store,
            lambda,
            job_arn,
            labels,
            attr: a.label_attribute_name.clone(),
            layout: RunLayout::new(output, run_id),
            exclude: a.exclude_worker.clone(),
            now,
            lines,
            responses,
            machine,
            batches,
            noted: HashSet::new(),
        };
        if a.resume {
            let noted = run.batch_notes().await;
            match noted {
                Ok(n) => run.noted = n.into_keys().collect(),
                Err(e) => {
                    let _ = lock.release(&run.store).await;
                    return Err(e);
                }
            }
        }
        Ok((run, lock))
    }

    /// The input manifest's `source-ref` of line `i`.
    pub(super) fn source(&self, i: usize) -> Option<&str> {
        self.lines[i].as_ref().ok()?.get("source-ref")?.as_str()
    }

    /// The notes of the batches that have some, by batch.
    pub(super) async fn batch_notes(&self) -> anyhow::Result<HashMap<usize, BatchNotes>> {
        let folder = self.layout.notes_folder();
        let mut notes = HashMap::new();
        for uri in self
            .store
            .list(&folder)
            .await
            .context("listing the batches' notes")?
        {
            let Some(k) = self.layout.batch_of_response(uri.key()) else {
                continue;
            };
            let bytes = self
                .store
                .get(&uri, 64 << 20)
                .await
                .context("reading a batch's notes")?;
            notes.insert(k, BatchNotes::parse(&uri, &bytes)?);
        }
        Ok(notes)
    }
}

/// Takes the output's lock, removes what a killed run left there, and settles the run's id
/// and creation time (see [`run_id`]); the lock is released again when that fails.
async fn claim_output(
    a: &Args,
    store: &AnyStore,
    output: &S3Uri,
    algorithm: Algorithm,
    labels: &[String],
    images: usize,
) -> anyhow::Result<(OutputLock, String, SystemTime)> {
    let holder = Holder::this_process(command_line(), None);
    let lock = OutputLock::acquire(store, output, &holder, a.break_lock).await?;
    let claimed = async {
        if let AnyStore::Local(local) = store {
            let removed = local.remove_stale_temporaries(output).await?;
            if removed > 0 {
                warn!(
                    files = removed,
                    "temporary files of an interrupted run removed"
                );
            }
        }
        run_id(a, store, output, algorithm, labels, images).await
    };
    match claimed.await {
        Ok((id, now)) => Ok((lock, id, now)),
        Err(e) => {
            let _ = lock.release(store).await;
            Err(e)
        }
    }
}

/// The command line, for the lock's holder.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Refuses an output that would write over the job's objects or over what the run reads:
/// the job's own folder or one that contains it, Ground Truth's folders inside it
/// (`annotations/`, `manifests/`), and a folder that holds an input.
fn check_output(
    job: &S3Uri,
    output: &S3Uri,
    reads: &[(&str, Option<&Location>)],
) -> anyhow::Result<()> {
    let under = |uri: &S3Uri, folder: &S3Uri| {
        uri.bucket() == folder.bucket() && uri.key().starts_with(&format!("{}/", folder.key()))
    };
    let same = job.bucket() == output.bucket() && job.key() == output.key();
    if same || under(job, output) {
        anyhow::bail!(
            "--output {output} is the job's own folder, or holds it: a re-consolidation never writes over the job's objects. Give a new folder, such as {job}-v2/ or {job}/rerun-1/"
        );
    }
    if under(output, job) {
        let below = &output.key()[job.key().len() + 1..];
        let first = below.split('/').next().unwrap_or("");
        if ["annotations", "manifests"].contains(&first) {
            anyhow::bail!(
                "--output {output} lies in Ground Truth's own {first}/ folder of the job: give a fresh sub-folder of your own, such as {job}/rerun-1/"
            );
        }
    }
    for (flag, at) in reads {
        if let Some(Location::Object(uri)) = at
            && under(uri, output)
        {
            anyhow::bail!(
                "{flag} {uri} lies inside --output {output}, which the run writes: give an --output that holds none of its inputs"
            );
        }
    }
    Ok(())
}

/// The job's labels, read once here so that every batch (here or on the deployed function)
/// uses the job's one list, and the job's ARN when a saved description names it.
async fn job_labels(
    a: &Args,
    store: &AnyStore,
    config: &Config,
    label_config: Option<Location>,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let dir = a.job.store.as_deref();
    let (location, arn) = match (label_config, &a.labeling_job) {
        (Some(c), _) => (c, None),
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

/// The run's id and creation time: new ones, saved with the run's options in its state; with
/// `--resume`, the earlier run's, once its saved options are found to be these. An output
/// that holds an earlier run is refused without `--resume` or `--force`.
async fn run_id(
    a: &Args,
    store: &AnyStore,
    output: &S3Uri,
    algorithm: Algorithm,
    labels: &[String],
    images: usize,
) -> anyhow::Result<(String, SystemTime)> {
    let created = match &a.creation_date {
        Some(t) => parse_time(t)?,
        None => SystemTime::now(),
    };
    let id = new_run_id(created, &used_run_ids(store, output).await?);
    let state = RunState {
        label_attribute_name: a.label_attribute_name.clone(),
        batch_size: a.batch_size,
        algorithm: algorithm.name().to_owned(),
        exclude_workers: a.exclude_worker.clone(),
        labels: labels.to_vec(),
        images,
        creation_time_micros: epoch_micros(created),
        run_id: id.clone(),
        job_output: a.job.job_output.clone(),
        manifest: a.job.manifest.clone(),
        via_lambda: a.via_lambda.clone(),
    };
    let uri = state_uri(output);
    let earlier = match store.get(&uri, 1 << 20).await {
        Ok(bytes) => Some(bytes),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e).context("reading the state of the output's earlier run"),
    };
    match (earlier, a.resume, a.force) {
        (Some(bytes), true, _) => {
            let before = RunState::parse(&uri, &bytes)?;
            before.check_resume(&state, &uri)?;
            return Ok((before.run_id.clone(), before.created()));
        }
        (Some(_), false, false) => anyhow::bail!(
            "--output {output} holds an earlier run ({uri}): rerun with --resume to finish it, with --force to replace it, or give a fresh --output"
        ),
        _ => {}
    }
    crate::job::put_text(store, &uri, state.to_json(), "application/json").await?;
    Ok((id, created))
}

/// The ids of the runs whose batch objects the output holds.
async fn used_run_ids(store: &AnyStore, output: &S3Uri) -> anyhow::Result<BTreeSet<String>> {
    let layout = RunLayout::new(output.clone(), String::new());
    let mut used = BTreeSet::new();
    for folder in [layout.requests_folder(), layout.responses_folder()] {
        let keys = store
            .list(&folder)
            .await
            .context("listing the output's earlier runs")?;
        used.extend(
            keys.iter()
                .filter_map(|u| RunLayout::run_of(u.key()).map(str::to_owned)),
        );
    }
    Ok(used)
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
/// manifest are left out with a warning. A job folder without any is refused: the folder is
/// likely mistyped.
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
    let found = by_image.iter().filter(|r| !r.is_empty()).count();
    anyhow::ensure!(
        found > 0,
        "no worker response for any line of the manifest under {folder} ({outside} for other ids): is --job-output the job's folder, <S3OutputPath>/<job-name>/, and --manifest its input manifest?"
    );
    if outside > 0 {
        warn!(
            objects = outside,
            "worker responses whose datasetObjectId is not a line of the manifest are left out"
        );
    }
    info!(
        images,
        with_responses = found,
        "the job's worker responses listed"
    );
    Ok(by_image)
}

/// Refuses an `--exclude-worker` that names no worker of the job (a typo would exclude
/// nobody): every worker-response object is read once for its workers.
async fn check_excluded(
    store: &AnyStore,
    responses: &[Vec<(Saved, S3Uri)>],
    exclude: &[String],
    limits: Limits,
) -> anyhow::Result<()> {
    let reads = Arc::new(Semaphore::new(16));
    let mut reading = tokio::task::JoinSet::new();
    for (_, uri) in responses.iter().flatten() {
        let (store, uri, reads) = (store.clone(), uri.clone(), Arc::clone(&reads));
        reading.spawn(async move {
            let _permit = reads.acquire().await?;
            let bytes = store.get(&uri, limits.max_payload_bytes).await;
            let workers: Vec<String> = match bytes.map(|b| parse_worker_response(&b)) {
                Ok(Ok(answers)) => answers
                    .into_iter()
                    .map(|a| a.map_or_else(|e| e.worker_id, |a| a.worker_id))
                    .collect(),
                // An object that cannot be read is reported when its image is prepared.
                _ => Vec::new(),
            };
            anyhow::Ok(workers)
        });
    }
    let mut workers = BTreeSet::new();
    while let Some(joined) = reading.join_next().await {
        workers.extend(joined??);
    }
    let unknown: Vec<&String> = exclude.iter().filter(|w| !workers.contains(*w)).collect();
    if !unknown.is_empty() {
        let known: Vec<&String> = workers.iter().take(20).collect();
        anyhow::bail!(
            "--exclude-worker {unknown:?}: no answer of the job is by {}; its workers are {known:?}{}",
            if unknown.len() == 1 {
                "that worker"
            } else {
                "those workers"
            },
            if workers.len() > 20 {
                format!(" and {} more", workers.len() - 20)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// The lines the job labelled by machine (automated data labeling) and no worker answered,
/// from the job's own output manifest when there is one: their label and metadata.
async fn machine_labels(
    store: &AnyStore,
    job: &S3Uri,
    responses: &[Vec<(Saved, S3Uri)>],
) -> anyhow::Result<HashMap<usize, (Value, Value)>> {
    let uri = output_manifest_uri(job);
    let bytes = match store.get(&uri, 1 << 30).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(HashMap::new()),
        Err(e) => return Err(e).context("reading the job's output manifest"),
    };
    let lines =
        parse_manifest(&bytes).with_context(|| format!("the job's output manifest {uri}"))?;
    let machine: HashMap<usize, (Value, Value)> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| responses.get(*i).is_some_and(Vec::is_empty))
        .filter_map(|(i, l)| {
            let (_, value, meta) = machine_label(l.as_ref().ok()?)?;
            Some((i, (value, meta)))
        })
        .collect();
    if !machine.is_empty() {
        info!(
            lines = machine.len(),
            "lines labelled by machine are kept as they are"
        );
    }
    Ok(machine)
}
