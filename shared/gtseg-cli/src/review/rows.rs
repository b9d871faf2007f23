//! What the report shows of each line, from the manifest alone: an image's figures from its
//! metadata (agreement, confidence, workers, exclusions, its name), the classes' legend, and
//! the figures over every line (the histogram of agreement, the workers ranked, the failed
//! lines), which stay the same size however long the manifest is.

use std::collections::{BTreeMap, HashMap};

use gtseg::{Rgb, S3Uri};
use serde::Serialize;
use serde_json::{Map, Value};

/// One image of the report.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) id: String,
    /// The source image's file name (its `source-ref`'s last segment), else the id.
    pub(super) name: String,
    /// The source image's URI, shown on hover.
    pub(super) source: Option<String>,
    pub(super) agreement: Option<f64>,
    pub(super) confidence: Option<f64>,
    pub(super) low: bool,
    pub(super) workers: Vec<WorkerRow>,
    pub(super) excluded: Vec<Excluded>,
    pub(super) classes: Vec<u8>,
    pub(super) overlay: Option<String>,
    pub(super) overlay_thumb: Option<String>,
    pub(super) heat: Option<String>,
    pub(super) heat_thumb: Option<String>,
    /// What could not be shown, if anything.
    pub(super) problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct WorkerRow {
    pub(super) id: String,
    pub(super) agreement: Option<f64>,
    included: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct Excluded {
    pub(super) id: String,
    pub(super) reason: String,
}

/// A line that has no label to show, and why.
#[derive(Debug, Serialize)]
pub(super) struct Failed {
    pub(super) id: String,
    pub(super) reason: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Class {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) color: String,
}

/// A worker over every line: images, and its mean agreement.
#[derive(Debug, Serialize)]
pub(super) struct WorkerRank {
    pub(super) id: String,
    pub(super) images: u64,
    pub(super) mean: Option<f64>,
}

/// The failed lines kept as examples; the rest are only counted.
const FAILED_EXAMPLES: usize = 200;

/// Figures over every line of the manifest: the same size whatever its length (workers and
/// classes aside, which a job has few of).
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) images: usize,
    pub(super) failed: usize,
    pub(super) failed_examples: Vec<Failed>,
    /// Images by agreement, in tenths (the last holds 1.0).
    pub(super) histogram: [u64; 10],
    /// Images, summed agreement and images with an agreement, by worker.
    workers: HashMap<String, (u64, f64, u64)>,
    pub(super) classes: Vec<Class>,
    /// Class k's colour, for every k.
    pub(super) colors: Vec<[u8; 3]>,
    /// The label attributes the lines carry (to name them when the one asked for is absent).
    pub(super) attributes: BTreeMap<String, usize>,
}

impl Totals {
    /// Counts a line without a label to show.
    pub(super) fn add_failed(&mut self, id: String, reason: String) {
        self.failed += 1;
        if self.failed_examples.len() < FAILED_EXAMPLES {
            self.failed_examples.push(Failed { id, reason });
        }
    }

    /// Counts an image's figures.
    pub(super) fn add_row(&mut self, row: &Row) {
        if let Some(a) = row.agreement {
            self.histogram[((a * 10.0) as usize).min(9)] += 1;
        }
        for w in &row.workers {
            let t = self.workers.entry(w.id.clone()).or_default();
            t.0 += 1;
            if let Some(a) = w.agreement {
                t.1 += a;
                t.2 += 1;
            }
        }
        for x in &row.excluded {
            self.workers.entry(x.id.clone()).or_default().0 += 1;
        }
    }

    /// Takes the legend from the first colour map seen.
    pub(super) fn see_legend(&mut self, meta: &Value) {
        if self.classes.is_empty()
            && let Some(map) = meta.get("internal-color-map").and_then(Value::as_object)
        {
            (self.classes, self.colors) = legend(map);
        }
    }

    /// The workers ranked by mean agreement, best first, then by id.
    pub(super) fn ranked_workers(&self) -> Vec<WorkerRank> {
        let mut ranked: Vec<WorkerRank> = self
            .workers
            .iter()
            .map(|(id, (images, sum, n))| WorkerRank {
                id: id.clone(),
                images: *images,
                mean: (*n > 0).then(|| sum / *n as f64),
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.mean
                .unwrap_or(-1.0)
                .total_cmp(&a.mean.unwrap_or(-1.0))
                .then(a.id.cmp(&b.id))
        });
        ranked
    }
}

/// The source image of a line (`source-ref`), when it is an `s3://` URI.
pub(super) fn source_of(line: &Map<String, Value>) -> Option<S3Uri> {
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

/// An image's row with its figures from its metadata (extras read back) and its name from its
/// line's `source-ref`; its pictures are drawn later.
pub(super) fn figures(id: String, line: &Map<String, Value>, meta: &Value) -> Row {
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
    let source = line.get("source-ref").and_then(Value::as_str);
    let name = source
        .and_then(|s| s.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(&id)
        .to_owned();
    Row {
        name,
        source: source.map(str::to_owned),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_row_is_named_by_its_source_image_and_totals_do_not_grow_with_the_lines() {
        let line: Map<String, Value> =
            serde_json::from_str(r#"{"source-ref": "s3://b/photos/street-0007.jpg"}"#).unwrap();
        let meta = serde_json::json!({"consolidation": {"mean-pairwise-agreement": 0.95,
            "workers": [{"worker-id": "w", "included": true, "agreement": 0.9}]}});
        let row = figures("7".into(), &line, &meta);
        assert_eq!(row.name, "street-0007.jpg");
        assert_eq!(row.source.as_deref(), Some("s3://b/photos/street-0007.jpg"));
        let mut totals = Totals::default();
        for i in 0..1000 {
            totals.add_row(&row);
            totals.add_failed(i.to_string(), "no answer".into());
        }
        assert_eq!(totals.histogram[9], 1000);
        assert_eq!(totals.failed, 1000);
        assert_eq!(totals.failed_examples.len(), FAILED_EXAMPLES);
        assert_eq!(totals.ranked_workers()[0].images, 1000);
    }
}
