//! `export-report.json`: what an export holds and what it does not, with a reason for every
//! image left out, every failure line, every machine-labelled image and every pixel of a class
//! the image's colour map does not name; and the class balance, pixels and images per class
//! and split, which the terminal prints as a table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::image::{Ready, Skip};
use super::labels::IGNORE;
use super::plan::{FailureLine, Plan};
use super::{ExportOptions, LeftOut};

/// One class's share of one split.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Balance {
    /// Its pixels.
    pub pixels: u64,
    /// The images that have at least one of its pixels.
    pub images: u64,
}

/// One class's row of the class balance.
#[derive(Debug, Clone, Serialize)]
pub struct ClassBalance {
    /// Its id (255: ignored pixels).
    pub id: u8,
    /// Its name.
    pub name: String,
    /// Its pixels and images, by split.
    pub splits: BTreeMap<String, Balance>,
}

/// Pixels of an image that its colour map does not name (exported as ignore).
#[derive(Debug, Clone, Serialize)]
pub struct UnknownPixels {
    /// The image's `source-ref`.
    #[serde(rename = "source-ref")]
    pub source_ref: String,
    /// How many.
    pub pixels: u64,
}

/// The inputs and options of an export, as the report echoes them.
#[derive(Debug, Clone, Serialize)]
struct Inputs {
    format: &'static str,
    jobs: Vec<Job>,
    splits: BTreeMap<String, f64>,
    #[serde(rename = "ignore-below")]
    ignore_below: Option<f64>,
    #[serde(rename = "min-confidence")]
    min_confidence: Option<f64>,
    verification: Option<Job>,
    #[serde(rename = "keep-category", skip_serializing_if = "Vec::is_empty")]
    keep: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Job {
    manifest: String,
    #[serde(rename = "label-attribute-name")]
    attr: String,
}

/// The counts of an export.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counts {
    /// Images written.
    pub exported: u64,
    /// Images written, by split.
    pub by_split: BTreeMap<String, u64>,
    /// Images left out (see `left-out`).
    pub left_out: u64,
    /// Images left out by a fault (a timeout, throttling, access denied): another export
    /// may hold them.
    pub faults: u64,
    /// Failure lines in the jobs' manifests (see `failure-lines`).
    pub failure_lines: u64,
    /// Images exported with an older job's label because a newer job failed them.
    pub older_label_kept: u64,
    /// Exported images that a job labelled by machine (automated labeling).
    pub machine_labelled: u64,
    /// Manifest lines with no `source-ref`, or not JSON objects.
    pub unreadable_lines: u64,
    /// Pixels set to ignore because the workers agreed too little (`--ignore-below`).
    pub ignored_pixels: u64,
    /// Pixels set to ignore because the image's colour map does not name their class.
    pub unknown_pixels: u64,
}

/// What an export did, as `export-report.json` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    #[serde(flatten)]
    inputs: Inputs,
    /// The counts.
    pub counts: Counts,
    /// The class balance, by class id; the last row is the ignored pixels.
    #[serde(rename = "class-balance")]
    pub balance: Vec<ClassBalance>,
    /// Every image left out, and why.
    #[serde(rename = "left-out")]
    pub left_out: Vec<LeftOut>,
    /// Every failure line of the jobs.
    #[serde(rename = "failure-lines")]
    pub failures: Vec<FailureLine>,
    /// The images kept with an older job's label.
    #[serde(rename = "older-label-kept")]
    pub older_label_kept: Vec<String>,
    /// The exported images that a job labelled by machine.
    #[serde(rename = "machine-labelled")]
    pub machine_labelled: Vec<String>,
    /// The exported images with pixels of classes their colour maps do not name.
    #[serde(rename = "unknown-classes")]
    pub unknown: Vec<UnknownPixels>,
    /// Where in `balance` each class id is.
    #[serde(skip)]
    row_of: [Option<usize>; 256],
}

impl ExportReport {
    /// A report of nothing yet written, from the plan (its classes, what it leaves out).
    pub(super) fn new(opts: &ExportOptions, plan: &Plan) -> Self {
        let job = |manifest: &dyn std::fmt::Display, attr: &str| Job {
            manifest: manifest.to_string(),
            attr: attr.to_owned(),
        };
        let inputs = Inputs {
            format: opts.format.name(),
            jobs: opts
                .sources
                .iter()
                .map(|s| job(&s.manifest, &s.attr))
                .collect(),
            splits: opts
                .splits
                .iter()
                .map(|s| (s.name.clone(), s.share))
                .collect(),
            ignore_below: opts.ignore_below,
            min_confidence: opts.min_confidence,
            verification: opts
                .verification
                .as_ref()
                .map(|v| job(&v.manifest, &v.attr)),
            keep: opts
                .verification
                .as_ref()
                .map(|v| v.keep.clone())
                .unwrap_or_default(),
        };
        let mut balance: Vec<ClassBalance> = plan
            .table
            .classes()
            .iter()
            .map(|c| ClassBalance {
                id: c.id,
                name: c.name.clone(),
                splits: BTreeMap::new(),
            })
            .collect();
        balance.push(ClassBalance {
            id: IGNORE,
            name: "(ignore)".into(),
            splits: BTreeMap::new(),
        });
        let mut row_of = [None; 256];
        for (row, c) in balance.iter().enumerate() {
            row_of[usize::from(c.id)] = Some(row);
        }
        let counts = Counts {
            left_out: plan.left_out.len() as u64,
            failure_lines: plan.failures.len() as u64,
            older_label_kept: plan.older_label_kept.len() as u64,
            unreadable_lines: plan.unreadable_lines as u64,
            ..Counts::default()
        };
        Self {
            inputs,
            counts,
            balance,
            left_out: plan.left_out.clone(),
            failures: plan.failures.clone(),
            older_label_kept: plan.older_label_kept.clone(),
            machine_labelled: Vec::new(),
            unknown: Vec::new(),
            row_of,
        }
    }

    /// Counts an exported image.
    pub(super) fn add(&mut self, source_ref: &str, split: &str, ready: &Ready, by_machine: bool) {
        let pixels = &ready.pixels;
        self.counts.exported += 1;
        *self.counts.by_split.entry(split.to_owned()).or_default() += 1;
        if by_machine {
            self.counts.machine_labelled += 1;
            self.machine_labelled.push(source_ref.to_owned());
        }
        if ready.unknown > 0 {
            self.counts.unknown_pixels += ready.unknown;
            self.unknown.push(UnknownPixels {
                source_ref: source_ref.to_owned(),
                pixels: ready.unknown,
            });
        }
        self.counts.ignored_pixels += pixels[usize::from(IGNORE)].saturating_sub(ready.unknown);
        for (id, &n) in pixels.iter().enumerate() {
            if let (true, Some(row)) = (n > 0, self.row_of[id]) {
                let cell = self.balance[row]
                    .splits
                    .entry(split.to_owned())
                    .or_default();
                cell.pixels += n;
                cell.images += 1;
            }
        }
    }

    /// Counts an image that was planned but could not be exported.
    pub(super) fn leave_out(&mut self, source_ref: &str, skip: Skip) {
        self.counts.left_out += 1;
        self.counts.faults += u64::from(skip.fault);
        self.left_out.push(LeftOut {
            source_ref: source_ref.to_owned(),
            reason: skip.reason,
            fault: skip.fault,
        });
    }

    /// The report as `export-report.json`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        text
    }

    /// The class balance as a table for the terminal: a row a class, pixels (and their share
    /// of the split) and images for each split.
    pub fn balance_table(&self) -> String {
        let splits: Vec<&String> = self.counts.by_split.keys().collect();
        let width = self
            .balance
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 32);
        let mut text = format!("{:>3}  {:<width$}", "id", "class");
        for s in &splits {
            text.push_str(&format!("  {:>22}  {:>7}", format!("{s} pixels"), "images"));
        }
        text.push('\n');
        let total = |s: &str| -> u64 {
            self.balance
                .iter()
                .filter_map(|c| c.splits.get(s))
                .map(|b| b.pixels)
                .sum()
        };
        let totals: Vec<u64> = splits.iter().map(|s| total(s)).collect();
        for c in &self.balance {
            let name: String = c
                .name
                .chars()
                .take(32)
                .map(|ch| if ch.is_control() { '?' } else { ch })
                .collect();
            text.push_str(&format!("{:>3}  {:<width$}", c.id, name));
            for (s, &all) in splits.iter().zip(&totals) {
                let b = c.splits.get(*s).copied().unwrap_or_default();
                let share = if all == 0 {
                    0.0
                } else {
                    100.0 * b.pixels as f64 / all as f64
                };
                text.push_str(&format!(
                    "  {:>14} {:>6.2}%  {:>7}",
                    b.pixels, share, b.images
                ));
            }
            text.push('\n');
        }
        text
    }
}
