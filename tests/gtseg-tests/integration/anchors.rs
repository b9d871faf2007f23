//! The quality benchmark's anchor (`tests/staple_anchor.py`, SimpleITK's STAPLE and label
//! voting) checked on batches whose answer is known, so that the benchmark's table can be
//! trusted: workers who all paint the truth give the truth back in every column, and a
//! batch's table has a row for its crowd with every column filled. Then the weighted
//! fusion's targets against the anchors, on every crowd.

use gtseg_tests::crowd::{Behaviour, Case, Kind, SMALL, pool};
use gtseg_tests::harness::require;
use gtseg_tests::quality::{consolidate, dump, write_payload};
use gtseg_tests::{assert_succeeded, temp_dir, workspace_root};

#[tokio::test(flavor = "multi_thread")]
async fn the_anchors_give_back_a_truth_that_every_worker_painted() {
    let test = "the_anchors_give_back_a_truth_that_every_worker_painted";
    if !require("python3", &["-c", "import SimpleITK"], test) {
        return;
    }
    // Three workers who trace the truth exactly but for their outlines' jitter, and three
    // copies of one of them: STAPLE, the vote and both fusions must all give that copy back.
    let crowd = pool(&[("a", Behaviour::Honest { omit: 0.0 })], 1);
    let mut batch = crowd.label(3, SMALL, 9);
    for img in &mut batch {
        let only = img.answers[0].1.clone();
        img.answers = ["a", "b", "c"]
            .iter()
            .map(|w| ((*w).to_owned(), only.clone()))
            .collect();
    }
    let dir = temp_dir("anchors-copies");
    write_payload(&dir, &batch);
    let anchors = dir.join("anchors");
    dump(&anchors, &batch);
    let out = std::process::Command::new("python3")
        .arg(workspace_root().join("tests/staple_anchor.py"))
        .arg(&anchors)
        .output()
        .unwrap();
    assert_succeeded(&out);
    let (majority, _) = consolidate(&dir, gtseg::Algorithm::Majority).await;
    let (weighted, _) = consolidate(&dir, gtseg::Algorithm::Weighted).await;
    for (i, img) in batch.iter().enumerate() {
        let copy = &img.answers[0].1.classes;
        for what in ["staple", "batch", "vote"] {
            let got = std::fs::read(anchors.join(format!("{i}-{what}.bin"))).unwrap();
            assert!(
                &got == copy,
                "{what} differs from the workers' one mask on image {i}"
            );
        }
        assert!(&majority[i] == copy && &weighted[i] == copy, "image {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quality_table_fills_every_column_of_a_crowd() {
    let test = "the_quality_table_fills_every_column_of_a_crowd";
    if !require("python3", &["-c", "import SimpleITK"], test) {
        return;
    }
    let case = Case {
        name: "five honest workers",
        crowd: pool(
            &[
                ("a", Behaviour::Honest { omit: 0.1 }),
                ("b", Behaviour::Honest { omit: 0.1 }),
                ("c", Behaviour::Honest { omit: 0.1 }),
            ],
            3,
        ),
        sizes: SMALL,
        kind: Kind::Described,
    };
    let root = temp_dir("anchors-table");
    let (table, _) = gtseg_tests::quality::table_of(&root, &[case], &[1]).await;
    let row = table
        .lines()
        .find(|l| l.starts_with("| five honest workers"))
        .unwrap();
    let cells: Vec<&str> = row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells.len(), 7, "{row}");
    for cell in &cells[2..] {
        let mean: f64 = cell
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{row}"));
        assert!((80.0..=100.0).contains(&mean), "{row}");
    }
}

/// The weighted fusion's targets on every crowd of the benchmark (the tuned, the described
/// and the held-out ones), seeds 1 to 5: within 0.05 points of the best of the majority,
/// STAPLE per image and STAPLE over the batch on each crowd, and never 0.05 below the
/// majority on any seed.
#[tokio::test(flavor = "multi_thread")]
async fn weighted_meets_its_targets_against_both_anchors_on_every_crowd() {
    let test = "weighted_meets_its_targets_against_both_anchors_on_every_crowd";
    if !require("python3", &["-c", "import SimpleITK"], test) {
        return;
    }
    let root = temp_dir("anchors-targets");
    let (table, misses) = gtseg_tests::quality::anchor_table(&root, &[1, 2, 3, 4, 5]).await;
    assert!(
        misses.is_empty(),
        "{table}\nmissed:\n- {}",
        misses.join("\n- ")
    );
}
