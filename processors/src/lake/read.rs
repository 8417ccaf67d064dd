//! Reading the lake back: for reconciliation in the main job and for tools.

use std::collections::{BTreeMap, HashSet};

use arrow_array::cast::AsArray;
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

/// Counts every table's rows, as an analyst de-duplicating by `event_id` would.
pub async fn count_lake<S: ObjectStore>(
    store: &S,
) -> Result<BTreeMap<&'static str, TableCounts>, StoreError> {
    let mut out = BTreeMap::new();
    for table in Table::ALL {
        let mut counts = TableCounts::default();
        let mut seen: HashSet<(String, i32)> = HashSet::new();
        for key in store.list(&format!("{}/", table.name())).await? {
            if !key.ends_with(".parquet") {
                continue;
            }
            let Some(bytes) = store.get(&key).await? else {
                continue;
            };
            counts.files += 1;
            for batch in
                read_parquet(bytes).map_err(|e| StoreError::Permanent(format!("{key}: {e}")))?
            {
                let ids = batch
                    .column_by_name("event_id")
                    .map(|c| c.as_string::<i32>().clone());
                let types = batch
                    .column_by_name("event_type")
                    .map(|c| c.as_string::<i32>().clone());
                let lines = batch
                    .column_by_name("line_number")
                    .map(|c| c.as_primitive::<arrow_array::types::Int32Type>().clone());
                let (Some(ids), Some(types)) = (ids, types) else {
                    continue;
                };
                for row in 0..batch.num_rows() {
                    counts.rows += 1;
                    let line = lines.as_ref().map_or(0, |l| l.value(row));
                    if seen.insert((ids.value(row).to_owned(), line)) {
                        counts.unique_rows += 1;
                        *counts
                            .by_event_type
                            .entry(types.value(row).to_owned())
                            .or_insert(0) += 1;
                    }
                }
            }
        }
        out.insert(table.name(), counts);
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
