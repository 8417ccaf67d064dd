//! Compaction: merges a partition's small files (one per invocation) into
//! files of the size Athena likes, dropping duplicate `event_id`s that
//! retries wrote.
//!
//! Readers never see a partition half-compacted: the merged files are
//! written first (conditionally, under names derived from the partition's
//! listing), then the inputs are deleted. At every moment every event is in
//! at least one file, and every query de-duplicates by `event_id`, so results
//! are the same before, during and after. A crash in between leaves
//! duplicates that the next run removes; files the archiver writes meanwhile
//! are not touched.
//!
//! Memory stays bounded whatever the partition holds: inputs are read one at
//! a time and a batch at a time, each merged file is closed and stored once
//! it reaches [`CompactionSizes::target_bytes`], and files already that big
//! are never rewritten (only their ids are read, so that nothing merged
//! repeats them). What grows with the partition is the set of rows seen,
//! a 128-bit key each: 20-39 bytes a row in a hash set, up to 58 while it
//! grows (838 MB peak for the 18 million rows of an hour at 5,000 events a
//! second in one table).

use std::collections::BTreeMap;

use bytes::Bytes;
use md5::{Digest, Md5};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use pipeline_schemas::lake::Table;

use crate::lake::Partition;
use crate::lake::read::{FirstSeen, identity_batches, parquet_batches};
use crate::store::{Listed, ObjectStore, PutOptions, StoreError};

/// What compaction did to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// `table/dt=.../hour=...`.
    pub partition: String,
    /// Files merged (and then deleted).
    pub files_in: usize,
    /// Files left as they were: big enough already.
    pub files_kept: usize,
    /// Rows read from the merged files (duplicates included).
    pub rows_in: usize,
    /// Rows written (unique, and in no kept file).
    pub rows_out: usize,
    /// The files written, in order.
    pub keys: Vec<String>,
}

/// The sizes that decide what compaction merges and how big its files grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionSizes {
    /// A merged file is closed, and the next begun, once its encoded size
    /// reaches this. Athena reads files of 128 MB and more most cheaply.
    pub target_bytes: u64,
    /// Files at least this big are left alone: rewriting them would only
    /// copy them. A partition is merged when it has two files or more below
    /// this size. Well below the target, so that a merged file, which closes
    /// on an estimate of its size, is never merged again.
    pub keep_bytes: u64,
}

impl CompactionSizes {
    /// The default target, MB: Athena reads files of 128 MB and more most
    /// cheaply, and a merged file is held in memory until it is stored.
    pub const DEFAULT_TARGET_MB: u64 = 128;

    /// Files of about `target_bytes`; those of a quarter of it or more are
    /// kept.
    pub fn with_target(target_bytes: u64) -> Self {
        CompactionSizes {
            target_bytes,
            keep_bytes: target_bytes / 4,
        }
    }
}

impl Default for CompactionSizes {
    fn default() -> Self {
        CompactionSizes::with_target(CompactionSizes::DEFAULT_TARGET_MB << 20)
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(e.to_string())
}

/// Compacts every partition of `table` that has small files to merge.
pub async fn compact_table<S: ObjectStore>(
    store: &S,
    table: Table,
    sizes: CompactionSizes,
) -> Result<Vec<Compacted>, StoreError> {
    compact_under(store, &format!("{}/", table.name()), sizes).await
}

/// Compacts the partitions of `table` for the hours from `from_ms` to
/// `to_ms` (inclusive): what a scheduled compactor does, listing only those
/// partitions instead of the whole table.
pub async fn compact_hours<S: ObjectStore>(
    store: &S,
    table: Table,
    from_ms: i64,
    to_ms: i64,
    sizes: CompactionSizes,
) -> Result<Vec<Compacted>, StoreError> {
    let mut out = Vec::new();
    let mut hour = from_ms.div_euclid(3_600_000);
    while hour <= to_ms.div_euclid(3_600_000) {
        let partition = Partition::of(hour * 3_600_000).path();
        out.extend(compact_under(store, &format!("{}/{partition}/", table.name()), sizes).await?);
        hour += 1;
    }
    Ok(out)
}

async fn compact_under<S: ObjectStore>(
    store: &S,
    prefix: &str,
    sizes: CompactionSizes,
) -> Result<Vec<Compacted>, StoreError> {
    let mut partitions: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    for listed in store.list_sized(prefix).await? {
        if let Some((dir, file)) = listed.key.rsplit_once('/')
            && file.ends_with(".parquet")
        {
            partitions.entry(dir.to_owned()).or_default().push(listed);
        }
    }
    let mut out = Vec::new();
    for (partition, files) in partitions {
        let small = files.iter().filter(|f| f.size < sizes.keep_bytes).count();
        if small > 1 {
            out.push(compact_partition(store, &partition, &files, sizes).await?);
        }
    }
    Ok(out)
}

/// The merged file being written.
struct Output {
    writer: ArrowWriter<Vec<u8>>,
    rows: usize,
}

/// Merges the small files among `files` (all in `partition`, as listed) into
/// files of about `sizes.target_bytes`, without the rows of the big ones.
pub async fn compact_partition<S: ObjectStore>(
    store: &S,
    partition: &str,
    files: &[Listed],
    sizes: CompactionSizes,
) -> Result<Compacted, StoreError> {
    let (small, kept): (Vec<&Listed>, Vec<&Listed>) =
        files.iter().partition(|f| f.size < sizes.keep_bytes);
    let mut first = FirstSeen::default();
    // the kept files' rows first, so that no merged row repeats one of them
    for file in &kept {
        let Some(bytes) = store.get(&file.key).await? else {
            continue;
        };
        let bad = |e: String| err(format!("{}: {e}", file.key));
        for batch in identity_batches(bytes).map_err(bad)? {
            first
                .mask(&batch.map_err(|e| bad(e.to_string()))?)
                .map_err(bad)?;
        }
    }
    // names from the whole listing: a rerun after a crash lists the files
    // the crashed run wrote too, so it never reuses one of their names
    let listing: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
    let digest = Md5::digest(listing.join("\n").as_bytes());
    let stem: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1_000_000))
        .build();
    let (mut rows_in, mut rows_out) = (0, 0);
    let mut keys = Vec::new();
    let mut output: Option<Output> = None;
    for file in &small {
        let Some(bytes) = store.get(&file.key).await? else {
            continue;
        };
        let bad = |e: String| err(format!("{}: {e}", file.key));
        for batch in parquet_batches(bytes).map_err(bad)? {
            let batch = batch.map_err(|e| bad(e.to_string()))?;
            rows_in += batch.num_rows();
            let mask = first.mask(&batch).map_err(bad)?;
            let batch = arrow_select::filter::filter_record_batch(&batch, &mask).map_err(err)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let out = match &mut output {
                Some(out) => out,
                None => output.insert(Output {
                    writer: ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.clone()))
                        .map_err(err)?,
                    rows: 0,
                }),
            };
            out.writer.write(&batch).map_err(err)?;
            out.rows += batch.num_rows();
            // an estimate: the open pages of each column count uncompressed,
            // so a small file closes early (at about 60% of the target in the
            // tests); a big one within a page a column of it
            let size = out.writer.bytes_written() + out.writer.in_progress_size();
            if size as u64 >= sizes.target_bytes
                && let Some(full) = output.take()
            {
                rows_out += full.rows;
                keys.push(store_output(store, partition, &stem, keys.len(), full.writer).await?);
            }
        }
    }
    if let Some(last) = output.take() {
        rows_out += last.rows;
        keys.push(store_output(store, partition, &stem, keys.len(), last.writer).await?);
    }
    for file in small.iter().filter(|f| !keys.contains(&f.key)) {
        store.delete(&file.key).await?;
    }
    Ok(Compacted {
        partition: partition.to_owned(),
        files_in: small.len(),
        files_kept: kept.len(),
        rows_in,
        rows_out,
        keys,
    })
}

/// Closes a merged file and stores it, conditionally: a file of that name is
/// one a run over the same listing wrote, with the same rows.
async fn store_output<S: ObjectStore>(
    store: &S,
    partition: &str,
    stem: &str,
    n: usize,
    writer: ArrowWriter<Vec<u8>>,
) -> Result<String, StoreError> {
    let buf = writer.into_inner().map_err(err)?;
    let key = format!("{partition}/compacted-{stem}-{n:03}.parquet");
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
    Ok(key)
}
