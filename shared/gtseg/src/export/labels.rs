//! One class table per export, by name: `BACKGROUND` is 0, then the first job's classes in
//! its label order, then each new name in the order it first appears. Every mask is remapped
//! through it by name, never by colour or position, and every class keeps one colour, distinct
//! from the others' and from the ignore colour.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::labels::{BACKGROUND, FALLBACK_COLORS, MAX_LABELS, Rgb};

/// The pixel value of an ignored pixel in every format that has one.
pub const IGNORE: u8 = 255;

/// VOC's colour for ignored pixels ("void").
pub const VOID_COLOR: Rgb = Rgb(224, 224, 192);

/// One class of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportClass {
    /// Its id: its pixel value in `voc` and `hf`, its category id in `coco`.
    pub id: u8,
    /// Its name, as the jobs give it.
    pub name: String,
    /// Its colour, `#rrggbb`.
    pub color: String,
}

/// The export's classes, by id.
#[derive(Debug, Clone, Default)]
pub struct LabelTable {
    classes: Vec<ExportClass>,
}

/// A colour map with more classes than an export can number (ids stop at 254; 255 is
/// ignore).
#[derive(Debug, thiserror::Error)]
#[error("the jobs name {0} classes in all, more than the {MAX_LABELS} an export can number")]
pub struct TooManyClasses(pub usize);

impl LabelTable {
    /// The table's classes, by id.
    pub fn classes(&self) -> &[ExportClass] {
        &self.classes
    }

    /// The id of class `name`, if the table has it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.classes.iter().find(|c| c.name == name).map(|c| c.id)
    }

    /// Adds the classes of an `internal-color-map` (index → class-name, hex-color) that the
    /// table lacks, in index order; `BACKGROUND` first whatever the map says.
    pub fn learn(&mut self, color_map: &Map<String, Value>) -> Result<(), TooManyClasses> {
        if self.classes.is_empty() {
            self.push(BACKGROUND, "#ffffff")?;
        }
        let mut entries: Vec<(u32, &str, &str)> = color_map
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.parse().ok()?,
                    v.get("class-name")?.as_str()?,
                    v.get("hex-color").and_then(Value::as_str).unwrap_or(""),
                ))
            })
            .collect();
        entries.sort_by_key(|e| e.0);
        for (_, name, color) in entries {
            if self.id_of(name).is_none() {
                self.push(name, color)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, name: &str, color: &str) -> Result<(), TooManyClasses> {
        let id = self.classes.len();
        if id > MAX_LABELS {
            return Err(TooManyClasses(id + 1));
        }
        let taken =
            |rgb: Rgb| rgb == VOID_COLOR || self.classes.iter().any(|c| c.color == rgb.to_string());
        // The job's colour, unless another class or the ignore colour has it already.
        let wanted = Rgb::parse_hex(color).filter(|&c| !taken(c));
        let rgb = wanted
            .or_else(|| FALLBACK_COLORS.iter().copied().find(|&c| !taken(c)))
            .or_else(|| {
                (0..=u32::MAX >> 8)
                    .map(|n| Rgb((n >> 16) as u8, (n >> 8) as u8, n as u8))
                    .find(|&c| !taken(c))
            })
            .unwrap_or(Rgb(0, 0, 0));
        self.classes.push(ExportClass {
            id: id as u8,
            name: name.to_owned(),
            color: rgb.to_string(),
        });
        Ok(())
    }

    /// The table as `labels.json`: a list of `{"id", "name", "color"}` ordered by id.
    pub fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(&self.classes).unwrap_or_default();
        text.push(b'\n');
        text
    }

    /// How an image's class indices become export ids, from its classes by index (as its
    /// `internal-color-map` names them): by name; an index the map does not name becomes
    /// [`IGNORE`] (and is counted as unknown).
    pub fn remap(&self, classes: &[(usize, String)]) -> Remap {
        let mut to = [None; 256];
        for (k, name) in classes {
            if let Some(slot) = to.get_mut(*k) {
                *slot = self.id_of(name);
            }
        }
        Remap(to)
    }

    /// The palette of `voc`'s PNGs: entry k is class k's colour, 255 the ignore colour.
    pub fn palette(&self) -> Vec<u8> {
        let mut plte = vec![0u8; 256 * 3];
        for c in &self.classes {
            if let Some(Rgb(r, g, b)) = Rgb::parse_hex(&c.color) {
                plte[usize::from(c.id) * 3..usize::from(c.id) * 3 + 3].copy_from_slice(&[r, g, b]);
            }
        }
        let Rgb(r, g, b) = VOID_COLOR;
        plte[255 * 3..].copy_from_slice(&[r, g, b]);
        plte
    }
}

/// An image's index → export id map (see [`LabelTable::remap`]).
#[derive(Debug, Clone, Copy)]
pub struct Remap(pub [Option<u8>; 256]);

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, n, c)| {
                (
                    (*k).to_owned(),
                    serde_json::json!({"class-name": n, "hex-color": c}),
                )
            })
            .collect()
    }

    #[test]
    fn ids_come_from_names_in_order_of_first_appearance() {
        let mut t = LabelTable::default();
        t.learn(&map(&[
            ("0", "BACKGROUND", "#ffffff"),
            ("2", "road", "#1f77b4"),
            ("1", "car", "#2ca02c"),
        ]))
        .unwrap();
        // A later job: another order, and one new class whose colour car already has.
        t.learn(&map(&[
            ("0", "BACKGROUND", "#ffffff"),
            ("1", "road", "#000001"),
            ("2", "bus", "#2ca02c"),
            ("3", "car", "#2ca02c"),
        ]))
        .unwrap();
        let names: Vec<&str> = t.classes().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["BACKGROUND", "car", "road", "bus"]);
        assert_eq!(t.classes()[2].color, "#1f77b4", "the first job's colour");
        assert_ne!(
            t.classes()[3].color,
            "#2ca02c",
            "a colour another class has is not reused"
        );
        let names: Vec<(usize, String)> = [(1, "road"), (2, "bus"), (3, "car"), (9, "tree")]
            .iter()
            .map(|(k, n)| (*k, (*n).to_owned()))
            .collect();
        let r = t.remap(&names);
        assert_eq!(
            (r.0[1], r.0[2], r.0[3], r.0[9], r.0[4]),
            (Some(2), Some(3), Some(1), None, None)
        );
        let plte = t.palette();
        assert_eq!(&plte[3..6], &[0x2c, 0xa0, 0x2c]);
        assert_eq!(&plte[765..], &[224, 224, 192]);
        let json: Value = serde_json::from_slice(&t.to_json()).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({"id": 0, "name": "BACKGROUND", "color": "#ffffff"})
        );
    }
}
