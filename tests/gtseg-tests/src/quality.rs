//! The weighted fusion's quality benchmark: synthetic crowds with a known truth
//! (`crowd::cases`), consolidated through the service over a local store with each algorithm,
//! beside the anchors that `tests/staple_anchor.py` computes on the same worker masks
//! (SimpleITK's multi-label STAPLE per image and over the batch, and its label voting).
//! `cargo run --release -p gtseg-tests --bin quality` prints the table; the integration tests
//! use the batch helpers.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use gtseg::{Algorithm, Config, LocalStore, Service};
use serde_json::{Value, json};

use crate::crowd::{Case, Kind, Labelled, cases, pixel_accuracy};
use crate::fixtures::{
    Background, LABELS, TAB10, answer_json, decode_indexed, mappings_for, worker_png,
};
use crate::workspace_root;

const OUT: &str = "s3://crowd/out";
const PAYLOAD: &str =
    "s3://crowd/out/consolidated-annotation/consolidation-request/iteration-1/p.json";

/// Writes the batch's consolidation payload (one item per image, the workers' answers inline)
/// under `dir`, a local store.
pub fn write_payload(dir: &Path, batch: &[Labelled]) {
    let items: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let annotations: Vec<Value> = img
                .answers
                .iter()
                .map(|(id, scene)| {
                    let png = worker_png(scene, &TAB10, Background::Transparent, &[]);
                    let answer = answer_json(
                        "crowd-semantic-segmentation",
                        &png,
                        scene.width,
                        scene.height,
                        &mappings_for(scene, &TAB10),
                    );
                    json!({"workerId": id, "annotationData": {"content": answer.to_string()}})
                })
                .collect();
            json!({"datasetObjectId": i.to_string(), "dataObject": {"s3Uri": format!("s3://crowd/in/{i}.png")},
                   "annotations": annotations})
        })
        .collect();
    let path = dir.join(PAYLOAD.strip_prefix("s3://").unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, Value::Array(items).to_string()).unwrap();
}

/// Consolidates the batch written by [`write_payload`] with `algorithm`: the masks' class
/// indices and the response items.
pub async fn consolidate(dir: &Path, algorithm: Algorithm) -> (Vec<Vec<u8>>, Vec<Value>) {
    let config = Config {
        algorithm,
        ..Config::default()
    };
    let event = json!({
        "version": "2018-10-06",
        "labelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/crowd",
        "labelCategories": LABELS,
        "labelAttributeName": "crowd-ref",
        "outputConfig": OUT,
        "payload": {"s3Uri": PAYLOAD}});
    let items = Service::new(LocalStore::new(dir), config)
        .consolidation(&event, SystemTime::now(), None)
        .await
        .unwrap();
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect();
    let masks = items
        .iter()
        .map(|item| {
            let uri = item["consolidatedAnnotation"]["content"]["crowd-ref"]
                .as_str()
                .unwrap();
            let bytes = std::fs::read(dir.join(uri.strip_prefix("s3://").unwrap())).unwrap();
            decode_indexed(&bytes).2
        })
        .collect();
    (masks, items)
}

/// Images a batch, as in the STAPLE comparison.
pub const IMAGES: usize = 10;
/// Points the weighted fusion is meant to trail the best anchor by at most, and the majority
/// on any seed.
pub const SLACK: f64 = 0.05;

/// One batch, consolidated every way.
struct Run {
    case: usize,
    batch: Vec<Labelled>,
    majority: Vec<Vec<u8>>,
    weighted: Vec<Vec<u8>>,
    /// Each image's reported confidence, majority's and weighted's.
    confidence: [Vec<f64>; 2],
}

/// Writes the batch's worker masks for `staple_anchor.py`.
pub fn dump(dir: &Path, batch: &[Labelled]) {
    std::fs::create_dir_all(dir).unwrap();
    let images: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, img)| {
            for (k, (_, scene)) in img.answers.iter().enumerate() {
                std::fs::write(dir.join(format!("{i}-{k}.bin")), &scene.classes).unwrap();
            }
            let workers: Vec<&str> = img.answers.iter().map(|(w, _)| w.as_str()).collect();
            json!({"width": img.truth.width, "height": img.truth.height, "workers": workers})
        })
        .collect();
    std::fs::write(
        dir.join("batch.json"),
        json!({"images": images}).to_string(),
    )
    .unwrap();
}

fn confidences(items: &[Value]) -> Vec<f64> {
    items
        .iter()
        .map(|i| {
            i["consolidatedAnnotation"]["content"]["crowd-ref-metadata"]["internal-color-map"]["0"]
                ["confidence"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// A method's masks of a run, read back from what `staple_anchor.py` wrote (`None` when it
/// wrote none, as for STAPLE over a batch whose workers vary).
fn anchor(dir: &Path, batch: &[Labelled], what: &str) -> Option<Vec<Vec<u8>>> {
    (0..batch.len())
        .map(|i| std::fs::read(dir.join(format!("{i}-{what}.bin"))).ok())
        .collect()
}

fn accuracy(batch: &[Labelled], masks: &[Vec<u8>]) -> f64 {
    100.0
        * pixel_accuracy(
            batch
                .iter()
                .zip(masks)
                .map(|(b, m)| (b.truth.classes.as_slice(), m.as_slice())),
        )
}

/// Spearman's rank correlation (average ranks for ties).
fn spearman(pairs: &[(f64, f64)]) -> f64 {
    let ranks = |key: &dyn Fn(&(f64, f64)) -> f64| {
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by(|&a, &b| key(&pairs[a]).total_cmp(&key(&pairs[b])));
        let mut rank = vec![0.0; pairs.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && key(&pairs[order[j + 1]]) == key(&pairs[order[i]]) {
                j += 1;
            }
            for &k in &order[i..=j] {
                rank[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        rank
    };
    let (x, y) = (ranks(&|p| p.0), ranks(&|p| p.1));
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt().max(1e-12)
}

/// Mean and worst of a column's per-seed figures, as a cell.
fn cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "— (workers vary)".to_owned();
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let worst = values.iter().copied().fold(f64::INFINITY, f64::min);
    format!("{mean:.2} ({worst:.2})")
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The quality table over every crowd of [`cases`] on `seeds`, with everything written under
/// `root`: the Markdown table, and the crowds (with the seed, where per seed) on which the
/// weighted fusion misses the targets (within [`SLACK`] of the best anchor; never more than
/// [`SLACK`] below the majority).
pub async fn anchor_table(root: &Path, seeds: &[u64]) -> (String, Vec<String>) {
    table_of(root, &cases(), seeds).await
}

/// The quality table of `cases` on `seeds` (see [`anchor_table`]).
pub async fn table_of(root: &Path, cases: &[Case], seeds: &[u64]) -> (String, Vec<String>) {
    let mut runs = Vec::new();
    for (c, case) in cases.iter().enumerate() {
        for &seed in seeds {
            let batch = case.crowd.label(IMAGES, case.sizes, seed);
            let dir = root.join(format!("{c}/{seed}"));
            write_payload(&dir, &batch);
            dump(&dir.join("anchors"), &batch);
            let (majority, m_items) = consolidate(&dir, Algorithm::Majority).await;
            let (weighted, w_items) = consolidate(&dir, Algorithm::Weighted).await;
            let confidence = [confidences(&m_items), confidences(&w_items)];
            runs.push((
                seed,
                Run {
                    case: c,
                    batch,
                    majority,
                    weighted,
                    confidence,
                },
            ));
        }
    }
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/staple_anchor.py"))
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "staple_anchor.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut table = String::from(
        "| crowd | kind | majority | weighted | STAPLE per image | STAPLE over the batch | label voting |\n|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    let mut ranked: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    // Per crowd, each algorithm's rank correlation (the images of one job share a crowd).
    let mut within: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (c, case) in cases.iter().enumerate() {
        let from = ranked.each_ref().map(Vec::len);
        let mut cols: [Vec<f64>; 5] = Default::default();
        for (seed, run) in runs.iter().filter(|(_, r)| r.case == c) {
            let dir = root.join(format!("{c}/{seed}/anchors"));
            let m = accuracy(&run.batch, &run.majority);
            let w = accuracy(&run.batch, &run.weighted);
            cols[0].push(m);
            cols[1].push(w);
            cols[2].push(accuracy(
                &run.batch,
                &anchor(&dir, &run.batch, "staple").unwrap(),
            ));
            if let Some(b) = anchor(&dir, &run.batch, "batch") {
                cols[3].push(accuracy(&run.batch, &b));
            }
            cols[4].push(accuracy(
                &run.batch,
                &anchor(&dir, &run.batch, "vote").unwrap(),
            ));
            if w - m < -SLACK {
                failures.push(format!(
                    "{}, seed {seed}: weighted {w:.2} below the majority's {m:.2}",
                    case.name
                ));
            }
            for (a, masks) in [&run.majority, &run.weighted].into_iter().enumerate() {
                for (i, img) in run.batch.iter().enumerate() {
                    let acc = accuracy(std::slice::from_ref(img), std::slice::from_ref(&masks[i]));
                    ranked[a].push((run.confidence[a][i], acc));
                }
            }
        }
        for (a, r) in ranked.iter().enumerate() {
            within[a].push(spearman(&r[from[a]..]));
        }
        let best = [&cols[0], &cols[2], &cols[3]]
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| mean(c))
            .fold(f64::NEG_INFINITY, f64::max);
        if mean(&cols[1]) < best - SLACK {
            failures.push(format!(
                "{}: weighted {:.2} trails the best anchor's {best:.2}",
                case.name,
                mean(&cols[1])
            ));
        }
        let kind = match case.kind {
            Kind::Tuned => "tuned on",
            Kind::Described => "described",
            Kind::HeldOut => "held out",
        };
        let _ = writeln!(
            table,
            "| {} | {kind} | {} | {} | {} | {} | {} |",
            case.name,
            cell(&cols[0]),
            cell(&cols[1]),
            cell(&cols[2]),
            cell(&cols[3]),
            cell(&cols[4])
        );
    }
    let _ = writeln!(
        table,
        "\nRank correlation of confidence with accuracy, over every image: majority {:.2}, weighted {:.2}; \
         within a crowd, mean over crowds: majority {:.2}, weighted {:.2}.",
        spearman(&ranked[0]),
        spearman(&ranked[1]),
        mean(&within[0]),
        mean(&within[1])
    );
    (table, failures)
}
