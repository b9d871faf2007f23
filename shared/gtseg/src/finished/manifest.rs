//! Manifest lines: an input manifest's (JSON Lines, line `i` being `datasetObjectId` `i`),
//! an output manifest's (the input line plus the label, or Ground Truth's failure form), and
//! the consolidation function's saved responses, which a manifest is rebuilt from.

use serde_json::{Map, Value, json};

use crate::event::{ConsolidationResponseItem, ShapeError, from_slice, from_value};
use crate::store::ObjectReader;

/// A manifest that is not UTF-8 text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the manifest is not UTF-8 text (byte {0})")]
pub struct NotUtf8(pub usize);

/// An input-manifest line: its JSON object, or why it is not one.
pub type InputLine = Result<Map<String, Value>, String>;

/// An input manifest's lines; blank lines are skipped, so line `i` is `datasetObjectId` `i`.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<InputLine>, NotUtf8> {
    let text = std::str::from_utf8(bytes).map_err(|e| NotUtf8(e.valid_up_to()))?;
    // A byte-order mark (some editors write one) is not part of line 0.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(manifest_line)
        .collect())
}

/// A manifest read line by line as it arrives, so that memory does not grow with it: each
/// non-blank line as a JSON object (or why it is not one), a byte-order mark and surrounding
/// spaces ignored. A line longer than [`MAX_LINE_BYTES`] is an error, not a reason to read on.
pub struct LineReader {
    reader: tokio::io::BufReader<ObjectReader>,
    buf: Vec<u8>,
    /// The place of the next line.
    n: usize,
}

/// The longest manifest line read (Ground Truth's input lines are at most 100 KB; an output
/// line adds a label's metadata).
pub const MAX_LINE_BYTES: u64 = 64 << 20;

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl LineReader {
    /// Reads from an open object or file.
    pub fn new(reader: ObjectReader) -> Self {
        Self {
            reader: tokio::io::BufReader::new(reader),
            buf: Vec::new(),
            n: 0,
        }
    }

    /// Whether what comes first is a JSON array (a consolidation response, as `gtseg replay`
    /// prints it) rather than JSON Lines.
    pub async fn starts_with_array(&mut self) -> std::io::Result<bool> {
        use tokio::io::AsyncBufReadExt as _;
        let head = self.reader.fill_buf().await?;
        Ok(head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['))
    }

    /// The rest, whole, up to `max` bytes (for a JSON array).
    pub async fn read_rest(&mut self, max: u64) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt as _;
        let mut bytes = Vec::new();
        (&mut self.reader).take(max).read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    /// The next non-blank line and its place (from 0, blank lines not counted), or `None` at
    /// the end.
    pub async fn next_line(&mut self) -> std::io::Result<Option<(usize, InputLine)>> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
        loop {
            self.buf.clear();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut self.buf)
                .await?;
            if read == 0 {
                return Ok(None);
            }
            if read as u64 == MAX_LINE_BYTES && self.buf.last() != Some(&b'\n') {
                return Err(std::io::Error::other(format!(
                    "line {} is longer than {MAX_LINE_BYTES} bytes",
                    self.n
                )));
            }
            let line = match std::str::from_utf8(&self.buf) {
                Ok(text) => {
                    let text = text.trim_start_matches('\u{feff}').trim();
                    if text.is_empty() {
                        continue;
                    }
                    manifest_line(text)
                }
                Err(_) => Err("the line is not UTF-8 text".to_owned()),
            };
            let n = self.n;
            self.n += 1;
            return Ok(Some((n, line)));
        }
    }
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

/// The items of a saved consolidation-response object (the function's response array), each
/// parsed on its own, so that one malformed item costs only its image. `Err` when the object
/// is not a JSON array at all.
pub fn parse_consolidation_response(
    bytes: &[u8],
) -> Result<Vec<Result<ConsolidationResponseItem, ShapeError>>, ShapeError> {
    let items: Vec<Value> = from_slice("the consolidation-response object", bytes)?;
    Ok(items
        .iter()
        .map(|v| from_value("an item of the consolidation response", v))
        .collect())
}

/// A label that the job made by machine (automated data labeling): Ground Truth writes such
/// an output line with `"human-annotated": "no"` in the label's metadata, and no worker ever
/// answered for it. The attribute, its value and its metadata.
pub fn machine_label(line: &Map<String, Value>) -> Option<(String, Value, Value)> {
    line.iter().find_map(|(key, meta)| {
        let attr = key.strip_suffix("-metadata")?;
        (meta.get("human-annotated")? == "no").then(|| {
            let value = line.get(attr).cloned().unwrap_or(Value::Null);
            (attr.to_owned(), value, meta.clone())
        })
    })
}

/// The label attributes a manifest line carries: the keys that have a `-metadata` beside them.
pub fn label_attributes(line: &Map<String, Value>) -> Vec<&str> {
    line.keys()
        .filter_map(|k| k.strip_suffix("-metadata"))
        .collect()
}

/// Why `attr` cannot be written into lines like `first` (an input manifest's first line):
/// it would replace the image's own fields (`source-ref`, `source`, any key the line has) or
/// pose as metadata. `None` when it can be.
pub fn attribute_collision(attr: &str, first: Option<&Map<String, Value>>) -> Option<String> {
    if attr.ends_with("-metadata") {
        return Some(format!(
            "the label attribute name {attr:?} ends in -metadata, which names a label's metadata"
        ));
    }
    let own = ["source-ref", "source"].contains(&attr);
    let in_line =
        first.is_some_and(|l| l.contains_key(attr) || l.contains_key(&format!("{attr}-metadata")));
    (own || in_line).then(|| {
        format!(
            "the label attribute name {attr:?} is a key of the input manifest's lines, so writing it would replace the image's own data; choose a new name"
        )
    })
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

    #[test]
    fn a_byte_order_mark_is_not_part_of_line_zero() {
        let lines =
            parse_manifest("\u{feff}{\"source-ref\": \"s3://b/0.png\"}\n{\"a\": 1}\n".as_bytes())
                .unwrap();
        assert_eq!(lines[0].as_ref().unwrap()["source-ref"], "s3://b/0.png");
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn one_malformed_response_item_costs_only_itself() {
        let text = br#"[{"datasetObjectId": 3, "consolidatedAnnotation": {"content": {"a": 1}}},
                        {"datasetObjectId": "4"},
                        {"datasetObjectId": "5", "consolidatedAnnotation": {"content": {}}}]"#;
        let items = parse_consolidation_response(text).unwrap();
        assert_eq!(items[0].as_ref().unwrap().dataset_object_id, "3");
        assert!(items[1].is_err());
        assert_eq!(items[2].as_ref().unwrap().dataset_object_id, "5");
        assert!(parse_consolidation_response(b"{}").is_err());
    }

    #[test]
    fn machine_labels_and_colliding_attribute_names_are_recognised() {
        let line = manifest_line(r#"{"source-ref": "s3://b/i.png", "j-ref": "s3://b/m.png",
            "j-ref-metadata": {"human-annotated": "no", "type": "groundtruth/semantic-segmentation"}}"#).unwrap();
        let (attr, value, _) = machine_label(&line).unwrap();
        assert_eq!((attr.as_str(), value), ("j-ref", json!("s3://b/m.png")));
        assert_eq!(label_attributes(&line), ["j-ref"]);
        let human = manifest_line(r#"{"j-ref-metadata": {"human-annotated": "yes"}}"#).unwrap();
        assert!(machine_label(&human).is_none());
        for bad in ["source-ref", "source", "j-ref", "x-metadata"] {
            assert!(attribute_collision(bad, Some(&line)).is_some(), "{bad}");
        }
        assert!(attribute_collision("v2-ref", Some(&line)).is_none());
    }
}
