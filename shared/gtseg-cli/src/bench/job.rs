//! `gtseg bench --job`: a whole finished job consolidated again (`gtseg job consolidate`)
//! against the same images consolidated as one batch (`gtseg replay`), and the job's peak
//! memory for many small images against few.
//!
//! The job is generated as Ground Truth leaves it (an input manifest, one worker-response
//! object per image) in a local store; each run is a fresh process measured by
//! `gtseg bench --rss-of`. With `--s3-bucket`, the same tree is uploaded to that existing
//! bucket of the S3 the environment names (moto, say) and both runs read and write there.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

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
    write_batch(dir, &payload, &LABELS)
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
            let body = String::from_utf8(std::fs::read(&path)?)?
                .replace(&format!("s3://{BUCKET}/"), &format!("s3://{bucket}/"));
            let uri = S3Uri::parse(&format!("s3://{bucket}/{key}"))?;
            s3.put(&uri, body.into_bytes(), &PutOptions::default())
                .await?;
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
/// store, or in `bucket` on S3. Returns the two table rows and the job's throughput relative
/// to the one batch.
fn one_against_job(
    this: &Path,
    dir: &Path,
    bucket: Option<&str>,
    images: usize,
) -> anyhow::Result<(String, f64)> {
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
    let rows = format!(
        "{}\n{}\n",
        row(&format!("`gtseg replay`, one batch, {place}"), images, &one),
        row(&format!("`gtseg job consolidate`, {place}"), images, &job)
    );
    Ok((rows, one.seconds / job.seconds.max(1e-9)))
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
    let (rows, ratio) = one_against_job(&this, &dir, None, images)?;
    table.push_str(&rows);
    let mut summary =
        format!("\nLocal: job consolidate runs at {ratio:.2}× the throughput of one batch.\n");
    if let Some(bucket) = s3_bucket {
        let (rows, ratio) = one_against_job(&this, &dir, Some(bucket), images)?;
        table.push_str(&rows);
        let _ = writeln!(
            summary,
            "S3: job consolidate runs at {ratio:.2}× the throughput of one batch."
        );
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
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    table.push_str(&summary);
    Ok(table)
}
