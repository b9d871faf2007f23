//! Fixtures built in code: synthetic scenes, worker PNGs as the Ground Truth UI sends them,
//! answer JSON, and the sample events of `events/` (see `src/bin/make-events.rs`).

use base64::Engine as _;
use serde_json::{Value, json};

/// An RGB colour as the UI writes it.
pub type Rgb = [u8; 3];

/// The labels of the sample job, in label-category order (classes 1..=4).
pub const LABELS: [&str; 4] = ["car", "road", "person", "building"];

/// Ground Truth's first colours (tab10), which the UI hands out in label order.
pub const TAB10: [Rgb; 4] = [
    [0x2c, 0xa0, 0x2c],
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0xd6, 0x27, 0x28],
];

/// A class-index image: 0 background, k = LABELS[k-1].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub classes: Vec<u8>,
}

impl Scene {
    /// A street: a building top-left, road across the bottom, a car on the road, and a thin
    /// person. `shift` moves the car by that many pixels (a careless worker's outline).
    pub fn street(width: u32, height: u32, shift: i64) -> Self {
        let (w, h) = (i64::from(width), i64::from(height));
        let mut classes = vec![0u8; (width * height) as usize];
        for y in 0..h {
            for x in 0..w {
                let mut c = 0;
                if x < w * 2 / 5 && y > h / 8 && y < h * 3 / 5 {
                    c = 4; // building
                }
                if y >= h * 3 / 5 {
                    c = 2; // road
                }
                let (cx0, cx1, cy0, cy1) =
                    (w / 2 + shift, w / 2 + w / 4 + shift, h * 11 / 20, h * 4 / 5);
                if x >= cx0 && x < cx1 && y >= cy0 && y < cy1 {
                    c = 1; // car
                }
                if x >= w / 4 && x < w / 4 + 3 && y >= h * 2 / 5 && y < h * 17 / 20 {
                    c = 3; // person: 3 pixels wide
                }
                classes[(y * w + x) as usize] = c;
            }
        }
        Self {
            width,
            height,
            classes,
        }
    }

    /// Replaces every pixel of class `from` with `to` (a worker who skipped a label).
    pub fn without(mut self, from: u8, to: u8) -> Self {
        self.classes
            .iter_mut()
            .filter(|c| **c == from)
            .for_each(|c| *c = to);
        self
    }
}

/// How a worker's PNG paints background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// RGBA with fully transparent background (what the labeling UI exports).
    Transparent,
    /// Opaque RGB with white background.
    White,
}

/// Encodes a class-index image as a worker PNG, painting class k with `colors[k-1]`.
/// `noise` pixels (index list) get an off-palette colour, like anti-aliased edges.
pub fn worker_png(scene: &Scene, colors: &[Rgb], bg: Background, noise: &[usize]) -> Vec<u8> {
    let n = scene.classes.len();
    let (ct, ch) = match bg {
        Background::Transparent => (png::ColorType::Rgba, 4),
        Background::White => (png::ColorType::Rgb, 3),
    };
    let mut px = Vec::with_capacity(n * ch);
    for (i, &c) in scene.classes.iter().enumerate() {
        let rgb = if noise.contains(&i) {
            [0x80, 0x81, 0x82]
        } else if c == 0 {
            [255, 255, 255]
        } else {
            colors[usize::from(c) - 1]
        };
        px.extend(rgb);
        if ch == 4 {
            px.push(if c == 0 && !noise.contains(&i) {
                0
            } else {
                255
            });
        }
    }
    encode(scene.width, scene.height, ct, &px)
}

/// Encodes raw 8-bit pixels as a PNG.
pub fn encode(width: u32, height: u32, ct: png::ColorType, px: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(ct);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut w = enc.write_header().expect("PNG header");
    w.write_image_data(px).expect("PNG data");
    w.finish().expect("PNG end");
    out
}

/// `#rrggbb`.
pub fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// The answer JSON of `crowd-semantic-segmentation` (under the element `name`), with
/// `labelMappings` for the labels this worker used.
pub fn answer_json(
    name: &str,
    png_bytes: &[u8],
    width: u32,
    height: u32,
    mappings: &[(&str, Rgb)],
) -> Value {
    let lm: serde_json::Map<String, Value> = mappings
        .iter()
        .map(|(l, c)| ((*l).to_owned(), json!({"color": hex(*c)})))
        .collect();
    json!({name: {
        "inputImageProperties": {"height": height, "width": width},
        "labelMappings": lm,
        "labeledImage": {"pngImageData": base64::engine::general_purpose::STANDARD.encode(png_bytes)}
    }})
}

/// The labels a scene's worker used, with the worker's colours.
pub fn mappings_for<'a>(scene: &Scene, colors: &[Rgb]) -> Vec<(&'a str, Rgb)> {
    (1..=LABELS.len())
        .filter(|&k| scene.classes.contains(&(k as u8)))
        .map(|k| (LABELS[k - 1], colors[k - 1]))
        .collect()
}

/// Decodes an 8-bit palette PNG: `(width, height, indices, palette RGB triples, has tRNS)`.
pub fn decode_indexed(bytes: &[u8]) -> (u32, u32, Vec<u8>, Vec<u8>, bool) {
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("PNG");
    let info = r.info();
    assert_eq!(
        info.color_type,
        png::ColorType::Indexed,
        "consolidated masks are palette PNGs"
    );
    assert_eq!(
        info.bit_depth,
        png::BitDepth::Eight,
        "consolidated masks are 8-bit"
    );
    let (w, h) = (info.width, info.height);
    let pal = info.palette.as_deref().unwrap_or_default().to_vec();
    let trns = info.trns.is_some();
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    r.next_frame(&mut buf).expect("frame");
    (w, h, buf, pal, trns)
}
