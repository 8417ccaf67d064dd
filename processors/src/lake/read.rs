//! Reading the lake back: for reconciliation in the main job and for tools.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{BooleanArray, RecordBatch};
use bytes::Bytes;
use md5::{Digest, Md5};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use pipeline_schemas::lake::Table;

use crate::store::{ObjectStore, StoreError};

/// Row counts of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Parquet files.
    pub files: usize,
    /// Rows, duplicates included.
    pub rows: usize,
    /// Rows after de-duplication (by `event_id`, plus `line_number` for items).
    pub unique_rows: usize,
    /// Unique rows by `event_type`.
    pub by_event_type: BTreeMap<String, usize>,
}

/// Remembers the rows seen so far: the de-duplication rule of every lake
/// reader here (counts, compaction, reconciliation). A row is its
/// `event_id`, plus `line_number` in `order_items` (one event, many lines).
/// A row is kept as one 128-bit key, not as a `String` (compaction holds
/// every row of an hour's partition, millions at high traffic): 17 bytes a
/// slot in the set, 19-39 bytes a row with the set's spare room.
#[derive(Debug)]
pub struct FirstSeen {
    seen: HashSet<u128>,
    /// Odd and drawn at random for each set: a line number moves the key by
    /// a multiple of it, so two different rows share a key with a chance of
    /// about 2^-127, and no producer can choose ids that make them share one.
    line_step: u128,
}

impl Default for FirstSeen {
    fn default() -> Self {
        let random = std::collections::hash_map::RandomState::new();
        let (hi, lo) = (random.hash_one(1u8), random.hash_one(2u8));
        FirstSeen {
            seen: HashSet::new(),
            line_step: (u128::from(hi) << 64 | u128::from(lo)) | 1,
        }
    }
}

/// 128 bits that stand for an `event_id` string: a UUID in canonical
/// lowercase form is its own 128 bits; any other string (uppercase hex,
/// which the contract also accepts, is a different string to every SQL
/// reader) its MD5 digest. Two different strings collide with a probability
/// of about 2^-128.
fn id_bits(id: &str) -> u128 {
    let b = id.as_bytes();
    match pipeline_schemas::rules::uuid_halves(b) {
        Some((hi, lo)) if !b.iter().any(u8::is_ascii_uppercase) => {
            u128::from(hi) << 64 | u128::from(lo)
        }
        _ => u128::from_be_bytes(Md5::digest(b).into()),
    }
}

impl FirstSeen {
    /// The key of a row: the id's bits, moved by `line_step` times the line
    /// number (as unsigned, so every `i32` is a different multiple).
    fn key(&self, id: &str, line: Option<i32>) -> u128 {
        let line = line.map_or(0, |l| u128::from(l.cast_unsigned()) + 1);
        id_bits(id).wrapping_add(line.wrapping_mul(self.line_step))
    }

    /// `true` for the rows of `batch` not seen before (and remembers them).
    pub fn mask(&mut self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        self.mask_where(batch, |_| true)
    }

    /// Forgets every row (keeping the set's room and the key scheme, so
    /// that a row has the same key in the next pass).
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    /// Rows remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// `true` when no row is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Like [`FirstSeen::mask`], for the rows whose key `wanted` accepts
    /// only: the others are `false` and not remembered. Compaction keeps
    /// one range of keys a pass when a partition's would not fit in memory.
    pub fn mask_where(
        &mut self,
        batch: &RecordBatch,
        wanted: impl Fn(u128) -> bool,
    ) -> Result<BooleanArray, String> {
        // a file of the lake is input: a column of another type is an
        // error naming it, not a panic
        let ids = batch
            .column_by_name("event_id")
            .ok_or("no event_id column")?
            .as_string_opt::<i32>()
            .ok_or("event_id is not a string column")?;
        let lines = match batch.column_by_name("line_number") {
            None => None,
            Some(c) => Some(
                c.as_primitive_opt::<Int32Type>()
                    .ok_or("line_number is not an int32 column")?,
            ),
        };
        Ok((0..batch.num_rows())
            .map(|r| {
                let key = self.key(ids.value(r), lines.map(|l| l.value(r)));
                Some(wanted(key) && self.seen.insert(key))
            })
            .collect())
    }
}

impl TableCounts {
    /// Adds a batch whose first-seen rows are `mask`.
    pub fn add(&mut self, batch: &RecordBatch, mask: &BooleanArray) -> Result<(), String> {
        let types = batch
            .column_by_name("event_type")
            .ok_or("no event_type column")?
            .as_string_opt::<i32>()
            .ok_or("event_type is not a string column")?;
        self.rows += batch.num_rows();
        for row in (0..batch.num_rows()).filter(|&r| mask.value(r)) {
            self.unique_rows += 1;
            *self
                .by_event_type
                .entry(types.value(row).to_owned())
                .or_insert(0) += 1;
        }
        Ok(())
    }
}

/// Reads every Parquet file of the lake once, handing each batch and the
/// mask of its rows not seen before in that table to `visit`. Returns the
/// number of files per table.
pub async fn scan_lake<S: ObjectStore>(
    store: &S,
    mut visit: impl FnMut(Table, &RecordBatch, &BooleanArray) -> Result<(), String>,
) -> Result<BTreeMap<&'static str, usize>, StoreError> {
    let mut files = BTreeMap::new();
    for table in Table::ALL {
        let mut first = FirstSeen::default();
        let mut n = 0;
        for key in store.list(&format!("{}/", table.name())).await? {
            if !key.ends_with(".parquet") {
                continue;
            }
            let Some(bytes) = store.get(&key).await? else {
                continue;
            };
            n += 1;
            let bad = |e: String| StoreError::Permanent(format!("{key}: {e}"));
            for batch in read_parquet(bytes).map_err(bad)? {
                let mask = first.mask(&batch).map_err(bad)?;
                visit(table, &batch, &mask).map_err(bad)?;
            }
        }
        files.insert(table.name(), n);
    }
    Ok(files)
}

/// Counts every table's rows, as an analyst de-duplicating by `event_id` would.
pub async fn count_lake<S: ObjectStore>(
    store: &S,
) -> Result<BTreeMap<&'static str, TableCounts>, StoreError> {
    let mut out: BTreeMap<&'static str, TableCounts> = BTreeMap::new();
    let files = scan_lake(store, |table, batch, mask| {
        out.entry(table.name()).or_default().add(batch, mask)
    })
    .await?;
    for (table, n) in files {
        out.entry(table).or_default().files = n;
    }
    Ok(out)
}

/// Decodes a Parquet object into record batches.
pub fn read_parquet(bytes: Bytes) -> Result<Vec<arrow_array::RecordBatch>, String> {
    parquet_batches(bytes)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// The record batches of a Parquet object, decoded one at a time as they are
/// taken: a reader holds one batch of the file in Arrow form, not all of it.
pub fn parquet_batches(bytes: Bytes) -> Result<ParquetRecordBatchReader, String> {
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())
}

/// The row identity columns of a Parquet object (`event_id`, and
/// `line_number` where the table has it), without decoding the others: what
/// de-duplication against a file needs.
pub fn identity_batches(bytes: Bytes) -> Result<ParquetRecordBatchReader, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let fields = builder.parquet_schema().root_schema().get_fields();
    let wanted = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.name(), "event_id" | "line_number"))
        .map(|(i, _)| i);
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_uuid_bits_and_other_strings_stay_distinct() {
        let id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
        assert_eq!(id_bits(id), 0x7c9e6679_7425_40de_944b_e07fc1f90ae7);
        // uppercase is another string to a SQL reader, so another row here
        assert_ne!(id_bits(&id.to_uppercase()), id_bits(id));
        assert_ne!(id_bits("not-a-uuid"), id_bits("not-a-uuid!"));
        assert_eq!(id_bits("not-a-uuid"), id_bits("not-a-uuid"));
    }

    fn batch(ids: &[&str], lines: Option<&[i32]>) -> RecordBatch {
        let mut columns: Vec<(&str, arrow_array::ArrayRef)> = vec![(
            "event_id",
            std::sync::Arc::new(arrow_array::StringArray::from(ids.to_vec())),
        )];
        if let Some(lines) = lines {
            columns.push((
                "line_number",
                std::sync::Arc::new(arrow_array::Int32Array::from(lines.to_vec())),
            ));
        }
        RecordBatch::try_from_iter(columns).expect("batch")
    }

    #[test]
    fn a_row_is_its_event_id_and_line_number() {
        let (a, b) = (
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "7c9e6679-7425-40de-944b-e07fc1f90ae8",
        );
        let mut first = FirstSeen::default();
        let items = batch(&[a, a, a, b, a, a], Some(&[1, 2, 1, 1, -1, i32::MAX]));
        let mask = first.mask(&items).expect("mask");
        let want = [true, true, false, true, true, true];
        assert_eq!(mask.iter().collect::<Vec<_>>(), want.map(Some));
        // seen in an earlier batch: a retry's rows
        let again = first.mask(&batch(&[b, a], Some(&[1, 3]))).expect("mask");
        assert_eq!(again.iter().collect::<Vec<_>>(), [Some(false), Some(true)]);

        let mut events = FirstSeen::default();
        let mask = events.mask(&batch(&[a, b, a], None)).expect("mask");
        assert_eq!(
            mask.iter().collect::<Vec<_>>(),
            [Some(true), Some(true), Some(false)]
        );
    }

    #[test]
    fn a_file_with_wrong_typed_identity_columns_is_an_error_not_a_panic() {
        let ints: arrow_array::ArrayRef =
            std::sync::Arc::new(arrow_array::Int32Array::from(vec![1]));
        let bad_ids = RecordBatch::try_from_iter([("event_id", ints)]).expect("batch");
        assert!(FirstSeen::default().mask(&bad_ids).is_err());
        let strings: arrow_array::ArrayRef =
            std::sync::Arc::new(arrow_array::StringArray::from(vec!["a"]));
        let bad_lines =
            RecordBatch::try_from_iter([("event_id", strings.clone()), ("line_number", strings)])
                .expect("batch");
        assert!(FirstSeen::default().mask(&bad_lines).is_err());
    }
}
