//! One worker's answer on its own: parsing it (a mask or a category, found by its shape), the
//! checks that need no pixel data (labels, colours, base64, the PNG header), decoding it, and
//! [`Exclusion`], why an answer is left out of the vote. Reading answers from the store is
//! `read`'s; choosing among an image's answers is `select`'s.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::Value;

use crate::event::{
    AnswerObject, ShapeError, VerificationAnswer, WorkerAnswer, from_owned_value,
    take_any_answer_object,
};
use crate::labels::{ClassList, MAX_LABELS, Rgb};
use crate::mask::{ColorLookup, MaskError, decode_class_mask, png_dimensions};
use crate::raster::ClassMask;
use crate::store::StoreError;
use crate::uri::UriError;

/// Why one worker answer was left out of the vote. The text goes into the metadata.
#[derive(Debug, thiserror::Error)]
pub enum Exclusion {
    /// `annotationData` holds neither the answer nor a pointer to it.
    #[error("annotationData has neither `content` nor `s3Uri`")]
    NoData,
    /// `annotationData.s3Uri` is not an `s3://` URI.
    #[error("annotation s3Uri is unusable: {0}")]
    BadUri(UriError),
    /// The object `annotationData.s3Uri` names could not be read.
    #[error("the annotation object could not be read: {0}")]
    Unreadable(Box<StoreError>),
    /// The answer is not JSON.
    #[error("the answer is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// The answer has no object of a mask's or a category's shape.
    #[error(
        "the answer has no object holding `labeledImage` (a mask) or `label` (a verification category)"
    )]
    NoAnswerObject,
    /// A category answer where the image's other answers are masks.
    #[error("the answer is a verification category, but most of this image's answers are masks")]
    NotAMask,
    /// A mask answer where the image's other answers are categories.
    #[error("the answer is a mask, but most of this image's answers are verification categories")]
    NotACategory,
    /// A category that is not one of the job's.
    #[error("the category `{0}` is not in the job's label list")]
    UnknownCategory(String),
    /// The answer object has a wrong-typed or missing field.
    #[error("{0}")]
    Shape(ShapeError),
    /// `labelMappings` lists more labels than a class list can hold.
    #[error("labelMappings lists {0} labels, more than the {MAX_LABELS} a class list can hold")]
    TooManyLabels(usize),
    /// `labelMappings` names a label the job does not have.
    #[error("labelMappings names label `{0}`, which is not in the job's label list")]
    UnknownLabel(String),
    /// A colour in `labelMappings` is not `#rrggbb`.
    #[error("labelMappings gives label `{label}` the colour {color:?}, which is not #rrggbb")]
    BadColor {
        /// The label.
        label: String,
        /// The colour as given.
        color: String,
    },
    /// Two labels have one colour, so their pixels cannot be told apart.
    #[error(
        "labelMappings gives labels `{a}` and `{b}` the same colour {color}, so its pixels are ambiguous"
    )]
    SharedColor {
        /// The first label with the colour.
        a: String,
        /// The second.
        b: String,
        /// The colour they share.
        color: Rgb,
    },
    /// `pngImageData` is not base64.
    #[error("pngImageData is not valid base64: {0}")]
    Base64(base64::DecodeError),
    /// The PNG cannot be decoded, or is too large.
    #[error("pngImageData: {0}")]
    Mask(MaskError),
    /// The PNG's size differs from `inputImageProperties`.
    #[error("the PNG is {png_w}×{png_h} but inputImageProperties says {w}×{h}")]
    PropsMismatch {
        /// The PNG's width.
        png_w: u32,
        /// The PNG's height.
        png_h: u32,
        /// The width `inputImageProperties` gives.
        w: u32,
        /// The height `inputImageProperties` gives.
        h: u32,
    },
    /// The PNG's size differs from the other workers' masks.
    #[error("the PNG is {w}×{h} but the other workers' masks are {ref_w}×{ref_h}")]
    SizeMismatch {
        /// This PNG's width.
        w: u32,
        /// This PNG's height.
        h: u32,
        /// The width of most workers' masks.
        ref_w: u32,
        /// Their height.
        ref_h: u32,
    },
    /// The image has more answers than `MAX_ANSWERS_PER_IMAGE`; this is one of the extra.
    #[error("more than {0} answers for this image (MAX_ANSWERS_PER_IMAGE); this one was not used")]
    TooManyAnswers(usize),
}

/// A worker's answer, parsed: a mask or a category.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedAnswer {
    /// `crowd-semantic-segmentation`'s answer.
    Mask(WorkerAnswer),
    /// `crowd-image-classifier`'s answer (verification jobs).
    Verification(VerificationAnswer),
}

/// Parses a worker's answer JSON (the `content` string, or the object an `s3Uri` names) and
/// finds the answer by its shape: a mask when some object holds `labeledImage`, else a
/// category when some object holds `label`.
pub fn parse_answer(json: &[u8]) -> Result<ParsedAnswer, Exclusion> {
    let root: Value = serde_json::from_slice(json).map_err(Exclusion::NotJson)?;
    match take_any_answer_object(root).ok_or(Exclusion::NoAnswerObject)? {
        AnswerObject::Mask(obj) => from_owned_value("the worker answer", obj)
            .map(ParsedAnswer::Mask)
            .map_err(Exclusion::Shape),
        AnswerObject::Verification(obj) => from_owned_value("the worker answer", obj)
            .map(ParsedAnswer::Verification)
            .map_err(Exclusion::Shape),
    }
}

/// A worker's answer as read: its fields, and its PNG out of base64. The base64 text is not
/// kept: for a large mask it is most of the answer's memory, and every worker's PNG of an
/// image is held while the image is decided.
#[derive(Debug)]
pub(crate) struct ReadAnswer {
    /// The answer, without its `pngImageData` (emptied).
    pub(crate) answer: WorkerAnswer,
    /// The PNG, or why `pngImageData` is not base64 (reported after the label checks).
    pub(crate) png: Result<Vec<u8>, base64::DecodeError>,
}

impl From<WorkerAnswer> for ReadAnswer {
    fn from(mut answer: WorkerAnswer) -> Self {
        let text = std::mem::take(&mut answer.labeled_image.png_image_data);
        let png = base64::engine::general_purpose::STANDARD.decode(text.trim());
        Self { answer, png }
    }
}

impl ReadAnswer {
    /// The size its PNG's header gives, without decoding the rest: what the budget needs to
    /// know before the work starts. `None` when the bytes are not a PNG's.
    pub(crate) fn png_size(&self) -> Option<(u32, u32)> {
        png_dimensions(self.png.as_deref().ok()?, u64::MAX).ok()
    }
}

/// A worker PNG ready to decode: its bytes, its colour table and its size.
pub(crate) struct Prepared<'a> {
    pub(crate) png: &'a [u8],
    pub(crate) lookup: ColorLookup,
    pub(crate) size: (u32, u32),
}

/// The checks on one answer that need no pixel data: its labels and colours, its base64, and
/// its PNG header (size, pixel limit, `inputImageProperties`). Returns the PNG bytes, the
/// worker's colour table and the size.
pub(crate) fn prepare<'a>(
    read: &'a ReadAnswer,
    classes: &ClassList,
    max_pixels: u64,
) -> Result<Prepared<'a>, Exclusion> {
    let answer = &read.answer;
    if answer.label_mappings.len() > MAX_LABELS {
        return Err(Exclusion::TooManyLabels(answer.label_mappings.len()));
    }
    let mut pairs = Vec::with_capacity(answer.label_mappings.len());
    let mut by_colour: HashMap<Rgb, &str> = HashMap::new();
    for (label, c) in &answer.label_mappings {
        let k = classes
            .class_of(label)
            .ok_or_else(|| Exclusion::UnknownLabel(label.clone()))?;
        let rgb = Rgb::parse_hex(&c.color).ok_or_else(|| Exclusion::BadColor {
            label: label.clone(),
            color: c.color.clone(),
        })?;
        if let Some(other) = by_colour.insert(rgb, label) {
            return Err(Exclusion::SharedColor {
                a: other.to_owned(),
                b: label.clone(),
                color: rgb,
            });
        }
        pairs.push((rgb, k));
    }
    let png = read
        .png
        .as_deref()
        .map_err(|e| Exclusion::Base64(e.clone()))?;
    let (width, height) = png_dimensions(png, max_pixels).map_err(Exclusion::Mask)?;
    if let Some(p) = answer.input_image_properties
        && (p.width, p.height) != (width, height)
    {
        return Err(Exclusion::PropsMismatch {
            png_w: width,
            png_h: height,
            w: p.width,
            h: p.height,
        });
    }
    Ok(Prepared {
        png,
        lookup: ColorLookup::new(pairs),
        size: (width, height),
    })
}

/// One worker's answer → class mask (and its count of unmapped pixels), or why not.
fn decode_worker(
    answer: &ReadAnswer,
    classes: &ClassList,
    max_pixels: u64,
) -> Result<(ClassMask, u64), Exclusion> {
    let Prepared { png, lookup, .. } = prepare(answer, classes, max_pixels)?;
    let d = decode_class_mask(png, &lookup, max_pixels).map_err(Exclusion::Mask)?;
    Ok((d.mask, d.unmapped))
}

/// A worker's answer JSON all the way to its class mask (and its count of unmapped pixels):
/// everything one answer goes through before the vote. Used by the fuzz targets.
pub fn decode_answer_json(
    json: &[u8],
    classes: &ClassList,
    max_pixels: u64,
) -> Result<(ClassMask, u64), Exclusion> {
    match parse_answer(json)? {
        ParsedAnswer::Mask(a) => decode_worker(&a.into(), classes, max_pixels),
        ParsedAnswer::Verification(_) => Err(Exclusion::NotAMask),
    }
}
