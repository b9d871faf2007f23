//! Any bytes as a worker PNG: the decoder must return a mask or an error within its limits.
#![no_main]

use gtseg::Rgb;
use gtseg::fuzzing::{ABSTAIN, ColorLookup, decode_class_mask};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lookup = ColorLookup::new([(Rgb(0x2c, 0xa0, 0x2c), 1), (Rgb(0x1f, 0x77, 0xb4), 2), (Rgb(7, 7, 7), 3)]);
    if let Ok(d) = decode_class_mask(data, &lookup, 1 << 14) {
        assert_eq!(d.mask.data.len() as u64, d.mask.pixels());
        assert!(d.mask.data.iter().all(|&c| c <= 3 || c == ABSTAIN));
    }
});
