//! A finished labeling job's saved objects, read back: the workers' responses by image, the
//! consolidation function's saved responses, and output-manifest lines. Pure: the `gtseg job`
//! commands read and write the objects; this decides what they mean.
//!
//! The layout under `<S3OutputPath>/<job-name>/` (see `docs/jobs.md` in the repository):
//! `annotations/worker-response/iteration-N/<datasetObjectId>/<YYYY-MM-DD_HH:MM:SS>.json`
//! holds `{"answers": [{"workerId", "answerContent", "submissionTime", ...}]}`, and
//! `annotations/consolidated-annotation/consolidation-response/iteration-N/<ts>.json` the
//! function's responses, verbatim. `datasetObjectId` is the 0-based line number of the input
//! manifest.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::event::{
    Annotation, AnnotationData, ConsolidationResponseItem, PayloadItem, ShapeError, from_slice,
};

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

/// One worker's answer as Ground Truth saved it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SavedAnswer {
    /// The worker.
    #[serde(rename = "workerId")]
    pub worker_id: String,
    /// The answer, as the template's form submitted it.
    #[serde(rename = "answerContent")]
    pub answer_content: Value,
    /// When the worker submitted it (ISO 8601); absent in some hand-made files.
    #[serde(rename = "submissionTime", default)]
    pub submission_time: Option<String>,
}

#[derive(Deserialize)]
struct WorkerResponseFile {
    answers: Vec<SavedAnswer>,
}

/// The answers of one worker-response object.
pub fn parse_worker_response(bytes: &[u8]) -> Result<Vec<SavedAnswer>, ShapeError> {
    from_slice::<WorkerResponseFile>("the worker-response object", bytes).map(|f| f.answers)
}

/// One image's answers from all its worker-response objects: each worker once, with the
/// newest submission (by `submissionTime`, then by the object's place in the job's history);
/// the workers in `exclude` dropped. The answers come in the order of their submission.
/// Returns the answers and the excluded workers that had one.
pub fn newest_per_worker(
    saved: Vec<(Saved, SavedAnswer)>,
    exclude: &[String],
) -> (Vec<SavedAnswer>, Vec<String>) {
    let mut newest: HashMap<String, (Option<String>, Saved, SavedAnswer)> = HashMap::new();
    for (at, answer) in saved {
        let key = (answer.submission_time.clone(), at.clone());
        match newest.get(&answer.worker_id) {
            Some((time, place, _)) if (time.clone(), place.clone()) >= key => {}
            _ => {
                newest.insert(
                    answer.worker_id.clone(),
                    (answer.submission_time.clone(), at, answer),
                );
            }
        }
    }
    let mut kept: Vec<(Option<String>, Saved, SavedAnswer)> = newest.into_values().collect();
    kept.sort_by(|a, b| (&a.0, &a.1, &a.2.worker_id).cmp(&(&b.0, &b.1, &b.2.worker_id)));
    let mut dropped = Vec::new();
    let answers = kept
        .into_iter()
        .filter_map(|(_, _, a)| {
            if exclude.contains(&a.worker_id) {
                dropped.push(a.worker_id);
                None
            } else {
                Some(a)
            }
        })
        .collect();
    dropped.sort();
    (answers, dropped)
}

/// The payload item Ground Truth would have sent for this image: its source and every answer
/// inline.
pub fn payload_item(id: &str, source_ref: Option<&str>, answers: &[SavedAnswer]) -> PayloadItem {
    PayloadItem {
        dataset_object_id: id.to_owned(),
        data_object: source_ref.map(|s| json!({"s3Uri": s})),
        annotations: answers
            .iter()
            .map(|a| Annotation {
                worker_id: a.worker_id.clone(),
                annotation_data: AnnotationData {
                    content: Some(a.answer_content.to_string()),
                    s3_uri: None,
                },
            })
            .collect(),
    }
}

/// An input-manifest line, parsed: a JSON object per line.
pub fn manifest_line(line: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the line is JSON but not an object".to_owned()),
        Err(e) => Err(format!("the line is not JSON: {e}")),
    }
}

/// An output-manifest line: the input line plus the image's label (`content`, as the function
/// returned it), or, without one, Ground Truth's failure form
/// `"<attr>-metadata": {"failure-reason": ..., "human-annotated": "yes"}`.
pub fn output_line(
    input: &Map<String, Value>,
    attr: &str,
    content: Option<&Map<String, Value>>,
    failure: &str,
) -> String {
    let mut line = input.clone();
    match content {
        Some(c) => line.extend(c.iter().map(|(k, v)| (k.clone(), v.clone()))),
        None => {
            line.remove(attr);
            line.insert(
                format!("{attr}-metadata"),
                json!({"failure-reason": failure, "human-annotated": "yes"}),
            );
        }
    }
    Value::Object(line).to_string()
}

/// The items of a saved consolidation-response object: the function's response array.
pub fn parse_consolidation_response(
    bytes: &[u8],
) -> Result<Vec<ConsolidationResponseItem>, ShapeError> {
    from_slice("the consolidation-response object", bytes)
}

/// Adds the workers dropped with `--exclude-worker` to an item's `excluded-workers`, so that
/// its metadata says who was left out and why.
pub fn note_excluded(item: &mut ConsolidationResponseItem, attr: &str, dropped: &[String]) {
    if dropped.is_empty() {
        return;
    }
    let Some(meta) = item
        .consolidated_annotation
        .content
        .get_mut(&format!("{attr}-metadata"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let list = meta
        .entry("excluded-workers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        for w in dropped {
            list.push(json!({"worker-id": w, "reason": "excluded by the user (--exclude-worker)"}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(worker: &str, time: Option<&str>, label: &str) -> SavedAnswer {
        SavedAnswer {
            worker_id: worker.into(),
            answer_content: json!({"x": {"label": label}}),
            submission_time: time.map(str::to_owned),
        }
    }

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

    #[test]
    fn each_worker_counts_once_with_the_newest_submission() {
        let saved = vec![
            (
                at(1, "a.json"),
                answer("w1", Some("2026-11-26T10:00:00Z"), "old"),
            ),
            (
                at(1, "a.json"),
                answer("w2", Some("2026-11-26T10:05:00Z"), "w2"),
            ),
            (
                at(2, "b.json"),
                answer("w1", Some("2026-11-26T11:00:00Z"), "new"),
            ),
            // Same time: the later object wins.
            (at(1, "a.json"), answer("w3", None, "first")),
            (at(1, "c.json"), answer("w3", None, "second")),
        ];
        let (answers, dropped) = newest_per_worker(saved.clone(), &[]);
        let got: Vec<(&str, &Value)> = answers
            .iter()
            .map(|a| (a.worker_id.as_str(), &a.answer_content["x"]["label"]))
            .collect();
        assert_eq!(
            got,
            [
                ("w3", &json!("second")),
                ("w2", &json!("w2")),
                ("w1", &json!("new"))
            ]
        );
        assert!(dropped.is_empty());
        let (answers, dropped) = newest_per_worker(saved, &["w1".into(), "nobody".into()]);
        assert_eq!(answers.len(), 2);
        assert_eq!(dropped, ["w1"]);
    }

    #[test]
    fn output_lines_add_the_label_or_the_failure() {
        let input = manifest_line(r#"{"source-ref": "s3://b/i.jpg", "k": 1}"#).unwrap();
        let mut content = Map::new();
        content.insert("a-ref".into(), json!("s3://b/m.png"));
        content.insert("a-ref-metadata".into(), json!({"type": "t"}));
        let line: Value =
            serde_json::from_str(&output_line(&input, "a-ref", Some(&content), "")).unwrap();
        assert_eq!(line["k"], 1);
        assert_eq!(line["a-ref"], "s3://b/m.png");
        let line: Value =
            serde_json::from_str(&output_line(&input, "a-ref", None, "no answer")).unwrap();
        assert_eq!(
            line["a-ref-metadata"],
            json!({"failure-reason": "no answer", "human-annotated": "yes"})
        );
        assert!(line.get("a-ref").is_none());
        assert!(manifest_line("[1]").is_err() && manifest_line("{").is_err());
    }

    #[test]
    fn worker_response_objects_parse_and_payload_items_carry_the_answers_inline() {
        let text = br#"{"answers": [{"workerId": "w", "answerContent": {"e": {"label": "x"}},
            "submissionTime": "2026-11-26T10:00:00.000Z", "acceptanceTime": "t",
            "timeSpentInSeconds": 40.5, "workerMetadata": {"identityData": {}}}]}"#;
        let answers = parse_worker_response(text).unwrap();
        let item = payload_item("3", Some("s3://b/i.jpg"), &answers);
        assert_eq!(item.dataset_object_id, "3");
        let content = item.annotations[0]
            .annotation_data
            .content
            .as_deref()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(content).unwrap(),
            json!({"e": {"label": "x"}})
        );
        assert!(parse_worker_response(b"{\"answers\": 3}").is_err());
    }
}
