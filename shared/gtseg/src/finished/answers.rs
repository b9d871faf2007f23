//! The workers' answers as Ground Truth saved them (`worker-response` objects), and the
//! payload items built from them for a consolidation run.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Saved;
use crate::event::{
    Annotation, AnnotationData, ConsolidationResponseItem, ExcludedWorker, PayloadItem, ShapeError,
    from_slice, from_value, string_or_number,
};

/// One worker's answer as Ground Truth saved it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SavedAnswer {
    /// The worker (a number is read as its text, as the consolidation function reads it).
    #[serde(rename = "workerId", deserialize_with = "string_or_number")]
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
    answers: Vec<Value>,
}

/// The answers of one worker-response object, each parsed on its own: a malformed answer (no
/// `answerContent`, a `workerId` that is neither text nor a number) is excluded alone, with
/// its reason, and the others stand. `Err` only when the object as a whole is not a
/// worker-response object (not JSON, truncated, no `answers` list): then its image cannot be
/// decided from it.
pub fn parse_worker_response(
    bytes: &[u8],
) -> Result<Vec<Result<SavedAnswer, ExcludedWorker>>, ShapeError> {
    let file: WorkerResponseFile = from_slice("the worker-response object", bytes)?;
    Ok(file
        .answers
        .into_iter()
        .enumerate()
        .map(|(n, v)| {
            let worker = match &v["workerId"] {
                Value::String(s) => s.clone(),
                Value::Number(x) => x.to_string(),
                _ => format!("(answer {n}, no workerId)"),
            };
            from_value::<SavedAnswer>("a saved answer", &v).map_err(|e| ExcludedWorker {
                worker_id: worker,
                reason: format!("its saved answer is malformed: {e}"),
            })
        })
        .collect())
}

/// The exclusion of a worker the user left out with `--exclude-worker`.
pub fn excluded_by_user(worker: &str) -> ExcludedWorker {
    ExcludedWorker {
        worker_id: worker.to_owned(),
        reason: "excluded by the user (--exclude-worker)".to_owned(),
    }
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

/// Adds answers left out before consolidation (by `--exclude-worker`, or malformed in their
/// worker-response object) to an item's `excluded-workers`, so that its metadata says who was
/// left out and why.
pub fn note_excluded(item: &mut ConsolidationResponseItem, attr: &str, dropped: &[ExcludedWorker]) {
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
            list.push(json!({"worker-id": w.worker_id, "reason": w.reason}));
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
        let answers: Vec<SavedAnswer> = parse_worker_response(text)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
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

    #[test]
    fn one_malformed_answer_is_excluded_alone_and_a_numeric_worker_id_is_text() {
        let text = br#"{"answers": [
            {"workerId": 42, "answerContent": {"e": {"label": "x"}}},
            {"workerId": "w2"},
            {"answerContent": {"e": {"label": "y"}}}]}"#;
        let answers = parse_worker_response(text).unwrap();
        assert_eq!(answers[0].as_ref().unwrap().worker_id, "42");
        let bad = answers[1].as_ref().unwrap_err();
        assert_eq!(bad.worker_id, "w2");
        assert!(bad.reason.contains("answerContent"), "{}", bad.reason);
        assert!(
            answers[2]
                .as_ref()
                .unwrap_err()
                .worker_id
                .contains("no workerId")
        );
        // A truncated object is not a worker-response object at all.
        assert!(parse_worker_response(&text[..40]).is_err());
    }
}
