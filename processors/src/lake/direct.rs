//! Column chunks encoded straight from the records, without Arrow.
//!
//! The lake's per-row-unique columns (`event_id`, `correlation_id`,
//! `sequence_number`, `order_id`, `occurred_at`, `arrived_at`) are half of a
//! row's bytes. Through Arrow each value was copied twice (into the Arrow
//! array, then into the page) and walked by `parquet`'s general column writer
//! (levels, histograms, page-size checks every 1,024 values). Here a chunk
//! that fits in one data page (fewer rows than the page row limit, fewer bytes
//! than the page size limit, values no longer than the statistics truncation
//! length: every chunk of an invocation of up to 10,000 records) is written in
//! one pass over the rows: values into the page, min and max on the way. The
//! page, its header and the chunk's metadata, statistics, column index and
//! offset index are those `parquet` writes for the same values (tested byte
//! for byte against `ArrowWriter`); a chunk that does not fit is left to
//! `parquet` ([`encode`] returns `None`).

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, TimestampMillisecondArray};
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescPtr;
use pipeline_schemas::EventData;
use pipeline_schemas::lake::Table;

use crate::batch::ValidRecord;

/// A column this module can encode, and where its value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// `event_id`.
    EventId,
    /// `correlation_id`.
    CorrelationId,
    /// `sequence_number`.
    SequenceNumber,
    /// `order_id` (order tables only).
    OrderId,
    /// `occurred_at`, epoch milliseconds.
    OccurredAt,
    /// `arrived_at`, epoch milliseconds.
    ArrivedAt,
}

impl Column {
    /// The column of `table` named `name`, when it is one of these.
    pub(crate) fn of(table: Table, name: &str) -> Option<Column> {
        Some(match name {
            "event_id" => Column::EventId,
            "correlation_id" => Column::CorrelationId,
            "sequence_number" => Column::SequenceNumber,
            "order_id" if table != Table::UserEvents => Column::OrderId,
            "occurred_at" => Column::OccurredAt,
            "arrived_at" => Column::ArrivedAt,
            _ => return None,
        })
    }

    /// About what a row of the column weighs in Arrow: a task's cost.
    pub(crate) fn bytes_per_row(self) -> usize {
        match self {
            Column::OccurredAt | Column::ArrivedAt => 8,
            Column::SequenceNumber => 60,
            _ => 40,
        }
    }

    /// The column's values for `rows` as an Arrow array of the lake's type,
    /// for a chunk that [`encode`] leaves to `parquet`.
    pub(crate) fn array<'r, 'a: 'r>(
        self,
        rows: impl Iterator<Item = &'r ValidRecord<'a>>,
    ) -> ArrayRef {
        // (rows of order_items have no upper size hint, which
        // `from_iter_values` needs)
        if self.is_int64() {
            let values: Vec<i64> = rows.map(|r| self.number(r)).collect();
            Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
        } else {
            let mut builder = StringBuilder::new();
            for r in rows {
                builder.append_value(self.text(r));
            }
            Arc::new(builder.finish())
        }
    }

    fn is_int64(self) -> bool {
        matches!(self, Column::OccurredAt | Column::ArrivedAt)
    }

    /// The column's text in `r` (string columns).
    pub(crate) fn text<'a>(self, r: &ValidRecord<'a>) -> &'a str {
        match self {
            Column::EventId => r.event.event_id,
            Column::CorrelationId => r.event.correlation_id,
            Column::SequenceNumber => r.meta.sequence_number,
            Column::OrderId => order_id(&r.event.data),
            Column::OccurredAt | Column::ArrivedAt => "",
        }
    }

    /// The column's number in `r` (timestamp columns).
    pub(crate) fn number(self, r: &ValidRecord<'_>) -> i64 {
        match self {
            Column::OccurredAt => r.event.occurred_at_ms,
            Column::ArrivedAt => r.meta.arrival_ms,
            _ => 0,
        }
    }
}

fn order_id<'a>(data: &EventData<'a>) -> &'a str {
    match data {
        EventData::OrderCreated(d) => d.order_id,
        EventData::OrderPaymentSucceeded(d) => d.order_id,
        EventData::OrderPaymentFailed(d) => d.order_id,
        EventData::OrderFulfilled(d) => d.order_id,
        EventData::OrderCancelled(d) => d.order_id,
        _ => "",
    }
}

/// How a column's values are laid out in its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `PLAIN` byte arrays: a 4-byte length before each value.
    PlainBytes,
    /// `DELTA_LENGTH_BYTE_ARRAY`: the lengths delta-packed, then the bytes.
    DeltaLengthBytes,
    /// `PLAIN` INT64: 8 bytes little-endian each.
    PlainInt64,
}

impl Layout {
    fn encoding(self) -> Encoding {
        match self {
            Layout::PlainBytes | Layout::PlainInt64 => Encoding::PLAIN,
            Layout::DeltaLengthBytes => Encoding::DELTA_LENGTH_BYTE_ARRAY,
        }
    }
}

/// A column that [`encode`] writes, with what its chunks need from the
/// writer properties: made once per table, when the properties are those
/// this module writes the way `parquet` does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    column: Column,
    descr: ColumnDescPtr,
    layout: Layout,
    row_limit: usize,
    page_limit: usize,
    /// The longest value that statistics and the column index keep whole.
    longest: usize,
}

impl Plan {
    /// A plan for `column` under `props`, or `None` when the chunk would not
    /// be what `parquet` writes: a dictionary, nulls or repetition, page
    /// statistics off or in page headers, bloom filters, data page v2,
    /// compression by the column writer, content-defined chunking, or an
    /// encoding other than the ones above.
    pub(crate) fn new(
        column: Column,
        descr: ColumnDescPtr,
        props: &WriterProperties,
    ) -> Option<Plan> {
        let path = descr.path();
        let physical = descr.physical_type();
        let layout = match (column.is_int64(), physical, props.encoding(path)) {
            (true, Type::INT64, None | Some(Encoding::PLAIN)) => Layout::PlainInt64,
            (false, Type::BYTE_ARRAY, None | Some(Encoding::PLAIN)) => Layout::PlainBytes,
            (false, Type::BYTE_ARRAY, Some(Encoding::DELTA_LENGTH_BYTE_ARRAY)) => {
                Layout::DeltaLengthBytes
            }
            _ => return None,
        };
        let simple = descr.max_def_level() == 0
            && descr.max_rep_level() == 0
            && !props.dictionary_enabled(path)
            && props.statistics_enabled(path) == EnabledStatistics::Page
            && !props.write_page_header_statistics(path)
            && props.bloom_filter_properties(path).is_none()
            && props.writer_version() == WriterVersion::PARQUET_1_0
            && props.compression(path) == Compression::UNCOMPRESSED
            && !props.offset_index_disabled()
            && props.content_defined_chunking().is_none();
        let longest = match (
            props.statistics_truncate_length(),
            props.column_index_truncate_length(),
        ) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => usize::MAX,
        };
        let page_limit = props.column_data_page_size_limit(path);
        simple.then(|| Plan {
            column,
            layout,
            row_limit: props.data_page_row_count_limit(),
            page_limit,
            longest,
            descr,
        })
    }

    /// The column it encodes.
    pub(crate) fn column(&self) -> Column {
        self.column
    }
}

/// The rows of `table` for the records at `idx`: one per record, or, for
/// `order_items`, one per line item.
pub(crate) fn rows<'r, 'a>(
    table: Table,
    records: &'r [ValidRecord<'a>],
    idx: &'r [usize],
) -> impl Iterator<Item = &'r ValidRecord<'a>> + Clone {
    idx.iter().flat_map(move |&i| {
        let r = &records[i];
        let times = match (table, &r.event.data) {
            (Table::OrderItems, EventData::OrderCreated(d)) => d.items.len(),
            (Table::OrderItems, _) => 0,
            _ => 1,
        };
        std::iter::repeat_n(r, times)
    })
}

/// A column chunk as its writer would have stored it uncompressed: the
/// blobs (page header, page data) and the close result, ready for
/// [`super::zstd_chunks::compress`] (boxed: it is large, and moves from the
/// file's build task to the column's).
pub(crate) type Chunk = Box<(Vec<Bytes>, ColumnCloseResult)>;

/// One column chunk's page, filled a row at a time, in the same pass over the
/// rows that builds the file's Arrow columns (a pass per column cost more in
/// loads of the records than it saved).
#[derive(Debug)]
pub(crate) struct Page<'a> {
    plan: Plan,
    rows: usize,
    /// The values as the page holds them; for `DELTA_LENGTH_BYTE_ARRAY`
    /// only their bytes, the lengths go first at the end.
    data: Vec<u8>,
    lengths: Option<DeltaLengths>,
    min: &'a [u8],
    max: &'a [u8],
    /// The first eight bytes of `min` and `max` (see [`prefix`]).
    min_prefix: u64,
    max_prefix: u64,
    low: i64,
    high: i64,
    /// The values' bytes without lengths (`unencoded_byte_array_data_bytes`).
    unencoded: usize,
    longest: usize,
}

impl<'a> Page<'a> {
    /// A page for about `rows` rows of `plan`'s column.
    pub(crate) fn new(plan: &Plan, rows: usize) -> Self {
        let per_row = match plan.layout {
            Layout::PlainInt64 => 8,
            Layout::PlainBytes => plan.column.bytes_per_row() + 4,
            Layout::DeltaLengthBytes => plan.column.bytes_per_row(),
        };
        Page {
            plan: plan.clone(),
            rows: 0,
            data: Vec::with_capacity(rows.saturating_mul(per_row).min(plan.page_limit)),
            lengths: (plan.layout == Layout::DeltaLengthBytes).then(|| DeltaLengths::new(rows)),
            min: &[],
            max: &[],
            min_prefix: 0,
            max_prefix: 0,
            low: i64::MAX,
            high: i64::MIN,
            unencoded: 0,
            longest: 0,
        }
    }

    /// Adds a value of a timestamp column.
    #[inline]
    pub(crate) fn push_number(&mut self, v: i64) {
        self.rows += 1;
        self.low = self.low.min(v);
        self.high = self.high.max(v);
        self.data.extend_from_slice(&v.to_le_bytes());
    }

    /// Adds a value of a string column.
    #[inline(always)]
    pub(crate) fn push_text(&mut self, v: &'a str) {
        let v = v.as_bytes();
        let p = prefix(v);
        if self.rows == 0 {
            (self.min, self.max) = (v, v);
            (self.min_prefix, self.max_prefix) = (p, p);
        } else if p > self.max_prefix || (p == self.max_prefix && v > self.max) {
            // (the max first: sequence numbers rise)
            (self.max, self.max_prefix) = (v, p);
        } else if p < self.min_prefix || (p == self.min_prefix && v < self.min) {
            (self.min, self.min_prefix) = (v, p);
        }
        self.rows += 1;
        self.unencoded += v.len();
        self.longest = self.longest.max(v.len());
        match &mut self.lengths {
            Some(lengths) => lengths.push(v.len() as i32),
            None => self.data.extend_from_slice(&(v.len() as u32).to_le_bytes()),
        }
        self.data.extend_from_slice(v);
    }

    /// The chunk, or `None` when it does not fit one page (rows or bytes
    /// over the limits) or a value is longer than statistics keep whole:
    /// `parquet` then writes it.
    pub(crate) fn finish(self) -> Option<Chunk> {
        let plan = &self.plan;
        let n = self.rows;
        if n == 0 || n >= plan.row_limit || self.longest > plan.longest {
            return None;
        }
        let (data, stats, min, max, unencoded) = match plan.layout {
            Layout::PlainInt64 => {
                let stats = Statistics::Int64(
                    ValueStatistics::new(Some(self.low), Some(self.high), None, Some(0), false)
                        .with_backwards_compatible_min_max(true),
                );
                let (min, max) = (self.low.to_le_bytes(), self.high.to_le_bytes());
                (self.data, stats, min.to_vec(), max.to_vec(), None)
            }
            Layout::PlainBytes | Layout::DeltaLengthBytes => {
                let stats = Statistics::ByteArray(
                    ValueStatistics::new(
                        Some(self.min.to_vec().into()),
                        Some(self.max.to_vec().into()),
                        None,
                        Some(0),
                        false,
                    )
                    .with_max_is_exact(true)
                    .with_min_is_exact(true),
                );
                let data = match self.lengths {
                    Some(lengths) => {
                        let mut out = lengths.finish(self.data.len());
                        out.extend_from_slice(&self.data);
                        out
                    }
                    None => self.data,
                };
                let unencoded = Some(self.unencoded as i64);
                (data, stats, self.min.to_vec(), self.max.to_vec(), unencoded)
            }
        };
        if data.len() >= plan.page_limit {
            return None;
        }
        let encoding = plan.layout.encoding();
        let header = data_page_header(data.len(), n, encoding)?;
        let size = header.len() + data.len();
        let size_i32 = i32::try_from(size).ok()?;
        let mut column_index = ColumnIndexBuilder::new(plan.descr.physical_type());
        column_index.append(false, min, max, 0);
        column_index.append_histograms(&None, &None);
        column_index.set_boundary_order(BoundaryOrder::ASCENDING);
        let column_index = column_index.build().ok()?;
        let mut offset_index = OffsetIndexBuilder::new();
        offset_index.append_row_count(n as i64);
        offset_index.append_unencoded_byte_array_data_bytes(unencoded);
        offset_index.append_offset_and_size(0, size_i32);
        let metadata = ColumnChunkMetaData::builder(plan.descr.clone())
            .set_compression(Compression::UNCOMPRESSED)
            .set_encodings_mask(EncodingMask::new_from_encodings(
                [Encoding::RLE, encoding].iter(),
            ))
            .set_page_encoding_stats(vec![PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding,
                count: 1,
            }])
            .set_total_compressed_size(size as i64)
            .set_total_uncompressed_size(size as i64)
            .set_num_values(n as i64)
            .set_data_page_offset(0)
            .set_dictionary_page_offset(None)
            .set_statistics(stats)
            .set_unencoded_byte_array_data_bytes(unencoded)
            .set_repetition_level_histogram(None)
            .set_definition_level_histogram(None)
            .build()
            .ok()?;
        let close = ColumnCloseResult {
            bytes_written: size as u64,
            rows_written: n as u64,
            metadata,
            bloom_filter: None,
            column_index: Some(column_index),
            offset_index: Some(offset_index.build()),
        };
        Some(Box::new((
            vec![Bytes::from(header), Bytes::from(data)],
            close,
        )))
    }
}

/// The first eight bytes of `v`, big-endian, zeros after a shorter `v`: when
/// two values' prefixes differ, they order as the values do (a shorter value
/// that is a prefix of the other orders first either way), so only equal
/// prefixes need comparing in full.
#[inline(always)]
fn prefix(v: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let k = v.len().min(8);
    bytes[..k].copy_from_slice(&v[..k]);
    u64::from_be_bytes(bytes)
}

/// `DELTA_BINARY_PACKED` INT32 values as `parquet`'s encoder writes them:
/// blocks of 128 deltas in four mini-blocks of 32, each block's smallest
/// delta first, then the mini-blocks' bit widths, then the packed deltas
/// (the last mini-blocks of the last block padded with zeros, or left out
/// with a width of 0 when no value is left).
#[derive(Debug)]
struct DeltaLengths {
    first: Option<i32>,
    last: i32,
    total: usize,
    deltas: Vec<i64>,
    blocks: Vec<u8>,
}

const BLOCK: usize = 128;
const MINI_BLOCKS: usize = 4;
const MINI: usize = BLOCK / MINI_BLOCKS;

impl DeltaLengths {
    fn new(n: usize) -> Self {
        DeltaLengths {
            first: None,
            last: 0,
            total: 0,
            deltas: Vec::with_capacity(BLOCK),
            blocks: Vec::with_capacity(n / BLOCK * 5 + 16),
        }
    }

    fn push(&mut self, v: i32) {
        self.total += 1;
        if self.first.is_none() {
            self.first = Some(v);
        } else {
            self.deltas.push(i64::from(v.wrapping_sub(self.last)));
            if self.deltas.len() == BLOCK {
                self.flush_block();
            }
        }
        self.last = v;
    }

    fn flush_block(&mut self) {
        if self.deltas.is_empty() {
            return;
        }
        let min = self.deltas.iter().copied().min().unwrap_or(0);
        put_zigzag(&mut self.blocks, min);
        let widths_at = self.blocks.len();
        self.blocks.extend_from_slice(&[0; MINI_BLOCKS]);
        for (i, mini) in self.deltas.chunks(MINI).enumerate() {
            let max = mini.iter().copied().max().unwrap_or(min);
            let width = 64 - (max.wrapping_sub(min) as u32 as u64).leading_zeros() as usize;
            self.blocks[widths_at + i] = width as u8;
            // LSB first; 32 values of `width` bits end on a byte
            let mut acc: u64 = 0;
            let mut bits = 0usize;
            for j in 0..MINI {
                let v = mini.get(j).map_or(0, |d| d.wrapping_sub(min) as u32 as u64);
                acc |= v << bits;
                bits += width;
                while bits >= 8 {
                    self.blocks.push(acc as u8);
                    acc >>= 8;
                    bits -= 8;
                }
            }
        }
        self.deltas.clear();
    }

    /// The encoded values, with room for `extra` bytes after them.
    fn finish(mut self, extra: usize) -> Vec<u8> {
        self.flush_block();
        let mut out = Vec::with_capacity(self.blocks.len() + 24 + extra);
        put_uleb(&mut out, BLOCK as u64);
        put_uleb(&mut out, MINI_BLOCKS as u64);
        put_uleb(&mut out, self.total as u64);
        put_zigzag(&mut out, i64::from(self.first.unwrap_or(0)));
        out.extend_from_slice(&self.blocks);
        out
    }
}

fn put_uleb(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_uleb(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A data page v1 header in thrift's compact protocol, as `parquet` writes
/// it: type, both sizes, then the data page header (values, encoding, and
/// RLE for the absent levels).
fn data_page_header(len: usize, values: usize, encoding: Encoding) -> Option<Vec<u8>> {
    const I32_NEXT: u8 = 0x15;
    const STRUCT_SKIP_ONE: u8 = 0x2c;
    let len = i32::try_from(len).ok()?;
    let values = i32::try_from(values).ok()?;
    let mut out = Vec::with_capacity(24);
    let field = |out: &mut Vec<u8>, v: i32| {
        out.push(I32_NEXT);
        put_uleb(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
    };
    field(&mut out, 0); // DATA_PAGE
    field(&mut out, len);
    field(&mut out, len);
    out.push(STRUCT_SKIP_ONE); // field 5: data_page_header (4, crc, absent)
    field(&mut out, values);
    field(&mut out, encoding_id(encoding));
    field(&mut out, encoding_id(Encoding::RLE));
    field(&mut out, encoding_id(Encoding::RLE));
    out.push(0); // end of data_page_header
    out.push(0); // end of the page header
    Some(out)
}

/// The encoding's number in the format's thrift definition.
fn encoding_id(encoding: Encoding) -> i32 {
    match encoding {
        Encoding::PLAIN => 0,
        Encoding::RLE => 3,
        Encoding::DELTA_LENGTH_BYTE_ARRAY => 6,
        _ => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::columns::Built;
    use crate::lake::tests::{payload_of, valid_of};
    use crate::lake::{Codec, Encoder, build_columns, group_rows, start_file, zstd_chunks};

    /// What `parquet`'s column writer stores for each column this module
    /// encodes, uncompressed, next to what [`encode`] gives.
    fn compare(events: usize, seed: u64) -> usize {
        let mut payload = payload_of(
            pipeline_generator::TrafficConfig {
                events,
                seed,
                ..Default::default()
            },
            1,
        );
        let mut decoder = pipeline_schemas::InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("decoded");
        let valid = valid_of(&decoded);
        let encoder = Encoder::new(Codec::Zstd(1));
        let mut compared = 0;
        for ((table, _, _), idx) in group_rows(&valid) {
            // every column through Arrow and parquet's writers
            let columns = build_columns(&valid, table, &idx, &[]).expect("columns");
            let n = rows(table, &valid, &idx).count();
            let (_file, tasks) = start_file(columns, n, table, &encoder).expect("file");
            let setup = encoder.setup(table).expect("setup");
            assert_eq!(
                setup.direct.iter().flatten().count(),
                if table == Table::UserEvents { 5 } else { 6 }
            );
            // and the direct columns as the archiver writes them
            let mut direct: Vec<_> = build_columns(&valid, table, &idx, &setup.direct)
                .expect("direct columns")
                .into_iter()
                .map(|built| match built {
                    Built::Direct(chunk) => Some(chunk.expect("one page")),
                    Built::Arrow(_) => None,
                })
                .collect();
            for (c, ((mut writer, work, zstd), _cost)) in tasks.into_iter().enumerate() {
                let crate::lake::ColumnWork::Arrow(leaf) = work else {
                    panic!("column {c} not through Arrow");
                };
                let descr = setup.schema.column(c);
                let Some((ours, close)) = direct[c].take().map(|chunk| *chunk) else {
                    assert!(
                        Column::of(table, descr.name()).is_none(),
                        "{}",
                        descr.name()
                    );
                    continue;
                };
                let (pages, _) = zstd.expect("recorded");
                writer.write(&leaf).expect("write");
                let chunk = writer.close().expect("close");
                let theirs = zstd_chunks::take(&pages);
                let name = format!("{}.{}", table.name(), descr.name());
                assert_eq!(ours.len(), theirs.len(), "{name}: blobs");
                assert_eq!(ours[0], theirs[0], "{name}: page header");
                assert_eq!(ours[1], theirs[1], "{name}: page data");
                assert_eq!(
                    format!("{close:?}"),
                    format!("{:?}", chunk.close()),
                    "{name}: close result"
                );
                compared += 1;
            }
        }
        compared
    }

    #[test]
    fn chunks_are_what_parquet_writes() {
        // 5 columns in user_events, 6 in each order table
        assert_eq!(compare(3000, 7), 17);
        // a single row
        assert!(compare(1, 2) >= 5);
    }

    #[test]
    fn min_and_max_are_those_of_the_bytes() {
        let encoder = Encoder::new(Codec::Zstd(1));
        let setup = encoder.setup(Table::UserEvents).expect("setup");
        let plan = setup.direct[0].clone().expect("event_id's plan");
        // shared and short prefixes, NULs, bytes above 0x7f, empty values
        let sets: [&[&str]; 5] = [
            &["b", "ab", "abc", "a", "abcdefgh", "abcdefgh\0", "abcdefgh"],
            &["abcdefghij", "abcdefghi", "abcdefgh", "abcdefghz", "ab\0"],
            &["\u{e9}t\u{e9}", "zzzzzzzz", "zzzzzzzz\u{e9}", "", "\0\0"],
            &["0000000000000000000000000000000000000000000000000000000003"; 3],
            &["x"],
        ];
        for set in sets {
            let mut page = Page::new(&plan, set.len());
            for v in set {
                page.push_text(v);
            }
            let (_, close) = *page.finish().expect("one page");
            let stats = close.metadata.statistics().expect("statistics");
            let want_min = set.iter().map(|v| v.as_bytes()).min();
            let want_max = set.iter().map(|v| v.as_bytes()).max();
            assert_eq!(stats.min_bytes_opt(), want_min, "min of {set:?}");
            assert_eq!(stats.max_bytes_opt(), want_max, "max of {set:?}");
        }
        // rising and falling runs, as sequence numbers and random ids come
        let rising: Vec<String> = (0..300).map(|i| format!("4960{i:052}")).collect();
        let mut falling = rising.clone();
        falling.reverse();
        for set in [rising, falling] {
            let mut page = Page::new(&plan, set.len());
            for v in &set {
                page.push_text(v);
            }
            let (_, close) = *page.finish().expect("one page");
            let stats = close.metadata.statistics().expect("statistics");
            assert_eq!(
                stats.min_bytes_opt(),
                set.iter().map(|v| v.as_bytes()).min()
            );
            assert_eq!(
                stats.max_bytes_opt(),
                set.iter().map(|v| v.as_bytes()).max()
            );
        }
    }

    #[test]
    fn delta_lengths_are_what_parquet_writes() {
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        use parquet::column::page::Page;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::schema::types::ColumnPath;
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_column_encoding(ColumnPath::from("v"), Encoding::DELTA_LENGTH_BYTE_ARRAY)
            .build();
        let mut seed = 0x9e37_79b9_u64;
        for n in [1usize, 2, 31, 32, 33, 127, 128, 129, 130, 257, 1000, 4097] {
            // lengths that rise, fall, repeat and jump (widths 0 to 12 bits),
            // under 1 MB in all: one page
            let values: Vec<String> = (0..n)
                .map(|i| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let len = match i % 7 {
                        0 => 36,
                        1 => (seed >> 60) as usize,
                        2 => (seed >> 47) as usize % 3_000,
                        _ => 20 + (seed >> 61) as usize,
                    };
                    "x".repeat(len)
                })
                .collect();
            let array: ArrayRef = Arc::new(StringArray::from_iter_values(&values));
            let batch = RecordBatch::try_from_iter([("v", array)]).expect("batch");
            let mut file = Vec::new();
            let mut writer = parquet::arrow::ArrowWriter::try_new(
                &mut file,
                batch.schema(),
                Some(props.clone()),
            )
            .expect("writer");
            writer.write(&batch).expect("write");
            writer.close().expect("close");
            let reader = SerializedFileReader::new(Bytes::from(file)).expect("file");
            let mut pages = reader
                .get_row_group(0)
                .expect("row group")
                .get_column_page_reader(0)
                .expect("pages");
            let Some(Ok(Page::DataPage { buf, .. })) = pages.next() else {
                panic!("no data page for {n} values");
            };
            let mut lengths = DeltaLengths::new(n);
            for v in &values {
                lengths.push(v.len() as i32);
            }
            let mut ours = lengths.finish(0);
            for v in &values {
                ours.extend_from_slice(v.as_bytes());
            }
            assert!(pages.next().is_none(), "{n} values took more than one page");
            let first_difference = buf.iter().zip(&ours).position(|(a, b)| a != b);
            assert_eq!(
                (buf.len(), first_difference),
                (ours.len(), None),
                "{n} values"
            );
        }
    }
}
