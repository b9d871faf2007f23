//! `gtseg job manifest`: a job's output manifest rebuilt from its input manifest and the
//! consolidation function's saved responses, without consolidating anything again.
//!
//! Ground Truth keeps every response of the function verbatim under
//! `annotations/consolidated-annotation/consolidation-response/`; when it replaces a custom
//! function's `-metadata` with its own in `output.manifest`, this restores the full
//! metadata (the colour map above all). A line with no saved response keeps the label the
//! job's own output manifest gives it (a machine label, say): a rebuild never has fewer
//! labels than what it rebuilds. An existing manifest is replaced only with `--force`, and
//! even then none of its labelled lines becomes a failure line.

use std::collections::HashMap;

use anyhow::Context as _;
use gtseg::finished::{
    CONSOLIDATION_RESPONSES, Holder, InputLine, OutputLock, attribute_collision,
    consolidation_response_key, label_attributes, output_line, output_manifest_uri,
    parse_consolidation_response, parse_manifest,
};
use gtseg::{AnyStore, ObjectStore, S3Uri};
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::outcome::Incomplete;

/// Options of `gtseg job manifest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobLocation,
    /// The job's own label attribute (its `LabelAttributeName`): the one its saved responses
    /// carry.
    #[arg(long, value_name = "NAME")]
    label_attribute_name: String,
    /// Where `manifests/output/output.manifest` goes: an s3:// URI, or with --store a path
    /// inside DIR. The job's own folder is allowed with --force.
    #[arg(long, value_name = "URI")]
    output: String,
    /// Replace an existing output manifest at --output (its labelled lines are kept where no
    /// saved response gives one).
    #[arg(long)]
    force: bool,
    /// Take the output's lock even though another run holds it (see docs/jobs.md, "Safety").
    #[arg(long)]
    break_lock: bool,
}

/// The largest saved response or manifest read.
const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// What the saved responses give: each image's content by id.
struct Saved {
    labels: HashMap<String, Map<String, Value>>,
    /// The saved-response objects read.
    objects: usize,
    /// Items or objects that could not be read, each with why.
    malformed: Vec<String>,
}

/// Runs `gtseg job manifest`.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let (store, job, manifest) = super::open(&a.job).await?;
    let output = crate::store::folder(&a.output, "--output", a.job.store.as_deref())?;
    let lines = super::read_manifest(&store, &manifest).await?;
    let attr = &a.label_attribute_name;
    if let Some(why) = attribute_collision(attr, lines.iter().find_map(|l| l.as_ref().ok())) {
        anyhow::bail!("--label-attribute-name: {why}");
    }
    let saved = saved_labels(&store, &job, attr).await?;
    let holder = Holder::this_process(std::env::args().collect::<Vec<_>>().join(" "), None);
    let lock = OutputLock::acquire(&store, &output, &holder, a.break_lock).await?;
    let result = write(&a, &store, &job, &output, &lines, &saved).await;
    if let Err(e) = lock.release(&store).await {
        warn!("the output's lock could not be removed: {e}");
    }
    result
}

/// Writes the rebuilt manifest; ends [`Incomplete`] when a saved response could not be read.
async fn write(
    a: &Args,
    store: &AnyStore,
    job: &S3Uri,
    output: &S3Uri,
    lines: &[InputLine],
    saved: &Saved,
) -> anyhow::Result<()> {
    let attr = &a.label_attribute_name;
    let target = output_manifest_uri(output);
    let existing = read_lines(store, &target).await?;
    if existing.is_some() && !a.force {
        anyhow::bail!(
            "{target} exists (Ground Truth's, or an earlier rebuild's): give another --output, or --force to replace it (none of its labelled lines becomes a failure line)"
        );
    }
    let job_lines = if output_manifest_uri(job) == target {
        None
    } else {
        read_lines(store, &output_manifest_uri(job)).await?
    };
    let kept_from = [existing.as_deref(), job_lines.as_deref()];
    let (mut restored, mut kept, mut missing) = (0usize, 0usize, 0usize);
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        let content = saved.labels.get(&i.to_string());
        let earlier = kept_from
            .iter()
            .flatten()
            .find_map(|l| labelled(l.get(i)?, attr));
        let out = match (line, content, earlier) {
            (Ok(input), Some(c), _) => {
                restored += 1;
                output_line(input, attr, Some(c), "")
            }
            (Ok(input), None, Some(c)) => {
                kept += 1;
                output_line(input, attr, Some(&c), "")
            }
            (Ok(input), None, None) => {
                missing += 1;
                let reason = "no saved consolidation response for this image (Ground Truth marked it failed, or it was never consolidated)";
                output_line(input, attr, None, reason)
            }
            (Err(why), _, _) => {
                missing += 1;
                let reason = format!("input line {i} is unusable: {why}");
                output_line(&Map::new(), attr, None, &reason)
            }
        };
        text.push_str(&out);
        text.push('\n');
    }
    super::put_text(store, &target, text, "application/jsonlines").await?;
    info!(responses = saved.objects, restored, kept, missing, manifest = %target, "output manifest rebuilt");
    eprintln!(
        "gtseg: {} lines: {restored} with their label from {} saved responses, {kept} kept from the manifest's earlier label, {missing} failed; wrote {target}",
        lines.len(),
        saved.objects,
    );
    if !saved.malformed.is_empty() {
        return Err(Incomplete(format!(
            "{} saved responses or items could not be read, so their images may be failure lines: {}",
            saved.malformed.len(),
            saved.malformed.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// The label `attr` of an output-manifest line, with its metadata, when the line has one (a
/// failure line does not).
fn labelled(line: &InputLine, attr: &str) -> Option<Map<String, Value>> {
    let line = line.as_ref().ok()?;
    let meta = line.get(&format!("{attr}-metadata"))?;
    let value = line.get(attr)?;
    (meta.get("failure-reason").is_none()).then(|| {
        Map::from_iter([
            (attr.to_owned(), value.clone()),
            (format!("{attr}-metadata"), meta.clone()),
        ])
    })
}

/// The lines of the manifest at `uri`, or `None` when there is none.
async fn read_lines(store: &AnyStore, uri: &S3Uri) -> anyhow::Result<Option<Vec<InputLine>>> {
    match store.get(uri, MAX_OBJECT_BYTES).await {
        Ok(bytes) => Ok(Some(
            parse_manifest(&bytes).with_context(|| format!("{uri}"))?,
        )),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {uri}")),
    }
}

/// Each image's content in the function's saved responses (the newest response for an image
/// wins). Refuses a job with no saved response, and an attribute none of them carries (a
/// typo), naming the ones they do.
async fn saved_labels(store: &AnyStore, job: &S3Uri, attr: &str) -> anyhow::Result<Saved> {
    let folder = job.join(CONSOLIDATION_RESPONSES);
    let mut objects: Vec<_> = store
        .list(&folder)
        .await
        .context("listing the saved consolidation responses")?
        .into_iter()
        .filter_map(|u| {
            Some((
                consolidation_response_key(&u.key()[folder.key().len()..])?,
                u,
            ))
        })
        .collect();
    anyhow::ensure!(
        !objects.is_empty(),
        "no saved consolidation response under {folder}: is --job-output the job's folder, <S3OutputPath>/<job-name>/?"
    );
    // Oldest first, so that the newest response for an image is the one kept.
    objects.sort();
    let mut saved = Saved {
        labels: HashMap::new(),
        objects: objects.len(),
        malformed: Vec::new(),
    };
    let mut carried: Vec<String> = Vec::new();
    for (_, uri) in &objects {
        let bytes = store
            .get(uri, MAX_OBJECT_BYTES)
            .await
            .context("reading a saved response")?;
        let items = match parse_consolidation_response(&bytes) {
            Ok(items) => items,
            Err(e) => {
                saved.malformed.push(format!("{uri}: {e}"));
                continue;
            }
        };
        for item in items {
            match item {
                Ok(item) => {
                    let content = item.consolidated_annotation.content;
                    for a in label_attributes(&content) {
                        if !carried.iter().any(|c| c == a) {
                            carried.push(a.to_owned());
                        }
                    }
                    saved.labels.insert(item.dataset_object_id, content);
                }
                Err(e) => saved.malformed.push(format!("an item of {uri}: {e}")),
            }
        }
    }
    if !saved.labels.is_empty() && !carried.iter().any(|c| c == attr) {
        anyhow::bail!(
            "--label-attribute-name {attr}: no saved response carries it; they carry {carried:?}"
        );
    }
    saved
        .labels
        .retain(|_, c| c.contains_key(&format!("{attr}-metadata")));
    Ok(saved)
}
