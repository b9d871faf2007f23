//! The rows around a row: a 3-row window per worker, streamed or taken from whole masks,
//! the reuse of a repeated row's decision, and the 3×3 neighbourhood count that breaks ties.

use super::{Fusion, Split};
use crate::raster::{ClassMask, Run, runs_of};

/// One worker's class rows around the row being decided (`None` beyond the image border).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub above: Option<&'a [u8]>,
    pub current: &'a [u8],
    pub below: Option<&'a [u8]>,
    /// The runs of `current` ([`runs_of`]), or none when the reader did not give them.
    pub runs: &'a [Run],
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
/// its own rows alone. Most rows of a painted mask repeat the row above, for every worker at
/// once (`docs/performance.md` has the figures). Rows without runs are always decided.
#[derive(Debug)]
pub(crate) struct RowFuser<'f> {
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
    pub(crate) fn new(fusion: &'f dyn Fusion, width: usize, workers: usize) -> Self {
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
    pub(crate) fn fuse_row(&mut self, workers: &[Rows<'_>]) -> (&[u8], &[Split], bool) {
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

/// Rows read from one worker before moving to the next, at most: each PNG decoder then works
/// on a run of rows while its state is in cache, instead of the five decoders taking turns per
/// row.
pub(crate) const BATCH_ROWS: usize = 16;
/// Bytes of rows read ahead per worker, at most: fewer rows for wide images, so that the
/// ring's memory stays bounded whatever the width.
const BATCH_BYTES: usize = 256 << 10;

/// Rows read at once per worker for rows of `width` pixels: [`BATCH_ROWS`], or fewer for wide
/// images (at least one).
pub(crate) fn batch_rows(width: usize) -> usize {
    (BATCH_BYTES / width.max(1)).clamp(1, BATCH_ROWS)
}

/// Streams `workers` masks of `width`×`height` with a 3-row window per worker: `read(i, row,
/// runs)` fills worker i's next row (and its runs, or leaves them empty), and `visit(window)`
/// receives every row in order with the workers' rows around it (what [`Fusion::fuse_row`]
/// takes). A read error stops the run and names the worker; a visitor's error stops it too.
/// Rows are read [`batch_rows`] at a time per worker, a little ahead of the visit.
pub(crate) fn stream_windows<R, V>(
    (width, height): (u32, u32),
    workers: usize,
    mut read: impl FnMut(usize, &mut [u8], &mut Vec<Run>) -> Result<(), R>,
    mut visit: impl FnMut(&[Rows<'_>]) -> Result<(), V>,
) -> Result<(), StreamError<R, V>> {
    let (w, h) = (width as usize, height as usize);
    // Worker i's row y lives in ring[i][y % ring_rows]: the rows above and at y, and a batch
    // ahead.
    let batch = batch_rows(w);
    let ring_rows = batch + 2;
    let mut ring = vec![0u8; workers * ring_rows * w];
    let mut ring_runs: Vec<Vec<Run>> = vec![Vec::new(); workers * ring_rows];
    let slot = |i: usize, y: usize| i * ring_rows + y % ring_rows;
    let mut loaded = 0;
    for y in 0..h {
        // The window needs the row below; load the next batch of every worker when it is due.
        while loaded < (y + 2).min(h) {
            let end = (loaded + batch).min(h);
            for i in 0..workers {
                for yy in loaded..end {
                    let s = slot(i, yy);
                    read(i, &mut ring[s * w..(s + 1) * w], &mut ring_runs[s])
                        .map_err(|e| StreamError::Read(i, e))?;
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
        visit(&window).map_err(StreamError::Visit)?;
    }
    Ok(())
}

/// Why [`stream_windows`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamError<R, V> {
    /// Reading worker `.0`'s next row failed.
    Read(usize, R),
    /// The visitor failed.
    Visit(V),
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
    // One pass over the neighbourhood, each vote for a tied class added to that class's score
    // (on noise, where most pixels tie, this is several times faster than a pass per class).
    let mut slot = [0u8; 256];
    for (i, &c) in tied.iter().enumerate() {
        slot[usize::from(c)] = (i + 1) as u8;
    }
    // scores[0] collects the votes for other classes, without a branch.
    let mut scores = [W::default(); 257];
    for (i, r) in workers.iter().enumerate() {
        let wt = weight(i);
        for row in [r.above, Some(r.current), r.below].into_iter().flatten() {
            for &v in &row[x0..=x1] {
                scores[usize::from(slot[usize::from(v)])] += wt;
            }
        }
    }
    let mut best = (W::default(), tied[0]);
    for (&score, &c) in scores[1..].iter().zip(tied) {
        // Strictly greater: on equal sums the earlier (lower) class stays.
        if score > best.0 {
            best = (score, c);
        }
    }
    best.1
}
