//! Compaction: merges a partition's small files (one per invocation) into one
//! file of the size Athena likes, dropping duplicate `event_id`s that retries
//! wrote.
//!
//! Readers never see a partition half-compacted: the compacted file is
//! written first (conditionally, under a name derived from its inputs), then
//! the inputs are deleted. At every moment every event is in at least one
//! file, and every query de-duplicates by `event_id`, so results are the same
//! before, during and after. A crash in between leaves duplicates that the
//! next run removes; files the archiver writes meanwhile are not touched.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use bytes::Bytes;
use md5::{Digest, Md5};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use pipeline_schemas::lake::Table;

use crate::lake::Partition;
use crate::lake::read::{FirstSeen, read_parquet};
use crate::store::{ObjectStore, PutOptions, StoreError};

/// What compaction did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// `table/dt=.../hour=...`.
    pub partition: String,
    /// Files before.
    pub files_in: usize,
    /// Rows before (duplicates included).
    pub rows_in: usize,
    /// Rows after (unique).
    pub rows_out: usize,
    /// The new file.
    pub key: String,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(e.to_string())
}

/// Compacts every partition of `table` that has more than one file.
pub async fn compact_table<S: ObjectStore>(
    store: &S,
    table: Table,
) -> Result<Vec<Compacted>, StoreError> {
    compact_under(store, &format!("{}/", table.name())).await
}

/// Compacts the partitions of `table` for the hours from `from_ms` to
/// `to_ms` (inclusive): what a scheduled compactor does, listing only those
/// partitions instead of the whole table.
pub async fn compact_hours<S: ObjectStore>(
    store: &S,
    table: Table,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Compacted>, StoreError> {
    let mut out = Vec::new();
    let mut hour = from_ms.div_euclid(3_600_000);
    while hour <= to_ms.div_euclid(3_600_000) {
        let partition = Partition::of(hour * 3_600_000).path();
        out.extend(compact_under(store, &format!("{}/{partition}/", table.name())).await?);
        hour += 1;
    }
    Ok(out)
}

async fn compact_under<S: ObjectStore>(
    store: &S,
    prefix: &str,
) -> Result<Vec<Compacted>, StoreError> {
    let mut partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in store.list(prefix).await? {
        if let Some((dir, file)) = key.rsplit_once('/')
            && file.ends_with(".parquet")
        {
            partitions.entry(dir.to_owned()).or_default().push(key);
        }
    }
    let mut out = Vec::new();
    for (partition, keys) in partitions {
        if keys.len() > 1 {
            out.push(compact_partition(store, &partition, &keys).await?);
        }
    }
    Ok(out)
}

/// Merges `keys` (all in `partition`) into one de-duplicated file.
pub async fn compact_partition<S: ObjectStore>(
    store: &S,
    partition: &str,
    keys: &[String],
) -> Result<Compacted, StoreError> {
    let mut first = FirstSeen::default();
    let mut kept: Vec<RecordBatch> = Vec::new();
    let mut rows_in = 0;
    for key in keys {
        let Some(bytes) = store.get(key).await? else {
            continue;
        };
        for batch in read_parquet(bytes).map_err(err)? {
            rows_in += batch.num_rows();
            let mask = first.mask(&batch).map_err(|e| err(format!("{key}: {e}")))?;
            kept.push(arrow_select::filter::filter_record_batch(&batch, &mask).map_err(err)?);
        }
    }
    let schema = kept
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| err(format!("{partition}: nothing to compact")))?;
    let merged = arrow_select::concat::concat_batches(&schema, &kept).map_err(err)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1_000_000))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(props)).map_err(err)?;
    writer.write(&merged).map_err(err)?;
    writer.close().map_err(err)?;
    let digest = Md5::digest(keys.join("\n").as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let key = format!("{partition}/compacted-{name}.parquet");
    store
        .put(
            &key,
            Bytes::from(buf),
            PutOptions {
                if_absent: true,
                content_type: "application/vnd.apache.parquet",
            },
        )
        .await?;
    for k in keys.iter().filter(|k| **k != key) {
        store.delete(k).await?;
    }
    Ok(Compacted {
        partition: partition.to_owned(),
        files_in: keys.len(),
        rows_in,
        rows_out: merged.num_rows(),
        key,
    })
}
