//! Finding where workers disagree: a row is walked in blocks, unanimous spans found at memcmp
//! speed and the disputed pixels of each 32-pixel block marked in a bit mask by word compares.

use super::Rows;
use super::packed;
use crate::raster::ABSTAIN;

/// A piece of one row, as [`scan_row`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Span {
    /// Every worker voted the same class on these pixels (nobody abstained).
    Unanimous(std::ops::Range<usize>),
    /// The workers differ at this pixel, or someone abstained.
    Disputed(usize),
}

/// Pixels compared at once on the fast path: long spans, then short ones.
const LONG_BLOCK: usize = 512;
pub(crate) const BLOCK: usize = 32;

/// A run of one row's pixels, as [`scan_blocks`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
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
pub(super) fn scan_blocks(workers: &[Rows<'_>], mut f: impl FnMut(Block)) {
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
    let mut disputed = first.map(|v| packed::same_bytes(v, packed::splat(ABSTAIN)));
    for r in &workers[1..] {
        let words = block_words(r.current, x);
        for (d, (v, f)) in disputed.iter_mut().zip(words.iter().zip(&first)) {
            *d |= packed::differing_bytes(*v, *f);
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
        Some(block) => std::array::from_fn(|q| packed::word(block, 8 * q)),
        None => {
            let mut padded = [0; BLOCK];
            let tail = &row[x..];
            padded[..tail.len()].copy_from_slice(tail);
            std::array::from_fn(|q| packed::word(&padded, 8 * q))
        }
    }
}

/// Bit k set where byte k of the block is 0x80 (every byte 0x80 or 0).
#[inline(always)]
fn block_flags(words: [u64; BLOCK / 8]) -> u32 {
    (0..BLOCK / 8).fold(0, |m, q| m | packed::byte_flags(words[q]) << (8 * q))
}

/// [`scan_blocks`] with the blocks split: `f` gets every unanimous span and every disputed
/// pixel.
#[inline]
pub(super) fn scan_row(workers: &[Rows<'_>], mut f: impl FnMut(Span)) {
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
