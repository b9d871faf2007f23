//! The candidates for an image's vote: each answer's checks that need no pixel data (see
//! `answer`), then the size most workers' masks have. What passes is a candidate; the rest
//! is excluded with its reason. A mask that turns out corrupt while decoding is excluded
//! here too, and the pass over the others restarts.

use std::collections::HashMap;

use super::answer::{Exclusion, Prepared, prepare};
use super::read::{ImageInput, WorkerInput};
use crate::event::{ExcludedWorker, WorkerAnswer};
use crate::labels::ClassList;
use crate::mask::ColorLookup;

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
