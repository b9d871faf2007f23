//! The per-worker decode pipeline: the candidates' PNGs decoded in lockstep, row by row, into
//! 3-row windows for the vote, on one thread or one thread per worker.

use super::answer::Exclusion;
use super::select::{Candidate, PassError};
use crate::fusion::{Rows, StreamError, stream_windows};
use crate::mask::{MaskError, MaskReader};
use crate::raster::Run;

/// Decodes every candidate in lockstep, handing `visit` each row with its 3-row window, and
/// returns each candidate's count of unmapped pixels. On a decoding error, names the
/// candidate at fault; a visitor's error stops it too. With `threads` > 1 each worker's PNG
/// is decoded on its own thread, a few rows ahead.
pub(crate) fn stream_decoded<V>(
    cands: &[Candidate<'_>],
    threads: usize,
    visit: impl FnMut(&[Rows<'_>]) -> Result<(), V>,
) -> Result<Vec<u64>, PassError<V>> {
    if threads > 1 && cands.len() > 1 {
        decode_in_parallel(cands, visit)
    } else {
        let mut readers = Vec::with_capacity(cands.len());
        for (i, c) in cands.iter().enumerate() {
            // The pixel limit was checked on the header already.
            readers.push(MaskReader::new(c.png, &c.lookup, u64::MAX).map_err(|e| worker(i, e))?);
        }
        stream_windows(
            cands[0].size,
            cands.len(),
            |i, row, runs| readers[i].read_row(row, runs),
            visit,
        )
        .map_err(pass_error)?;
        let mut unmapped = Vec::with_capacity(readers.len());
        for (i, r) in readers.into_iter().enumerate() {
            unmapped.push(r.finish().map_err(|e| worker(i, e))?);
        }
        Ok(unmapped)
    }
}

/// Candidate `i`'s PNG is broken.
fn worker<V>(i: usize, e: MaskError) -> PassError<V> {
    PassError::Worker(i, Exclusion::Mask(e))
}

fn pass_error<V>(e: StreamError<MaskError, V>) -> PassError<V> {
    match e {
        StreamError::Read(i, e) => worker(i, e),
        StreamError::Visit(v) => PassError::Other(v),
    }
}

/// Rows a decoding thread hands over at once, at most.
const CHUNK_ROWS: usize = 32;
/// Bytes of rows a decoding thread hands over at once, at most (fewer rows for wide images).
const CHUNK_BYTES: usize = 128 << 10;

/// Rows per chunk for rows of `width` pixels.
fn chunk_rows(width: usize) -> usize {
    (CHUNK_BYTES / width.max(1)).clamp(1, CHUNK_ROWS)
}

/// The memory that decoding an image of `width`×`height` from `workers` workers needs at
/// most, besides the answers: each worker's ring of rows and their runs (runs are capped at
/// about a byte a pixel), its chunks in flight when decoded on its own thread, its PNG
/// decoder's line buffers and inflate state; and the encoded mask and disagreement map,
/// which for noise are about a byte a pixel each.
pub(crate) fn memory(width: u32, height: u32, workers: usize) -> u64 {
    let (w, h, n) = (u64::from(width), u64::from(height), workers as u64);
    let ring = (crate::fusion::batch_rows(width as usize) as u64 + 2) * w * 2;
    let chunks = 3 * chunk_rows(width as usize) as u64 * w * 2;
    let decoder = 16 * w + (256 << 10);
    n * (ring + chunks + decoder) + 2 * w * h
}

/// Rows of classes a decoding thread fills, with the runs of each; sent back to be reused.
#[derive(Default)]
struct RowBatch {
    classes: Vec<u8>,
    runs: Vec<Vec<Run>>,
}

/// What a decoding thread sends to the vote.
enum Chunk {
    /// Rows, and how many of them are filled.
    Rows(RowBatch, usize),
    Done(u64),
    Failed(MaskError),
}

/// [`stream_windows`] with one decoding thread per worker, each at most two chunks ahead
/// (bounded memory). Returns each worker's count of unmapped pixels.
fn decode_in_parallel<V>(
    cands: &[Candidate<'_>],
    visit: impl FnMut(&[Rows<'_>]) -> Result<(), V>,
) -> Result<Vec<u64>, PassError<V>> {
    let (width, height) = cands[0].size;
    let (w, h) = (width as usize, height as usize);
    let chunk = chunk_rows(w);
    std::thread::scope(|scope| {
        let mut inbox = Vec::with_capacity(cands.len());
        let mut recycle = Vec::with_capacity(cands.len());
        for c in cands {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
            let (back_tx, back_rx) = std::sync::mpsc::channel::<RowBatch>();
            scope.spawn(move || {
                let mut reader = match MaskReader::new(c.png, &c.lookup, u64::MAX) {
                    Ok(r) => r,
                    Err(e) => return drop(tx.send(Chunk::Failed(e))),
                };
                let mut left = h;
                while left > 0 {
                    let n = left.min(chunk);
                    let mut buf = back_rx.try_recv().unwrap_or_default();
                    buf.classes.resize(chunk * w, 0);
                    buf.runs.resize_with(chunk, Vec::new);
                    let rows = buf.classes.chunks_exact_mut(w).zip(&mut buf.runs);
                    for (row, runs) in rows.take(n) {
                        if let Err(e) = reader.read_row(row, runs) {
                            return drop(tx.send(Chunk::Failed(e)));
                        }
                    }
                    if tx.send(Chunk::Rows(buf, n)).is_err() {
                        return; // the vote stopped: another worker failed
                    }
                    left -= n;
                }
                let _ = tx.send(match reader.finish() {
                    Ok(u) => Chunk::Done(u),
                    Err(e) => Chunk::Failed(e),
                });
            });
            inbox.push(rx);
            recycle.push(back_tx);
        }
        // Per worker: the chunk being read, its row count, and the next row in it.
        let mut current: Vec<(RowBatch, usize, usize)> = (0..cands.len())
            .map(|_| (RowBatch::default(), 0, 0))
            .collect();
        stream_windows(
            (width, height),
            cands.len(),
            |i, row, runs| {
                let (buf, rows, next) = &mut current[i];
                if *next == *rows {
                    match inbox[i].recv() {
                        Ok(Chunk::Rows(b, n)) => {
                            let used = std::mem::replace(buf, b);
                            if !used.classes.is_empty() {
                                let _ = recycle[i].send(used);
                            }
                            (*rows, *next) = (n, 0);
                        }
                        Ok(Chunk::Failed(e)) => return Err(e),
                        Ok(Chunk::Done(_)) | Err(_) => return Err(MaskError::Interrupted),
                    }
                }
                row.copy_from_slice(&buf.classes[*next * w..(*next + 1) * w]);
                // The ring's old runs go back with the chunk, to be filled again.
                std::mem::swap(runs, &mut buf.runs[*next]);
                *next += 1;
                Ok(())
            },
            visit,
        )
        .map_err(pass_error)?;
        let mut unmapped = Vec::with_capacity(inbox.len());
        for (i, rx) in inbox.iter().enumerate() {
            match rx.recv() {
                Ok(Chunk::Done(u)) => unmapped.push(u),
                Ok(Chunk::Failed(e)) => return Err(worker(i, e)),
                Ok(Chunk::Rows(..)) | Err(_) => return Err(worker(i, MaskError::Interrupted)),
            }
        }
        Ok(unmapped)
    })
}
