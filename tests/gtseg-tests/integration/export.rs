//! `gtseg export`: every format read back by its ecosystem's own reader
//! (`tests/export_readers.py`: Datumaro for `voc`, pycocotools for `coco`, Hugging Face
//! `datasets` for `hf`), pixel for pixel against the consolidated masks remapped through
//! `labels.json`; a chain of two jobs with different label orders and a new class; the
//! verification filter; splits that do not move; hostile names; refusals; and S3 through moto
//! and the fault proxy.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output};

use gtseg_tests::crowd::{Behaviour, Crowd, pool};
use gtseg_tests::finished::{
    BUCKET, answers_named, answers_of, job_output, local, manifest, write, write_job,
};
use gtseg_tests::harness::{FaultProxy, Moto, aws_env, require};
use gtseg_tests::{Scratch, assert_succeeded, files_under, run_gtseg, temp_dir, workspace_root};
use serde_json::{Value, json};

const ATTR_A: &str = "street-ref";
const ATTR_B: &str = "street-adjust-ref";
const OUT_A: &str = "s3://jobs/output/street-run";
const OUT_B: &str = "s3://jobs/output/street-adjust-run";
const DATE: &str = "2026-11-30T10:00:00Z";
/// Job A's labels, in its order; job B's: another order, `tree` new, no `building`.
const LABELS_A: [&str; 4] = ["car", "road", "person", "building"];
const LABELS_B: [&str; 4] = ["tree", "road", "car", "person"];
/// What job B's workers call the fixtures' classes 1..=4 (they paint buildings as trees).
const NAMES_B: [&str; 4] = ["car", "road", "person", "tree"];
const IMAGES: usize = 10;
/// Job B labels images 0..6, and fails 6 and 7 (no worker answered): those keep job A's.
const B_LABELLED: usize = 6;
const B_LINES: usize = 8;
const SHARE: f64 = 0.7;

fn crowd() -> Crowd {
    let (honest, sloppy) = (
        Behaviour::Honest { omit: 0.2 },
        Behaviour::Sloppy { error: 0.05 },
    );
    pool(
        &[
            ("w1", honest),
            ("w2", sloppy),
            ("w3", Behaviour::Honest { omit: 0.4 }),
        ],
        3,
    )
}

fn label_config(dir: &Path, job: &str, labels: &[&str]) -> String {
    let uri = format!("s3://{BUCKET}/config/{job}.json");
    let config = json!({"document-version": "2018-11-28",
        "labels": labels.iter().map(|l| json!({"label": l})).collect::<Vec<_>>()});
    write(dir, &uri, config.to_string().as_bytes());
    uri
}

fn consolidate(dir: &Path, job: &str, attr: &str, out: &str, config: &str) {
    let s = dir.to_str().unwrap();
    assert_succeeded(&run_gtseg(
        &[
            "job",
            "consolidate",
            "--store",
            s,
            "--job-output",
            &job_output(job),
            "--manifest",
            &manifest(job),
            "--label-attribute-name",
            attr,
            "--output",
            out,
            "--label-config",
            config,
            "--creation-date",
            DATE,
        ],
        &[],
    ));
}

/// The chain: job A labels ten images (PNG sources of two sizes); job B, with another label
/// order and a new class, labels the first six again and fails two more.
fn chain(tag: &str) -> Scratch {
    let dir = temp_dir(tag);
    let images = crowd().label(IMAGES, &[(96, 64), (80, 60)], 7);
    write_job(&dir, "street", &answers_of(&images));
    for (i, img) in images.iter().enumerate() {
        let t = &img.truth;
        let photo = image::RgbImage::from_fn(t.width, t.height, |x, y| {
            let k = t.classes[(y * t.width + x) as usize];
            image::Rgb([30 * k, (x * 2) as u8, (y * 3) as u8])
        });
        let path = local(&dir, &format!("s3://{BUCKET}/images/{i}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        photo.save(path).unwrap();
    }
    let config = label_config(&dir, "street", &LABELS_A);
    consolidate(&dir, "street", ATTR_A, OUT_A, &config);
    let again: Vec<Vec<(String, Value)>> = (0..B_LINES)
        .map(|i| {
            if i < B_LABELLED {
                answers_named(std::slice::from_ref(&images[i]), &NAMES_B).remove(0)
            } else {
                Vec::new()
            }
        })
        .collect();
    write_job(&dir, "street-adjust", &again);
    let config = label_config(&dir, "street-adjust", &LABELS_B);
    consolidate(&dir, "street-adjust", ATTR_B, OUT_B, &config);
    dir
}

fn chain_args<'a>(dir: &'a Path, format: &'a str, out: &'a Path) -> Vec<&'a str> {
    vec![
        "export",
        "--store",
        dir.to_str().unwrap(),
        "--manifest",
        "s3://jobs/output/street-run/manifests/output/output.manifest",
        "--label-attribute-name",
        ATTR_A,
        "--manifest",
        "s3://jobs/output/street-adjust-run/manifests/output/output.manifest",
        "--label-attribute-name",
        ATTR_B,
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ]
}

/// An 8-bit single-channel PNG's size and samples (palette indices or grey levels).
fn decode8(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let (w, h) = (r.info().width, r.info().height);
    assert_eq!(r.info().bit_depth, png::BitDepth::Eight);
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut buf).unwrap();
    (w, h, buf)
}

/// What the export of image `i` must hold, worked out from the jobs' outputs alone: the
/// consolidated mask of the newest job that labelled it, each pixel remapped by class name
/// through `labels.json`, and 255 where the disagreement map says fewer than `share` of the
/// votes agreed (the map's pixel is round(255 × (1 − share))).
fn expected(
    dir: &Path,
    i: usize,
    table: &HashMap<String, u8>,
    share: Option<f64>,
) -> (u32, u32, Vec<u8>) {
    let (out, attr) = if i < B_LABELLED {
        (OUT_B, ATTR_B)
    } else {
        (OUT_A, ATTR_A)
    };
    let text = std::fs::read_to_string(local(
        dir,
        &format!("{out}/manifests/output/output.manifest"),
    ))
    .unwrap();
    let line: Value = serde_json::from_str(text.lines().nth(i).unwrap()).unwrap();
    assert_eq!(line["source-ref"], format!("s3://{BUCKET}/images/{i}.png"));
    let meta = &line[format!("{attr}-metadata")];
    let (w, h, mask) = decode8(&std::fs::read(local(dir, line[attr].as_str().unwrap())).unwrap());
    let mut to = [255u8; 256];
    for (k, c) in meta["internal-color-map"].as_object().unwrap() {
        to[k.parse::<usize>().unwrap()] = table[c["class-name"].as_str().unwrap()];
    }
    let mut ids: Vec<u8> = mask.iter().map(|&k| to[usize::from(k)]).collect();
    if let Some(share) = share {
        let map_uri = meta["consolidation"]["disagreement-ref"].as_str().unwrap();
        let (mw, mh, map) = decode8(&std::fs::read(local(dir, map_uri)).unwrap());
        assert_eq!((mw, mh), (w, h));
        let above = (255.0 * (1.0 - share)).round() as u8;
        for (id, &d) in ids.iter_mut().zip(&map) {
            if d > above {
                *id = 255;
            }
        }
    }
    (w, h, ids)
}

/// The class table of an export, by name, checked against what the jobs ask: `BACKGROUND`,
/// job A's classes in its order, then job B's new one.
fn table(out: &Path) -> HashMap<String, u8> {
    let labels: Vec<Value> =
        serde_json::from_slice(&std::fs::read(out.join("labels.json")).unwrap()).unwrap();
    let names: Vec<&str> = labels.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["BACKGROUND", "car", "road", "person", "building", "tree"]
    );
    let colors: std::collections::HashSet<&str> = labels
        .iter()
        .map(|l| l["color"].as_str().unwrap())
        .collect();
    assert_eq!(colors.len(), labels.len(), "every class has its own colour");
    labels
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["id"].as_u64().unwrap() as u8,
            )
        })
        .collect()
}

/// Runs the reader of `format` on an export; its dump's index and class maps by id.
fn read_back(format: &str, out: &Path) -> BTreeMap<String, (Value, Vec<u8>)> {
    let dump = temp_dir(&format!("export-dump-{format}"));
    let hf_home = temp_dir("export-hf-home");
    let ran = Command::new("python3")
        .arg(workspace_root().join("tests/export_readers.py"))
        .args([format, out.to_str().unwrap(), dump.to_str().unwrap()])
        .env("HF_HOME", &*hf_home)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_succeeded(&ran);
    let index: BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(dump.join("index.json")).unwrap()).unwrap();
    index
        .into_iter()
        .map(|(id, entry)| {
            let map = std::fs::read(dump.join(format!("{id}.bin"))).unwrap();
            (id, (entry, map))
        })
        .collect()
}

fn readers_present(test: &str) -> bool {
    require(
        "python3",
        &["-c", "import datumaro, pycocotools, datasets"],
        test,
    )
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect()
}

fn report(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("export-report.json")).unwrap()).unwrap()
}

#[test]
fn every_format_reads_back_as_the_consolidated_masks() {
    let test = "every_format_reads_back_as_the_consolidated_masks";
    if !readers_present(test) {
        return;
    }
    let dir = chain("export-chain");
    for format in ["voc", "coco", "hf"] {
        let out = temp_dir(&format!("export-{format}"));
        let share = SHARE.to_string();
        let mut args = chain_args(&dir, format, &out);
        args.extend(["--ignore-below", &share, "--split", "train=0.6,val=0.4"]);
        let ran = run_gtseg(&args, &[]);
        assert_succeeded(&ran);
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert!(
            stderr.contains("tree") && stderr.contains("train pixels"),
            "{stderr}"
        );
        let table = table(&out);
        let read = read_back(format, &out);
        assert_eq!(read.len(), IMAGES, "{format}: every image, once");
        let mut splits = BTreeMap::<String, usize>::new();
        let mut ignored = 0;
        for i in 0..IMAGES {
            let (entry, got) = &read[&i.to_string()];
            let (w, h, mut want) = expected(&dir, i, &table, Some(SHARE));
            ignored += want.iter().filter(|&&k| k == 255).count();
            if format == "coco" {
                // COCO has no ignore value: background and ignored pixels are in no annotation.
                want.iter_mut().filter(|k| **k == 255).for_each(|k| *k = 0);
            }
            assert_eq!(
                (entry["width"].as_u64(), entry["height"].as_u64()),
                (Some(w.into()), Some(h.into()))
            );
            assert_eq!(
                entry["source"],
                json!([w, h]),
                "{format}: the source image, unresized"
            );
            assert!(
                got == &want,
                "{format}: image {i} differs from its consolidated mask"
            );
            *splits
                .entry(entry["split"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert!(ignored > 0, "some pixels fall below --ignore-below");
        assert_eq!(
            splits.keys().collect::<Vec<_>>(),
            ["train", "val"],
            "{format}: {splits:?}"
        );
        let r = report(&out);
        assert_eq!(r["counts"]["exported"], IMAGES);
        assert_eq!(r["counts"]["older-label-kept"], B_LINES - B_LABELLED);
        assert_eq!(r["counts"]["failure-lines"], B_LINES - B_LABELLED);
        assert_eq!(r["counts"]["ignored-pixels"], ignored);
        let tree = r["class-balance"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "tree")
            .unwrap();
        let tree_images: u64 = tree["splits"]
            .as_object()
            .unwrap()
            .values()
            .map(|b| b["images"].as_u64().unwrap())
            .sum();
        assert_eq!(
            tree_images, B_LABELLED as u64,
            "job B's buildings are trees"
        );

        // The same inputs again: the same bytes.
        let again = temp_dir(&format!("export-{format}-again"));
        let mut args = chain_args(&dir, format, &again);
        args.extend(["--ignore-below", &share, "--split", "train=0.6,val=0.4"]);
        assert_succeeded(&run_gtseg(&args, &[]));
        assert!(
            snapshot(&out) == snapshot(&again),
            "{format}: two exports differ"
        );
    }
}

#[test]
fn the_verification_job_filters_what_is_exported() {
    let dir = chain("export-verify");
    // A verification job's output: even images accepted, odd ones rejected; 8 and 9 unseen;
    // image 2's line failed.
    let mut text = String::new();
    for i in 0..8 {
        let category = if i % 2 == 0 { "Correct" } else { "Incorrect" };
        let mut meta = json!({"class-name": category, "type": "groundtruth/label-verification"});
        if i == 2 {
            meta = json!({"failure-reason": "ClientError: timed out"});
        }
        text.push_str(
            &json!({"source-ref": format!("s3://{BUCKET}/images/{i}.png"),
            "verify": 0, "verify-metadata": meta})
            .to_string(),
        );
        text.push('\n');
    }
    write(
        &dir,
        "s3://jobs/output/verify/manifests/output/output.manifest",
        text.as_bytes(),
    );
    let out = temp_dir("export-verify-out");
    let mut args = chain_args(&dir, "voc", &out);
    args.extend([
        "--verification-manifest",
        "s3://jobs/output/verify/manifests/output/output.manifest",
        "--verification-attribute-name",
        "verify",
        "--keep-category",
        "Correct",
    ]);
    assert_succeeded(&run_gtseg(&args, &[]));
    let listed = std::fs::read_to_string(out.join("ImageSets/Segmentation/train.txt")).unwrap();
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["0", "4", "6"]);
    let r = report(&out);
    let reasons: BTreeMap<String, String> = r["left-out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source-ref"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 7);
    let why = |i: usize| &reasons[&format!("s3://{BUCKET}/images/{i}.png")];
    assert!(
        why(1).contains("rejected") && why(1).contains("Incorrect"),
        "{}",
        why(1)
    );
    for i in [2, 8, 9] {
        assert!(why(i).contains("no verdict"), "{}", why(i));
    }
    assert_eq!(files_under(&out.join("SegmentationClass")).len(), 3);
}

#[test]
fn splits_do_not_move_when_images_are_added() {
    let dir = chain("export-splits");
    let full = local(
        &dir,
        "s3://jobs/output/street-run/manifests/output/output.manifest",
    );
    let text = std::fs::read_to_string(&full).unwrap();
    let first: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    write(&dir, "s3://jobs/first-five.manifest", first.as_bytes());
    let splits_of = |manifest: &str| -> BTreeMap<String, String> {
        let out = temp_dir("export-splits-out");
        let s = dir.to_str().unwrap();
        let args = [
            "export",
            "--store",
            s,
            "--manifest",
            manifest,
            "--label-attribute-name",
            ATTR_A,
            "--format",
            "voc",
            "--out",
            out.to_str().unwrap(),
            "--split",
            "train=0.5,val=0.5",
        ];
        assert_succeeded(&run_gtseg(&args, &[]));
        let mut by_id = BTreeMap::new();
        for f in files_under(&out.join("ImageSets/Segmentation")) {
            let split = f.file_stem().unwrap().to_string_lossy().into_owned();
            for id in std::fs::read_to_string(&f).unwrap().lines() {
                by_id.insert(id.to_owned(), split.clone());
            }
        }
        by_id
    };
    let before = splits_of("s3://jobs/first-five.manifest");
    let after = splits_of("s3://jobs/output/street-run/manifests/output/output.manifest");
    assert_eq!((before.len(), after.len()), (5, IMAGES));
    for (id, split) in &before {
        assert_eq!(&after[id], split, "image {id} moved");
    }
    assert!(after.values().any(|s| s == "train") && after.values().any(|s| s == "val"));
}

#[test]
fn hostile_names_stay_inside_the_output() {
    let dir = chain("export-hostile");
    let text = std::fs::read_to_string(local(
        &dir,
        "s3://jobs/output/street-run/manifests/output/output.manifest",
    ))
    .unwrap();
    let hostile = [
        "images/a/same.png",
        "images/b/same.png",
        "images/\u{1b}[31mred\u{7} name .png",
        "images/..%2F..%2Fescape.png",
        "images/.hidden.png",
        "images/stra\u{df}e \u{1F697}.png",
        "images/../../../outside.png",
        "images/no-extension",
    ];
    let mut lines = String::new();
    for (i, (line, name)) in text.lines().zip(hostile).enumerate() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let uri = format!("s3://{BUCKET}/{name}");
        // The source image under its hostile name (the store refuses `..` keys: left out).
        if !name.contains("/../") {
            let bytes =
                std::fs::read(local(&dir, &format!("s3://{BUCKET}/images/{i}.png"))).unwrap();
            write(&dir, &uri, &bytes);
        }
        v["source-ref"] = json!(uri);
        lines.push_str(&format!("{v}\n"));
    }
    write(&dir, "s3://jobs/hostile.manifest", lines.as_bytes());
    let parent = temp_dir("export-hostile-out");
    for format in ["voc", "coco", "hf"] {
        let out = parent.join(format);
        let args = [
            "export",
            "--store",
            dir.to_str().unwrap(),
            "--manifest",
            "s3://jobs/hostile.manifest",
            "--label-attribute-name",
            ATTR_A,
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ];
        let ran = run_gtseg(&args, &[]);
        assert_succeeded(&ran);
        let r = report(&out);
        assert_eq!(r["counts"]["exported"], hostile.len() - 1, "{format}");
        let left = &r["left-out"][0];
        assert_eq!(
            left["source-ref"],
            format!("s3://{BUCKET}/images/../../../outside.png")
        );
        assert!(
            left["fault"].is_null(),
            "a refused key is the data's, not a fault"
        );
        for f in files_under(&out) {
            let rel = f.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
            assert!(
                rel.chars().all(|c| c.is_ascii_graphic()),
                "{format}: {rel:?}"
            );
        }
    }
    // Nothing was written beside the three exports, in the store or above.
    let names: Vec<_> = std::fs::read_dir(&*parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(
        !dir.join("outside.png").exists() && !dir.parent().unwrap().join("outside.png").exists()
    );
    let ids: Vec<String> =
        std::fs::read_to_string(parent.join("voc/ImageSets/Segmentation/train.txt"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
    assert_eq!(ids.len(), 7);
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        7,
        "{ids:?}"
    );
    assert!(
        ids[0].starts_with("same-") && ids[1].starts_with("same-"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"hidden".to_owned()) && ids.contains(&"no-extension".to_owned()),
        "{ids:?}"
    );
    if readers_present("hostile_names_stay_inside_the_output") {
        for format in ["voc", "coco", "hf"] {
            assert_eq!(read_back(format, &parent.join(format)).len(), 7, "{format}");
        }
    }
}

#[test]
fn refusals_say_what_to_do_and_write_nothing() {
    let dir = chain("export-refusals");
    let s = dir.to_str().unwrap();
    let gt_style = "s3://jobs/gt-style.manifest";
    // Ground Truth's own output manifest keeps only its keys: no disagreement-ref.
    let text = std::fs::read_to_string(local(
        &dir,
        "s3://jobs/output/street-run/manifests/output/output.manifest",
    ))
    .unwrap();
    let mut stripped = String::new();
    for line in text.lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        let meta = v[format!("{ATTR_A}-metadata")].as_object_mut().unwrap();
        meta.retain(|k, _| {
            [
                "internal-color-map",
                "type",
                "human-annotated",
                "creation-date",
                "job-name",
            ]
            .contains(&k.as_str())
        });
        stripped.push_str(&format!("{v}\n"));
    }
    write(&dir, gt_style, stripped.as_bytes());
    let run = |manifest: &str, attr: &str, out: &Path, extra: &[&str]| -> Output {
        let mut args = vec![
            "export",
            "--store",
            s,
            "--manifest",
            manifest,
            "--label-attribute-name",
            attr,
            "--format",
            "voc",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_gtseg(&args, &[])
    };
    let refused = |ran: &Output, needle: &str| {
        let err = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err}");
    };
    let parent = temp_dir("export-refusals-out");
    let out = parent.join("out");

    // The maps are found beside the masks, where the consolidation put them.
    let ran = run(gt_style, ATTR_A, &out, &["--ignore-below", "0.7"]);
    assert_succeeded(&ran);
    assert!(report(&out)["counts"]["ignored-pixels"].as_u64().unwrap() > 0);
    // An output folder that holds anything is refused.
    refused(&run(gt_style, ATTR_A, &out, &[]), "is not empty");
    // What a kill in the middle leaves: named as such.
    let half = parent.join("half");
    std::fs::create_dir_all(half.join("data")).unwrap();
    refused(&run(gt_style, ATTR_A, &half, &[]), "did not finish");
    std::fs::remove_dir_all(&half).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    // No map at all: refused before anything is written.
    std::fs::remove_dir_all(local(
        &dir,
        &format!("{OUT_A}/annotations/consolidated-annotation/disagreement"),
    ))
    .unwrap();
    refused(
        &run(gt_style, ATTR_A, &out, &["--ignore-below", "0.7"]),
        "disagreement maps",
    );
    assert!(files_under(&parent).is_empty());
    // A typo in the attribute.
    refused(
        &run(gt_style, "street-reff", &out, &[]),
        "carries the label attribute \"street-reff\"",
    );
    refused(
        &run(gt_style, ATTR_A, &out, &["--split", "train=0.8,val=0.3"]),
        "--split",
    );
    refused(
        &run(gt_style, ATTR_A, &out, &["--ignore-below", "70"]),
        "from 0 to 1",
    );
    assert!(files_under(&parent).is_empty());

    // A mask whose size is not its image's is left out, and nothing is resized; a machine
    // label is exported and flagged; --min-confidence leaves out whole images.
    let mut edited = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        if i == 1 {
            v["source-ref"] = json!(format!("s3://{BUCKET}/images/0-copy.png"));
            let other = std::fs::read(local(&dir, &format!("s3://{BUCKET}/images/1.png"))).unwrap();
            let first = std::fs::read(local(&dir, &format!("s3://{BUCKET}/images/0.png"))).unwrap();
            assert_ne!(
                image::load_from_memory(&other).unwrap().width(),
                image::load_from_memory(&first).unwrap().width()
            );
            write(&dir, &format!("s3://{BUCKET}/images/0-copy.png"), &first);
        }
        if i == 2 {
            v[format!("{ATTR_A}-metadata")]["human-annotated"] = json!("no");
        }
        edited.push_str(&format!("{v}\n"));
    }
    write(&dir, "s3://jobs/edited.manifest", edited.as_bytes());
    let ran = run("s3://jobs/edited.manifest", ATTR_A, &out, &[]);
    assert_succeeded(&ran);
    let r = report(&out);
    assert_eq!(r["counts"]["exported"], IMAGES - 1);
    assert!(
        r["left-out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("nothing is ever resized"),
        "{r}"
    );
    assert_eq!(
        r["machine-labelled"],
        json!([format!("s3://{BUCKET}/images/2.png")])
    );
    let confidences: Vec<f64> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v[format!("{ATTR_A}-metadata")]["internal-color-map"]["0"]["confidence"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let mut sorted = confidences.clone();
    sorted.sort_by(f64::total_cmp);
    let min = sorted[IMAGES / 2];
    let out2 = parent.join("confident");
    assert_succeeded(&run(
        gt_style,
        ATTR_A,
        &out2,
        &["--min-confidence", &min.to_string()],
    ));
    let kept = confidences.iter().filter(|&&c| c >= min).count();
    assert_eq!(report(&out2)["counts"]["exported"], kept);
    assert!(kept < IMAGES);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_from_s3_is_the_local_one_and_a_fault_is_never_silent() {
    let test = "an_export_from_s3_is_the_local_one_and_a_fault_is_never_silent";
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    let dir = chain("export-s3");
    moto.upload_store(&dir).await;
    let outs = temp_dir("export-s3-out");
    let (local_out, s3_out, faulty) = (outs.join("local"), outs.join("s3"), outs.join("faulty"));
    assert_succeeded(&run_gtseg(&chain_args(&dir, "coco", &local_out), &[]));
    let mut args: Vec<&str> = chain_args(&dir, "coco", &s3_out);
    args.drain(1..3); // no --store: S3
    let ran = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env = aws_env(&moto.endpoint);
        move || run_gtseg(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    })
    .await
    .unwrap();
    assert_succeeded(&ran);
    assert!(
        snapshot(&local_out) == snapshot(&s3_out),
        "S3 and a local folder give other bytes"
    );

    // Access to one mask denied: that image is left out as a fault, the rest exported, and
    // the exit status says to export again.
    let rules = json!([{"path": "street-run/annotations/consolidated-annotation/output/8.png", "method": "GET", "fault": "403"}]);
    let Some(proxy) = FaultProxy::start(test, &moto.endpoint, &rules) else {
        return;
    };
    let mut args: Vec<&str> = chain_args(&dir, "coco", &faulty);
    args.drain(1..3);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env = aws_env(&proxy.endpoint);
    let ran = tokio::task::spawn_blocking(move || {
        run_gtseg(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(3), "{err}");
    assert!(err.contains("export again"), "{err}");
    let r = report(&faulty);
    assert_eq!(r["counts"]["exported"], IMAGES - 1);
    assert_eq!(r["counts"]["faults"], 1);
    assert_eq!(
        r["left-out"][0]["source-ref"],
        format!("s3://{BUCKET}/images/8.png")
    );
    assert_eq!(r["left-out"][0]["fault"], true);
}
