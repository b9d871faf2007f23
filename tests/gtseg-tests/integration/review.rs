//! `gtseg review` on a job consolidated by `gtseg job consolidate`, whose label names and
//! worker ids are hostile, checked as files and then in headless Chromium
//! (`tests/review_browser.py`, over the DevTools protocol).

use std::path::Path;
use std::process::Command;

use gtseg_tests::finished::{BUCKET, job_output, manifest, write_job};
use gtseg_tests::fixtures::{Background, Scene, TAB10, answer_json, worker_png};
use gtseg_tests::harness::require;
use gtseg_tests::{assert_succeeded, built_binary, files_under, temp_dir, workspace_root};
use serde_json::{Value, json};

const HOSTILE_LABEL: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_WORKER: &str = "<script>alert(2)</script>";
const ATTR: &str = "street-v2-ref";
const OUTPUT: &str = "s3://jobs/output/street-v2";

/// The labels, one of them hostile, in the order of the fixtures' classes.
fn labels() -> [&'static str; 4] {
    ["car", "road", HOSTILE_LABEL, "building"]
}

fn answer(scene: &Scene) -> Value {
    let mappings: Vec<(&str, [u8; 3])> = (1..=4u8)
        .filter(|k| scene.classes.contains(k))
        .map(|k| (labels()[usize::from(k) - 1], TAB10[usize::from(k) - 1]))
        .collect();
    answer_json(
        "crowd-semantic-segmentation",
        &worker_png(scene, &TAB10, Background::Transparent, &[]),
        scene.width,
        scene.height,
        &mappings,
    )
}

/// Ten images of 640×480: the third worker's car drifts more on each image, so agreement
/// falls image by image, and on the last three that worker paints everything as road (low
/// agreement); the first five have no person (the hostile class). Even images are PNG
/// photos, odd ones JPEG.
fn job(dir: &Path) {
    let (w, h) = (640, 480);
    let images: Vec<Vec<(String, Value)>> = (0..10)
        .map(|i| {
            let scene = |shift| {
                let s = Scene::street(w, h, shift);
                if i < 5 { s.without(3, 2) } else { s }
            };
            let mut third = scene(8 * i);
            if i >= 7 {
                third.classes.fill(2);
            }
            vec![
                ("w1".to_owned(), answer(&scene(0))),
                ("w2".to_owned(), answer(&scene(1))),
                (HOSTILE_WORKER.to_owned(), answer(&third)),
            ]
        })
        .collect();
    write_job(dir, "street", &images);
    for i in 0..10 {
        let scene = Scene::street(w, h, 0);
        let photo = image::RgbImage::from_fn(w, h, |x, y| {
            let k = scene.classes[(y * w + x) as usize];
            image::Rgb([40 + 40 * k, 90 + (x % 50) as u8, 120 + (y % 40) as u8])
        });
        let (name, format) = if i % 2 == 0 {
            (format!("{i}.png"), image::ImageFormat::Png)
        } else {
            (format!("{i}.jpg"), image::ImageFormat::Jpeg)
        };
        let folder = dir.join(BUCKET).join("images");
        std::fs::create_dir_all(&folder).unwrap();
        photo.save_with_format(folder.join(&name), format).unwrap();
    }
    // The manifest names the JPEG photos by their own name.
    let path = dir.join(BUCKET).join("manifests/street.manifest");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i % 2 == 1 {
                l.replace(&format!("{i}.png"), &format!("{i}.jpg"))
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let config = json!({"document-version": "2018-11-28",
        "labels": labels().iter().map(|l| json!({"label": l})).collect::<Vec<_>>()});
    let p = dir.join(BUCKET).join("config/labels.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, config.to_string()).unwrap();
}

fn gtseg(args: &[&str]) {
    let out = Command::new(built_binary("gtseg"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LABEL_CATEGORY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gtseg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_review_shows_the_worst_images_first_and_every_text_as_text() {
    let store = temp_dir("review-store");
    job(&store);
    let s = store.to_str().unwrap();
    gtseg(&[
        "job",
        "consolidate",
        "--job-output",
        &job_output("street"),
        "--manifest",
        &manifest("street"),
        "--label-attribute-name",
        ATTR,
        "--output",
        OUTPUT,
        "--label-config",
        "s3://jobs/config/labels.json",
        "--store",
        s,
    ]);
    let report = temp_dir("review-report");
    let r = report.to_str().unwrap();
    gtseg(&[
        "review",
        "--manifest",
        &format!("{OUTPUT}/manifests/output/output.manifest"),
        "--label-attribute-name",
        ATTR,
        "--store",
        s,
        "--out",
        r,
    ]);

    // Files: index.html and pictures under img/, nothing else, thumbnails at most 512 px.
    let files = files_under(&report);
    for f in &files {
        let rel = f
            .strip_prefix(&*report)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(rel == "index.html" || rel.starts_with("img/"), "{rel}");
        if rel.ends_with("-t.jpg") {
            let (w, h) = image::image_dimensions(f).unwrap();
            assert!(w.max(h) <= 512, "{rel}: {w}×{h}");
        }
    }
    assert_eq!(
        files.len(),
        1 + 10 * 4,
        "a page and four pictures per image"
    );
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(!html.contains(HOSTILE_LABEL) && !html.contains(HOSTILE_WORKER));
    // No address but the SVG namespace's, which names and fetches nothing.
    assert!(!html.contains("https://"));
    assert_eq!(
        html.matches("http://").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );

    if !require(
        "chromium",
        &["--version"],
        "the_review_shows_the_worst_images_first_and_every_text_as_text",
    ) || !require(
        "python3",
        &["-c", "import websocket"],
        "the_review_shows_the_worst_images_first_and_every_text_as_text",
    ) {
        return;
    }
    let shot = report.join("screenshot.png");
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/review_browser.py"))
        .arg(&*report)
        .arg(&shot)
        .output()
        .unwrap();
    assert_succeeded(&out);
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Rows in agreement order, worst first.
    let agreements: Vec<f64> = seen["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(agreements.len(), 10);
    assert!(
        agreements.windows(2).all(|w| w[0] <= w[1]),
        "{agreements:?}"
    );
    assert!(agreements[0] < agreements[9]);
    // The filters change the visible rows.
    let low = seen["low_rows"].as_u64().unwrap();
    assert_eq!(low, 3, "{seen}");
    assert_eq!(seen["low_rows_all_low"], true);
    assert_eq!(seen["all_rows"], 10);
    assert!(
        seen["worker_rows_text"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b == true)
    );
    assert_eq!(
        seen["class_rows"]["3"], 5,
        "the hostile class is on five images: {seen}"
    );
    assert_eq!(seen["class_rows"][""], 10);
    // Hostile texts are text: in the legend and the worker list, and nothing ran.
    assert!(
        seen["legend"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == HOSTILE_LABEL),
        "{seen}"
    );
    assert!(
        seen["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == HOSTILE_WORKER)
    );
    assert_eq!(seen["img_x"], 0);
    assert_eq!(seen["dialogs"], json!([]));
    assert_eq!(seen["errors"], json!([]));
    assert_eq!(seen["first_images_loaded"], true);
    // Every request stayed in the report folder.
    let base = format!("file://{}", report.display());
    for url in seen["requests"].as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&base), "{url}");
    }
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot"
    );
}
