//! The payload: a JSON array read as it arrives, one item at a time, so that a batch never
//! holds more than the items in flight, and an item that cannot be read costs only itself.

use std::collections::HashSet;

use tokio::io::AsyncReadExt as _;
use tracing::error;

use super::BatchError;
use super::names::object_file_name;
use crate::event::{PayloadItem, ShapeError, from_slice};
use crate::store::{ObjectReader, ObjectStore, StoreError, StoreErrorKind};
use crate::uri::S3Uri;

/// Bytes read from the store at once.
const CHUNK: usize = 64 << 10;

/// The items of a payload as they are read: each item's JSON text, split from the array
/// without parsing it. serde_json cannot hand out a top-level array's elements one at a time
/// from a reader and go on after a bad one, so this finds their boundaries (strings and
/// nesting) and serde_json parses each item on its own.
pub(crate) struct PayloadItems {
    uri: S3Uri,
    reader: ObjectReader,
    buf: Vec<u8>,
    /// Where the scan of `buf` goes on.
    at: usize,
    state: Split,
    eof: bool,
    /// The next item's index in the array.
    index: usize,
}

/// Where the splitter is in the payload's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Before the array's `[`.
    Start,
    /// Between items.
    Between,
    /// Inside an item that began at `start` of the buffer.
    Item {
        start: usize,
        depth: u32,
        in_string: bool,
        escaped: bool,
    },
    /// After the array's `]`.
    End,
}

impl std::fmt::Debug for PayloadItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadItems")
            .field("uri", &self.uri)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PayloadItems {
    /// Opens the payload at `uri` (at most `max_bytes`).
    pub(crate) async fn open<S: ObjectStore>(
        store: &S,
        uri: &S3Uri,
        max_bytes: u64,
    ) -> Result<Self, BatchError> {
        let reader = store
            .get_stream(uri, max_bytes)
            .await
            .map_err(|e| BatchError::PayloadRead(Box::new(e)))?;
        Ok(Self {
            uri: uri.clone(),
            reader,
            buf: Vec::with_capacity(CHUNK),
            at: 0,
            state: Split::Start,
            eof: false,
            index: 0,
        })
    }

    /// The next item's index and JSON text; `None` after the array's last item.
    pub(crate) async fn next(&mut self) -> Result<Option<(usize, Vec<u8>)>, BatchError> {
        loop {
            if let Some(item) = self.scan()? {
                let i = self.index;
                self.index += 1;
                return Ok(Some((i, item)));
            }
            if self.state == Split::End {
                return Ok(None);
            }
            if self.eof {
                return Err(self
                    .shape("the payload ends inside its JSON array (truncated, or not an array)"));
            }
            self.fill().await?;
        }
    }

    /// Reads more of the payload, dropping the bytes already handed out.
    async fn fill(&mut self) -> Result<(), BatchError> {
        let keep = match self.state {
            Split::Item { start, .. } => start,
            _ => self.at,
        };
        self.buf.drain(..keep);
        self.at -= keep;
        if let Split::Item { start, .. } = &mut self.state {
            *start -= keep;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = self.reader.read(&mut self.buf[old..]).await.map_err(|e| {
            BatchError::PayloadRead(Box::new(StoreError::new(
                &self.uri,
                "GetObject",
                StoreErrorKind::Unavailable(format!("reading the payload failed: {e}")),
            )))
        })?;
        self.buf.truncate(old + n);
        self.eof = n == 0;
        Ok(())
    }

    /// Scans the buffered bytes; an item when one is complete.
    fn scan(&mut self) -> Result<Option<Vec<u8>>, BatchError> {
        while self.at < self.buf.len() {
            let b = self.buf[self.at];
            self.at += 1;
            match &mut self.state {
                Split::Start => match b {
                    b'[' => self.state = Split::Between,
                    _ if b.is_ascii_whitespace() => {}
                    // A UTF-8 byte order mark before the array is tolerated.
                    0xEF | 0xBB | 0xBF if self.at <= 3 => {}
                    _ => return Err(self.shape("the payload is not a JSON array")),
                },
                Split::Between => match b {
                    b']' => self.state = Split::End,
                    b',' => {}
                    _ if b.is_ascii_whitespace() => {}
                    _ => {
                        self.state = Split::Item {
                            start: self.at - 1,
                            depth: u32::from(matches!(b, b'{' | b'[')),
                            in_string: b == b'"',
                            escaped: false,
                        };
                        // A scalar item ends at the next `,` or `]`, seen below.
                    }
                },
                Split::Item {
                    start,
                    depth,
                    in_string,
                    escaped,
                } => {
                    let start = *start;
                    if *in_string {
                        if !*escaped && b != b'"' && b != b'\\' {
                            // Strings are most of a payload (base64 PNGs): jump to the next
                            // quote or backslash rather than look at every byte.
                            let rest = &self.buf[self.at..];
                            self.at += memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                            continue;
                        }
                        if *escaped {
                            *escaped = false;
                        } else if b == b'\\' {
                            *escaped = true;
                        } else if b == b'"' {
                            *in_string = false;
                            if *depth == 0 {
                                // A bare string item ends with its quote.
                                return Ok(Some(self.take(start, self.at)));
                            }
                        }
                        continue;
                    }
                    match b {
                        b'"' => *in_string = true,
                        b'{' | b'[' => *depth += 1,
                        b'}' | b']' if *depth > 0 => {
                            *depth -= 1;
                            if *depth == 0 {
                                return Ok(Some(self.take(start, self.at)));
                            }
                        }
                        // The end of a scalar item (a number, `true`, `null`, ...).
                        b',' | b']' if *depth == 0 => {
                            let item = self.take(start, self.at - 1);
                            if b == b']' {
                                self.state = Split::End;
                            }
                            return Ok(Some(item));
                        }
                        _ => {}
                    }
                }
                Split::End => {
                    self.at = self.buf.len();
                }
            }
        }
        Ok(None)
    }

    /// The item at `start..end` of the buffer; the splitter goes on between items.
    fn take(&mut self, start: usize, end: usize) -> Vec<u8> {
        if !matches!(self.state, Split::End) {
            self.state = Split::Between;
        }
        self.buf[start..end].to_vec()
    }

    fn shape(&self, what: &str) -> BatchError {
        BatchError::PayloadNotArray {
            uri: self.uri.to_string(),
            what: what.to_owned(),
        }
    }
}

/// A payload item that can be answered, with its mask's file name.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) index: usize,
    pub(crate) item: PayloadItem,
    pub(crate) file: String,
}

/// The payload's items that can be answered, in order: an item that cannot be read, a
/// repeated id and an id no key can be made from are logged and left out.
#[derive(Debug)]
pub(crate) struct Items {
    payload: PayloadItems,
    seen: HashSet<String>,
}

impl Items {
    pub(crate) async fn open<S: ObjectStore>(
        store: &S,
        uri: &S3Uri,
        max_bytes: u64,
    ) -> Result<Self, BatchError> {
        Ok(Self {
            payload: PayloadItems::open(store, uri, max_bytes).await?,
            seen: HashSet::new(),
        })
    }

    /// The next item to answer; `None` after the last.
    pub(crate) async fn next(&mut self) -> Result<Option<Item>, BatchError> {
        while let Some((i, text)) = self.payload.next().await? {
            let item: PayloadItem = match from_slice("a payload item", &text) {
                Ok(it) => it,
                Err(e) => {
                    log_unreadable(i, &e);
                    continue;
                }
            };
            drop(text);
            let id = crate::logs::Escaped(&item.dataset_object_id);
            if !self.seen.insert(item.dataset_object_id.clone()) {
                // Both would write the same key; keeping the first keeps retries deterministic.
                error!(dataset_object_id = %id, payload_index = i,
                       "duplicate datasetObjectId in the payload: only its first occurrence is consolidated");
                continue;
            }
            let Ok(file) = object_file_name(&item.dataset_object_id) else {
                error!(dataset_object_id = %id, payload_index = i,
                       "image skipped: its datasetObjectId is empty");
                continue;
            };
            return Ok(Some(Item {
                index: i,
                item,
                file,
            }));
        }
        Ok(None)
    }
}

fn log_unreadable(index: usize, e: &ShapeError) {
    error!(payload_index = index, error = %e, "payload item skipped: it cannot be read, so it cannot be answered");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    async fn split(text: &[u8]) -> Result<Vec<String>, BatchError> {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let uri = S3Uri::parse("s3://b/p.json").unwrap();
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/p.json"), text).unwrap();
        let mut items = PayloadItems::open(&store, &uri, 1 << 30).await?;
        let mut out = Vec::new();
        while let Some((i, item)) = items.next().await? {
            assert_eq!(i, out.len());
            out.push(String::from_utf8(item).unwrap());
        }
        Ok(out)
    }

    #[tokio::test]
    async fn items_are_split_at_the_top_level_whatever_they_hold() {
        let text = br#" [ {"a": "x,]}\"{", "b": [1, {"c": 2}]}, 7 ,"s]," , null,[1,[2]] ] "#;
        assert_eq!(
            split(text).await.unwrap(),
            [
                r#"{"a": "x,]}\"{", "b": [1, {"c": 2}]}"#,
                "7 ",
                r#""s],""#,
                "null",
                "[1,[2]]"
            ]
        );
        assert!(split(b"[]").await.unwrap().is_empty());
        assert!(split(b"\xEF\xBB\xBF[{}]").await.unwrap().len() == 1);
    }

    #[tokio::test]
    async fn items_longer_than_a_read_are_reassembled() {
        let big = "x".repeat(3 * CHUNK + 17);
        let text = format!(r#"[{{"k": "{big}"}}, {{"k": 2}}]"#);
        let items = split(text.as_bytes()).await.unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].len(), big.len() + 9);
    }

    #[tokio::test]
    async fn what_is_not_an_array_is_refused() {
        for bad in [&b"{\"a\": 1}"[..], b"", b"[{\"a\": 1}", b"[1, 2"] {
            let e = split(bad).await.unwrap_err();
            assert!(
                matches!(e, BatchError::PayloadNotArray { .. }),
                "{e} for {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        /// The splitter finds exactly the elements serde_json sees in any array of values.
        #[test]
        fn the_split_agrees_with_serde_json(values in proptest::collection::vec(value(), 0..8)) {
            let text = serde_json::to_vec(&values).unwrap();
            let items = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
                .block_on(split(&text)).unwrap();
            let parsed: Vec<serde_json::Value> = items
                .iter()
                .map(|i| serde_json::from_str(i).unwrap())
                .collect();
            proptest::prop_assert_eq!(parsed, values);
        }
    }

    fn value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[ -~\\\\\"\n]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z\",\\]]{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
