//! One image made ready for any format: its source bytes, and its class map in export ids,
//! remapped by name from its consolidated mask, with the pixels whose workers agreed too
//! little set to ignore. Nothing is ever resized: a mask whose size differs from its image's
//! is left out.

use super::labels::{IGNORE, LabelTable, Remap};
use super::names::extension_of;
use super::plan::{Label, Planned};
use crate::consolidate::{ExtrasError, with_extras};
use crate::mask::decode_index_png;
use crate::store::ObjectStore;
use crate::uri::S3Uri;

/// The largest source image read.
const MAX_SOURCE_BYTES: u64 = 256 << 20;
/// The largest mask or disagreement map read (compressed, far smaller than a source).
const MAX_MASK_BYTES: u64 = 64 << 20;

/// An image ready to be written.
#[derive(Debug)]
pub(super) struct Ready {
    pub(super) width: u32,
    pub(super) height: u32,
    /// The source image, byte for byte.
    pub(super) source: Vec<u8>,
    /// Its file extension (`jpg`, `png`, …).
    pub(super) ext: String,
    /// One export id a pixel, row by row; [`IGNORE`] where ignored.
    pub(super) ids: Vec<u8>,
    /// Pixels whose class the image's colour map does not name (set to ignore).
    pub(super) unknown: u64,
    /// Pixels per export id (ignore included, at 255).
    pub(super) pixels: Box<[u64; 256]>,
}

/// Why an image cannot be exported.
#[derive(Debug)]
pub(super) struct Skip {
    pub(super) reason: String,
    /// A fault (timeout, throttling, access denied) rather than the image's data.
    pub(super) fault: bool,
}

impl From<String> for Skip {
    fn from(reason: String) -> Self {
        Self {
            reason,
            fault: false,
        }
    }
}

impl From<&str> for Skip {
    fn from(reason: &str) -> Self {
        reason.to_owned().into()
    }
}

/// What `--ignore-below` asks: ignore a pixel whose disagreement-map value is above this (the
/// value a winning share of exactly SHARE gives).
pub(super) fn ignore_threshold(share: f64) -> u8 {
    (255.0 * (1.0 - share)).round().clamp(0.0, 255.0) as u8
}

/// Reads and remaps one planned image; `Err` says why it is left out.
pub(super) async fn prepare<S: ObjectStore>(
    store: &S,
    image: &Planned,
    table: &LabelTable,
    ignore_above: Option<u8>,
    max_pixels: u64,
    cpu: &tokio::sync::Semaphore,
) -> Result<Ready, Skip> {
    let label = &image.label;
    let read = |uri: &str, max: u64, what: &'static str| {
        let uri = uri.to_owned();
        async move {
            let parsed =
                S3Uri::parse(&uri).map_err(|e| Skip::from(format!("its {what} {uri:?}: {e}")))?;
            store.get(&parsed, max).await.map_err(|e| Skip {
                reason: format!("its {what} cannot be read: {e}"),
                fault: !e.is_the_object_s_fault(),
            })
        }
    };
    let mask_bytes = read(&label.mask, MAX_MASK_BYTES, "mask").await?;
    let source = read(&image.source_ref, MAX_SOURCE_BYTES, "source image").await?;
    let map_bytes = match ignore_above {
        None => None,
        Some(_) => match map_ref(store, label).await? {
            None => return Err("it has no disagreement map (--ignore-below needs one)".into()),
            Some(uri) => Some(read(&uri, MAX_MASK_BYTES, "disagreement map").await?),
        },
    };
    let remap = table.remap(&label.classes);
    let size = imagesize::blob_size(&source)
        .map_err(|e| Skip::from(format!("its source image cannot be read: {e}")))?;
    let ext = extension_of(&image.source_ref).unwrap_or_else(|| kind_extension(&source).to_owned());
    // Never closed: an error would mean a bug, and is then no fault of the data's.
    let permit = cpu.acquire().await.map_err(|e| Skip {
        reason: e.to_string(),
        fault: true,
    })?;
    let remapped = tokio::task::spawn_blocking(move || {
        let (width, height, ids, unknown) = class_map(
            &mask_bytes,
            map_bytes.as_deref(),
            size,
            &remap,
            ignore_above,
            max_pixels,
        )?;
        let pixels = Box::new(pixels_per_class(&ids));
        Ok::<_, String>(Ready {
            width,
            height,
            source,
            ext,
            ids,
            unknown,
            pixels,
        })
    })
    .await;
    drop(permit);
    // A panic or a cancelled task is no fault of the data's: a rerun may export it.
    remapped
        .map_err(|e| Skip {
            reason: format!("preparing it failed: {e}"),
            fault: true,
        })?
        .map_err(Skip::from)
}

/// An image's class map in export ids: its mask decoded and remapped by name (an index the
/// colour map does not name is ignored, and counted), then the pixels whose map value is
/// above `ignore_above` ignored. Its size, the map, and the count of unknown pixels.
fn class_map(
    mask_bytes: &[u8],
    map_bytes: Option<&[u8]>,
    size: imagesize::ImageSize,
    remap: &Remap,
    ignore_above: Option<u8>,
    max_pixels: u64,
) -> Result<(u32, u32, Vec<u8>, u64), String> {
    let mask = decode_index_png(mask_bytes, max_pixels).map_err(|e| format!("its mask: {e}"))?;
    if (mask.width as usize, mask.height as usize) != (size.width, size.height) {
        return Err(format!(
            "its mask is {}×{} but its image is {}×{}; nothing is ever resized",
            mask.width, mask.height, size.width, size.height
        ));
    }
    let mut unknown = 0u64;
    let mut ids: Vec<u8> = mask
        .data
        .iter()
        .map(|&k| {
            remap.0[usize::from(k)].unwrap_or_else(|| {
                unknown += 1;
                IGNORE
            })
        })
        .collect();
    if let (Some(bytes), Some(above)) = (map_bytes, ignore_above) {
        let map = decode_index_png(bytes, max_pixels)
            .map_err(|e| format!("its disagreement map: {e}"))?;
        if (map.width, map.height) != (mask.width, mask.height) {
            return Err(format!(
                "its disagreement map is {}×{} but its mask is {}×{}",
                map.width, map.height, mask.width, mask.height
            ));
        }
        for (id, &d) in ids.iter_mut().zip(&map.data) {
            if d > above {
                *id = IGNORE;
            }
        }
    }
    Ok((mask.width, mask.height, ids, unknown))
}

/// Where the image's disagreement map is: named in its metadata, or in its report object
/// when the map's name moved there, or else where the consolidation puts it.
async fn map_ref<S: ObjectStore>(store: &S, label: &Label) -> Result<Option<String>, Skip> {
    if let Some(named) = &label.map_ref {
        return Ok(Some(named.clone()));
    }
    if let Some(report) = &label.report_ref {
        let extras = with_extras(store, &serde_json::json!({"report-ref": report}))
            .await
            .map_err(|e| Skip {
                reason: e.to_string(),
                fault: matches!(&e, ExtrasError::Read(e) if !e.is_the_object_s_fault()),
            })?;
        if let Some(named) = extras["consolidation"]["disagreement-ref"].as_str() {
            return Ok(Some(named.to_owned()));
        }
    }
    Ok(label.derived_map())
}

/// An extension for a source whose name has none, from its first bytes.
fn kind_extension(bytes: &[u8]) -> &'static str {
    match imagesize::image_type(bytes) {
        Ok(imagesize::ImageType::Jpeg) => "jpg",
        Ok(imagesize::ImageType::Png) => "png",
        Ok(imagesize::ImageType::Gif) => "gif",
        Ok(imagesize::ImageType::Bmp) => "bmp",
        Ok(imagesize::ImageType::Tiff) => "tif",
        Ok(imagesize::ImageType::Webp) => "webp",
        _ => "bin",
    }
}

/// Pixels per class id in a class map (ignore included, at 255).
fn pixels_per_class(ids: &[u8]) -> [u64; 256] {
    let mut counts = [0u64; 256];
    for &k in ids {
        counts[usize::from(k)] += 1;
    }
    counts
}
