//! Manifest lines: an input manifest's (JSON Lines, line `i` being `datasetObjectId` `i`),
//! an output manifest's (the input line plus the label, or Ground Truth's failure form), and
//! the consolidation function's saved responses, which a manifest is rebuilt from.

use serde_json::{Map, Value, json};

use crate::event::{ConsolidationResponseItem, ShapeError, from_slice};

/// A manifest that is not UTF-8 text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the manifest is not UTF-8 text (byte {0})")]
pub struct NotUtf8(pub usize);

/// An input-manifest line: its JSON object, or why it is not one.
pub type InputLine = Result<Map<String, Value>, String>;

/// An input manifest's lines; blank lines are skipped, so line `i` is `datasetObjectId` `i`.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<InputLine>, NotUtf8> {
    let text = std::str::from_utf8(bytes).map_err(|e| NotUtf8(e.valid_up_to()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(manifest_line)
        .collect())
}

/// One line of an output manifest, or of a consolidation response: its place, its id and its
/// content.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLine {
    /// The line's place, from 0.
    pub n: usize,
    /// The image's `datasetObjectId` (a manifest line's is its place).
    pub id: String,
    /// The line: the input fields and the label attribute with its metadata.
    pub line: Map<String, Value>,
}

/// The lines of an output manifest (JSON Lines), or of a consolidation response (a JSON array
/// of response items, as `gtseg replay` prints), each with its place and its id. A line that
/// is not a JSON object comes out empty, so that it shows as unlabelled.
pub fn parse_output_lines(bytes: &[u8]) -> Result<Vec<OutputLine>, NotUtf8> {
    if let Ok(items) = from_slice::<Vec<ConsolidationResponseItem>>("a response", bytes) {
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(n, item)| OutputLine {
                n,
                id: item.dataset_object_id,
                line: item.consolidated_annotation.content,
            })
            .collect());
    }
    Ok(parse_manifest(bytes)?
        .into_iter()
        .enumerate()
        .map(|(n, line)| OutputLine {
            n,
            id: n.to_string(),
            line: line.unwrap_or_default(),
        })
        .collect())
}

/// An input-manifest line, parsed: a JSON object per line.
pub fn manifest_line(line: &str) -> InputLine {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn replay_responses_and_json_lines_are_both_output_manifests() {
        let replay = br#"[{"datasetObjectId": "7", "consolidatedAnnotation": {"content": {"a": "s3://b/k.png"}}}]"#;
        let lines = parse_output_lines(replay).unwrap();
        assert_eq!((lines[0].n, lines[0].id.as_str()), (0, "7"));
        assert_eq!(lines[0].line["a"], "s3://b/k.png");
        let jsonl = b"{\"a\": 1}\n\n{\"a\": 2}\n";
        let lines = parse_output_lines(jsonl).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].id, "1");
        assert_eq!(parse_output_lines(b"\xff"), Err(NotUtf8(0)));
    }
}
