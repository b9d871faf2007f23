//! Weighted fusion against the majority vote on synthetic crowds with a known truth, through
//! the service over a local store, on several seeds each. Each test prints its row of the
//! table in `docs/algorithm.md` (run with `--nocapture`): mean accuracies, mean difference, worst seed.

use gtseg::Algorithm;
use gtseg_tests::crowd::{Behaviour, Crowd, SLOPPY, pixel_accuracy, pool, spammer_pool};
use gtseg_tests::quality::{consolidate, write_payload};
use gtseg_tests::temp_dir;
use serde_json::Value;

const SIZE: (u32, u32) = (192, 128);

/// Majority's and weighted's pixel accuracy on one batch of `crowd`, and weighted's response
/// items.
async fn compare(
    name: &str,
    crowd: &Crowd,
    (images, sizes): (usize, &[(u32, u32)]),
    seed: u64,
) -> (f64, f64, Vec<Value>) {
    let batch = crowd.label(images, sizes, seed);
    let dir = temp_dir(&format!("crowd-{name}-{seed}"));
    write_payload(&dir, &batch);
    let accuracy = |masks: &[Vec<u8>]| {
        assert_eq!(masks.len(), batch.len(), "every image is answered");
        pixel_accuracy(
            batch
                .iter()
                .zip(masks)
                .map(|(b, m)| (b.truth.classes.as_slice(), m.as_slice())),
        )
    };
    let (majority, _) = consolidate(&dir, Algorithm::Majority).await;
    let (weighted, items) = consolidate(&dir, Algorithm::Weighted).await;
    (accuracy(&majority), accuracy(&weighted), items)
}

/// The seeds every crowd is drawn with.
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// Runs `crowd` on every seed and prints one row of that table: majority, weighted
/// and their difference (in points), the worst seed's included. Returns the worst difference
/// and the last seed's response items.
async fn table_row(name: &str, crowd: &Crowd, batch: (usize, &[(u32, u32)])) -> (f64, Vec<Value>) {
    let (mut worst, mut sum_m, mut sum_w, mut items) = (f64::INFINITY, 0.0, 0.0, Vec::new());
    for seed in SEEDS {
        let (m, w, i) = compare(name, crowd, batch, seed).await;
        worst = worst.min((w - m) * 100.0);
        (sum_m, sum_w, items) = (sum_m + m, sum_w + w, i);
    }
    let n = SEEDS.len() as f64;
    println!(
        "| {name} | {:.2} % | {:.2} % | {:+.2} | {:+.2} |",
        sum_m / n * 100.0,
        sum_w / n * 100.0,
        (sum_w - sum_m) / n * 100.0,
        worst
    );
    (worst, items)
}

/// Each worker's reported weight in the first image it labelled.
fn weight(items: &[Value], worker: &str) -> f64 {
    items
        .iter()
        .flat_map(|i| {
            i["consolidatedAnnotation"]["content"]["crowd-ref-metadata"]["consolidation"]["workers"]
                .as_array()
                .unwrap()
        })
        .find(|w| w["worker-id"] == worker)
        .and_then(|w| w["weight"].as_f64())
        .unwrap_or_else(|| panic!("{worker} has a weight"))
}

/// One batch: 30 images of 192×128.
const BATCH: (usize, &[(u32, u32)]) = (30, &[SIZE]);

#[tokio::test]
async fn weighted_gains_4_points_when_two_of_five_label_only_the_largest_class() {
    let crowd = pool(
        &[
            ("sloppy-1", SLOPPY),
            ("sloppy-2", SLOPPY),
            ("sloppy-3", SLOPPY),
            ("largest-only-1", Behaviour::OnlyLargest),
            ("largest-only-2", Behaviour::OnlyLargest),
        ],
        5,
    );
    let (worst, items) = table_row(
        "under-labelling (2 of 5 paint only the largest class)",
        &crowd,
        BATCH,
    )
    .await;
    assert!(
        worst >= 4.0,
        "weighted gains {worst:.2} points on its worst seed"
    );
    // They are trusted less than every other worker, and the report says so.
    for s in ["largest-only-1", "largest-only-2"] {
        for h in ["sloppy-1", "sloppy-2", "sloppy-3"] {
            assert!(weight(&items, s) < weight(&items, h), "{s} vs {h}");
        }
    }
    let report =
        &items[0]["consolidatedAnnotation"]["content"]["crowd-ref-metadata"]["consolidation"];
    assert_eq!(report["algorithm"], "weighted");
}

#[tokio::test]
async fn weighted_never_loses_more_than_a_tenth_of_a_point_to_a_spammer() {
    let (worst, items) = table_row("spammer (1 of 5, 3 per image)", &spammer_pool(), BATCH).await;
    assert!(worst >= -0.1, "weighted loses {worst:.2} points on a seed");
    for h in ["a", "b", "c", "d"] {
        assert!(
            weight(&items, "spammer") < weight(&items, h),
            "spammer vs {h}"
        );
    }
}

#[tokio::test]
async fn weighted_never_loses_more_than_five_hundredths_of_a_point_with_honest_workers() {
    let crowd = pool(
        &[
            ("a", SLOPPY),
            ("b", SLOPPY),
            ("c", SLOPPY),
            ("d", SLOPPY),
            ("e", SLOPPY),
        ],
        3,
    );
    let (worst, _) = table_row("honest only (5, 3 per image)", &crowd, BATCH).await;
    assert!(worst >= -0.05, "weighted loses {worst:.2} points on a seed");
}

#[tokio::test]
async fn weighted_never_loses_more_than_a_tenth_of_a_point_to_a_confuser() {
    let crowd = pool(
        &[
            ("a", SLOPPY),
            ("b", SLOPPY),
            ("c", SLOPPY),
            ("d", SLOPPY),
            ("car-as-person", Behaviour::Confuses { from: 1, to: 3 }),
        ],
        3,
    );
    let (worst, _) = table_row(
        "one confuses car with person (1 of 5, 3 per image)",
        &crowd,
        BATCH,
    )
    .await;
    assert!(worst >= -0.1, "weighted loses {worst:.2} points on a seed");
}

#[tokio::test]
async fn weighted_never_loses_more_than_a_tenth_of_a_point_to_an_adversary_among_three() {
    let crowd = pool(
        &[
            ("a", SLOPPY),
            ("b", SLOPPY),
            ("adversary", Behaviour::Adversarial),
        ],
        3,
    );
    let (worst, _) = table_row("adversary (1 of 3, all 3 per image)", &crowd, BATCH).await;
    assert!(worst >= -0.1, "weighted loses {worst:.2} points on a seed");
}

#[tokio::test]
async fn weighted_never_loses_more_than_a_tenth_of_a_point_on_mixed_sizes() {
    let sizes = [(192, 128), (96, 64), (320, 240)];
    let (worst, _) = table_row(
        "spammer, images of 3 sizes in one batch",
        &spammer_pool(),
        (30, &sizes),
    )
    .await;
    assert!(worst >= -0.1, "weighted loses {worst:.2} points on a seed");
}
