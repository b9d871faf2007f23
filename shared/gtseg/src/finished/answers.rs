//! The workers' answers as Ground Truth saved them (`worker-response` objects), and the
//! payload items built from them for a consolidation run.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Saved;
use crate::event::{
    Annotation, AnnotationData, ConsolidationResponseItem, PayloadItem, ShapeError, from_slice,
};

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
