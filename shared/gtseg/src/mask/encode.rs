//! Writing masks: the consolidated 8-bit palette PNG and the 8-bit greyscale disagreement map,
//! row by row through png's streaming writer, so neither image is ever held whole.
//!
//! Both use png's `Compression::Fast`. The palette mask keeps png's adaptive filter (per row,
//! the filter with the least sum of magnitudes); measured against a hand-written row encoder
//! that skipped unchanged spans, it costs nothing end to end (see `docs/performance.md`).

use std::cell::RefCell;
use std::rc::Rc;

use png::{BitDepth, ColorType};

use crate::labels::Rgb;

/// A PNG written one row at a time.
pub(crate) struct RowEncoder {
    writer: png::StreamWriter<'static, SharedBuf>,
    out: SharedBuf,
}

/// The encoder's output buffer, shared so that it can be taken back once the stream is done
/// (png's stream writer owns its sink and drops it on `finish`).
#[derive(Clone, Default)]
struct SharedBuf(Rc<RefCell<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for RowEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowEncoder").finish_non_exhaustive()
    }
}

impl RowEncoder {
    /// An 8-bit palette PNG of `width`×`height` whose pixel value k has colour `palette[k]`,
    /// with no transparency chunk: the layout of Ground Truth's own masks.
    pub(crate) fn palette(
        width: u32,
        height: u32,
        palette: &[Rgb],
    ) -> Result<Self, png::EncodingError> {
        let (mut enc, out) = Self::encoder(width, height, ColorType::Indexed);
        enc.set_palette(
            palette
                .iter()
                .flat_map(|c| [c.0, c.1, c.2])
                .collect::<Vec<u8>>(),
        );
        Self::start((enc, out))
    }

    /// An 8-bit greyscale PNG of `width`×`height`.
    pub(crate) fn grey(width: u32, height: u32) -> Result<Self, png::EncodingError> {
        let (mut enc, out) = Self::encoder(width, height, ColorType::Grayscale);
        // Long runs of equal bytes compress well unfiltered; trying every filter per row
        // would cost more than the rest of the map.
        enc.set_filter(png::Filter::NoFilter);
        Self::start((enc, out))
    }

    fn encoder(
        width: u32,
        height: u32,
        color: ColorType,
    ) -> (png::Encoder<'static, SharedBuf>, SharedBuf) {
        let out = SharedBuf::default();
        let mut enc = png::Encoder::new(out.clone(), width, height);
        enc.set_color(color);
        enc.set_depth(BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        (enc, out)
    }

    fn start(
        (enc, out): (png::Encoder<'static, SharedBuf>, SharedBuf),
    ) -> Result<Self, png::EncodingError> {
        let writer = enc.write_header()?.into_stream_writer()?;
        Ok(Self { writer, out })
    }

    /// Appends one row (`width` bytes).
    pub(crate) fn write_row(&mut self, row: &[u8]) -> Result<(), png::EncodingError> {
        use std::io::Write as _;
        self.writer.write_all(row).map_err(png::EncodingError::from)
    }

    /// Ends the image (after every row was written) and returns the PNG.
    pub(crate) fn finish(self) -> Result<Vec<u8>, png::EncodingError> {
        self.writer.finish()?;
        Ok(self.out.0.take())
    }
}

/// Encodes a whole consolidated mask (`data`, row-major) as an 8-bit palette PNG whose pixel
/// value k has colour `palette[k]`, with no transparency chunk. Deterministic: the same input
/// gives the same bytes.
pub fn encode_palette_png(
    width: u32,
    height: u32,
    data: &[u8],
    palette: &[Rgb],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut enc = RowEncoder::palette(width, height, palette)?;
    for row in data.chunks(width.max(1) as usize) {
        enc.write_row(row)?;
    }
    enc.finish()
}

/// Encodes an 8-bit greyscale PNG (`data`, row-major): a class map whose pixel value is the
/// class id, as Hugging Face's `Image` reads it in mode `L`. Deterministic.
pub fn encode_grey_png(
    width: u32,
    height: u32,
    data: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut enc = RowEncoder::grey(width, height)?;
    for row in data.chunks(width.max(1) as usize) {
        enc.write_row(row)?;
    }
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::WHITE;
    use std::io::Cursor;

    /// Decodes an 8-bit PNG's raw samples and its header facts.
    fn raw(bytes: &[u8]) -> (png::Info<'static>, Vec<u8>) {
        let mut r = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut buf).unwrap();
        (r.info().clone(), buf)
    }

    #[test]
    fn palette_png_round_trips_with_index_equal_to_class() {
        let data = [0, 1, 2, 1, 0, 2];
        let pal = [WHITE, Rgb(0x2c, 0xa0, 0x2c), Rgb(1, 2, 3)];
        let (info, pixels) = raw(&encode_palette_png(3, 2, &data, &pal).unwrap());
        assert_eq!(info.color_type, ColorType::Indexed);
        assert_eq!(info.bit_depth, BitDepth::Eight);
        assert!(info.trns.is_none(), "no transparency chunk");
        assert_eq!(
            info.palette.as_deref().unwrap(),
            &[255, 255, 255, 0x2c, 0xa0, 0x2c, 1, 2, 3]
        );
        assert_eq!(pixels, data);
    }

    proptest::proptest! {
        /// Rows in, the same rows out, for masks of runs and of noise, palette and grey.
        #[test]
        fn rows_round_trip(
            (w, data) in {
                use proptest::prelude::*;
                (1u32..90, 1usize..12).prop_flat_map(|(w, h)| {
                (Just(w), proptest::collection::vec(prop_oneof![0u8..3, any::<u8>()], w as usize * h))
            })}
        ) {
            let h = (data.len() / w as usize) as u32;
            let palette: Vec<Rgb> = (0..=255u8).map(|i| Rgb(i, 255 - i, i / 2)).collect();
            let (_, pixels) = raw(&encode_palette_png(w, h, &data, &palette).unwrap());
            proptest::prop_assert_eq!(&pixels, &data);
            let mut grey = RowEncoder::grey(w, h).unwrap();
            for row in data.chunks(w as usize) {
                grey.write_row(row).unwrap();
            }
            let (info, pixels) = raw(&grey.finish().unwrap());
            proptest::prop_assert_eq!(info.color_type, ColorType::Grayscale);
            proptest::prop_assert_eq!(&pixels, &data);
        }
    }
}
