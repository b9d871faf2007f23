//! What the report shows of each line, from the manifest alone: the failed lines and their
//! reasons, the lines to draw, the classes' legend, and each image's figures from its
//! metadata (agreement, confidence, workers, exclusions).

use gtseg::finished::OutputLine;
use gtseg::{Rgb, S3Uri};
use serde::Serialize;
use serde_json::{Map, Value};

/// One image of the report.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    pub(super) id: String,
    pub(super) agreement: Option<f64>,
    confidence: Option<f64>,
    low: bool,
    workers: Vec<WorkerRow>,
    excluded: Vec<Excluded>,
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

/// A line with a mask to draw.
#[derive(Debug)]
pub(super) struct ToDraw {
    /// The line's place in the manifest (pictures are named by it).
    pub(super) n: usize,
    pub(super) id: String,
    /// The mask's URI.
    pub(super) mask: String,
    /// The label's metadata, as the manifest has it.
    pub(super) meta: Value,
    /// The source image, when `source-ref` is an `s3://` URI.
    pub(super) source: Option<S3Uri>,
}

/// The manifest's lines sorted out: the failed ones, the ones to draw, and the legend (from
/// the first colour map).
#[derive(Debug, Default)]
pub(super) struct Sorted {
    pub(super) failed: Vec<Failed>,
    pub(super) to_draw: Vec<ToDraw>,
    pub(super) classes: Vec<Class>,
    /// Class k's colour, for every k.
    pub(super) colors: Vec<[u8; 3]>,
}

/// Sorts out the lines of label attribute `attr`.
pub(super) fn sort_out(lines: Vec<OutputLine>, attr: &str) -> Sorted {
    let mut sorted = Sorted::default();
    let mut legend_found = false;
    for l in lines {
        let meta = l
            .line
            .get(&format!("{attr}-metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(reason) = meta.get("failure-reason") {
            sorted.failed.push(Failed {
                id: l.id,
                reason: reason.as_str().unwrap_or("failed").to_owned(),
            });
            continue;
        }
        let Some(mask) = l.line.get(attr).and_then(Value::as_str) else {
            sorted.failed.push(Failed {
                id: l.id,
                reason: format!("no mask under `{attr}`"),
            });
            continue;
        };
        if !legend_found
            && let Some(map) = meta.get("internal-color-map").and_then(Value::as_object)
        {
            (sorted.classes, sorted.colors) = legend(map);
            legend_found = true;
        }
        sorted.to_draw.push(ToDraw {
            n: l.n,
            id: l.id,
            mask: mask.to_owned(),
            source: source_of(&l.line),
            meta,
        });
    }
    sorted
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

/// An image's row with its figures from its metadata (extras read back); its pictures are
/// drawn later.
pub(super) fn figures(id: String, meta: &Value) -> Row {
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
    Row {
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
}
