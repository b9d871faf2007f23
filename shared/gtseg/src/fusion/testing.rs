//! Test support shared by the fusion rules' tests: strategies for masks, and a check of the
//! splits a rule hands out.

use proptest::prelude::*;

use super::{Fusion, Rows, Split, for_each_window};
use crate::raster::{ABSTAIN, ClassMask, Run, runs_of};

/// Walks whole masks window by window, as [`for_each_window`] does, each row carrying its
/// runs as the decoder hands them out.
pub(crate) fn for_each_window_with_runs(masks: &[&ClassMask], mut f: impl FnMut(&[Rows<'_>])) {
    for_each_window(masks, |_, window| {
        let runs: Vec<Vec<Run>> = window
            .iter()
            .map(|r| {
                let mut runs = Vec::new();
                runs_of(r.current, &mut runs);
                runs
            })
            .collect();
        let with_runs: Vec<Rows<'_>> = window
            .iter()
            .zip(&runs)
            .map(|(r, runs)| Rows { runs, ..*r })
            .collect();
        f(&with_runs);
    });
}

/// What is wrong with the splits `fusion` gives row by row, if anything: each must be a
/// run of one pattern of votes and one winner, with the winner's votes, and together they
/// must be exactly the pixels where the winner lacked a vote.
pub(crate) fn split_fault(fusion: &dyn Fusion, m: &[ClassMask]) -> Option<String> {
    let w = m[0].width as usize;
    let (mut out, mut split) = (vec![0; w], Vec::new());
    let mut fault = None;
    for_each_window(&m.iter().collect::<Vec<_>>(), |y, window| {
        if fault.is_none() {
            fusion.fuse_row(window, &mut out, &mut split);
            fault = row_split_fault(window, &out, &split).map(|f| format!("row {y}: {f}"));
        }
    });
    fault
}

/// [`split_fault`] for one row.
fn row_split_fault(window: &[Rows<'_>], out: &[u8], split: &[Split]) -> Option<String> {
    let w = out.len();
    let won = |x: usize| window.iter().filter(|r| r.current[x] == out[x]).count();
    let mut covered = vec![false; w];
    let mut end = 0;
    for s in split {
        if s.len == 0 || (s.start as usize) < end || s.pixels().end > w {
            return Some(format!("{s:?} after pixel {end}"));
        }
        end = s.pixels().end;
        let x0 = s.start as usize;
        for x in s.pixels() {
            covered[x] = true;
            let same = out[x] == out[x0] && window.iter().all(|r| r.current[x] == r.current[x0]);
            if !same || won(x) != usize::from(s.votes) {
                return Some(format!("pixel {x} in {s:?}"));
            }
        }
    }
    (0..w)
        .find(|&x| covered[x] != (won(x) < window.len()))
        .map(|x| format!("pixel {x}: split {}", covered[x]))
}

pub(crate) fn masks_of(
    widths: impl Strategy<Value = u32>,
    heights: std::ops::Range<u32>,
    workers: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<ClassMask>> {
    (widths, heights, workers).prop_flat_map(|(w, h, n)| {
        let px = (w * h) as usize;
        let value = prop_oneof![8 => 0u8..4, 1 => Just(ABSTAIN)];
        proptest::collection::vec(proptest::collection::vec(value, px), n).prop_map(move |ds| {
            ds.into_iter()
                .map(|data| ClassMask {
                    width: w,
                    height: h,
                    data,
                })
                .collect()
        })
    })
}
