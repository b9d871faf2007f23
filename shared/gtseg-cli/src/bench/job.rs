//! `gtseg bench --job`: a whole finished job consolidated again (`gtseg job consolidate`)
//! against the same images consolidated as one batch (`gtseg replay`), and the job's peak
//! memory for many small images against few.
//!
//! Each consolidated job is then exported in every format (`gtseg export`), in the same run,
//! so that an export and the consolidation of the same job are measured side by side.
//!
//! The job is generated as Ground Truth leaves it (an input manifest, its source images, one
//! worker-response object per image) in a local store; each run is a fresh process measured by
//! `gtseg bench --rss-of`. With `--s3-bucket`, the same tree is uploaded to that existing
//! bucket of the S3 the environment names (moto, say) and both runs read and write there.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use gtseg::export::Format;
use gtseg::{ObjectStore, PutOptions, S3Uri};
use serde_json::{Value, json};

use super::memory::{Cost, measure_run};
use super::{BUCKET, COLORS, LABELS, dims, scene, worker_answers, write_batch};

/// The job's folder and manifest under the bucket.
const JOB: &str = "output/bench-job";
const MANIFEST: &str = "manifests/bench-job.manifest";

/// Writes a finished job of `images` images of `(w, h)` with `workers` answers each under
/// `dir` (a local store), and a one-batch event of the same answers (`dir/event.json`).
fn generate(dir: &Path, images: usize, (w, h): (u32, u32), workers: usize) -> std::io::Result<()> {
    let mut manifest = String::new();
    let mut payload = Vec::with_capacity(images);
    // A handful of distinct scenes, reused: the cost does not depend on what images show.
    let answers: Vec<Vec<Value>> = (0..8)
        .map(|s| {
            let shapes = scene(i64::from(w), i64::from(h), 42 + s);
            worker_answers(&shapes, (w, h), workers, |_| &COLORS)
        })
        .collect();
    for i in 0..images {
        let source = format!("s3://{BUCKET}/images/{i}.jpg");
        manifest.push_str(&json!({"source-ref": source}).to_string());
        manifest.push('\n');
        let these = &answers[i % answers.len()];
        let saved: Vec<Value> = these
            .iter()
            .map(|a| {
                let content: Value = a["annotationData"]["content"]
                    .as_str()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default();
                json!({"workerId": a["workerId"], "answerContent": content,
                       "submissionTime": "2026-11-26T10:00:00.000Z"})
            })
            .collect();
        let p = dir.join(BUCKET).join(format!(
            "{JOB}/annotations/worker-response/iteration-1/{i}/2026-11-26_10:00:00.json"
        ));
        std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
        std::fs::write(p, json!({"answers": saved}).to_string())?;
        payload.push(
            json!({"datasetObjectId": i.to_string(), "dataObject": {"s3Uri": source},
                            "annotations": these}),
        );
    }
    let p = dir.join(BUCKET).join(MANIFEST);
    std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
    std::fs::write(p, manifest)?;
    sources(dir, images, (w, h))?;
    write_batch(dir, &payload, &LABELS)
}

/// Writes the job's source images, `images/<i>.jpg`: eight distinct JPEG photos of `(w, h)`,
/// the rest hard links to them (the cost of an export does not depend on what images show).
fn sources(dir: &Path, images: usize, (w, h): (u32, u32)) -> std::io::Result<()> {
    let folder = dir.join(BUCKET).join("images");
    std::fs::create_dir_all(&folder)?;
    for i in 0..images {
        let path = folder.join(format!("{i}.jpg"));
        if i >= 8 {
            let first = folder.join(format!("{}.jpg", i % 8));
            if std::fs::hard_link(&first, &path).is_err() {
                std::fs::copy(&first, &path)?;
            }
            continue;
        }
        let photo = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x + 31 * i as u32) as u8,
                (y * 2) as u8,
                ((x ^ y) >> 2) as u8,
            ])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
            .encode_image(&photo)
            .map_err(std::io::Error::other)?;
        std::fs::write(path, jpeg)?;
    }
    Ok(())
}

/// Writes the job's label category configuration into the local store `dir`.
fn label_config(dir: &Path) -> std::io::Result<()> {
    let config = json!({"document-version": "2018-11-28",
        "labels": LABELS.iter().map(|l| json!({"label": l})).collect::<Vec<_>>()});
    let p = dir.join(BUCKET).join("config/labels.json");
    std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
    std::fs::write(p, config.to_string())
}

/// The `gtseg job consolidate` arguments for the generated job in `bucket` (`--store` when
/// `store`).
fn job_args(store: Option<&Path>, bucket: &str) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "job",
        "consolidate",
        "--job-output",
        &format!("s3://{bucket}/{JOB}"),
        "--manifest",
        &format!("s3://{bucket}/{MANIFEST}"),
        "--label-attribute-name",
        "bench-v2-ref",
        "--output",
        &format!("s3://{bucket}/output/bench-job-v2"),
        "--label-config",
        &format!("s3://{bucket}/config/labels.json"),
    ]
    .iter()
    .map(OsString::from)
    .collect();
    if let Some(dir) = store {
        a.extend(["--store".into(), dir.as_os_str().to_owned()]);
    }
    a
}

/// The `gtseg export` arguments for the consolidated job in `bucket`, in `format`, into
/// `out` (`--store` when `store`).
fn export_args(store: Option<&Path>, bucket: &str, format: Format, out: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "export",
        "--manifest",
        &format!("s3://{bucket}/output/bench-job-v2/manifests/output/output.manifest"),
        "--label-attribute-name",
        "bench-v2-ref",
        "--format",
        format.name(),
        "--split",
        "train=0.8,val=0.2",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    a.extend(["--out".into(), out.as_os_str().to_owned()]);
    if let Some(dir) = store {
        a.extend(["--store".into(), dir.as_os_str().to_owned()]);
    }
    a
}

/// Exports the consolidated job in every format; a table row each, and the time of `voc`.
fn exports(
    this: &Path,
    dir: &Path,
    bucket: Option<&str>,
    images: usize,
    what: &str,
) -> anyhow::Result<(String, f64)> {
    let store = bucket.is_none().then_some(dir);
    let mut rows = String::new();
    let mut voc = f64::NAN;
    for format in Format::ALL {
        let out = dir.join(format!(
            "export-{}-{}",
            format.name(),
            bucket.unwrap_or("local")
        ));
        let _ = std::fs::remove_dir_all(&out);
        let args = export_args(store, bucket.unwrap_or(BUCKET), format, &out);
        let cost = measure_run("export", this, &args, &[])?;
        if format == Format::Voc && cost.failure.is_none() {
            voc = cost.seconds;
        }
        let _ = writeln!(
            rows,
            "{}",
            row(
                &format!("`gtseg export --format {}`, {what}", format.name()),
                images,
                &cost
            )
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    Ok((rows, voc))
}

fn replay_args(dir: &Path, store: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["replay".into(), "--compact".into()];
    if store {
        a.extend(["--store".into(), dir.as_os_str().to_owned()]);
        a.push(dir.join("event.json").into_os_string());
    } else {
        a.push(dir.join("event-s3.json").into_os_string());
    }
    a
}

/// Copies the local store `dir` into the bucket `bucket` of the environment's S3 (bucket
/// names rewritten), and writes `dir/event-s3.json`, the one-batch event pointing there.
async fn upload(dir: &Path, bucket: &str) -> anyhow::Result<()> {
    let s3 = crate::store::aws("bench --s3-bucket uploads the job to S3")
        .await?
        .s3();
    let root = dir.join(BUCKET);
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let key = path
                .strip_prefix(&root)?
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path)?;
            // Text (manifests, answers) names the bucket; images go as they are.
            let body = match String::from_utf8(bytes) {
                Ok(text) => text
                    .replace(&format!("s3://{BUCKET}/"), &format!("s3://{bucket}/"))
                    .into_bytes(),
                Err(e) => e.into_bytes(),
            };
            let uri = S3Uri::parse(&format!("s3://{bucket}/{key}"))?;
            s3.put(&uri, body, &PutOptions::default()).await?;
        }
    }
    let event = std::fs::read_to_string(dir.join("event.json"))?;
    std::fs::write(
        dir.join("event-s3.json"),
        event.replace(&format!("s3://{BUCKET}/"), &format!("s3://{bucket}/")),
    )?;
    Ok(())
}

/// Replays the generated images as one batch, then consolidates them as a job: on the local
/// store, or in `bucket` on S3, and exports the job in every format. Returns the table rows
/// and a summary: the job's throughput relative to the one batch, and the voc export's time
/// relative to the job's.
fn one_against_job(
    this: &Path,
    dir: &Path,
    bucket: Option<&str>,
    images: usize,
) -> anyhow::Result<(String, String)> {
    let (place, store) = match bucket {
        Some(_) => ("S3", None),
        None => ("local", Some(dir)),
    };
    let one = measure_run("replay", this, &replay_args(dir, store.is_some()), &[])?;
    let job = measure_run(
        "job consolidate",
        this,
        &job_args(store, bucket.unwrap_or(BUCKET)),
        &[],
    )?;
    let (exported, voc) = exports(this, dir, bucket, images, place)?;
    let rows = format!(
        "{}\n{}\n{exported}",
        row(&format!("`gtseg replay`, one batch, {place}"), images, &one),
        row(&format!("`gtseg job consolidate`, {place}"), images, &job)
    );
    // A failed run has no time to compare.
    let ratio = |a: &Cost, b: &Cost, a_seconds: f64| match (&a.failure, &b.failure) {
        (None, None) => format!("{:.2}×", a_seconds / b.seconds.max(1e-9)),
        _ => "– (a run failed)".to_owned(),
    };
    let summary = format!(
        "{place}: job consolidate runs at {} the throughput of one batch; a voc export of the job takes {} the time of its consolidation.\n",
        ratio(&one, &job, one.seconds),
        ratio(&job, &job, voc),
    );
    Ok((rows, summary))
}

fn row(what: &str, images: usize, c: &Cost) -> String {
    match &c.failure {
        Some(f) => format!("| {what} | {images} | failed: {f} | | |"),
        None => format!(
            "| {what} | {images} | {:.1} s | {:.1} images/s | {:.0} MiB |",
            c.seconds,
            images as f64 / c.seconds.max(1e-9),
            c.peak_rss_kib as f64 / 1024.0
        ),
    }
}

/// `gtseg bench --job`: the Markdown table.
pub(super) async fn run(
    root: &Path,
    images: usize,
    s3_bucket: Option<&str>,
    keep: bool,
) -> anyhow::Result<String> {
    let this = std::env::current_exe()?;
    let mut table =
        String::from("| run | images | time | throughput | peak RSS |\n|---|---|---|---|---|\n");
    let dir = root.join("job");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("generating a job of {images} images of 1 MP with 3 workers ...");
    generate(&dir, images, dims(1), 3)?;
    label_config(&dir)?;

    // A copy of the inputs in S3 first (the local runs add their outputs to the folder).
    if let Some(bucket) = s3_bucket {
        eprintln!("uploading the job to s3://{bucket}/ ...");
        upload(&dir, bucket).await?;
    }
    let (rows, mut summary) = one_against_job(&this, &dir, None, images)?;
    table.push_str(&rows);
    summary.insert(0, '\n');
    if let Some(bucket) = s3_bucket {
        let (rows, more) = one_against_job(&this, &dir, Some(bucket), images)?;
        table.push_str(&rows);
        summary.push_str(&more);
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Memory against the number of images: small images, so that what grows is the job's
    // own bookkeeping.
    for n in [100, 10_000] {
        let dir = root.join(format!("job-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("generating a job of {n} images of 160×120 ...");
        generate(&dir, n, (160, 120), 3)?;
        label_config(&dir)?;
        let cost = measure_run("job consolidate", &this, &job_args(Some(&dir), BUCKET), &[])?;
        let _ = writeln!(
            table,
            "{}",
            row("`gtseg job consolidate`, 160×120, local", n, &cost)
        );
        table.push_str(&exports(&this, &dir, None, n, "160×120, local")?.0);
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    table.push_str(&summary);
    Ok(table)
}
