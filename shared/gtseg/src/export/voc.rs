//! `voc`: the layout that mmsegmentation, torchvision's `VOCSegmentation`, CVAT's
//! "Segmentation mask" and Datumaro read. `JPEGImages/<id>.<ext>` (the source, byte for byte),
//! `SegmentationClass/<id>.png` (an 8-bit palette PNG: pixel = class id, 255 = ignore; entry k
//! is class k's colour, 255 VOC's void colour), `ImageSets/Segmentation/<split>.txt`, and
//! `labelmap.txt` (line k is class k, then the ignore colour).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::labels::{LabelTable, VOID_COLOR};
use super::{Exported, Writer, create_file};
use crate::labels::Rgb;
use crate::mask::encode_palette_png;

/// The `voc` writer.
pub(super) struct Voc {
    out: PathBuf,
    palette: Vec<Rgb>,
    /// Each split's ids, in order.
    splits: BTreeMap<String, Vec<String>>,
}

impl Voc {
    pub(super) fn new(out: &Path, table: &LabelTable) -> std::io::Result<Self> {
        for dir in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
            std::fs::create_dir_all(out.join(dir))?;
        }
        let plte = table.palette();
        let palette = plte.chunks(3).map(|c| Rgb(c[0], c[1], c[2])).collect();
        let mut labelmap = String::from("# label:color_rgb:parts:actions\n");
        for c in table.classes() {
            // The format's separators cannot appear in a name; background is VOC's name.
            let name = if c.id == 0 {
                "background".to_owned()
            } else {
                c.name.replace([':', '\n', '\r'], "_")
            };
            let Rgb(r, g, b) = Rgb::parse_hex(&c.color).unwrap_or(Rgb(0, 0, 0));
            labelmap.push_str(&format!("{name}:{r},{g},{b}::\n"));
        }
        let Rgb(r, g, b) = VOID_COLOR;
        labelmap.push_str(&format!("ignored:{r},{g},{b}::\n"));
        create_file(&out.join("labelmap.txt"))?.write_all(labelmap.as_bytes())?;
        Ok(Self {
            out: out.to_path_buf(),
            palette,
            splits: BTreeMap::new(),
        })
    }
}

impl Writer for Voc {
    fn add(&mut self, image: &Exported<'_>) -> std::io::Result<()> {
        let r = image.ready;
        let source = self.out.join(format!("JPEGImages/{}.{}", image.id, r.ext));
        create_file(&source)?.write_all(&r.source)?;
        let png = encode_palette_png(r.width, r.height, &r.ids, &self.palette)
            .map_err(std::io::Error::other)?;
        let mask = self.out.join(format!("SegmentationClass/{}.png", image.id));
        create_file(&mask)?.write_all(&png)?;
        self.splits
            .entry(image.split.to_owned())
            .or_default()
            .push(image.id.to_owned());
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        for (split, ids) in &self.splits {
            let path = self.out.join(format!("ImageSets/Segmentation/{split}.txt"));
            let mut text = ids.join("\n");
            text.push('\n');
            create_file(&path)?.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}
