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
mod direct;
pub mod read;
mod zstd_chunks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::join_all;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use pipeline_schemas::EventData;
use pipeline_schemas::lake::Table;
use pipeline_schemas::parallel::Workers;
use pipeline_schemas::rules::format_day;

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
    /// Threads that encode an invocation's files, column by column. A
    /// 1,769 MB Lambda has one vCPU, a 3,538 MB one two: `0` uses what the
    /// machine has (and more than it has are not used).
    pub encode_threads: usize,
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            codec: Codec::Zstd(1),
            if_absent: true,
            retry: RetryPolicy::default(),
            encode_threads: 0,
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
        format!("dt={}/hour={:02}", format_day(self.day), self.hour)
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

/// Columns whose values are (nearly) unique per row, besides
/// [`RANDOM_ID_COLUMNS`]: no dictionary for either.
const UNIQUE_COLUMNS: &[&str] = &["sequence_number", "arrived_at", "occurred_at"];

/// Random identifiers (UUIDs), unique per row (no dictionary): stored with
/// `DELTA_LENGTH_BYTE_ARRAY`, their lengths bit-packed apart and their bytes
/// back to back, instead of `PLAIN`, which puts a 4-byte length before each
/// value. zstd found a short match at nearly every length prefix and spent
/// twice the time on these columns for a worse result: files are 3.4% smaller
/// (71.6 -> 69.2 bytes an event) and the archiver 5-8% faster. Every reader
/// the lake is for decodes it (Athena's Trino engine, DuckDB, pyarrow, Spark
/// from 3.3, `parquet`); CI reads the archiver's own files with DuckDB.
/// Sequence numbers are [`SEQUENCE_COLUMN`]'s.
const RANDOM_ID_COLUMNS: &[&str] = &["event_id", "correlation_id", "order_id", "payment_id"];

/// Kinesis sequence numbers (56 digits) are stored `DELTA_BYTE_ARRAY`: each
/// as the length of the prefix it shares with the one before (40-odd digits
/// in a shard's run) and the few digits after it. In `PLAIN` they were a
/// third of what zstd was given (60 bytes a row) for a twentieth of its
/// output; now zstd gets a few bytes a row. Athena's Trino reader, DuckDB,
/// pyarrow and `parquet` decode it; CI reads the archiver's files with DuckDB.
const SEQUENCE_COLUMN: &str = "sequence_number";

/// Columns whose values come from a small set (enums, codes, small counts):
/// dictionary-encoded, their pages hold a few bits per row and a dictionary
/// of a few short values, which zstd shrank by 0-38% or made bigger (a
/// 10,000-event invocation: 0.04 to 3.5 KB a column, ratios 0.62 to 1.46). They
/// are stored uncompressed: every compressed column chunk costs a
/// compression call per page (and, before [`zstd_chunks`] kept one
/// compressor per thread, a compressor and a decompressor of its own).
const SMALL_DOMAIN_COLUMNS: &[&str] = &[
    "event_type",
    "schema_version",
    "source",
    "shard_id",
    "country",
    "channel",
    "login_method",
    "marketing_opt_in",
    "currency",
    "payment_method",
    "failure_reason",
    "cancel_reason",
    "carrier",
    "warehouse",
    "item_count",
    "shipped_items",
    "quantity",
];

/// Encodes `records` into Parquet files, one per (table, partition, shard).
/// Pure and deterministic: the same records always give the same keys and bytes.
pub fn encode(records: &[ValidRecord<'_>], codec: Codec) -> Result<Vec<LakeFile>, String> {
    encode_with(records, codec, 1)
}

/// [`encode`] with every column built as an Arrow array and written by
/// `parquet`'s column writers, as an ordinary handler would: the same bytes,
/// for baselines and comparisons.
pub fn encode_through_arrow(
    records: &[ValidRecord<'_>],
    codec: Codec,
) -> Result<Vec<LakeFile>, String> {
    let mut encoder = Encoder::new(codec);
    encoder.direct = false;
    encode_using(records, &encoder, 1)
}

/// [`encode`] on up to `threads` threads (`0`: every core). The unit of work
/// is one column of one file, not a file: an invocation holds a few files of
/// very different sizes (order events dominate), so files alone balance
/// badly over two cores. The files come out in the same order and with the same bytes
/// whatever the count (and the same bytes as `ArrowWriter`, tested).
pub fn encode_with(
    records: &[ValidRecord<'_>],
    codec: Codec,
    threads: usize,
) -> Result<Vec<LakeFile>, String> {
    encode_using(records, &Encoder::new(codec), threads)
}

fn encode_using(
    records: &[ValidRecord<'_>],
    encoder: &Encoder,
    threads: usize,
) -> Result<Vec<LakeFile>, String> {
    let groups = group_rows(records);
    let workers = Workers::new(threads);
    let _warm = workers.warm();
    let files: Vec<FileInProgress> = groups.iter().map(|_| FileInProgress::default()).collect();
    // Each file: build its batch and open it, then encode each column, then
    // assemble; tasks are queued as they become ready, so no core waits for
    // the slowest task of a phase. Batches first (the biggest first: they
    // unlock the most work), then assembly (short, and it frees memory),
    // then columns, the costliest first, so that no big one starts last.
    let initial = (0..groups.len())
        .map(|g| (priority(Step::Build, groups[g].1.len()), Task::Build(g)))
        .collect();
    workers.run_queue(initial, |task, queue| match task {
        Task::Build(g) => {
            let ((table, _, _), idx) = &groups[g];
            let file = &files[g];
            let opened = encoder.setup(*table).and_then(|setup| {
                let columns = build_columns(records, *table, idx, &setup.direct)?;
                let rows = columns::rows(&columns);
                start_file(columns, rows, *table, encoder).map(|opened| (rows, opened))
            });
            match opened {
                Ok((rows, (writer, columns))) => {
                    let mut state = file.lock();
                    state.rows = rows;
                    state.writer = Some(writer);
                    state.chunks = columns.iter().map(|_| None).collect();
                    drop(state);
                    for (c, (column, cost)) in columns.into_iter().enumerate() {
                        queue.push(
                            priority(Step::Column, cost),
                            Task::Column(g, c, Box::new(column)),
                        );
                    }
                }
                Err(e) => file.lock().result = Some(Err(e)),
            }
        }
        Task::Column(g, c, column) => {
            let chunk = encode_column(*column);
            let mut state = files[g].lock();
            state.chunks[c] = Some(chunk);
            if state.chunks.iter().all(Option::is_some) {
                queue.push(priority(Step::Assemble, 0), Task::Assemble(g));
            }
        }
        Task::Assemble(g) => {
            let mut state = files[g].lock();
            let writer = state.writer.take();
            let chunks = std::mem::take(&mut state.chunks);
            let rows = state.rows;
            drop(state);
            let ((table, partition, shard), idx) = &groups[g];
            let bytes = writer
                .ok_or_else(|| "a Parquet file was not opened".to_owned())
                .and_then(|w| finish_file(w, chunks));
            let first = records[idx[0]].meta.sequence_number;
            let last = records[idx[idx.len() - 1]].meta.sequence_number;
            let done = bytes.map(|bytes| LakeFile {
                table: *table,
                key: format!(
                    "{}/{}/part-{shard}-{first}-{last}.parquet",
                    table.name(),
                    partition.path()
                ),
                bytes: Bytes::from(bytes),
                rows,
                positions: idx.iter().map(|&i| records[i].position).collect(),
            });
            files[g].lock().result = Some(done);
        }
    });
    files
        .into_iter()
        .map(|f| {
            f.0.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .result
                .unwrap_or_else(|| Err("a Parquet file was not finished".to_owned()))
        })
        .collect()
}

/// The steps of encoding one file, as queued tasks.
enum Task {
    /// Build the file's Arrow batch and open its writer.
    Build(usize),
    /// Encode one column (file, column, its writer and values).
    Column(usize, usize, Box<ColumnTask>),
    /// Write the file from its encoded columns.
    Assemble(usize),
}

/// The steps in queue rank: a step's tasks run before a lower step's.
#[derive(Clone, Copy)]
enum Step {
    Column = 0,
    Assemble = 1,
    Build = 2,
}

/// A task's priority: its step, then its size (rows or Arrow bytes).
fn priority(step: Step, size: usize) -> u64 {
    ((step as u64) << 56) | (size as u64).min((1 << 56) - 1)
}

/// One file's state between its tasks.
#[derive(Default)]
struct FileInProgress(Mutex<FileState>);

impl FileInProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        // a poisoned lock means a panicking task, which reaches the caller
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct FileState {
    rows: usize,
    writer: Option<ParquetFile>,
    /// One per column, `None` until encoded.
    chunks: Vec<Option<Result<Encoded, String>>>,
    result: Option<Result<LakeFile, String>>,
}

/// An encoded column chunk.
enum Encoded {
    /// As its writer left it (its codec set up by `parquet`).
    Arrow(ArrowColumnChunk),
    /// Written by [`direct`] or zstd-compressed by [`zstd_chunks`]: its
    /// bytes and metadata.
    Written(Bytes, ColumnCloseResult),
}

/// Appends a file's encoded column chunks, in column order, as its one row
/// group, and writes the footer.
fn finish_file(
    mut file: ParquetFile,
    chunks: Vec<Option<Result<Encoded, String>>>,
) -> Result<Vec<u8>, String> {
    let mut row_group = file
        .next_row_group()
        .map_err(|e| format!("parquet row group: {e}"))?;
    for chunk in chunks {
        match chunk.ok_or_else(|| "a column chunk is missing".to_owned())?? {
            Encoded::Arrow(chunk) => chunk.append_to_row_group(&mut row_group),
            Encoded::Written(bytes, close) => row_group.append_column(&bytes, close),
        }
        .map_err(|e| format!("parquet column chunk: {e}"))?;
    }
    row_group
        .close()
        .map_err(|e| format!("parquet row group: {e}"))?;
    file.into_inner().map_err(|e| format!("parquet close: {e}"))
}

/// A Parquet file being written in memory.
type ParquetFile = SerializedFileWriter<Vec<u8>>;

/// A column writer, the column it is to encode, and, when its chunk is to be
/// compressed by [`zstd_chunks`], where its writer stores the pages and the
/// level.
type ColumnTask = (
    ArrowColumnWriter,
    ColumnWork,
    Option<(zstd_chunks::Pages, ZstdLevel)>,
);

/// What a column task encodes.
enum ColumnWork {
    /// Its Arrow leaf, through its writer.
    Arrow(ArrowLeafColumn),
    /// Its chunk as [`direct`] wrote it.
    Direct(direct::Chunk),
}

/// Encodes a file's column.
fn encode_column((mut writer, work, zstd): ColumnTask) -> Result<Encoded, String> {
    let leaf = match work {
        ColumnWork::Arrow(leaf) => leaf,
        ColumnWork::Direct(chunk) => {
            let (pages, close) = *chunk;
            return match &zstd {
                Some((_, level)) => zstd_chunks::compress(pages, close, *level),
                None => direct::laid_out(&pages, close),
            }
            .map(|(bytes, close)| Encoded::Written(bytes, close));
        }
    };
    let chunk = writer
        .write(&leaf)
        .and_then(|()| writer.close())
        .map_err(|e| format!("parquet write: {e}"))?;
    match zstd {
        None => Ok(Encoded::Arrow(chunk)),
        Some((pages, level)) => {
            let close = chunk.close().clone();
            drop(chunk);
            zstd_chunks::compress(zstd_chunks::take(&pages), close, level)
                .map(|(bytes, close)| Encoded::Written(bytes, close))
        }
    }
}

/// How files are encoded: the properties they are declared with, those
/// their column writers are given (with zstd, the writers encode
/// uncompressed and [`zstd_chunks`] compresses each chunk as `parquet` would
/// have), and each table's [`FileSetup`], made on first use and kept for the
/// next invocation: a 100-record invocation spent 5% of its time making them.
#[derive(Debug)]
struct Encoder {
    declared: WriterProperties,
    written: WriterProperties,
    own_zstd: bool,
    /// Whether [`direct`] writes the columns it can.
    direct: bool,
    tables: [OnceLock<Result<FileSetup, String>>; Table::ALL.len()],
}

/// What every file of a table starts from.
#[derive(Debug)]
struct FileSetup {
    /// The Parquet schema converted from the table's Arrow schema.
    schema: SchemaDescriptor,
    /// The written properties, with the Arrow schema for the footer, as
    /// `ArrowWriter` adds it.
    props: Arc<WriterProperties>,
    /// Per leaf column: the zstd level, when [`zstd_chunks`] compresses it.
    zstd: Vec<Option<ZstdLevel>>,
    /// Per column: how [`direct`] writes it, when it does (only columns
    /// stored uncompressed or zstd-compressed by [`zstd_chunks`]: [`direct`]
    /// does not compress).
    direct: Vec<Option<direct::Plan>>,
    /// `props` with the [`direct`] columns `PLAIN` and without a dictionary:
    /// the column writers of a file whose planned columns were all written
    /// directly are made under these. Those columns' writers go unused, and
    /// under `props` a delta or dictionary writer reserves its buffers
    /// anyway (1 MB for each delta-packed stream).
    unused_direct: Arc<WriterProperties>,
}

impl Encoder {
    fn new(codec: Codec) -> Self {
        let declared = writer_properties(codec);
        match codec {
            Codec::Zstd(_) => {
                Encoder::with(declared, properties_with(Compression::UNCOMPRESSED), true)
            }
            Codec::Snappy => Encoder::with(declared.clone(), declared, false),
        }
    }

    fn with(declared: WriterProperties, written: WriterProperties, own_zstd: bool) -> Self {
        Encoder {
            declared,
            written,
            own_zstd,
            direct: true,
            tables: Default::default(),
        }
    }

    fn setup(&self, table: Table) -> Result<&FileSetup, String> {
        self.tables[table as usize]
            .get_or_init(|| self.make_setup(table))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn make_setup(&self, table: Table) -> Result<FileSetup, String> {
        let arrow = table.schema();
        let mut props = self.written.clone();
        add_encoded_arrow_schema_to_metadata(&arrow, &mut props);
        let schema = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&arrow)
            .map_err(|e| format!("parquet schema: {e}"))?;
        let zstd = schema
            .columns()
            .iter()
            .map(|column| match self.declared.compression(column.path()) {
                Compression::ZSTD(level) if self.own_zstd => Some(level),
                _ => None,
            })
            .collect::<Vec<_>>();
        // direct columns are leaves of their own, so column and leaf agree
        let direct: Vec<Option<direct::Plan>> =
            if self.direct && schema.num_columns() == arrow.fields().len() {
                arrow
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(c, field)| {
                        let column = direct::Column::of(table, field.name())?;
                        direct::Plan::new(column, schema.column(c), &props)
                    })
                    .collect()
            } else {
                arrow.fields().iter().map(|_| None).collect()
            };
        let mut unused_direct = props.clone().into_builder();
        for (c, plan) in direct.iter().enumerate() {
            if plan.is_some() {
                let path = schema.column(c).path().clone();
                unused_direct = unused_direct
                    .set_column_encoding(path.clone(), Encoding::PLAIN)
                    .set_column_dictionary_enabled(path, false);
            }
        }
        Ok(FileSetup {
            schema,
            props: Arc::new(props),
            zstd,
            direct,
            unused_direct: Arc::new(unused_direct.build()),
        })
    }
}

/// A Parquet file writer for `columns` (a table's columns in schema order,
/// `None` for those [`direct`] writes), as `ArrowWriter` would open it (the
/// Arrow schema in the footer), and one encoding task per leaf column with
/// its expected cost (the column's Arrow bytes, or for a direct column an
/// estimate of them: encoding and compressing are linear in them).
fn start_file(
    columns: columns::Columns,
    rows: usize,
    table: Table,
    encoder: &Encoder,
) -> Result<(ParquetFile, Vec<(ColumnTask, usize)>), String> {
    let setup = encoder.setup(table)?;
    let schema = table.schema();
    if columns.len() != schema.fields().len() {
        return Err(format!(
            "{} columns for the {} fields of {}",
            columns.len(),
            schema.fields().len(),
            table.name()
        ));
    }
    let arrow_bytes: usize = columns
        .iter()
        .map(|c| match c {
            columns::Built::Arrow(array) => array.get_array_memory_size(),
            columns::Built::Direct(_) | columns::Built::Left => 0,
        })
        .sum();
    let buf = Vec::with_capacity(arrow_bytes / 3 + rows * 48 + 4096);
    let file = SerializedFileWriter::new(
        buf,
        setup.schema.root_schema_ptr(),
        Arc::clone(&setup.props),
    )
    .map_err(|e| format!("parquet writer: {e}"))?;
    let recorder = Arc::new(zstd_chunks::PageRecorder::default());
    // every planned column written directly: its writer only stands in
    let all_direct = columns
        .iter()
        .zip(&setup.direct)
        .all(|(c, plan)| plan.is_none() || matches!(c, columns::Built::Direct(_)));
    let stand_in = all_direct
        .then(|| {
            SerializedFileWriter::new(
                Vec::new(),
                setup.schema.root_schema_ptr(),
                Arc::clone(&setup.unused_direct),
            )
        })
        .transpose()
        .map_err(|e| format!("parquet writer: {e}"))?;
    let mut factory =
        ArrowRowGroupWriterFactory::new(stand_in.as_ref().unwrap_or(&file), Arc::clone(&schema));
    if encoder.own_zstd {
        factory = factory.with_page_store_factory(Arc::clone(&recorder) as _);
    }
    let writers = factory
        .create_column_writers(0)
        .map_err(|e| format!("parquet column writers: {e}"))?;
    let mut pages = recorder.take().into_iter();
    let zstd: Vec<_> = setup
        .zstd
        .iter()
        .map(|level| {
            let pages = pages.next();
            match level {
                Some(level) => pages.map(|pages| Some((pages, *level))),
                None => Some(None),
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(|| "a column writer without a page store".to_owned())?;
    let mut work = Vec::with_capacity(writers.len());
    let mut costs = Vec::with_capacity(writers.len());
    for (field, column) in schema.fields().iter().zip(columns) {
        match column {
            columns::Built::Arrow(column) => {
                if column.data_type() != field.data_type() {
                    return Err(format!(
                        "{}.{} built as {}, not {}",
                        table.name(),
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ));
                }
                let leaves =
                    compute_leaves(field, &column).map_err(|e| format!("parquet levels: {e}"))?;
                let cost = column.get_array_memory_size() / leaves.len().max(1);
                costs.extend(std::iter::repeat_n(cost, leaves.len()));
                work.extend(leaves.into_iter().map(ColumnWork::Arrow));
            }
            columns::Built::Direct(chunk) => {
                // (compression is linear in the bytes, as encoding is in an
                // Arrow column's)
                costs.push(chunk.0.iter().map(Bytes::len).sum());
                work.push(ColumnWork::Direct(chunk));
            }
            columns::Built::Left => {
                return Err(format!(
                    "{}.{} was left to parquet but not built",
                    table.name(),
                    field.name()
                ));
            }
        }
    }
    if work.len() != writers.len() || zstd.len() != writers.len() {
        return Err(format!(
            "{} leaf columns and {} page stores for {} column writers",
            work.len(),
            zstd.len(),
            writers.len()
        ));
    }
    let tasks = writers
        .into_iter()
        .zip(work)
        .zip(zstd)
        .map(|((writer, work), zstd)| (writer, work, zstd));
    Ok((file, tasks.zip(costs).collect()))
}

/// (table, partition, shard): one file each.
type GroupKey<'a> = (Table, Partition, &'a str);

/// Record indices grouped by file, in key order. Neighbouring records almost
/// always share a group (an invocation is one shard, and events arrive in
/// time order), so each table remembers its last group and the map is only
/// consulted on a change: a tree or hash lookup per row cost 3% of the
/// archiver's time, mostly comparing shard ids.
fn group_rows<'a>(records: &[ValidRecord<'a>]) -> Vec<(GroupKey<'a>, Vec<usize>)> {
    let mut groups: Vec<(GroupKey<'a>, Vec<usize>)> = Vec::new();
    let mut index: HashMap<GroupKey<'a>, usize> = HashMap::new();
    let mut last: [Option<(GroupKey<'a>, usize)>; Table::ALL.len()] = [None; Table::ALL.len()];
    for (i, r) in records.iter().enumerate() {
        let partition = Partition::of(r.event.occurred_at_ms);
        for &table in tables_of(&r.event.data) {
            let key = (table, partition, r.meta.shard_id);
            let slot = &mut last[table as usize];
            let g = match slot {
                // the decoder gives one shard's records the same slice
                Some((k, g))
                    if (k.0, k.1) == (key.0, key.1)
                        && (std::ptr::eq(k.2, key.2) || k.2 == key.2) =>
                {
                    *g
                }
                _ => {
                    let g = *index.entry(key).or_insert_with(|| {
                        groups.push((key, Vec::new()));
                        groups.len() - 1
                    });
                    *slot = Some((key, g));
                    g
                }
            };
            groups[g].1.push(i);
        }
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    groups
}

fn writer_properties(codec: Codec) -> WriterProperties {
    properties_with(codec.compression())
}

/// The lake's writer properties, with `compression` where columns are
/// compressed.
fn properties_with(compression: Compression) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("kinesis-pipeline ", env!("CARGO_PKG_VERSION")).to_owned());
    // Unique per row: a dictionary only costs a hash per value and then falls
    // back to plain encoding. Low-cardinality columns keep theirs.
    for column in UNIQUE_COLUMNS.iter().chain(RANDOM_ID_COLUMNS) {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    for column in SMALL_DOMAIN_COLUMNS {
        props = props.set_column_compression(ColumnPath::from(*column), Compression::UNCOMPRESSED);
    }
    for column in RANDOM_ID_COLUMNS {
        props =
            props.set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_LENGTH_BYTE_ARRAY);
    }
    props = props.set_column_encoding(
        ColumnPath::from(SEQUENCE_COLUMN),
        Encoding::DELTA_BYTE_ARRAY,
    );
    props.build()
}

/// The columns of `table` for the records at `idx`, in one pass over the
/// rows: Arrow arrays, and chunks written by [`direct`] where `plans` has a
/// plan. A chunk [`direct`] leaves to `parquet` (more than a page, or a
/// dictionary past its limit: not in an invocation of up to 10,000 records)
/// is built again through Arrow, in a second pass for every such column,
/// so that what a column holds is decided in one place, [`columns`].
fn build_columns<'a>(
    records: &'a [ValidRecord<'a>],
    table: Table,
    idx: &[usize],
    plans: &columns::Plans,
) -> Result<columns::Columns, String> {
    let build = |plans: &columns::Plans| {
        let rows = idx.iter().map(|&i| &records[i]);
        match table {
            Table::UserEvents => columns::user_events(rows, plans),
            Table::OrderEvents => columns::order_events(rows, plans),
            Table::OrderItems => columns::order_items(rows, plans),
        }
        .map_err(|e| format!("building {} batch: {e}", table.name()))
    };
    let mut built = build(plans)?;
    let left = |c: &columns::Built| matches!(c, columns::Built::Left);
    if built.iter().any(left) {
        for (column, arrow) in built.iter_mut().zip(build(&[])?) {
            if left(column) {
                *column = arrow;
            }
        }
    }
    Ok(built)
}

/// The whole Arrow batch of `table` for the records at `idx`: what the
/// files hold, and what the tests give `ArrowWriter` to compare with.
#[cfg(test)]
fn build_batch(
    records: &[ValidRecord<'_>],
    table: Table,
    idx: &[usize],
) -> Result<arrow_array::RecordBatch, String> {
    build_columns(records, table, idx, &[])
        .and_then(|columns| columns::batch(table, columns).map_err(|e| e.to_string()))
}

/// The archiver: a [`RecordHandler`] that writes valid events to the lake.
#[derive(Debug, Clone)]
pub struct LakeArchiver<S> {
    store: S,
    config: LakeConfig,
    encoder: Arc<Encoder>,
}

impl<S: ObjectStore> LakeArchiver<S> {
    /// An archiver writing to `store`.
    pub fn new(store: S, config: LakeConfig) -> Self {
        LakeArchiver {
            store,
            encoder: Arc::new(Encoder::new(config.codec)),
            config,
        }
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
        let files = match encode_using(records, &self.encoder, self.config.encode_threads) {
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
pub(super) mod tests {
    use arrow_array::RecordBatch;

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

    /// One invocation of generated traffic over `shards` shards.
    pub(super) fn payload_of(traffic: pipeline_generator::TrafficConfig, shards: u32) -> Vec<u8> {
        use pipeline_generator::kinesis::{self, StreamInfo};
        let traffic = pipeline_generator::generate(traffic);
        let records: Vec<_> = kinesis::route(&traffic, shards)
            .into_iter()
            .flatten()
            .collect();
        kinesis::invocation_payload(&records, &StreamInfo::default())
    }

    /// The valid records of `decoded`, as the batch core hands them over.
    pub(super) fn valid_of<'a>(
        decoded: &'a [pipeline_schemas::DecodedRecord<'a>],
    ) -> Vec<ValidRecord<'a>> {
        decoded
            .iter()
            .enumerate()
            .filter_map(|(position, r)| {
                let event = r.outcome.as_ref().ok()?;
                Some(ValidRecord {
                    position,
                    meta: &r.meta,
                    event,
                })
            })
            .collect()
    }

    #[test]
    fn files_follow_the_lake_contract() {
        use parquet::basic::{LogicalType, TimeUnit, Type as Physical};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut payload = payload_of(
            pipeline_generator::TrafficConfig {
                events: 2000,
                seed: 3,
                ..Default::default()
            },
            1,
        );
        let mut decoder = pipeline_schemas::InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("decoded");
        let valid = valid_of(&decoded);
        for (codec, compressed) in [
            (Codec::Zstd(1), Compression::ZSTD(ZstdLevel::default())),
            (Codec::Snappy, Compression::SNAPPY),
        ] {
            let files = encode(&valid, codec).expect("encoded");
            assert_eq!(files.len(), 3);
            for file in files {
                let reader = SerializedFileReader::new(file.bytes.clone()).expect("parquet");
                let meta = reader.metadata();
                assert_eq!(meta.num_row_groups(), 1, "{}", file.key);
                let group = meta.row_group(0);
                assert_eq!(group.num_rows() as usize, file.rows);
                for column in group.columns() {
                    let path = column.column_path().string();
                    let top = column.column_path().parts()[0].as_str();
                    // zstd (or snappy) where it pays; small-domain columns as is
                    let want = if SMALL_DOMAIN_COLUMNS.contains(&top) {
                        Compression::UNCOMPRESSED
                    } else {
                        compressed
                    };
                    // the level is not stored in the file
                    let got = match column.compression() {
                        Compression::ZSTD(_) => Compression::ZSTD(ZstdLevel::default()),
                        other => other,
                    };
                    assert_eq!(got, want, "{}: {path}", file.key);
                    // random identifiers without a length before each value;
                    // small domains in a dictionary
                    let encodings = column.encodings().collect::<Vec<_>>();
                    if RANDOM_ID_COLUMNS.contains(&top) {
                        assert!(
                            encodings.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY)
                                && !encodings.contains(&Encoding::PLAIN),
                            "{}: {path} is {encodings:?}",
                            file.key
                        );
                    }
                    // (Parquet has no dictionary for booleans)
                    if SMALL_DOMAIN_COLUMNS.contains(&top)
                        && column.column_descr().physical_type() != Physical::BOOLEAN
                    {
                        assert!(
                            encodings.contains(&Encoding::RLE_DICTIONARY),
                            "{}: {path} is {encodings:?}",
                            file.key
                        );
                    }
                    // statistics on every column: null counts, and min/max
                    // wherever there is a value
                    let stats = column.statistics().expect("statistics");
                    let nulls = stats.null_count_opt().expect("null count");
                    if nulls < column.num_values() as u64 {
                        assert!(
                            stats.min_bytes_opt().is_some() && stats.max_bytes_opt().is_some(),
                            "{}: {path} has no min/max",
                            file.key
                        );
                    }
                    // timestamps: INT64 milliseconds, adjusted to UTC
                    if top == "occurred_at" || top == "arrived_at" {
                        let descr = column.column_descr();
                        assert_eq!(descr.physical_type(), Physical::INT64);
                        assert_eq!(
                            descr.logical_type_ref(),
                            Some(&LogicalType::timestamp(true, TimeUnit::MILLIS))
                        );
                    }
                }
            }
        }
    }

    /// What `ArrowWriter`, the reference encoder, writes for `batch`.
    fn arrow_writer(batch: &RecordBatch, props: &WriterProperties) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props.clone()))
                .expect("writer");
        writer.write(batch).expect("write");
        writer.close().expect("close");
        bytes
    }

    #[test]
    fn parallel_encoding_gives_the_same_files_in_the_same_order() {
        // four shards and several hours in one payload: many groups
        let mut payload = payload_of(
            pipeline_generator::TrafficConfig {
                events: 3000,
                seed: 5,
                events_per_second: 0.5,
                ..Default::default()
            },
            4,
        );
        let mut decoder = pipeline_schemas::InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("decoded");
        let valid = valid_of(&decoded);
        // records in any order (here interleaved from both ends) group as a
        // plain map from (table, partition, shard) to row indices would
        let mut mixed = Vec::with_capacity(valid.len());
        let (mut lo, mut hi) = (0, valid.len());
        while lo < hi {
            hi -= 1;
            mixed.push(valid[hi]);
            if lo < hi {
                mixed.push(valid[lo]);
                lo += 1;
            }
        }
        let mut naive: std::collections::BTreeMap<GroupKey<'_>, Vec<usize>> = Default::default();
        for (i, r) in mixed.iter().enumerate() {
            for &table in tables_of(&r.event.data) {
                let key = (
                    table,
                    Partition::of(r.event.occurred_at_ms),
                    r.meta.shard_id,
                );
                naive.entry(key).or_default().push(i);
            }
        }
        assert_eq!(group_rows(&mixed), naive.into_iter().collect::<Vec<_>>());
        let one = encode_with(&valid, Codec::Zstd(1), 1).expect("one thread");
        assert!(one.len() > 12, "{} files", one.len());
        let arrow = encode_through_arrow(&valid, Codec::Zstd(1)).expect("through Arrow");
        assert_eq!(
            one.iter().map(|f| &f.bytes).collect::<Vec<_>>(),
            arrow.iter().map(|f| &f.bytes).collect::<Vec<_>>()
        );
        // column by column, the files are what ArrowWriter writes for the same batch
        let props = writer_properties(Codec::Zstd(1));
        for ((key, idx), file) in group_rows(&valid).iter().zip(&one) {
            let batch = build_batch(&valid, key.0, idx).expect("batch");
            assert_eq!(file.bytes, arrow_writer(&batch, &props), "{}", file.key);
            assert_eq!(file.rows, batch.num_rows());
        }
        // one encoder for every run, as an archiver keeps it between invocations
        let encoder = Encoder::new(Codec::Zstd(1));
        for threads in [2, 3, 64] {
            let many = encode_using(&valid, &encoder, threads).expect("threads");
            assert_eq!(many.len(), one.len());
            for (a, b) in one.iter().zip(&many) {
                assert_eq!(a.key, b.key);
                assert_eq!(a.bytes, b.bytes, "{}", a.key);
                assert_eq!(a.positions, b.positions);
            }
        }
    }

    #[test]
    fn chunks_of_many_pages_and_a_spilled_dictionary_are_what_parquet_writes() {
        // small pages and dictionaries: every chunk has many data pages, and
        // dictionary columns outgrow their dictionary and fall back to plain
        let small = |props: WriterProperties| {
            props
                .into_builder()
                .set_data_page_size_limit(600)
                .set_data_page_row_count_limit(64)
                .set_dictionary_page_size_limit(200)
                .build()
        };
        let mut payload = payload_of(
            pipeline_generator::TrafficConfig {
                events: 2000,
                seed: 11,
                ..Default::default()
            },
            1,
        );
        let mut decoder = pipeline_schemas::InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("decoded");
        let valid = valid_of(&decoded);
        for level in [1, 7] {
            let declared = small(writer_properties(Codec::Zstd(level)));
            let encoder = Encoder::with(
                declared.clone(),
                small(properties_with(Compression::UNCOMPRESSED)),
                true,
            );
            let files = encode_using(&valid, &encoder, 2).expect("encoded");
            assert!(!files.is_empty());
            let (mut most_pages, mut spilled) = (0, false);
            for ((key, idx), file) in group_rows(&valid).iter().zip(&files) {
                let batch = build_batch(&valid, key.0, idx).expect("batch");
                let reference = arrow_writer(&batch, &declared);
                assert_eq!(file.bytes, reference, "{} at zstd {level}", file.key);
                // and it reads back as the batch, every page decompressed
                let read: Vec<RecordBatch> =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
                        file.bytes.clone(),
                        batch.num_rows(),
                    )
                    .expect("reader")
                    .collect::<Result<_, _>>()
                    .expect("read");
                assert_eq!(read, vec![batch], "{}", file.key);
                use parquet::file::reader::FileReader;
                let reader =
                    parquet::file::serialized_reader::SerializedFileReader::new(file.bytes.clone())
                        .expect("footer");
                let row_group = reader.get_row_group(0).expect("row group");
                for (c, column) in reader.metadata().row_group(0).columns().iter().enumerate() {
                    if !matches!(column.compression(), Compression::ZSTD(_)) {
                        continue;
                    }
                    let pages: Vec<_> = row_group
                        .get_column_page_reader(c)
                        .expect("pages")
                        .collect::<Result<_, _>>()
                        .expect("every page decompresses");
                    most_pages = most_pages.max(pages.len());
                    spilled |= column.dictionary_page_offset().is_some()
                        && pages.iter().any(|p| p.encoding() == Encoding::PLAIN);
                }
            }
            assert!(
                most_pages > 10,
                "at most {most_pages} pages in a zstd chunk"
            );
            assert!(spilled, "no zstd dictionary chunk fell back to plain pages");
        }
    }
}
