//! `gtseg review`: a static report of where workers disagreed, from an output manifest.
//!
//! One row per image, worst agreement first: the consolidated mask over the source image, the
//! disagreement map as a heat map, the confidence, each worker's agreement and the excluded
//! workers. A header gives the job's figures, a histogram of agreement, the workers ranked by
//! agreement and the classes' legend; filters and pages run in the page, from `file://`, with
//! no network. Every text from the data reaches the page as JSON read by the page's own
//! script, which writes it with `textContent`; a Content-Security-Policy allows only that
//! script (by hash) and images from the report. Picture files are named by row number, never
//! by anything in the data.

mod render;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use gtseg::{AnyStore, ObjectStore, Rgb, S3Uri};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Digest as _;
use tracing::warn;

use crate::progress::Progress;

/// The largest manifest, source image, mask or map read.
const MAX_OBJECT: u64 = 1 << 30;

/// Options of `gtseg review`.
#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// An output manifest (s3:// or a local path): a finished job's, one written by `gtseg
    /// job consolidate`, or the JSON response `gtseg replay` printed.
    #[arg(long, value_name = "URI_OR_PATH")]
    manifest: String,
    /// The label attribute to review.
    #[arg(long, value_name = "NAME")]
    label_attribute_name: String,
    /// The report folder (index.html and img/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A local directory standing in for S3 (`s3://bucket/key` is `DIR/bucket/key`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Only the first N images of the manifest.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// One image of the report.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    agreement: Option<f64>,
    confidence: Option<f64>,
    low: bool,
    workers: Vec<WorkerRow>,
    excluded: Vec<Excluded>,
    classes: Vec<u8>,
    overlay: Option<String>,
    overlay_thumb: Option<String>,
    heat: Option<String>,
    heat_thumb: Option<String>,
    /// What could not be shown, if anything.
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct WorkerRow {
    id: String,
    agreement: Option<f64>,
    included: bool,
}

#[derive(Debug, Serialize)]
struct Excluded {
    id: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Failed {
    id: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Class {
    index: u32,
    name: String,
    color: String,
}

/// What the page shows, as its JSON block.
#[derive(Debug, Serialize)]
struct Data {
    attribute: String,
    images: usize,
    rows: Vec<Row>,
    failed: Vec<Failed>,
    classes: Vec<Class>,
}

/// One manifest line to show: its place, its id, its content.
struct Line {
    n: usize,
    id: String,
    line: Map<String, Value>,
}

/// Runs `gtseg review`.
pub async fn run(a: ReviewArgs) -> Result<(), String> {
    let store = crate::job::open_store(a.store.as_deref()).await?;
    let text = match S3Uri::parse(&a.manifest) {
        Ok(uri) => store
            .get(&uri, MAX_OBJECT)
            .await
            .map_err(|e| format!("cannot read the manifest: {e}"))?,
        Err(_) => std::fs::read(&a.manifest)
            .map_err(|e| format!("cannot read the manifest {}: {e}", a.manifest))?,
    };
    let mut lines = manifest_lines(&text)?;
    if let Some(n) = a.limit {
        lines.truncate(n);
    }
    let attr = a.label_attribute_name.clone();
    let img = a.out.join("img");
    std::fs::create_dir_all(&img).map_err(|e| format!("cannot create {}: {e}", img.display()))?;

    let mut classes: Option<Vec<Class>> = None;
    let mut colors: Vec<[u8; 3]> = Vec::new();
    let mut failed = Vec::new();
    let mut todo = Vec::new();
    for l in lines.iter() {
        let meta = l
            .line
            .get(&format!("{attr}-metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(reason) = meta.get("failure-reason") {
            failed.push(Failed {
                id: l.id.clone(),
                reason: reason.as_str().unwrap_or("failed").to_owned(),
            });
            continue;
        }
        let Some(mask) = l.line.get(&attr).and_then(Value::as_str) else {
            failed.push(Failed {
                id: l.id.clone(),
                reason: format!("no mask under `{attr}`"),
            });
            continue;
        };
        if classes.is_none()
            && let Some(map) = meta.get("internal-color-map").and_then(Value::as_object)
        {
            let (c, rgb) = legend(map);
            classes = Some(c);
            colors = rgb;
        }
        todo.push((l.n, l.id.clone(), mask.to_owned(), meta, source_of(&l.line)));
    }
    let colors = Arc::new(colors);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let mut progress = Progress::new("writing the review", todo.len() as u64);
    let mut running = tokio::task::JoinSet::new();
    let mut rows = Vec::with_capacity(todo.len());
    let mut queue = todo.into_iter();
    loop {
        while running.len() < threads + 1 {
            let Some((n, id, mask, meta, source)) = queue.next() else {
                break;
            };
            let (store, colors, img) = (store.clone(), Arc::clone(&colors), img.clone());
            running.spawn(async move {
                let row = image_row(&store, &img, n, id, &mask, &meta, source, colors).await;
                (n, row)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (n, row) = joined.map_err(|e| format!("a picture's task failed: {e}"))?;
        progress.add(1, u64::from(row.problem.is_some()));
        rows.push((n, row));
    }
    progress.finish();
    // Worst agreement first; images without one (a single worker) last; then manifest order.
    rows.sort_by(|(na, a), (nb, b)| {
        a.agreement
            .unwrap_or(2.0)
            .total_cmp(&b.agreement.unwrap_or(2.0))
            .then(na.cmp(nb))
    });
    let data = Data {
        attribute: attr,
        images: lines.len(),
        rows: rows.into_iter().map(|(_, r)| r).collect(),
        failed,
        classes: classes.unwrap_or_default(),
    };
    let html = page(&data)?;
    let index = a.out.join("index.html");
    std::fs::write(&index, html).map_err(|e| format!("cannot write {}: {e}", index.display()))?;
    eprintln!(
        "gtseg: review of {} images ({} failed) in {}",
        data.images,
        data.failed.len(),
        index.display()
    );
    Ok(())
}

/// The lines of a manifest (JSON Lines), or of `gtseg replay`'s response (a JSON array of
/// response items), each with its place and its id.
fn manifest_lines(text: &[u8]) -> Result<Vec<Line>, String> {
    if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(text) {
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(n, item)| {
                let id = item["datasetObjectId"]
                    .as_str()
                    .map_or_else(|| n.to_string(), str::to_owned);
                let line = item["consolidatedAnnotation"]["content"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                Line { n, id, line }
            })
            .collect());
    }
    let text = std::str::from_utf8(text).map_err(|_| "the manifest is not UTF-8 text")?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| Line {
            n,
            id: n.to_string(),
            line: gtseg::finished::manifest_line(l).unwrap_or_default(),
        })
        .collect())
}

/// The source image of a line (`source-ref`), when it is an `s3://` URI.
fn source_of(line: &Map<String, Value>) -> Option<S3Uri> {
    S3Uri::parse(line.get("source-ref")?.as_str()?).ok()
}

/// The classes of `internal-color-map`, in class order, and their colours by class index.
/// A colour that is not `#rrggbb` shows as grey.
fn legend(map: &Map<String, Value>) -> (Vec<Class>, Vec<[u8; 3]>) {
    let mut classes: Vec<Class> = map
        .iter()
        .filter_map(|(k, v)| {
            let index = k.parse().ok()?;
            let rgb = v["hex-color"].as_str().and_then(Rgb::parse_hex);
            let Rgb(r, g, b) = rgb.unwrap_or(Rgb(128, 128, 128));
            Some(Class {
                index,
                name: v["class-name"].as_str().unwrap_or("").to_owned(),
                color: format!("#{r:02x}{g:02x}{b:02x}"),
            })
        })
        .filter(|c| c.index < 256)
        .collect();
    classes.sort_by_key(|c| c.index);
    let mut colors = vec![[128u8; 3]; 256];
    for c in &classes {
        if let Some(Rgb(r, g, b)) = Rgb::parse_hex(&c.color) {
            colors[c.index as usize] = [r, g, b];
        }
    }
    (classes, colors)
}

/// Reads an object, or says why not (the row shows it).
async fn read(store: &AnyStore, uri: &str, what: &str) -> Result<Vec<u8>, String> {
    let uri = S3Uri::parse(uri).map_err(|e| format!("{what} {uri:?}: {e}"))?;
    store
        .get(&uri, MAX_OBJECT)
        .await
        .map_err(|e| format!("{what}: {e}"))
}

/// One image's row: its figures from the metadata, and its pictures written under `img`.
#[allow(clippy::too_many_arguments)]
async fn image_row(
    store: &AnyStore,
    img: &Path,
    n: usize,
    id: String,
    mask: &str,
    meta: &Value,
    source: Option<S3Uri>,
    colors: Arc<Vec<[u8; 3]>>,
) -> Row {
    let meta = &crate::job::with_extras(store, meta).await;
    let report = &meta["consolidation"];
    let workers = report["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["included"].as_bool().unwrap_or(true))
        .map(|w| WorkerRow {
            id: w["worker-id"].as_str().unwrap_or("").to_owned(),
            agreement: w["agreement"].as_f64(),
            included: true,
        })
        .collect();
    let excluded = meta["excluded-workers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Excluded {
            id: e["worker-id"].as_str().unwrap_or("").to_owned(),
            reason: e["reason"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    let confidence = meta["internal-color-map"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|c| c["confidence"].as_f64());
    let mut row = Row {
        id,
        agreement: report["mean-pairwise-agreement"].as_f64(),
        confidence,
        low: report["low-agreement"].as_bool().unwrap_or(false),
        workers,
        excluded,
        classes: Vec::new(),
        overlay: None,
        overlay_thumb: None,
        heat: None,
        heat_thumb: None,
        problem: None,
    };
    let mask_bytes = match read(store, mask, "the mask").await {
        Ok(b) => b,
        Err(e) => {
            row.problem = Some(e);
            return row;
        }
    };
    let source_bytes = match &source {
        Some(uri) => match store.get(uri, MAX_OBJECT).await {
            Ok(b) => Some(b),
            Err(e) => {
                warn!(image = n, "the source image is shown as grey: {e}");
                row.problem = Some(format!("source image unavailable: {e}"));
                None
            }
        },
        None => None,
    };
    let heat_bytes = match report["disagreement-ref"].as_str() {
        Some(uri) => read(store, uri, "the disagreement map").await.ok(),
        None => None,
    };
    let drawn = tokio::task::spawn_blocking(move || {
        let mask = render::decode_mask(&mask_bytes, gtseg::Config::default().limits.max_pixels)?;
        render::pictures(
            source_bytes.as_deref(),
            &mask,
            heat_bytes.as_deref(),
            &colors,
        )
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let pictures = match drawn {
        Ok(p) => p,
        Err(e) => {
            row.problem = Some(format!("cannot draw the pictures: {e}"));
            return row;
        }
    };
    let mut write = |suffix: &str, bytes: &[u8]| -> Option<String> {
        let name = format!("{n:06}-{suffix}.jpg");
        match std::fs::write(img.join(&name), bytes) {
            Ok(()) => Some(format!("img/{name}")),
            Err(e) => {
                row.problem = Some(format!("cannot write a picture: {e}"));
                None
            }
        }
    };
    let overlay = write("overlay", &pictures.overlay);
    let overlay_thumb = write("overlay-t", &pictures.overlay_thumb);
    let (heat, heat_thumb) = match &pictures.heat {
        Some((full, thumb)) => (write("heat", full), write("heat-t", thumb)),
        None => (None, None),
    };
    row.overlay = overlay;
    row.overlay_thumb = overlay_thumb;
    row.heat = heat;
    row.heat_thumb = heat_thumb;
    row.classes = pictures.classes;
    row
}

/// The page: the template with its style, its script, its data and a policy that allows
/// only that style and that script.
fn page(data: &Data) -> Result<String, String> {
    const HTML: &str = include_str!("page.html");
    const STYLE: &str = include_str!("page.css");
    const SCRIPT: &str = include_str!("page.js");
    let hash = |text: &str| {
        let digest = sha2::Sha256::digest(text.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    let csp = format!(
        "default-src 'none'; img-src 'self' file: data:; style-src {}; script-src {}; base-uri 'none'; form-action 'none'",
        hash(STYLE),
        hash(SCRIPT)
    );
    // JSON inside <script>: nothing in it may close the element or open a comment.
    let json = serde_json::to_string(data)
        .map_err(|e| e.to_string())?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    Ok(HTML
        .replace("{{CSP}}", &csp)
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{DATA}}", &json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_the_script_element_and_the_policy_names_the_script() {
        let data = Data {
            attribute: "</script><script>alert(1)</script>".into(),
            images: 1,
            rows: Vec::new(),
            failed: vec![Failed {
                id: "<!--".into(),
                reason: "a & b \u{2028}".into(),
            }],
            classes: Vec::new(),
        };
        let html = page(&data).unwrap();
        let start = html.find("id=\"data\">").unwrap();
        let block = &html[start..html[start..].find("</script>").unwrap() + start];
        assert!(!block.contains("</") && !block.contains("<!--") && !block.contains('&'));
        let parsed: Value =
            serde_json::from_str(&block["id=\"data\">".len()..]).expect("still JSON");
        assert_eq!(parsed["attribute"], "</script><script>alert(1)</script>");
        assert_eq!(
            html.matches("<script").count(),
            2,
            "the data block and ours"
        );
        assert!(html.contains("script-src 'sha256-"));
    }

    #[test]
    fn the_legend_keeps_class_order_and_refuses_odd_colours() {
        let map: Map<String, Value> = serde_json::from_str(
            r##"{"10": {"class-name": "z", "hex-color": "#0000ff"},
                 "2": {"class-name": "b", "hex-color": "red; background: url(x)"},
                 "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}}"##,
        )
        .unwrap();
        let (classes, colors) = legend(&map);
        let order: Vec<u32> = classes.iter().map(|c| c.index).collect();
        assert_eq!(order, [0, 2, 10]);
        assert_eq!(classes[1].color, "#808080");
        assert_eq!(colors[10], [0, 0, 255]);
    }

    #[test]
    fn replay_responses_and_json_lines_are_both_manifests() {
        let replay = br#"[{"datasetObjectId": "7", "consolidatedAnnotation": {"content": {"a": "s3://b/k.png"}}}]"#;
        let lines = manifest_lines(replay).unwrap();
        assert_eq!((lines[0].n, lines[0].id.as_str()), (0, "7"));
        assert_eq!(lines[0].line["a"], "s3://b/k.png");
        let jsonl = b"{\"a\": 1}\n\n{\"a\": 2}\n";
        let lines = manifest_lines(jsonl).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].id, "1");
    }
}
