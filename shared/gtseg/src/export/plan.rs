//! What an export will hold, from the manifests alone (read as they arrive): for each image
//! (each `source-ref`), the newest job's label, or an older one where a newer job failed;
//! the class table; the verification filter; and every image left out, with its reason. No
//! mask is read here.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::labels::LabelTable;
use super::{ExportError, ExportOptions, Source};
use crate::consolidate::{DISAGREEMENT_FOLDER, OUTPUT_FOLDER};
use crate::finished::{InputLine, LineReader};
use crate::location::{Location, ReadError};
use crate::store::ObjectStore;
use crate::uri::S3Uri;

/// The largest manifest read (it is streamed: this bounds only the time).
const MAX_MANIFEST_BYTES: u64 = 64 << 30;
/// The largest disagreement map read to learn whether the maps exist.
const MAX_PROBE_BYTES: u64 = 64 << 20;

/// An image's classes by mask index, as its `internal-color-map` names them; shared by the
/// images whose maps name the same classes (most of a job's), so that the plan stays small.
pub(super) type ClassNames = Arc<Vec<(usize, String)>>;

/// A label one job gave an image: what the export needs of it, and no more.
#[derive(Debug, Clone)]
pub(super) struct Label {
    /// Which job (the place of its manifest among the sources, oldest first).
    pub(super) job: usize,
    /// The mask's URI.
    pub(super) mask: String,
    pub(super) classes: ClassNames,
    /// The image's `confidence` (every class of `internal-color-map` has the same).
    pub(super) confidence: Option<f64>,
    /// Whether the job labelled it by machine (`human-annotated: no`).
    pub(super) by_machine: bool,
    /// The disagreement map the metadata names (`consolidation.disagreement-ref`).
    pub(super) map_ref: Option<String>,
    /// The report object that holds what did not fit in the metadata (`report-ref`).
    pub(super) report_ref: Option<String>,
}

impl Label {
    /// Whether the metadata names a disagreement map, or a report object that may.
    fn names_map(&self) -> bool {
        self.map_ref.is_some() || self.report_ref.is_some()
    }

    /// Where these functions' consolidation put the disagreement map, from the mask's URI,
    /// for a manifest that lost the metadata naming it (Ground Truth's own `output.manifest`
    /// keeps only its own keys): the mask `…/consolidated-annotation/output/F` has its map at
    /// `…/consolidated-annotation/disagreement/F`.
    pub(super) fn derived_map(&self) -> Option<String> {
        let (head, file) = self.mask.rsplit_once(&format!("/{OUTPUT_FOLDER}/"))?;
        (!file.is_empty() && !file.contains('/'))
            .then(|| format!("{head}/{DISAGREEMENT_FOLDER}/{file}"))
    }
}

/// One image of the plan.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) source_ref: String,
    pub(super) label: Label,
}

/// An image that is not exported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeftOut {
    /// The image's `source-ref`.
    #[serde(rename = "source-ref")]
    pub source_ref: String,
    /// Why, in a sentence.
    pub reason: String,
    /// Whether a fault (a timeout, throttling, access denied) kept it out, rather than its
    /// data: another export may hold it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fault: bool,
}

impl LeftOut {
    /// An image left out for what its data is or lacks.
    pub(super) fn because(source_ref: String, reason: impl Into<String>) -> Self {
        Self {
            source_ref,
            reason: reason.into(),
            fault: false,
        }
    }
}

/// The plan: the images to export, in order of first appearance, and the counts that the
/// report gives.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) images: Vec<Planned>,
    pub(super) table: LabelTable,
    pub(super) left_out: Vec<LeftOut>,
    /// Lines with no `source-ref` (or not JSON), by job.
    pub(super) unreadable_lines: usize,
    /// Failure lines read (Ground Truth's form), over every job.
    pub(super) failures: Vec<FailureLine>,
    /// Images exported with an older job's label because a newer job failed them.
    pub(super) older_label_kept: Vec<String>,
}

/// A job's failure line: the image it failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureLine {
    /// The image's `source-ref`.
    #[serde(rename = "source-ref")]
    pub source_ref: String,
    /// The manifest that holds the line.
    pub manifest: String,
    /// The line's `failure-reason`, or what the line lacks.
    pub reason: String,
}

/// What the manifests say of one image so far.
#[derive(Debug, Default)]
struct Entry {
    label: Option<Label>,
    /// The newest job whose line for it is a failure line.
    failed_in: Option<usize>,
}

/// Reads every manifest (oldest first) and the verification manifest, and decides what is
/// exported.
pub(super) async fn plan<S: ObjectStore>(
    store: &S,
    opts: &ExportOptions,
) -> Result<Plan, ExportError> {
    let mut plan = Plan::default();
    let mut order: Vec<String> = Vec::new();
    let mut entries: HashMap<String, Entry> = HashMap::new();
    for (job, source) in opts.sources.iter().enumerate() {
        read_job(store, job, source, &mut plan, &mut order, &mut entries).await?;
    }
    let verdicts = match &opts.verification {
        Some(v) => Some(categories(store, &v.manifest, &v.attr).await?),
        None => None,
    };
    for source_ref in order {
        let Some(entry) = entries.remove(&source_ref) else {
            continue;
        };
        let Some(label) = entry.label else {
            let why = "every job that has this image failed it (a failure line)";
            plan.left_out.push(LeftOut::because(source_ref, why));
            continue;
        };
        if entry.failed_in.is_some_and(|j| j > label.job) {
            plan.older_label_kept.push(source_ref.clone());
        }
        if let Some(why) = filtered(opts, verdicts.as_ref(), &source_ref, &label) {
            plan.left_out.push(LeftOut::because(source_ref, why));
            continue;
        }
        plan.images.push(Planned { source_ref, label });
    }
    if opts.ignore_below.is_some() && !plan.images.is_empty() {
        check_maps(store, &plan.images).await?;
    }
    Ok(plan)
}

/// Refuses `--ignore-below` before any work when the inputs have no disagreement map at all:
/// no label names one, and the first derived place holds none.
async fn check_maps<S: ObjectStore>(store: &S, images: &[Planned]) -> Result<(), ExportError> {
    if images.iter().any(|p| p.label.names_map()) {
        return Ok(());
    }
    let Some(uri) = images.iter().find_map(|p| p.label.derived_map()) else {
        return Err(ExportError::NoMaps);
    };
    let Ok(uri) = S3Uri::parse(&uri) else {
        return Err(ExportError::NoMaps);
    };
    match store.get(&uri, MAX_PROBE_BYTES).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Err(ExportError::NoMaps),
        Err(e) => Err(ExportError::Read(Box::new(ReadError::Store(Box::new(e))))),
    }
}

/// Why an image with a label is left out by the filters, if it is.
fn filtered(
    opts: &ExportOptions,
    verdicts: Option<&HashMap<String, String>>,
    source_ref: &str,
    label: &Label,
) -> Option<String> {
    if let (Some(verdicts), Some(v)) = (verdicts, &opts.verification) {
        match verdicts.get(source_ref) {
            None => return Some("the verification job has no verdict on this image".into()),
            Some(category) if !v.keep.iter().any(|k| k == category) => {
                return Some(format!(
                    "the verification job rejected it (category {category:?})"
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(min) = opts.min_confidence {
        match label.confidence {
            Some(c) if c >= min => {}
            Some(c) => {
                return Some(format!(
                    "its confidence {c} is below --min-confidence {min}"
                ));
            }
            None => return Some("its metadata gives no confidence (--min-confidence)".into()),
        }
    }
    None
}

/// Reads job `job`'s manifest into the entries.
async fn read_job<S: ObjectStore>(
    store: &S,
    job: usize,
    source: &Source,
    plan: &mut Plan,
    order: &mut Vec<String>,
    entries: &mut HashMap<String, Entry>,
) -> Result<(), ExportError> {
    let attr = &source.attr;
    let mut classes = Interner::default();
    let unreadable = each_labelled(store, &source.manifest, attr, |source_ref, line, meta| {
        let entry = entries.entry(source_ref.clone()).or_insert_with(|| {
            order.push(source_ref.clone());
            Entry::default()
        });
        match (
            meta.get("failure-reason"),
            line.get(attr).and_then(Value::as_str),
        ) {
            (None, Some(mask)) => {
                let empty = Map::new();
                let colors = meta
                    .get("internal-color-map")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let text = |v: &Value| v.as_str().map(str::to_owned);
                entry.label = Some(Label {
                    job,
                    mask: mask.to_owned(),
                    classes: classes.get(colors, &mut plan.table)?,
                    confidence: colors.values().find_map(|c| c["confidence"].as_f64()),
                    by_machine: meta["human-annotated"] == "no",
                    map_ref: text(&meta["consolidation"]["disagreement-ref"]),
                    report_ref: text(&meta["report-ref"]),
                });
            }
            (reason, _) => {
                let reason = match reason {
                    Some(Value::String(r)) => r.clone(),
                    Some(r) => r.to_string(),
                    None => format!("the line has {attr}-metadata but no {attr} (no mask)"),
                };
                plan.failures.push(FailureLine {
                    source_ref,
                    manifest: source.manifest.to_string(),
                    reason,
                });
                entry.failed_in = Some(job);
            }
        }
        Ok(())
    })
    .await?;
    plan.unreadable_lines += unreadable;
    Ok(())
}

/// Calls `each(source-ref, line, <attr>-metadata)` for every line of `manifest` that carries
/// the label attribute's metadata, as the lines arrive; returns how many lines have no
/// `source-ref` or are not JSON objects. A manifest of which no line carries it is refused
/// (a typo in the attribute, most likely).
async fn each_labelled<S: ObjectStore>(
    store: &S,
    manifest: &Location,
    attr: &str,
    mut each: impl FnMut(String, &Map<String, Value>, &Value) -> Result<(), ExportError>,
) -> Result<usize, ExportError> {
    let opened = manifest
        .open(store, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| ExportError::Read(Box::new(e)))?;
    let mut lines = LineReader::new(opened);
    let (mut carrying, mut unreadable) = (0usize, 0usize);
    let key = format!("{attr}-metadata");
    while let Some((_, line)) = lines
        .next_line()
        .await
        .map_err(|e| ExportError::Manifest(manifest.to_string(), e.to_string()))?
    {
        let Some((source_ref, line)) = with_source(line) else {
            unreadable += 1;
            continue;
        };
        if let Some(meta) = line.get(&key) {
            carrying += 1;
            each(source_ref, &line, meta)?;
        }
    }
    if carrying == 0 {
        return Err(ExportError::NoAttribute {
            manifest: manifest.to_string(),
            attr: attr.to_owned(),
        });
    }
    Ok(unreadable)
}

/// A line's `source-ref` and the line, when it has one.
fn with_source(line: InputLine) -> Option<(String, Map<String, Value>)> {
    let line = line.ok()?;
    let source = line.get("source-ref")?.as_str()?.to_owned();
    Some((source, line))
}

/// The class names of the colour maps met so far, each kept once.
#[derive(Default)]
struct Interner(HashMap<Vec<(usize, String)>, ClassNames>);

impl Interner {
    /// The class names of `colors`, shared with earlier images whose maps name the same; the
    /// table learns each map's classes the first time the map is met.
    fn get(
        &mut self,
        colors: &Map<String, Value>,
        table: &mut LabelTable,
    ) -> Result<ClassNames, ExportError> {
        let mut names: Vec<(usize, String)> = colors
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.get("class-name")?.as_str()?.to_owned())))
            .collect();
        names.sort();
        if let Some(known) = self.0.get(&names) {
            return Ok(Arc::clone(known));
        }
        table.learn(colors).map_err(ExportError::Classes)?;
        let shared = Arc::new(names.clone());
        self.0.insert(names, Arc::clone(&shared));
        Ok(shared)
    }
}

/// Each image's verdict in a verification job's output manifest: its category's name
/// (`<attr>-metadata`'s `class-name`), for the lines that are not failure lines.
async fn categories<S: ObjectStore>(
    store: &S,
    manifest: &Location,
    attr: &str,
) -> Result<HashMap<String, String>, ExportError> {
    let mut verdicts = HashMap::new();
    each_labelled(store, manifest, attr, |source_ref, _, meta| {
        if let Some(category) = meta.get("class-name").and_then(Value::as_str) {
            verdicts.insert(source_ref, category.to_owned());
        }
        Ok(())
    })
    .await?;
    Ok(verdicts)
}
