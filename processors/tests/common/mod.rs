//! Shared helpers of the processor tests: traffic, payloads, lake read-back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo};
use pipeline_generator::{PoisonMix, TrafficConfig, generate};
use pipeline_processors::retry::RetryPolicy;
use pipeline_processors::{BatchProcessor, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore};
use pipeline_schemas::DecoderConfig;

/// A folder for one test: removed when the test passes, kept (and named on
/// stderr) when it fails, so that repeated runs leave nothing behind and a
/// failure leaves what it wrote to look at.
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!("test folder kept: {}", self.0.path().display());
        }
    }
}

/// The archiver as the embedded default runs it, over `root/lake` and
/// `root/dlq`, with the generator's 64 KB record limit.
pub fn local_archiver(root: &Path) -> BatchProcessor<LakeArchiver<LocalStore>, LocalDeadLetters> {
    BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), LakeConfig::default()),
        LocalDeadLetters::new(root.join("dlq")),
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
        RetryPolicy::default(),
    )
}

pub fn temp_dir(name: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("pipeline-{name}-"))
            .tempdir()
            .expect("temp dir"),
    )
}

/// One shard's worth of generated records.
pub fn shard_records(events: usize, seed: u64, poison: f64) -> Vec<KinesisRecord> {
    let records = generate(TrafficConfig {
        events,
        seed,
        poison: PoisonMix::uniform(poison),
        max_record_bytes: 64 * 1024,
        ..TrafficConfig::default()
    });
    kinesis::route(&records, 1).remove(0)
}

pub fn payload(records: &[KinesisRecord]) -> Vec<u8> {
    kinesis::invocation_payload(records, &StreamInfo::default())
}

pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Every Parquet file under `root`, read back.
pub fn read_lake(root: &Path) -> BTreeMap<String, Vec<RecordBatch>> {
    let mut out: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                let table = rel.split('/').next().expect("table folder").to_owned();
                let file = std::fs::File::open(&path).expect("open");
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .expect("parquet")
                    .build()
                    .expect("reader");
                for batch in reader {
                    out.entry(table.clone())
                        .or_default()
                        .push(batch.expect("batch"));
                }
            }
        }
    }
    out
}

pub fn s(b: &RecordBatch, col: &str, row: usize) -> Option<String> {
    let a = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    let a = a.as_string::<i32>();
    a.is_valid(row).then(|| a.value(row).to_owned())
}

pub fn i64c(b: &RecordBatch, col: &str, row: usize) -> Option<i64> {
    let a = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    let a = a.as_primitive::<Int64Type>();
    a.is_valid(row).then(|| a.value(row))
}

pub fn i32c(b: &RecordBatch, col: &str, row: usize) -> Option<i32> {
    let a = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    let a = a.as_primitive::<Int32Type>();
    a.is_valid(row).then(|| a.value(row))
}

pub fn ts(b: &RecordBatch, col: &str, row: usize) -> i64 {
    let a = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    a.as_primitive::<TimestampMillisecondType>().value(row)
}
