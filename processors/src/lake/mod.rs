//! The lake sink: valid events -> Arrow -> Parquet objects, one table per
//! domain, Hive-partitioned by event time (`dt=YYYY-MM-DD/hour=HH`, UTC).
//!
//! Object keys are deterministic, derived from the table, partition, shard and
//! the sequence range of the rows in the file, and the bytes are a pure
//! function of those rows: a retried batch rewrites the same objects (S3
//! conditional writes turn the rewrite into a no-op), and a re-batched retry
//! adds files whose duplicate `event_id`s compaction removes.

pub mod columns;
pub mod compact;
pub mod read;

use std::collections::BTreeMap;
use std::time::Instant;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures_util::future::join_all;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use pipeline_schemas::EventData;
use pipeline_schemas::lake::Table;
use pipeline_schemas::rules::civil_from_days;

use crate::batch::{HandlerReport, RecordHandler, ValidRecord};
use crate::retry::RetryPolicy;
use crate::store::{ObjectStore, PutOptions, PutOutcome};

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at the given level (1 is fast and still much smaller than snappy).
    Zstd(i32),
    /// snappy: fastest, larger files.
    Snappy,
}

impl Codec {
    /// Parses `zstd`, `zstd:3`, `snappy`.
    pub fn parse(s: &str) -> Option<Codec> {
        match s.split_once(':') {
            None if s == "zstd" => Some(Codec::Zstd(1)),
            None if s == "snappy" => Some(Codec::Snappy),
            Some(("zstd", level)) => level
                .parse()
                .ok()
                .filter(|l| (1..=22).contains(l))
                .map(Codec::Zstd),
            _ => None,
        }
    }

    fn compression(self) -> Compression {
        match self {
            Codec::Zstd(level) => Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default()),
            Codec::Snappy => Compression::SNAPPY,
        }
    }
}

/// How the lake is written.
#[derive(Debug, Clone)]
pub struct LakeConfig {
    /// Parquet codec.
    pub codec: Codec,
    /// Conditional writes (`If-None-Match: *`): a retry never overwrites.
    pub if_absent: bool,
    /// Retries of transient upload failures.
    pub retry: RetryPolicy,
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            codec: Codec::Zstd(1),
            if_absent: true,
            retry: RetryPolicy::default(),
        }
    }
}

/// An Hive partition: day since the epoch and hour of day, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// Days since 1970-01-01.
    pub day: i64,
    /// 0..=23.
    pub hour: u8,
}

impl Partition {
    /// The partition holding `ms` (epoch milliseconds).
    pub fn of(ms: i64) -> Self {
        Partition {
            day: ms.div_euclid(86_400_000),
            hour: (ms.rem_euclid(86_400_000) / 3_600_000) as u8,
        }
    }

    /// `dt=YYYY-MM-DD/hour=HH`.
    pub fn path(&self) -> String {
        let (y, m, d) = civil_from_days(self.day);
        format!("dt={y:04}-{m:02}-{d:02}/hour={:02}", self.hour)
    }
}

/// One Parquet object to write.
#[derive(Debug, Clone)]
pub struct LakeFile {
    /// Its table.
    pub table: Table,
    /// Object key relative to the lake root.
    pub key: String,
    /// Parquet bytes.
    pub bytes: Bytes,
    /// Rows in the file.
    pub rows: usize,
    /// Positions (in the invocation) of the records whose rows it holds.
    pub positions: Vec<usize>,
}

fn tables_of(data: &EventData<'_>) -> &'static [Table] {
    match data {
        EventData::OrderCreated(_) => &[Table::OrderEvents, Table::OrderItems],
        d if d.event_type().is_order() => &[Table::OrderEvents],
        _ => &[Table::UserEvents],
    }
}

/// Columns whose values are (nearly) unique per row.
const UNIQUE_COLUMNS: &[&str] = &[
    "event_id",
    "correlation_id",
    "sequence_number",
    "order_id",
    "payment_id",
    "arrived_at",
    "occurred_at",
];

/// Encodes `records` into Parquet files, one per (table, partition, shard).
/// Pure and deterministic: the same records always give the same keys and bytes.
pub fn encode(records: &[ValidRecord<'_>], codec: Codec) -> Result<Vec<LakeFile>, String> {
    // group record indices by (table, partition, shard)
    let mut groups: BTreeMap<(Table, Partition, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let partition = Partition::of(r.event.occurred_at_ms);
        for &table in tables_of(&r.event.data) {
            groups
                .entry((table, partition, r.meta.shard_id))
                .or_default()
                .push(i);
        }
    }
    let mut props = WriterProperties::builder()
        .set_compression(codec.compression())
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("kinesis-pipeline ", env!("CARGO_PKG_VERSION")).to_owned());
    // Unique per row: a dictionary only costs a hash per value and then falls
    // back to plain encoding. Low-cardinality columns keep theirs.
    for column in UNIQUE_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    let props = props.build();
    let mut files = Vec::with_capacity(groups.len());
    for ((table, partition, shard), idx) in groups {
        let rows = idx.iter().map(|&i| &records[i]);
        let batch: RecordBatch = match table {
            Table::UserEvents => columns::user_events(rows),
            Table::OrderEvents => columns::order_events(rows),
            Table::OrderItems => columns::order_items(rows),
        }
        .map_err(|e| format!("building {} batch: {e}", table.name()))?;
        let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 3 + 4096);
        let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props.clone()))
            .map_err(|e| format!("parquet writer: {e}"))?;
        writer
            .write(&batch)
            .map_err(|e| format!("parquet write: {e}"))?;
        writer.close().map_err(|e| format!("parquet close: {e}"))?;
        let first = records[idx[0]].meta.sequence_number;
        let last = records[idx[idx.len() - 1]].meta.sequence_number;
        files.push(LakeFile {
            table,
            key: format!(
                "{}/{}/part-{shard}-{first}-{last}.parquet",
                table.name(),
                partition.path()
            ),
            bytes: Bytes::from(buf),
            rows: batch.num_rows(),
            positions: idx.iter().map(|&i| records[i].position).collect(),
        });
    }
    Ok(files)
}

/// The archiver: a [`RecordHandler`] that writes valid events to the lake.
#[derive(Debug, Clone)]
pub struct LakeArchiver<S> {
    store: S,
    config: LakeConfig,
}

impl<S: ObjectStore> LakeArchiver<S> {
    /// An archiver writing to `store`.
    pub fn new(store: S, config: LakeConfig) -> Self {
        LakeArchiver { store, config }
    }

    /// The object store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S: ObjectStore> RecordHandler for LakeArchiver<S> {
    async fn handle(&self, records: &[ValidRecord<'_>], deadline: Instant) -> HandlerReport {
        let mut report = HandlerReport::default();
        if records.is_empty() {
            return report;
        }
        let files = match encode(records, self.config.codec) {
            Ok(f) => f,
            Err(e) => {
                report.errors.push(e);
                report.failed = records.iter().map(|r| r.position).collect();
                return report;
            }
        };
        let options = PutOptions {
            if_absent: self.config.if_absent,
            content_type: "application/vnd.apache.parquet",
        };
        let uploads = files.iter().map(|file| {
            self.config.retry.run(deadline, move || {
                self.store.put(&file.key, file.bytes.clone(), options)
            })
        });
        for (file, outcome) in files.iter().zip(join_all(uploads).await) {
            report.retries += outcome.retries;
            match outcome.result {
                Ok(put) => {
                    *report.rows.entry(file.table.name()).or_insert(0) += file.rows;
                    report.objects += 1;
                    report.bytes += file.bytes.len();
                    if put == PutOutcome::AlreadyExists {
                        report.already_present += 1;
                    }
                }
                Err(e) => {
                    report.errors.push(format!("{}: {e}", file.key));
                    report.failed.extend(&file.positions);
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_day_and_hour() {
        assert_eq!(
            Partition::of(1_795_617_476_123).path(),
            "dt=2026-11-25/hour=14"
        );
        assert_eq!(Partition::of(0).path(), "dt=1970-01-01/hour=00");
        assert_eq!(Partition::of(-1).path(), "dt=1969-12-31/hour=23");
    }

    #[test]
    fn codecs_parse() {
        assert_eq!(Codec::parse("zstd"), Some(Codec::Zstd(1)));
        assert_eq!(Codec::parse("zstd:9"), Some(Codec::Zstd(9)));
        assert_eq!(Codec::parse("snappy"), Some(Codec::Snappy));
        assert_eq!(Codec::parse("zstd:99"), None);
        assert_eq!(Codec::parse("gzip"), None);
    }
}
