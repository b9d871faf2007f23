//! The fusion rule: many workers' class masks in, one consolidated mask out. Pure, no I/O.
//!
//! [`Fusion`] is the small interface that algorithms implement, one row at a time with the
//! rows above and below (all a 3×3 neighbourhood needs), so masks can be streamed and never
//! held whole. [`Majority`] is the default: per-pixel plurality, ties broken by the 3×3
//! neighbourhood vote among the tied classes, then by the lowest class index.

mod agreement;
mod majority;
mod packed;
mod scan;
#[cfg(test)]
pub(crate) mod testing;
mod weighted;
mod window;

pub(crate) use agreement::{AgreementCounts, AgreementTally, disagreement_table};
pub use majority::Majority;
pub use weighted::{Census, Combinations, CrowdModel, ImageVotes, MAX_BATCH_VOTES, Weighted};
pub(crate) use window::{RowFuser, Rows, StreamError, stream_windows};
pub(crate) use window::{batch_rows, for_each_window};

use crate::raster::ClassMask;

/// The result of fusing the included workers' masks of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The winning class of every pixel (0 where nobody voted).
    pub classes: Vec<u8>,
    /// How many workers voted for the winning class at every pixel.
    pub winning_votes: Vec<u8>,
    /// The sum over pixels of the fusion's [`Fusion::certainty`] (in votes).
    pub certainty: f64,
    /// How many workers took part.
    pub workers: usize,
}

impl Fused {
    /// The mean over pixels of the fusion's certainty ÷ workers (for the majority vote,
    /// winning votes ÷ workers), rounded to 5 decimals; 0.0 with fewer than two workers
    /// (Ground Truth does the same).
    pub fn confidence(&self) -> f64 {
        confidence(self.certainty, self.classes.len() as u64, self.workers)
    }
}

/// Mean over pixels of the certainty (winning votes for the majority vote; a sum of whole
/// votes, so exact) ÷ included workers, rounded to 5 decimals; 0.0 with fewer than two
/// workers (Ground Truth does the same).
pub(crate) fn confidence(certainty: f64, pixels: u64, workers: usize) -> f64 {
    if workers < 2 || pixels == 0 {
        return 0.0;
    }
    round5(certainty / (pixels as f64 * workers as f64))
}

/// Rounds to 5 decimals, as Ground Truth reports confidences.
pub(crate) fn round5(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}

/// Pixels of a row where not every worker voted for the winner: `start..start + len`, where
/// every worker's vote is the same from pixel to pixel, and so is the winner, which had
/// `votes` votes. A run of the same votes is counted once by what follows the vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub start: u32,
    pub len: u32,
    pub votes: u8,
}

impl Split {
    /// The pixels' range in the row.
    pub fn pixels(&self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }

    /// The pixels `r`, whose winner had `votes` votes.
    pub fn of(r: std::ops::Range<usize>, votes: u8) -> Self {
        Split {
            start: r.start as u32,
            len: (r.end - r.start) as u32,
            votes,
        }
    }

    /// Appends pixel `x` with its winner's `votes`: onto the last run when `same` (the caller
    /// knows the votes and winner equal those of the last pixel appended) and `x` follows it.
    #[inline(always)]
    pub fn push(split: &mut Vec<Split>, x: usize, votes: u8, same: bool) {
        let x = x as u32;
        if same
            && let Some(last) = split.last_mut()
            && last.start + last.len == x
        {
            last.len += 1;
        } else {
            split.push(Split {
                start: x,
                len: 1,
                votes,
            });
        }
    }
}

/// A fusion algorithm. Implementations must be deterministic and must not depend on the order
/// of the workers beyond what they document.
pub trait Fusion: std::fmt::Debug + Send + Sync {
    /// The name reported in metadata (e.g. `majority`).
    fn name(&self) -> &'static str;

    /// Decides one row: `workers[i]` holds worker i's rows (at least one worker, fewer than
    /// 255, all rows `out.len()` long). Writes the winning class of every pixel to `out`, and
    /// replaces `split` with the pixels where not every worker voted for it (left to right);
    /// every other pixel's winner had all the votes. Returns whether it looked at the
    /// workers' current rows alone (not at the rows above and below), in which case the same
    /// current rows give the same row again.
    fn fuse_row(&self, workers: &[Rows<'_>], out: &mut [u8], split: &mut Vec<Split>) -> bool;

    /// How sure the fusion is of the winner `out` gives `split`'s pixels (one of the splits
    /// of the row it just decided from `workers`), per pixel, in votes (0 to the number of
    /// workers): what the image's confidence averages. Pixels outside the splits had every
    /// vote. By default Ground Truth's measure, the winner's votes.
    fn certainty(&self, workers: &[Rows<'_>], out: &[u8], split: &Split) -> f64 {
        let _ = (workers, out);
        f64::from(split.votes)
    }

    /// Fuses whole same-sized masks (at least one, fewer than 255).
    fn fuse(&self, masks: &[&ClassMask]) -> Fused {
        let (width, height) = (masks[0].width, masks[0].height);
        let w = width as usize;
        let mut classes = vec![0u8; w * height as usize];
        let mut winning_votes = vec![masks.len() as u8; w * height as usize];
        let mut split = Vec::new();
        let n = masks.len() as f64;
        let mut certainty = 0.0;
        for_each_window(masks, |y, window| {
            let out = &mut classes[y * w..(y + 1) * w];
            self.fuse_row(window, out, &mut split);
            let mut short = 0;
            for s in &split {
                winning_votes[y * w..(y + 1) * w][s.pixels()].fill(s.votes);
                certainty += f64::from(s.len) * self.certainty(window, out, s);
                short += s.len as usize;
            }
            certainty += n * (w - short) as f64;
        });
        Fused {
            width,
            height,
            classes,
            winning_votes,
            certainty,
            workers: masks.len(),
        }
    }
}
