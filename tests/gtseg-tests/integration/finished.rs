//! `gtseg job consolidate` and `gtseg job manifest` on finished jobs laid out as Ground Truth
//! leaves them: on a local store, on moto's S3, and through the consolidation function under
//! the Lambda emulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gtseg_tests::events::LABEL_CONFIG_URI;
use gtseg_tests::finished::{
    BUCKET, job_output, local, manifest, put_worker_response, worker_response, write_job,
};
use gtseg_tests::fixtures::{
    Background, LABELS, Scene, TAB10, answer_json, decode_indexed, mappings_for, worker_png,
};
use gtseg_tests::harness::{Emulator, Moto, aws_env};
use gtseg_tests::{
    assert_succeeded, built_binary, copy_tree, files_under, temp_dir, workspace_root,
};
use serde_json::{Value, json};

const ATTR: &str = "street-v2-ref";
const OUTPUT: &str = "s3://jobs/output/street-v2";
const DATE: &str = "2026-11-30T10:00:00Z";

fn mask_answer(scene: &Scene) -> Value {
    answer_json(
        "crowd-semantic-segmentation",
        &worker_png(scene, &TAB10, Background::Transparent, &[]),
        scene.width,
        scene.height,
        &mappings_for(scene, &TAB10),
    )
}

/// Six images of 48×32 by w1, w2, w3 (w3's car is shifted); image 4 has no response and
/// image 5 only an answer that is not a mask. w1 answered image 0 twice: first a mask with a
/// label the job does not have, then, in iteration 2, a good one.
fn small_job(dir: &Path, job: &str) {
    let good = |i: usize| mask_answer(&Scene::street(48, 32, (i % 3) as i64));
    let mut images: Vec<Vec<(String, Value)>> = (0..6)
        .map(|i| {
            ["w1", "w2", "w3"]
                .iter()
                .map(|w| {
                    let shift = if *w == "w3" { 2 } else { 0 };
                    let s = Scene::street(48, 32, (i % 3) as i64 + shift);
                    ((*w).to_owned(), mask_answer(&s))
                })
                .collect()
        })
        .collect();
    images[4].clear();
    images[5] = vec![(
        "w1".into(),
        json!({"crowd-semantic-segmentation": {"nothing": 1}}),
    )];
    let mut bad = good(0);
    bad["crowd-semantic-segmentation"]["labelMappings"] = json!({"tree": {"color": "#2ca02c"}});
    images[0][0].1 = bad;
    write_job(dir, job, &images);
    let newer = good(0);
    put_worker_response(
        dir,
        job,
        2,
        0,
        "2026-11-27_08:00:00.json",
        &worker_response(&[("w1", &newer, "2026-11-27T08:00:00.000Z")]),
    );
}

fn gtseg(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(built_binary("gtseg"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LABEL_CATEGORY_CONFIG")
        .env_remove("CONSOLIDATION_ALGORITHM")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run gtseg")
}

fn consolidate_args<'a>(job: &'a str, store: &'a str, out: &'a str) -> Vec<String> {
    [
        "job",
        "consolidate",
        "--job-output",
        &job_output(job),
        "--manifest",
        &manifest(job),
        "--label-attribute-name",
        ATTR,
        "--output",
        out,
        "--label-config",
        LABEL_CONFIG_URI,
        "--store",
        store,
        "--creation-date",
        DATE,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run_local(store: &Path, job: &str, extra: &[&str]) -> Output {
    let s = store.to_str().unwrap();
    let mut args = consolidate_args(job, s, OUTPUT);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    gtseg(&args, &[])
}

/// A store with the sample label configuration and job `job` laid out.
fn store_with(job: &str, layout: impl Fn(&Path, &str)) -> gtseg_tests::Scratch {
    let dir = temp_dir(&format!("finished-{job}"));
    copy_tree(&workspace_root().join("events/store"), &dir).unwrap();
    layout(&dir, job);
    dir
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The job report `gtseg job consolidate` wrote under the output.
fn job_report(dir: &Path) -> Value {
    let path = local(dir, &format!("{OUTPUT}/manifests/output/job-report.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_finished_job_is_consolidated_again_into_a_complete_manifest() {
    let dir = store_with("street", small_job);
    assert_succeeded(&run_local(&dir, "street", &["--batch-size", "4"]));
    let lines = read_lines(&local(
        &dir,
        &format!("{OUTPUT}/manifests/output/output.manifest"),
    ));
    assert_eq!(lines.len(), 6, "every input line, in order");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["line"], i, "input order and the input's own keys");
        assert_eq!(l["source-ref"], format!("s3://{BUCKET}/images/{i}.png"));
    }
    for l in &lines[..4] {
        let mask = l[ATTR].as_str().unwrap();
        assert!(mask.starts_with(&format!(
            "{OUTPUT}/annotations/consolidated-annotation/output/"
        )));
        let (w, h, idx, _, _) = decode_indexed(&std::fs::read(local(&dir, mask)).unwrap());
        assert_eq!((w, h), (48, 32));
        assert!(idx.iter().all(|&c| usize::from(c) <= LABELS.len()));
        let meta = &l[format!("{ATTR}-metadata")];
        assert_eq!(meta["internal-color-map"]["1"]["class-name"], "car");
        assert_eq!(meta["creation-date"], "2026-11-30T10:00:00.000000");
        assert_eq!(meta["worker-count"], 3, "{meta}");
    }
    // w1's newest submission for image 0 is the good one: no exclusion.
    assert!(
        lines[0][format!("{ATTR}-metadata")]
            .get("excluded-workers")
            .is_none()
    );
    // Failure lines, with Ground Truth's failure form and a reason.
    for (i, why) in [(4, "no worker response"), (5, "no usable worker answer")] {
        let meta = &lines[i][format!("{ATTR}-metadata")];
        assert_eq!(meta["human-annotated"], "yes");
        assert!(
            meta["failure-reason"].as_str().unwrap().contains(why),
            "{meta}"
        );
        assert!(lines[i].get(ATTR).is_none());
    }
    let report = job_report(&dir);
    assert_eq!(
        (
            report["images"].as_u64(),
            report["consolidated"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(6), Some(4), Some(2))
    );
    let workers = report["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    // w3's shifted car agrees least.
    assert_eq!(workers[2]["worker-id"], "w3");
    assert!(workers[0]["mean-agreement"].as_f64() > workers[2]["mean-agreement"].as_f64());
    assert_eq!(workers[0]["images"], 4);
    // Nothing was written outside the output prefix but the input (the store's own files).
    for f in files_under(&dir) {
        let rel = f
            .strip_prefix(&*dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            rel.starts_with("jobs/output/street-v2/")
                || rel.starts_with("jobs/output/street/")
                || rel.starts_with("jobs/manifests/")
                || rel.starts_with("gt-example-bucket/"),
            "{rel}"
        );
    }
}

#[test]
fn an_excluded_worker_is_left_out_everywhere_and_the_metadata_says_so() {
    let dir = store_with("street", small_job);
    assert_succeeded(&run_local(&dir, "street", &["--exclude-worker", "w3"]));
    let lines = read_lines(&local(
        &dir,
        &format!("{OUTPUT}/manifests/output/output.manifest"),
    ));
    for l in &lines[..4] {
        let meta = &l[format!("{ATTR}-metadata")];
        assert_eq!(meta["worker-count"], 2);
        assert_eq!(
            meta["excluded-workers"],
            json!([{"worker-id": "w3", "reason": "excluded by the user (--exclude-worker)"}])
        );
        let ids: Vec<&str> = meta["consolidation"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["worker-id"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&"w3"));
    }
    let report = job_report(&dir);
    let w3 = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker-id"] == "w3")
        .unwrap();
    assert_eq!(w3["excluded-by-user"], true);
}

/// Every file under `dir`'s output prefix, by path relative to it.
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let root = local(dir, OUTPUT);
    let mut files: Vec<(String, Vec<u8>)> = files_under(&root)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// 24 images of 160×120 by three workers.
fn bigger_job(dir: &Path, job: &str) {
    let images: Vec<Vec<(String, Value)>> = (0..24)
        .map(|i| {
            (0..3)
                .map(|w| {
                    let s = Scene::street(160, 120, (i % 5) as i64 + w);
                    (format!("w{w}"), mask_answer(&s))
                })
                .collect()
        })
        .collect();
    write_job(dir, job, &images);
}

#[test]
fn resume_after_a_kill_gives_byte_identical_outputs() {
    let whole = store_with("street", bigger_job);
    assert_succeeded(&run_local(&whole, "street", &["--batch-size", "2"]));
    let expected = outputs(&whole);

    // Killed while running, then resumed.
    let cut = store_with("street", bigger_job);
    let s = cut.to_str().unwrap().to_owned();
    let mut args = consolidate_args("street", &s, OUTPUT);
    args.extend(["--batch-size", "2"].map(str::to_owned));
    let mut child = Command::new(built_binary("gtseg"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .env_remove("LABEL_CATEGORY_CONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let responses = local(
        &cut,
        &format!("{OUTPUT}/annotations/consolidated-annotation/consolidation-response/iteration-1"),
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::fs::read_dir(&responses).is_ok_and(|d| d.count() >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let manifest_path = local(&cut, &format!("{OUTPUT}/manifests/output/output.manifest"));
    let interrupted = !manifest_path.exists();
    assert_succeeded(&run_local(
        &cut,
        "street",
        &["--batch-size", "2", "--resume"],
    ));
    assert_eq!(outputs(&cut), expected, "interrupted: {interrupted}");

    // A deterministic interruption: batches lost, and the manifest never written.
    let lost = store_with("street", bigger_job);
    assert_succeeded(&run_local(&lost, "street", &["--batch-size", "2"]));
    for k in [1, 5, 11] {
        std::fs::remove_file(batch_file(&responses_of(&lost), k)).unwrap();
    }
    std::fs::remove_file(local(
        &lost,
        &format!("{OUTPUT}/manifests/output/output.manifest"),
    ))
    .unwrap();
    let mask = local(
        &lost,
        &format!("{OUTPUT}/annotations/consolidated-annotation/output/0.png"),
    );
    let before = std::fs::metadata(&mask).unwrap().modified().unwrap();
    assert_succeeded(&run_local(
        &lost,
        "street",
        &["--batch-size", "2", "--resume"],
    ));
    assert_eq!(outputs(&lost), expected);
    assert_eq!(
        std::fs::metadata(&mask).unwrap().modified().unwrap(),
        before,
        "a finished batch is not redone"
    );
    // Other options than the interrupted run's are refused on resume.
    let out = run_local(&lost, "street", &["--batch-size", "3", "--resume"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("other options"));
}

/// Batch `k`'s file in `folder` (its name starts with the run's id).
fn batch_file(folder: &Path, k: usize) -> PathBuf {
    let suffix = format!("-batch-{k:06}.json");
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no batch {k} in {}", folder.display()))
}

fn responses_of(dir: &Path) -> PathBuf {
    local(
        dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/consolidation-response/iteration-1"),
    )
}

/// Ground Truth replaced the function's metadata with its own in `output.manifest`; `job
/// manifest` restores it from the saved responses, the newest winning.
#[test]
fn job_manifest_restores_the_metadata_from_the_saved_responses() {
    let dir = store_with("street", small_job);
    assert_succeeded(&run_local(&dir, "street", &[]));
    let ours = read_lines(&local(
        &dir,
        &format!("{OUTPUT}/manifests/output/output.manifest"),
    ));
    // The responses as Ground Truth keeps them for the job `street-v2`: an older one where
    // image 0 had other metadata, then ours.
    let saved = batch_file(&responses_of(&dir), 0);
    let items: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let gt = local(
        &dir,
        "s3://jobs/output/street-v2-gt/annotations/consolidated-annotation/consolidation-response",
    );
    let mut old = items.clone();
    old[0]["consolidatedAnnotation"]["content"][format!("{ATTR}-metadata")] =
        json!({"type": "stale"});
    for (it, v) in [(1, &old), (2, &items)] {
        let p = gt.join(format!("iteration-{it}/2026-11-26_10:00:0{it}.json"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v.to_string()).unwrap();
    }
    let out = gtseg(
        &[
            "job",
            "manifest",
            "--job-output",
            "s3://jobs/output/street-v2-gt/",
            "--manifest",
            &manifest("street"),
            "--label-attribute-name",
            ATTR,
            "--output",
            "s3://jobs/output/street-v2-gt",
            "--store",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_succeeded(&out);
    let rebuilt = read_lines(&local(
        &dir,
        "s3://jobs/output/street-v2-gt/manifests/output/output.manifest",
    ));
    assert_eq!(
        rebuilt[..4],
        ours[..4],
        "the same lines as the consolidation's own manifest"
    );
    for l in &rebuilt[4..] {
        let why = l[format!("{ATTR}-metadata")]["failure-reason"]
            .as_str()
            .unwrap();
        assert!(why.contains("no saved consolidation response"), "{why}");
    }
    assert_eq!(
        rebuilt[0][format!("{ATTR}-metadata")]["type"],
        "groundtruth/semantic-segmentation"
    );
}

/// The same job on moto's S3: the store is S3 for reading the job and writing the output.
#[tokio::test]
async fn a_finished_job_on_s3_is_consolidated_again() {
    let Some(moto) = Moto::start("a_finished_job_on_s3_is_consolidated_again", &[]) else {
        return;
    };
    let dir = store_with("street", small_job);
    moto.upload_store(&dir).await;
    let mut args = consolidate_args("street", "", OUTPUT);
    args.truncate(args.len() - 4);
    args.extend(["--creation-date", DATE].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = gtseg(&args, &aws_env(&moto.endpoint));
    assert_succeeded(&out);
    let text = moto
        .get(&format!("{OUTPUT}/manifests/output/output.manifest"))
        .await
        .expect("the manifest in S3");
    let lines: Vec<Value> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let mask = lines[0][ATTR].as_str().unwrap();
    assert!(moto.get(mask).await.is_some());
    assert!(lines[4][format!("{ATTR}-metadata")]["failure-reason"].is_string());
}

/// `--via-lambda`: every batch through the consolidation function under cargo-lambda's
/// emulator (its Invoke API), with moto as the S3 of both the tool and the function. A first
/// run where the function fails two batches of three reports them; `--resume` redoes only
/// those.
#[tokio::test]
async fn via_lambda_the_deployed_function_consolidates_every_batch() {
    let test = "via_lambda_the_deployed_function_consolidates_every_batch";
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    let (Some(mut failing), Some(mut emu)) = (Emulator::start(test), Emulator::start(test)) else {
        return;
    };
    let dir = store_with("street", small_job);
    moto.upload_store(&dir).await;
    let logs = temp_dir("via-lambda-logs");
    // No label list on the function: the tool sends the job's in every event.
    let env = aws_env(&moto.endpoint);
    emu.serve("acs-semantic-segmentation", &env, &logs.join("acs.log"));
    // The same function refusing payloads over 1,500 bytes: batches 0 and 1 (two images of
    // three masks each) fail, batch 2 (one small answer) succeeds.
    let mut small = env.clone();
    small.push(("MAX_PAYLOAD_BYTES", "1500".to_owned()));
    failing.serve(
        "acs-semantic-segmentation",
        &small,
        &logs.join("failing.log"),
    );
    let tool_env = |emu: &Emulator| {
        let mut e = aws_env(&moto.endpoint);
        e.push((
            "AWS_ENDPOINT_URL_LAMBDA",
            format!("http://127.0.0.1:{}", emu.port),
        ));
        e
    };
    let mut args = consolidate_args("street", "", OUTPUT);
    args.truncate(args.len() - 4);
    args.extend(
        [
            "--creation-date",
            DATE,
            "--via-lambda",
            "acs-semantic-segmentation",
            "--batch-size",
            "2",
            "--concurrency",
            "3",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifest_uri = format!("{OUTPUT}/manifests/output/output.manifest");

    let out = gtseg(&args, &tool_env(&failing));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("2 of 3 batches failed") && err.contains("--resume"),
        "{err}"
    );
    assert!(
        err.contains("StorageError"),
        "the function's error is reported: {err}"
    );
    assert!(
        moto.get(&manifest_uri).await.is_none(),
        "no manifest while batches failed"
    );

    let mut resume = args.clone();
    resume.push("--resume");
    let out = gtseg(&resume, &tool_env(&emu));
    assert!(
        out.status.success(),
        "{}\nfunction log: {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(logs.join("acs.log")).unwrap_or_default()
    );
    let log = std::fs::read_to_string(logs.join("acs.log")).unwrap();
    assert_eq!(
        log.matches("batch consolidated").count(),
        2,
        "only the failed batches: {log}"
    );
    let text = moto.get(&manifest_uri).await.expect("the manifest in S3");
    let lines: Vec<Value> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for l in &lines[..4] {
        assert!(moto.get(l[ATTR].as_str().unwrap()).await.is_some());
    }
    assert!(lines[5][format!("{ATTR}-metadata")]["failure-reason"].is_string());
}

/// Pixel accuracy of the masks a manifest names, against each image's truth.
fn accuracy_of(dir: &Path, lines: &[Value], attr: &str, truths: &[&[u8]]) -> f64 {
    let masks: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| decode_indexed(&std::fs::read(local(dir, l[attr].as_str().unwrap())).unwrap()).2)
        .collect();
    gtseg_tests::crowd::pixel_accuracy(truths.iter().copied().zip(masks.iter().map(Vec::as_slice)))
}

/// Each batch of `dir`'s run (as `job consolidate` wrote the payloads) consolidated on its
/// own, as the Lambda does, with `algorithm`: the pixel accuracy of the masks.
async fn per_batch(
    dir: &Path,
    batches: usize,
    algorithm: gtseg::Algorithm,
    truths: &[&[u8]],
) -> f64 {
    let service = gtseg::Service::new(
        gtseg::LocalStore::new(dir),
        gtseg::Config {
            algorithm,
            label_category_config: Some(LABEL_CONFIG_URI.into()),
            ..gtseg::Config::default()
        },
    );
    let requests = local(
        dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/consolidation-request/iteration-1"),
    );
    let mut lines = Vec::new();
    for k in 0..batches {
        let event = json!({"labelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/crowd",
            "labelAttributeName": "per-batch-ref", "outputConfig": "s3://jobs/output/per-batch/annotations",
            "payload": {"s3Uri": format!("s3://{}", batch_file(&requests, k).strip_prefix(dir).unwrap().display())}});
        let items = service
            .consolidation(&event, std::time::SystemTime::now(), None)
            .await
            .unwrap();
        lines.extend(
            items
                .into_iter()
                .map(|i| Value::Object(i.consolidated_annotation.content)),
        );
    }
    accuracy_of(dir, &lines, "per-batch-ref", truths)
}

/// Two workers who skip small objects, next to each other in a pool of eight (the others
/// careful), so that about a quarter of the images get both and lose their small objects to
/// a wrong majority, while a batch of two images rarely shows how they work. Each batch's
/// own model sees too little of them; the whole job's sees enough. Over five seeds the whole
/// job's model gains on average, though not on every seed (`docs/jobs.md` gives the figures).
#[tokio::test]
async fn whole_job_weighted_beats_per_batch_weighted_on_workers_rare_in_each_batch() {
    use gtseg_tests::crowd::{Behaviour, Crowd};
    let careful = Behaviour::Sloppy { error: 0.03 };
    let mut workers: Vec<(String, Behaviour)> =
        (1..=6).map(|i| (format!("careful-{i}"), careful)).collect();
    workers.push(("skips-small-1".into(), Behaviour::SkipsSmall));
    workers.push(("skips-small-2".into(), Behaviour::SkipsSmall));
    let crowd = Crowd {
        workers,
        per_image: 3,
    };
    let (mut gains, mut sums) = (Vec::new(), [0.0; 3]);
    for seed in [1, 2, 3, 4, 5] {
        let images = crowd.label(64, &[(96, 64)], seed);
        let job = format!("crowd-{seed}");
        let dir = store_with(&job, |d, job| {
            write_job(d, job, &gtseg_tests::finished::answers_of(&images))
        });
        let truths: Vec<&[u8]> = images.iter().map(|i| i.truth.classes.as_slice()).collect();
        assert_succeeded(&run_local(
            &dir,
            &job,
            &["--batch-size", "2", "--algorithm", "weighted"],
        ));
        let lines = read_lines(&local(
            &dir,
            &format!("{OUTPUT}/manifests/output/output.manifest"),
        ));
        let whole = accuracy_of(&dir, &lines, ATTR, &truths);
        let batch = per_batch(&dir, 32, gtseg::Algorithm::Weighted, &truths).await;
        let majority = per_batch(&dir, 32, gtseg::Algorithm::Majority, &truths).await;
        for (s, v) in sums.iter_mut().zip([majority, batch, whole]) {
            *s += v * 20.0;
        }
        gains.push((whole - batch) * 100.0);
    }
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    let worst = gains.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "| two of eight skip small objects, batches of 2 | {:.2} % | {:.2} % | {:.2} % | {mean:+.2} | {worst:+.2} |",
        sums[0], sums[1], sums[2]
    );
    assert!(mean >= 0.5, "whole job − per batch: {gains:?}");
}
