//! PNG bytes ⇄ class-index masks. The only module that touches the PNG format.
//!
//! Decoding streams each worker PNG row by row through the `png` crate with memory limits and
//! maps every pixel straight to a class index through that worker's own colours, so no RGBA
//! image is ever held. Encoding writes the consolidated 8-bit palette PNG. No I/O, no logging.

use std::io::Cursor;

use png::{BitDepth, ColorType, Transformations};

use crate::labels::{Rgb, WHITE};

/// The class value of a pixel that casts no vote (an unknown colour).
pub const ABSTAIN: u8 = 255;

/// Bytes the PNG decoder itself may allocate (line buffers, inflate state). Independent of
/// the image size for non-interlaced PNGs; interlaced frames are bounded by the pixel limit.
const DECODER_BYTES: usize = 64 << 20;

/// A mask of class indices (`ABSTAIN` where a worker cast no vote), row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl ClassMask {
    /// Number of pixels.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// A mask of `width` from its rows (tests).
    #[cfg(test)]
    pub(crate) fn from_rows(width: u32, rows: &[&[u8]]) -> Self {
        Self {
            width,
            height: rows.len() as u32,
            data: rows.concat(),
        }
    }
}

/// A run of one class in a row of classes: it ends before pixel `end`, and begins where the
/// run before it ends (at 0 for the first). A row's runs cover it, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub end: u32,
    pub class: u8,
}

impl Run {
    /// Appends the pixels up to `end` of `class`, onto the last run if it has that class.
    #[inline(always)]
    fn extend(runs: &mut Vec<Run>, end: usize, class: u8) {
        let end = end as u32;
        match runs.last_mut() {
            Some(last) if last.class == class => last.end = end,
            _ => runs.push(Run { end, class }),
        }
    }
}

/// Replaces `runs` with the runs of `row`.
pub fn runs_of(row: &[u8], runs: &mut Vec<Run>) {
    runs.clear();
    let mut start = 0;
    while start < row.len() {
        let class = row[start];
        let len = row[start..].iter().take_while(|&&c| c == class).count();
        start += len;
        runs.push(Run {
            end: start as u32,
            class,
        });
    }
}

/// Why a worker's PNG could not be turned into a class mask. Every variant is the worker's
/// (or the worker UI's) fault, so the answer is excluded and the others decide.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("the PNG is corrupt or truncated: {0}")]
    Png(#[from] png::DecodingError),
    #[error("the PNG claims {width}×{height} pixels, over the limit of {max} (MAX_PIXELS)")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("the PNG has zero width or height")]
    Empty,
    #[error("the PNG uses colour type {0:?}, which is not supported")]
    Unsupported(ColorType),
}

/// A worker's colour → class table. Small (one entry per label the worker used), so a sorted
/// vector with a last-hit cache beats a hash on the long runs of equal colours in masks.
#[derive(Debug, Clone, Default)]
pub struct ColorLookup {
    entries: Vec<(u32, u8)>,
}

impl ColorLookup {
    /// Builds the table from `(colour, class)` pairs. White is never looked up: it is
    /// background by definition.
    pub fn new(pairs: impl IntoIterator<Item = (Rgb, u8)>) -> Self {
        let mut entries: Vec<(u32, u8)> = pairs.into_iter().map(|(c, k)| (c.packed(), k)).collect();
        entries.sort_unstable();
        Self { entries }
    }

    fn get(&self, packed: u32) -> Option<u8> {
        self.entries
            .binary_search_by_key(&packed, |e| e.0)
            .ok()
            .map(|i| self.entries[i].1)
    }
}

/// The result of decoding one worker's PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub mask: ClassMask,
    /// Pixels whose colour matched nothing: they abstain.
    pub unmapped: u64,
}

/// Reads only the PNG header: `(width, height)`.
///
/// Refuses empty images and images over `max_pixels`: what a header alone can show.
pub fn png_dimensions(png_bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), MaskError> {
    let mut dec = png::Decoder::new_with_limits(
        Cursor::new(png_bytes),
        png::Limits {
            bytes: DECODER_BYTES,
        },
    );
    let info = dec.read_header_info()?;
    check_size(info.width, info.height, max_pixels)?;
    Ok((info.width, info.height))
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

/// Decodes a worker PNG of any colour type and bit depth into class indices, whole.
///
/// Fully transparent and opaque-white pixels are 0; an exact RGB match of one of the worker's
/// colours is that class; anything else is [`ABSTAIN`] and counted in `unmapped`. 16-bit
/// samples match only when they are exact 8-bit values scaled by 257.
pub fn decode_class_mask(
    png_bytes: &[u8],
    lookup: &ColorLookup,
    max_pixels: u64,
) -> Result<Decoded, MaskError> {
    let mut reader = MaskReader::new(png_bytes, lookup, max_pixels)?;
    let (width, height) = reader.dimensions();
    let mut data = vec![0u8; width as usize * height as usize];
    let mut runs = Vec::new();
    for dst in data.chunks_exact_mut(width as usize) {
        reader.read_row(dst, &mut runs)?;
    }
    let unmapped = reader.finish()?;
    Ok(Decoded {
        mask: ClassMask {
            width,
            height,
            data,
        },
        unmapped,
    })
}

/// A worker PNG decoded one row of class indices at a time (see [`decode_class_mask`] for the
/// mapping). Holds only the decoder's line buffers, so many can run in lockstep.
pub struct MaskReader<'a> {
    reader: png::Reader<Cursor<&'a [u8]>>,
    mapper: Mapper,
    width: u32,
    height: u32,
    /// Interlaced PNGs only: the whole decoded frame (pixel-limited), its line size, next row.
    frame: Option<(Vec<u8>, usize, usize)>,
    rows_read: u32,
    unmapped: u64,
}

impl std::fmt::Debug for MaskReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskReader")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// How decoded samples become classes, chosen once per PNG.
enum Mapper {
    /// 8-bit palette, untransformed: one table lookup per pixel.
    Palette(Box<[u8; 256]>),
    /// 8-bit RGBA or RGB: the hot path, with a one-pixel cache for runs of equal colour.
    Rgb8 { alpha: bool, lookup: ColorLookup },
    /// Anything else after EXPAND: grey, grey+alpha, 16-bit.
    Generic {
        channels: usize,
        sixteen: bool,
        lookup: ColorLookup,
    },
}

impl<'a> MaskReader<'a> {
    /// Reads the header and prepares the decoder. Refuses empty images and images over
    /// `max_pixels` before allocating anything for them.
    pub fn new(
        png_bytes: &'a [u8],
        lookup: &ColorLookup,
        max_pixels: u64,
    ) -> Result<Self, MaskError> {
        let mut dec = png::Decoder::new_with_limits(
            Cursor::new(png_bytes),
            png::Limits {
                bytes: DECODER_BYTES,
            },
        );
        let (width, height, interlaced, color, depth) = {
            let info = dec.read_header_info()?;
            (
                info.width,
                info.height,
                info.interlaced,
                info.color_type,
                info.bit_depth,
            )
        };
        check_size(width, height, max_pixels)?;
        let indexed8 = color == ColorType::Indexed && depth == BitDepth::Eight;
        dec.set_transformations(if indexed8 {
            Transformations::IDENTITY
        } else {
            Transformations::EXPAND
        });
        let mut reader = dec.read_info()?;
        let mapper = if indexed8 {
            Mapper::Palette(palette_classes(reader.info(), lookup))
        } else {
            match reader.output_color_type() {
                (ColorType::Rgba, BitDepth::Eight) => Mapper::Rgb8 {
                    alpha: true,
                    lookup: lookup.clone(),
                },
                (ColorType::Rgb, BitDepth::Eight) => Mapper::Rgb8 {
                    alpha: false,
                    lookup: lookup.clone(),
                },
                (c, d) => {
                    let channels = match c {
                        ColorType::Grayscale => 1,
                        ColorType::GrayscaleAlpha => 2,
                        ColorType::Rgb => 3,
                        ColorType::Rgba => 4,
                        ColorType::Indexed => return Err(MaskError::Unsupported(c)),
                    };
                    Mapper::Generic {
                        channels,
                        sixteen: d == BitDepth::Sixteen,
                        lookup: lookup.clone(),
                    }
                }
            }
        };
        let frame = if interlaced {
            // Adam7 rows arrive per pass; decode the (pixel-limited) frame whole, then map it.
            let mut buf = vec![
                0u8;
                reader
                    .output_buffer_size()
                    .ok_or(png::DecodingError::LimitsExceeded)?
            ];
            let out = reader.next_frame(&mut buf)?;
            Some((buf, out.line_size, 0))
        } else {
            None
        };
        Ok(Self {
            reader,
            mapper,
            width,
            height,
            frame,
            rows_read: 0,
            unmapped: 0,
        })
    }

    /// `(width, height)` from the header.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Decodes the next row into `dst` (`width` class indices), and its runs into `runs`.
    pub fn read_row(&mut self, dst: &mut [u8], runs: &mut Vec<Run>) -> Result<(), MaskError> {
        runs.clear();
        let unmapped = match &mut self.frame {
            Some((buf, line, next)) => {
                let row = buf
                    .get(*next * *line..(*next + 1) * *line)
                    .ok_or(png::DecodingError::LimitsExceeded)?;
                *next += 1;
                self.mapper.map(row, dst, runs)
            }
            None => {
                let row = self
                    .reader
                    .next_row()?
                    .ok_or(png::DecodingError::LimitsExceeded)?;
                self.mapper.map(row.data(), dst, runs)
            }
        };
        self.rows_read += 1;
        self.unmapped += unmapped;
        Ok(())
    }

    /// Checks the end of the image data (a truncated or corrupt tail is an error) and returns
    /// how many pixels abstained.
    pub fn finish(mut self) -> Result<u64, MaskError> {
        if self.frame.is_none() {
            self.reader.finish()?;
        }
        Ok(self.unmapped)
    }
}

/// The class of every palette index: transparent (tRNS alpha 0) and white are 0, the
/// worker's colours their class, anything else (and indices beyond the palette) abstains.
fn palette_classes(info: &png::Info<'_>, lookup: &ColorLookup) -> Box<[u8; 256]> {
    let mut table = Box::new([ABSTAIN; 256]);
    let plte = info.palette.as_deref().unwrap_or(&[]);
    let trns = info.trns.as_deref().unwrap_or(&[]);
    for (i, rgb) in plte.chunks_exact(3).enumerate().take(256) {
        let packed = Rgb(rgb[0], rgb[1], rgb[2]).packed();
        table[i] = if trns.get(i) == Some(&0) || packed == WHITE.packed() {
            0
        } else {
            lookup.get(packed).unwrap_or(ABSTAIN)
        };
    }
    table
}

impl Mapper {
    /// Maps one decoded row to classes, with their runs (into empty `runs`); returns how many
    /// pixels abstained.
    fn map(&self, row: &[u8], dst: &mut [u8], runs: &mut Vec<Run>) -> u64 {
        let unmapped = match self {
            Self::Palette(table) => {
                let mut unmapped = 0;
                for (&i, out) in row.iter().zip(dst.iter_mut()) {
                    let k = table[usize::from(i)];
                    unmapped += u64::from(k == ABSTAIN);
                    *out = k;
                }
                unmapped
            }
            // The hot path finds the runs as it maps.
            Self::Rgb8 { alpha, lookup } => return map_rgb8(row, dst, runs, *alpha, lookup),
            Self::Generic {
                channels,
                sixteen,
                lookup,
            } => map_generic(row, dst, *channels, *sixteen, lookup),
        };
        runs_of(dst, runs);
        unmapped
    }
}

/// 8-bit RGB(A): masks are long runs of one colour, so each run is classified once and then
/// filled; finding a run's end is a tight comparison of whole pixels.
fn map_rgb8(
    row: &[u8],
    dst: &mut [u8],
    runs: &mut Vec<Run>,
    alpha: bool,
    lookup: &ColorLookup,
) -> u64 {
    let classify = |r: u8, g: u8, b: u8, a: u8| {
        if a == 0 {
            return 0;
        }
        let packed = Rgb(r, g, b).packed();
        if packed == WHITE.packed() {
            0
        } else {
            lookup.get(packed).unwrap_or(ABSTAIN)
        }
    };
    let mut unmapped = 0u64;
    let n = dst.len();
    let mut i = 0;
    if alpha {
        let (px, _) = row.as_chunks::<4>();
        let (octets, _) = row.as_chunks::<32>();
        while i < n {
            let p = px[i];
            let mut j = i + 1;
            // Eight pixels (one 32-byte compare) at a time once aligned to them.
            while j < n && j % 8 != 0 && px[j] == p {
                j += 1;
            }
            if j % 8 == 0 {
                let mut octet = [0u8; 32];
                for q in octet.as_chunks_mut::<4>().0 {
                    *q = p;
                }
                // Long runs: four octets per step with one branch, from a 32-pixel boundary.
                while j % 32 != 0 && j + 8 <= n && octets[j / 8] == octet {
                    j += 8;
                }
                while j % 32 == 0
                    && j + 32 <= n
                    && octets[j / 8..j / 8 + 4]
                        .iter()
                        .fold(true, |same, o| same & (*o == octet))
                {
                    j += 32;
                }
                while j + 8 <= n && octets[j / 8] == octet {
                    j += 8;
                }
            }
            while j < n && px[j] == p {
                j += 1;
            }
            let class = classify(p[0], p[1], p[2], p[3]);
            dst[i..j].fill(class);
            Run::extend(runs, j, class);
            if class == ABSTAIN {
                unmapped += (j - i) as u64;
            }
            i = j;
        }
    } else {
        let (px, _) = row.as_chunks::<3>();
        while i < n {
            let p = px[i];
            let mut j = i + 1;
            while j < n && px[j] == p {
                j += 1;
            }
            let class = classify(p[0], p[1], p[2], 255);
            dst[i..j].fill(class);
            Run::extend(runs, j, class);
            if class == ABSTAIN {
                unmapped += (j - i) as u64;
            }
            i = j;
        }
    }
    unmapped
}

/// Grey, grey+alpha and 16-bit samples (after EXPAND).
fn map_generic(
    row: &[u8],
    dst: &mut [u8],
    channels: usize,
    sixteen: bool,
    lookup: &ColorLookup,
) -> u64 {
    let bps = if sixteen { 2 } else { 1 };
    let stride = channels * bps;
    let mut unmapped = 0;
    for (px, out) in row.chunks_exact(stride).zip(dst.iter_mut()) {
        // Read each sample as 8 bits, noting whether a 16-bit sample was not exact.
        let mut exact = true;
        let mut s = [0u8; 4];
        for (c, v) in s.iter_mut().take(channels).enumerate() {
            if sixteen {
                let wide = u16::from_be_bytes([px[2 * c], px[2 * c + 1]]);
                exact &= wide % 257 == 0;
                *v = (wide / 257) as u8;
            } else {
                *v = px[c];
            }
        }
        let (rgb, alpha_zero) = match channels {
            1 => ((s[0], s[0], s[0]), false),
            2 => ((s[0], s[0], s[0]), s[1] == 0 && exact_alpha(px, 1, sixteen)),
            3 => ((s[0], s[1], s[2]), false),
            _ => ((s[0], s[1], s[2]), s[3] == 0 && exact_alpha(px, 3, sixteen)),
        };
        let class = if alpha_zero {
            0
        } else if !exact {
            ABSTAIN
        } else {
            let packed = Rgb(rgb.0, rgb.1, rgb.2).packed();
            if packed == WHITE.packed() {
                0
            } else {
                lookup.get(packed).unwrap_or(ABSTAIN)
            }
        };
        unmapped += u64::from(class == ABSTAIN);
        *out = class;
    }
    unmapped
}

/// A 16-bit alpha is "fully transparent" only when it is exactly 0.
fn exact_alpha(px: &[u8], channel: usize, sixteen: bool) -> bool {
    !sixteen || (px[2 * channel] == 0 && px[2 * channel + 1] == 0)
}

/// Encodes a consolidated mask as an 8-bit palette PNG with no transparency chunk.
///
/// `palette[k]` is class k's colour. Deterministic: the same input gives the same bytes.
pub fn encode_palette_png(
    width: u32,
    height: u32,
    data: &[u8],
    palette: &[Rgb],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(data.len() / 8 + 1024);
    let mut w = palette_encoder(&mut out, width, height, palette).write_header()?;
    w.write_image_data(data)?;
    w.finish()?;
    Ok(out)
}

/// The encoder settings of the consolidated mask: 8-bit palette, fast compression.
fn palette_encoder<W: std::io::Write>(
    out: W,
    width: u32,
    height: u32,
    palette: &[Rgb],
) -> png::Encoder<'static, W> {
    let mut enc = png::Encoder::new(out, width, height);
    enc.set_color(ColorType::Indexed);
    enc.set_depth(BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_palette(
        palette
            .iter()
            .flat_map(|c| [c.0, c.1, c.2])
            .collect::<Vec<u8>>(),
    );
    enc
}

/// An 8-bit palette PNG written row by row, byte for byte what [`encode_palette_png`] writes
/// for the whole mask, so the consolidated mask never has to be held whole.
///
/// It does what png's one-shot writer does at `Compression::Fast`: per row, the adaptive
/// filter (the least sum of absolute values, as signed bytes, over Up, Sub, Average and Paeth;
/// on equal sums the later; a sum of 0 stops the search), the row with its filter byte into
/// one fdeflate stream, and that stream as the IDAT. When the stream would be larger than
/// the image stored uncompressed, the one-shot writer stores it instead; so does this, from
/// the mask decoded back out of its own stream (masks that big are noise).
pub struct PaletteRowEncoder {
    width: u32,
    height: u32,
    palette: Vec<Rgb>,
    deflate: fdeflate::Compressor<Cursor<Vec<u8>>>,
    previous: Vec<u8>,
    /// The filtered row (filter byte first), and a span of it being tried.
    best: Vec<u8>,
    trial: Vec<u8>,
    /// The spans of the row being written that are not quiet (see [`Self::write_row`]).
    spans: Vec<std::ops::Range<usize>>,
}

impl std::fmt::Debug for PaletteRowEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaletteRowEncoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// PNG's filter types (the filter byte of a row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowFilter {
    Sub = 1,
    Up = 2,
    Average = 3,
    Paeth = 4,
}

impl PaletteRowEncoder {
    /// Starts a `width`×`height` mask whose class k has colour `palette[k]`.
    pub fn new(width: u32, height: u32, palette: &[Rgb]) -> Result<Self, png::EncodingError> {
        let w = width as usize;
        Ok(Self {
            width,
            height,
            palette: palette.to_vec(),
            deflate: fdeflate::Compressor::new(Cursor::new(Vec::new()))?,
            previous: vec![0; w],
            best: vec![0; w + 1],
            trial: vec![0; w],
            spans: Vec::new(),
        })
    }

    /// Appends one row of classes (`width` bytes).
    ///
    /// A pixel equal to its left, upper and upper-left neighbours filters to 0 under every
    /// filter, and masks are mostly such pixels: most rows equal the row above (Up then costs
    /// 0 and wins at once), and in the others most 32-pixel blocks are flat and unchanged. So
    /// only the spans of blocks with other pixels are filtered and costed, and the rest of
    /// the filtered row is 0.
    pub fn write_row(&mut self, row: &[u8]) -> Result<(), png::EncodingError> {
        let n = row.len();
        self.spans.clear();
        if row != self.previous {
            for start in (0..n).step_by(BLOCK) {
                let end = (start + BLOCK).min(n);
                if !quiet(&self.previous, row, start..end) {
                    match self.spans.last_mut() {
                        Some(last) if last.end == start => last.end = end,
                        _ => self.spans.push(start..end),
                    }
                }
            }
        }
        let mut least = u64::MAX;
        let mut best = RowFilter::Up;
        for kind in [
            RowFilter::Up,
            RowFilter::Sub,
            RowFilter::Average,
            RowFilter::Paeth,
        ] {
            let mut cost = 0;
            for r in &self.spans {
                let trial = &mut self.trial[..r.len()];
                filter_span(kind, &self.previous, row, r.clone(), trial);
                cost += sum_of_magnitudes(trial);
            }
            if cost <= least {
                (least, best) = (cost, kind);
                if cost == 0 {
                    break;
                }
            }
        }
        self.best[0] = best as u8;
        self.best[1..].fill(0);
        for r in &self.spans {
            filter_span(
                best,
                &self.previous,
                row,
                r.clone(),
                &mut self.best[1 + r.start..1 + r.end],
            );
        }
        self.deflate.write_data(&self.best)?;
        self.previous.copy_from_slice(row);
        Ok(())
    }

    /// Ends the image (after every row was written) and returns the PNG.
    pub fn finish(self) -> Result<Vec<u8>, png::EncodingError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let stream = self.deflate.finish()?.into_inner();
        let stored = fdeflate::StoredOnlyCompressor::<()>::compressed_size((w + 1) * h);
        let png = palette_png_of_stream(self.width, self.height, &self.palette, &stream)?;
        if stream.len() <= stored {
            return Ok(png);
        }
        // Its size passed the pixel limit already; the decoder's own limit must not refuse it.
        let mut dec =
            png::Decoder::new_with_limits(Cursor::new(&png), png::Limits { bytes: usize::MAX });
        dec.set_transformations(Transformations::IDENTITY);
        let mut reader = dec
            .read_info()
            .map_err(|e| png::EncodingError::IoError(std::io::Error::other(e)))?;
        let mut classes = vec![0; w * h];
        reader
            .next_frame(&mut classes)
            .map_err(|e| png::EncodingError::IoError(std::io::Error::other(e)))?;
        encode_palette_png(self.width, self.height, &classes, &self.palette)
    }
}

/// The PNG around a zlib stream of filtered rows, with the header [`encode_palette_png`]
/// writes and the stream in IDAT chunks of png's largest size.
fn palette_png_of_stream(
    width: u32,
    height: u32,
    palette: &[Rgb],
    stream: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(stream.len() + 1024);
    let mut w = palette_encoder(&mut out, width, height, palette).write_header()?;
    for chunk in stream.chunks((u32::MAX >> 1) as usize) {
        w.write_chunk(png::chunk::IDAT, chunk)?;
    }
    w.finish()?;
    Ok(out)
}

/// Pixels per block in [`PaletteRowEncoder::write_row`]'s search for quiet pixels.
const BLOCK: usize = 32;

/// Whether every pixel of `current[r]` equals its left, upper and upper-left neighbours (so
/// filters to 0 under every filter). The first pixel of a row has none: never quiet.
#[inline]
fn quiet(previous: &[u8], current: &[u8], r: std::ops::Range<usize>) -> bool {
    if r.start == 0 {
        return false;
    }
    let (cur, up) = (&current[r.start - 1..r.end], &previous[r.start - 1..r.end]);
    let v = cur[0];
    // Without early exit, so that it compiles to vector compares.
    cur.iter()
        .zip(up)
        .fold(true, |quiet, (&x, &y)| quiet & (x == v) & (y == v))
}

/// `current[r]` filtered against `previous` (one byte per pixel) into `out` (`r.len()`
/// bytes). Filtering has no dependency from pixel to pixel (unlike unfiltering), so each loop
/// vectorises.
fn filter_span(
    kind: RowFilter,
    previous: &[u8],
    current: &[u8],
    r: std::ops::Range<usize>,
    out: &mut [u8],
) {
    let (mut s, e) = (r.start, r.end);
    let mut out = &mut out[..e - s];
    if s == 0 {
        // The first pixel's left and upper-left neighbours are 0.
        let Some((first, rest)) = out.split_first_mut() else {
            return;
        };
        let (x, b) = (current[0], previous[0]);
        *first = match kind {
            RowFilter::Up => x.wrapping_sub(b),
            RowFilter::Sub => x,
            RowFilter::Average => x.wrapping_sub(b / 2),
            RowFilter::Paeth => x.wrapping_sub(paeth(0, b, 0)),
        };
        (out, s) = (rest, 1);
    }
    // Pixel i's left neighbour is `current[i - 1]`, its upper-left `previous[i - 1]`.
    let (x, b) = (&current[s..e], &previous[s..e]);
    let (a, c) = (&current[s - 1..e - 1], &previous[s - 1..e - 1]);
    match kind {
        RowFilter::Up => {
            for ((o, &x), &b) in out.iter_mut().zip(x).zip(b) {
                *o = x.wrapping_sub(b);
            }
        }
        RowFilter::Sub => {
            for ((o, &x), &a) in out.iter_mut().zip(x).zip(a) {
                *o = x.wrapping_sub(a);
            }
        }
        RowFilter::Average => {
            for ((o, &x), (&a, &b)) in out.iter_mut().zip(x).zip(a.iter().zip(b)) {
                // The floor of (a + b) / 2 without a carry out of the byte.
                *o = x.wrapping_sub((a & b) + ((a ^ b) >> 1));
            }
        }
        RowFilter::Paeth => {
            let above = b.iter().zip(c);
            for ((o, (&x, &a)), (&b, &c)) in out.iter_mut().zip(x.iter().zip(a)).zip(above) {
                *o = x.wrapping_sub(paeth(a, b, c));
            }
        }
    }
}

/// PNG's Paeth predictor: whichever of left, up and up-left is nearest to left + up − up-left,
/// in that order on ties.
#[inline(always)]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (a16, b16, c16) = (i16::from(a), i16::from(b), i16::from(c));
    let p = a16 + b16 - c16;
    let (pa, pb, pc) = ((p - a16).abs(), (p - b16).abs(), (p - c16).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// The adaptive filter's cost of a filtered row: its bytes' magnitudes as signed bytes.
fn sum_of_magnitudes(row: &[u8]) -> u64 {
    // Per 256 bytes the sum fits in u16 lanes, which vectorises well.
    row.chunks(256)
        .map(|c| {
            u64::from(
                c.iter()
                    .map(|&b| u16::from((b as i8).unsigned_abs()))
                    .sum::<u16>(),
            )
        })
        .sum()
}

/// An 8-bit greyscale PNG written row by row, so the image is never held whole.
pub struct GreyRowEncoder {
    writer: png::StreamWriter<'static, SharedBuf>,
    out: SharedBuf,
}

/// The encoder's output buffer, shared so that it can be taken back once the stream is done
/// (the stream writer owns its sink).
#[derive(Clone, Default)]
struct SharedBuf(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for GreyRowEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreyRowEncoder").finish_non_exhaustive()
    }
}

impl GreyRowEncoder {
    /// Starts a `width`×`height` greyscale PNG.
    pub fn new(width: u32, height: u32) -> Result<Self, png::EncodingError> {
        let out = SharedBuf::default();
        let mut enc = png::Encoder::new(out.clone(), width, height);
        enc.set_color(ColorType::Grayscale);
        enc.set_depth(BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        // Long runs of equal bytes compress well unfiltered; trying every filter per row
        // would cost more than the rest of the map.
        enc.set_filter(png::Filter::NoFilter);
        Ok(Self {
            writer: enc.write_header()?.into_stream_writer()?,
            out,
        })
    }

    /// Appends one row (`width` bytes).
    pub fn write_row(&mut self, row: &[u8]) -> Result<(), png::EncodingError> {
        use std::io::Write as _;
        self.writer.write_all(row).map_err(png::EncodingError::from)
    }

    /// Ends the image (after every row was written) and returns the PNG.
    pub fn finish(self) -> Result<Vec<u8>, png::EncodingError> {
        self.writer.finish()?;
        Ok(self.out.0.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(
        w: u32,
        h: u32,
        color: ColorType,
        depth: BitDepth,
        data: &[u8],
        interlaced: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut info = png::Info::with_size(w, h);
        info.color_type = color;
        info.bit_depth = depth;
        info.interlaced = interlaced;
        if color == ColorType::Indexed {
            info.palette = Some(vec![255, 255, 255, 0x2c, 0xa0, 0x2c, 9, 9, 9].into());
        }
        let enc = png::Encoder::with_info(&mut out, info).unwrap();
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    }

    fn car_lookup() -> ColorLookup {
        ColorLookup::new([(Rgb(0x2c, 0xa0, 0x2c), 1)])
    }

    #[test]
    fn rgba_white_transparent_known_and_unknown() {
        let px = [
            255, 255, 255, 255, // white → 0
            0x2c, 0xa0, 0x2c, 255, // car → 1
            0x2c, 0xa0, 0x2c, 0, // transparent → 0
            1, 2, 3, 255, // unknown → abstain
        ];
        let d = decode_class_mask(
            &png_of(4, 1, ColorType::Rgba, BitDepth::Eight, &px, false),
            &car_lookup(),
            100,
        )
        .unwrap();
        assert_eq!(d.mask.data, [0, 1, 0, ABSTAIN]);
        assert_eq!(d.unmapped, 1);
    }

    proptest::proptest! {
        /// Runs of any length at any alignment, in RGBA and RGB, map pixel by pixel.
        #[test]
        fn rgb_rows_map_like_each_pixel(
            runs in proptest::collection::vec((0usize..5, 1usize..80), 1..12)
        ) {
            const COLOURS: [[u8; 4]; 5] = [
                [255, 255, 255, 255],
                [0x2c, 0xa0, 0x2c, 255],
                [0x2c, 0xa0, 0x2c, 0],
                [1, 2, 3, 255],
                [0x2c, 0xa0, 0x2d, 255],
            ];
            let want_of = |c: [u8; 4], alpha: bool| match (c, alpha) {
                ([_, _, _, 0], true) | ([255, 255, 255, _], _) => 0,
                ([0x2c, 0xa0, 0x2c, _], _) => 1,
                _ => ABSTAIN,
            };
            let pixels: Vec<[u8; 4]> = runs.iter().flat_map(|&(c, len)| vec![COLOURS[c]; len]).collect();
            for alpha in [true, false] {
                let row: Vec<u8> = pixels
                    .iter()
                    .flat_map(|p| if alpha { p.to_vec() } else { p[..3].to_vec() })
                    .collect();
                let want: Vec<u8> = pixels.iter().map(|&p| want_of(p, alpha)).collect();
                let (mut got, mut got_runs) = (vec![0u8; pixels.len()], Vec::new());
                let unmapped = map_rgb8(&row, &mut got, &mut got_runs, alpha, &car_lookup());
                proptest::prop_assert_eq!(&got, &want);
                // The runs found while mapping are the runs of the classes.
                let mut want_runs = Vec::new();
                runs_of(&want, &mut want_runs);
                proptest::prop_assert_eq!(got_runs, want_runs);
                proptest::prop_assert_eq!(unmapped, want.iter().filter(|&&k| k == ABSTAIN).count() as u64);
            }
        }
    }

    #[test]
    fn palette_png_maps_by_colour_not_index() {
        // Palette index 1 is car's colour, index 2 an unknown one; index order is irrelevant.
        let d = decode_class_mask(
            &png_of(3, 1, ColorType::Indexed, BitDepth::Eight, &[2, 1, 0], false),
            &car_lookup(),
            100,
        )
        .unwrap();
        assert_eq!(d.mask.data, [ABSTAIN, 1, 0]);
    }

    #[test]
    fn sixteen_bit_matches_only_exact_values() {
        let s = |v: u8| [v, v]; // v * 257 in big-endian
        let mut px = Vec::new();
        px.extend(s(0x2c));
        px.extend(s(0xa0));
        px.extend(s(0x2c));
        px.extend([0x2c, 0x00, 0xa0, 0xa0, 0x2c, 0x2c]); // red channel not exact
        let d = decode_class_mask(
            &png_of(2, 1, ColorType::Rgb, BitDepth::Sixteen, &px, false),
            &car_lookup(),
            100,
        )
        .unwrap();
        assert_eq!(d.mask.data, [1, ABSTAIN]);
    }

    #[test]
    fn grey_and_interlaced_pngs_decode() {
        let data: Vec<u8> = (0..64).map(|i| if i % 3 == 0 { 255 } else { 7 }).collect();
        let d = decode_class_mask(
            &interlaced_grey_png(8, 8, &data),
            &ColorLookup::new([(Rgb(7, 7, 7), 2)]),
            100,
        )
        .unwrap();
        let want: Vec<u8> = data.iter().map(|&v| if v == 255 { 0 } else { 2 }).collect();
        assert_eq!(d.mask.data, want);
    }

    #[test]
    fn huge_claimed_dimensions_are_refused_before_allocating() {
        let mut bytes = png_of(1, 1, ColorType::Rgb, BitDepth::Eight, &[0, 0, 0], false);
        // Patch IHDR to claim 200000×200000 and fix the CRC, so only the limit can stop it.
        bytes[16..20].copy_from_slice(&200_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&200_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode_class_mask(&bytes, &car_lookup(), 100_000_000).unwrap_err();
        assert!(
            matches!(e, MaskError::TooLarge { width: 200_000, .. }),
            "{e}"
        );
    }

    #[test]
    fn truncated_png_is_an_error() {
        let bytes = png_of(4, 4, ColorType::Rgb, BitDepth::Eight, &[9; 48], false);
        for cut in [8, 20, 40, bytes.len() - 13] {
            assert!(
                decode_class_mask(&bytes[..cut], &car_lookup(), 100).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn palette_png_round_trips_with_index_equal_to_class() {
        let data = [0, 1, 2, 1, 0, 2];
        let pal = [WHITE, Rgb(0x2c, 0xa0, 0x2c), Rgb(1, 2, 3)];
        let bytes = encode_palette_png(3, 2, &data, &pal).unwrap();
        let mut r = png::Decoder::new(Cursor::new(&bytes)).read_info().unwrap();
        assert_eq!(r.info().color_type, ColorType::Indexed);
        assert!(r.info().trns.is_none());
        assert_eq!(
            r.info().palette.as_deref().unwrap(),
            &[255, 255, 255, 0x2c, 0xa0, 0x2c, 1, 2, 3]
        );
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut buf).unwrap();
        assert_eq!(buf, data);
    }

    /// An Adam7-interlaced 8-bit greyscale PNG, built by hand (the encoder only writes
    /// non-interlaced images): unfiltered scanlines per pass in stored deflate blocks.
    fn interlaced_grey_png(w: u32, h: u32, px: &[u8]) -> Vec<u8> {
        const PASSES: [(u32, u32, u32, u32); 7] = [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ];
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in PASSES {
            for y in (y0..h).step_by(dy as usize) {
                let row: Vec<u8> = (x0..w)
                    .step_by(dx as usize)
                    .map(|x| px[(y * w + x) as usize])
                    .collect();
                if !row.is_empty() {
                    raw.push(0);
                    raw.extend(row);
                }
            }
        }
        let mut z = vec![0x78, 0x01];
        let chunks: Vec<&[u8]> = raw.chunks(65_535).collect();
        for (i, c) in chunks.iter().enumerate() {
            z.push(u8::from(i + 1 == chunks.len()));
            z.extend((c.len() as u16).to_le_bytes());
            z.extend((!(c.len() as u16)).to_le_bytes());
            z.extend(*c);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &v in &raw {
            a = (a + u32::from(v)) % 65_521;
            b = (b + a) % 65_521;
        }
        z.extend(((b << 16) | a).to_be_bytes());
        let mut ihdr = Vec::new();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 1]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (name, data) in [(b"IHDR", ihdr), (b"IDAT", z), (b"IEND", Vec::new())] {
            out.extend((data.len() as u32).to_be_bytes());
            let mut body = name.to_vec();
            body.extend(&data);
            out.extend(&body);
            out.extend(crc32(&body).to_be_bytes());
        }
        out
    }

    /// CRC-32 as PNG uses it (test-only, to forge a valid header).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// The row encoder's PNG next to the one-shot encoder's.
    fn both_encoders(w: u32, h: u32, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let palette = [WHITE, Rgb(0x2c, 0xa0, 0x2c), Rgb(1, 2, 3)];
        let whole = encode_palette_png(w, h, data, &palette).unwrap();
        let mut rows = PaletteRowEncoder::new(w, h, &palette).unwrap();
        for row in data.chunks(w as usize) {
            rows.write_row(row).unwrap();
        }
        (rows.finish().unwrap(), whole)
    }

    proptest::proptest! {
        /// Byte for byte the one-shot encoder's file, for masks of runs (compressed) and of
        /// noise (stored, as the stream would be larger).
        #[test]
        fn row_encoder_writes_the_one_shot_file(
            (w, h, data) in {
                use proptest::prelude::*;
                (1u32..90, 1u32..12, any::<bool>()).prop_flat_map(|(w, h, noise)| {
                    let px = (w * h) as usize;
                    let data = if noise {
                        proptest::collection::vec(any::<u8>(), px).boxed()
                    } else {
                        proptest::collection::vec((0u8..3, 1usize..40), 1..12)
                            .prop_map(move |runs| {
                                runs.into_iter()
                                    .flat_map(|(c, n)| std::iter::repeat_n(c, n))
                                    .cycle()
                                    .take(px)
                                    .collect::<Vec<u8>>()
                            })
                            .boxed()
                    };
                    (Just(w), Just(h), data)
                })
            }
        ) {
            let (rows, whole) = both_encoders(w, h, &data);
            proptest::prop_assert_eq!(rows, whole);
        }

        /// The same for masks like real ones: rows that repeat the row above, and blocks of
        /// 32 pixels that are flat and unchanged beside ones that are not.
        #[test]
        fn row_encoder_writes_the_one_shot_file_for_repeated_rows(
            (w, rows, order) in {
                use proptest::prelude::*;
                (1u32..200).prop_flat_map(|w| {
                    let row = proptest::collection::vec((0u8..3, 1usize..70), 1..6).prop_map(
                        move |runs| {
                            runs.into_iter()
                                .flat_map(|(c, n)| std::iter::repeat_n(c, n))
                                .cycle()
                                .take(w as usize)
                                .collect::<Vec<u8>>()
                        },
                    );
                    let rows = proptest::collection::vec(row, 1..4);
                    (Just(w), rows, proptest::collection::vec(0usize..4, 1..12))
                })
            }
        ) {
            let data: Vec<u8> = order.iter().flat_map(|&i| rows[i % rows.len()].clone()).collect();
            let (rows, whole) = both_encoders(w, order.len() as u32, &data);
            proptest::prop_assert_eq!(rows, whole);
        }
    }

    #[test]
    fn noise_is_stored_like_the_one_shot_encoder_does() {
        let mut seed = 7u32;
        let data: Vec<u8> = (0..64 * 64)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        let (rows, whole) = both_encoders(64, 64, &data);
        // Stored: the file is larger than the pixels.
        assert!(whole.len() > data.len(), "{} bytes", whole.len());
        assert_eq!(rows, whole);
    }
}
