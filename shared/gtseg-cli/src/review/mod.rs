//! `gtseg review`: a static report of where workers disagreed, from an output manifest.
//!
//! One row per image, worst agreement first: the consolidated mask over the source image, the
//! disagreement map as a heat map, the confidence, each worker's agreement and the excluded
//! workers, named by the source image's file name. A header gives the figures over every line
//! (images, failed lines, a histogram of agreement, the workers ranked by agreement) and the
//! classes' legend; filters and pages run in the page, from `file://`, with no network. Every
//! text from the data reaches the page as JSON read by the page's own script, which writes it
//! with `textContent`; a Content-Security-Policy allows only that script (by hash) and images
//! from the report. Picture files are named by row number, never by anything in the data.
//!
//! The manifest is streamed, and only the `--limit` worst images are kept and drawn, so that
//! memory is bounded by the rows shown and the pixel limit, not by the job. `scan` reads the
//! manifest, `rows` its figures, `draw` and `render` the pictures, `page` the HTML.

mod draw;
mod page;
mod render;
mod rows;
mod scan;

use std::path::PathBuf;

use anyhow::Context as _;

/// Options of `gtseg review`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An output manifest (s3:// or a local path): a finished job's, one written by `gtseg
    /// job consolidate`, or the JSON response `gtseg replay` printed.
    #[arg(long, value_name = "URI_OR_PATH")]
    manifest: String,
    /// The label attribute to review.
    #[arg(long, value_name = "NAME")]
    label_attribute_name: String,
    /// The report folder (index.html and img/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A local directory standing in for S3 (`s3://bucket/key` is `DIR/bucket/key`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The images shown: the N of lowest agreement (the figures cover every line).
    #[arg(long, value_name = "N", default_value_t = 500)]
    limit: usize,
    /// Masks larger than this many pixels get a placeholder instead of pictures (drawing one
    /// takes about 12 bytes a pixel).
    #[arg(long, value_name = "PIXELS", default_value_t = 16 << 20)]
    max_pixels: u64,
}

/// Runs `gtseg review`.
pub async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.limit > 0, "--limit must be at least 1");
    let dir = a.store.as_deref();
    let store = crate::store::open(dir, "gtseg review reads S3 without --store").await?;
    let at = crate::store::file(&a.manifest, "--manifest", dir)?;
    let scanned = scan::scan(&store, &at, &a.label_attribute_name, a.limit)
        .await
        .context("reading the manifest")?;
    let img = a.out.join("img");
    std::fs::create_dir_all(&img).with_context(|| format!("creating {}", img.display()))?;
    let totals = scanned.totals;
    let rows = draw::draw_all(
        &store,
        &img,
        scanned.kept,
        totals.colors.clone(),
        a.max_pixels,
    )
    .await?;
    let data = page::Data {
        attribute: a.label_attribute_name,
        images: totals.images,
        rows,
        failed_count: totals.failed,
        histogram: totals.histogram,
        workers: totals.ranked_workers(),
        failed: totals.failed_examples,
        classes: totals.classes,
    };
    let index = a.out.join("index.html");
    std::fs::write(&index, page::page(&data)?)
        .with_context(|| format!("writing {}", index.display()))?;
    eprintln!(
        "gtseg: review of {} images ({} failed; the {} of lowest agreement shown) in {}",
        data.images,
        data.failed_count,
        data.rows.len(),
        index.display()
    );
    Ok(())
}
