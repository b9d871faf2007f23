//! The weighted fusion's masks, kept between its two passes: each worker's rows as runs of
//! one class (or as classes, for a row too noisy for runs), recorded while the first pass
//! decodes them, so that the second pass votes without decoding again.
//!
//! The batch keeps them within an allowance; an image that does not fit is decoded again.

use crate::fusion::{Rows, stream_windows};
use crate::raster::Run;

/// One worker's rows, in order.
#[derive(Debug, Default)]
struct Kept {
    runs: Vec<Run>,
    /// The classes of the rows kept without runs, one after another.
    classes: Vec<u8>,
    /// Per row: where its runs end in `runs`, or `None` when it is in `classes`.
    rows: Vec<Option<u32>>,
}

impl Kept {
    fn bytes(&self) -> usize {
        self.runs.len() * size_of::<Run>()
            + self.classes.len()
            + self.rows.len() * size_of::<Option<u32>>()
    }
}

/// Records the rows of an image's workers as the first pass visits them, up to `limit`
/// bytes (then it stops and keeps nothing).
#[derive(Debug)]
pub(crate) struct Recorder {
    limit: usize,
    bytes: usize,
    workers: Vec<Kept>,
}

impl Recorder {
    /// A recorder of `workers` workers' rows, giving up past `limit` bytes.
    pub(crate) fn new(workers: usize, limit: usize) -> Self {
        Self {
            limit,
            bytes: 0,
            workers: (0..workers).map(|_| Kept::default()).collect(),
        }
    }

    /// Records the current row of every worker of `window`.
    pub(crate) fn record(&mut self, window: &[Rows<'_>]) {
        if self.bytes > self.limit {
            return;
        }
        for (kept, r) in self.workers.iter_mut().zip(window) {
            if r.runs.is_empty() {
                kept.classes.extend_from_slice(r.current);
                kept.rows.push(None);
                self.bytes += r.current.len();
            } else {
                kept.runs.extend_from_slice(r.runs);
                kept.rows.push(Some(kept.runs.len() as u32));
                self.bytes += std::mem::size_of_val(r.runs);
            }
            self.bytes += size_of::<Option<u32>>();
        }
        if self.bytes > self.limit {
            // Over the allowance: the image will be decoded again.
            self.workers = Vec::new();
        }
    }

    /// The image's masks, kept for the second pass, with the ids of its `workers` (in vote
    /// order) and their counts of unmapped pixels; `None` when they did not fit.
    pub(crate) fn finish(
        self,
        size: (u32, u32),
        workers: Vec<String>,
        unmapped: Vec<u64>,
    ) -> Option<Retained> {
        let complete = self.workers.len() == workers.len()
            && self.workers.iter().all(|k| k.rows.len() == size.1 as usize);
        (self.bytes <= self.limit && complete).then_some(Retained {
            size,
            workers,
            unmapped,
            kept: self.workers,
        })
    }
}

/// An image's masks as the first pass decoded them (see the module documentation).
#[derive(Debug)]
pub(crate) struct Retained {
    size: (u32, u32),
    workers: Vec<String>,
    unmapped: Vec<u64>,
    kept: Vec<Kept>,
}

impl Retained {
    /// The memory it holds, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.kept.iter().map(Kept::bytes).sum()
    }

    /// The ids of the workers whose masks it holds, in vote order.
    pub(crate) fn workers(&self) -> &[String] {
        &self.workers
    }

    /// Hands `visit` every row with its 3-row window, as decoding the PNGs would, and returns
    /// each worker's count of unmapped pixels.
    pub(crate) fn stream<V>(
        &self,
        visit: impl FnMut(&[Rows<'_>]) -> Result<(), V>,
    ) -> Result<Vec<u64>, V> {
        // Per worker: the next row, where its runs start, and the next row of classes.
        let mut at = vec![(0usize, 0usize, 0usize); self.kept.len()];
        let w = self.size.0 as usize;
        let read = |i: usize, row: &mut [u8], runs: &mut Vec<Run>| {
            let (kept, (y, from, raw)) = (&self.kept[i], &mut at[i]);
            runs.clear();
            match kept.rows.get(*y).copied().flatten() {
                Some(end) => {
                    let mine = &kept.runs[*from..end as usize];
                    let mut x = 0;
                    for r in mine {
                        row[x..r.end as usize].fill(r.class);
                        x = r.end as usize;
                    }
                    runs.extend_from_slice(mine);
                    *from = end as usize;
                }
                None => {
                    row.copy_from_slice(&kept.classes[*raw..*raw + w]);
                    *raw += w;
                }
            }
            *y += 1;
            Ok::<(), std::convert::Infallible>(())
        };
        match stream_windows(self.size, self.kept.len(), read, visit) {
            Ok(()) => Ok(self.unmapped.clone()),
            Err(crate::fusion::StreamError::Visit(v)) => Err(v),
            Err(crate::fusion::StreamError::Read(_, never)) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::testing::for_each_window_with_runs;
    use crate::raster::{ClassMask, runs_of};

    /// Records `masks` (with runs where a row has few enough) and streams them back.
    fn round_trip(masks: &[ClassMask], limit: usize) -> Option<Vec<Vec<u8>>> {
        let (w, h) = (masks[0].width, masks[0].height);
        let mut recorder = Recorder::new(masks.len(), limit);
        let refs: Vec<&ClassMask> = masks.iter().collect();
        for_each_window_with_runs(&refs, |window| recorder.record(window));
        let ids = (0..masks.len()).map(|i| i.to_string()).collect();
        let kept = recorder.finish((w, h), ids, vec![7; masks.len()])?;
        let mut rows = vec![Vec::new(); masks.len()];
        let unmapped = kept
            .stream(|window| {
                for (out, r) in rows.iter_mut().zip(window) {
                    out.extend_from_slice(r.current);
                    let mut runs = Vec::new();
                    runs_of(r.current, &mut runs);
                    assert!(r.runs.is_empty() || r.runs == runs.as_slice());
                }
                Ok::<(), ()>(())
            })
            .ok()?;
        assert_eq!(unmapped, vec![7; masks.len()]);
        Some(rows)
    }

    #[test]
    fn kept_rows_stream_back_as_they_were_decoded() {
        let smooth: Vec<u8> = (0..64).map(|i| (i / 16) as u8).collect();
        let noisy: Vec<u8> = (0..64).map(|i| (i * 7 % 5) as u8).collect();
        let a = ClassMask::from_rows(64, &[&smooth, &noisy, &smooth]);
        let b = ClassMask::from_rows(64, &[&noisy, &noisy, &smooth]);
        let rows = round_trip(&[a.clone(), b.clone()], 1 << 20).expect("fits");
        assert_eq!(rows, [a.data, b.data]);
    }

    #[test]
    fn masks_over_the_limit_are_not_kept() {
        let row: Vec<u8> = (0..64).map(|i| (i * 7 % 5) as u8).collect();
        let a = ClassMask::from_rows(64, &[&row, &row]);
        assert!(round_trip(std::slice::from_ref(&a), 100).is_none());
        assert!(round_trip(&[a], 200).is_some());
    }
}
