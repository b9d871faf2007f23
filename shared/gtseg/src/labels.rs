//! The label list, class indices and colours.
//!
//! Class 0 is always `BACKGROUND` (white); classes 1..=N are the job's labels in
//! label-category order. This module owns that numbering and the palette; it does no I/O.

use std::collections::HashMap;
use std::fmt;

use crate::event::LabelCategory;

/// The name Ground Truth gives class 0.
pub const BACKGROUND: &str = "BACKGROUND";

/// At most 254 labels: with BACKGROUND that fills an 8-bit palette, leaving index 255 free as
/// the decoder's "abstain" marker.
pub const MAX_LABELS: usize = 254;

/// The colours Ground Truth's UI hands out first (matplotlib's tab10), in order.
pub const FALLBACK_COLORS: [Rgb; 10] = [
    Rgb(0x2c, 0xa0, 0x2c),
    Rgb(0x1f, 0x77, 0xb4),
    Rgb(0xff, 0x7f, 0x0e),
    Rgb(0xd6, 0x27, 0x28),
    Rgb(0x94, 0x67, 0xbd),
    Rgb(0x8c, 0x56, 0x4b),
    Rgb(0xe3, 0x77, 0xc2),
    Rgb(0x7f, 0x7f, 0x7f),
    Rgb(0xbc, 0xbd, 0x22),
    Rgb(0x17, 0xbe, 0xcf),
];

/// Opaque white: background in every worker PNG and palette entry 0 of every output.
pub(crate) const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);

/// An 8-bit RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Parses `#rrggbb` (either case). Anything else is `None`.
    pub fn parse_hex(s: &str) -> Option<Self> {
        let h = s.strip_prefix('#')?;
        if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = u32::from_str_radix(h, 16).ok()?;
        Some(Self((v >> 16) as u8, (v >> 8) as u8, v as u8))
    }

    /// Packs the colour as `0x00RRGGBB`.
    pub fn packed(self) -> u32 {
        (u32::from(self.0) << 16) | (u32::from(self.1) << 8) | u32::from(self.2)
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Why a list of labels cannot be a job's class list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    /// No labels.
    #[error("the label list is empty")]
    Empty,
    /// A label appears twice.
    #[error("label `{0}` appears more than once; label names must be unique")]
    Duplicate(String),
    /// An empty label, or `BACKGROUND`.
    #[error("label {0:?} is empty or the reserved name BACKGROUND")]
    Reserved(String),
    /// More labels than an 8-bit mask holds.
    #[error("{0} labels is more than the {MAX_LABELS} an 8-bit mask can hold")]
    TooMany(usize),
}

/// The job's classes: index 0 is BACKGROUND, index k ≥ 1 is `labels[k-1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList {
    labels: Vec<String>,
    index: HashMap<String, u8>,
}

impl ClassList {
    /// Builds the class list from label names in category order.
    pub fn new<I, S>(names: I) -> Result<Self, LabelError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let labels: Vec<String> = names.into_iter().map(Into::into).collect();
        if labels.is_empty() {
            return Err(LabelError::Empty);
        }
        if labels.len() > MAX_LABELS {
            return Err(LabelError::TooMany(labels.len()));
        }
        let mut index = HashMap::with_capacity(labels.len());
        for (i, l) in labels.iter().enumerate() {
            if l.is_empty() || l == BACKGROUND {
                return Err(LabelError::Reserved(l.clone()));
            }
            // Bounded by MAX_LABELS above, so the cast cannot truncate.
            if index.insert(l.clone(), (i + 1) as u8).is_some() {
                return Err(LabelError::Duplicate(l.clone()));
            }
        }
        Ok(Self { labels, index })
    }

    /// Builds the class list from `labelCategories` entries.
    pub fn from_categories(cats: &[LabelCategory]) -> Result<Self, LabelError> {
        Self::new(cats.iter().map(|c| c.name().to_owned()))
    }

    /// The labels, without BACKGROUND, in class order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of classes including BACKGROUND.
    pub fn num_classes(&self) -> usize {
        self.labels.len() + 1
    }

    /// The class index of a label name.
    pub fn class_of(&self, label: &str) -> Option<u8> {
        self.index.get(label).copied()
    }

    /// The name of class `k` (BACKGROUND for 0).
    pub fn name(&self, k: usize) -> &str {
        if k == 0 {
            BACKGROUND
        } else {
            &self.labels[k - 1]
        }
    }
}

/// Assigns every class a distinct colour.
///
/// `preferred[k]` is the colour the first worker who used class k gave it. It is kept unless
/// white or already taken; every other class gets the next unused colour of
/// [`FALLBACK_COLORS`], then further deterministic distinct colours.
pub fn assign_palette(preferred: &[Option<Rgb>]) -> Vec<Rgb> {
    let mut palette = vec![WHITE; preferred.len().max(1)];
    let mut used = std::collections::HashSet::from([WHITE]);
    let mut pending = Vec::new();
    for (k, p) in preferred.iter().enumerate().skip(1) {
        match p {
            Some(c) if used.insert(*c) => palette[k] = *c,
            _ => pending.push(k),
        }
    }
    let mut extra = FALLBACK_COLORS.iter().copied().chain(generated_colors());
    for k in pending {
        let c = extra.find(|c| !used.contains(c)).unwrap_or(WHITE);
        used.insert(c);
        palette[k] = c;
    }
    palette
}

/// An endless, deterministic sequence of well-spread colours for classes beyond tab10.
fn generated_colors() -> impl Iterator<Item = Rgb> {
    // Steps through a 6×6×6 cube in an order that alternates brightness, then a fine grid.
    let coarse = (0..216u32).map(|i| {
        let j = (i * 97) % 216; // 97 is coprime with 216: a permutation that spreads hues
        let lv = |d: u32| (d * 51) as u8;
        Rgb(lv(j % 6), lv((j / 6) % 6), lv(j / 36))
    });
    let fine = (0..(1u32 << 24)).map(|v| Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    coarse.chain(fine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_colours_parse_exactly() {
        assert_eq!(Rgb::parse_hex("#2ca02c"), Some(Rgb(0x2c, 0xa0, 0x2c)));
        assert_eq!(Rgb::parse_hex("#2CA02C"), Some(Rgb(0x2c, 0xa0, 0x2c)));
        for bad in [
            "2ca02c", "#2ca02", "#2ca02cc", "#gggggg", "", "#", "#+1a02c",
        ] {
            assert_eq!(Rgb::parse_hex(bad), None, "{bad}");
        }
        assert_eq!(Rgb(1, 2, 255).to_string(), "#0102ff");
    }

    #[test]
    fn classes_start_at_one_in_category_order() {
        let c = ClassList::new(["car", "road", "person"]).unwrap();
        assert_eq!(c.class_of("car"), Some(1));
        assert_eq!(c.class_of("person"), Some(3));
        assert_eq!(c.class_of("tree"), None);
        assert_eq!(c.name(0), BACKGROUND);
        assert_eq!(c.num_classes(), 4);
    }

    #[test]
    fn class_list_rejects_duplicates_reserved_and_empty() {
        assert_eq!(
            ClassList::new(["a", "a"]),
            Err(LabelError::Duplicate("a".into()))
        );
        assert_eq!(
            ClassList::new(["BACKGROUND"]),
            Err(LabelError::Reserved("BACKGROUND".into()))
        );
        assert_eq!(ClassList::new(Vec::<String>::new()), Err(LabelError::Empty));
        assert_eq!(
            ClassList::new((0..255).map(|i| i.to_string())),
            Err(LabelError::TooMany(255))
        );
    }

    #[test]
    fn palette_keeps_worker_colours_and_fills_the_rest_from_tab10() {
        let car = Rgb(1, 2, 3);
        let p = assign_palette(&[None, Some(car), None, Some(FALLBACK_COLORS[0]), Some(car)]);
        assert_eq!(p[0], WHITE);
        assert_eq!(p[1], car);
        assert_eq!(p[2], FALLBACK_COLORS[1], "tab10[0] is taken by class 3");
        assert_eq!(p[3], FALLBACK_COLORS[0]);
        assert_eq!(
            p[4], FALLBACK_COLORS[2],
            "a colour already taken is not reused"
        );
    }

    #[test]
    fn palette_stays_distinct_beyond_tab10() {
        let p = assign_palette(&vec![None; 255]);
        let set: std::collections::HashSet<_> = p.iter().collect();
        assert_eq!(set.len(), 255);
        assert_eq!(&p[1..11], &FALLBACK_COLORS);
    }
}
