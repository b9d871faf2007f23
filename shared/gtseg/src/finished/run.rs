//! The objects of a re-consolidation run (`gtseg job consolidate`) under its output folder:
//! each batch's payload and saved response, named by the run, and the run's state, which a
//! `--resume` must match.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::CONSOLIDATION_RESPONSES;
use crate::event::{ShapeError, from_slice};
use crate::uri::S3Uri;

/// Where a run's objects go: its output folder, and its name in the objects' names (its
/// creation time, in microseconds), so that objects of an earlier run into the same output
/// are never taken for this one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    /// The run's output folder.
    pub output: S3Uri,
    /// The run's name.
    pub run_id: String,
}

impl RunLayout {
    /// The layout of run `run_id` under `output`.
    pub fn new(output: S3Uri, run_id: String) -> Self {
        Self { output, run_id }
    }

    /// Batch `k`'s payload: what Ground Truth would have sent.
    pub fn request_uri(&self, k: usize) -> S3Uri {
        self.output.join(&format!(
            "annotations/consolidated-annotation/consolidation-request/iteration-1/{}-batch-{k:06}.json",
            self.run_id
        ))
    }

    /// Batch `k`'s saved response: the mark that the batch is done.
    pub fn response_uri(&self, k: usize) -> S3Uri {
        self.output.join(&format!(
            "{CONSOLIDATION_RESPONSES}iteration-1/{}-batch-{k:06}.json",
            self.run_id
        ))
    }

    /// The folder that holds the saved responses.
    pub fn responses_folder(&self) -> S3Uri {
        self.output
            .join(&format!("{CONSOLIDATION_RESPONSES}iteration-1/"))
    }

    /// The run that a batch object's `key` names (`<run>-batch-NNNNNN.json`), any run's.
    pub fn run_of(key: &str) -> Option<&str> {
        let name = key.rsplit('/').next()?;
        let (run, rest) = name.rsplit_once("-batch-")?;
        rest.strip_suffix(".json")?
            .parse::<usize>()
            .ok()
            .map(|_| run)
    }

    /// The folder that holds the batches' payloads.
    pub fn requests_folder(&self) -> S3Uri {
        self.output
            .join("annotations/consolidated-annotation/consolidation-request/iteration-1/")
    }

    /// The batch whose saved response `key` is, if it is one of this run's.
    pub fn batch_of_response(&self, key: &str) -> Option<usize> {
        let name = key.rsplit('/').next()?;
        name.strip_prefix(&format!("{}-batch-", self.run_id))?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    /// Batch `k`'s notes: the images it could not send to consolidation, and why (written
    /// only when there are some, before the batch's response).
    pub fn notes_uri(&self, k: usize) -> S3Uri {
        self.notes_folder()
            .join(&format!("{}-batch-{k:06}.json", self.run_id))
    }

    /// The folder that holds the batches' notes.
    pub fn notes_folder(&self) -> S3Uri {
        self.output
            .join("annotations/consolidated-annotation/gtseg-run")
    }

    /// The run's state.
    pub fn state_uri(&self) -> S3Uri {
        state_uri(&self.output)
    }

    /// The consolidation event's `outputConfig` for the run's batches.
    pub fn output_config(&self) -> S3Uri {
        self.output.join("annotations")
    }
}

/// Where the state of the run into `output` is.
pub fn state_uri(output: &S3Uri) -> S3Uri {
    output.join("annotations/consolidated-annotation/gtseg-job.json")
}

/// A new run's id: its creation time in microseconds, and, when an earlier run into the same
/// output already used that (one `--creation-date`, or `--force` over an earlier run), the
/// first `-N` that none used. `used` lists the ids the output's objects carry (see
/// [`RunLayout::run_of`]). The same inputs give the same id, so a run is reproducible, and
/// two runs into one output never share one.
pub fn new_run_id(created: SystemTime, used: &std::collections::BTreeSet<String>) -> String {
    let base = format!("{:016}", epoch_micros(created));
    std::iter::once(base.clone())
        .chain((1..).map(|n| format!("{base}-{n}")))
        .find(|id| !used.contains(id))
        .unwrap_or(base)
}

/// Microseconds since the epoch (0 before it): how a run's time is saved and named.
pub fn epoch_micros(t: SystemTime) -> u64 {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The options and inputs a run's output depends on, saved when it starts: a `--resume` must
/// have the same ones, and takes the run's creation time from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunState {
    /// The label attribute written.
    pub label_attribute_name: String,
    /// Images per batch.
    pub batch_size: usize,
    /// The algorithm's name.
    pub algorithm: String,
    /// The workers left out.
    pub exclude_workers: Vec<String>,
    /// The job's labels.
    pub labels: Vec<String>,
    /// The input manifest's lines.
    pub images: usize,
    /// The run's creation time, in microseconds since the epoch, as a decimal string.
    #[serde(with = "decimal")]
    pub creation_time_micros: u64,
    /// The run's id, in the names of its objects.
    pub run_id: String,
    /// The job's output folder, as given.
    pub job_output: String,
    /// The input manifest, as given.
    pub manifest: String,
    /// The function that consolidated, with `--via-lambda`.
    pub via_lambda: Option<String>,
}

/// A saved state that cannot be resumed from.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The object is not a run's state.
    #[error(
        "{uri} is not the state of a gtseg job run: {error}; remove it, or rerun without --resume into a fresh --output"
    )]
    Shape {
        /// The state object.
        uri: S3Uri,
        /// What is wrong with it.
        error: ShapeError,
    },
    /// The run saved other options than those given now.
    #[error(
        "--resume: the earlier run at {uri} used other options ({}); rerun with the same options, or without --resume into a fresh --output",
        .fields.join(", ")
    )]
    Differs {
        /// The state object.
        uri: S3Uri,
        /// Each option that differs: its name, then the saved and the given values.
        fields: Vec<String>,
    },
}

impl RunState {
    /// The state saved at `uri`, checked field by field (a hand-edited or foreign object is
    /// refused, naming the field).
    pub fn parse(uri: &S3Uri, bytes: &[u8]) -> Result<Self, StateError> {
        from_slice("the run's state", bytes).map_err(|error| StateError::Shape {
            uri: uri.clone(),
            error,
        })
    }

    /// The state as saved.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// When the run was created.
    pub fn created(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_micros(self.creation_time_micros)
    }

    /// Checks that `given` (the options of a `--resume`) are those of this saved state, its
    /// creation time aside; the error names each option that differs.
    pub fn check_resume(&self, given: &Self, uri: &S3Uri) -> Result<(), StateError> {
        let (a, b) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(given).unwrap_or_default(),
        );
        let fields: Vec<String> = a
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !["creation-time-micros", "run-id"].contains(&k.as_str()))
            .filter(|(k, v)| b.get(k.as_str()) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} then, {} now", b[k.as_str()]))
            .collect();
        if fields.is_empty() {
            Ok(())
        } else {
            Err(StateError::Differs {
                uri: uri.clone(),
                fields,
            })
        }
    }
}

/// What a batch could not send to consolidation (saved beside its response when there is
/// something to say): an image whose worker-response objects could not be read, or whose
/// answers were all unusable, fails with its reason in its line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BatchNotes {
    /// The images that failed before consolidation, by id.
    pub failed: std::collections::BTreeMap<String, FailedImage>,
}

/// An image that failed before consolidation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FailedImage {
    /// Why, naming the object or the answers.
    pub reason: String,
    /// The reason lies outside the workers' data (an object that could not be read, a stray
    /// object): `--resume` tries the image's batch again, and the run does not end in success.
    pub retry: bool,
}

impl BatchNotes {
    /// The notes saved at `uri`.
    pub fn parse(uri: &S3Uri, bytes: &[u8]) -> Result<Self, StateError> {
        from_slice("a batch's notes", bytes).map_err(|error| StateError::Shape {
            uri: uri.clone(),
            error,
        })
    }

    /// Whether an image of the batch must be tried again.
    pub fn wants_retry(&self) -> bool {
        self.failed.values().any(|f| f.retry)
    }
}

/// A `u64` as a decimal string, as the state has always saved its time (JSON readers that
/// take numbers as doubles would round microseconds).
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&n.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| {
            D::Error::custom(format!("{text:?} is not a whole number of microseconds"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RunState {
        RunState {
            label_attribute_name: "a-ref".into(),
            batch_size: 100,
            algorithm: "majority".into(),
            exclude_workers: Vec::new(),
            labels: vec!["car".into()],
            images: 4,
            creation_time_micros: 1_795_680_000_123_456,
            run_id: "1795680000123456-0000abcd".into(),
            job_output: "s3://b/out/job/".into(),
            manifest: "s3://b/in.manifest".into(),
            via_lambda: None,
        }
    }

    #[test]
    fn a_state_round_trips_and_a_resume_names_what_differs() {
        let uri = S3Uri::parse("s3://b/out/state.json").unwrap();
        let s = state();
        let text = s.to_json();
        assert!(
            String::from_utf8_lossy(&text).contains(r#""creation-time-micros":"1795680000123456""#)
        );
        let back = RunState::parse(&uri, &text).unwrap();
        assert_eq!(back, s);
        let mut later = state();
        later.creation_time_micros += 5;
        later.run_id = "another".into();
        assert!(
            s.check_resume(&later, &uri).is_ok(),
            "the time is the saved one's"
        );
        later.batch_size = 10;
        later.exclude_workers = vec!["w".into()];
        let e = s.check_resume(&later, &uri).unwrap_err().to_string();
        assert!(
            e.contains("batch-size: 100 then, 10 now") && e.contains("exclude-workers"),
            "{e}"
        );
        assert!(!e.contains("labels"), "{e}");
    }

    #[test]
    fn an_edited_state_is_refused_naming_the_field() {
        let uri = S3Uri::parse("s3://b/out/state.json").unwrap();
        let text = String::from_utf8(state().to_json())
            .unwrap()
            .replace("1795680000123456", "abc");
        let e = RunState::parse(&uri, text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("creation-time-micros"), "{e}");
        let e = RunState::parse(&uri, br#"{"label-attribute-name": "a"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not the state"), "{e}");
    }

    #[test]
    fn batch_objects_are_named_by_the_run_and_ids_are_never_reused_in_an_output() {
        let out = S3Uri::parse("s3://b/out").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(42);
        let mut used = std::collections::BTreeSet::new();
        let id = new_run_id(at, &used);
        assert_eq!(id, "0000000000000042");
        used.insert(id.clone());
        assert_eq!(new_run_id(at, &used), "0000000000000042-1");
        assert_eq!(
            RunLayout::run_of("a/0000000000000042-1-batch-000003.json"),
            Some("0000000000000042-1")
        );
        let run = RunLayout::new(out, id.clone());
        let r = run.response_uri(7);
        assert!(
            r.key()
                .ends_with(&format!("iteration-1/{id}-batch-000007.json"))
        );
        assert_eq!(run.batch_of_response(r.key()), Some(7));
        assert_eq!(
            run.batch_of_response("x/0000000000000042-1-batch-000007.json"),
            None
        );
        assert!(run.notes_uri(7).key().contains("gtseg-run/"));
    }
}
