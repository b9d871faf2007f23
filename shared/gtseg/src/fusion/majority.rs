//! The default rule: per-pixel plurality, ties broken by the 3×3 neighbourhood vote among
//! the tied classes, then by the lowest class index.

use super::packed::Votes;
use super::scan::{BLOCK, scan_blocks};
use super::window::break_tie;
use super::{Fusion, Rows, Split};
use crate::raster::{ABSTAIN, Run};

/// Per-pixel plurality vote with a neighbourhood tie-break: the default rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Majority;

impl Fusion for Majority {
    fn name(&self) -> &'static str {
        "majority"
    }

    fn fuse_row(&self, workers: &[Rows<'_>], out: &mut [u8], split: &mut Vec<Split>) -> bool {
        let mut tied: Vec<u8> = Vec::with_capacity(workers.len());
        split.clear();
        fuse_segments(workers, out, split, &mut tied).unwrap_or_else(|| {
            fuse_blocks(workers, out, split, &mut tied);
            // Whether a tie came up is not tracked on this path (noisy rows, seldom repeated).
            false
        })
    }
}

/// The majority decided pixel by pixel where the workers differ, and block by block where
/// they agree ([`scan_blocks`]): for rows without runs or with too many.
fn fuse_blocks(workers: &[Rows<'_>], out: &mut [u8], split: &mut Vec<Split>, tied: &mut Vec<u8>) {
    let first = workers[0].current;
    let mut tally: Vec<(u8, u8)> = Vec::with_capacity(workers.len());
    // Disputed pixels come in runs of the same votes along the outlines, so the last decision
    // that needed no tie-break is reused, and such a run becomes one split.
    let mut last = None;
    // Whether the pixel last split was decided that way (its votes are `last`'s).
    let mut after_kept = false;
    scan_blocks(workers, |b| {
        // The whole block as if unanimous, then the disputed pixels over it.
        let r = b.start..b.start + b.len;
        match <&mut [u8; BLOCK]>::try_from(&mut out[r.clone()]) {
            // A fixed size is copied inline; a call per 32 pixels would cost more.
            Ok(o) => o.copy_from_slice(&first[r.clone()]),
            Err(_) => out[r.clone()].copy_from_slice(&first[r]),
        }
        let mut disputed = b.disputed;
        while disputed != 0 {
            let px = b.start + disputed.trailing_zeros() as usize;
            disputed &= disputed - 1;
            let ((class, votes), how) = plurality(workers, px, &mut last, tied, &mut tally);
            out[px] = class;
            Split::push(split, px, votes, how == Decided::Again && after_kept);
            after_kept = how != Decided::Unkept;
        }
    });
}

/// Pixels per run, at least, in all the workers' rows together for [`fuse_segments`] to be
/// worth it: past that (noise) the blocks of [`scan_blocks`] are faster.
const PIXELS_PER_RUN: usize = 8;

/// The majority decided run by run where every worker's row comes with its runs: the row
/// falls into segments where no worker's vote changes (a few dozen a row in real masks, against
/// thousands of pixels), and each is decided once, or pixel by pixel where the neighbourhood breaks a tie.
/// Returns whether no tie was broken, or `None`, having done nothing, without runs, with too
/// many of them, or with runs that do not cover the row in order.
fn fuse_segments(
    workers: &[Rows<'_>],
    out: &mut [u8],
    split: &mut Vec<Split>,
    tied: &mut Vec<u8>,
) -> Option<bool> {
    let (n, w) = (workers.len(), out.len());
    let runs: usize = workers.iter().map(|r| r.runs.len()).sum();
    let covers = |runs: &[Run]| {
        runs.last().map(|l| l.end as usize) == Some(w)
            && runs.first().is_some_and(|f| f.end > 0)
            && runs.windows(2).all(|p| p[0].end < p[1].end)
    };
    if runs * PIXELS_PER_RUN > w || !workers.iter().all(|r| covers(r.runs)) {
        return None;
    }
    let mut local = true;
    let mut tally = Vec::new();
    // Worker i's run at the segment.
    let mut at = vec![0usize; n];
    let mut x = 0;
    while x < w {
        let end = (0..n).fold(w, |e, i| e.min(workers[i].runs[at[i]].end as usize));
        let vote = |i: usize| workers[i].runs[at[i]].class;
        // The most votes, and the classes that have them (ascending) in `tied`.
        let most = if n <= Votes::MAX_WORKERS {
            let votes = Votes::gather(n, vote);
            let p = votes.plurality();
            match p.classes {
                1 => {
                    tied.clear();
                    tied.push(p.first);
                }
                _ => votes.classes_with(p.votes, tied),
            }
            p.votes as u8
        } else {
            tally_votes((0..n).map(vote), tied, &mut tally)
        };
        match tied[..] {
            // Nobody voted: background.
            [] => {
                out[x..end].fill(0);
                split.push(Split::of(x..end, 0));
            }
            [class] => {
                out[x..end].fill(class);
                if usize::from(most) < n {
                    split.push(Split::of(x..end, most));
                }
            }
            _ => {
                local = false;
                for px in x..end {
                    let class = break_tie(workers, px, tied, |_| 1u32);
                    out[px] = class;
                    Split::push(split, px, most, px > x && out[px - 1] == class);
                }
            }
        }
        for (i, r) in workers.iter().enumerate() {
            at[i] += usize::from(r.runs[at[i]].end as usize == end);
        }
        x = end;
    }
    Some(local)
}

/// How [`plurality`] reached its decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    /// The votes were those of the last kept decision, which was reused.
    Again,
    /// Without a tie-break, and kept for the next pixel.
    Kept,
    /// By the neighbourhood, or past [`Votes::MAX_WORKERS`] workers: not kept.
    Unkept,
}

/// The majority's decision at a disputed pixel `px`: the class and its votes. `last` holds
/// the last kept decision, with its votes (up to [`Votes::MAX_WORKERS`] workers); `tied` and
/// `tally` are scratch space.
#[inline(always)]
fn plurality(
    workers: &[Rows<'_>],
    px: usize,
    last: &mut Option<(Votes, (u8, u8))>,
    tied: &mut Vec<u8>,
    tally: &mut Vec<(u8, u8)>,
) -> ((u8, u8), Decided) {
    if workers.len() > Votes::MAX_WORKERS {
        return (
            plurality_by_tally(workers, px, tied, tally),
            Decided::Unkept,
        );
    }
    let votes = Votes::gather(workers.len(), |i| workers[i].current[px]);
    if let Some((v, decision)) = *last
        && v == votes
    {
        return (decision, Decided::Again);
    }
    let p = votes.plurality();
    let decision = match (p.votes, p.classes) {
        // Nobody voted: background.
        (0, _) => (0, 0),
        (_, 1) => (p.first, p.votes as u8),
        // A tie-break depends on the neighbourhood, so its decision is not kept.
        _ => {
            votes.classes_with(p.votes, tied);
            let class = break_tie(workers, px, tied, |_| 1u32);
            return ((class, p.votes as u8), Decided::Unkept);
        }
    };
    *last = Some((votes, decision));
    (decision, Decided::Kept)
}

/// [`plurality`] for more workers than a word holds.
fn plurality_by_tally(
    workers: &[Rows<'_>],
    px: usize,
    tied: &mut Vec<u8>,
    tally: &mut Vec<(u8, u8)>,
) -> (u8, u8) {
    let most = tally_votes(workers.iter().map(|r| r.current[px]), tied, tally);
    match tied.len() {
        0 => (0, 0),
        1 => (tied[0], most),
        _ => (break_tie(workers, px, tied, |_| 1u32), most),
    }
}

/// Counts `votes` (any number of workers) with each voted class in `tally`, in the order first
/// seen; returns the most votes, with the classes that have them in `tied` (ascending).
fn tally_votes(
    votes: impl Iterator<Item = u8>,
    tied: &mut Vec<u8>,
    tally: &mut Vec<(u8, u8)>,
) -> u8 {
    tally.clear();
    for v in votes.filter(|&v| v != ABSTAIN) {
        match tally.iter_mut().find(|t| t.0 == v) {
            Some(t) => t.1 += 1,
            None => tally.push((v, 1)),
        }
    }
    let most = tally.iter().map(|t| t.1).max().unwrap_or(0);
    tied.clear();
    tied.extend(tally.iter().filter(|t| t.1 == most).map(|t| t.0));
    tied.sort_unstable();
    most
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::testing::{masks_of, split_fault};
    use crate::fusion::window::{BATCH_ROWS, RowFuser, for_each_window, stream_windows};
    use crate::fusion::{Fused, round5};
    use crate::raster::{ClassMask, runs_of};
    use proptest::prelude::*;

    fn fuse(ms: &[ClassMask]) -> Fused {
        Majority.fuse(&ms.iter().collect::<Vec<_>>())
    }

    #[test]
    fn plurality_wins_per_pixel() {
        let f = fuse(&[
            ClassMask::from_rows(3, &[&[1, 2, 0]]),
            ClassMask::from_rows(3, &[&[1, 2, 2]]),
            ClassMask::from_rows(3, &[&[3, 1, 2]]),
        ]);
        assert_eq!(f.classes, [1, 2, 2]);
        assert_eq!(f.winning_votes, [2, 2, 2]);
    }

    #[test]
    fn tie_is_broken_by_neighbourhood() {
        // Centre pixel: one vote for 1, one for 2. Around it, worker B's class 2 dominates.
        let a = ClassMask::from_rows(3, &[&[0, 0, 0], &[0, 1, 0], &[0, 0, 0]]);
        let b = ClassMask::from_rows(3, &[&[2, 2, 0], &[2, 2, 0], &[0, 0, 0]]);
        let f = fuse(&[a, b]);
        assert_eq!(f.classes[4], 2);
        assert_eq!(f.winning_votes[4], 1);
    }

    #[test]
    fn neighbourhood_counts_only_tied_classes() {
        // Class 3 is everywhere around but is not tied at the centre, so it cannot win there.
        let a = ClassMask::from_rows(3, &[&[3, 3, 3], &[3, 1, 3], &[3, 3, 3]]);
        let b = ClassMask::from_rows(3, &[&[3, 3, 3], &[3, 2, 3], &[3, 3, 3]]);
        assert_eq!(fuse(&[a, b]).classes[4], 1);
    }

    #[test]
    fn three_way_tie_falls_to_lowest_index() {
        let f = fuse(&[
            ClassMask::from_rows(1, &[&[3]]),
            ClassMask::from_rows(1, &[&[1]]),
            ClassMask::from_rows(1, &[&[2]]),
        ]);
        assert_eq!(f.classes, [1]);
    }

    #[test]
    fn tie_break_is_clipped_at_the_border() {
        // Corner pixel (0,0): tie 1 vs 2; the in-image neighbours favour 2.
        let a = ClassMask::from_rows(2, &[&[1, 0], &[0, 0]]);
        let b = ClassMask::from_rows(2, &[&[2, 2], &[2, 0]]);
        assert_eq!(fuse(&[a, b]).classes[0], 2);
    }

    #[test]
    fn runs_that_do_not_cover_the_row_in_order_are_not_used() {
        let row: Vec<u8> = [(1u8, 20), (2, 30), (3, 14)]
            .iter()
            .flat_map(|&(c, n)| vec![c; n])
            .collect();
        let run = |end, class| Run { end, class };
        let good = vec![run(20, 1), run(50, 2), run(64, 3)];
        for (runs, used) in [
            (good, true),
            (vec![run(20, 1), run(50, 2)], false),
            (vec![run(20, 1), run(10, 2), run(64, 3)], false),
            (vec![run(0, 9), run(20, 1), run(50, 2), run(64, 3)], false),
        ] {
            let window = [Rows {
                above: None,
                current: &row,
                below: None,
                runs: &runs,
            }];
            let (mut out, mut split) = (vec![0; 64], Vec::new());
            let ran = fuse_segments(&window, &mut out, &mut split, &mut Vec::new());
            assert_eq!(ran.is_some(), used, "{runs:?}");
            Majority.fuse_row(&window, &mut out, &mut split);
            assert_eq!(out, row, "{runs:?}");
        }
    }

    #[test]
    fn nobody_voted_is_background() {
        let f = fuse(&[
            ClassMask::from_rows(2, &[&[ABSTAIN, 1]]),
            ClassMask::from_rows(2, &[&[ABSTAIN, 1]]),
        ]);
        assert_eq!(f.classes, [0, 1]);
        assert_eq!(f.winning_votes, [0, 2]);
    }

    #[test]
    fn abstentions_do_not_count() {
        let f = fuse(&[
            ClassMask::from_rows(1, &[&[ABSTAIN]]),
            ClassMask::from_rows(1, &[&[ABSTAIN]]),
            ClassMask::from_rows(1, &[&[4]]),
        ]);
        assert_eq!(f.classes, [4]);
    }

    #[test]
    fn confidence_is_mean_share_of_winning_votes() {
        let f = fuse(&[
            ClassMask::from_rows(2, &[&[1, 1]]),
            ClassMask::from_rows(2, &[&[1, 2]]),
            ClassMask::from_rows(2, &[&[1, 0]]),
        ]);
        // pixel 0: 3/3; pixel 1: three-way tie, 1/3.
        assert_eq!(f.confidence(), round5((1.0 + 1.0 / 3.0) / 2.0));
        assert_eq!(f.confidence(), 0.66667);
        assert_eq!(
            fuse(&[ClassMask::from_rows(2, &[&[1, 1]])]).confidence(),
            0.0
        );
    }

    /// Masks whose rows are runs of 100 to 300 pixels, few enough for [`fuse_segments`] with
    /// up to ten workers (more than [`Votes`] holds) at these widths.
    fn blocky_masks() -> impl Strategy<Value = Vec<ClassMask>> {
        (400u32..700, 1u32..5, 1usize..11).prop_flat_map(|(w, h, n)| {
            let value = prop_oneof![8 => 0u8..4, 1 => Just(ABSTAIN)];
            let row = proptest::collection::vec((value, 100usize..300), 7);
            proptest::collection::vec(proptest::collection::vec(row, h as usize), n).prop_map(
                move |ms| {
                    ms.into_iter()
                        .map(|rows| ClassMask {
                            width: w,
                            height: h,
                            data: rows
                                .into_iter()
                                .flat_map(|runs| {
                                    let px = runs.into_iter().flat_map(|(v, len)| vec![v; len]);
                                    px.take(w as usize).collect::<Vec<u8>>()
                                })
                                .collect(),
                        })
                        .collect()
                },
            )
        })
    }

    fn masks_strategy() -> impl Strategy<Value = Vec<ClassMask>> {
        // Widths past BLOCK and LONG_BLOCK exercise the span paths and their per-pixel tails.
        masks_of(prop_oneof![1u32..70, 500u32..530], 1u32..5, 1usize..6)
    }

    proptest! {
        #[test]
        fn unanimity_returns_the_common_mask(m in masks_strategy(), n in 1usize..5) {
            let one = m[0].clone();
            let f = fuse(&vec![one.clone(); n]);
            let want: Vec<u8> = one.data.iter().map(|&v| if v == ABSTAIN { 0 } else { v }).collect();
            prop_assert_eq!(f.classes, want);
        }

        #[test]
        fn one_worker_gives_back_its_own_mask(m in masks_strategy()) {
            let f = fuse(&m[..1]);
            let want: Vec<u8> = m[0].data.iter().map(|&v| if v == ABSTAIN { 0 } else { v }).collect();
            prop_assert_eq!(&f.classes, &want);
            prop_assert_eq!(f.confidence(), 0.0);
        }

        #[test]
        fn result_does_not_depend_on_worker_order(m in masks_strategy(), seed in any::<u64>()) {
            let mut shuffled = m.clone();
            // A deterministic permutation driven by the seed.
            let n = shuffled.len();
            for i in (1..n).rev() {
                shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % (i + 1));
            }
            prop_assert_eq!(fuse(&m), fuse(&shuffled));
        }

        /// Against the rule written plainly, with more workers than a packed word holds too.
        #[test]
        fn majority_follows_the_definition(
            m in prop_oneof![
                masks_of(prop_oneof![1u32..40, 500u32..530], 1u32..4, 1usize..12),
                blocky_masks(),
            ]
        ) {
            let f = fuse(&m);
            let (w, h) = (m[0].width as usize, m[0].height as usize);
            for y in 0..h {
                for x in 0..w {
                    let at = |i: usize, xx: usize, yy: usize| m[i].data[yy * w + xx];
                    let votes = |c: u8, xx: usize, yy: usize| {
                        (0..m.len()).filter(|&i| at(i, xx, yy) == c).count()
                    };
                    let most = (0..=254u8).map(|c| votes(c, x, y)).max().unwrap_or(0);
                    let tied: Vec<u8> = (0..=254u8).filter(|&c| votes(c, x, y) == most).collect();
                    let want = if most == 0 {
                        0
                    } else if tied.len() == 1 {
                        tied[0]
                    } else {
                        // The neighbourhood's votes among the tied classes; the lowest wins ties.
                        let around = |c: u8| {
                            let (x0, x1) = (x.saturating_sub(1), (x + 1).min(w - 1));
                            let (y0, y1) = (y.saturating_sub(1), (y + 1).min(h - 1));
                            (y0..=y1).flat_map(|yy| (x0..=x1).map(move |xx| (xx, yy)))
                                .map(|(xx, yy)| votes(c, xx, yy))
                                .sum::<usize>()
                        };
                        let best = tied.iter().map(|&c| around(c)).max().unwrap_or(0);
                        tied.into_iter().find(|&c| around(c) == best).unwrap_or(0)
                    };
                    prop_assert_eq!(f.classes[y * w + x], want, "pixel ({}, {})", x, y);
                    prop_assert_eq!(usize::from(f.winning_votes[y * w + x]), most);
                }
            }
        }

        #[test]
        fn streaming_rows_give_the_same_result_as_whole_masks(
            // Heights past two batches of rows, so the ring wraps.
            m in prop_oneof![masks_strategy(), masks_of(1u32..40, 1u32..3 * BATCH_ROWS as u32, 1usize..6)]
        ) {
            let whole = fuse(&m);
            let (w, h) = (m[0].width as usize, m[0].height);
            let mut next = vec![0usize; m.len()];
            let mut classes = Vec::new();
            let mut winning = Vec::new();
            let (mut c, mut split) = (vec![0; w], Vec::new());
            stream_windows::<(), ()>((m[0].width, h), m.len(), |i, row, runs| {
                row.copy_from_slice(&m[i].data[next[i] * w..(next[i] + 1) * w]);
                runs_of(row, runs);
                next[i] += 1;
                Ok(())
            }, |window| {
                Majority.fuse_row(window, &mut c, &mut split);
                classes.extend_from_slice(&c);
                let mut v = vec![m.len() as u8; w];
                for s in &split {
                    v[s.pixels()].fill(s.votes);
                }
                winning.extend_from_slice(&v);
                Ok(())
            }).unwrap();
            prop_assert_eq!(classes, whole.classes);
            prop_assert_eq!(winning, whole.winning_votes);
        }

        /// Reusing the row above where it may gives what deciding every row gives, also
        /// where ties make a repeated row depend on the rows around it.
        #[test]
        fn row_fuser_gives_what_fusing_every_row_gives(
            (w, templates, order) in (150usize..300, 1usize..6).prop_flat_map(|(w, n)| {
                let value = prop_oneof![8 => 0u8..3, 1 => Just(ABSTAIN)];
                let row = proptest::collection::vec((value, 60usize..150), 5).prop_map(
                    move |runs| {
                        let px = runs.into_iter().flat_map(|(v, len)| vec![v; len]);
                        px.cycle().take(w).collect::<Vec<u8>>()
                    },
                );
                // Per worker three rows; every row of the image takes one of them.
                let templates = proptest::collection::vec(proptest::collection::vec(row, 3), n);
                (Just(w), templates, proptest::collection::vec(0usize..3, 1..20))
            })
        ) {
            let h = order.len();
            let m: Vec<ClassMask> = templates
                .iter()
                .map(|t| ClassMask {
                    width: w as u32,
                    height: h as u32,
                    data: order.iter().flat_map(|&k| t[k].clone()).collect(),
                })
                .collect();
            let whole = fuse(&m);
            let mut fuser = RowFuser::new(&Majority, w, m.len());
            let mut next = vec![0usize; m.len()];
            let mut y = 0;
            stream_windows::<(), ()>((w as u32, h as u32), m.len(), |i, row, runs| {
                row.copy_from_slice(&m[i].data[next[i] * w..(next[i] + 1) * w]);
                runs_of(row, runs);
                next[i] += 1;
                Ok(())
            }, |window| {
                let (out, split, _) = fuser.fuse_row(window);
                let mut winning = vec![m.len() as u8; w];
                for s in split {
                    winning[s.pixels()].fill(s.votes);
                }
                assert_eq!(out, &whole.classes[y * w..(y + 1) * w], "row {y}");
                assert_eq!(winning, &whole.winning_votes[y * w..(y + 1) * w], "row {y}");
                y += 1;
                Ok(())
            }).unwrap();
        }

        /// Run by run and pixel by pixel, the majority decides alike.
        #[test]
        fn segments_decide_like_blocks(m in blocky_masks()) {
            let w = m[0].width as usize;
            let winning = |split: &[Split]| {
                let mut v = vec![m.len() as u8; w];
                for s in split {
                    v[s.pixels()].fill(s.votes);
                }
                v
            };
            let mut differ = None;
            for_each_window(&m.iter().collect::<Vec<_>>(), |y, window| {
                let (mut by_runs, mut by_blocks) = ((vec![0; w], Vec::new()), (vec![0; w], Vec::new()));
                let ran = fuse_segments(window, &mut by_runs.0, &mut by_runs.1, &mut Vec::new());
                fuse_blocks(window, &mut by_blocks.0, &mut by_blocks.1, &mut Vec::new());
                if differ.is_none()
                    && (ran.is_none()
                        || by_runs.0 != by_blocks.0
                        || winning(&by_runs.1) != winning(&by_blocks.1))
                {
                    differ = Some(y);
                }
            });
            prop_assert_eq!(differ, None);
        }

        #[test]
        fn splits_are_runs_of_the_same_votes(
            m in prop_oneof![
                masks_of(prop_oneof![1u32..40, 500u32..530], 1u32..4, 1usize..12),
                blocky_masks(),
            ]
        ) {
            prop_assert_eq!(split_fault(&Majority, &m), None);
        }

        #[test]
        fn every_winner_has_the_highest_vote_count(m in masks_strategy()) {
            let f = fuse(&m);
            for i in 0..f.classes.len() {
                let count = |c: u8| m.iter().filter(|x| x.data[i] == c).count();
                let max = (0u8..4).map(count).max().unwrap_or(0);
                prop_assert_eq!(f.winning_votes[i] as usize, max);
                if max > 0 {
                    prop_assert_eq!(count(f.classes[i]), max);
                } else {
                    prop_assert_eq!(f.classes[i], 0);
                }
            }
        }
    }
}
