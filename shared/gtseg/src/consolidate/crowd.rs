//! The weighted fusion's first pass: every mask image's census of vote combinations, and the
//! crowd model fitted to them, for one batch or (through `census_batch` in the parent) for a
//! whole job.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::{info, warn};

use super::BatchError;
use super::batch::{Batch, estimate};
use super::image::census;
use super::read::ImageKind;
use super::retained::Retained;
use super::select::{select, worker_ids};
use crate::fusion::{CrowdModel, ImageVotes};
use crate::labels::ClassList;
use crate::logs::Escaped;
use crate::store::ObjectStore;

/// The weighted fusion's crowd model, fitted to every image's census (a first pass over
/// the batch), and the masks that pass kept for the second, by image id.
pub(super) async fn fit<S: ObjectStore>(
    batch: &Arc<Batch<S>>,
    classes: &ClassList,
    share: VoteShare,
    keep: usize,
) -> Result<(CrowdModel, HashMap<String, Retained>), BatchError> {
    let counted = censuses(batch, classes, share, keep).await?;
    let votes: Vec<ImageVotes<'_>> = counted
        .iter()
        .flatten()
        .map(|(_, workers, patterns, _)| ImageVotes {
            workers: workers.iter().map(String::as_str).collect(),
            patterns,
        })
        .collect();
    let model = CrowdModel::fit(classes.num_classes(), &votes);
    info!(
        workers = model.worker_count(),
        combinations = votes.iter().map(|v| v.patterns.len()).sum::<usize>(),
        pairs = model.kept_pairs(),
        iterations = model.iterations,
        "crowd model fitted to the batch"
    );
    drop(votes);
    let retained: HashMap<String, Retained> = counted
        .into_iter()
        .flatten()
        .filter_map(|(id, _, _, kept)| Some((id, kept?)))
        .collect();
    Ok((model, retained))
}

/// Every mask image's census (the weighted fusion's first pass), within its share of
/// votes, and its decoded masks when they fit in what is left of `keep` bytes.
pub(super) async fn censuses<S: ObjectStore>(
    batch: &Arc<Batch<S>>,
    classes: &ClassList,
    share: VoteShare,
    keep: usize,
) -> Result<Vec<Option<Counted>>, BatchError> {
    let classes_for_census = Arc::new(classes.clone());
    let keep = Arc::new(AtomicUsize::new(keep));
    batch
        .each_image(move |b, image| {
            let classes = Arc::clone(&classes_for_census);
            let (share, keep) = (share.clone(), Arc::clone(&keep));
            async move {
                if image.kind() != ImageKind::Masks {
                    return Ok(None);
                }
                let max_pixels = b.ctx.limits.max_pixels;
                let bytes = image.bytes();
                let need = bytes + estimate(&image);
                let run = b.budget.run(need, move |threads| {
                    let mut sel = select(&image, &classes, max_pixels);
                    let room = keep.load(Ordering::Acquire);
                    let counted =
                        match sel.decode_until_ok(|cands| census(cands, threads, room)) {
                            Ok(c) => c,
                            Err(never) => match never {},
                        };
                    let (census, kept) = counted?;
                    let kept = kept.filter(|k| take(&keep, k.bytes()));
                    let workers: Vec<String> =
                        worker_ids(&sel.cands).into_iter().map(str::to_owned).collect();
                    let want = census.votes();
                    let granted = match &share {
                        VoteShare::PerImage(q) => want.min(*q),
                        VoteShare::Shared(allowance) => allowance
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                                Some(left - want.min(left))
                            })
                            .map_or(0, |left| want.min(left)),
                    };
                    let (patterns, cut) =
                        census.patterns_within(granted / workers.len().max(1));
                    let left_out = census.overflow() + cut;
                    if left_out > 0 {
                        warn!(dataset_object_id = %Escaped(&image.id), pixels = left_out,
                              "weighted fusion: this image's workers disagree in more combinations than the census keeps (4096 an image, 2 million votes a batch); those pixels still vote but do not inform the model");
                    }
                    Some((image.id, workers, patterns, kept))
                });
                Ok(run.await)
            }
        })
        .await
}

/// How many votes an image's census may keep for the crowd model.
#[derive(Debug, Clone)]
pub(super) enum VoteShare {
    /// What is left of one allowance for the whole batch, first come, first served.
    Shared(Arc<AtomicUsize>),
    /// The same share for every image (a whole job's, so that every run keeps the same
    /// votes).
    PerImage(usize),
}

/// One image's census: its id, its workers, their vote combinations, and its masks if kept.
type Counted = (
    String,
    Vec<String>,
    crate::fusion::Combinations,
    Option<Retained>,
);

/// The bytes of decoded masks the weighted fusion's first pass may keep for the second: a
/// sixty-fourth of the budget, at most 16 MiB (a 12 MP image with 5 workers takes about
/// 5 MiB), so that the batch's memory stays about that of its largest images.
pub(super) fn retained_allowance(memory_bytes: u64) -> usize {
    usize::try_from(memory_bytes / 64)
        .unwrap_or(usize::MAX)
        .min(16 << 20)
}

/// Takes `bytes` from `allowance` if it holds that many.
fn take(allowance: &AtomicUsize, bytes: usize) -> bool {
    allowance
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
            left.checked_sub(bytes)
        })
        .is_ok()
}
