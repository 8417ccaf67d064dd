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
//! one pass over the rows: values into the page, min and max on the way.
//!
//! The dictionary string columns (`event_type`, `source`, `shard_id`,
//! `user_id`, `country`, `currency`, and the optional codes and names of
//! each table, their nulls as definition levels) are written the same way.
//! Through Arrow, `parquet` hashed every row's value to find its dictionary
//! index (a tenth of an invocation's instructions);
//! here a row that repeats the last row's value (most of them: a file is one
//! shard's, line items share their order's user and currency) takes its
//! index without a hash, and min and max are the dictionary's, found once.
//! The integer dictionary columns (`schema_version`, the line items' numbers,
//! the order events' amounts and counts) have their own dictionary of `i64`s
//! and share the indices' encoder; `payment_id`, a random identifier that is
//! null in most rows, is delta-length with definition levels.
//!
//! The pages, their headers and the chunk's metadata, statistics, column
//! index and offset index are those `parquet` writes for the same values
//! (tested byte for byte against `ArrowWriter`); a chunk that does not fit
//! (or whose dictionary would pass its limit) is left to `parquet`
//! ([`Page::finish`] returns `None`, and the column is built again through
//! Arrow).

use std::collections::HashMap;

use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnDescPtr;
use pipeline_schemas::lake::Table;

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
    /// `payment_id` (`order_events`, nullable).
    PaymentId,
    /// `occurred_at`, epoch milliseconds.
    OccurredAt,
    /// `arrived_at`, epoch milliseconds.
    ArrivedAt,
    /// `event_type` (dictionary-encoded, as are the rest).
    EventType,
    /// `source`.
    Source,
    /// `shard_id`.
    ShardId,
    /// `user_id`.
    UserId,
    /// `country` (nullable in `user_events`).
    Country,
    /// `currency` (nullable in `order_events`).
    Currency,
    /// `channel` (`user_events`, nullable, as are the rest).
    Channel,
    /// `login_method`.
    LoginMethod,
    /// `email_domain`.
    EmailDomain,
    /// `payment_method` (`order_events`).
    PaymentMethod,
    /// `failure_reason`.
    FailureReason,
    /// `warehouse`.
    Warehouse,
    /// `carrier`.
    Carrier,
    /// `cancel_reason`.
    CancelReason,
    /// `sku` (`order_items`).
    Sku,
    /// `schema_version` (every table; integers from here on, dictionary
    /// encoded, as `parquet` does for them).
    SchemaVersion,
    /// `line_number` (`order_items`).
    LineNumber,
    /// `quantity`.
    Quantity,
    /// `unit_price_cents`.
    UnitPriceCents,
    /// `amount_cents` (`order_events`, nullable, as are the rest).
    AmountCents,
    /// `item_count`.
    ItemCount,
    /// `shipped_items`.
    ShippedItems,
}

impl Column {
    /// The column of `table` named `name`, when it is one of these.
    pub(crate) fn of(table: Table, name: &str) -> Option<Column> {
        Some(match name {
            "event_id" => Column::EventId,
            "correlation_id" => Column::CorrelationId,
            "sequence_number" => Column::SequenceNumber,
            "order_id" if table != Table::UserEvents => Column::OrderId,
            "payment_id" if table == Table::OrderEvents => Column::PaymentId,
            "occurred_at" => Column::OccurredAt,
            "arrived_at" => Column::ArrivedAt,
            "event_type" => Column::EventType,
            "source" => Column::Source,
            "shard_id" => Column::ShardId,
            "user_id" => Column::UserId,
            "country" => Column::Country,
            "currency" if table != Table::UserEvents => Column::Currency,
            "channel" if table == Table::UserEvents => Column::Channel,
            "login_method" if table == Table::UserEvents => Column::LoginMethod,
            "email_domain" if table == Table::UserEvents => Column::EmailDomain,
            "payment_method" if table == Table::OrderEvents => Column::PaymentMethod,
            "failure_reason" if table == Table::OrderEvents => Column::FailureReason,
            "warehouse" if table == Table::OrderEvents => Column::Warehouse,
            "carrier" if table == Table::OrderEvents => Column::Carrier,
            "cancel_reason" if table == Table::OrderEvents => Column::CancelReason,
            "sku" if table == Table::OrderItems => Column::Sku,
            "schema_version" => Column::SchemaVersion,
            "line_number" if table == Table::OrderItems => Column::LineNumber,
            "quantity" if table == Table::OrderItems => Column::Quantity,
            "unit_price_cents" if table == Table::OrderItems => Column::UnitPriceCents,
            "amount_cents" if table == Table::OrderEvents => Column::AmountCents,
            "item_count" if table == Table::OrderEvents => Column::ItemCount,
            "shipped_items" if table == Table::OrderEvents => Column::ShippedItems,
            _ => return None,
        })
    }

    /// About what a row of the column weighs in its page, to size it.
    fn bytes_per_row(self) -> usize {
        match self {
            Column::OccurredAt | Column::ArrivedAt => 8,
            Column::SequenceNumber => 60,
            _ => 40,
        }
    }

    fn is_int64(self) -> bool {
        matches!(self, Column::OccurredAt | Column::ArrivedAt)
    }

    /// Whether the lake keeps a dictionary for the column (its values come
    /// from a small set, or repeat from row to row).
    fn is_dictionary(self) -> bool {
        !matches!(
            self,
            Column::EventId
                | Column::CorrelationId
                | Column::SequenceNumber
                | Column::OrderId
                | Column::PaymentId
                | Column::OccurredAt
                | Column::ArrivedAt
        )
    }
}

/// How a column's values are laid out in its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `PLAIN` byte arrays: a 4-byte length before each value.
    PlainBytes,
    /// `DELTA_LENGTH_BYTE_ARRAY`: the lengths delta-packed, then the bytes.
    DeltaLengthBytes,
    /// `DELTA_BYTE_ARRAY`: for each value the length of the prefix it
    /// shares with the value before, delta-packed; then the lengths of the
    /// rest, delta-packed; then the rests' bytes.
    DeltaBytes,
    /// `PLAIN` INT64: 8 bytes little-endian each.
    PlainInt64,
    /// `RLE_DICTIONARY` byte arrays: a `PLAIN` dictionary page of the
    /// distinct values in the order they first came, and the rows' indices
    /// into it, run-length or bit-packed.
    Dictionary,
    /// `RLE_DICTIONARY` INT32 or INT64: the same, the dictionary page
    /// holding 4 or 8 bytes a value.
    NumberDictionary,
}

impl Layout {
    fn encoding(self) -> Encoding {
        match self {
            Layout::PlainBytes | Layout::PlainInt64 => Encoding::PLAIN,
            Layout::DeltaLengthBytes => Encoding::DELTA_LENGTH_BYTE_ARRAY,
            Layout::DeltaBytes => Encoding::DELTA_BYTE_ARRAY,
            Layout::Dictionary | Layout::NumberDictionary => Encoding::RLE_DICTIONARY,
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
    /// The dictionary page's size at which `parquet` gives up the dictionary.
    dictionary_limit: usize,
    /// Whether the column is optional (one definition level).
    nullable: bool,
    /// The longest value that statistics and the column index keep whole.
    longest: usize,
}

impl Plan {
    /// A plan for `column` under `props`, or `None` when the chunk would not
    /// be what `parquet` writes: nulls or repetition, a dictionary for a
    /// column of unique values (or none for a dictionary column), page
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
        let dictionary = props.dictionary_enabled(path);
        let layout = match (
            column.is_int64(),
            physical,
            dictionary,
            props.encoding(path),
        ) {
            (true, Type::INT64, false, None | Some(Encoding::PLAIN)) => Layout::PlainInt64,
            // (the fallback encoding never applies: a chunk whose dictionary
            // would outgrow its limit is left to `parquet`)
            (false, Type::BYTE_ARRAY, true, _) if column.is_dictionary() => Layout::Dictionary,
            (false, Type::INT32 | Type::INT64, true, _) if column.is_dictionary() => {
                Layout::NumberDictionary
            }
            (false, Type::BYTE_ARRAY, false, None | Some(Encoding::PLAIN)) => Layout::PlainBytes,
            (false, Type::BYTE_ARRAY, false, Some(Encoding::DELTA_LENGTH_BYTE_ARRAY)) => {
                Layout::DeltaLengthBytes
            }
            (false, Type::BYTE_ARRAY, false, Some(Encoding::DELTA_BYTE_ARRAY)) => {
                Layout::DeltaBytes
            }
            _ => return None,
        };
        // nulls in dictionary columns and delta-length ones (`payment_id`):
        // the levels go before the indices or the lengths
        let nullable = descr.max_def_level() == 1
            && matches!(
                layout,
                Layout::Dictionary | Layout::NumberDictionary | Layout::DeltaLengthBytes
            );
        let simple = (descr.max_def_level() == 0 || nullable)
            && descr.max_rep_level() == 0
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
        let dictionary_limit = props.column_dictionary_page_size_limit(path);
        simple.then(|| Plan {
            column,
            layout,
            row_limit: props.data_page_row_count_limit(),
            page_limit,
            dictionary_limit,
            nullable,
            longest,
            descr,
        })
    }
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
    /// only their bytes, the lengths go first at the end; for
    /// `DELTA_BYTE_ARRAY` only what each value does not share with the one
    /// before, the shared lengths and the rests' lengths first at the end.
    data: Vec<u8>,
    /// Bytes left free at the front of `data` for what goes before the
    /// values (levels, lengths), so that `finish` writes those there rather
    /// than copying the values behind them (a delta layout's values are most
    /// of a file's bytes).
    front: usize,
    lengths: Option<DeltaLengths>,
    /// `DELTA_BYTE_ARRAY`'s shared-prefix lengths, and the value before.
    prefixes: Option<DeltaLengths>,
    previous: &'a [u8],
    dictionary: Option<Dictionary<'a>>,
    numbers: Option<Numbers>,
    /// The definition levels of an optional column (1 a value, 0 a null),
    /// and the nulls.
    levels: Option<Rle>,
    nulls: usize,
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
            // (sequence numbers: a few digits a row)
            Layout::DeltaBytes => 8,
            Layout::Dictionary | Layout::NumberDictionary => 0,
        };
        let delta = matches!(plan.layout, Layout::DeltaLengthBytes | Layout::DeltaBytes);
        let prefixed = plan.layout == Layout::DeltaBytes;
        // room for the levels and the delta-packed streams
        let front = if delta {
            let streams = 1 + usize::from(prefixed);
            let levels = if plan.nullable {
                4 + Rle::max_size(1, rows)
            } else {
                0
            };
            streams * DeltaLengths::max_size(rows) + levels
        } else {
            0
        };
        let mut data =
            Vec::with_capacity(front + rows.saturating_mul(per_row).min(plan.page_limit));
        data.resize(front, 0);
        Page {
            plan: plan.clone(),
            rows: 0,
            data,
            front,
            lengths: delta.then(|| DeltaLengths::new(rows)),
            prefixes: prefixed.then(|| DeltaLengths::new(rows)),
            previous: &[],
            dictionary: (plan.layout == Layout::Dictionary).then(|| Dictionary::new(rows)),
            numbers: (plan.layout == Layout::NumberDictionary).then(|| Numbers::new(rows)),
            // (a bit a row; `finish` puts their length before them)
            levels: plan
                .nullable
                .then(|| Rle::new(1, Vec::with_capacity(rows / 8 + 16))),
            nulls: 0,
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

    /// Adds a value of an integer dictionary column.
    #[inline(always)]
    pub(crate) fn push_int(&mut self, v: i64) {
        if let Some(numbers) = &mut self.numbers {
            numbers.push(v);
        }
        if let Some(levels) = &mut self.levels {
            levels.put(1);
        }
        self.rows += 1;
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
        if let Some(dictionary) = &mut self.dictionary {
            // min, max and the longest are the dictionary's, at the end
            dictionary.push(v);
            if let Some(levels) = &mut self.levels {
                levels.put(1);
            }
            self.rows += 1;
            self.unencoded += v.len();
            return;
        }
        if let Some(levels) = &mut self.levels {
            levels.put(1);
        }
        let p = prefix(v);
        // `DELTA_BYTE_ARRAY`: what `v` shares with the value before; when
        // that value is the max itself (sequence numbers rise), the byte after
        // orders `v` against it, without comparing the 40-odd shared digits
        let shared = match self.prefixes {
            Some(_) => shared_prefix(self.previous, v),
            None => 0,
        };
        // (the first value, after any nulls)
        if self.rows == self.nulls {
            (self.min, self.max) = (v, v);
            (self.min_prefix, self.max_prefix) = (p, p);
        } else {
            let (greater, equal) = if p != self.max_prefix {
                (p > self.max_prefix, false)
            } else if self.prefixes.is_some() && std::ptr::eq(self.previous, self.max) {
                match (v.get(shared), self.previous.get(shared)) {
                    (Some(a), Some(b)) => (a > b, false),
                    (Some(_), None) => (true, false),
                    (None, b) => (false, b.is_none()),
                }
            } else {
                (v > self.max, false)
            };
            // (the max first: sequence numbers rise; an equal value becomes
            // the max too, so that the next one is ordered against it)
            if greater || equal {
                (self.max, self.max_prefix) = (v, p);
            } else if p < self.min_prefix || (p == self.min_prefix && v < self.min) {
                (self.min, self.min_prefix) = (v, p);
            }
        }
        self.rows += 1;
        self.unencoded += v.len();
        self.longest = self.longest.max(v.len());
        let Some(lengths) = &mut self.lengths else {
            self.data.extend_from_slice(&(v.len() as u32).to_le_bytes());
            self.data.extend_from_slice(v);
            return;
        };
        if let Some(prefixes) = &mut self.prefixes {
            prefixes.push(shared as i32);
            self.previous = v;
        }
        let rest = v.get(shared..).unwrap_or_default();
        lengths.push(rest.len() as i32);
        self.data.extend_from_slice(rest);
    }

    /// Adds a null (optional columns only; `finish` leaves a required
    /// column with a null to `parquet`, which reports it).
    #[inline]
    pub(crate) fn push_null(&mut self) {
        self.rows += 1;
        self.nulls += 1;
        if let Some(levels) = &mut self.levels {
            levels.put(0);
        }
    }

    /// The chunk, or `None` when it does not fit one page (rows or bytes
    /// over the limits) or a value is longer than statistics keep whole:
    /// `parquet` then writes it.
    pub(crate) fn finish(self) -> Option<Chunk> {
        let plan = &self.plan;
        let n = self.rows;
        // (nothing but nulls, or a null in a required column: `parquet`'s)
        let nulls = self.nulls;
        if n == 0
            || n >= plan.row_limit
            || self.longest > plan.longest
            || nulls == n
            || (nulls > 0 && self.levels.is_none())
        {
            return None;
        }
        let byte_stats = |min: &[u8], max: &[u8]| {
            Statistics::ByteArray(
                ValueStatistics::new(
                    Some(min.to_vec().into()),
                    Some(max.to_vec().into()),
                    None,
                    Some(nulls as u64),
                    false,
                )
                .with_max_is_exact(true)
                .with_min_is_exact(true),
            )
        };
        let mut dictionary_page = None;
        let (data, stats, min, max, unencoded) = match plan.layout {
            Layout::PlainInt64 => {
                let (stats, min, max) = signed_stats(self.low, self.high, 0, false)?;
                (Bytes::from(self.data), stats, min, max, None)
            }
            Layout::PlainBytes | Layout::DeltaLengthBytes | Layout::DeltaBytes => {
                let stats = byte_stats(self.min, self.max);
                // what goes before the values: levels, prefixes, lengths
                let mut head = Vec::new();
                put_levels(self.levels, &mut head)?;
                for lengths in [self.prefixes, self.lengths].into_iter().flatten() {
                    lengths.finish_into(&mut head);
                }
                let data = before(head, self.data, self.front)?;
                let unencoded = Some(self.unencoded as i64);
                (data, stats, self.min.to_vec(), self.max.to_vec(), unencoded)
            }
            Layout::Dictionary => {
                let dictionary = self.dictionary?;
                // every distinct value is in the one data page: its min and
                // max are the dictionary's
                let (min, max) = dictionary.min_max()?;
                if dictionary.page.len() >= plan.dictionary_limit
                    || dictionary.longest > plan.longest
                {
                    return None;
                }
                let indices = indices_page(dictionary.len(), &dictionary.indices, plan.page_limit)?;
                let mut head = Vec::new();
                put_levels(self.levels, &mut head)?;
                let data = before(head, indices, 0)?;
                let stats = byte_stats(min, max);
                let unencoded = Some(self.unencoded as i64);
                let (min, max) = (min.to_vec(), max.to_vec());
                let header = dictionary_page_header(dictionary.page.len(), dictionary.len())?;
                dictionary_page = Some((header, dictionary.page));
                (data, stats, min, max, unencoded)
            }
            Layout::NumberDictionary => {
                let numbers = self.numbers?;
                let (low, high) = numbers.min_max()?;
                let int32 = plan.descr.physical_type() == Type::INT32;
                let page = numbers.page(int32)?;
                if page.len() >= plan.dictionary_limit {
                    return None;
                }
                let indices = indices_page(numbers.len(), &numbers.indices, plan.page_limit)?;
                let mut head = Vec::new();
                put_levels(self.levels, &mut head)?;
                let data = before(head, indices, 0)?;
                let (stats, min, max) = signed_stats(low, high, nulls, int32)?;
                let header = dictionary_page_header(page.len(), numbers.len())?;
                dictionary_page = Some((header, page));
                (data, stats, min, max, None)
            }
        };
        if data.len() >= plan.page_limit {
            return None;
        }
        let encoding = plan.layout.encoding();
        let header = data_page_header(data.len(), n, encoding)?;
        let size = header.len() + data.len();
        let size_i32 = i32::try_from(size).ok()?;
        // offsets as a column writer with a page store gives them: the
        // dictionary page after the data page ([`laid_out`] turns them round)
        let dictionary_size = dictionary_page
            .as_ref()
            .map_or(0, |(header, page)| header.len() + page.len());
        let total = dictionary_size + size;
        let mut column_index = ColumnIndexBuilder::new(plan.descr.physical_type());
        // (the levels' histogram: nulls, values)
        let histogram = plan
            .nullable
            .then(|| LevelHistogram::from(vec![nulls as i64, (n - nulls) as i64]));
        column_index.append(false, min, max, nulls as i64);
        column_index.append_histograms(&None, &histogram);
        column_index.set_boundary_order(BoundaryOrder::ASCENDING);
        let column_index = column_index.build().ok()?;
        let mut offset_index = OffsetIndexBuilder::new();
        offset_index.append_row_count(n as i64);
        offset_index.append_unencoded_byte_array_data_bytes(unencoded);
        offset_index.append_offset_and_size(0, size_i32);
        let data_stats = PageEncodingStats {
            page_type: PageType::DATA_PAGE,
            encoding,
            count: 1,
        };
        let (encodings, page_stats) = match dictionary_page {
            Some(_) => (
                EncodingMask::new_from_encodings([Encoding::PLAIN, Encoding::RLE, encoding].iter()),
                vec![
                    PageEncodingStats {
                        page_type: PageType::DICTIONARY_PAGE,
                        encoding: Encoding::PLAIN,
                        count: 1,
                    },
                    data_stats,
                ],
            ),
            None => (
                EncodingMask::new_from_encodings([Encoding::RLE, encoding].iter()),
                vec![data_stats],
            ),
        };
        let metadata = ColumnChunkMetaData::builder(plan.descr.clone())
            .set_compression(Compression::UNCOMPRESSED)
            .set_encodings_mask(encodings)
            .set_page_encoding_stats(page_stats)
            .set_total_compressed_size(total as i64)
            .set_total_uncompressed_size(total as i64)
            .set_num_values(n as i64)
            .set_data_page_offset(0)
            .set_dictionary_page_offset(dictionary_page.is_some().then_some(size as i64))
            .set_statistics(stats)
            .set_unencoded_byte_array_data_bytes(unencoded)
            .set_repetition_level_histogram(None)
            .set_definition_level_histogram(histogram)
            .build()
            .ok()?;
        let close = ColumnCloseResult {
            bytes_written: total as u64,
            rows_written: n as u64,
            metadata,
            bloom_filter: None,
            column_index: Some(column_index),
            offset_index: Some(offset_index.build()),
        };
        // in the order a column writer stores them: the dictionary last
        let mut blobs = Vec::with_capacity(4);
        blobs.extend([Bytes::from(header), data]);
        if let Some((header, page)) = dictionary_page {
            blobs.extend([Bytes::from(header), Bytes::from(page)]);
        }
        Some(Box::new((blobs, close)))
    }
}

/// A chunk's bytes and metadata as the file holds them, uncompressed: its
/// dictionary page, when it has one, before its data page (a [`Chunk`]
/// keeps a column writer's order, the dictionary last, as
/// [`super::zstd_chunks::compress`] takes it).
pub(crate) fn laid_out(
    blobs: &[Bytes],
    mut close: ColumnCloseResult,
) -> Result<(Bytes, ColumnCloseResult), String> {
    let (data, dictionary) = blobs.split_at(blobs.len().min(2));
    let bytes = Bytes::from([dictionary, data].concat().concat());
    if dictionary.is_empty() {
        return Ok((bytes, close));
    }
    let before: usize = dictionary.iter().map(Bytes::len).sum();
    let before = before as i64;
    if let Some(index) = close.offset_index.as_mut() {
        for location in &mut index.page_locations {
            location.offset += before;
        }
    }
    let data_at = close.metadata.data_page_offset() + before;
    close.metadata = close
        .metadata
        .into_builder()
        .set_dictionary_page_offset(Some(0))
        .set_data_page_offset(data_at)
        .build()
        .map_err(|e| format!("column chunk metadata: {e}"))?;
    Ok((bytes, close))
}

/// A dictionary column's distinct values and its rows' indices into them.
#[derive(Debug)]
struct Dictionary<'a> {
    values: Vec<&'a [u8]>,
    index: HashMap<&'a [u8], u32, foldhash::fast::RandomState>,
    /// The dictionary page as `PLAIN` writes it: each value's 4-byte length,
    /// then its bytes.
    page: Vec<u8>,
    longest: usize,
    indices: Vec<u32>,
    /// The last row's value and index: a file is one shard's, its events
    /// come in runs of a type and a source, an order's line items share a
    /// user, currency and country, so most rows skip the hash.
    last: &'a [u8],
    last_index: u32,
}

impl<'a> Dictionary<'a> {
    fn new(rows: usize) -> Self {
        Dictionary {
            values: Vec::new(),
            index: HashMap::default(),
            page: Vec::new(),
            longest: 0,
            indices: Vec::with_capacity(rows),
            last: &[],
            last_index: 0,
        }
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    #[inline(always)]
    fn push(&mut self, v: &'a [u8]) {
        let same = !self.indices.is_empty()
            && v.len() == self.last.len()
            && (std::ptr::eq(v.as_ptr(), self.last.as_ptr()) || v == self.last);
        if !same {
            self.last_index = self.intern(v);
            self.last = v;
        }
        self.indices.push(self.last_index);
    }

    fn intern(&mut self, v: &'a [u8]) -> u32 {
        // a lookup first: most values met again are already in (an entry
        // would build the insertion path into every lookup)
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let next = self.values.len() as u32;
        self.index.insert(v, next);
        self.values.push(v);
        self.page.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.page.extend_from_slice(v);
        self.longest = self.longest.max(v.len());
        next
    }

    /// The least and the greatest value, byte by byte.
    fn min_max(&self) -> Option<(&'a [u8], &'a [u8])> {
        let min = self.values.iter().copied().min()?;
        let max = self.values.iter().copied().max()?;
        Some((min, max))
    }
}

/// An integer column's statistics as `parquet` gives them for a signed type
/// (the deprecated min and max fields set too), and its min and max as the
/// column index holds them: 4 bytes little-endian for INT32, else 8.
fn signed_stats(
    low: i64,
    high: i64,
    nulls: usize,
    int32: bool,
) -> Option<(Statistics, Vec<u8>, Vec<u8>)> {
    let nulls = Some(nulls as u64);
    Some(if int32 {
        let (low, high) = (i32::try_from(low).ok()?, i32::try_from(high).ok()?);
        let stats = ValueStatistics::new(Some(low), Some(high), None, nulls, false);
        let stats = Statistics::Int32(stats.with_backwards_compatible_min_max(true));
        (
            stats,
            low.to_le_bytes().to_vec(),
            high.to_le_bytes().to_vec(),
        )
    } else {
        let stats = ValueStatistics::new(Some(low), Some(high), None, nulls, false);
        let stats = Statistics::Int64(stats.with_backwards_compatible_min_max(true));
        (
            stats,
            low.to_le_bytes().to_vec(),
            high.to_le_bytes().to_vec(),
        )
    })
}

/// The data page of a dictionary column: the indices' bit width, then the
/// indices (into `distinct` values) as [`Rle`] encodes them; `None` when
/// `parquet` would have started a second page (its estimate of the page
/// reached `limit`).
fn indices_page(distinct: usize, indices: &[u32], limit: usize) -> Option<Vec<u8>> {
    let width = bit_width(distinct.saturating_sub(1) as u64);
    let estimate = 1 + Rle::max_size(width, indices.len());
    if estimate >= limit {
        return None;
    }
    let mut out = Vec::with_capacity(estimate);
    out.push(width);
    let mut rle = Rle::new(width, out);
    for &i in indices {
        rle.put(u64::from(i));
    }
    Some(rle.finish())
}

/// How a v1 data page of an optional column starts: the levels' length,
/// then the levels (nothing for a required column, `levels` `None`).
fn put_levels(levels: Option<Rle>, out: &mut Vec<u8>) -> Option<()> {
    if let Some(levels) = levels {
        let levels = levels.finish();
        out.extend_from_slice(&u32::try_from(levels.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&levels);
    }
    Some(())
}

/// The dictionary of an integer column, as [`Dictionary`] is for strings:
/// the distinct values in the order they first came, each row's index.
#[derive(Debug)]
struct Numbers {
    values: Vec<i64>,
    index: HashMap<i64, u32, foldhash::fast::RandomState>,
    indices: Vec<u32>,
    /// The last row's value and index: `schema_version` is one value, and
    /// an order's items often repeat a quantity.
    last: i64,
    last_index: u32,
}

impl Numbers {
    fn new(rows: usize) -> Self {
        Numbers {
            values: Vec::new(),
            index: HashMap::default(),
            indices: Vec::with_capacity(rows),
            last: 0,
            last_index: 0,
        }
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    #[inline(always)]
    fn push(&mut self, v: i64) {
        if self.indices.is_empty() || v != self.last {
            let next = self.values.len() as u32;
            let i = *self.index.entry(v).or_insert(next);
            if i == next {
                self.values.push(v);
            }
            (self.last, self.last_index) = (v, i);
        }
        self.indices.push(self.last_index);
    }

    fn min_max(&self) -> Option<(i64, i64)> {
        Some((*self.values.iter().min()?, *self.values.iter().max()?))
    }

    /// The dictionary page, `PLAIN`: 4 bytes a value for INT32, else 8.
    fn page(&self, int32: bool) -> Option<Vec<u8>> {
        let mut page = Vec::with_capacity(self.values.len() * 8);
        for &v in &self.values {
            if int32 {
                page.extend_from_slice(&i32::try_from(v).ok()?.to_le_bytes());
            } else {
                page.extend_from_slice(&v.to_le_bytes());
            }
        }
        Some(page)
    }
}

fn bit_width(v: u64) -> u8 {
    (64 - v.leading_zeros()) as u8
}

/// Values in the RLE / bit-packed hybrid encoding, making the choices
/// `parquet`'s `RleEncoder` makes (so that the bytes are the same): values
/// are taken in groups of eight; a value repeated eight times or more
/// becomes a run (its count, then the value in whole bytes), anything else
/// is bit-packed, up to 63 groups under one indicator byte.
#[derive(Debug)]
struct Rle {
    width: u8,
    out: Vec<u8>,
    group: [u64; GROUP],
    buffered: usize,
    current: u64,
    repeats: usize,
    /// Values bit-packed under the open indicator byte.
    packed: usize,
    /// Where the open bit-packed run's indicator byte is.
    indicator: Option<usize>,
}

const GROUP: usize = 8;
const MOST_GROUPS: usize = 1 << 6;

impl Rle {
    fn new(width: u8, out: Vec<u8>) -> Self {
        Rle {
            width,
            out,
            group: [0; GROUP],
            buffered: 0,
            current: 0,
            repeats: 0,
            packed: 0,
            indicator: None,
        }
    }

    /// The most bytes `n` values of `width` bits can take (`parquet`'s
    /// estimate of a dictionary page's size).
    fn max_size(width: u8, n: usize) -> usize {
        let groups = n.div_ceil(GROUP);
        let packed = groups + groups * usize::from(width);
        let runs = groups * (1 + usize::from(width).div_ceil(8));
        packed.max(runs)
    }

    #[inline]
    fn put(&mut self, v: u64) {
        if self.current == v {
            self.repeats += 1;
            if self.repeats > GROUP {
                return;
            }
        } else {
            if self.repeats >= GROUP {
                self.end_run();
            }
            self.repeats = 1;
            self.current = v;
        }
        self.group[self.buffered] = v;
        self.buffered += 1;
        if self.buffered == GROUP {
            self.group_full();
        }
    }

    fn group_full(&mut self) {
        if self.repeats >= GROUP {
            // a run it is: the group's values are the run's
            self.buffered = 0;
            if self.packed > 0 {
                self.end_packed();
            }
            return;
        }
        self.packed += self.buffered;
        self.pack_group();
        if self.packed / GROUP + 1 >= MOST_GROUPS {
            self.end_packed();
        }
        self.repeats = 0;
    }

    fn end_run(&mut self) {
        put_uleb(&mut self.out, (self.repeats as u64) << 1);
        let bytes = self.current.to_le_bytes();
        self.out
            .extend_from_slice(&bytes[..usize::from(self.width).div_ceil(8)]);
        self.buffered = 0;
        self.repeats = 0;
    }

    /// Bit-packs the buffered group (eight values), LSB first, after the
    /// open run's indicator byte (reserved here when none is open).
    fn pack_group(&mut self) {
        if self.indicator.is_none() {
            self.indicator = Some(self.out.len());
            self.out.push(0);
        }
        let width = u32::from(self.width);
        if width <= 16 && self.buffered == GROUP {
            // eight values of up to 16 bits: one 128-bit word, `width` bytes
            let mut acc = 0u128;
            for (i, &v) in self.group.iter().enumerate() {
                acc |= u128::from(v) << (i as u32 * width);
            }
            // all sixteen bytes, then the unused cut: a fixed-size copy,
            // not a call to `memcpy` for `width` bytes
            let end = self.out.len() + self.width as usize;
            self.out.extend_from_slice(&acc.to_le_bytes());
            self.out.truncate(end);
            self.buffered = 0;
            return;
        }
        let (mut acc, mut bits) = (0u64, 0u32);
        for &v in &self.group[..self.buffered] {
            acc |= v << bits;
            bits += width;
            while bits >= 8 {
                self.out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        // eight values of any width end on a byte
        self.buffered = 0;
    }

    fn end_packed(&mut self) {
        if let Some(at) = self.indicator.take() {
            self.out[at] = (((self.packed / GROUP) << 1) | 1) as u8;
        }
        self.packed = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.packed > 0 || self.repeats > 0 || self.buffered > 0 {
            let all_repeats =
                self.packed == 0 && (self.repeats == self.buffered || self.buffered == 0);
            if self.repeats > 0 && all_repeats {
                self.end_run();
            } else {
                if self.buffered > 0 {
                    self.group[self.buffered..].fill(0);
                    self.buffered = GROUP;
                }
                self.packed += self.buffered;
                self.pack_group();
                self.end_packed();
            }
        }
        self.out
    }
}

/// The first eight bytes of `v`, big-endian, zeros after a shorter `v`: when
/// two values' prefixes differ, they order as the values do (a shorter value
/// that is a prefix of the other orders first either way), so only equal
/// prefixes need comparing in full.
#[inline(always)]
fn prefix(v: &[u8]) -> u64 {
    // one load for the values that matter (ids, timestamps, sequence
    // numbers are longer than 8 bytes); a byte loop, not a `memcpy` call
    // of a variable length, for the rest
    if let Some(head) = v.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    let mut bytes = [0u8; 8];
    for (b, &x) in bytes.iter_mut().zip(v) {
        *b = x;
    }
    u64::from_be_bytes(bytes)
}

/// `head` then the values in `data[front..]`: written into the free front
/// of `data` when it fits (no copy of the values), else copied together.
fn before(head: Vec<u8>, mut data: Vec<u8>, front: usize) -> Option<Bytes> {
    let values = data.get(front..)?;
    match front.checked_sub(head.len()) {
        Some(start) => {
            data.get_mut(start..front)?.copy_from_slice(&head);
            Some(Bytes::from(data).slice(start..))
        }
        None => {
            let mut out = head;
            out.extend_from_slice(values);
            Some(Bytes::from(out))
        }
    }
}

/// How many leading bytes `a` and `b` share, eight at a time (sequence
/// numbers of a shard share 40-odd).
fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (words_a, _) = a.as_chunks::<8>();
    let (words_b, _) = b.as_chunks::<8>();
    let mut at = 0;
    for (x, y) in words_a.iter().zip(words_b) {
        let differ = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
        if differ != 0 {
            return at + (differ.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a[at..]
        .iter()
        .zip(&b[at..])
        .take_while(|(x, y)| x == y)
        .count()
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

    /// The most bytes `finish` can give for `n` values: the header, and per
    /// block its smallest delta, the widths and 128 deltas of 32 bits.
    fn max_size(n: usize) -> usize {
        4 * 10 + n.div_ceil(BLOCK) * (10 + MINI_BLOCKS + BLOCK * 4)
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
            if width == 0 {
                // nothing to pack: identifiers of one length, all deltas 0
                continue;
            }
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

    /// Appends the encoded values to `out`.
    fn finish_into(mut self, out: &mut Vec<u8>) {
        self.flush_block();
        put_uleb(out, BLOCK as u64);
        put_uleb(out, MINI_BLOCKS as u64);
        put_uleb(out, self.total as u64);
        put_zigzag(out, i64::from(self.first.unwrap_or(0)));
        out.extend_from_slice(&self.blocks);
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

/// A compact-protocol field header: field id one more than the last, i32.
const I32_NEXT: u8 = 0x15;

fn put_i32_field(out: &mut Vec<u8>, v: i32) {
    out.push(I32_NEXT);
    put_uleb(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

/// A page header in thrift's compact protocol, as `parquet` writes it: the
/// page type, its size twice (uncompressed and stored), then the page's own
/// header, `inner`, `id_delta` field ids on (a struct), or `None` when the
/// sizes do not fit an i32.
fn page_header(
    page_type: i32,
    len: usize,
    id_delta: u8,
    inner: impl FnOnce(&mut Vec<u8>),
) -> Option<Vec<u8>> {
    const STRUCT: u8 = 0x0c;
    let len = i32::try_from(len).ok()?;
    let mut out = Vec::with_capacity(24);
    put_i32_field(&mut out, page_type);
    put_i32_field(&mut out, len);
    put_i32_field(&mut out, len);
    out.push((id_delta << 4) | STRUCT);
    inner(&mut out);
    out.push(0); // end of the inner header
    out.push(0); // end of the page header
    Some(out)
}

/// A data page v1 header: the values, the encoding, and RLE for the absent
/// levels (field 5, after an absent crc).
fn data_page_header(len: usize, values: usize, encoding: Encoding) -> Option<Vec<u8>> {
    let values = i32::try_from(values).ok()?;
    let (encoding, rle) = (encoding_id(encoding)?, encoding_id(Encoding::RLE)?);
    page_header(0, len, 2, |out| {
        put_i32_field(out, values);
        put_i32_field(out, encoding);
        put_i32_field(out, rle);
        put_i32_field(out, rle);
    })
}

/// A dictionary page header: the values, `PLAIN`, not sorted (field 7,
/// after the absent crc and the other pages' headers).
fn dictionary_page_header(len: usize, values: usize) -> Option<Vec<u8>> {
    const FALSE_NEXT: u8 = 0x12;
    let values = i32::try_from(values).ok()?;
    let plain = encoding_id(Encoding::PLAIN)?;
    page_header(2, len, 4, |out| {
        put_i32_field(out, values);
        put_i32_field(out, plain);
        out.push(FALSE_NEXT); // is_sorted
    })
}

/// The encoding's number in the format's thrift definition (`None` for
/// those this module never writes).
fn encoding_id(encoding: Encoding) -> Option<i32> {
    match encoding {
        Encoding::PLAIN => Some(0),
        Encoding::RLE => Some(3),
        Encoding::DELTA_LENGTH_BYTE_ARRAY => Some(6),
        Encoding::DELTA_BYTE_ARRAY => Some(7),
        Encoding::RLE_DICTIONARY => Some(8),
        _ => None,
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
        // every column zstd, so that the writers' pages are all recorded
        let mut declared = crate::lake::writer_properties(Codec::Zstd(1)).into_builder();
        for column in crate::lake::SMALL_DOMAIN_COLUMNS {
            declared = declared.set_column_compression(
                parquet::schema::types::ColumnPath::from(*column),
                Compression::ZSTD(Default::default()),
            );
        }
        let encoder = Encoder::with(
            declared.build(),
            crate::lake::properties_with(Compression::UNCOMPRESSED),
            true,
        );
        let mut compared = 0;
        for ((table, _, _), idx) in group_rows(&valid) {
            // every column through Arrow and parquet's writers
            let columns = build_columns(&valid, table, &idx, &[]).expect("columns");
            let arrow = build_columns(&valid, table, &idx, &[]).expect("columns");
            let n = crate::lake::columns::rows(&columns);
            let (_file, tasks) = start_file(columns, n, table, &encoder).expect("file");
            let setup = encoder.setup(table).expect("setup");
            let want = match table {
                Table::UserEvents => 14,
                Table::OrderEvents => 22,
                Table::OrderItems => 17,
            };
            assert_eq!(setup.direct.iter().flatten().count(), want);
            // and the direct columns as the archiver writes them
            let mut direct: Vec<_> = build_columns(&valid, table, &idx, &setup.direct)
                .expect("direct columns")
                .into_iter()
                .map(|built| match built {
                    Built::Direct(chunk) => Some(chunk),
                    Built::Arrow(_) | Built::Left => None,
                })
                .collect();
            for (c, ((mut writer, work, zstd), _cost)) in tasks.into_iter().enumerate() {
                let crate::lake::ColumnWork::Arrow(leaf) = work else {
                    panic!("column {c} not through Arrow");
                };
                let descr = setup.schema.column(c);
                let Some((ours, close)) = direct[c].take().map(|chunk| *chunk) else {
                    // a column with a plan left to `parquet` (and built
                    // through Arrow): here, only a column of nulls
                    if setup.direct[c].is_some() {
                        let Built::Arrow(array) = &arrow[c] else {
                            panic!("{} built directly", descr.name());
                        };
                        assert_eq!(array.null_count(), array.len(), "{}", descr.name());
                    }
                    continue;
                };
                let (pages, _) = zstd.expect("recorded");
                writer.write(&leaf).expect("write");
                let chunk = writer.close().expect("close");
                let theirs = zstd_chunks::take(&pages);
                let name = format!("{}.{}", table.name(), descr.name());
                assert_eq!(ours.len(), theirs.len(), "{name}: blobs");
                for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                    assert_eq!(a, b, "{name}: blob {i} (page headers and data in turn)");
                }
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
        // 13 columns in user_events, 17 in order_events, 12 in order_items
        assert_eq!(compare(3000, 7), 53);
        // a single row (its null columns are left to `parquet`)
        assert!(compare(1, 2) >= 9);
    }

    /// The archiver's plan for `table`'s column `name`.
    fn plan_of(table: Table, name: &str) -> Plan {
        let encoder = Encoder::new(Codec::Zstd(1));
        let setup = encoder.setup(table).expect("setup");
        setup
            .schema
            .columns()
            .iter()
            .position(|d| d.name() == name)
            .and_then(|c| setup.direct[c].clone())
            .unwrap_or_else(|| panic!("no plan for {}.{name}", table.name()))
    }

    #[test]
    fn min_and_max_are_those_of_the_bytes() {
        let event_id = plan_of(Table::UserEvents, "event_id");
        // and `DELTA_BYTE_ARRAY`'s, whose max follows the shared prefixes
        let sequence_number = plan_of(Table::UserEvents, "sequence_number");
        assert_eq!(sequence_number.layout, Layout::DeltaBytes);
        for plan in [event_id, sequence_number] {
            min_and_max_with(&plan);
        }
    }

    fn min_and_max_with(plan: &Plan) {
        let plan = plan.clone();
        // shared and short prefixes, NULs, bytes above 0x7f, empty values;
        // the max repeated, cut short, extended, passed after a drop
        let sets: [&[&str]; 10] = [
            &["abcdefgh_b", "abcdefgh_a", "abcdefgh_ab", "abcdefgh_a"],
            &["b", "ab", "abc", "a", "abcdefgh", "abcdefgh\0", "abcdefgh"],
            &["abcdefghij", "abcdefghi", "abcdefgh", "abcdefghz", "ab\0"],
            &["\u{e9}t\u{e9}", "zzzzzzzz", "zzzzzzzz\u{e9}", "", "\0\0"],
            &["0000000000000000000000000000000000000000000000000000000003"; 3],
            &["x"],
            &["5", "55", "5", "55", "555", "54", "556", "5560", "556"],
            &["a", "a", "a", "b", "b", "a", "c", "", "c"],
            &[
                "abcdefghij1",
                "abcdefghij2",
                "abcdefghij2",
                "abcdefghij",
                "abcdefghij3",
                "abcdefghij20",
                "abcdefghij31",
            ],
            &[
                "4959000000000099",
                "4959000000000100",
                "4959000000000099",
                "4959000000000101",
            ],
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

    /// The pages `ArrowWriter` writes for a string column `v` of `values`.
    fn pages_parquet_writes(
        values: &[String],
        props: &WriterProperties,
    ) -> Vec<parquet::column::page::Page> {
        let values: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
        optional_pages_parquet_writes("v", &values, props)
    }

    /// The pages `ArrowWriter` writes for a string column `name` of
    /// `values`, optional when one is `None`.
    fn optional_pages_parquet_writes(
        name: &str,
        values: &[Option<&str>],
        props: &WriterProperties,
    ) -> Vec<parquet::column::page::Page> {
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let array: ArrayRef = std::sync::Arc::new(StringArray::from(values.to_vec()));
        let batch = RecordBatch::try_from_iter([(name, array)]).expect("batch");
        let mut file = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), Some(props.clone()))
                .expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let reader = SerializedFileReader::new(Bytes::from(file)).expect("file");
        reader
            .get_row_group(0)
            .expect("row group")
            .get_column_page_reader(0)
            .expect("pages")
            .collect::<Result<_, _>>()
            .expect("read")
    }

    #[test]
    fn dictionaries_and_their_indices_are_what_parquet_writes() {
        use parquet::column::page::Page;
        let props = WriterProperties::builder()
            .set_dictionary_enabled(true)
            .build();
        let mut seed = 0x2545_f491_u64;
        let mut random = |below: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % below
        };
        // (distinct values, run lengths): runs of 7, 8 and 9 around the
        // eight-value groups, one value throughout (width 0), bit-packed
        // stretches past 63 groups, runs cut by the end of the page
        let patterns: Vec<(u64, Vec<usize>)> = vec![
            (1, vec![1]),
            (1, vec![5000]),
            (2, vec![7, 8, 9, 1, 1, 16, 3]),
            (3, vec![1; 700]),
            (5, (0..400).map(|i| [1, 7, 8, 9, 2, 15][i % 6]).collect()),
            (300, vec![1; 3000]),
            (70_000, vec![1; 9000]),
            (40, (0..2000).map(|_| 1 + random(12) as usize).collect()),
        ];
        for (distinct, runs) in patterns {
            let mut values = Vec::new();
            for run in runs {
                let v = format!("v-{}", random(distinct));
                values.extend(std::iter::repeat_n(v, run));
            }
            let pages = pages_parquet_writes(&values, &props);
            let [
                Page::DictionaryPage {
                    buf: dictionary, ..
                },
                Page::DataPage { buf: data, .. },
            ] = &pages[..]
            else {
                panic!(
                    "{} values: not one dictionary and one data page",
                    values.len()
                );
            };
            let mut ours = Dictionary::new(values.len());
            for v in &values {
                ours.push(v.as_bytes());
            }
            assert_eq!(&ours.page[..], &dictionary[..], "{} values", values.len());
            let indices = indices_page(ours.len(), &ours.indices, usize::MAX).expect("one page");
            let first_difference = data.iter().zip(&indices).position(|(a, b)| a != b);
            assert_eq!(
                (data.len(), first_difference),
                (indices.len(), None),
                "{} values, {} distinct",
                values.len(),
                ours.len()
            );
        }
    }

    #[test]
    fn optional_columns_levels_are_what_parquet_writes() {
        use parquet::column::page::Page;
        // `channel` of user_events: optional, dictionary-encoded
        let plan = plan_of(Table::UserEvents, "channel");
        let props = crate::lake::properties_with(Compression::UNCOMPRESSED);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = |below: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % below
        };
        let words = ["web", "ios", "android", "partner"];
        // (null runs, value runs): lone nulls, runs of 7/8/9 nulls around the
        // level groups, long stretches either way, nulls first and last
        let shapes: [(u64, u64); 5] = [(1, 1), (2, 12), (10, 3), (40, 40), (1, 600)];
        for (nulls_up_to, values_up_to) in shapes {
            let mut values: Vec<Option<&str>> = Vec::new();
            while values.len() < 3000 {
                values.extend(std::iter::repeat_n(None, 1 + random(nulls_up_to) as usize));
                for _ in 0..1 + random(values_up_to) {
                    values.push(Some(words[random(4) as usize]));
                }
            }
            let mut page = super::Page::new(&plan, values.len());
            for v in &values {
                match v {
                    Some(v) => page.push_text(v),
                    None => page.push_null(),
                }
            }
            let (ours, close) = *page.finish().expect("one page");
            let theirs = optional_pages_parquet_writes("channel", &values, &props);
            let [
                Page::DictionaryPage {
                    buf: dictionary, ..
                },
                Page::DataPage { buf: data, .. },
            ] = &theirs[..]
            else {
                panic!("not one dictionary and one data page");
            };
            // our blobs: data page header and data, dictionary header and page
            assert_eq!(
                &ours[1][..],
                &data[..],
                "levels and indices, shape {nulls_up_to}/{values_up_to}"
            );
            assert_eq!(&ours[3][..], &dictionary[..]);
            let nulls = values.iter().filter(|v| v.is_none()).count();
            let stats = close.metadata.statistics().expect("statistics");
            assert_eq!(stats.null_count_opt(), Some(nulls as u64));
            assert_eq!(
                close
                    .metadata
                    .definition_level_histogram()
                    .map(|h| h.values().to_vec()),
                Some(vec![nulls as i64, (values.len() - nulls) as i64])
            );
        }
    }

    #[test]
    fn what_goes_before_the_values_is_the_same_with_room_or_without() {
        let values = b"0123456789";
        for front in [0usize, 2, 3, 8] {
            let mut data = vec![0xee; front];
            data.extend_from_slice(values);
            let page = before(b"abc".to_vec(), data, front).expect("page");
            assert_eq!(&page[..], b"abc0123456789", "{front} bytes free");
        }
        assert_eq!(
            before(b"abc".to_vec(), vec![0; 2], 3),
            None,
            "front past the end"
        );
    }

    #[test]
    fn shared_prefixes_are_what_parquet_writes() {
        use parquet::column::page::Page as ParquetPage;
        use parquet::schema::types::ColumnPath;
        let plan = plan_of(Table::OrderItems, "sequence_number");
        assert_eq!(plan.layout, Layout::DeltaBytes);
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_column_encoding(ColumnPath::from("v"), Encoding::DELTA_BYTE_ARRAY)
            .build();
        let mut seed = 0x51_7cc1_b727_u64;
        let mut random = |below: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % below
        };
        // sequence numbers rising by small and large steps (shared prefixes
        // of 7 to 55 bytes, across the 8-byte words), and values that are
        // empty, equal, a prefix of the one before, or share nothing
        let rising: Vec<String> = {
            let mut n = 0u64;
            (0..3000)
                .map(|i| {
                    n += if i % 97 == 0 {
                        1 << 40
                    } else {
                        1 + random(300)
                    };
                    format!("4959{:012}{n:040}", i / 1000)
                })
                .collect()
        };
        let odd: Vec<String> = [
            "",
            "",
            "a",
            "ab",
            "a",
            "abcdefgh",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh",
            "b",
            "",
            "abcdefghijklmnopq",
            "abcdefghijklmnopz",
            "zbcdefghijklmnopz",
            "\0",
            "\0\0",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        let short: Vec<String> = (0..1000).map(|_| "xy".repeat(random(6) as usize)).collect();
        for values in [rising, odd, short, vec!["x".repeat(64)]] {
            let pages = pages_parquet_writes(&values, &props);
            let [ParquetPage::DataPage { buf: theirs, .. }] = &pages[..] else {
                panic!("{} values: not one data page", values.len());
            };
            let mut page = Page::new(&plan, values.len());
            for v in &values {
                page.push_text(v);
            }
            let (blobs, close) = *page.finish().expect("one page");
            let ours = &blobs[1];
            let first_difference = theirs.iter().zip(ours).position(|(a, b)| a != b);
            assert_eq!(
                (theirs.len(), first_difference),
                (ours.len(), None),
                "{} values",
                values.len()
            );
            let whole: usize = values.iter().map(String::len).sum();
            assert_eq!(
                close.metadata.unencoded_byte_array_data_bytes(),
                Some(whole as i64)
            );
        }
    }

    #[test]
    fn delta_lengths_are_what_parquet_writes() {
        use parquet::column::page::Page;
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
            let mut pages = pages_parquet_writes(&values, &props).into_iter();
            let Some(Page::DataPage { buf, .. }) = pages.next() else {
                panic!("no data page for {n} values");
            };
            let mut lengths = DeltaLengths::new(n);
            for v in &values {
                lengths.push(v.len() as i32);
            }
            let mut ours = Vec::new();
            lengths.finish_into(&mut ours);
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
