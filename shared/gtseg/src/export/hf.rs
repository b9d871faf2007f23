//! `hf`: Parquet shards `data/<split>-NNNNN-of-NNNNN.parquet` with two columns, `image` and
//! `label`, each a Hugging Face `Image` struct (`bytes`, `path`): the source image byte for
//! byte, and an 8-bit greyscale PNG (mode `L`) whose pixel is the class id, 255 ignore. The
//! files' metadata declares both features (so `datasets` decodes them as images), as do the
//! folder's `README.md` (`dataset_info`) and `id2label.json`. A shard holds at most
//! [`MAX_SHARD_BYTES`]; rows go out in row groups of a few, so memory stays small.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::json;

use super::labels::LabelTable;
use super::{Exported, Writer, create_file};
use crate::mask::encode_grey_png;

/// The largest shard, in bytes of rows.
pub const MAX_SHARD_BYTES: u64 = 500_000_000;
/// Rows held before they go out as a row group: at most this many bytes, or
/// [`ROW_GROUP_ROWS`] rows (what `datasets` itself writes for images), whichever comes first.
const ROW_GROUP_BYTES: u64 = 8 << 20;
const ROW_GROUP_ROWS: usize = 100;

/// Both columns are `struct<bytes: binary, path: string>`, as `datasets` writes an `Image`.
const SCHEMA: &str = "
message schema {
  optional group image {
    optional binary bytes;
    optional binary path (STRING);
  }
  optional group label {
    optional binary bytes;
    optional binary path (STRING);
  }
}";

/// One row: the image's and the label's bytes and paths.
struct Row([ByteArray; 4]);

/// A split's shard being written.
struct Shard {
    writer: SerializedFileWriter<std::fs::File>,
    /// Rows waiting for their row group.
    rows: Vec<Row>,
    pending: u64,
    written: u64,
}

/// A split's shards: the one open, how many so far, and the rows and bytes in them.
#[derive(Default)]
struct SplitShards {
    open: Option<Shard>,
    count: usize,
    rows: u64,
    bytes: u64,
}

/// The `hf` writer.
pub(super) struct Hf {
    out: PathBuf,
    props: Arc<WriterProperties>,
    schema: Arc<parquet::schema::types::Type>,
    splits: BTreeMap<String, SplitShards>,
    table_json: String,
}

impl Hf {
    pub(super) fn new(out: &Path, table: &LabelTable) -> std::io::Result<Self> {
        std::fs::create_dir_all(out.join("data"))?;
        let features = json!({"info": {"features": {"image": {"_type": "Image"}, "label": {"_type": "Image"}}}});
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            // A page is closed after every value that fills it, not after a batch of 1,024:
            // images are large values, and a batch of them would sit in memory twice.
            .set_write_batch_size(1)
            .set_created_by(format!("gtseg {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "huggingface".to_owned(),
                features.to_string(),
            )]))
            .build();
        let schema = parse_message_type(SCHEMA).map_err(std::io::Error::other)?;
        let id2label: BTreeMap<String, &str> = table
            .classes()
            .iter()
            .map(|c| (c.id.to_string(), c.name.as_str()))
            .collect();
        let table_json = serde_json::to_string_pretty(&id2label)?;
        Ok(Self {
            out: out.to_path_buf(),
            props: Arc::new(props),
            schema: Arc::new(schema),
            splits: BTreeMap::new(),
            table_json,
        })
    }
}

/// Where shard `n` of a split is written before the split's count of shards is known.
fn part_path(out: &Path, split: &str, n: usize) -> PathBuf {
    out.join(format!("data/.{split}-{n:05}.parquet.part"))
}

impl Shard {
    /// Writes the waiting rows as one row group.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let levels = vec![2i16; rows.len()];
        let mut group = self
            .writer
            .next_row_group()
            .map_err(std::io::Error::other)?;
        let mut leaf = 0;
        while let Some(mut column) = group.next_column().map_err(std::io::Error::other)? {
            let values: Vec<ByteArray> = rows.iter().map(|r| r.0[leaf].clone()).collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&values, Some(&levels), None)
                .map_err(std::io::Error::other)?;
            column.close().map_err(std::io::Error::other)?;
            leaf += 1;
        }
        group.close().map_err(std::io::Error::other)?;
        self.written += self.pending;
        self.pending = 0;
        Ok(())
    }

    fn close(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.writer.close().map_err(std::io::Error::other)?;
        Ok(())
    }
}

impl Writer for Hf {
    fn add(&mut self, image: &Exported<'_>) -> std::io::Result<()> {
        let r = image.ready;
        let label = encode_grey_png(r.width, r.height, &r.ids).map_err(std::io::Error::other)?;
        let size = (r.source.len() + label.len()) as u64;
        let row = Row([
            ByteArray::from(r.source.clone()),
            ByteArray::from(format!("{}.{}", image.id, r.ext).into_bytes()),
            ByteArray::from(label),
            ByteArray::from(format!("{}.png", image.id).into_bytes()),
        ]);
        if !self.splits.contains_key(image.split) {
            self.splits
                .insert(image.split.to_owned(), SplitShards::default());
        }
        let split = self.splits.get_mut(image.split).expect("inserted above");
        // A shard holds at least one row, however large.
        if split.open.as_ref().is_some_and(|s| {
            s.written + s.pending > 0 && s.written + s.pending + size > MAX_SHARD_BYTES
        }) && let Some(full) = split.open.take()
        {
            full.close()?;
        }
        let shard = match &mut split.open {
            Some(shard) => shard,
            None => {
                let file = create_file(&part_path(&self.out, image.split, split.count))?;
                let writer = SerializedFileWriter::new(
                    file,
                    Arc::clone(&self.schema),
                    Arc::clone(&self.props),
                )
                .map_err(std::io::Error::other)?;
                split.count += 1;
                split.open.insert(Shard {
                    writer,
                    rows: Vec::new(),
                    pending: 0,
                    written: 0,
                })
            }
        };
        shard.rows.push(row);
        shard.pending += size;
        if shard.pending >= ROW_GROUP_BYTES || shard.rows.len() >= ROW_GROUP_ROWS {
            shard.flush()?;
        }
        split.rows += 1;
        split.bytes += size;
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let Self {
            out,
            splits,
            table_json,
            ..
        } = *self;
        let (mut splits_yaml, mut files_yaml) = (String::new(), String::new());
        for (name, split) in splits {
            if let Some(s) = split.open {
                s.close()?;
            }
            let (rows, bytes, count) = (split.rows, split.bytes, split.count);
            splits_yaml.push_str(&format!(
                "  - name: {name}\n    num_bytes: {bytes}\n    num_examples: {rows}\n"
            ));
            // Each file by name: a pattern such as `train-*` would also match a split named
            // `train-extra`.
            files_yaml.push_str(&format!("  - split: {name}\n    path:\n"));
            // Now that the split's count of shards is known, they get their names.
            for n in 0..count {
                let file = format!("data/{name}-{n:05}-of-{count:05}.parquet");
                std::fs::rename(part_path(&out, &name, n), out.join(&file))?;
                files_yaml.push_str(&format!("    - {file}\n"));
            }
        }
        create_file(&out.join("id2label.json"))?.write_all(table_json.as_bytes())?;
        let readme = format!(
            "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n  - name: label\n    dtype: image\n  splits:\n{splits_yaml}configs:\n- config_name: default\n  data_files:\n{files_yaml}---\n\n# Semantic segmentation labels\n\nExported by `gtseg export --format hf` from Ground Truth labeling jobs. `image` is the\nsource image; `label` is an 8-bit greyscale PNG whose pixel is the class id (255: ignore).\n`id2label.json` and `labels.json` name the classes.\n"
        );
        create_file(&out.join("README.md"))?.write_all(readme.as_bytes())?;
        Ok(())
    }
}
