//! PNG ⇄ class masks: the only module that touches the PNG format. [`decode`] reads worker
//! PNGs into class rows; [`encode`] writes the consolidated mask and the disagreement map. No
//! I/O, no logging.

use png::ColorType;

mod decode;
mod encode;

pub use decode::{ColorLookup, Decoded, IndexImage, decode_class_mask, decode_index_png};
pub(crate) use decode::{MaskReader, png_dimensions};
pub(crate) use encode::RowEncoder;
pub use encode::{encode_grey_png, encode_palette_png};

/// Why a mask or a map could not be encoded (the PNG encoder's own error: writing to memory,
/// it fails only on a size the format cannot hold).
pub use png::EncodingError as EncodeError;

/// Bytes the PNG decoder itself may allocate (line buffers, inflate state). Independent of
/// the image size for non-interlaced PNGs; interlaced frames are bounded by the pixel limit.
const DECODER_BYTES: usize = 64 << 20;

/// Why a worker's PNG could not be turned into a class mask. Every variant is the worker's
/// (or the worker UI's) fault, so the answer is excluded and the others decide.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// The PNG is malformed (bad signature, chunk, checksum or compressed data), or the
    /// decoder's memory limit was reached.
    #[error("the PNG is corrupt: {0}")]
    Png(png::DecodingError),
    /// The image data ends before the image's last row.
    #[error("the PNG's image data ends after {rows} of its {height} rows")]
    Truncated {
        /// Rows that were decoded.
        rows: u32,
        /// Rows the header announces.
        height: u32,
    },
    /// An interlaced PNG whose frame, decoded whole, would take more than
    /// [`MAX_INTERLACED_FRAME`] bytes.
    #[error(
        "the PNG is interlaced, and decoding its {bytes}-byte frame whole would take more than the {MAX_INTERLACED_FRAME} bytes allowed; export it without interlacing"
    )]
    InterlacedTooLarge {
        /// The frame's size in bytes.
        bytes: usize,
    },
    /// The thread decoding this PNG stopped before its last row.
    #[error("decoding stopped before the PNG's last row")]
    Interrupted,
    /// The header claims more pixels than `MAX_PIXELS`.
    #[error("the PNG claims {width}×{height} pixels, over the limit of {max} (MAX_PIXELS)")]
    TooLarge {
        /// The width the header claims.
        width: u32,
        /// The height the header claims.
        height: u32,
        /// `MAX_PIXELS`.
        max: u64,
    },
    /// The header claims zero width or height.
    #[error("the PNG has zero width or height")]
    Empty,
    /// A colour type the decoder cannot expand (not seen in valid PNGs).
    #[error("the PNG uses colour type {0:?}, which is not supported")]
    Unsupported(ColorType),
}

/// The largest frame of an interlaced PNG decoded (interlaced PNGs are decoded whole).
pub const MAX_INTERLACED_FRAME: usize = 64 << 20;

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
