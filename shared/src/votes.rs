//! One pixel's votes packed into a word, one byte per worker ("SIMD within a register").
//!
//! Where workers disagree, the vote and the agreement counts ask the same few questions of a
//! pixel: who voted, and who voted for this class. With every vote a byte of one `u64`, each
//! question is a handful of word operations and one multiplication that counts the lanes, with
//! no loop over workers and no branch to mispredict. [`Votes::MAX_WORKERS`] = 8 covers the usual 3 to 5 workers per
//! image; callers keep a plain loop for more (a `u128` for up to 16 measured slower than that
//! loop, without a popcount instruction in the baseline x86-64 target).

use crate::mask::ABSTAIN;

/// 0x01 in every byte.
const ONES: u64 = u64::from_ne_bytes([1; 8]);
const LOW7: u64 = ONES * 0x7f;
const HIGH: u64 = ONES * 0x80;

/// `b` in every byte.
#[inline(always)]
fn splat(b: u8) -> u64 {
    ONES * u64::from(b)
}

/// 0x01 in every byte where `x` and `y` are equal, 0 elsewhere. Exact: the low seven bits are
/// added without carrying into the next byte, so no byte borrows from its neighbour.
#[inline(always)]
fn equal_bytes(x: u64, y: u64) -> u64 {
    let t = x ^ y;
    let nonzero = (((t & LOW7) + LOW7) | t) & HIGH;
    (nonzero ^ HIGH) >> 7
}

/// How many lanes of a lane mask are set, without relying on a popcount instruction (the
/// baseline x86-64 target has none): the bytes (each 0 or 1) summed by one multiplication.
#[inline(always)]
pub fn lanes(mask: u64) -> u32 {
    (mask.wrapping_mul(ONES) >> 56) as u32
}

/// The votes of up to [`Votes::MAX_WORKERS`] workers at one pixel. Lane i (byte i) is worker
/// i; a lane mask has 0x01 in the byte of every worker it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Votes {
    classes: u64,
    voting: u64,
}

impl Votes {
    /// The most workers a `Votes` holds.
    pub const MAX_WORKERS: usize = 8;

    /// Packs `vote(i)` for workers `0..workers` (1 to [`Self::MAX_WORKERS`]).
    #[inline(always)]
    pub fn gather(workers: usize, vote: impl Fn(usize) -> u8) -> Self {
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

    /// The lanes of the workers that voted (did not abstain).
    #[inline(always)]
    pub fn voting(&self) -> u64 {
        self.voting
    }

    /// The lanes of the workers that voted `class` (none for [`ABSTAIN`]).
    #[inline(always)]
    pub fn for_class(&self, class: u8) -> u64 {
        equal_bytes(self.classes, splat(class)) & self.voting
    }

    /// Worker i's vote.
    #[inline(always)]
    pub fn class(&self, worker: usize) -> u8 {
        self.classes.to_le_bytes()[worker]
    }

    /// The plurality: the most votes any class got, and how many classes got that many.
    /// `first` is the first of them by worker order (meaningful when the most is above 0).
    #[inline(always)]
    pub fn plurality(&self) -> Plurality {
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
    pub fn classes_with(&self, votes: u32, out: &mut Vec<u8>) {
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
pub struct Plurality {
    /// The most votes a class got (0 when everybody abstained).
    pub votes: u32,
    /// How many classes got that many.
    pub classes: u32,
    /// The first of them by worker order.
    pub first: u8,
}

/// Per-lane counters, one byte each, in up to [`LaneCounters::WORDS`] words that are added
/// to word-wise and emptied into `u64`s before a byte can overflow.
#[derive(Debug, Clone, Default)]
pub struct LaneCounters {
    words: [u64; Self::WORDS],
    pending: u8,
}

impl LaneCounters {
    /// Enough for two counters per worker and two more.
    pub const WORDS: usize = 2 + 2 * Votes::MAX_WORKERS;

    /// Adds `adds[k]` (a lane mask) to word k; at most 255 calls between two
    /// [`Self::drain`]s, which [`Self::full`] tells.
    #[inline(always)]
    pub fn add(&mut self, adds: &[u64]) {
        for (w, a) in self.words.iter_mut().zip(adds) {
            *w += a;
        }
        self.pending += 1;
    }

    /// Whether the next [`Self::add`] could overflow a byte.
    #[inline(always)]
    pub fn full(&self) -> bool {
        self.pending == u8::MAX
    }

    /// Calls `f(word, lane, count)` for every non-zero counter, and zeroes them all.
    pub fn drain(&mut self, mut f: impl FnMut(usize, usize, u64)) {
        for (w, word) in self.words.iter_mut().enumerate() {
            for (lane, &count) in word.to_le_bytes().iter().enumerate() {
                if count != 0 {
                    f(w, lane, u64::from(count));
                }
            }
            *word = 0;
        }
        self.pending = 0;
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
                prop_assert_eq!(v.voting() >> (8 * i) & 1 == 1, c != ABSTAIN);
                prop_assert_eq!(lanes(v.for_class(c)), count(c));
                prop_assert_eq!(lanes(v.for_class(c)), v.for_class(c).count_ones());
            }
        }
    }

    #[test]
    fn lane_counters_drain_what_was_added() {
        let mut c = LaneCounters::default();
        for _ in 0..255 {
            c.add(&[ONES, 1 << 8]);
        }
        assert!(c.full());
        let mut got = Vec::new();
        c.drain(|w, lane, n| got.push((w, lane, n)));
        let mut want: Vec<_> = (0..8).map(|lane| (0, lane, 255)).collect();
        want.push((1, 1, 255));
        assert_eq!(got, want);
        assert!(!c.full());
        c.drain(|_, _, _| panic!("drained twice"));
    }
}
