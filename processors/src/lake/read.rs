//! Reading the lake back: for reconciliation in the main job and for tools.

use std::collections::{BTreeMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{BooleanArray, RecordBatch};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
#[derive(Debug, Default)]
pub struct FirstSeen {
    seen: HashSet<(String, i32)>,
}

impl FirstSeen {
    /// `true` for the rows of `batch` not seen before (and remembers them).
    pub fn mask(&mut self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        let ids = batch
            .column_by_name("event_id")
            .ok_or("no event_id column")?
            .as_string::<i32>();
        let lines = batch
            .column_by_name("line_number")
            .map(|c| c.as_primitive::<Int32Type>());
        Ok((0..batch.num_rows())
            .map(|r| {
                let line = lines.map_or(-1, |l| l.value(r));
                Some(self.seen.insert((ids.value(r).to_owned(), line)))
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
            .as_string::<i32>();
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
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}
