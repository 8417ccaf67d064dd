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
//! repeats them). The set of rows seen, a 128-bit key each (20-39 bytes a
//! row in a hash set, up to 58 while it grows), is capped at
//! [`CompactionSizes::max_keys`]: a partition with more rows is compacted in
//! several passes, each over one hash range of the keys.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

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
    /// Passes over the inputs: more than one when the partition's keys
    /// would not fit in [`CompactionSizes::max_keys`].
    pub passes: u64,
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
    /// The most rows whose keys one pass holds. A partition with more is
    /// compacted in several passes, each over one hash range of the keys
    /// (every input read once a pass): memory stays bounded however many
    /// rows an hour brings.
    pub max_keys: usize,
}

impl CompactionSizes {
    /// The default target, MB: Athena reads files of 128 MB and more most
    /// cheaply, and a merged file is held in memory until it is stored.
    pub const DEFAULT_TARGET_MB: u64 = 128;

    /// The default memory for the keys, MB: about 27 million rows a pass.
    pub const DEFAULT_KEYS_MB: u64 = 1024;

    /// The memory the keys may be given, MB: from 16 (tests) to 8,192 (most
    /// of Lambda's 10,240 MB).
    pub const KEYS_MB: std::ops::RangeInclusive<u64> = 16..=8192;

    /// These sizes with the keys of a pass held within `mb` MB.
    pub fn with_keys_mb(self, mb: u64) -> Self {
        CompactionSizes {
            max_keys: Self::keys_within(mb << 20),
            ..self
        }
    }

    /// Files of about `target_bytes`; those of a quarter of it or more are
    /// kept; keys within [`Self::DEFAULT_KEYS_MB`].
    pub fn with_target(target_bytes: u64) -> Self {
        CompactionSizes {
            target_bytes,
            keep_bytes: target_bytes / 4,
            max_keys: Self::keys_within(Self::DEFAULT_KEYS_MB << 20),
        }
    }

    /// The most keys a pass holds within `bytes`. The set has a power of
    /// two of 17-byte slots (a 16-byte key and a control byte) and fills 7/8
    /// of them before it doubles, when the old and the new table are held
    /// side by side; the count stops a sixteenth of the slots short of a
    /// doubling that would pass `bytes` (the rows of a batch are added
    /// before the count is checked).
    pub fn keys_within(bytes: u64) -> usize {
        const SLOT: u64 = 17;
        let mut slots: u64 = 1024;
        while slots * 2 * SLOT + slots * SLOT <= bytes {
            slots *= 2;
        }
        usize::try_from(slots / 16 * 13).unwrap_or(usize::MAX)
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

/// The most passes over one partition: 2^12 of `max_keys` rows each.
const MAX_PASSES: u64 = 4096;

/// Merges the small files among `files` (all in `partition`, as listed) into
/// files of about `sizes.target_bytes`, without the rows of the big ones.
///
/// One pass when the partition's rows fit in `sizes.max_keys`. When a pass
/// finds more, what it has not stored is dropped and the work starts again
/// with twice the passes, each keeping the rows whose key hashes to it; the
/// files already stored then count as kept ones (their rows are not merged
/// again).
pub async fn compact_partition<S: ObjectStore>(
    store: &S,
    partition: &str,
    files: &[Listed],
    sizes: CompactionSizes,
) -> Result<Compacted, StoreError> {
    let (small, kept): (Vec<&Listed>, Vec<&Listed>) =
        files.iter().partition(|f| f.size < sizes.keep_bytes);
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
    // random keys: no producer can put its ids all in one pass
    let ranges = RandomState::new();
    let mut first = FirstSeen::default();
    let mut stored = Vec::new();
    let mut rows_out = 0;
    let mut passes = 1;
    let rows_in = 'attempt: loop {
        if passes > MAX_PASSES {
            return Err(err(format!(
                "{partition}: over {MAX_PASSES} passes of {} rows; raise COMPACT_KEYS_MB",
                sizes.max_keys
            )));
        }
        let mut rows_in = 0;
        let this_attempt = passes;
        for pass in 0..this_attempt {
            let wanted =
                |key: u128| this_attempt == 1 || ranges.hash_one(key) % this_attempt == pass;
            first.clear();
            // the kept files' rows and the stored ones' first, so that no
            // merged row repeats one of them
            let earlier = kept.iter().map(|f| f.key.as_str());
            for key in earlier.chain(stored.iter().map(String::as_str)) {
                let Some(bytes) = store.get(key).await? else {
                    continue;
                };
                let bad = |e: String| err(format!("{key}: {e}"));
                for batch in identity_batches(bytes).map_err(bad)? {
                    let batch = batch.map_err(|e| bad(e.to_string()))?;
                    first.mask_where(&batch, wanted).map_err(bad)?;
                }
                if first.len() > sizes.max_keys {
                    passes = this_attempt * 2;
                    continue 'attempt;
                }
            }
            let mut output: Option<Output> = None;
            for file in &small {
                let Some(bytes) = store.get(&file.key).await? else {
                    continue;
                };
                let bad = |e: String| err(format!("{}: {e}", file.key));
                for batch in parquet_batches(bytes).map_err(bad)? {
                    let batch = batch.map_err(|e| bad(e.to_string()))?;
                    if pass == 0 {
                        rows_in += batch.num_rows();
                    }
                    let mask = first.mask_where(&batch, wanted).map_err(bad)?;
                    if first.len() > sizes.max_keys {
                        // the open output is dropped: its rows come again
                        passes = this_attempt * 2;
                        continue 'attempt;
                    }
                    let batch =
                        arrow_select::filter::filter_record_batch(&batch, &mask).map_err(err)?;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    let out = match &mut output {
                        Some(out) => out,
                        None => output.insert(Output {
                            writer: ArrowWriter::try_new(
                                Vec::new(),
                                batch.schema(),
                                Some(props.clone()),
                            )
                            .map_err(err)?,
                            rows: 0,
                        }),
                    };
                    out.writer.write(&batch).map_err(err)?;
                    out.rows += batch.num_rows();
                    // an estimate: the open pages of each column count
                    // uncompressed, so a small file closes early (at about
                    // 60% of the target in the tests); a big one within a
                    // page a column of it
                    let size = out.writer.bytes_written() + out.writer.in_progress_size();
                    if size as u64 >= sizes.target_bytes
                        && let Some(full) = output.take()
                    {
                        rows_out += full.rows;
                        let n = stored.len();
                        stored.push(store_output(store, partition, &stem, n, full.writer).await?);
                    }
                }
            }
            if let Some(last) = output.take() {
                rows_out += last.rows;
                let n = stored.len();
                stored.push(store_output(store, partition, &stem, n, last.writer).await?);
            }
        }
        break rows_in;
    };
    for file in small.iter().filter(|f| !stored.contains(&f.key)) {
        store.delete(&file.key).await?;
    }
    Ok(Compacted {
        partition: partition.to_owned(),
        files_in: small.len(),
        files_kept: kept.len(),
        rows_in,
        rows_out,
        passes,
        keys: stored,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_holds_as_many_keys_as_its_memory_allows_while_the_set_grows() {
        for mb in [16, 1024, 2048, 8192] {
            let bytes = mb << 20;
            let keys = CompactionSizes::keys_within(bytes) as u64;
            // the slots that hold `keys` at 7/8 full, and the half as many
            // before them, held together while the set doubles
            let slots = (keys * 16 / 13).next_power_of_two();
            assert!(slots * 17 + slots / 2 * 17 <= bytes, "{mb} MB: {keys} keys");
            // and the next doubling would not have fitted
            assert!(slots * 2 * 17 + slots * 17 > bytes, "{mb} MB: {keys} keys");
        }
        assert_eq!(CompactionSizes::keys_within(1024 << 20), 27_262_976);
        assert_eq!(CompactionSizes::keys_within(2048 << 20), 54_525_952);
    }
}
