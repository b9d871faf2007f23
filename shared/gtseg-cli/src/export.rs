//! `gtseg export`: finished jobs as a training set (`voc`, `coco` or `hf`), with the class
//! balance printed as a table and every image left out counted in `export-report.json`.

use std::path::PathBuf;

use anyhow::Context as _;
use gtseg::export::{self, ExportOptions, Source, Step, Verification};

use crate::choices::FormatArg;
use crate::outcome::Incomplete;
use crate::progress::Progress;

/// Options of `gtseg export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A job's output manifest (s3:// or a local path). Give one per job, oldest first, each
    /// followed by its --label-attribute-name: for each image the newest job that labelled it
    /// wins.
    #[arg(long, value_name = "URI_OR_PATH", required = true)]
    manifest: Vec<String>,
    /// The label attribute of the --manifest before it.
    #[arg(long, value_name = "NAME", required = true)]
    label_attribute_name: Vec<String>,
    /// The training-set format.
    #[arg(long)]
    format: FormatArg,
    /// The output folder: new, or empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A local directory standing in for S3 (`s3://bucket/key` is `DIR/bucket/key`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The splits and their shares, e.g. train=0.8,val=0.2 (default: every image in train).
    /// An image's split depends on its source-ref alone.
    #[arg(long, value_name = "NAME=SHARE,...", default_value = "")]
    split: String,
    /// Ignore (255, or no annotation in coco) every pixel whose winning share of the
    /// workers' votes is below SHARE, from the disagreement maps.
    #[arg(long, value_name = "SHARE")]
    ignore_below: Option<f64>,
    /// Leave out the images whose confidence is below C.
    #[arg(long, value_name = "C")]
    min_confidence: Option<f64>,
    /// A verification job's output manifest: only the images it put in a --keep-category
    /// are exported.
    #[arg(long, value_name = "URI_OR_PATH", requires_all = ["verification_attribute_name", "keep_category"])]
    verification_manifest: Option<String>,
    /// The verification job's label attribute.
    #[arg(long, value_name = "NAME", requires = "verification_manifest")]
    verification_attribute_name: Option<String>,
    /// A verification category whose images are kept (repeat for more).
    #[arg(long, value_name = "NAME", requires = "verification_manifest")]
    keep_category: Vec<String>,
    /// Masks larger than this many pixels are left out.
    #[arg(long, value_name = "PIXELS", default_value_t = 256 << 20)]
    max_pixels: u64,
    /// Images read at once (S3 reads overlap the encoding).
    #[arg(long, value_name = "N", default_value_t = 16)]
    in_flight: usize,
}

/// The library's options from the command line, checked.
fn options(a: Args) -> anyhow::Result<ExportOptions> {
    let dir = a.store.as_deref();
    anyhow::ensure!(
        a.manifest.len() == a.label_attribute_name.len(),
        "give one --label-attribute-name after each --manifest ({} manifests, {} names)",
        a.manifest.len(),
        a.label_attribute_name.len()
    );
    let share = |flag: &str, v: Option<f64>| -> anyhow::Result<Option<f64>> {
        match v {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                anyhow::bail!("{flag} {x}: expected a number from 0 to 1")
            }
            _ => Ok(v),
        }
    };
    let mut sources = Vec::new();
    for (manifest, attr) in a.manifest.iter().zip(&a.label_attribute_name) {
        sources.push(Source {
            manifest: crate::store::file(manifest, "--manifest", dir)?,
            attr: attr.clone(),
        });
    }
    let verification = match (&a.verification_manifest, a.verification_attribute_name) {
        (Some(manifest), Some(attr)) => Some(Verification {
            manifest: crate::store::file(manifest, "--verification-manifest", dir)?,
            attr,
            keep: a.keep_category,
        }),
        _ => None,
    };
    Ok(ExportOptions {
        sources,
        format: a.format.0,
        out: a.out,
        splits: export::parse_splits(&a.split)?,
        ignore_below: share("--ignore-below", a.ignore_below)?,
        min_confidence: share("--min-confidence", a.min_confidence)?,
        verification,
        max_pixels: a.max_pixels,
        in_flight: a.in_flight.max(1),
    })
}

/// Runs `gtseg export`.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let dir = a.store.clone();
    let opts = options(a)?;
    let store = crate::store::open(dir.as_deref(), "gtseg export reads S3 without --store").await?;
    let mut progress: Option<Progress> = None;
    let mut on_step = |step| match step {
        Step::Planned(images) => progress = Some(Progress::new("exporting", images as u64)),
        Step::Image(left_out) => {
            if let Some(p) = progress.as_mut() {
                p.add(1, u64::from(left_out));
            }
        }
    };
    let report = export::export(&store, &opts, &mut on_step)
        .await
        .with_context(|| format!("exporting to {}", opts.out.display()))?;
    let elapsed = progress.as_ref().map(Progress::elapsed).unwrap_or_default();
    if let Some(p) = &progress {
        p.finish();
    }
    let c = &report.counts;
    eprint!("{}", report.balance_table());
    eprintln!(
        "gtseg: exported {} images as {} to {} in {:.1} s; {} left out, {} failure lines, {} machine-labelled (export-report.json says which)",
        c.exported,
        opts.format.name(),
        opts.out.display(),
        elapsed.as_secs_f64(),
        c.left_out,
        c.failure_lines,
        c.machine_labelled,
    );
    if c.faults > 0 {
        return Err(Incomplete(format!(
            "{} images could not be read (a fault, not their data; export-report.json lists them): export again into a new folder",
            c.faults
        ))
        .into());
    }
    if c.exported == 0 && !report.left_out.is_empty() {
        anyhow::bail!("no image was exported: export-report.json says why each was left out");
    }
    Ok(())
}
