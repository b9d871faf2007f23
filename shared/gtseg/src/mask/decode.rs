//! Reading worker PNGs: each PNG is decoded row by row through the `png` crate with memory
//! limits, and every pixel is mapped straight to a class index through that worker's own
//! colours, so no RGBA image is ever held.

use std::io::Cursor;

use png::{BitDepth, ColorType, Transformations};

use super::{DECODER_BYTES, MAX_INTERLACED_FRAME, MaskError, check_size};
use crate::labels::{Rgb, WHITE};
use crate::raster::{ABSTAIN, ClassMask, Run, max_runs, runs_of};

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
    /// The class of every pixel.
    pub mask: ClassMask,
    /// Pixels whose colour matched nothing: they abstain.
    pub unmapped: u64,
}

/// Reads only the PNG header: `(width, height)`.
///
/// Refuses empty images and images over `max_pixels`: what a header alone can show.
pub(crate) fn png_dimensions(png_bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), MaskError> {
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

/// An 8-bit single-channel image: a consolidated mask's class indices, or a disagreement map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexImage {
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Its samples, row by row.
    pub data: Vec<u8>,
}

/// Decodes an 8-bit palette or greyscale PNG (a consolidated mask, a disagreement map) to its
/// raw samples: palette indices or grey levels, never colours. Refuses any other layout and
/// any image over `max_pixels`, from its header, before allocating for it.
pub fn decode_index_png(png_bytes: &[u8], max_pixels: u64) -> Result<IndexImage, MaskError> {
    let mut dec = png::Decoder::new_with_limits(
        Cursor::new(png_bytes),
        png::Limits {
            bytes: DECODER_BYTES,
        },
    );
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info()?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    check_size(width, height, max_pixels)?;
    if info.bit_depth != png::BitDepth::Eight
        || !matches!(info.color_type, ColorType::Indexed | ColorType::Grayscale)
    {
        return Err(MaskError::Unsupported(info.color_type));
    }
    // One byte a pixel, the whole image (interlaced ones included): within `max_pixels`.
    let mut data = vec![0; width as usize * height as usize];
    reader.next_frame(&mut data)?;
    Ok(IndexImage {
        width,
        height,
        data,
    })
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
pub(crate) struct MaskReader<'a> {
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
    pub(crate) fn new(
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
            // Adam7 rows arrive per pass; decode the frame whole, then map it. Its memory is
            // bounded here rather than by the pixel limit alone: the labeling UI never
            // writes interlaced PNGs, and a large one would cost a whole frame per worker.
            let bytes = reader
                .output_buffer_size()
                .ok_or(png::DecodingError::LimitsExceeded)?;
            if bytes > MAX_INTERLACED_FRAME {
                return Err(MaskError::InterlacedTooLarge { bytes });
            }
            let mut buf = vec![0u8; bytes];
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
    pub(crate) fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Decodes the next row into `dst` (`width` class indices), and its runs into `runs`.
    pub(crate) fn read_row(
        &mut self,
        dst: &mut [u8],
        runs: &mut Vec<Run>,
    ) -> Result<(), MaskError> {
        runs.clear();
        let truncated = MaskError::Truncated {
            rows: self.rows_read,
            height: self.height,
        };
        let unmapped = match &mut self.frame {
            Some((buf, line, next)) => {
                let row = buf
                    .get(*next * *line..(*next + 1) * *line)
                    .ok_or(truncated)?;
                *next += 1;
                self.mapper.map(row, dst, runs)
            }
            None => {
                let row = self.reader.next_row()?.ok_or(truncated)?;
                self.mapper.map(row.data(), dst, runs)
            }
        };
        self.rows_read += 1;
        self.unmapped += unmapped;
        Ok(())
    }

    /// Checks the end of the image data (a truncated or corrupt tail is an error) and returns
    /// how many pixels abstained.
    pub(crate) fn finish(mut self) -> Result<u64, MaskError> {
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
    let cap = max_runs(n);
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
            if runs.len() <= cap {
                Run::extend(runs, j, class);
            }
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
            if runs.len() <= cap {
                Run::extend(runs, j, class);
            }
            if class == ABSTAIN {
                unmapped += (j - i) as u64;
            }
            i = j;
        }
    }
    // A noisy row keeps no runs (see `max_runs`).
    if runs.len() > cap {
        runs.clear();
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
        let crc = crc32fast::hash(&bytes[12..29]);
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

    /// An Adam7-interlaced 8-bit greyscale PNG, built by hand (png's encoder writes only
    /// non-interlaced image data): unfiltered scanlines per pass, zlib-compressed.
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
        let z = fdeflate::compress_to_vec(&raw);
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
            out.extend(crc32fast::hash(&body).to_be_bytes());
        }
        out
    }
}
