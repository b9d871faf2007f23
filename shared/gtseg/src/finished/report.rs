//! A re-consolidation's job report (`manifests/output/job-report.json`): the images
//! consolidated and failed, and every worker over the whole job, ranked by agreement, from
//! the images' metadata (their extras read back, see [`crate::with_extras`]).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Per worker over the job: images answered, included, the sum of agreements, reliability.
#[derive(Debug, Default)]
struct WorkerTally {
    images: u64,
    included: u64,
    agreement: f64,
    agreed_images: u64,
    /// The weighted fusion's weight (the same in every image with one model for the job).
    weight: Option<f64>,
    /// Verification: the estimated chance of picking the right category.
    reliability: Option<f64>,
    excluded_by_user: bool,
}

impl WorkerTally {
    fn mean_agreement(&self) -> Option<f64> {
        (self.agreed_images > 0).then(|| self.agreement / self.agreed_images as f64)
    }
}

/// The job report, filled image by image.
#[derive(Debug, Default)]
pub struct JobReport {
    workers: BTreeMap<String, WorkerTally>,
    consolidated: usize,
    machine_labelled: usize,
    failed: usize,
    /// The algorithm the images' metadata names (with `--via-lambda`, the function's own).
    algorithm: Option<String>,
}

impl JobReport {
    /// Adds a consolidated image, from its label's metadata, extras included.
    pub fn add_labelled(&mut self, meta: &Value) {
        self.consolidated += 1;
        if self.algorithm.is_none() {
            self.algorithm = meta["consolidation"]["algorithm"]
                .as_str()
                .map(str::to_owned);
        }
        let report = &meta["consolidation"]["workers"];
        for w in report.as_array().into_iter().flatten() {
            let Some(id) = w["worker-id"].as_str() else {
                continue;
            };
            let t = self.workers.entry(id.to_owned()).or_default();
            t.images += 1;
            // Mask reports say `included`; verification reports list included workers only.
            if w["included"].as_bool().unwrap_or(true) {
                t.included += 1;
            }
            if let Some(a) = w["agreement"].as_f64() {
                t.agreement += a;
                t.agreed_images += 1;
            }
            if let Some(r) = w["weight"].as_f64() {
                t.weight = Some(r);
            }
            if let Some(r) = w["reliability"].as_f64() {
                t.reliability = Some(r);
            }
        }
        for e in meta["excluded-workers"].as_array().into_iter().flatten() {
            if let Some(id) = e["worker-id"].as_str()
                && !report
                    .as_array()
                    .is_some_and(|r| r.iter().any(|w| w["worker-id"] == id))
            {
                self.workers.entry(id.to_owned()).or_default().images += 1;
            }
        }
    }

    /// Adds an image that failed.
    pub fn add_failed(&mut self) {
        self.failed += 1;
    }

    /// Adds an image the job labelled by machine, kept as it is.
    pub fn add_machine_labelled(&mut self) {
        self.machine_labelled += 1;
    }

    /// Images kept as the job labelled them by machine.
    pub fn machine_labelled(&self) -> usize {
        self.machine_labelled
    }

    /// Marks a worker as left out by the user (`--exclude-worker`).
    pub fn excluded_by_user(&mut self, worker: &str) {
        self.workers
            .entry(worker.to_owned())
            .or_default()
            .excluded_by_user = true;
    }

    /// Images consolidated so far.
    pub fn consolidated(&self) -> usize {
        self.consolidated
    }

    /// Images failed so far.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// The report's JSON: where the run wrote, then the algorithm (the one the metadata
    /// names, else `run.algorithm`), its creation date, the counts, and the workers ranked by
    /// mean agreement, best first (those without one last), then by id.
    pub fn to_json(&self, run: &ReportHeader<'_>) -> Value {
        let mut ranked: Vec<(&String, &WorkerTally)> = self.workers.iter().collect();
        ranked.sort_by(|a, b| {
            b.1.mean_agreement()
                .unwrap_or(-1.0)
                .total_cmp(&a.1.mean_agreement().unwrap_or(-1.0))
                .then(a.0.cmp(b.0))
        });
        let workers: Vec<Value> = ranked
            .iter()
            .map(|(id, t)| {
                let mut w = json!({"worker-id": id, "images": t.images, "included": t.included});
                if let Some(m) = t.mean_agreement() {
                    w["mean-agreement"] = json!((m * 10_000.0).round() / 10_000.0);
                }
                if let Some(r) = t.weight {
                    w["weight"] = json!(r);
                }
                if let Some(r) = t.reliability {
                    w["reliability"] = json!(r);
                }
                if t.excluded_by_user {
                    w["excluded-by-user"] = json!(true);
                }
                w
            })
            .collect();
        json!({
            "job-output": run.output,
            "label-attribute-name": run.label_attribute_name,
            "algorithm": self.algorithm.as_deref().unwrap_or(run.algorithm),
            "creation-date": run.creation_date,
            "images": run.images,
            "consolidated": self.consolidated,
            "machine-labelled": self.machine_labelled,
            "failed": self.failed,
            "workers": workers,
        })
    }
}

/// What the job report says of the run itself.
#[derive(Debug, Clone, Copy)]
pub struct ReportHeader<'a> {
    /// The run's output folder.
    pub output: &'a str,
    /// The label attribute written.
    pub label_attribute_name: &'a str,
    /// The algorithm asked for (the metadata's own name wins).
    pub algorithm: &'a str,
    /// The run's `creation-date`.
    pub creation_date: &'a str,
    /// The input manifest's lines.
    pub images: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_ranked_by_mean_agreement_over_the_job() {
        let mut r = JobReport::default();
        r.add_labelled(
            &json!({"consolidation": {"algorithm": "weighted", "workers": [
            {"worker-id": "a", "included": true, "agreement": 0.9, "weight": 2.0},
            {"worker-id": "b", "included": true, "agreement": 0.99}]},
            "excluded-workers": [{"worker-id": "c", "reason": "bad PNG"}]}),
        );
        r.add_labelled(&json!({"consolidation": {"workers": [
            {"worker-id": "a", "included": false}]}}));
        r.add_failed();
        r.excluded_by_user("d");
        let j = r.to_json(&ReportHeader {
            output: "s3://b/o",
            label_attribute_name: "a-ref",
            algorithm: "majority",
            creation_date: "2026-12-07T10:00:00.000000",
            images: 3,
        });
        assert_eq!(j["algorithm"], "weighted");
        assert_eq!(
            (j["consolidated"].clone(), j["failed"].clone()),
            (json!(2), json!(1))
        );
        let ids: Vec<&str> = j["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["worker-id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["b", "a", "c", "d"]);
        assert_eq!(
            j["workers"][1],
            json!({"worker-id": "a", "images": 2, "included": 1, "mean-agreement": 0.9, "weight": 2.0})
        );
        assert_eq!(j["workers"][3]["excluded-by-user"], true);
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "job-output");
    }
}
