//! `gtseg bench --memory`: peak memory on the inputs that used to exhaust a function.
//!
//! Each case is generated once under the bench folder and replayed with `gtseg replay --store`
//! in a fresh process, with the memory of the default deployment (`MAX_MEMORY_MB=1769`) and
//! every core. The peak RSS is the kernel's (`getrusage` of the waited-for child), so any
//! `gtseg` binary can be measured the same way: `--against OLD` gives the figures before a
//! change.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;
use nix::sys::resource::{UsageWho, getrusage};
use serde_json::{Value, json};

use super::{BUCKET, COLORS, LABELS, Rng, answer, dims, scene, worker_answers, write_batch};

/// The memory of the default deployment (template.yaml), in MB.
const FUNCTION_MB: &str = "1769";

/// What making a case gives: its workers per image, its answers per image (in words), and
/// the environment of its replay.
type Made = (usize, String, Vec<(&'static str, String)>);

/// One replay to measure: its folder (event.json inside) and its environment.
struct Case {
    name: String,
    dir: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

/// What one replay cost.
pub(super) struct Cost {
    pub(super) peak_rss_kib: u64,
    pub(super) seconds: f64,
    /// The last line of the error, if the replay failed.
    pub(super) failure: Option<String>,
    /// The images of a consolidation response.
    images: Option<u64>,
}

/// `gtseg bench --memory`: generates every case under `root`, replays each with this binary
/// (and `against`), and returns the Markdown table.
pub(super) fn run(
    root: &Path,
    against: Option<&Path>,
    only: Option<&str>,
    keep: bool,
) -> anyhow::Result<String> {
    let this = std::env::current_exe()?;
    let mut table = String::from(
        "| case | workers | answers | before: peak RSS | before: time | before: outcome | peak RSS | time | outcome |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, make) in CASES {
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let dir = root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        eprintln!("generating {name} ...");
        let (workers, answers, env) = make(&dir).with_context(|| name.to_string())?;
        let case = Case {
            name: (*name).to_owned(),
            dir: dir.clone(),
            env,
        };
        let before = match against {
            Some(bin) => cell(&replay(bin, &case)?),
            None => ["–".to_owned(), "–".to_owned(), "–".to_owned()],
        };
        let after = cell(&replay(&this, &case)?);
        let line = format!(
            "| {} | {workers} | {answers} | {} | {} | {} | {} | {} | {} |",
            case.name, before[0], before[1], before[2], after[0], after[1], after[2]
        );
        eprintln!("{line}");
        let _ = writeln!(table, "{line}");
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(table)
}

fn cell(c: &Cost) -> [String; 3] {
    let rss = format!("{:.0} MiB", c.peak_rss_kib as f64 / 1024.0);
    let time = if c.seconds < 1.0 {
        format!("{:.0} ms", c.seconds * 1e3)
    } else {
        format!("{:.1} s", c.seconds)
    };
    let outcome = match (&c.failure, c.images) {
        (Some(msg), _) => format!("refused: {msg}"),
        (None, Some(n)) => format!("{n} images"),
        (None, None) => "a task input".to_owned(),
    };
    [rss, time, outcome]
}

/// Replays `case` with `bin` in a child of a fresh `gtseg bench --rss-of` process, whose
/// children's peak RSS is then this replay's alone.
fn replay(bin: &Path, case: &Case) -> anyhow::Result<Cost> {
    let mut args: Vec<std::ffi::OsString> = vec!["replay".into(), "--compact".into()];
    args.extend(["--store".into(), case.dir.clone().into_os_string()]);
    args.push(case.dir.join("event.json").into_os_string());
    let mut env = case.env.clone();
    env.push(("MAX_MEMORY_MB", FUNCTION_MB.to_owned()));
    measure_run(&case.name, bin, &args, &env)
}

/// Runs `bin ARGS` with `env` added in a child of a fresh `gtseg bench --rss-of` process, and
/// returns what it cost.
pub(super) fn measure_run(
    name: &str,
    bin: &Path,
    args: &[std::ffi::OsString],
    env: &[(&'static str, String)],
) -> anyhow::Result<Cost> {
    let this = std::env::current_exe()?;
    let mut cmd = Command::new(this);
    cmd.args(["bench", "--rss-of", "--"])
        .arg(bin)
        .args(args)
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = cmd.output()?;
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{name}: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(Cost {
        peak_rss_kib: report["peak_rss_kib"].as_u64().unwrap_or(0),
        seconds: report["seconds"].as_f64().unwrap_or(0.0),
        failure: report["error"].as_str().map(str::to_owned),
        images: report["images"].as_u64(),
    })
}

/// `gtseg bench --rss-of -- BIN ARGS...`: runs BIN and prints its peak RSS, its time, the
/// images of its response, and (when it failed) the last line of its error, as JSON.
pub(super) fn rss_of(command: &[std::ffi::OsString]) -> anyhow::Result<()> {
    let (bin, args) = command.split_first().context("--rss-of needs a command")?;
    let t = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", bin.to_string_lossy()))?;
    let seconds = t.elapsed().as_secs_f64();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let error = (!out.status.success()).then(|| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().last().unwrap_or("(no message)");
        line.chars().take(120).collect::<String>()
    });
    let images = serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|r| r.as_array().map(Vec::len));
    // Linux reports ru_maxrss in KiB.
    println!(
        "{}",
        json!({"peak_rss_kib": usage.max_rss(), "seconds": seconds, "error": error, "images": images})
    );
    Ok(())
}

/// A case: writes its inputs and event under the folder, and returns its workers per image,
/// its answer bytes (for the table) and the settings it runs with.
type Make = fn(&Path) -> std::io::Result<Made>;

const CASES: &[(&str, Make)] = &[
    ("12 MP, 1 image", |d| street(d, 1, "majority")),
    ("12 MP, 160 images", |d| street(d, 160, "majority")),
    ("12 MP, 1 image, weighted", |d| street(d, 1, "weighted")),
    ("12 MP, 160 images, weighted", |d| {
        street(d, 160, "weighted")
    }),
    ("noise 1000000×100", |d| noise(d, (1_000_000, 100), 16)),
    ("noise 40000×2500", |d| noise(d, (40_000, 2_500), 9)),
    (
        "1,000 tiny images, 3,000 workers, 254 classes, weighted",
        crowd,
    ),
    ("label config of 4 MiB (pre-annotation)", |d| {
        label_config(d, 4 << 20)
    }),
    ("label config of 60 MB (pre-annotation)", |d| {
        label_config(d, 60_000_000)
    }),
];

fn mib(bytes: usize) -> String {
    match bytes {
        0..0x10_0000 => format!("{:.0} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.0} MiB", bytes as f64 / f64::from(1 << 20)),
    }
}

/// The benchmark's 12 MP street scene × 5 workers, `images` times over (the same answers under
/// other ids: the cost of a batch does not depend on what its images show).
fn street(dir: &Path, images: usize, algorithm: &str) -> std::io::Result<Made> {
    let (w, h) = dims(12);
    let shapes = scene(i64::from(w), i64::from(h), 42);
    let answers = worker_answers(&shapes, (w, h), 5, |_| &COLORS);
    let bytes = answers.iter().map(|a| a.to_string().len()).sum::<usize>() * images;
    let payload: Vec<Value> = (0..images)
        .map(|i| {
            json!({"datasetObjectId": i.to_string(),
                   "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/{i}.jpg")},
                   "annotations": answers})
        })
        .collect();
    write_batch(dir, &payload, &LABELS)?;
    Ok((
        5,
        mib(bytes),
        vec![("CONSOLIDATION_ALGORITHM", algorithm.to_owned())],
    ))
}

/// A PNG of `w`×`h` whose every pixel is one of `colors` at random, or unpainted (transparent)
/// one time in `colors.len() + 1`. Indexed (8 bits, or 4 for 15 colours or fewer), as
/// noise in RGBA would not fit in an answer object.
fn noise_png(rng: &mut Rng, (w, h): (u32, u32), colors: &[[u8; 3]]) -> std::io::Result<Vec<u8>> {
    let n = colors.len() + 1;
    let four = n <= 16;
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(if four {
        png::BitDepth::Four
    } else {
        png::BitDepth::Eight
    });
    let mut palette = vec![0u8; 3];
    let mut alpha = vec![0u8];
    for c in colors {
        palette.extend_from_slice(c);
        alpha.push(255);
    }
    enc.set_palette(palette);
    enc.set_trns(alpha);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(std::io::Error::other)?;
    let mut stream = writer.stream_writer().map_err(std::io::Error::other)?;
    let mut row = vec![
        0u8;
        if four {
            (w as usize).div_ceil(2)
        } else {
            w as usize
        }
    ];
    for _ in 0..h {
        if four {
            for (i, b) in row.iter_mut().enumerate() {
                let hi = rng.below(n as u64) as u8;
                let lo = if 2 * i + 1 < w as usize {
                    rng.below(n as u64) as u8
                } else {
                    0
                };
                *b = (hi << 4) | lo;
            }
        } else {
            row.iter_mut().for_each(|b| *b = rng.below(n as u64) as u8);
        }
        std::io::Write::write_all(&mut stream, &row)?;
    }
    stream.finish().map_err(std::io::Error::other)?;
    drop(writer);
    Ok(out)
}

/// One image of pure noise in the 8 labels, `workers` answers, each its own answer object
/// (`annotationData.s3Uri`, as large answers are): 3 distinct noise masks, in turn.
fn noise(dir: &Path, (w, h): (u32, u32), workers: usize) -> std::io::Result<Made> {
    let labels: Vec<(&str, [u8; 3])> = LABELS.iter().copied().zip(COLORS).collect();
    let mut rng = Rng(7);
    let mut uris = Vec::new();
    let mut bytes = 0;
    for k in 0..3 {
        let png = noise_png(&mut rng, (w, h), &COLORS)?;
        let object = answer("unused", &png, (w, h), &labels)["annotationData"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        bytes += object.len();
        let key = format!("answers/noise-{k}.json");
        std::fs::create_dir_all(dir.join(BUCKET).join("answers"))?;
        std::fs::write(dir.join(BUCKET).join(&key), object)?;
        uris.push(format!("s3://{BUCKET}/{key}"));
    }
    let annotations: Vec<Value> = (0..workers)
        .map(|k| {
            json!({"workerId": format!("private.us-east-1.worker{k}"),
                   "annotationData": {"s3Uri": uris[k % uris.len()]}})
        })
        .collect();
    let payload = [json!({"datasetObjectId": "0",
        "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/0.jpg")},
        "annotations": annotations})];
    write_batch(dir, &payload, &LABELS)?;
    Ok((workers, mib(bytes * workers / 3), Vec::new()))
}

/// 1,000 images of 16×16 noise in 254 classes, each painted by 3 workers that paint nothing
/// else: 3,000 distinct workers for the weighted fusion's estimate.
fn crowd(dir: &Path) -> std::io::Result<Made> {
    let names: Vec<String> = (0..254).map(|i| format!("class-{i}")).collect();
    let colors: Vec<[u8; 3]> = (0..254u32)
        .map(|i| [(i * 37 % 256) as u8, (i * 101 % 256) as u8, i as u8])
        .collect();
    let labels: Vec<(&str, [u8; 3])> = names
        .iter()
        .map(String::as_str)
        .zip(colors.iter().copied())
        .collect();
    let mut rng = Rng(11);
    let mut bytes = 0;
    let payload = (0..1000)
        .map(|i| {
            let annotations = (0..3)
                .map(|k| {
                    let png = noise_png(&mut rng, (16, 16), &colors)?;
                    let a = answer(
                        &format!("private.us-east-1.w{i}-{k}"),
                        &png,
                        (16, 16),
                        &labels,
                    );
                    bytes += a.to_string().len();
                    Ok(a)
                })
                .collect::<std::io::Result<Vec<Value>>>()?;
            Ok(json!({"datasetObjectId": i.to_string(),
                      "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/{i}.jpg")},
                      "annotations": annotations}))
        })
        .collect::<std::io::Result<Vec<Value>>>()?;
    let label_names: Vec<&str> = names.iter().map(String::as_str).collect();
    write_batch(dir, &payload, &label_names)?;
    Ok((
        3,
        mib(bytes),
        vec![("CONSOLIDATION_ALGORITHM", "weighted".to_owned())],
    ))
}

/// A pre-annotation event whose label configuration (pinned by `LABEL_CATEGORY_CONFIG`) is
/// `size` bytes: the 8 labels, and long worker instructions.
fn label_config(dir: &Path, size: usize) -> std::io::Result<Made> {
    let labels: Vec<Value> = LABELS.iter().map(|l| json!({"label": l})).collect();
    let mut config = json!({"document-version": "2018-11-28", "labels": labels,
        "instructions": {"shortInstruction": "Paint every pixel.", "fullInstruction": ""}});
    let filler = size.saturating_sub(config.to_string().len());
    config["instructions"]["fullInstruction"] = Value::String("<p>paint</p>".repeat(filler / 12));
    std::fs::create_dir_all(dir.join(BUCKET))?;
    std::fs::write(dir.join(BUCKET).join("labels.json"), config.to_string())?;
    let event = json!({"version": "2018-10-06",
        "labelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/bench",
        "dataObject": {"source-ref": format!("s3://{BUCKET}/images/0.jpg")}});
    std::fs::write(dir.join("event.json"), event.to_string())?;
    Ok((
        0,
        mib(size),
        vec![(
            "LABEL_CATEGORY_CONFIG",
            format!("s3://{BUCKET}/labels.json"),
        )],
    ))
}
