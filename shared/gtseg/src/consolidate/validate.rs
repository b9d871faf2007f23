//! The checks on an image's answers that need no pixel data: labels, colours, base64, the PNG
//! header and the size. What passes is a candidate for the vote; the rest is excluded with
//! its reason.

use std::collections::HashMap;

use super::read::{ImageInput, ParsedAnswer, ReadAnswer, WorkerInput, parse_answer};
use crate::event::{ExcludedWorker, ShapeError, WorkerAnswer};
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
    Unreadable(StoreError),
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

/// A worker PNG ready to decode: its bytes, its colour table and its size.
struct Prepared<'a> {
    png: &'a [u8],
    lookup: ColorLookup,
    size: (u32, u32),
}

/// An answer that passed every check that needs no pixel data.
pub(crate) struct Candidate<'a> {
    pub(crate) worker: &'a WorkerInput,
    pub(crate) answer: &'a WorkerAnswer,
    pub(crate) png: &'a [u8],
    pub(crate) lookup: ColorLookup,
    pub(crate) size: (u32, u32),
}

/// One image's answers after the checks that need no pixel data: the candidates for the
/// vote, and the answers excluded so far with their reasons.
pub(crate) struct Selection<'a> {
    pub(crate) image: &'a ImageInput,
    pub(crate) cands: Vec<Candidate<'a>>,
    pub(crate) excluded: Vec<ExcludedWorker>,
}

/// The candidates' worker ids, in vote order (how the crowd model knows them).
pub(crate) fn worker_ids<'a>(cands: &[Candidate<'a>]) -> Vec<&'a str> {
    cands.iter().map(|c| c.worker.worker_id.as_str()).collect()
}

/// Runs every check on an image's answers that needs no pixel data: labels, colours, base64,
/// PNG header, size. The reference size is the most common one (ties: the earliest worker's).
pub(crate) fn select<'a>(
    image: &'a ImageInput,
    classes: &ClassList,
    max_pixels: u64,
) -> Selection<'a> {
    let mut excluded = Vec::new();
    let mut cands: Vec<Candidate<'_>> = Vec::new();
    for w in &image.workers {
        let prepared = w.mask().and_then(|a| {
            prepare(a, classes, max_pixels)
                .map(|Prepared { png, lookup, size }| Candidate {
                    worker: w,
                    answer: &a.answer,
                    png,
                    lookup,
                    size,
                })
                .map_err(|e| e.to_string())
        });
        match prepared {
            Ok(c) => cands.push(c),
            Err(reason) => excluded.push(ExcludedWorker {
                worker_id: w.worker_id.clone(),
                reason,
            }),
        }
    }
    let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
    for c in &cands {
        *counts.entry(c.size).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    if let Some((ref_w, ref_h)) = cands.iter().map(|c| c.size).find(|s| counts[s] == best) {
        cands.retain(|c| {
            let ok = c.size == (ref_w, ref_h);
            if !ok {
                let (w, h) = c.size;
                let reason = Exclusion::SizeMismatch { w, h, ref_w, ref_h }.to_string();
                excluded.push(ExcludedWorker {
                    worker_id: c.worker.worker_id.clone(),
                    reason,
                });
            }
            ok
        });
    }
    Selection {
        image,
        cands,
        excluded,
    }
}

/// The checks on one answer that need no pixel data: its labels and colours, its base64, and
/// its PNG header (size, pixel limit, `inputImageProperties`). Returns the PNG bytes, the
/// worker's colour table and the size.
fn prepare<'a>(
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

impl Selection<'_> {
    /// Runs `pass` (which decodes the candidates' PNGs) until it succeeds: a PNG that turns
    /// out corrupt mid-stream excludes its worker and the pass restarts without it. `Ok(None)`
    /// when no candidate is left; `Err` when the pass fails for another reason.
    pub(crate) fn decode_until_ok<T, E>(
        &mut self,
        mut pass: impl FnMut(&[Candidate<'_>]) -> Result<T, PassError<E>>,
    ) -> Result<Option<T>, E> {
        while !self.cands.is_empty() {
            match pass(&self.cands) {
                Ok(done) => return Ok(Some(done)),
                Err(PassError::Worker(i, e)) => {
                    let c = self.cands.remove(i);
                    self.excluded.push(ExcludedWorker {
                        worker_id: c.worker.worker_id.clone(),
                        reason: e.to_string(),
                    });
                }
                Err(PassError::Other(e)) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The exclusions in the order of the payload's answers (size and mid-stream exclusions
    /// are found late).
    pub(crate) fn sort_exclusions(&mut self) {
        let order: HashMap<&str, usize> = self
            .image
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.worker_id.as_str(), i))
            .collect();
        self.excluded.sort_by_key(|e| {
            order
                .get(e.worker_id.as_str())
                .copied()
                .unwrap_or(usize::MAX)
        });
    }
}

/// Why a decoding pass over an image's candidates stopped.
#[derive(Debug)]
pub(crate) enum PassError<E> {
    /// Candidate `.0`'s PNG is broken: it is excluded, and the pass runs again without it.
    Worker(usize, Exclusion),
    /// Anything else (writing the result failed): the image cannot be decided.
    Other(E),
}

/// The size of an answer's PNG from its first bytes (the signature and the header chunk),
/// without decoding the rest: what the budget needs to know before the work starts. `None`
/// when those bytes are not a PNG's.
pub(crate) fn png_size(answer: &ReadAnswer) -> Option<(u32, u32)> {
    let bytes = answer.png.as_deref().ok()?;
    let be = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    (bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16)? == b"IHDR")
        .then(|| Some((be(16)?, be(20)?)))
        .flatten()
}
