//! Class masks: what the fusion rules work on. A mask holds one class index per pixel
//! ([`ABSTAIN`] where a worker cast no vote); a row can also be read as its runs of one class.
//! No PNG here: [`crate::mask`] turns PNGs into these and back.

/// The class value of a pixel that casts no vote (an unknown colour).
pub const ABSTAIN: u8 = 255;

/// A mask of class indices (`ABSTAIN` where a worker cast no vote), row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMask {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The class of each pixel, row after row.
    pub data: Vec<u8>,
}

impl ClassMask {
    /// Number of pixels.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// A mask of `width` from its rows (tests).
    #[cfg(test)]
    pub(crate) fn from_rows(width: u32, rows: &[&[u8]]) -> Self {
        Self {
            width,
            height: rows.len() as u32,
            data: rows.concat(),
        }
    }
}

/// A run of one class in a row of classes: it ends before pixel `end`, and begins where the
/// run before it ends (at 0 for the first). A row's runs cover it, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub end: u32,
    pub class: u8,
}

impl Run {
    /// Appends the pixels up to `end` of `class`, onto the last run if it has that class.
    #[inline(always)]
    pub(crate) fn extend(runs: &mut Vec<Run>, end: usize, class: u8) {
        let end = end as u32;
        match runs.last_mut() {
            Some(last) if last.class == class => last.end = end,
            _ => runs.push(Run { end, class }),
        }
    }
}

/// The most runs a row of `width` pixels keeps. Past one run per 8 pixels (noise) runs cannot
/// speed up the vote, so such a row has none: their memory stays about a byte a pixel.
pub(crate) fn max_runs(width: usize) -> usize {
    width / 8 + 1
}

/// Replaces `runs` with the runs of `row`, or with none when it has more than
/// [`max_runs`].
pub(crate) fn runs_of(row: &[u8], runs: &mut Vec<Run>) {
    runs.clear();
    let cap = max_runs(row.len());
    let mut start = 0;
    while start < row.len() {
        if runs.len() > cap {
            runs.clear();
            return;
        }
        let class = row[start];
        let len = row[start..].iter().take_while(|&&c| c == class).count();
        start += len;
        runs.push(Run {
            end: start as u32,
            class,
        });
    }
    // The last run can be the one too many.
    if runs.len() > cap {
        runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_more_runs_than_the_cap_keeps_none_even_when_the_last_run_is_the_extra() {
        // Two pixels allow one run; two runs are one too many, found only at the row's end.
        let mut runs = Vec::new();
        runs_of(&[1, 0], &mut runs);
        assert!(runs.is_empty(), "{runs:?}");
        runs_of(&[1, 1], &mut runs);
        assert_eq!(runs, [Run { end: 2, class: 1 }]);
    }
}
