//! `gtseg bench`: the consolidation benchmark (issue: performance).
//!
//! For each size (megapixels) and worker count it generates a realistic street scene as each
//! worker would paint it (RGBA PNGs as the labeling UI exports them, jittered outlines, a
//! missed object, one worker with other colours), writes a one-image payload to a local
//! store, and then, in a fresh process so that peak memory belongs to consolidation alone:
//! - times the whole function (read the payload, decode, vote, encode, write the mask);
//! - times the floor: merely decoding the same worker PNGs with the same decoder;
//! - reads the process's peak RSS (VmHWM).
//!
//! `--batch` also times a many-image batch on one thread and on every core; `--memory` (in
//! `memory`) measures peak memory on hostile inputs; `--job` (in `job`) measures whole-job
//! consolidation.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use gtseg::{Config, LocalStore, Service};
use serde_json::{Value, json};

mod job;
mod memory;

/// The labels of the benchmark job (8, as in the reference work).
const LABELS: [&str; 8] = [
    "road", "sidewalk", "building", "car", "person", "tree", "pole", "sign",
];
const COLORS: [[u8; 3]; 8] = [
    [0x2c, 0xa0, 0x2c],
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
];
const OTHER_COLORS: [[u8; 3]; 8] = [
    [0xe6, 0x19, 0x4b],
    [0x3c, 0xb4, 0x4b],
    [0xff, 0xe1, 0x19],
    [0x43, 0x63, 0xd8],
    [0xf5, 0x82, 0x31],
    [0x91, 0x1e, 0xb4],
    [0x46, 0xf0, 0xf0],
    [0xf0, 0x32, 0xe6],
];
const BUCKET: &str = "bench-bucket";

/// Options of `gtseg bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image sizes, in megapixels (4:3).
    #[arg(long, value_delimiter = ',', default_value = "1,12,48")]
    sizes: Vec<u32>,
    /// Worker counts.
    #[arg(long, value_delimiter = ',', default_value = "3,5,9")]
    workers: Vec<usize>,
    /// Runs per measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also time a batch of many 1 MP images on one thread and on every core.
    #[arg(long)]
    batch: bool,
    /// Where to generate the inputs (default: a folder under the system's temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the generated inputs (DIR/<size>mp-<workers>w/, with event.json) for profiling
    /// or for the numpy + Pillow comparison script.
    #[arg(long)]
    keep: bool,
    /// Measure peak memory instead, on the cases that used to exhaust a function: long
    /// batches, wide noisy masks with many workers, many distinct workers and classes for the
    /// weighted fusion, a large label configuration.
    #[arg(long)]
    memory: bool,
    /// With --memory: also run each case with this other gtseg binary (an older build), for
    /// figures before and after a change.
    #[arg(long, value_name = "BIN")]
    against: Option<PathBuf>,
    /// With --memory: only the cases whose name contains this text (e.g. `noise`).
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Measure whole-job consolidation instead: `gtseg job consolidate` on a finished job of
    /// --images images (1 MP, 3 workers) against `gtseg replay` of them as one batch, and the
    /// job's peak memory for 100 and 10,000 small images.
    #[arg(long)]
    job: bool,
    /// With --job: the images of the job.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// With --job: also upload the job to this existing bucket of the S3 the environment
    /// names (e.g. moto with AWS_ENDPOINT_URL) and measure both runs there.
    #[arg(long, value_name = "BUCKET")]
    s3_bucket: Option<String>,
    /// Run one measurement on an already generated DIR (what every case runs, in a fresh
    /// process) and print it as JSON: end to end, the decode-only floor, and peak RSS.
    #[arg(long, value_name = "DIR")]
    measure: Option<PathBuf>,
    /// Run the command after `--` and print its peak RSS and time as JSON (what --memory runs
    /// for every case, so that the children's peak is that command's alone).
    #[arg(long, requires = "command")]
    rss_of: bool,
    /// The command of --rss-of.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

/// A deterministic generator (SplitMix64): the same scene on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A painted shape: class, and either a box or a disc, in pixels.
#[derive(Clone, Copy)]
enum Shape {
    Box {
        class: u8,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
    },
    Disc {
        class: u8,
        cx: i64,
        cy: i64,
        r: i64,
    },
}

/// The scene: shapes painted in order (later ones on top), sky left as background.
fn scene(w: i64, h: i64, seed: u64) -> Vec<Shape> {
    let mut rng = Rng(seed);
    let mut s = vec![
        Shape::Box {
            class: 1,
            x0: 0,
            y0: h * 2 / 3,
            x1: w,
            y1: h,
        },
        Shape::Box {
            class: 2,
            x0: 0,
            y0: h * 3 / 5,
            x1: w,
            y1: h * 2 / 3,
        },
    ];
    for i in 0..6 {
        let x0 = i * w / 6 + rng.below(w as u64 / 40) as i64;
        let top = h / 8 + rng.below(h as u64 / 4) as i64;
        s.push(Shape::Box {
            class: 3,
            x0,
            y0: top,
            x1: x0 + w / 7,
            y1: h * 3 / 5,
        });
    }
    for _ in 0..5 {
        let (cx, cy, r) = (
            rng.below(w as u64) as i64,
            h / 2 + rng.below(h as u64 / 10) as i64,
            h / 14,
        );
        s.push(Shape::Disc {
            class: 6,
            cx,
            cy,
            r,
        });
    }
    for _ in 0..4 {
        let x = rng.below(w as u64) as i64;
        s.push(Shape::Box {
            class: 7,
            x0: x,
            y0: h / 3,
            x1: x + (w / 800).max(2),
            y1: h * 2 / 3,
        });
        s.push(Shape::Box {
            class: 8,
            x0: x - w / 100,
            y0: h / 3,
            x1: x + w / 100,
            y1: h / 3 + h / 40,
        });
    }
    for _ in 0..8 {
        let x0 = rng.below(w as u64) as i64;
        let y0 = h * 2 / 3 + rng.below(h as u64 / 5) as i64;
        s.push(Shape::Box {
            class: 4,
            x0,
            y0,
            x1: x0 + w / 9,
            y1: y0 + h / 12,
        });
    }
    for _ in 0..10 {
        let x0 = rng.below(w as u64) as i64;
        let y0 = h / 2 + rng.below(h as u64 / 4) as i64;
        s.push(Shape::Box {
            class: 5,
            x0,
            y0,
            x1: x0 + w / 120 + 2,
            y1: y0 + h / 8,
        });
    }
    s
}

/// How worker `k` painted the scene: every outline jittered by a few pixels, and one small
/// object missed.
fn worker_view(shapes: &[Shape], k: u64, w: i64) -> Vec<Shape> {
    let mut rng = Rng(0x5eed ^ (k << 32));
    let j = (w / 1000).max(1);
    let missed = rng.below(shapes.len() as u64) as usize;
    shapes
        .iter()
        .enumerate()
        .filter(|&(i, s)| !(i == missed && matches!(s, Shape::Box { class: 4..=8, .. })))
        .map(|(_, s)| {
            let mut d = || rng.below(2 * j as u64 + 1) as i64 - j;
            match *s {
                Shape::Box {
                    class,
                    x0,
                    y0,
                    x1,
                    y1,
                } => Shape::Box {
                    class,
                    x0: x0 + d(),
                    y0: y0 + d(),
                    x1: x1 + d(),
                    y1: y1 + d(),
                },
                Shape::Disc { class, cx, cy, r } => Shape::Disc {
                    class,
                    cx: cx + d(),
                    cy: cy + d(),
                    r: (r + d()).max(1),
                },
            }
        })
        .collect()
}

/// One row of classes.
fn paint_row(shapes: &[Shape], y: i64, row: &mut [u8]) {
    row.fill(0);
    let w = row.len() as i64;
    for s in shapes {
        let (class, a, b) = match *s {
            Shape::Box {
                class,
                x0,
                y0,
                x1,
                y1,
            } if y >= y0 && y < y1 => (class, x0, x1),
            Shape::Disc { class, cx, cy, r } if (y - cy).abs() <= r => {
                let dx = (((r * r - (y - cy) * (y - cy)) as f64).sqrt()) as i64;
                (class, cx - dx, cx + dx + 1)
            }
            _ => continue,
        };
        let (a, b) = (a.clamp(0, w) as usize, b.clamp(0, w) as usize);
        if a < b {
            row[a..b].fill(class);
        }
    }
}

/// A worker's RGBA PNG (transparent background), streamed row by row.
fn worker_png(shapes: &[Shape], w: u32, h: u32, colors: &[[u8; 3]; 8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().expect("PNG header");
    let mut stream = writer.stream_writer().expect("PNG stream");
    let mut classes = vec![0u8; w as usize];
    let mut rgba = vec![0u8; 4 * w as usize];
    for y in 0..h {
        paint_row(shapes, i64::from(y), &mut classes);
        for (px, &c) in rgba.chunks_exact_mut(4).zip(&classes) {
            let (rgb, a) = if c == 0 {
                ([0, 0, 0], 0)
            } else {
                (colors[usize::from(c) - 1], 255)
            };
            px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], a]);
        }
        stream.write_all(&rgba).expect("PNG row");
    }
    stream.finish().expect("PNG end");
    drop(writer);
    out
}

/// The answers of `workers` workers painting `shapes`, worker `k` with the colours
/// `colors(k)` (one per label).
fn worker_answers(
    shapes: &[Shape],
    (w, h): (u32, u32),
    workers: usize,
    colors: impl Fn(usize) -> &'static [[u8; 3]; 8],
) -> Vec<Value> {
    (0..workers)
        .map(|k| {
            let colors = colors(k);
            let png = worker_png(&worker_view(shapes, k as u64, i64::from(w)), w, h, colors);
            let labels: Vec<(&str, [u8; 3])> =
                LABELS.iter().copied().zip(colors.iter().copied()).collect();
            answer(
                &format!("private.us-east-1.worker{k}"),
                &png,
                (w, h),
                &labels,
            )
        })
        .collect()
}

fn dims(mp: u32) -> (u32, u32) {
    let w = (f64::from(mp) * 1e6 * 4.0 / 3.0).sqrt().round() as u32;
    (w, w * 3 / 4)
}

/// Writes `images` images of `mp` megapixels with `workers` answers each under `dir`.
fn generate(dir: &Path, mp: u32, workers: usize, images: usize) -> std::io::Result<()> {
    let (w, h) = dims(mp);
    let mut payload = Vec::new();
    for img in 0..images {
        let shapes = scene(i64::from(w), i64::from(h), 42 + img as u64);
        // Worker 3 has other colours than the UI's.
        let annotations = worker_answers(&shapes, (w, h), workers, |k| {
            if k == 3 { &OTHER_COLORS } else { &COLORS }
        });
        payload.push(json!({"datasetObjectId": img.to_string(), "dataObject": {"s3Uri": format!("s3://{BUCKET}/images/{img}.jpg")},
                            "annotations": annotations}));
    }
    write_batch(dir, &payload, &LABELS)
}

/// Writes `payload` and a consolidation event for it (a job with `labels`) under `dir`.
fn write_batch(dir: &Path, payload: &[Value], labels: &[&str]) -> std::io::Result<()> {
    let payload_key =
        "out/bench/annotations/consolidated-annotation/consolidation-request/iteration-1/p.json";
    let p = dir.join(BUCKET).join(payload_key);
    std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
    std::fs::write(&p, serde_json::to_vec(payload)?)?;
    let event = json!({"version": "2018-10-06",
        "labelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/bench",
        "labelCategories": labels, "labelAttributeName": "bench-ref",
        "outputConfig": format!("s3://{BUCKET}/out/bench/annotations"),
        "payload": {"s3Uri": format!("s3://{BUCKET}/{payload_key}")}});
    std::fs::write(dir.join("event.json"), serde_json::to_vec(&event)?)
}

/// A worker's answer: its RGBA `png`, the colours of its `labels`, and the image's size.
fn answer(worker: &str, png: &[u8], (w, h): (u32, u32), labels: &[(&str, [u8; 3])]) -> Value {
    let mappings: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(l, c)| {
            (
                (*l).to_owned(),
                json!({"color": format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])}),
            )
        })
        .collect();
    let content = json!({"crowd-semantic-segmentation": {
        "inputImageProperties": {"width": w, "height": h},
        "labelMappings": mappings,
        "labeledImage": {"pngImageData": base64::engine::general_purpose::STANDARD.encode(png)}}});
    json!({"workerId": worker, "annotationData": {"content": content.to_string()}})
}

/// Peak resident memory of this process, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The measurement child: times consolidation end to end and the decode-only floor.
async fn measure(dir: &Path, repeat: usize) -> anyhow::Result<Value> {
    let event: Value = serde_json::from_slice(&std::fs::read(dir.join("event.json"))?)?;
    // Only the settings that shape the work come from the environment.
    let env = Config::from_env()?;
    let threads = env.threads;
    let service = Service::new(
        LocalStore::new(dir),
        Config {
            threads,
            algorithm: env.algorithm,
            ..Config::default()
        },
    );
    let mut e2e = Duration::MAX;
    let mut images = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let items = service
            .consolidation(&event, SystemTime::now(), None)
            .await?;
        e2e = e2e.min(t.elapsed());
        images = items.len();
    }
    let rss = peak_rss_kib();

    // The floor: the same PNGs through the same decoder (all rows, EXPAND), nothing else.
    let payload_uri = event["payload"]["s3Uri"].as_str().unwrap_or_default();
    let payload_path = dir.join(payload_uri.trim_start_matches("s3://"));
    let payload: Value = serde_json::from_slice(&std::fs::read(payload_path)?)?;
    let mut pngs = Vec::new();
    for item in payload.as_array().into_iter().flatten() {
        for ann in item["annotations"].as_array().into_iter().flatten() {
            let content: Value =
                serde_json::from_str(ann["annotationData"]["content"].as_str().unwrap_or("{}"))?;
            let b64 = content["crowd-semantic-segmentation"]["labeledImage"]["pngImageData"]
                .as_str()
                .unwrap_or("");
            pngs.push(base64::engine::general_purpose::STANDARD.decode(b64)?);
        }
    }
    let mut floor = Duration::MAX;
    for _ in 0..repeat {
        let t = Instant::now();
        for png in &pngs {
            let mut dec = png::Decoder::new(std::io::Cursor::new(png.as_slice()));
            dec.set_transformations(png::Transformations::EXPAND);
            let mut r = dec.read_info()?;
            while r.next_row()?.is_some() {}
        }
        floor = floor.min(t.elapsed());
    }
    let png_bytes: usize = pngs.iter().map(Vec::len).sum();
    Ok(
        json!({"e2e_s": e2e.as_secs_f64(), "floor_s": floor.as_secs_f64(), "peak_rss_kib": rss,
              "images": images, "threads": threads, "png_bytes": png_bytes}),
    )
}

fn run_child(dir: &Path, repeat: usize, threads: Option<usize>) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--repeat", &repeat.to_string(), "--measure"])
        .arg(dir)
        .env("RUST_LOG", "error");
    if let Some(t) = threads {
        cmd.env("MAX_THREADS", t.to_string());
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs `gtseg bench`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.measure {
        println!("{}", measure(dir, args.repeat).await?);
        return Ok(());
    }
    if args.rss_of {
        return memory::rss_of(&args.command);
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "gtseg: warning: this is a debug build, so its figures mean nothing; build with `cargo build --release -p gtseg-cli` and run target/release/gtseg"
        );
    }
    let root = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gtseg-bench-{}", std::process::id()))
    });
    if args.job {
        let table = job::run(&root, args.images, args.s3_bucket.as_deref(), args.keep).await?;
        // A folder the user named keeps what was in it; job::run removes its own.
        if !args.keep && args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&root);
        }
        print!("{table}");
        return Ok(());
    }
    if args.memory {
        let table = memory::run(
            &root,
            args.against.as_deref(),
            args.only.as_deref(),
            args.keep,
        )?;
        if !args.keep {
            let _ = std::fs::remove_dir_all(&root);
        }
        print!("{table}");
        return Ok(());
    }
    let mut table = speed_table(&args, &root)?;
    if args.batch {
        table.push_str(&batch_line(&root, args.repeat)?);
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    print!("{table}");
    Ok(())
}

/// The speed table: one row per size and worker count, each measured in fresh processes.
fn speed_table(args: &Args, root: &Path) -> anyhow::Result<String> {
    let algorithm = Config::from_env()?.algorithm;
    let mut table = format!(
        "CONSOLIDATION_ALGORITHM={}\n\n| image | workers | end to end, 1 thread | throughput | decode-only floor | ratio to floor | peak RSS | end to end, all cores | ratio |\n|---|---|---|---|---|---|---|---|---|\n",
        algorithm.name()
    );
    for &mp in &args.sizes {
        for &workers in &args.workers {
            let dir = root.join(format!("{mp}mp-{workers}w"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            generate(&dir, mp, workers, 1)?;
            let r = run_child(&dir, args.repeat, Some(1))?;
            let all = run_child(&dir, args.repeat, None)?;
            let e2e_all = all["e2e_s"].as_f64().unwrap_or(0.0);
            let (e2e, floor) = (
                r["e2e_s"].as_f64().unwrap_or(0.0),
                r["floor_s"].as_f64().unwrap_or(0.0),
            );
            let (w, h) = dims(mp);
            let input_mp = f64::from(w) * f64::from(h) * workers as f64 / 1e6;
            let line = format!(
                "| {w}×{h} ({mp} MP) | {workers} | {:.0} ms | {:.0} MP/s | {:.0} ms | {:.2}× | {:.1} MiB | {:.0} ms ({} threads) | {:.2}× |",
                e2e * 1e3,
                input_mp / e2e,
                floor * 1e3,
                e2e / floor,
                r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                e2e_all * 1e3,
                all["threads"],
                e2e_all / floor,
            );
            eprintln!("{line}");
            let _ = writeln!(table, "{line}");
            if !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    Ok(table)
}

/// `--batch`: a batch of 16 one-megapixel images on one thread and on every core.
fn batch_line(root: &Path, repeat: usize) -> anyhow::Result<String> {
    let dir = root.join("batch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let images = 16;
    generate(&dir, 1, 5, images)?;
    let one = run_child(&dir, repeat, Some(1))?;
    let all = run_child(&dir, repeat, None)?;
    let (t1, tn) = (
        one["e2e_s"].as_f64().unwrap_or(0.0),
        all["e2e_s"].as_f64().unwrap_or(0.0),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "\nBatch of {images} images (1 MP, 5 workers): {:.0} ms on 1 thread, {:.0} ms on {} threads ({:.2}× faster).\n",
        t1 * 1e3,
        tn * 1e3,
        all["threads"],
        t1 / tn
    ))
}
