//! The sample events of `events/` and the objects they reference, built in code.
//!
//! `cargo run -p gtseg-tests --bin make-events` rewrites `events/`; a test checks that the
//! committed files are exactly what this code builds, so the fixtures never drift.

use std::path::Path;

use serde_json::{Value, json};

use crate::fixtures::{
    Background, LABELS, Rgb, Scene, TAB10, answer_json, encode, mappings_for, worker_png,
};

/// The sample bucket (a local-store folder under `events/store/`).
pub const BUCKET: &str = "gt-example-bucket";
/// The sample job's output prefix.
pub const OUTPUT: &str = "s3://gt-example-bucket/output/street-scenes/annotations";
/// The sample label category configuration, as an s3:// URI in the local store.
pub const LABEL_CONFIG_URI: &str = "s3://gt-example-bucket/config/labels.json";
/// The sample job ARN.
pub const JOB_ARN: &str = "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes";
/// The size of the sample images.
pub const SIZE: (u32, u32) = (192, 128);

/// One file of the sample set: path relative to `events/`, and its bytes.
pub type File = (String, Vec<u8>);

fn json_file(path: &str, v: &Value) -> File {
    let mut text = serde_json::to_vec_pretty(v).expect("JSON");
    text.push(b'\n');
    (path.to_owned(), text)
}

fn store_path(uri: &str) -> String {
    format!("store/{}", uri.strip_prefix("s3://").expect("s3 uri"))
}

/// A worker whose colours differ from the UI defaults (a custom label-colour setup).
pub const OTHER_COLORS: [Rgb; 4] = [
    [0xe6, 0x19, 0x4b],
    [0x46, 0xf0, 0xf0],
    [0xf5, 0x82, 0x31],
    [0x91, 0x1e, 0xb4],
];

/// Every sample file, in a fixed order.
pub fn sample_files() -> Vec<File> {
    let (w, h) = SIZE;
    let mut files = Vec::new();

    files.push(json_file(
        &store_path(LABEL_CONFIG_URI),
        &json!({"document-version": "2018-11-28",
                "labels": LABELS.iter().map(|l| json!({"label": l})).collect::<Vec<_>>(),
                "instructions": {"shortInstruction": "Paint every car, road, person and building.",
                                 "fullInstruction": "Leave sky and anything else unpainted."}}),
    ));
    // The "photos": a rendering of the scene (neither function reads them; the UI would).
    for (name, shift) in [("street-0001.png", 0), ("street-0002.png", 6)] {
        let scene = Scene::street(w, h, shift);
        let shades: [Rgb; 5] = [
            [0x9f, 0xc8, 0xe8],
            [0x40, 0x40, 0x48],
            [0x55, 0x55, 0x5a],
            [0xc0, 0x80, 0x60],
            [0xa0, 0x90, 0x80],
        ];
        let px: Vec<u8> = scene
            .classes
            .iter()
            .flat_map(|&c| shades[usize::from(c)])
            .collect();
        files.push((
            format!("store/{BUCKET}/images/{name}"),
            encode(w, h, png::ColorType::Rgb, &px),
        ));
    }

    // Pre-annotation: a plain line, an adjustment line, a text line.
    let pre = |line: Value| json!({"version": "2018-10-16", "labelingJobArn": JOB_ARN, "dataObject": line});
    files.push(json_file(
        "pre-annotation/image-line.json",
        &pre(json!({"source-ref": format!("s3://{BUCKET}/images/street-0001.png"), "camera": "front-left"})),
    ));
    let previous = format!(
        "s3://{BUCKET}/output/street-scenes-v1/annotations/consolidated-annotation/output/0.png"
    );
    let color_map: serde_json::Map<String, Value> = std::iter::once(("0".to_owned(), json!({"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.91234})))
        .chain(LABELS.iter().enumerate().map(|(i, l)| {
            ((i + 1).to_string(), json!({"class-name": l, "hex-color": crate::fixtures::hex(TAB10[i]), "confidence": 0.91234}))
        }))
        .collect();
    files.push(json_file(
        "pre-annotation/adjustment-line.json",
        &pre(json!({
            "source-ref": format!("s3://{BUCKET}/images/street-0001.png"),
            "street-scenes-v1-ref": previous,
            "street-scenes-v1-ref-metadata": {
                "internal-color-map": color_map,
                "type": "groundtruth/semantic-segmentation",
                "human-annotated": "yes",
                "creation-date": "2026-11-20T08:15:42.511235",
                "job-name": "labeling-job/street-scenes-v1"}})),
    ));
    let prev_scene = Scene::street(w, h, 0);
    let mut plte = vec![255u8, 255, 255];
    plte.extend(TAB10.iter().flatten());
    files.push((store_path(&previous), indexed_png(&prev_scene, &plte)));
    files.push(json_file(
        "pre-annotation/text-line.json",
        &json!({"version": "2018-10-06", "labelingJobArn": JOB_ARN,
                "dataObject": {"source": "A street with a red car parked beside a cyclist."}}),
    ));

    // Consolidation: two images. Image 0 has three workers: the UI's colours, a worker with
    // other colours and a sloppier car, and a worker who skipped the person (answer by s3Uri).
    // Image 1 has two answers (the third worker timed out), one of them of the wrong size.
    let payload_uri = format!(
        "{OUTPUT}/consolidated-annotation/consolidation-request/iteration-1/2026-11-26_10:00:00.json"
    );
    let element = "crowd-semantic-segmentation";
    let s0 = Scene::street(w, h, 0);
    let s0_sloppy = Scene::street(w, h, 3);
    let s0_no_person = Scene::street(w, h, 0).without(3, 2);
    let edge: Vec<usize> = (0..6).map(|i| (90 * w as usize) + 96 + i).collect();
    let a0 = answer_json(
        element,
        &worker_png(&s0, &TAB10, Background::Transparent, &edge),
        w,
        h,
        &mappings_for(&s0, &TAB10),
    );
    let a1 = answer_json(
        element,
        &worker_png(&s0_sloppy, &OTHER_COLORS, Background::White, &[]),
        w,
        h,
        &mappings_for(&s0_sloppy, &OTHER_COLORS),
    );
    let a2 = answer_json(
        element,
        &worker_png(&s0_no_person, &TAB10, Background::Transparent, &[]),
        w,
        h,
        &mappings_for(&s0_no_person, &TAB10),
    );
    // An answer kept as its own object (`annotationData.s3Uri`), not inline.
    let a2_uri = format!("{OUTPUT}/worker-answers/0/O5P6Q7R8S9T0U1.json");
    files.push(json_file(&store_path(&a2_uri), &a2));

    let s1 = Scene::street(w, h, 6);
    let small = Scene::street(w / 2, h / 2, 3);
    let b0 = answer_json(
        element,
        &worker_png(&s1, &TAB10, Background::Transparent, &[]),
        w,
        h,
        &mappings_for(&s1, &TAB10),
    );
    let b1 = answer_json(
        element,
        &worker_png(&small, &TAB10, Background::Transparent, &[]),
        w,
        h,
        &mappings_for(&small, &TAB10),
    );

    let content = |v: &Value| json!({"content": v.to_string()});
    let payload = json!([
        {"datasetObjectId": "0",
         "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/street-0001.png")},
         "annotations": [
            {"workerId": "private.us-east-1.A1B2C3D4E5F6G7", "annotationData": content(&a0)},
            {"workerId": "private.us-east-1.H8I9J0K1L2M3N4", "annotationData": content(&a1)},
            {"workerId": "private.us-east-1.O5P6Q7R8S9T0U1", "annotationData": {"s3Uri": a2_uri}}]},
        {"datasetObjectId": "1",
         "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/street-0002.png")},
         "annotations": [
            {"workerId": "private.us-east-1.A1B2C3D4E5F6G7", "annotationData": content(&b0)},
            {"workerId": "private.us-east-1.H8I9J0K1L2M3N4", "annotationData": content(&b1)}]}
    ]);
    files.push(json_file(&store_path(&payload_uri), &payload));
    let mut event = json!({"version": "2018-10-06",
            "labelingJobArn": JOB_ARN,
            "labelCategories": LABELS,
            "labelAttributeName": "street-scenes-ref",
            "roleArn": "arn:aws:iam::111122223333:role/GroundTruthJobRole",
            "outputConfig": OUTPUT,
            "maxHumanWorkersPerDataObject": 3,
            "payload": {"s3Uri": payload_uri}});
    files.push(json_file("consolidation/street-scenes.json", &event));
    let workers = [
        "private.us-east-1.A1B2C3D4E5F6G7",
        "private.us-east-1.H8I9J0K1L2M3N4",
        "private.us-east-1.O5P6Q7R8S9T0U1",
    ];
    let responses = [
        (
            "2026-11-26_09:58:31.json",
            vec![(workers[0], &a0), (workers[1], &a1), (workers[2], &a2)],
        ),
        (
            "2026-11-26_09:59:02.json",
            vec![(workers[0], &b0), (workers[1], &b1)],
        ),
    ];
    files.extend(finished_job_files(&files, &event, &responses));
    // As real jobs send it: without labelCategories, so the labels come from the job.
    event.as_object_mut().map(|e| e.remove("labelCategories"));
    files.push(json_file(
        "consolidation/street-scenes-from-job.json",
        &event,
    ));
    files.push(json_file(
        "labeling-job/street-scenes.json",
        &describe_output("street-scenes", LABEL_CONFIG_URI),
    ));
    files.extend(verification_files(&color_map, &previous));
    files
}

/// The time the sample job's consolidation ran: 2026-11-26T10:00:03.511235Z.
const CONSOLIDATED_AT_MICROS: u64 = 1_795_687_203_511_235;

/// The sample job once it has finished, as Ground Truth leaves it: its input manifest, each
/// image's worker-response object (`{"answers": [...]}`), the consolidation function's saved
/// response with its masks and disagreement maps (made here by the function's own code, on
/// `event`), and Ground Truth's output manifest, which keeps only its own metadata keys.
fn finished_job_files(
    base: &[File],
    event: &Value,
    responses: &[(&str, Vec<(&str, &Value)>)],
) -> Vec<File> {
    let mut files = Vec::new();
    let sources = [1, 2].map(|i| format!("s3://{BUCKET}/images/street-000{i}.png"));
    let manifest: String = sources
        .iter()
        .map(|s| format!("{}\n", json!({"source-ref": s})))
        .collect();
    files.push((
        format!("store/{BUCKET}/manifests/street-scenes.manifest"),
        manifest.into_bytes(),
    ));
    for (id, (name, answers)) in responses.iter().enumerate() {
        let list: Vec<(&str, &Value, &str)> = answers
            .iter()
            .map(|(w, a)| (*w, *a, "2026-11-26T09:57:40.211Z"))
            .collect();
        files.push(json_file(
            &store_path(&format!("{OUTPUT}/worker-response/iteration-1/{id}/{name}")),
            &crate::finished::worker_response(&list),
        ));
    }
    let (response, written) = consolidate(base, event);
    files.push(json_file(
        &store_path(&format!(
            "{OUTPUT}/consolidated-annotation/consolidation-response/iteration-1/2026-11-26_10:00:03.json"
        )),
        &response,
    ));
    files.extend(written);
    let attr = "street-scenes-ref";
    let mut manifest = String::new();
    for (item, source) in response.as_array().into_iter().flatten().zip(&sources) {
        let content = &item["consolidatedAnnotation"]["content"];
        let mut meta = json!({});
        for key in [
            "internal-color-map",
            "type",
            "human-annotated",
            "creation-date",
            "job-name",
        ] {
            meta[key] = content[format!("{attr}-metadata")][key].clone();
        }
        let line =
            json!({"source-ref": source, attr: content[attr], format!("{attr}-metadata"): meta});
        manifest.push_str(&format!("{line}\n"));
    }
    files.push((
        store_path("s3://gt-example-bucket/output/street-scenes/manifests/output/output.manifest"),
        manifest.into_bytes(),
    ));
    files
}

/// Runs the consolidation function's code on `event` over the store files of `base`: its
/// response, and the masks and maps it wrote, as sample files.
fn consolidate(base: &[File], event: &Value) -> (Value, Vec<File>) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, bytes) in base {
        if let Some(rel) = rel.strip_prefix("store/") {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, bytes).expect("write");
        }
    }
    let service = gtseg::Service::new(gtseg::LocalStore::new(dir.path()), gtseg::Config::default());
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(CONSOLIDATED_AT_MICROS);
    let response = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(service.replay(event, at))
        .expect("the sample batch consolidates");
    let written = walkdir::WalkDir::new(dir.path())
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir.path())
                .ok()?
                .to_string_lossy()
                .into_owned();
            let new = !base
                .iter()
                .any(|(b, _)| b.strip_prefix("store/") == Some(rel.as_str()));
            new.then(|| {
                (
                    format!("store/{rel}"),
                    std::fs::read(e.path()).expect("read"),
                )
            })
        })
        .collect();
    (response, written)
}

/// The verification job's categories (its label list), as Ground Truth's console offers them.
pub const VERIFY_CATEGORIES: [&str; 3] = [
    "Label(s) correct",
    "Incorrect label - missed object",
    "Incorrect label - segmentation not accurate enough",
];

/// The sample verification job's label category configuration.
pub const VERIFY_CONFIG_URI: &str = "s3://gt-example-bucket/config/verification-labels.json";

/// The sample verification job: workers check `street-scenes-v1`'s masks. A pre-annotation
/// line carrying that job's label, and a batch of two images with three and four answers
/// (comments, and one category that is not the job's).
fn verification_files(color_map: &serde_json::Map<String, Value>, previous: &str) -> Vec<File> {
    let name = "verify-street";
    let arn = format!("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/{name}");
    let output = format!("s3://{BUCKET}/output/{name}/annotations");
    let mut files = vec![json_file(
        &store_path(VERIFY_CONFIG_URI),
        &json!({"document-version": "2018-11-28",
                "labels": VERIFY_CATEGORIES.iter().map(|l| json!({"label": l})).collect::<Vec<_>>(),
                "auditLabelAttributeName": "street-scenes-v1-ref",
                "instructions": {"shortInstruction": "Is every object painted, with the right label and a tight outline?",
                                 "fullInstruction": "Pick the first category that applies; say what is wrong in a comment."}}),
    )];
    files.push(json_file(
        "pre-annotation/verification-line.json",
        &json!({"version": "2018-10-16", "labelingJobArn": arn, "dataObject": {
            "source-ref": format!("s3://{BUCKET}/images/street-0001.png"),
            "street-scenes-v1-ref": previous,
            "street-scenes-v1-ref-metadata": {
                "internal-color-map": color_map,
                "type": "groundtruth/semantic-segmentation",
                "human-annotated": "yes",
                "creation-date": "2026-11-20T08:15:42.511235",
                "job-name": "labeling-job/street-scenes-v1"}}}),
    ));
    let answer = |label: &str, comment: Option<&str>| {
        let mut a = json!({"label": label});
        if let Some(c) = comment {
            a["workerComment"] = json!(c);
        }
        json!({"content": json!({"crowd-image-classifier": a}).to_string()})
    };
    let [correct, missed, loose] = VERIFY_CATEGORIES;
    let payload_uri = format!(
        "{output}/consolidated-annotation/consolidation-request/iteration-1/2026-11-30_10:00:00.json"
    );
    let payload = json!([
        {"datasetObjectId": "0",
         "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/street-0001.png")},
         "annotations": [
            {"workerId": "private.us-east-1.A1B2C3D4E5F6G7", "annotationData": answer(correct, None)},
            {"workerId": "private.us-east-1.H8I9J0K1L2M3N4", "annotationData": answer(correct, Some(""))},
            {"workerId": "private.us-east-1.O5P6Q7R8S9T0U1", "annotationData": answer(missed, Some("the car on the left is missing"))}]},
        {"datasetObjectId": "1",
         "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/street-0002.png")},
         "annotations": [
            {"workerId": "private.us-east-1.A1B2C3D4E5F6G7", "annotationData": answer(loose, Some("the road bleeds into the pavement"))},
            {"workerId": "private.us-east-1.H8I9J0K1L2M3N4", "annotationData": answer(loose, None)},
            {"workerId": "private.us-east-1.O5P6Q7R8S9T0U1", "annotationData": answer(correct, None)},
            {"workerId": "private.us-east-1.V2W3X4Y5Z6A7B8", "annotationData": answer("Looks fine", None)}]}
    ]);
    files.push(json_file(&store_path(&payload_uri), &payload));
    files.push(json_file(
        "consolidation/verify-street.json",
        &json!({"version": "2018-10-06",
                "labelingJobArn": arn,
                "labelAttributeName": name,
                "roleArn": "arn:aws:iam::111122223333:role/GroundTruthJobRole",
                "outputConfig": output,
                "maxHumanWorkersPerDataObject": 3,
                "payload": {"s3Uri": payload_uri}}),
    ));
    let mut job = describe_output(name, VERIFY_CONFIG_URI);
    job["LabelAttributeName"] = json!(name);
    job["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"] =
        json!(format!("s3://{BUCKET}/templates/verification.liquid.html"));
    job["HumanTaskConfig"]["TaskTitle"] = json!("Verify the street-scene masks");
    job["HumanTaskConfig"]["TaskDescription"] = json!(
        "Check each mask: is every object painted, with the right label and a tight outline?"
    );
    files.push(json_file(&format!("labeling-job/{name}.json"), &job));
    files
}

/// What `aws sagemaker describe-labeling-job` prints for a semantic-segmentation job named
/// `name` whose label category configuration is `config_uri` (every member botocore's model
/// requires, and the ones the functions read).
pub fn describe_output(name: &str, config_uri: &str) -> Value {
    let account = "111122223333";
    json!({
        "LabelingJobStatus": "InProgress",
        "LabelCounters": {"TotalLabeled": 0, "HumanLabeled": 0, "MachineLabeled": 0,
                          "FailedNonRetryableError": 0, "Unlabeled": 2},
        "CreationTime": 1_795_680_000.123,
        "LastModifiedTime": 1_795_687_200.456,
        "JobReferenceCode": "111122223333a1b2c3d4",
        "LabelingJobName": name,
        "LabelingJobArn": format!("arn:aws:sagemaker:us-east-1:{account}:labeling-job/{name}"),
        "LabelAttributeName": format!("{name}-ref"),
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": format!("s3://{BUCKET}/manifests/{name}.manifest")}}},
        "OutputConfig": {"S3OutputPath": format!("s3://{BUCKET}/output/")},
        "RoleArn": format!("arn:aws:iam::{account}:role/GroundTruthJobRole"),
        "LabelCategoryConfigS3Uri": config_uri,
        "HumanTaskConfig": {
            "WorkteamArn": format!("arn:aws:sagemaker:us-east-1:{account}:workteam/private-crowd/street-team"),
            "UiConfig": {"UiTemplateS3Uri": format!("s3://{BUCKET}/templates/labeling.liquid.html")},
            "PreHumanTaskLambdaArn": format!("arn:aws:lambda:us-east-1:{account}:function:gt-SageMaker-Pre"),
            "TaskTitle": "Semantic segmentation: paint every pixel with its label",
            "TaskDescription": "Paint each object of the image with its label; leave the rest unpainted.",
            "NumberOfHumanWorkersPerDataObject": 3,
            "TaskTimeLimitInSeconds": 3600,
            "TaskAvailabilityLifetimeInSeconds": 864_000,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": format!("arn:aws:lambda:us-east-1:{account}:function:gt-SageMaker-Acs")}
        }
    })
}

fn indexed_png(scene: &Scene, plte: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, scene.width, scene.height);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(plte.to_vec());
    let mut wr = enc.write_header().expect("PNG header");
    wr.write_image_data(&scene.classes).expect("PNG data");
    wr.finish().expect("PNG end");
    out
}

/// Writes every sample file under `root` (normally `events/`).
pub fn write_sample_files(root: &Path) -> std::io::Result<()> {
    for (rel, bytes) in sample_files() {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, bytes)?;
    }
    Ok(())
}
