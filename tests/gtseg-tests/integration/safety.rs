//! The job tools hold the only copy of a user's labels: they never write over an input, never
//! drop a label in silence, take one lock per output, and end with an exit status a script can
//! trust. Each test is a way a careless or unlucky user lost labels before, on a local store,
//! on moto, or through the fault proxy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gtseg_tests::events::LABEL_CONFIG_URI;
use gtseg_tests::finished::{
    BUCKET, job_output, local, manifest, put_worker_response, worker_response, write,
};
use gtseg_tests::fixtures::{Background, Scene, TAB10, answer_json, mappings_for, worker_png};
use gtseg_tests::harness::{FaultProxy, Moto, aws_env};
use gtseg_tests::{
    Scratch, assert_succeeded, built_binary, copy_tree, run_gtseg as gtseg, temp_dir,
    workspace_root,
};
use serde_json::{Value, json};

const ATTR: &str = "street-v2-ref";
const OUTPUT: &str = "s3://jobs/output/street-v2";
const DATE: &str = "2026-11-30T10:00:00Z";

fn mask(shift: i64) -> Value {
    let s = Scene::street(48, 32, shift);
    answer_json(
        "crowd-semantic-segmentation",
        &worker_png(&s, &TAB10, Background::Transparent, &[]),
        48,
        32,
        &mappings_for(&s, &TAB10),
    )
}

/// The sample store and job `street`: `images` images, three workers each, one
/// worker-response object per image; the manifest's lines are `{"source-ref", "line"}`.
fn job(tag: &str, images: usize) -> Scratch {
    let dir = temp_dir(&format!("safety-{tag}"));
    copy_tree(&workspace_root().join("events/store"), &dir).unwrap();
    let mut text = String::new();
    for i in 0..images {
        let line = json!({"source-ref": format!("s3://{BUCKET}/images/{i}.png"), "line": i});
        text.push_str(&format!("{line}\n"));
        let answers = [mask(0), mask(0), mask(1)];
        let list: Vec<(&str, &Value, &str)> = ["w1", "w2", "w3"]
            .iter()
            .zip(&answers)
            .map(|(w, a)| (*w, a, "2026-11-26T10:00:00.000Z"))
            .collect();
        let object = worker_response(&list);
        put_worker_response(&dir, "street", 1, i, "2026-11-26_10:00:00.json", &object);
    }
    write(&dir, &manifest("street"), text.as_bytes());
    dir
}

fn response_path(dir: &Path, i: usize) -> PathBuf {
    local(
        dir,
        &format!(
            "{}/annotations/worker-response/iteration-1/{i}/2026-11-26_10:00:00.json",
            job_output("street")
        ),
    )
}

/// The job's folder, as `--job-output`.
const JOB_OUTPUT: &str = "s3://jobs/output/street";

/// `gtseg job consolidate` of job `street` (its manifest) with what a test varies: the store
/// (`None`: S3), the job folder, the attribute, the output and the label configuration.
fn consolidate_args<'a>(
    store: Option<&'a Path>,
    job_output: &'a str,
    attr: &'a str,
    output: &'a str,
    label_config: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["job", "consolidate"];
    if let Some(dir) = store {
        args.extend(["--store", dir.to_str().unwrap()]);
    }
    args.extend([
        "--job-output",
        job_output,
        "--manifest",
        "s3://jobs/manifests/street.manifest",
        "--label-attribute-name",
        attr,
        "--output",
        output,
        "--label-config",
        label_config,
    ]);
    args
}

/// `gtseg review` of `manifest` in the local store `dir`, by attribute `attr`, into `report`.
fn review_args<'a>(
    dir: &'a Path,
    manifest: &'a str,
    attr: &'a str,
    report: &'a Path,
) -> Vec<&'a str> {
    vec![
        "review",
        "--store",
        dir.to_str().unwrap(),
        "--manifest",
        manifest,
        "--label-attribute-name",
        attr,
        "--out",
        report.to_str().unwrap(),
    ]
}

fn consolidate(dir: &Path, out: &str, extra: &[&str]) -> Output {
    let mut args = consolidate_args(Some(dir), JOB_OUTPUT, ATTR, out, LABEL_CONFIG_URI);
    args.extend(["--creation-date", DATE]);
    args.extend_from_slice(extra);
    gtseg(&args, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(dir: &Path, out: &str) -> Vec<Value> {
    std::fs::read_to_string(local(
        dir,
        &format!("{out}/manifests/output/output.manifest"),
    ))
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn failure(line: &Value, attr: &str) -> Option<String> {
    line[format!("{attr}-metadata")]["failure-reason"]
        .as_str()
        .map(str::to_owned)
}

/// Every file under `dir`, with its bytes: what a refused command must leave as it was.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = gtseg_tests::files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect();
    files.sort();
    files
}

/// 1. `job manifest` into the job's own folder: a typo in the attribute, a job without saved
///    responses, an existing manifest without `--force`: refused, nothing changed. With
///    `--force`, no labelled line becomes a failure line; an item with a numeric id is read.
#[test]
fn job_manifest_never_replaces_a_labelled_line_with_a_failure() {
    let dir = job("manifest", 4);
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let rebuild = |attr: &str, extra: &[&str]| {
        let mut args = vec![
            "job",
            "manifest",
            "--store",
            dir.to_str().unwrap(),
            "--job-output",
            OUTPUT,
            "--manifest",
            "s3://jobs/manifests/street.manifest",
            "--label-attribute-name",
            attr,
            "--output",
            OUTPUT,
        ];
        args.extend_from_slice(extra);
        gtseg(&args, &[])
    };
    let before = snapshot(&dir);
    let typo = rebuild("street-v2ref", &["--force"]);
    assert!(!typo.status.success());
    assert!(
        stderr(&typo).contains("street-v2-ref"),
        "names what the responses carry: {}",
        stderr(&typo)
    );
    let unforced = rebuild(ATTR, &[]);
    assert!(
        !unforced.status.success() && stderr(&unforced).contains("--force"),
        "{}",
        stderr(&unforced)
    );
    assert_eq!(snapshot(&dir), before, "refused runs change nothing");

    // An item with a numeric id still restores its line; the others keep their labels.
    let responses = local(
        &dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/consolidation-response/iteration-1"),
    );
    let saved = gtseg_tests::files_under(&responses).pop().unwrap();
    let mut items: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    items[0]["datasetObjectId"] = json!(0);
    std::fs::write(&saved, items.to_string()).unwrap();
    assert_succeeded(&rebuild(ATTR, &["--force"]));
    let rebuilt = lines(&dir, OUTPUT);
    assert_eq!(rebuilt.len(), 4);
    assert!(
        rebuilt.iter().all(|l| failure(l, ATTR).is_none()),
        "{rebuilt:?}"
    );

    // No saved response at all: refused, and the manifest stays.
    std::fs::remove_dir_all(&responses).unwrap();
    let before = snapshot(&dir);
    let none = rebuild(ATTR, &["--force"]);
    assert!(
        !none.status.success() && stderr(&none).contains("no saved consolidation response"),
        "{}",
        stderr(&none)
    );
    assert_eq!(snapshot(&dir), before);
}

/// 2. `job consolidate` refuses an output that is, or holds, the job's folder or one of its
///    inputs, and an attribute that would replace a line's own fields.
#[test]
fn job_consolidate_never_writes_over_its_inputs() {
    let dir = job("inputs", 2);
    let before = snapshot(&dir);
    for (out, attr, needle) in [
        ("s3://jobs/output/street", ATTR, "job's own folder"),
        ("s3://jobs/output/street/", ATTR, "job's own folder"),
        ("s3://jobs/output", ATTR, "job's own folder"),
        (
            "s3://jobs/output/street/annotations/v2",
            ATTR,
            "Ground Truth's own annotations/",
        ),
        ("s3://jobs/manifests", ATTR, "lies inside --output"),
        (OUTPUT, "source-ref", "key of the input manifest's lines"),
        (OUTPUT, "line", "key of the input manifest's lines"),
        (OUTPUT, "v2-metadata", "ends in -metadata"),
    ] {
        let out_run = gtseg(
            &consolidate_args(Some(&dir), JOB_OUTPUT, attr, out, LABEL_CONFIG_URI),
            &[],
        );
        assert!(!out_run.status.success(), "{out} {attr} is refused");
        assert!(
            stderr(&out_run).contains(needle),
            "{out} {attr}: {}",
            stderr(&out_run)
        );
    }
    assert_eq!(snapshot(&dir), before, "nothing written");
    // A fresh sub-folder of the user's own is fine.
    assert_succeeded(&consolidate(&dir, "s3://jobs/output/street/rerun-1", &[]));
}

/// 3. A malformed answer is excluded alone; a broken worker-response object fails only its
///    image, names the object, ends the run with status 3, and `--resume` retries it.
#[test]
fn a_bad_answer_is_excluded_alone_and_a_broken_object_fails_only_its_image() {
    let dir = job("answers", 3);
    let numeric = json!({"answers": [
        {"workerId": 42, "answerContent": mask(0), "submissionTime": "2026-11-26T10:00:00.000Z"},
        {"workerId": "w2", "submissionTime": "2026-11-26T10:00:00.000Z"},
        {"workerId": "w3", "answerContent": mask(0), "submissionTime": "2026-11-26T10:00:00.000Z"}]});
    std::fs::write(response_path(&dir, 0), numeric.to_string()).unwrap();
    let whole = std::fs::read(response_path(&dir, 1)).unwrap();
    std::fs::write(response_path(&dir, 1), &whole[..whole.len() / 2]).unwrap();
    let out = consolidate(&dir, OUTPUT, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    let l = lines(&dir, OUTPUT);
    let meta = &l[0][format!("{ATTR}-metadata")];
    assert_eq!(meta["worker-count"], 2, "{meta}");
    let excluded = meta["excluded-workers"].to_string();
    assert!(
        excluded.contains("w2") && excluded.contains("answerContent"),
        "{excluded}"
    );
    let why = failure(&l[1], ATTR).unwrap();
    assert!(
        why.contains("worker-response/iteration-1/1/") && why.contains("unusable"),
        "{why}"
    );
    assert!(failure(&l[2], ATTR).is_none());
    std::fs::write(response_path(&dir, 1), &whole).unwrap();
    assert_succeeded(&consolidate(&dir, OUTPUT, &["--resume"]));
    assert!(
        lines(&dir, OUTPUT)
            .iter()
            .all(|l| failure(l, ATTR).is_none())
    );
}

/// 3, over S3: a body garbled on the way is never lost in silence. When the object has a
/// checksum, the SDK catches it and the batch fails (a retry may cure it); when it has none,
/// the object is unusable and its image fails with its reason (status 3).
#[tokio::test]
async fn a_garbled_worker_response_from_s3_is_never_lost_in_silence() {
    let test = "a_garbled_worker_response_from_s3_is_never_lost_in_silence";
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    let dir = job("garbled", 3);
    moto.upload_store(&dir).await;
    let rules =
        json!([{"path": "worker-response/iteration-1/1/", "method": "GET", "fault": "garble"}]);
    let Some(proxy) = FaultProxy::start(test, &moto.endpoint, &rules) else {
        return;
    };
    let run = |extra: &[&str]| {
        let mut args = consolidate_args(None, JOB_OUTPUT, ATTR, OUTPUT, LABEL_CONFIG_URI);
        args.extend_from_slice(extra);
        gtseg(&args, &aws_env(&proxy.endpoint))
    };
    let manifest_uri = format!("{OUTPUT}/manifests/output/output.manifest");
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checksum") && stderr(&out).contains("--resume"),
        "{}",
        stderr(&out)
    );
    assert!(
        moto.get(&manifest_uri).await.is_none(),
        "no manifest with a false failure"
    );

    // The same object uploaded without a checksum (as older tools do): garbled, it is read.
    let key = "output/street/annotations/worker-response/iteration-1/1/2026-11-26_10:00:00.json";
    let plain = aws_sdk_s3::Client::from_conf(
        moto.client()
            .config()
            .to_builder()
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build(),
    );
    plain
        .put_object()
        .bucket("jobs")
        .key(key)
        .body(std::fs::read(response_path(&dir, 1)).unwrap().into())
        .send()
        .await
        .unwrap();
    let out = run(&["--resume"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = moto.get(&manifest_uri).await.unwrap();
    let l: Vec<Value> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        failure(&l[1], ATTR)
            .unwrap()
            .contains("worker-response/iteration-1/1/"),
        "{}",
        l[1]
    );
    assert!(failure(&l[0], ATTR).is_none() && failure(&l[2], ATTR).is_none());
}

/// 4. A symlinked worker-response object, and a symlinked iteration folder, are listed.
#[test]
fn symlinked_worker_responses_are_consolidated() {
    let dir = job("links", 3);
    let elsewhere = temp_dir("safety-links-elsewhere");
    let file = response_path(&dir, 1);
    std::fs::rename(&file, elsewhere.join("1.json")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("1.json"), &file).unwrap();
    let folder = file.parent().unwrap().parent().unwrap().join("2");
    std::fs::rename(&folder, elsewhere.join("2")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("2"), &folder).unwrap();
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    assert!(
        lines(&dir, OUTPUT)
            .iter()
            .all(|l| failure(l, ATTR).is_none())
    );
}

/// 5. One writer per output: a held lock refuses a second run, which writes nothing; two runs
///    started together never both succeed; and a second run into an output never reuses the
///    first one's id.
#[test]
fn one_writer_per_output() {
    let dir = job("lock", 3);
    // A lock held by a process that runs (this test) on this host.
    let holder = json!({"command": "gtseg job consolidate (another)", "host": host(),
                        "pid": std::process::id(), "since": "2026-12-07T10:00:00.000000"});
    write(
        &dir,
        &format!("{OUTPUT}/gtseg.lock"),
        holder.to_string().as_bytes(),
    );
    let before = snapshot(&dir);
    let refused = consolidate(&dir, OUTPUT, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("locked by `gtseg job consolidate (another)`"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(snapshot(&dir), before);
    assert_succeeded(&consolidate(&dir, OUTPUT, &["--break-lock"]));
    assert!(
        !local(&dir, &format!("{OUTPUT}/gtseg.lock")).exists(),
        "released"
    );

    // Two at once into a fresh output: one runs, the other refuses.
    let out2 = "s3://jobs/output/street-v3";
    let spawn = || {
        Command::new(built_binary("gtseg"))
            .args(consolidate_args(
                Some(&dir),
                JOB_OUTPUT,
                ATTR,
                out2,
                LABEL_CONFIG_URI,
            ))
            .env("RUST_LOG", "error")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        [&a, &b].iter().filter(|o| o.status.success()).count(),
        1,
        "{} | {}",
        stderr(&a),
        stderr(&b)
    );
    let loser = if a.status.success() { &b } else { &a };
    assert!(
        stderr(loser).contains("locked by") || stderr(loser).contains("earlier run"),
        "{}",
        stderr(loser)
    );

    // A second run over the first (--force), with the same --creation-date: another id.
    assert_succeeded(&consolidate(&dir, OUTPUT, &["--force"]));
    let requests = local(
        &dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/consolidation-request/iteration-1"),
    );
    let names: Vec<String> = std::fs::read_dir(requests)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let runs: std::collections::BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.split("-batch-").next())
        .collect();
    assert_eq!(runs.len(), 2, "{names:?}");
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// 7. A byte-order mark before the input manifest's first line is not part of it.
#[test]
fn a_byte_order_mark_does_not_cost_line_zero() {
    let dir = job("bom", 2);
    let path = local(&dir, &manifest("street"));
    let mut text = "\u{feff}".as_bytes().to_vec();
    text.extend(std::fs::read(&path).unwrap());
    std::fs::write(&path, text).unwrap();
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let l = lines(&dir, OUTPUT);
    assert!(
        failure(&l[0], ATTR).is_none() && l[0]["line"] == 0,
        "{}",
        l[0]
    );
}

/// 8. A hand-edited state is refused on `--resume`, naming the field.
#[test]
fn an_edited_state_is_refused_on_resume() {
    let dir = job("state", 2);
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let state = local(
        &dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/gtseg-job.json"),
    );
    let mut v: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    v["creation-time-micros"] = json!("abc");
    std::fs::write(&state, v.to_string()).unwrap();
    let before = snapshot(&dir);
    let out = consolidate(&dir, OUTPUT, &["--resume"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("creation-time-micros"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir), before);
}

/// 9. Lines the job labelled by machine are kept as they are, and counted.
#[test]
fn lines_labelled_by_machine_are_kept() {
    let dir = job("machine", 3);
    std::fs::remove_dir_all(response_path(&dir, 2).parent().unwrap()).unwrap();
    let machine = json!({"type": "groundtruth/semantic-segmentation", "human-annotated": "no",
                         "creation-date": "2026-11-26T10:00:00.000000", "job-name": "labeling-job/street"});
    let mut text = String::new();
    for i in 0..3 {
        let mut line = json!({"source-ref": format!("s3://{BUCKET}/images/{i}.png"), "line": i});
        if i == 2 {
            line["street-ref"] = json!("s3://jobs/auto/2.png");
            line["street-ref-metadata"] = machine.clone();
        }
        text.push_str(&format!("{line}\n"));
    }
    write(
        &dir,
        "s3://jobs/output/street/manifests/output/output.manifest",
        text.as_bytes(),
    );
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let l = lines(&dir, OUTPUT);
    assert_eq!(l[2][ATTR], "s3://jobs/auto/2.png");
    assert_eq!(l[2][format!("{ATTR}-metadata")], machine);
    let report: Value = serde_json::from_slice(
        &std::fs::read(local(
            &dir,
            &format!("{OUTPUT}/manifests/output/job-report.json"),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (report["machine-labelled"].clone(), report["failed"].clone()),
        (json!(1), json!(0))
    );
}

/// 11. A stray object (a name that is not UTF-8, a sparse 300 MB file) fails only its image,
///     with its reason; `MAX_PAYLOAD_BYTES` bounds worker-response objects too.
#[test]
fn a_stray_object_fails_only_its_image() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = job("stray", 3);
    let folder = response_path(&dir, 1).parent().unwrap().to_path_buf();
    std::fs::write(
        folder.join(std::ffi::OsStr::from_bytes(b"x\xff.json")),
        b"{}",
    )
    .unwrap();
    let sparse =
        std::fs::File::create(response_path(&dir, 2).with_file_name("2026-11-27_00:00:00.json"))
            .unwrap();
    sparse.set_len(300 << 20).unwrap();
    let out = consolidate(&dir, OUTPUT, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let l = lines(&dir, OUTPUT);
    assert!(failure(&l[0], ATTR).is_none());
    assert!(
        failure(&l[1], ATTR).unwrap().contains("x\u{fffd}.json"),
        "{}",
        l[1]
    );
    assert!(
        failure(&l[2], ATTR).unwrap().contains("over the limit"),
        "{}",
        l[2]
    );

    let dir = job("stray-limit", 2);
    let out = gtseg(
        &consolidate_args(Some(&dir), JOB_OUTPUT, ATTR, OUTPUT, LABEL_CONFIG_URI),
        &[("MAX_PAYLOAD_BYTES", "1000".into())],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        lines(&dir, OUTPUT)
            .iter()
            .all(|l| failure(l, ATTR).is_some_and(|w| w.contains("1000 bytes")))
    );
}

/// 12. Limits hold on the bytes read, not on the size a file reports: `/dev/zero` as a label
///     configuration (an argument or the pin) and as a review's mask.
#[test]
fn limits_hold_on_the_bytes_read() {
    let dir = job("zero", 1);
    let out = gtseg(
        &consolidate_args(Some(&dir), JOB_OUTPUT, ATTR, OUTPUT, "/dev/zero"),
        &[],
    );
    assert!(
        !out.status.success() && stderr(&out).contains("over the limit"),
        "{}",
        stderr(&out)
    );
    let out = gtseg(
        &[
            "replay",
            workspace_root()
                .join("events/pre-annotation/image-line.json")
                .to_str()
                .unwrap(),
            "--store",
            dir.to_str().unwrap(),
        ],
        &[("LABEL_CATEGORY_CONFIG", "/dev/zero".into())],
    );
    assert!(
        !out.status.success() && stderr(&out).contains("over the limit"),
        "{}",
        stderr(&out)
    );

    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let first = &lines(&dir, OUTPUT)[0];
    let mask = local(&dir, first[ATTR].as_str().unwrap());
    std::fs::remove_file(&mask).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &mask).unwrap();
    let report = temp_dir("safety-zero-review");
    let manifest = format!("{OUTPUT}/manifests/output/output.manifest");
    let out = gtseg(&review_args(&dir, &manifest, ATTR, &report), &[]);
    assert_succeeded(&out);
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        page.contains("over the limit"),
        "the row says why it has no picture"
    );
}

/// Typos that used to pass in silence: a mistyped job folder, a worker that is not the job's.
#[test]
fn typos_are_refused_with_what_the_data_holds() {
    let dir = job("typos", 2);
    let out = gtseg(
        &consolidate_args(
            Some(&dir),
            "s3://jobs/output/stret",
            ATTR,
            OUTPUT,
            LABEL_CONFIG_URI,
        ),
        &[],
    );
    assert!(
        !out.status.success() && stderr(&out).contains("no worker response"),
        "{}",
        stderr(&out)
    );
    let out = consolidate(&dir, OUTPUT, &["--exclude-worker", "w9"]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"w1\", \"w2\", \"w3\""),
        "names the job's workers: {}",
        stderr(&out)
    );
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let report = temp_dir("safety-typo-review");
    let manifest = format!("{OUTPUT}/manifests/output/output.manifest");
    let out = gtseg(&review_args(&dir, &manifest, "street-v2", &report), &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("street-v2-ref"),
        "{}",
        stderr(&out)
    );
}

/// Papercut: temporary files that a kill left behind are gone after `--resume`, and objects a
/// local store writes get the usual mode, not a temporary file's 0600.
#[test]
fn a_resume_removes_what_a_kill_left_and_files_are_readable() {
    let dir = job("tmp", 2);
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let mask_dir = local(
        &dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/output"),
    );
    let request_dir = local(
        &dir,
        &format!("{OUTPUT}/annotations/consolidated-annotation/consolidation-request/iteration-1"),
    );
    for d in [&mask_dir, &request_dir] {
        std::fs::write(d.join(".tmpAbC123"), b"half").unwrap();
    }
    assert_succeeded(&consolidate(&dir, OUTPUT, &["--resume"]));
    for d in [&mask_dir, &request_dir] {
        assert!(!d.join(".tmpAbC123").exists());
    }
    let umask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Umask:")
                .map(|u| u32::from_str_radix(u.trim(), 8).unwrap())
        })
        .unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(mask_dir.join("0.png"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o666 & !umask);
}

/// Papercut: a review row names its image by its file name, with its full URI.
#[test]
fn review_rows_name_their_image() {
    let dir = job("names", 2);
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let report = temp_dir("safety-names-review");
    let manifest = format!("{OUTPUT}/manifests/output/output.manifest");
    assert_succeeded(&gtseg(&review_args(&dir, &manifest, ATTR, &report), &[]));
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    let start = page.find("id=\"data\">").unwrap() + "id=\"data\">".len();
    let data: Value =
        serde_json::from_str(&page[start..start + page[start..].find("</script>").unwrap()])
            .unwrap();
    let names: Vec<&str> = data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"0.png") && names.contains(&"1.png"),
        "{names:?}"
    );
    assert_eq!(
        data["rows"][0]["source"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next(),
        Some(names[0])
    );
}

/// 6. A description that names another job (another account's job of the same name) is
///    refused: one account's labels never reach another's job.
#[tokio::test]
async fn another_accounts_job_never_gets_these_labels() {
    let test = "another_accounts_job_never_gets_these_labels";
    let jobs = json!({"street": {"describe": gtseg_tests::events::describe_output("street", LABEL_CONFIG_URI)}});
    let Some(stub) = gtseg_tests::harness::SageMakerStub::start(test, &jobs) else {
        return;
    };
    let dir = temp_dir("safety-accounts");
    copy_tree(&workspace_root().join("events/store"), &dir).unwrap();
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .build();
    let config = gtseg::Config {
        sagemaker_endpoint: Some(stub.endpoint.clone()),
        ..gtseg::Config::default()
    };
    let catalog = gtseg::AnyCatalog::SageMaker(gtseg::Aws::from_sdk_config(sdk, &config).catalog());
    let service = gtseg::Service::with_catalog(gtseg::LocalStore::new(&*dir), config, catalog);
    let line = |account: &str| {
        json!({"version": "2018-10-06",
               "labelingJobArn": format!("arn:aws:sagemaker:us-east-1:{account}:labeling-job/street"),
               "dataObject": {"source-ref": "s3://gt-example-bucket/images/street-0001.png"}})
    };
    let e = service
        .pre_annotation(&line("222222222222"))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "LabelConfigError");
    assert!(
        e.to_string().contains("described another job") && e.to_string().contains("111122223333"),
        "{e}"
    );
    // The job the description is of gets its labels, and that does not serve the other.
    let own = service.pre_annotation(&line("111122223333")).await.unwrap();
    assert!(!own.task_input.labels.is_empty());
    assert!(service.pre_annotation(&line("222222222222")).await.is_err());
}

/// 10. A verification batch whose comments alone pass Lambda's 6 MB still answers: the
///    comments and votes move to each image's report object, and read back whole.
#[tokio::test]
async fn a_verification_response_fits_whatever_the_comments() {
    let dir = temp_dir("safety-comments");
    let comment: String = "誤".repeat(2000);
    let categories = gtseg_tests::events::VERIFY_CATEGORIES;
    let items: Vec<Value> = (0..350)
        .map(|i| {
            let answers: Vec<Value> = (0..3)
                .map(|w| {
                    let a = json!({"crowd-image-classifier": {"label": categories[w % 2], "workerComment": comment}});
                    super::consolidation::inline(&format!("w{w}"), &a)
                })
                .collect();
            json!({"datasetObjectId": i.to_string(), "dataObject": {"s3Uri": "s3://b/i.jpg"}, "annotations": answers})
        })
        .collect();
    let event = super::consolidation::event(
        json!({"labelCategories": categories, "labelAttributeName": "verify"}),
    );
    let response =
        super::consolidation::run_with(&dir, gtseg::Config::default(), &json!(items), event)
            .await
            .expect("the batch answers");
    assert_eq!(response.len(), 350);
    assert!(serde_json::to_vec(&response).unwrap().len() <= gtseg::MAX_RESPONSE_BYTES);
    let meta = &response[0]["consolidatedAnnotation"]["content"]["verify-metadata"];
    assert!(
        meta.get("worker-feedback").is_none() && meta["class-name"].is_string(),
        "{meta}"
    );
    let store = gtseg::LocalStore::new(&*dir);
    let full = gtseg::with_extras(&store, meta).await.unwrap();
    assert_eq!(full["worker-feedback"].as_array().unwrap().len(), 3);
    assert_eq!(full["worker-feedback"][0]["comment"], comment.as_str());
}

/// 13. The review's memory is bounded by the rows it shows and the pixel limit, not by the
///     manifest: many lines cost no more than a few, and masks over the limit get a placeholder.
#[test]
fn the_review_streams_its_manifest_and_bounds_its_pictures() {
    let dir = job("review-memory", 3);
    assert_succeeded(&consolidate(&dir, OUTPUT, &[]));
    let done = lines(&dir, OUTPUT);
    let gtseg_path = built_binary("gtseg").to_str().unwrap().to_owned();
    let peak = |n: usize, tag: &str| {
        let text: String = (0..n).map(|i| format!("{}\n", done[i % 3])).collect();
        let path = dir.join(format!("{tag}.manifest"));
        std::fs::write(&path, text).unwrap();
        let report = temp_dir(&format!("safety-review-{tag}"));
        let mut args = vec!["bench", "--rss-of", "--", gtseg_path.as_str()];
        args.extend(review_args(&dir, path.to_str().unwrap(), ATTR, &report));
        args.extend(["--limit", "20"]);
        let out = gtseg(&args, &[]);
        assert_succeeded(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["error"].is_null(), "{v}");
        let page = std::fs::read_to_string(report.join("index.html")).unwrap();
        assert!(
            page.contains(&format!("\"images\":{n}")),
            "every line counted"
        );
        assert_eq!(
            std::fs::read_dir(report.join("img")).unwrap().count(),
            20 * 4,
            "only the kept rows are drawn"
        );
        v["peak_rss_kib"].as_f64().unwrap() / 1024.0
    };
    let (few, many) = (peak(300, "few"), peak(30_000, "many"));
    assert!(
        many < few + 32.0 && many < 256.0,
        "{few:.0} MiB for 300 lines, {many:.0} MiB for 30,000"
    );

    // Three lines naming one 10000×10000 mask: placeholders, in little memory.
    let big = local(&dir, "s3://jobs/big/0.png");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let mut enc = png::Encoder::new(std::fs::File::create(&big).unwrap(), 10_000, 10_000);
    enc.set_color(png::ColorType::Indexed);
    enc.set_palette(vec![255, 255, 255]);
    let mut w = enc.write_header().unwrap();
    let mut stream = w.stream_writer().unwrap();
    let row = vec![0u8; 10_000];
    for _ in 0..10_000 {
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
    let text: String = (0..3)
        .map(|_| {
            let mut l = done[0].clone();
            l[ATTR] = json!("s3://jobs/big/0.png");
            format!("{l}\n")
        })
        .collect();
    let path = dir.join("big.manifest");
    std::fs::write(&path, text).unwrap();
    let report = temp_dir("safety-review-big");
    let mut args = vec!["bench", "--rss-of", "--", gtseg_path.as_str()];
    args.extend(review_args(&dir, path.to_str().unwrap(), ATTR, &report));
    let out = gtseg(&args, &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["peak_rss_kib"].as_f64().unwrap() / 1024.0 < 256.0, "{v}");
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert_eq!(page.matches("over the review's limit").count(), 3);
}
