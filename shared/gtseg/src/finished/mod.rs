//! A labeling job's objects once it has run, as the tools read and write them: the workers'
//! responses by image (`answers`), manifest lines (`manifest`), the objects of a
//! re-consolidation run (`run`) and its job report (`report`). This module owns their formats
//! and the layout; the `gtseg job` commands move the bytes.
//!
//! The layout under `<S3OutputPath>/<job-name>/` (see `docs/jobs.md` in the repository):
//! `annotations/worker-response/iteration-N/<datasetObjectId>/<YYYY-MM-DD_HH:MM:SS>.json`
//! holds `{"answers": [{"workerId", "answerContent", "submissionTime", ...}]}`, and
//! `annotations/consolidated-annotation/consolidation-response/iteration-N/<ts>.json` the
//! function's responses, verbatim. `datasetObjectId` is the 0-based line number of the input
//! manifest.

mod answers;
mod lock;
mod manifest;
mod report;
mod run;

pub use answers::{
    SavedAnswer, excluded_by_user, newest_per_worker, note_excluded, parse_worker_response,
    payload_item,
};
pub use lock::{Holder, LockError, OutputLock, lock_uri};
pub use manifest::{
    InputLine, LineReader, MAX_LINE_BYTES, NotUtf8, OutputLine, attribute_collision,
    label_attributes, machine_label, manifest_line, output_line, parse_consolidation_response,
    parse_manifest, parse_output_lines,
};
pub use report::{JobReport, ReportHeader};
pub use run::{
    BatchNotes, FailedImage, RunLayout, RunState, StateError, epoch_micros, new_run_id, state_uri,
};

use crate::uri::S3Uri;

/// Where the workers' responses are, under a job's output folder.
pub const WORKER_RESPONSES: &str = "annotations/worker-response/";

/// Where the consolidation function's saved responses are, under a job's output folder.
pub const CONSOLIDATION_RESPONSES: &str =
    "annotations/consolidated-annotation/consolidation-response/";

/// Where a saved object sits in the job's history: its iteration and its file name (a
/// timestamp), which order saved objects oldest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Saved {
    /// `N` of `iteration-N`.
    pub iteration: u32,
    /// The file name, `YYYY-MM-DD_HH:MM:SS.json`.
    pub name: String,
}

/// A worker-response object's key, relative to the worker-response folder
/// (`iteration-N/<datasetObjectId>/<name>`): the image's id and where the object sits.
/// `None` for any other key.
pub fn worker_response_key(relative: &str) -> Option<(String, Saved)> {
    let mut parts = relative.split('/');
    let iteration = parts.next()?.strip_prefix("iteration-")?.parse().ok()?;
    let (id, name) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !id.is_empty() && name.ends_with(".json")).then(|| {
        (
            id.to_owned(),
            Saved {
                iteration,
                name: name.to_owned(),
            },
        )
    })
}

/// A consolidation-response object's key, relative to its folder (`iteration-N/<name>`).
pub fn consolidation_response_key(relative: &str) -> Option<Saved> {
    let (iteration, name) = relative.split_once('/')?;
    let iteration = iteration.strip_prefix("iteration-")?.parse().ok()?;
    (!name.contains('/') && name.ends_with(".json")).then(|| Saved {
        iteration,
        name: name.to_owned(),
    })
}

/// Where a job's output manifest goes under an output folder (Ground Truth's own place for it).
pub fn output_manifest_uri(output: &S3Uri) -> S3Uri {
    output.join("manifests/output/output.manifest")
}

/// Where a re-consolidation's job report goes under its output folder.
pub fn job_report_uri(output: &S3Uri) -> S3Uri {
    output.join("manifests/output/job-report.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(iteration: u32, name: &str) -> Saved {
        Saved {
            iteration,
            name: name.into(),
        }
    }

    #[test]
    fn keys_of_the_job_layout_are_recognised_and_others_are_not() {
        assert_eq!(
            worker_response_key("iteration-2/17/2026-11-26_09:58:31.json"),
            Some(("17".into(), at(2, "2026-11-26_09:58:31.json")))
        );
        for other in [
            "iteration-x/1/a.json",
            "iteration-1/1/a.txt",
            "iteration-1/1/a/b.json",
            "1/a.json",
        ] {
            assert_eq!(worker_response_key(other), None, "{other}");
        }
        assert_eq!(
            consolidation_response_key("iteration-10/2026-11-26_10:00:00.json"),
            Some(at(10, "2026-11-26_10:00:00.json"))
        );
        // Iterations order by number, not by text.
        assert!(at(10, "a") > at(2, "b"));
    }
}
