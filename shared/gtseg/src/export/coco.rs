//! `coco`: COCO-Stuff's semantic style. `images/<id>.<ext>` (the source, byte for byte) and
//! `annotations/<split>.json`, with one annotation per (image, class present) as compressed
//! RLE (column-major counts that start with a run of zeros, in pycocotools' string form),
//! with its `area` and `bbox` and `iscrowd: 0`; `categories` is a list with ids from 1.
//! Background and ignored pixels belong to no annotation. Each split's file is written as
//! the images come, in two parts joined at the end, so memory does not grow with the job.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::labels::{IGNORE, LabelTable};
use super::{Exported, Writer, create_file};

/// One split's annotation file being written: its images and its annotations, apart.
struct SplitFile {
    images: BufWriter<std::fs::File>,
    annotations: BufWriter<std::fs::File>,
    first_image: bool,
    first_annotation: bool,
}

/// The `coco` writer.
pub(super) struct Coco {
    out: PathBuf,
    categories: String,
    splits: BTreeMap<String, SplitFile>,
    next_image: u64,
    next_annotation: u64,
}

impl Coco {
    pub(super) fn new(out: &Path, table: &LabelTable) -> std::io::Result<Self> {
        for dir in ["images", "annotations"] {
            std::fs::create_dir_all(out.join(dir))?;
        }
        let categories: Vec<_> = table
            .classes()
            .iter()
            .filter(|c| c.id > 0)
            .map(|c| json!({"id": c.id, "name": c.name, "supercategory": "object"}))
            .collect();
        Ok(Self {
            out: out.to_path_buf(),
            categories: serde_json::to_string(&categories).unwrap_or_default(),
            splits: BTreeMap::new(),
            next_image: 1,
            next_annotation: 1,
        })
    }

    fn split(&mut self, name: &str) -> std::io::Result<&mut SplitFile> {
        if !self.splits.contains_key(name) {
            let part = |what: &str| -> std::io::Result<BufWriter<std::fs::File>> {
                Ok(BufWriter::new(create_file(
                    &self.out.join(format!("annotations/.{name}.{what}.part")),
                )?))
            };
            let file = SplitFile {
                images: part("images")?,
                annotations: part("annotations")?,
                first_image: true,
                first_annotation: true,
            };
            self.splits.insert(name.to_owned(), file);
        }
        Ok(self.splits.get_mut(name).expect("inserted above"))
    }
}

impl Writer for Coco {
    fn add(&mut self, image: &Exported<'_>) -> std::io::Result<()> {
        let r = image.ready;
        let file_name = format!("{}.{}", image.id, r.ext);
        create_file(&self.out.join("images").join(&file_name))?.write_all(&r.source)?;
        let image_id = self.next_image;
        self.next_image += 1;
        let mut annotations = Vec::new();
        for class in rles(&r.ids, r.width, r.height) {
            annotations.push(json!({
                "id": self.next_annotation, "image_id": image_id, "category_id": class.class,
                "segmentation": {"size": [r.height, r.width], "counts": class.counts},
                "area": r.pixels[usize::from(class.class)], "bbox": class.bbox, "iscrowd": 0}));
            self.next_annotation += 1;
        }
        let entry =
            json!({"id": image_id, "file_name": file_name, "width": r.width, "height": r.height});
        let split = self.split(image.split)?;
        if !std::mem::take(&mut split.first_image) {
            split.images.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut split.images, &entry)?;
        for a in annotations {
            if !std::mem::take(&mut split.first_annotation) {
                split.annotations.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut split.annotations, &a)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let Self {
            out,
            categories,
            splits,
            ..
        } = *self;
        for (name, file) in splits {
            let (images, annotations) = (file.images.into_inner()?, file.annotations.into_inner()?);
            drop((images, annotations));
            let part = |what: &str| out.join(format!("annotations/.{name}.{what}.part"));
            let mut json =
                BufWriter::new(create_file(&out.join(format!("annotations/{name}.json")))?);
            json.write_all(b"{\"images\": [\n")?;
            std::io::copy(&mut std::fs::File::open(part("images"))?, &mut json)?;
            json.write_all(b"],\n\"annotations\": [\n")?;
            std::io::copy(&mut std::fs::File::open(part("annotations"))?, &mut json)?;
            write!(json, "],\n\"categories\": {categories}}}\n")?;
            json.flush()?;
            std::fs::remove_file(part("images"))?;
            std::fs::remove_file(part("annotations"))?;
        }
        Ok(())
    }
}

/// One class's pixels in an image: compressed RLE, column-major counts that start with a
/// run of zeros, in pycocotools' string form, and their bounding box `[x, y, width, height]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClassRle {
    pub(super) class: u8,
    pub(super) counts: String,
    pub(super) bbox: [u32; 4],
}

/// What one class's runs add up to, as the class map is walked.
struct Runs {
    counts: Vec<u64>,
    /// Where its last run ended.
    end: usize,
    /// Its bounding box so far: columns and rows, inclusive.
    x: (usize, usize),
    y: (usize, usize),
}

/// Every class's RLE in one walk over the class map, column by column (background and
/// ignored pixels belong to none), in class order.
pub(super) fn rles(ids: &[u8], width: u32, height: u32) -> Vec<ClassRle> {
    let (w, h) = (width as usize, height as usize);
    let total = w * h;
    // The map column by column, pycocotools' order, once: a strided pass per class cost
    // 5× more on 1 MP images of 8 classes (gtseg bench --job).
    let mut cols = vec![0u8; total];
    for (y, row) in ids.chunks_exact(w.max(1)).take(h).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            cols[x * h + y] = v;
        }
    }
    let mut runs: Vec<Option<Runs>> = (0..256).map(|_| None).collect();
    let mut p = 0;
    while p < total {
        let v = cols[p];
        let q = p + cols[p..].iter().take_while(|&&c| c == v).count();
        if v != 0 && v != IGNORE {
            let r = runs[usize::from(v)].get_or_insert_with(|| Runs {
                counts: Vec::new(),
                end: 0,
                x: (usize::MAX, 0),
                y: (usize::MAX, 0),
            });
            r.counts.extend([(p - r.end) as u64, (q - p) as u64]);
            r.end = q;
            let ((xa, ya), (xb, yb)) = ((p / h, p % h), ((q - 1) / h, (q - 1) % h));
            r.x = (r.x.0.min(xa), r.x.1.max(xb));
            // A run over more than one column reaches the bottom of its first column and the
            // top of its last.
            r.y = if xa == xb {
                (r.y.0.min(ya), r.y.1.max(yb))
            } else {
                (0, h - 1)
            };
        }
        p = q;
    }
    runs.into_iter()
        .enumerate()
        .filter_map(|(class, r)| {
            let mut r = r?;
            if r.end < total {
                r.counts.push((total - r.end) as u64);
            }
            let bbox = [r.x.0, r.y.0, r.x.1 - r.x.0 + 1, r.y.1 - r.y.0 + 1].map(|v| v as u32);
            Some(ClassRle {
                class: class as u8,
                counts: counts_string(&r.counts),
                bbox,
            })
        })
        .collect()
}

/// pycocotools' `rleToString`: each count (less the count two before it, from the fourth on)
/// in 5-bit groups, low first, each group a character from 48, with bit 5 set while more
/// follow.
fn counts_string(counts: &[u64]) -> String {
    let mut s = String::new();
    for (i, &c) in counts.iter().enumerate() {
        let mut x = c as i64;
        if i > 2 {
            x -= counts[i - 2] as i64;
        }
        loop {
            let mut ch = (x & 0x1f) as u8;
            x >>= 5;
            let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                ch |= 0x20;
            }
            s.push(char::from(ch + 48));
            if !more {
                break;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_column_major_and_start_with_zeros() {
        // 3 wide, 2 high: class 1 at (x=1, y=0) and (x=2, y=1); class 2 at (0, 0); 255 at
        // (0, 1), in no class.
        let ids = [2, 1, 0, 255, 0, 1];
        // Columns: x=0 → 2,255; x=1 → 1,0; x=2 → 0,1. Class 1: 2 zeros, 1 one, 2 zeros, 1 one.
        let one = ClassRle {
            class: 1,
            counts: counts_string(&[2, 1, 2, 1]),
            bbox: [1, 0, 2, 2],
        };
        let two = ClassRle {
            class: 2,
            counts: counts_string(&[0, 1, 5]),
            bbox: [0, 0, 1, 1],
        };
        assert_eq!(rles(&ids, 3, 2), [one, two]);
        // A run across columns: its box spans every row.
        assert_eq!(rles(&[0, 3, 3, 0], 2, 2)[0].bbox, [0, 0, 2, 2]);
    }

    #[test]
    fn counts_strings_match_pycocotools() {
        // pycocotools.mask.frPyObjects({"counts": [...], "size": [h, w]}, h, w)["counts"].
        assert_eq!(counts_string(&[2, 1, 2, 1]), "2120");
        assert_eq!(counts_string(&[0, 100, 20]), "0T3d0");
        assert_eq!(counts_string(&[5, 3, 1000, 2, 4]), "53Xo0OlPO");
    }
}
