//! The review's pictures of one image: the consolidated mask over the source image in
//! half-transparent class colours, and the disagreement map as a heat map over it, at full
//! size and as thumbnails (JPEG).

use image::imageops::FilterType;
use image::{Rgb, RgbImage};

/// The longest side of a thumbnail.
pub const THUMB: u32 = 512;

/// JPEG quality of thumbnails and of full-size pictures.
const THUMB_QUALITY: u8 = 75;
const FULL_QUALITY: u8 = 75;

/// The source image behind pictures without one (a grey that shows every class colour).
const NO_SOURCE: Rgb<u8> = Rgb([96, 96, 96]);

/// One image's pictures, encoded.
#[derive(Debug)]
pub struct Pictures {
    pub overlay: Vec<u8>,
    pub overlay_thumb: Vec<u8>,
    pub heat: Option<(Vec<u8>, Vec<u8>)>,
    /// The classes the mask holds, BACKGROUND left out.
    pub classes: Vec<u8>,
}

/// A class mask: the consolidated PNG's palette indices.
#[derive(Debug)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    pub index: Vec<u8>,
}

/// The size a PNG's header gives, without decoding the rest.
pub fn png_size(bytes: &[u8]) -> anyhow::Result<(u32, u32)> {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let info = reader.info();
    Ok((info.width, info.height))
}

/// Decodes the consolidated mask (an 8-bit palette PNG) to its indices, refusing one of more
/// than `max_pixels` pixels before anything is allocated for it.
pub fn decode_mask(bytes: &[u8], max_pixels: u64) -> anyhow::Result<Mask> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info()?;
    let info = reader.info();
    if info.color_type != png::ColorType::Indexed || info.bit_depth != png::BitDepth::Eight {
        anyhow::bail!("the mask is not an 8-bit palette PNG");
    }
    let (width, height) = (info.width, info.height);
    if u64::from(width) * u64::from(height) > max_pixels {
        anyhow::bail!(
            "the mask is {width}×{height}, over the review's limit of {max_pixels} pixels (--max-pixels)"
        );
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| anyhow::anyhow!("the mask is too large"))?;
    let mut index = vec![0; size];
    reader.next_frame(&mut index)?;
    index.truncate(width as usize * height as usize);
    Ok(Mask {
        width,
        height,
        index,
    })
}

/// Decodes an image (JPEG or PNG), refusing one whose decoding would allocate more than
/// `max_bytes`: a source image or a map is not trusted to be the mask's size.
fn decode_bounded(bytes: &[u8], max_bytes: u64) -> Option<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    reader.decode().ok()
}

/// The pictures of one image. `source` is the image's bytes (JPEG or PNG), `None` when it
/// could not be had; `heat` the disagreement map's bytes (8-bit grey PNG); `colors[k]` class
/// k's colour. A source or map whose decoding would take more than 4 bytes a pixel of the
/// mask (with room for a source larger than the mask) is left out.
pub fn pictures(
    source: Option<&[u8]>,
    mask: &Mask,
    heat: Option<&[u8]>,
    colors: &[[u8; 3]],
) -> anyhow::Result<Pictures> {
    let (w, h) = (mask.width, mask.height);
    let budget = (u64::from(w) * u64::from(h) * 16).max(64 << 20);
    let base = source
        .and_then(|b| decode_bounded(b, budget))
        .map(|img| {
            let rgb = img.to_rgb8();
            if rgb.dimensions() == (w, h) {
                rgb
            } else {
                image::imageops::resize(&rgb, w, h, FilterType::Triangle)
            }
        })
        .unwrap_or_else(|| RgbImage::from_pixel(w, h, NO_SOURCE));
    let mut present = [false; 256];
    let mut overlay = base.clone();
    for (px, &k) in overlay.pixels_mut().zip(&mask.index) {
        present[usize::from(k)] = true;
        if k == 0 {
            continue;
        }
        let c = colors.get(usize::from(k)).copied().unwrap_or([255, 0, 255]);
        for (v, c) in px.0.iter_mut().zip(c) {
            *v = ((u16::from(*v) + u16::from(c)) / 2) as u8;
        }
    }
    let heat = match heat {
        Some(bytes) => {
            // A map that cannot be read leaves the row without a heat map, not without a mask.
            let Some(grey) = decode_bounded(bytes, budget).map(|m| m.to_luma8()) else {
                return Ok(Pictures {
                    overlay_thumb: jpeg(&thumb(&overlay), THUMB_QUALITY)?,
                    overlay: jpeg(&overlay, FULL_QUALITY)?,
                    heat: None,
                    classes: present_classes(&present),
                });
            };
            let grey = if grey.dimensions() == (w, h) {
                grey
            } else {
                image::imageops::resize(&grey, w, h, FilterType::Nearest)
            };
            let mut pic = base;
            for (px, g) in pic.pixels_mut().zip(grey.pixels()) {
                // Dimmed image; red where workers lost, in proportion.
                let a = u16::from(g.0[0]);
                let [r, gr, b] = px.0;
                let dim = |v: u8| u16::from(v) * 3 / 5;
                px.0 = [
                    ((dim(r) * (255 - a) + 255 * a) / 255) as u8,
                    (dim(gr) * (255 - a) / 255) as u8,
                    (dim(b) * (255 - a) / 255) as u8,
                ];
            }
            Some((
                jpeg(&pic, FULL_QUALITY)?,
                jpeg(&thumb(&pic), THUMB_QUALITY)?,
            ))
        }
        None => None,
    };
    Ok(Pictures {
        overlay_thumb: jpeg(&thumb(&overlay), THUMB_QUALITY)?,
        overlay: jpeg(&overlay, FULL_QUALITY)?,
        heat,
        classes: present_classes(&present),
    })
}

/// The classes marked present, BACKGROUND left out.
fn present_classes(present: &[bool; 256]) -> Vec<u8> {
    (1..=255u8).filter(|&k| present[usize::from(k)]).collect()
}

/// At most [`THUMB`] pixels on the long side.
fn thumb(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.max(h) <= THUMB {
        return img.clone();
    }
    let scale = f64::from(THUMB) / f64::from(w.max(h));
    let (tw, th) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    image::imageops::resize(img, tw, th, FilterType::Triangle)
}

fn jpeg(img: &RgbImage, quality: u8) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    img.write_with_encoder(enc)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageFormat;

    fn palette_png(w: u32, h: u32, index: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![255, 255, 255, 0, 255, 0, 0, 0, 255]);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(index).unwrap();
        wr.finish().unwrap();
        out
    }

    #[test]
    fn the_overlay_blends_class_colours_and_lists_the_classes() {
        let (w, h) = (1024u32, 10u32);
        let index: Vec<u8> = (0..w * h)
            .map(|i| if i % w < 512 { 0 } else { 2 })
            .collect();
        let mask = decode_mask(&palette_png(w, h, &index), u64::MAX).unwrap();
        assert!(decode_mask(&palette_png(w, h, &index), 1000).is_err());
        let source = RgbImage::from_pixel(w, h, Rgb([200, 200, 200]));
        let mut src = Vec::new();
        source
            .write_to(&mut std::io::Cursor::new(&mut src), ImageFormat::Png)
            .unwrap();
        let p = pictures(
            Some(&src),
            &mask,
            None,
            &[[255; 3], [0, 255, 0], [0, 0, 255]],
        )
        .unwrap();
        assert_eq!(p.classes, [2]);
        let full = image::load_from_memory(&p.overlay).unwrap().to_rgb8();
        assert_eq!(full.dimensions(), (w, h));
        let px = full.get_pixel(900, 5).0;
        assert!(px[2] > 200 && px[0] < 130, "blue blended over grey: {px:?}");
        let thumb = image::load_from_memory(&p.overlay_thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (512, 5));
        assert!(p.heat.is_none());
    }

    #[test]
    fn a_mask_that_is_not_a_palette_png_is_refused() {
        let img = RgbImage::from_pixel(4, 4, Rgb([1, 2, 3]));
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        assert!(decode_mask(&bytes, u64::MAX).is_err());
        assert!(decode_mask(b"not a png", u64::MAX).is_err());
    }
}
