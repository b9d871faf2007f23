//! One image: the vote streamed row by row into the mask's and the disagreement map's encoders
//! and into the agreement counts, and what that decided.

use super::decode::stream_decoded;
use super::read::ImageInput;
use super::retained::{Recorder, Retained};
use super::select::{Candidate, PassError, Selection, worker_ids};
use crate::config::Algorithm;
use crate::event::{ConsolidationReport, ExcludedWorker, WorkerReport};
use crate::fusion::{
    AgreementCounts, AgreementTally, Census, CrowdModel, Fusion, Majority, RowFuser, Rows,
    confidence, disagreement_table,
};
use crate::labels::{ClassList, Rgb, assign_palette};
use crate::mask::RowEncoder;

/// What deciding one image gave.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The image was consolidated: its mask and map are encoded, ready to be written.
    Consolidated(Box<ImageOutcome>),
    /// No answer could be used; each exclusion says why. The image is left out of the
    /// response, so that Ground Truth marks it failed.
    NoUsableAnswer(Vec<ExcludedWorker>),
    /// Encoding the result failed (no worker's fault): the batch fails.
    EncodingFailed(crate::mask::EncodeError),
}

/// A consolidated image, ready to be written.
#[derive(Debug)]
pub(crate) struct ImageOutcome {
    pub(crate) png: Vec<u8>,
    pub(crate) disagreement_png: Vec<u8>,
    /// The agreement report, without `disagreement-ref` (known once the key is).
    pub(crate) report: ConsolidationReport,
    pub(crate) palette: Vec<Rgb>,
    pub(crate) confidence: f64,
    pub(crate) included: Vec<String>,
    pub(crate) excluded: Vec<ExcludedWorker>,
    pub(crate) pixels: u64,
    pub(crate) unmapped: u64,
    /// `adjusted`, `unadjusted`, or `None` when no included answer says.
    pub(crate) adjustment_status: Option<&'static str>,
}

/// How an image is decided: the batch's classes, the vote, and the report's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecideWith<'a> {
    pub(crate) classes: &'a ClassList,
    /// The weighted fusion's model; `None` for the majority vote.
    pub(crate) model: Option<&'a CrowdModel>,
    pub(crate) algorithm: Algorithm,
    pub(crate) low_agreement_threshold: f64,
    /// Threads for this image's decoders.
    pub(crate) threads: usize,
    /// The masks the first pass kept (weighted fusion), voted from instead of the PNGs when
    /// they are the candidates'.
    pub(crate) retained: Option<&'a Retained>,
}

/// Decodes the candidates in lockstep into a [`Census`] of their votes (weighted fusion),
/// keeping their rows for the second pass when they fit in `keep` bytes.
pub(crate) fn census(
    cands: &[Candidate<'_>],
    threads: usize,
    keep: usize,
) -> Result<(Census, Option<Retained>), PassError<std::convert::Infallible>> {
    let mut census = Census::new(cands.len());
    let mut recorder = Recorder::new(cands.len(), keep);
    let unmapped = stream_decoded(cands, threads, |window| {
        census.add_row(window);
        recorder.record(window);
        Ok(())
    })?;
    let workers = worker_ids(cands).into_iter().map(str::to_owned).collect();
    Ok((census, recorder.finish(cands[0].size, workers, unmapped)))
}

/// Decodes and votes one image.
///
/// The included PNGs are decoded in lockstep, row by row, straight into the vote, so no
/// worker's mask is ever held whole. With a crowd model, the vote is the weighted one.
pub(crate) fn decide_image(mut sel: Selection<'_>, with: DecideWith<'_>) -> Decision {
    let image = sel.image;
    let fusion = |cands: &[Candidate<'_>]| -> Box<dyn Fusion> {
        match with.model {
            Some(m) => Box::new(m.fusion(&worker_ids(cands))),
            None => Box::new(Majority),
        }
    };
    let fused = sel.decode_until_ok(|cands| {
        let palette = palette_of(cands, with.classes);
        let kept = with
            .retained
            .filter(|r| r.workers().iter().eq(worker_ids(cands)));
        stream_vote(cands, fusion(cands).as_ref(), palette, with.threads, kept)
    });
    sel.sort_exclusions();
    let fused = match fused {
        Ok(Some(f)) => f,
        Ok(None) => {
            let mut excluded = sel.excluded;
            if image.workers.is_empty() {
                excluded.push(ExcludedWorker {
                    worker_id: String::new(),
                    reason: "the image has zero answers".into(),
                });
            }
            return Decision::NoUsableAnswer(excluded);
        }
        Err(e) => return Decision::EncodingFailed(e),
    };
    let Selection {
        cands, excluded, ..
    } = sel;
    let pixels = u64::from(fused.width) * u64::from(fused.height);
    let weights: Option<Vec<f64>> = with.model.map(|m| {
        cands
            .iter()
            .map(|c| m.weight(&c.worker.worker_id))
            .collect()
    });
    let report = agreement_report(image, &cands, &fused, &excluded, weights.as_deref(), with);
    let modified: Vec<bool> = cands
        .iter()
        .filter_map(|c| c.answer.initial_value_modified)
        .collect();
    let adjustment_status = match (modified.is_empty(), modified.contains(&true)) {
        (true, _) => None,
        (false, true) => Some("adjusted"),
        (false, false) => Some("unadjusted"),
    };
    Decision::Consolidated(Box::new(ImageOutcome {
        confidence: confidence(fused.winning_sum, pixels, cands.len()),
        unmapped: fused.unmapped.iter().sum(),
        png: fused.png,
        disagreement_png: fused.disagreement_png,
        report,
        palette: fused.palette,
        included: cands.iter().map(|c| c.worker.worker_id.clone()).collect(),
        excluded,
        pixels,
        adjustment_status,
    }))
}

/// The output palette: the first included worker (payload order) who maps a label gives its
/// colour.
fn palette_of(cands: &[Candidate<'_>], classes: &ClassList) -> Vec<Rgb> {
    let mut preferred = vec![None; classes.num_classes()];
    for c in cands {
        for (label, color) in &c.answer.label_mappings {
            if let (Some(k), Some(rgb)) = (classes.class_of(label), Rgb::parse_hex(&color.color)) {
                preferred[usize::from(k)].get_or_insert(rgb);
            }
        }
    }
    assign_palette(&preferred)
}

/// Every answer of the image in payload order: included ones with their agreement, excluded
/// ones with their reason.
fn agreement_report(
    image: &ImageInput,
    cands: &[Candidate<'_>],
    fused: &StreamFused,
    excluded: &[ExcludedWorker],
    weights: Option<&[f64]>,
    with: DecideWith<'_>,
) -> ConsolidationReport {
    let mut reasons: Vec<&ExcludedWorker> = excluded.iter().collect();
    let workers = image
        .workers
        .iter()
        .map(
            |w| match cands.iter().position(|c| std::ptr::eq(c.worker, w)) {
                Some(k) => WorkerReport {
                    worker_id: w.worker_id.clone(),
                    included: true,
                    agreement: Some(fused.agreement.agreement(k)),
                    unmapped_pixels: Some(fused.unmapped[k]),
                    weight: weights.map(|w| w[k]),
                    reason: None,
                },
                None => {
                    let reason = reasons
                        .iter()
                        .position(|e| e.worker_id == w.worker_id)
                        .map(|p| reasons.remove(p).reason.clone());
                    WorkerReport {
                        worker_id: w.worker_id.clone(),
                        included: false,
                        agreement: None,
                        unmapped_pixels: None,
                        weight: None,
                        reason,
                    }
                }
            },
        )
        .collect();
    let mean = fused.agreement.mean_pairwise();
    ConsolidationReport {
        algorithm: with.algorithm.name().to_owned(),
        workers,
        mean_pairwise_agreement: mean,
        low_agreement: mean.is_some_and(|m| m < with.low_agreement_threshold),
        disagreement_ref: String::new(),
    }
}

/// The fused classes of one image, encoded, and the sum of the winning votes.
struct StreamFused {
    width: u32,
    height: u32,
    /// The consolidated mask, encoded as its rows were decided, and its palette.
    png: Vec<u8>,
    palette: Vec<Rgb>,
    /// The fusion's certainty, in votes, in total (for the confidence): the votes for the
    /// winner with the majority vote.
    winning_sum: f64,
    /// The disagreement map, encoded while the rows were decided.
    disagreement_png: Vec<u8>,
    agreement: AgreementCounts,
    /// Per included worker: pixels whose colour matched none of its labels.
    unmapped: Vec<u64>,
}

/// Decodes every candidate in lockstep into the vote (see [`stream_decoded`]), or streams
/// the rows the first pass `kept` of them.
fn stream_vote(
    cands: &[Candidate<'_>],
    fusion: &dyn Fusion,
    palette: Vec<Rgb>,
    threads: usize,
    kept: Option<&Retained>,
) -> Result<StreamFused, PassError<crate::mask::EncodeError>> {
    let (width, height) = cands[0].size;
    let w = width as usize;
    // The mask and the disagreement map are encoded as the rows are decided: neither is
    // ever held whole.
    let mut mask = RowEncoder::palette(width, height, &palette).map_err(PassError::Other)?;
    let mut map = RowEncoder::grey(width, height).map_err(PassError::Other)?;
    let mut winning_sum = 0.0;
    let mut agreement = AgreementTally::new(cands.len());
    let table = disagreement_table(cands.len());
    // Fewer than 255 candidates (MAX_ANSWERS_PER_IMAGE), so the count fits a byte.
    let n = cands.len() as u8;
    let mut map_row = vec![0u8; w];
    // The certainty of the row, in votes (the winning votes for the majority).
    let mut row_votes = 0.0;
    let mut rows = RowFuser::new(fusion, w, cands.len());
    let visit = |window: &[Rows<'_>]| {
        // `split` holds the pixels of the row where not every worker voted for the winner:
        // few, and all that the map, the confidence and the agreement need to look at.
        let (out, split, repeated) = rows.fuse_row(window);
        mask.write_row(out)?;
        if !repeated {
            // Black where every worker voted for the winner, which is nearly everywhere.
            map_row.fill(table[usize::from(n)]);
            let (mut short, mut votes) = (0u64, 0.0);
            for s in split {
                map_row[s.pixels()].fill(table[usize::from(s.votes)]);
                short += u64::from(s.len);
                votes += f64::from(s.len) * fusion.certainty(window, out, s);
            }
            row_votes = f64::from(n) * (w as u64).saturating_sub(short) as f64 + votes;
        }
        map.write_row(&map_row)?;
        winning_sum += row_votes;
        if !(repeated && agreement.add_last_row_again()) {
            let current: Vec<&[u8]> = window.iter().map(|r| r.current).collect();
            agreement.add_row(&current, out, split);
        }
        Ok(())
    };
    let unmapped = match kept {
        Some(k) => k.stream(visit).map_err(PassError::Other)?,
        None => stream_decoded(cands, threads, visit)?,
    };
    Ok(StreamFused {
        width,
        height,
        png: mask.finish().map_err(PassError::Other)?,
        palette,
        winning_sum,
        agreement: agreement.finish(),
        unmapped,
        disagreement_png: map.finish().map_err(PassError::Other)?,
    })
}
