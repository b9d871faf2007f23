//! The manifest read as it arrives, line by line: every line counted in the totals, and only
//! the worst `limit` images kept for their pictures. Memory is bounded by `limit` and a line's
//! size, never by the manifest's length.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use anyhow::Context as _;
use gtseg::finished::{LineReader, MAX_LINE_BYTES, label_attributes, parse_output_lines};
use gtseg::{AnyStore, Location, S3Uri};
use serde_json::{Map, Value};
use tracing::warn;

use super::rows::{Row, Totals, figures, source_of};

/// The largest manifest read (it is streamed: this bounds only the time).
const MAX_MANIFEST_BYTES: u64 = 64 << 30;

/// An image kept for the report, with where its pictures come from.
#[derive(Debug)]
pub(super) struct Kept {
    /// The line's place in the manifest (pictures are named by it).
    pub(super) n: usize,
    pub(super) row: Row,
    /// The mask's URI.
    pub(super) mask: String,
    /// The disagreement map's URI.
    pub(super) heat: Option<String>,
    /// The source image, when `source-ref` is an `s3://` URI.
    pub(super) source: Option<S3Uri>,
}

/// Kept images ordered by agreement (those without one last), then by place.
struct Ranked(Kept);

impl Ranked {
    fn key(&self) -> (f64, usize) {
        (self.0.row.agreement.unwrap_or(2.0), self.0.n)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        let ((a, n), (b, m)) = (self.key(), other.key());
        a.total_cmp(&b).then(n.cmp(&m))
    }
}

/// What a pass over the manifest gives: the worst images, worst first, and the totals.
pub(super) struct Scan {
    pub(super) kept: Vec<Kept>,
    pub(super) totals: Totals,
}

/// Reads the manifest at `at` (JSON Lines, or the JSON array `gtseg replay` prints), keeping
/// the `limit` worst images of label attribute `attr`. Refuses a manifest none of whose lines
/// carries `attr`, naming the attributes they carry.
pub(super) async fn scan(
    store: &AnyStore,
    at: &Location,
    attr: &str,
    limit: usize,
) -> anyhow::Result<Scan> {
    let mut reader = LineReader::new(at.open(store, MAX_MANIFEST_BYTES).await?);
    let mut pass = Pass {
        store,
        attr,
        limit,
        heap: BinaryHeap::new(),
        totals: Totals::default(),
        carrying: 0,
    };
    if reader.starts_with_array().await? {
        let bytes = reader.read_rest(MAX_LINE_BYTES).await?;
        for line in parse_output_lines(&bytes)? {
            pass.line(line.n, line.id, line.line).await;
        }
    } else {
        while let Some((n, line)) = reader
            .next_line()
            .await
            .with_context(|| format!("reading {at}"))?
        {
            pass.line(n, n.to_string(), line.unwrap_or_default()).await;
        }
    }
    if pass.totals.images > 0 && pass.carrying == 0 {
        let found: Vec<&String> = pass.totals.attributes.keys().collect();
        anyhow::bail!(
            "--label-attribute-name {attr}: no line of {at} carries it; its lines carry {found:?}"
        );
    }
    let mut kept: Vec<Kept> = pass
        .heap
        .into_sorted_vec()
        .into_iter()
        .map(|r| r.0)
        .collect();
    kept.shrink_to_fit();
    Ok(Scan {
        kept,
        totals: pass.totals,
    })
}

/// One pass's state.
struct Pass<'a> {
    store: &'a AnyStore,
    attr: &'a str,
    limit: usize,
    /// The worst images so far, the best of them on top (the first to go).
    heap: BinaryHeap<Ranked>,
    totals: Totals,
    /// Lines that carry `attr` (labelled or failed).
    carrying: usize,
}

impl Pass<'_> {
    /// Counts line `n` and keeps its image if it is among the worst.
    async fn line(&mut self, n: usize, id: String, line: Map<String, Value>) {
        self.totals.images += 1;
        for a in label_attributes(&line) {
            *self.totals.attributes.entry(a.to_owned()).or_default() += 1;
        }
        let attr = self.attr;
        let meta = line
            .get(&format!("{attr}-metadata"))
            .cloned()
            .unwrap_or(Value::Null);
        if !meta.is_null() || line.contains_key(attr) {
            self.carrying += 1;
        }
        if let Some(reason) = meta.get("failure-reason") {
            let reason = reason.as_str().unwrap_or("failed").to_owned();
            self.totals.add_failed(id, reason);
            return;
        }
        let Some(mask) = line.get(attr).and_then(Value::as_str) else {
            self.totals
                .add_failed(id, format!("no mask under `{attr}`"));
            return;
        };
        let meta = gtseg::with_extras(self.store, &meta)
            .await
            .unwrap_or_else(|e| {
                warn!(image = n, "the image's report is not shown: {e}");
                meta.clone()
            });
        self.totals.see_legend(&meta);
        let row = figures(id, &line, &meta);
        self.totals.add_row(&row);
        let kept = Kept {
            n,
            mask: mask.to_owned(),
            heat: meta["consolidation"]["disagreement-ref"]
                .as_str()
                .map(str::to_owned),
            source: source_of(&line),
            row,
        };
        self.heap.push(Ranked(kept));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }
}
