//! Any bytes as a worker's answer JSON, all the way to a class mask, both votes (majority and
//! weighted) and an encoded mask: exclusion errors are fine, panics and unbounded allocations are not.
#![no_main]

use gtseg::fuzzing::{
    ABSTAIN, Census, Fusion, Majority, assign_palette, decode_answer_json, encode_palette_png,
};
use gtseg::{ClassList, CrowdModel, ImageVotes, Rgb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(classes) = ClassList::new(["car", "road", "person", "building"]) else { return };
    // 256 kP bounds the work per input (as MAX_PIXELS does in production) to keep runs fast.
    if let Ok((mask, unmapped)) = decode_answer_json(data, &classes, 1 << 18) {
        assert_eq!(mask.data.len() as u64, mask.pixels());
        assert_eq!(mask.data.iter().filter(|&&c| c == ABSTAIN).count() as u64, unmapped);
        assert!(mask.data.iter().all(|&c| c == ABSTAIN || usize::from(c) < classes.num_classes()));
        let fused = Majority.fuse(&[&mask, &mask]);
        // The weighted fusion fitted to this answer and a copy of it.
        let patterns = Census::of_masks(&[&mask, &mask]).patterns();
        let model = CrowdModel::fit(
            classes.num_classes(),
            &[ImageVotes { workers: vec!["a", "b"], patterns: &patterns }],
        );
        let weighted = model.fusion(&["a", "b"]).fuse(&[&mask, &mask]);
        assert!(weighted.classes.iter().all(|&c| usize::from(c) < classes.num_classes()));
        assert!(weighted.winning_votes.iter().all(|&v| v <= 2));
        let palette = assign_palette(&vec![None::<Rgb>; classes.num_classes()]);
        assert!(encode_palette_png(fused.width, fused.height, &fused.classes, &palette).is_ok());
    }
});
