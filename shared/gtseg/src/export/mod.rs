//! Training sets from finished jobs (`gtseg export`, feature `export`): one or more output
//! manifests (a chain of jobs, oldest first) become a folder that an ecosystem's own reader
//! takes: `voc` (mmsegmentation, torchvision, CVAT, Datumaro), `coco` (COCO-Stuff's semantic
//! style, pycocotools) or `hf` (Parquet for Hugging Face `datasets`).
//!
//! `plan` reads the manifests and decides what is exported; `labels` numbers the classes by
//! name; `names` gives each image its id and its split; `image` reads and remaps one image;
//! `voc`, `coco` and `hf` write the formats; `report` counts everything. Images are read a
//! few at once (reads overlap the encoding) and written in the plan's order, so two exports
//! of the same inputs are byte for byte the same. Nothing is written outside the output
//! folder, which must be new or empty.

mod coco;
mod hf;
mod image;
mod labels;
mod names;
mod plan;
mod report;
mod voc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

pub use hf::MAX_SHARD_BYTES;
pub use labels::{ExportClass, IGNORE, LabelTable, TooManyClasses, VOID_COLOR};
pub use names::{BadSplit, Split, parse_splits, split_of};
pub use plan::{FailureLine, LeftOut};
pub use report::{Balance, ClassBalance, Counts, ExportReport, UnknownPixels};

use crate::location::{Location, ReadError};
use crate::store::ObjectStore;
use image::Ready;

/// A training-set format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Pascal VOC's segmentation layout.
    Voc,
    /// COCO-Stuff's semantic segmentation, compressed RLE.
    Coco,
    /// Parquet shards for Hugging Face `datasets`.
    Hf,
}

impl Format {
    /// Every format.
    pub const ALL: [Self; 3] = [Self::Voc, Self::Coco, Self::Hf];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Voc => "voc",
            Self::Coco => "coco",
            Self::Hf => "hf",
        }
    }
}

/// One job's output manifest and the label attribute to export from it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The output manifest.
    pub manifest: Location,
    /// The label attribute.
    pub attr: String,
}

/// A verification job that filters the export.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Its output manifest.
    pub manifest: Location,
    /// Its label attribute.
    pub attr: String,
    /// The categories whose images are exported.
    pub keep: Vec<String>,
}

/// What to export, and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The jobs, oldest first: for each image the newest job that labelled it wins.
    pub sources: Vec<Source>,
    /// The format.
    pub format: Format,
    /// The output folder: new, or empty.
    pub out: PathBuf,
    /// The splits and their shares.
    pub splits: Vec<Split>,
    /// Pixels whose winning share of the votes is below this are ignored.
    pub ignore_below: Option<f64>,
    /// Images whose confidence is below this are left out.
    pub min_confidence: Option<f64>,
    /// A verification job whose verdicts filter the images.
    pub verification: Option<Verification>,
    /// The largest mask, in pixels.
    pub max_pixels: u64,
    /// Images read at once.
    pub in_flight: usize,
}

/// An export that cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output folder exists and holds something.
    #[error("{} is not empty: give a new or empty --out, so that nothing in it is written over", .0.display())]
    OutNotEmpty(PathBuf),
    /// The output folder holds an export that did not finish (no `export-report.json`).
    #[error("{} holds an export that did not finish (it has no export-report.json): remove the folder, or give another --out", .0.display())]
    Unfinished(PathBuf),
    /// A manifest could not be read.
    #[error("{0}")]
    Read(Box<ReadError>),
    /// A manifest broke off or holds an overlong line.
    #[error("reading {0}: {1}")]
    Manifest(String, String),
    /// No line of a manifest carries the label attribute (a typo, most likely).
    #[error("no line of {manifest} carries the label attribute {attr:?}")]
    NoAttribute {
        /// The manifest.
        manifest: String,
        /// The attribute.
        attr: String,
    },
    /// The jobs have more classes than an export can number.
    #[error("{0}")]
    Classes(TooManyClasses),
    /// `--ignore-below` with inputs that name no disagreement map at all.
    #[error(
        "--ignore-below needs the images' disagreement maps, and no label of the inputs names one (they come from these functions' consolidation, not from Ground Truth's built-in one)"
    )]
    NoMaps,
    /// Writing the export failed.
    #[error("writing {}: {error}", path.display())]
    Write {
        /// The output folder.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

/// An image on its way to the writer.
struct Exported<'a> {
    id: &'a str,
    split: &'a str,
    ready: &'a Ready,
}

/// A format's writer: images in order, then the end.
trait Writer {
    fn add(&mut self, image: &Exported<'_>) -> std::io::Result<()>;
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// Creates a new file; an existing one is an error (the folder was empty, so one would mean
/// two images with one name).
fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// What an export tells its caller as it goes (for a progress bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The manifests are read: this many images are to be exported.
    Planned(usize),
    /// One more image is written (`false`) or left out (`true`).
    Image(bool),
}

/// Exports the jobs of `opts`, telling `on_step` of the plan and of every image.
pub async fn export<S: ObjectStore>(
    store: &S,
    opts: &ExportOptions,
    on_step: &mut (dyn FnMut(Step) + Send),
) -> Result<ExportReport, ExportError> {
    check_out(&opts.out)?;
    let plan = plan::plan(store, opts).await?;
    std::fs::create_dir_all(&opts.out).map_err(|error| ExportError::Write {
        path: opts.out.clone(),
        error,
    })?;
    on_step(Step::Planned(plan.images.len()));
    // A file that exists already in a folder found empty: another export writes there too.
    let write_error = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => ExportError::OutNotEmpty(opts.out.clone()),
        _ => ExportError::Write {
            path: opts.out.clone(),
            error,
        },
    };
    let mut writer = open_writer(opts.format, &opts.out, &plan.table).map_err(write_error)?;
    let mut report = ExportReport::new(opts, &plan);
    let source_refs: Vec<&str> = plan.images.iter().map(|p| p.source_ref.as_str()).collect();
    let ids = names::ids(&source_refs);
    let ignore_above = opts.ignore_below.map(image::ignore_threshold);
    let mut waiting: BTreeMap<usize, Result<Ready, image::Skip>> = BTreeMap::new();
    let mut next = 0usize;
    let mut queue = plan.images.iter().enumerate();
    // The decoding and remapping of at most one image a core at once: more would only add
    // threads, each with its own allocator arena.
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let cpu = tokio::sync::Semaphore::new(cores);
    // Polled in this task, so that they may borrow the plan; the CPU work inside each runs
    // on the blocking pool, in parallel.
    let mut running = FuturesUnordered::new();
    loop {
        // Images read but not yet written count too: one slow read must not let the others
        // pile up behind it.
        while running.len() + waiting.len() < opts.in_flight.max(1) {
            let Some((k, planned)) = queue.next() else {
                break;
            };
            let (table, cpu) = (&plan.table, &cpu);
            running.push(async move {
                (
                    k,
                    image::prepare(store, planned, table, ignore_above, opts.max_pixels, cpu).await,
                )
            });
        }
        let Some((k, result)) = running.next().await else {
            break;
        };
        waiting.insert(k, result);
        // Written in the plan's order, whatever order the reads finish in.
        while let Some(result) = waiting.remove(&next) {
            let planned = &plan.images[next];
            let split = names::split_of(&planned.source_ref, &opts.splits);
            match result {
                Ok(ready) => {
                    let exported = Exported {
                        id: &ids[next],
                        split,
                        ready: &ready,
                    };
                    writer.add(&exported).map_err(write_error)?;
                    report.add(&planned.source_ref, split, &ready, planned.label.by_machine);
                    on_step(Step::Image(false));
                }
                Err(skip) => {
                    report.leave_out(&planned.source_ref, skip);
                    on_step(Step::Image(true));
                }
            }
            next += 1;
        }
    }
    writer.finish().map_err(write_error)?;
    std::fs::write(opts.out.join("labels.json"), plan.table.to_json()).map_err(write_error)?;
    std::fs::write(opts.out.join("export-report.json"), report.to_json()).map_err(write_error)?;
    Ok(report)
}

/// Whether `out` holds what an export writes first (one format's folders), but no report.
fn looks_like_export(out: &Path) -> bool {
    ["JPEGImages", "images", "data"]
        .iter()
        .any(|d| out.join(d).is_dir())
        && !out.join("export-report.json").exists()
}

/// The writer of `format`, its folders made in `out`.
fn open_writer(format: Format, out: &Path, table: &LabelTable) -> std::io::Result<Box<dyn Writer>> {
    Ok(match format {
        Format::Voc => Box::new(voc::Voc::new(out, table)?),
        Format::Coco => Box::new(coco::Coco::new(out, table)?),
        Format::Hf => Box::new(hf::Hf::new(out, table)?),
    })
}

/// Checks that the output folder is new or empty (it is created once the plan is made, so
/// that a refused export leaves nothing behind).
fn check_out(out: &Path) -> Result<(), ExportError> {
    match std::fs::read_dir(out).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) if looks_like_export(out) => Err(ExportError::Unfinished(out.to_path_buf())),
        Ok(false) => Err(ExportError::OutNotEmpty(out.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ExportError::Write {
            path: out.to_path_buf(),
            error,
        }),
    }
}
