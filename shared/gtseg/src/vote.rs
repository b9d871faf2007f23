//! The fusion rule: many workers' class masks in, one consolidated mask out. Pure, no I/O.
//!
//! [`Fusion`] is the small interface that algorithms implement, one row at a time with the
//! rows above and below (all a 3×3 neighbourhood needs), so masks can be streamed and never
//! held whole. [`Majority`] is the default: per-pixel plurality, ties broken by the 3×3
//! neighbourhood vote among the tied classes, then by the lowest class index.

use crate::mask::{ABSTAIN, ClassMask, Run, runs_of};
use crate::votes::{self, Votes};

/// The result of fusing the included workers' masks of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fused {
    pub width: u32,
    pub height: u32,
    /// The winning class of every pixel (0 where nobody voted).
    pub classes: Vec<u8>,
    /// How many workers voted for the winning class at every pixel.
    pub winning_votes: Vec<u8>,
    /// How many workers took part.
    pub workers: usize,
}

impl Fused {
    /// See [`confidence`].
    pub fn confidence(&self) -> f64 {
        let sum: u64 = self.winning_votes.iter().map(|&v| u64::from(v)).sum();
        confidence(sum, self.classes.len() as u64, self.workers)
    }
}

/// Mean over pixels of winning votes ÷ included workers, rounded to 5 decimals; 0.0 with
/// fewer than two workers (Ground Truth does the same).
pub fn confidence(winning_votes: u64, pixels: u64, workers: usize) -> f64 {
    if workers < 2 || pixels == 0 {
        return 0.0;
    }
    round5(winning_votes as f64 / (pixels as f64 * workers as f64))
}

/// Rounds to 5 decimals, as Ground Truth reports confidences.
pub fn round5(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}

/// One worker's class rows around the row being decided (`None` beyond the image border).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub above: Option<&'a [u8]>,
    pub current: &'a [u8],
    pub below: Option<&'a [u8]>,
    /// The runs of `current` ([`runs_of`]), or none when the reader did not give them.
    pub runs: &'a [Run],
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

    /// Fuses whole same-sized masks (at least one, fewer than 255).
    fn fuse(&self, masks: &[&ClassMask]) -> Fused {
        let (width, height) = (masks[0].width, masks[0].height);
        let w = width as usize;
        let mut classes = vec![0u8; w * height as usize];
        let mut winning_votes = vec![masks.len() as u8; w * height as usize];
        let mut split = Vec::new();
        for_each_window(masks, |y, window| {
            self.fuse_row(window, &mut classes[y * w..(y + 1) * w], &mut split);
            for s in &split {
                winning_votes[y * w..(y + 1) * w][s.pixels()].fill(s.votes);
            }
        });
        Fused {
            width,
            height,
            classes,
            winning_votes,
            workers: masks.len(),
        }
    }
}

/// Calls `visit(y, window)` for every row y of whole same-sized masks, with each mask's rows
/// around it and its runs (what [`Fusion::fuse_row`] takes).
pub(crate) fn for_each_window(masks: &[&ClassMask], mut visit: impl FnMut(usize, &[Rows<'_>])) {
    let (w, h) = (masks[0].width as usize, masks[0].height as usize);
    fn rows(m: &ClassMask, y: usize, w: usize) -> &[u8] {
        &m.data[y * w..(y + 1) * w]
    }
    let mut runs = vec![Vec::new(); masks.len()];
    for y in 0..h {
        for (m, r) in masks.iter().zip(&mut runs) {
            runs_of(rows(m, y, w), r);
        }
        let window: Vec<Rows<'_>> = masks
            .iter()
            .zip(&runs)
            .map(|(m, r)| Rows {
                above: y.checked_sub(1).map(|a| rows(m, a, w)),
                current: rows(m, y, w),
                below: (y + 1 < h).then(|| rows(m, y + 1, w)),
                runs: r,
            })
            .collect();
        visit(y, &window);
    }
}

/// Decides the rows of one image in order with a [`Fusion`], and reuses the row above's
/// result when every worker's row repeats the one above and the fusion decided that row from
/// its own rows alone. Most rows of a mask repeat the row above: three in four in the benchmark, for
/// all five workers at once. Rows without runs are always decided.
#[derive(Debug)]
pub struct RowFuser<'f> {
    fusion: &'f dyn Fusion,
    out: Vec<u8>,
    split: Vec<Split>,
    /// Each worker's runs of the row last decided, and whether that row was decided from them
    /// alone.
    above: Vec<Vec<Run>>,
    local: bool,
}

impl<'f> RowFuser<'f> {
    /// For rows of `width` pixels from `workers` workers.
    pub fn new(fusion: &'f dyn Fusion, width: usize, workers: usize) -> Self {
        Self {
            fusion,
            out: vec![0; width],
            split: Vec::new(),
            above: vec![Vec::new(); workers],
            local: false,
        }
    }

    /// Decides the next row (see [`Fusion::fuse_row`]): its winning classes, its split
    /// pixels, and whether they are the row above's again.
    pub fn fuse_row(&mut self, workers: &[Rows<'_>]) -> (&[u8], &[Split], bool) {
        let repeated = self.local
            && workers
                .iter()
                .zip(&self.above)
                .all(|(r, a)| !r.runs.is_empty() && r.runs == &a[..]);
        if !repeated {
            self.local = self
                .fusion
                .fuse_row(workers, &mut self.out, &mut self.split);
            for (a, r) in self.above.iter_mut().zip(workers) {
                a.clear();
                a.extend_from_slice(r.runs);
            }
        }
        (&self.out, &self.split, repeated)
    }
}

/// Rows read from one worker before moving to the next: each PNG decoder then works on a run
/// of rows while its state is in cache, instead of the five decoders taking turns per row.
const BATCH_ROWS: usize = 16;

/// Streams `workers` masks of `width`×`height` with a 3-row window per worker: `read(i, row,
/// runs)` fills worker i's next row (and its runs, or leaves them empty), and `visit(window)`
/// receives every row in order with the workers' rows around it (what [`Fusion::fuse_row`]
/// takes). A read error stops the run and names the worker. Rows are read [`BATCH_ROWS`] at a
/// time per worker, a little ahead of the visit.
pub fn stream_windows<E>(
    (width, height): (u32, u32),
    workers: usize,
    mut read: impl FnMut(usize, &mut [u8], &mut Vec<Run>) -> Result<(), E>,
    mut visit: impl FnMut(&[Rows<'_>]),
) -> Result<(), (usize, E)> {
    let (w, h) = (width as usize, height as usize);
    // Worker i's row y lives in ring[i][y % RING]: the rows above and at y, and a batch ahead.
    const RING: usize = BATCH_ROWS + 2;
    let mut ring = vec![0u8; workers * RING * w];
    let mut ring_runs: Vec<Vec<Run>> = vec![Vec::new(); workers * RING];
    let slot = |i: usize, y: usize| i * RING + y % RING;
    let mut loaded = 0;
    for y in 0..h {
        // The window needs the row below; load the next batch of every worker when it is due.
        while loaded < (y + 2).min(h) {
            let end = (loaded + BATCH_ROWS).min(h);
            for i in 0..workers {
                for yy in loaded..end {
                    let s = slot(i, yy);
                    read(i, &mut ring[s * w..(s + 1) * w], &mut ring_runs[s])
                        .map_err(|e| (i, e))?;
                }
            }
            loaded = end;
        }
        let row = |i: usize, yy: usize| &ring[slot(i, yy) * w..(slot(i, yy) + 1) * w];
        let window: Vec<Rows<'_>> = (0..workers)
            .map(|i| Rows {
                above: y.checked_sub(1).map(|a| row(i, a)),
                current: row(i, y),
                below: (y + 1 < h).then(|| row(i, y + 1)),
                runs: &ring_runs[slot(i, y)],
            })
            .collect();
        visit(&window);
    }
    Ok(())
}

/// A piece of one row, as [`scan_row`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Every worker voted the same class on these pixels (nobody abstained).
    Unanimous(std::ops::Range<usize>),
    /// The workers differ at this pixel, or someone abstained.
    Disputed(usize),
}

/// Pixels compared at once on the fast path: long spans, then short ones.
const LONG_BLOCK: usize = 512;
const BLOCK: usize = 32;

/// A run of one row's pixels, as [`scan_blocks`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub len: usize,
    /// Bit k is set where the workers differ at pixel `start + k`, or someone abstained
    /// there. Blocks longer than 32 pixels are unanimous (0).
    pub disputed: u32,
}

/// Walks the workers' current rows left to right in blocks that cover the row. Unanimity
/// (the common case) is found 512 pixels at a time at memcmp speed; where that fails, each
/// 32 pixels get a bit mask of their disputed pixels from word compares, so per-pixel work
/// is left for the pixels where workers differ.
#[inline]
pub fn scan_blocks(workers: &[Rows<'_>], mut f: impl FnMut(Block)) {
    let first = workers[0].current;
    let w = first.len();
    let mut x = 0;
    while x < w {
        let long = (x + LONG_BLOCK).min(w);
        if long - x == LONG_BLOCK && agree(workers, x, long) {
            f(Block {
                start: x,
                len: LONG_BLOCK,
                disputed: 0,
            });
            x = long;
            continue;
        }
        while x < long {
            let end = (x + BLOCK).min(w);
            f(Block {
                start: x,
                len: end - x,
                disputed: disputed_bits(workers, x),
            });
            x = end;
        }
    }
}

/// Whether every worker voted the same class on `a..b` (nobody abstaining).
#[inline(always)]
fn agree(workers: &[Rows<'_>], a: usize, b: usize) -> bool {
    let block = &workers[0].current[a..b];
    // A fold without early exit compiles to vector compares; `contains` would not.
    !block.iter().fold(false, |any, &v| any | (v == ABSTAIN))
        && workers[1..].iter().all(|r| &r.current[a..b] == block)
}

/// The disputed pixels of the [`BLOCK`] pixels from `x` (fewer at the row's end): bit k is set
/// where a worker's vote differs from the first worker's, or the first abstained. Eight pixels
/// per word operation.
#[inline(always)]
fn disputed_bits(workers: &[Rows<'_>], x: usize) -> u32 {
    // Past the row's end every worker reads 0: agreed, not abstained, never disputed.
    let first = block_words(workers[0].current, x);
    // 0x80 in every disputed byte.
    let mut disputed = first.map(|v| votes::same_bytes(v, votes::splat(ABSTAIN)));
    for r in &workers[1..] {
        let words = block_words(r.current, x);
        for (d, (v, f)) in disputed.iter_mut().zip(words.iter().zip(&first)) {
            *d |= votes::differing_bytes(*v, *f);
        }
    }
    block_flags(disputed)
}

/// The [`BLOCK`] bytes of `row` from `x` as words; past the row's end, 0. From a per-byte
/// loop the compiler would build the block's bit mask with a long chain of shuffles (the
/// baseline x86-64 target has no move-mask it would use), so blocks are handled as words.
#[inline(always)]
fn block_words(row: &[u8], x: usize) -> [u64; BLOCK / 8] {
    match row.get(x..x + BLOCK) {
        Some(block) => std::array::from_fn(|q| votes::word(block, 8 * q)),
        None => {
            let mut padded = [0; BLOCK];
            let tail = &row[x..];
            padded[..tail.len()].copy_from_slice(tail);
            std::array::from_fn(|q| votes::word(&padded, 8 * q))
        }
    }
}

/// Bit k set where byte k of the block is 0x80 (every byte 0x80 or 0).
#[inline(always)]
fn block_flags(words: [u64; BLOCK / 8]) -> u32 {
    (0..BLOCK / 8).fold(0, |m, q| m | votes::byte_flags(words[q]) << (8 * q))
}

/// [`scan_blocks`] with the blocks split: `f` gets every unanimous span and every disputed
/// pixel.
#[inline]
pub fn scan_row(workers: &[Rows<'_>], mut f: impl FnMut(Span)) {
    scan_blocks(workers, |b| {
        if b.disputed == 0 {
            f(Span::Unanimous(b.start..b.start + b.len));
            return;
        }
        let mut k = 0;
        while k < b.len {
            let rest = b.disputed >> k;
            if rest & 1 == 1 {
                f(Span::Disputed(b.start + k));
                k += 1;
            } else {
                let run = (rest.trailing_zeros() as usize).min(b.len - k);
                f(Span::Unanimous(b.start + k..b.start + k + run));
                k += run;
            }
        }
    });
}

/// Per-pixel plurality vote with a neighbourhood tie-break (SPEC §3, the default).
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
/// falls into segments where no worker's vote changes (45 a row in the benchmark, against 4000
/// pixels), and each is decided once, or pixel by pixel where the neighbourhood breaks a tie.
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

/// Among `tied` (ascending), the class with the most votes over the 3×3 neighbourhood of
/// column `x` (clipped at the border), each worker's votes counted `weight(worker)` times; the
/// lowest index if that still ties.
pub(crate) fn break_tie<W: PartialOrd + Default + Copy + std::ops::AddAssign>(
    workers: &[Rows<'_>],
    x: usize,
    tied: &[u8],
    weight: impl Fn(usize) -> W,
) -> u8 {
    let w = workers[0].current.len();
    let (x0, x1) = (x.saturating_sub(1), (x + 1).min(w - 1));
    let mut best = (W::default(), tied[0]);
    for &c in tied {
        let mut score = W::default();
        for (i, r) in workers.iter().enumerate() {
            let wt = weight(i);
            for row in [r.above, Some(r.current), r.below].into_iter().flatten() {
                for _ in row[x0..=x1].iter().filter(|&&v| v == c) {
                    score += wt;
                }
            }
        }
        // Strictly greater: on equal sums the earlier (lower) class stays.
        if score > best.0 {
            best = (score, c);
        }
    }
    best.1
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
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
                let same =
                    out[x] == out[x0] && window.iter().all(|r| r.current[x] == r.current[x0]);
                if !same || won(x) != usize::from(s.votes) {
                    return Some(format!("pixel {x} in {s:?}"));
                }
            }
        }
        (0..w)
            .find(|&x| covered[x] != (won(x) < window.len()))
            .map(|x| format!("pixel {x}: split {}", covered[x]))
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
            stream_windows::<()>((m[0].width, h), m.len(), |i, row, runs| {
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
            stream_windows::<()>((w as u32, h as u32), m.len(), |i, row, runs| {
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
