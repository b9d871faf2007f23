//! Votes packed into words, one byte per worker or pixel ("SIMD within a register"), and
//! counts of vote patterns.
//!
//! Where workers disagree, the vote asks the same few questions of a pixel: who voted, and who
//! voted for this class. With every vote a byte of one `u64` ([`Votes`]), each question is a
//! handful of word operations and one multiplication that counts the lanes, with no loop over
//! workers and no branch to mispredict. [`Votes::MAX_WORKERS`] = 8 covers the usual 3 to 5
//! workers per image; callers keep a plain loop for more (a `u128` for up to 16 measured
//! slower than that loop, without a popcount instruction in the baseline x86-64 target). The
//! same byte tests compare eight pixels of two rows at once ([`differing_bytes`],
//! [`byte_flags`]), and [`Patterns`] counts how often each pattern of votes occurs, so that
//! the agreement works each out once.

use crate::raster::ABSTAIN;

/// 0x01 in every byte.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
const LOW7: u64 = ONES * 0x7f;
const HIGH: u64 = ONES * 0x80;

/// `b` in every byte.
#[inline(always)]
pub(super) fn splat(b: u8) -> u64 {
    ONES * u64::from(b)
}

/// 0x80 in every byte where `x` and `y` differ, 0 elsewhere. Exact: the low seven bits are
/// added without carrying into the next byte, so no byte borrows from its neighbour.
#[inline(always)]
pub(super) fn differing_bytes(x: u64, y: u64) -> u64 {
    let t = x ^ y;
    (((t & LOW7) + LOW7) | t) & HIGH
}

/// 0x80 in every byte where `x` and `y` are equal, 0 elsewhere.
#[inline(always)]
pub(super) fn same_bytes(x: u64, y: u64) -> u64 {
    differing_bytes(x, y) ^ HIGH
}

/// 0x01 in every byte where `x` and `y` are equal, 0 elsewhere.
#[inline(always)]
fn equal_bytes(x: u64, y: u64) -> u64 {
    same_bytes(x, y) >> 7
}

/// Bit i set where byte i of `mask` is 0x80 (every byte 0x80 or 0): one multiplication
/// gathers the eight flags into the top byte (the baseline x86-64 target has no move-mask
/// that the compiler would use, nor does the multiplication carry between them).
#[inline(always)]
pub(super) fn byte_flags(mask: u64) -> u32 {
    ((mask >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// The eight bytes at `at` as a word (byte i is lane i).
#[inline(always)]
pub(super) fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// How many lanes of a lane mask are set, without relying on a popcount instruction (the
/// baseline x86-64 target has none): the bytes (each 0 or 1) summed by one multiplication.
#[inline(always)]
pub(super) fn lanes(mask: u64) -> u32 {
    (mask.wrapping_mul(ONES) >> 56) as u32
}

/// The votes of up to [`Votes::MAX_WORKERS`] workers at one pixel. Lane i (byte i) is worker
/// i; a lane mask has 0x01 in the byte of every worker it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Votes {
    classes: u64,
    voting: u64,
}

impl Votes {
    /// The most workers a `Votes` holds.
    pub(super) const MAX_WORKERS: usize = 8;

    /// Packs `vote(i)` for workers `0..workers` (1 to [`Self::MAX_WORKERS`]).
    #[inline(always)]
    pub(super) fn gather(workers: usize, vote: impl Fn(usize) -> u8) -> Self {
        debug_assert!((1..=Self::MAX_WORKERS).contains(&workers));
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate().take(workers) {
            *b = vote(i);
        }
        let classes = u64::from_le_bytes(bytes);
        let lanes = ONES >> (8 * (Self::MAX_WORKERS - workers));
        let voting = (equal_bytes(classes, splat(ABSTAIN)) ^ ONES) & lanes;
        Self { classes, voting }
    }

    /// The lanes of the workers that voted `class` (none for [`ABSTAIN`]).
    #[inline(always)]
    pub(super) fn for_class(&self, class: u8) -> u64 {
        equal_bytes(self.classes, splat(class)) & self.voting
    }

    /// Worker i's vote.
    #[inline(always)]
    pub(super) fn class(&self, worker: usize) -> u8 {
        self.classes.to_le_bytes()[worker]
    }

    /// The plurality: the most votes any class got, and how many classes got that many.
    /// `first` is the first of them by worker order (meaningful when the most is above 0).
    #[inline(always)]
    pub(super) fn plurality(&self) -> Plurality {
        let mut p = Plurality {
            votes: 0,
            classes: 0,
            first: 0,
        };
        // Each distinct class once: its lanes leave `rest` together.
        let mut rest = self.voting;
        while rest != 0 {
            let c = self.class(rest.trailing_zeros() as usize / 8);
            let lanes = self.for_class(c);
            rest &= !lanes;
            let k = self::lanes(lanes);
            if k > p.votes {
                p = Plurality {
                    votes: k,
                    classes: 1,
                    first: c,
                };
            } else if k == p.votes {
                p.classes += 1;
            }
        }
        p
    }

    /// The classes with exactly `votes` votes, ascending, into `out` (cleared first).
    pub(super) fn classes_with(&self, votes: u32, out: &mut Vec<u8>) {
        out.clear();
        let mut rest = self.voting;
        while rest != 0 {
            let c = self.class(rest.trailing_zeros() as usize / 8);
            let lanes = self.for_class(c);
            rest &= !lanes;
            if self::lanes(lanes) == votes {
                out.push(c);
            }
        }
        out.sort_unstable();
    }
}

/// What [`Votes::plurality`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plurality {
    /// The most votes a class got (0 when everybody abstained).
    pub votes: u32,
    /// How many classes got that many.
    pub classes: u32,
    /// The first of them by worker order.
    pub first: u8,
}

/// How often each distinct pattern of votes occurred, for up to [`Patterns::MAX_WORKERS`]
/// workers and one more byte per pattern (a tag, such as the consensus).
///
/// Where workers disagree, the same few hundred patterns repeat along the outlines of the
/// objects, against hundreds of thousands of disputed pixels in a 12 MP image
/// (`docs/performance.md` has the figures). Counting each pattern in a small hash table and
/// working out its effect once per pattern costs a lookup per pixel instead of the whole
/// per-pixel computation.
#[derive(Debug, Clone, Default)]
pub(super) struct Patterns {
    counts: rustc_hash::FxHashMap<u128, u64>,
}

impl Patterns {
    /// The most workers a pattern holds: a byte each, and the tag in the sixteenth.
    pub(super) const MAX_WORKERS: usize = 15;
    /// Distinct patterns held before the table must be drained, so that noise (a pattern per
    /// pixel) cannot grow it.
    const MAX_USED: usize = 1024;

    /// The pattern of `vote(i)` for workers `0..workers` (at most [`Self::MAX_WORKERS`]),
    /// tagged `tag`.
    #[inline(always)]
    pub(super) fn key(workers: usize, vote: impl Fn(usize) -> u8, tag: u8) -> u128 {
        debug_assert!(workers <= Self::MAX_WORKERS);
        // Two words: a variable shift of a u128 costs branches or selects.
        let (mut lo, mut hi) = (0u64, u64::from(tag) << 56);
        for i in 0..workers {
            let v = u64::from(vote(i));
            if i < 8 {
                lo |= v << (8 * i);
            } else {
                hi |= v << (8 * (i - 8));
            }
        }
        u128::from(hi) << 64 | u128::from(lo)
    }

    /// Worker i's vote in a pattern.
    pub(super) fn vote(key: u128, worker: usize) -> u8 {
        key.to_le_bytes()[worker]
    }

    /// A pattern's tag.
    pub(super) fn tag(key: u128) -> u8 {
        key.to_le_bytes()[15]
    }

    /// Counts `times` more `key`. Call [`Self::full`] first: a full table must be drained.
    #[inline(always)]
    pub(super) fn add(&mut self, key: u128, times: u64) {
        *self.counts.entry(key).or_insert(0) += times;
    }

    /// Whether the table must be drained before the next [`Self::add`].
    #[inline(always)]
    pub(super) fn full(&self) -> bool {
        self.counts.len() >= Self::MAX_USED
    }

    /// Calls `f(key, count)` for every pattern counted since the last drain, and empties the
    /// table.
    pub(super) fn drain(&mut self, mut f: impl FnMut(u128, u64)) {
        for (key, count) in self.counts.drain() {
            f(key, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_bytes_is_exact_for_every_pair_of_bytes() {
        for a in 0..=255u8 {
            // Every b in one of 8 lanes, with neighbours that could borrow or carry.
            for b in 0..=255u8 {
                let lane = usize::from(b) % 8;
                let mut x = [a.wrapping_add(1); 8];
                let mut y = [a.wrapping_sub(1); 8];
                x[lane] = a;
                y[lane] = b;
                let eq = equal_bytes(u64::from_le_bytes(x), u64::from_le_bytes(y));
                let want = u64::from(a == b) << (8 * lane);
                assert_eq!(eq, want, "a={a} b={b}");
            }
        }
    }

    #[test]
    fn byte_flags_gathers_every_pattern_of_flags() {
        for bits in 0..=255u32 {
            let mask = (0..8).fold(0u64, |m, i| m | u64::from(bits >> i & 1) << (8 * i + 7));
            assert_eq!(byte_flags(mask), bits, "{mask:#018x}");
        }
    }

    proptest! {
        #[test]
        fn plurality_follows_the_definition(
            votes in proptest::collection::vec(prop_oneof![4 => 0u8..5, 1 => Just(ABSTAIN)], 1..=8)
        ) {
            let v = Votes::gather(votes.len(), |i| votes[i]);
            let count = |c: u8| votes.iter().filter(|&&x| x == c && x != ABSTAIN).count() as u32;
            let most = votes.iter().map(|&c| count(c)).max().unwrap_or(0);
            let mut tied: Vec<u8> = votes.iter().copied().filter(|&c| c != ABSTAIN && count(c) == most).collect();
            tied.sort_unstable();
            tied.dedup();
            let p = v.plurality();
            prop_assert_eq!(p.votes, most);
            prop_assert_eq!(p.classes as usize, tied.len());
            if most > 0 {
                let first = *votes.iter().find(|&&c| c != ABSTAIN && count(c) == most).unwrap_or(&0);
                prop_assert_eq!(p.first, first);
            }
            let mut with = Vec::new();
            v.classes_with(most, &mut with);
            prop_assert_eq!(if most > 0 { tied } else { vec![] }, with);
            for (i, &c) in votes.iter().enumerate() {
                prop_assert_eq!(v.class(i), c);
                prop_assert_eq!(v.voting >> (8 * i) & 1 == 1, c != ABSTAIN);
                prop_assert_eq!(lanes(v.for_class(c)), count(c));
                prop_assert_eq!(lanes(v.for_class(c)), v.for_class(c).count_ones());
            }
        }
    }

    proptest! {
        /// Whatever the patterns and however often the table fills, draining gives every
        /// pattern's count, each once.
        #[test]
        fn patterns_count_every_key(
            workers in 1usize..=Patterns::MAX_WORKERS,
            picks in proptest::collection::vec((0u16..3000, 0u8..4), 1..6000),
        ) {
            let key = |p: u16, tag: u8| {
                Patterns::key(workers, |i| (p >> (i % 12)) as u8 ^ i as u8, tag)
            };
            let mut want = std::collections::HashMap::new();
            for &(p, tag) in &picks {
                *want.entry(key(p, tag)).or_insert(0u64) += 1;
            }
            let mut table = Patterns::default();
            let mut got = std::collections::HashMap::new();
            let mut drained = |k, c| *got.entry(k).or_insert(0u64) += c;
            for &(p, tag) in &picks {
                if table.full() {
                    table.drain(&mut drained);
                }
                table.add(key(p, tag), 1);
            }
            table.drain(&mut drained);
            prop_assert_eq!(got, want);
            for &(p, tag) in &picks {
                let k = key(p, tag);
                prop_assert_eq!(Patterns::tag(k), tag);
                for i in 0..workers {
                    prop_assert_eq!(Patterns::vote(k, i), (p >> (i % 12)) as u8 ^ i as u8);
                }
            }
        }
    }
}
