//! `gtseg review`: a static report of where workers disagreed, from an output manifest.
//!
//! One row per image, worst agreement first: the consolidated mask over the source image, the
//! disagreement map as a heat map, the confidence, each worker's agreement and the excluded
//! workers. A header gives the job's figures, a histogram of agreement, the workers ranked by
//! agreement and the classes' legend; filters and pages run in the page, from `file://`, with
//! no network. Every text from the data reaches the page as JSON read by the page's own
//! script, which writes it with `textContent`; a Content-Security-Policy allows only that
//! script (by hash) and images from the report. Picture files are named by row number, never
//! by anything in the data.
//!
//! `rows` reads the manifest's figures, `render` draws the pictures, `page` writes the HTML.

mod page;
mod render;
mod rows;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use gtseg::finished::parse_output_lines;
use gtseg::{AnyStore, ObjectStore, S3Uri};
use tracing::warn;

use crate::progress::Progress;
use rows::{Row, ToDraw};

/// The largest manifest, source image, mask or map read.
const MAX_OBJECT: u64 = 1 << 30;

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
    /// Only the first N images of the manifest.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// Runs `gtseg review`.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let dir = a.store.as_deref();
    let store = crate::store::open(dir, "gtseg review reads S3 without --store").await?;
    let at = crate::store::file(&a.manifest, "--manifest", dir)?;
    let text = at
        .read(&store, MAX_OBJECT)
        .await
        .context("reading the manifest")?;
    let mut lines = parse_output_lines(&text).with_context(|| format!("the manifest {at}"))?;
    if let Some(n) = a.limit {
        lines.truncate(n);
    }
    let images = lines.len();
    let img = a.out.join("img");
    std::fs::create_dir_all(&img).with_context(|| format!("creating {}", img.display()))?;
    let sorted = rows::sort_out(lines, &a.label_attribute_name);
    let colors = Arc::new(sorted.colors);
    let mut rows = draw_all(&store, &img, sorted.to_draw, &colors).await?;
    // Worst agreement first; images without one (a single worker) last; then manifest order.
    rows.sort_by(|(na, a), (nb, b)| {
        a.agreement
            .unwrap_or(2.0)
            .total_cmp(&b.agreement.unwrap_or(2.0))
            .then(na.cmp(nb))
    });
    let data = page::Data {
        attribute: a.label_attribute_name,
        images,
        rows: rows.into_iter().map(|(_, r)| r).collect(),
        failed: sorted.failed,
        classes: sorted.classes,
    };
    let index = a.out.join("index.html");
    std::fs::write(&index, page::page(&data)?)
        .with_context(|| format!("writing {}", index.display()))?;
    eprintln!(
        "gtseg: review of {} images ({} failed) in {}",
        data.images,
        data.failed.len(),
        index.display()
    );
    Ok(())
}

/// Every row, its pictures drawn a few images at once (one per core, and one being read).
async fn draw_all(
    store: &AnyStore,
    img: &Path,
    to_draw: Vec<ToDraw>,
    colors: &Arc<Vec<[u8; 3]>>,
) -> anyhow::Result<Vec<(usize, Row)>> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let mut progress = Progress::new("writing the review", to_draw.len() as u64);
    let mut running = tokio::task::JoinSet::new();
    let mut rows = Vec::with_capacity(to_draw.len());
    let mut queue = to_draw.into_iter();
    loop {
        while running.len() < threads + 1 {
            let Some(line) = queue.next() else { break };
            let (store, colors, img) = (store.clone(), Arc::clone(colors), img.to_path_buf());
            running.spawn(async move {
                let n = line.n;
                (n, image_row(&store, &img, line, colors).await)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (n, row) = joined.context("a picture's task failed")?;
        progress.add(1, u64::from(row.problem.is_some()));
        rows.push((n, row));
    }
    progress.finish();
    Ok(rows)
}

/// Reads an object, or says why not (the row shows it).
async fn read(store: &AnyStore, uri: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let uri = S3Uri::parse(uri).with_context(|| format!("{what} {uri:?}"))?;
    store
        .get(&uri, MAX_OBJECT)
        .await
        .with_context(|| what.to_owned())
}

/// One image's row: its figures from the metadata (extras read back), and its pictures
/// written under `img`; what could not be shown is the row's problem.
async fn image_row(store: &AnyStore, img: &Path, line: ToDraw, colors: Arc<Vec<[u8; 3]>>) -> Row {
    let meta = gtseg::with_extras(store, &line.meta)
        .await
        .unwrap_or_else(|e| {
            warn!(image = line.n, "the image's report is not shown: {e}");
            line.meta.clone()
        });
    let mut row = rows::figures(line.id, &meta);
    let mask = match read(store, &line.mask, "the mask").await {
        Ok(b) => b,
        Err(e) => {
            row.problem = Some(format!("{e:#}"));
            return row;
        }
    };
    let source = match &line.source {
        Some(uri) => match store.get(uri, MAX_OBJECT).await {
            Ok(b) => Some(b),
            Err(e) => {
                warn!(image = line.n, "the source image is shown as grey: {e}");
                row.problem = Some(format!("source image unavailable: {e}"));
                None
            }
        },
        None => None,
    };
    let heat = match meta["consolidation"]["disagreement-ref"].as_str() {
        Some(uri) => read(store, uri, "the disagreement map").await.ok(),
        None => None,
    };
    let drawn = tokio::task::spawn_blocking(move || {
        let mask = render::decode_mask(&mask, gtseg::Config::default().limits.max_pixels)?;
        render::pictures(source.as_deref(), &mask, heat.as_deref(), &colors)
    })
    .await
    .context("the drawing task failed")
    .and_then(|r| r);
    match drawn {
        Ok(pictures) => save_pictures(img, line.n, pictures, &mut row),
        Err(e) => row.problem = Some(format!("cannot draw the pictures: {e:#}")),
    }
    row
}

/// Writes an image's pictures under `img`, named by its place `n`, into its row.
fn save_pictures(img: &Path, n: usize, pictures: render::Pictures, row: &mut Row) {
    let mut write = |suffix: &str, bytes: &[u8]| -> Option<String> {
        let name = format!("{n:06}-{suffix}.jpg");
        match std::fs::write(img.join(&name), bytes) {
            Ok(()) => Some(format!("img/{name}")),
            Err(e) => {
                row.problem = Some(format!("cannot write a picture: {e}"));
                None
            }
        }
    };
    let overlay = write("overlay", &pictures.overlay);
    let overlay_thumb = write("overlay-t", &pictures.overlay_thumb);
    let (heat, heat_thumb) = match &pictures.heat {
        Some((full, thumb)) => (write("heat", full), write("heat-t", thumb)),
        None => (None, None),
    };
    row.overlay = overlay;
    row.overlay_thumb = overlay_thumb;
    row.heat = heat;
    row.heat_thumb = heat_thumb;
    row.classes = pictures.classes;
}
