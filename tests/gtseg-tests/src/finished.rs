//! Finished labeling jobs laid out as Ground Truth leaves them, in a local store's folder: an
//! input manifest and one worker-response object per image (see `docs/jobs.md`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::crowd::Labelled;
use crate::fixtures::{Background, LABELS, TAB10, answer_json, worker_png};

/// The bucket of every finished job here.
pub const BUCKET: &str = "jobs";

/// `s3://jobs/output/<job>` (the job's output folder).
pub fn job_output(job: &str) -> String {
    format!("s3://{BUCKET}/output/{job}")
}

/// `s3://jobs/manifests/<job>.manifest`.
pub fn manifest(job: &str) -> String {
    format!("s3://{BUCKET}/manifests/{job}.manifest")
}

/// The file behind `uri` in the local store `dir` (`s3://bucket/key` is `dir/bucket/key`).
pub fn local(dir: &Path, uri: &str) -> PathBuf {
    dir.join(uri.strip_prefix("s3://").expect("s3 uri"))
}

/// Writes `bytes` as the object `uri` of the local store `dir`, making its folders.
pub fn write(dir: &Path, uri: &str, bytes: &[u8]) {
    let p = local(dir, uri);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

/// A worker-response object: `(worker, answerContent, submissionTime)` for each answer.
pub fn worker_response(answers: &[(&str, &Value, &str)]) -> Value {
    json!({"answers": answers.iter().map(|(w, a, t)| json!({
        "workerId": w, "answerContent": a, "submissionTime": t,
        "acceptanceTime": t, "timeSpentInSeconds": 40.5,
        "workerMetadata": {"identityData": {"identityProviderType": "Cognito", "sub": w}}}))
        .collect::<Vec<_>>()})
}

/// Writes the worker-response object `name` of `iteration` for image `id`.
pub fn put_worker_response(
    dir: &Path,
    job: &str,
    iteration: u32,
    id: usize,
    name: &str,
    v: &Value,
) {
    let uri = format!(
        "{}/annotations/worker-response/iteration-{iteration}/{id}/{name}",
        job_output(job)
    );
    write(dir, &uri, v.to_string().as_bytes());
}

/// Writes job `job`: a manifest line per image (`source-ref` and the line number as `line`)
/// and, for each image with answers, one worker-response object in iteration 1.
pub fn write_job(dir: &Path, job: &str, images: &[Vec<(String, Value)>]) {
    let mut text = String::new();
    for (i, answers) in images.iter().enumerate() {
        text.push_str(
            &json!({"source-ref": format!("s3://{BUCKET}/images/{i}.png"), "line": i}).to_string(),
        );
        text.push('\n');
        if answers.is_empty() {
            continue;
        }
        let list: Vec<(&str, &Value, &str)> = answers
            .iter()
            .map(|(w, a)| (w.as_str(), a, "2026-11-26T10:00:00.000Z"))
            .collect();
        put_worker_response(
            dir,
            job,
            1,
            i,
            "2026-11-26_10:00:00.json",
            &worker_response(&list),
        );
    }
    write(dir, &manifest(job), text.as_bytes());
}

/// Each labelled image's answers as `crowd-semantic-segmentation` answer contents.
pub fn answers_of(images: &[Labelled]) -> Vec<Vec<(String, Value)>> {
    answers_named(images, &LABELS)
}

/// The same, but the workers call class k (1..=4) `names[k - 1]`, as a job with other labels
/// would.
pub fn answers_named(images: &[Labelled], names: &[&str; 4]) -> Vec<Vec<(String, Value)>> {
    images
        .iter()
        .map(|img| {
            img.answers
                .iter()
                .map(|(id, scene)| {
                    let mappings: Vec<(&str, [u8; 3])> = (1..=4u8)
                        .filter(|k| scene.classes.contains(k))
                        .map(|k| (names[usize::from(k) - 1], TAB10[usize::from(k) - 1]))
                        .collect();
                    let png = worker_png(scene, &TAB10, Background::Transparent, &[]);
                    let a = answer_json(
                        "crowd-semantic-segmentation",
                        &png,
                        scene.width,
                        scene.height,
                        &mappings,
                    );
                    (id.clone(), a)
                })
                .collect()
        })
        .collect()
}
