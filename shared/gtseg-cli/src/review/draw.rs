//! The kept images' pictures: read, drawn and written under `img/`, a few at once, within a
//! budget of pixels in flight, so that one image at the pixel limit runs alone and small ones
//! share the cores. What cannot be shown becomes the row's problem, never an error.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use gtseg::{AnyStore, ObjectStore, S3Uri};
use tokio::sync::Semaphore;
use tracing::warn;

use super::render;
use super::rows::Row;
use super::scan::Kept;
use crate::progress::Progress;

/// The largest source image read.
const MAX_SOURCE: u64 = 256 << 20;
/// The largest mask or map read: compressed, a mask at the pixel limit is far smaller.
const MAX_MASK: u64 = 64 << 20;

/// Draws every kept image's pictures; returns the rows, in the order given.
pub(super) async fn draw_all(
    store: &AnyStore,
    img: &Path,
    kept: Vec<Kept>,
    colors: Vec<[u8; 3]>,
    max_pixels: u64,
) -> anyhow::Result<Vec<Row>> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let colors = Arc::new(colors);
    // Pixels in flight at most: one image at the limit, or several smaller ones.
    let budget = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    let pixels = Arc::new(Semaphore::new(budget as usize));
    let mut progress = Progress::new("writing the review", kept.len() as u64);
    let mut running = tokio::task::JoinSet::new();
    let mut rows: Vec<Option<Row>> = (0..kept.len()).map(|_| None).collect();
    let mut queue = kept.into_iter().enumerate();
    loop {
        while running.len() < threads + 1 {
            let Some((place, image)) = queue.next() else {
                break;
            };
            let (store, img, colors, pixels) = (
                store.clone(),
                img.to_path_buf(),
                Arc::clone(&colors),
                Arc::clone(&pixels),
            );
            running.spawn(async move {
                let row = image_row(&store, &img, image, colors, (&pixels, max_pixels)).await;
                (place, row)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (place, row) = joined.context("a picture's task failed")?;
        progress.add(1, u64::from(row.problem.is_some()));
        rows[place] = Some(row);
    }
    progress.finish();
    Ok(rows.into_iter().flatten().collect())
}

/// Reads an object, or says why not (the row shows it).
async fn read(store: &AnyStore, uri: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let uri = S3Uri::parse(uri).with_context(|| format!("{what} {uri:?}"))?;
    store
        .get(&uri, MAX_MASK)
        .await
        .with_context(|| what.to_owned())
}

/// One image's row with its pictures written under `img`; a mask over `max_pixels` gets a
/// placeholder and its reason.
async fn image_row(
    store: &AnyStore,
    img: &Path,
    image: Kept,
    colors: Arc<Vec<[u8; 3]>>,
    (pixels, max_pixels): (&Semaphore, u64),
) -> Row {
    let Kept {
        n,
        mut row,
        mask,
        heat,
        source,
    } = image;
    let mask = match read(store, &mask, "the mask").await {
        Ok(b) => b,
        Err(e) => {
            row.problem = Some(format!("{e:#}"));
            return row;
        }
    };
    let size = match render::png_size(&mask) {
        Ok((w, h)) if u64::from(w) * u64::from(h) <= max_pixels => u64::from(w) * u64::from(h),
        Ok((w, h)) => {
            row.problem = Some(format!(
                "not drawn: the mask is {w}×{h}, over the review's limit of {max_pixels} pixels (--max-pixels)"
            ));
            return row;
        }
        Err(e) => {
            row.problem = Some(format!("the mask is not a PNG: {e:#}"));
            return row;
        }
    };
    let want = u32::try_from(size).unwrap_or(u32::MAX).max(1);
    let Ok(_permit) = pixels.acquire_many(want).await else {
        return row;
    };
    let source = match &source {
        Some(uri) => match store.get(uri, MAX_SOURCE).await {
            Ok(b) => Some(b),
            Err(e) => {
                warn!(image = n, "the source image is shown as grey: {e}");
                row.problem = Some(format!("source image unavailable: {e}"));
                None
            }
        },
        None => None,
    };
    let heat = match &heat {
        Some(uri) => read(store, uri, "the disagreement map").await.ok(),
        None => None,
    };
    let drawn = tokio::task::spawn_blocking(move || {
        let mask = render::decode_mask(&mask, max_pixels)?;
        render::pictures(source.as_deref(), &mask, heat.as_deref(), &colors)
    })
    .await
    .context("the drawing task failed")
    .and_then(|r| r);
    match drawn {
        Ok(pictures) => save_pictures(img, n, pictures, &mut row),
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
