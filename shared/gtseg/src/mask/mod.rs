//! PNG ⇄ class masks: the only module that touches the PNG format. [`decode`] reads worker
//! PNGs into class rows; [`encode`] writes the consolidated mask and the disagreement map. No
//! I/O, no logging.

use png::ColorType;

mod decode;
mod encode;

pub use decode::{ColorLookup, Decoded, MaskReader, decode_class_mask, png_dimensions};
pub use encode::{RowEncoder, encode_palette_png};

/// Bytes the PNG decoder itself may allocate (line buffers, inflate state). Independent of
/// the image size for non-interlaced PNGs; interlaced frames are bounded by the pixel limit.
const DECODER_BYTES: usize = 64 << 20;

/// Why a worker's PNG could not be turned into a class mask. Every variant is the worker's
/// (or the worker UI's) fault, so the answer is excluded and the others decide.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("the PNG is corrupt: {0}")]
    Png(png::DecodingError),
    #[error("the PNG's image data ends after {rows} of its {height} rows")]
    Truncated { rows: u32, height: u32 },
    #[error("decoding stopped before the PNG's last row")]
    Interrupted,
    #[error("the PNG claims {width}×{height} pixels, over the limit of {max} (MAX_PIXELS)")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("the PNG has zero width or height")]
    Empty,
    #[error("the PNG uses colour type {0:?}, which is not supported")]
    Unsupported(ColorType),
}

/// An image must have pixels, and no more than `max_pixels` of them.
fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<(), MaskError> {
    if width == 0 || height == 0 {
        return Err(MaskError::Empty);
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(MaskError::TooLarge {
            width,
            height,
            max: max_pixels,
        });
    }
    Ok(())
}

impl From<png::DecodingError> for MaskError {
    fn from(e: png::DecodingError) -> Self {
        Self::Png(e)
    }
}
