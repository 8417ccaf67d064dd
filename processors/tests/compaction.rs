//! Compaction over a real (local) lake written by the archiver: small files
//! merged into files of the target size, retry duplicates dropped, big files
//! never rewritten, scheduled runs limited to their hours, and a run that
//! stopped between writing and deleting repaired by the next.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use pipeline_generator::kinesis::KinesisRecord;
use pipeline_processors::LocalStore;
use pipeline_processors::lake::compact::{
    Compacted, CompactionSizes, compact_hours, compact_table,
};
use pipeline_processors::lake::read::{TableCounts, count_lake};
use pipeline_processors::store::ObjectStore;
use pipeline_schemas::lake::Table;

/// Archives `chunks` as one invocation each into the lake under `root`.
async fn archive<'a>(root: &Path, chunks: impl IntoIterator<Item = &'a [KinesisRecord]>) {
    let mut p = local_archiver(root);
    for chunk in chunks {
        let out = p
            .process(&mut payload(chunk), deadline())
            .await
            .expect("batch");
        assert!(out.response.batch_item_failures.is_empty());
    }
}

/// A lake of 100-record files from `events` generated records, and its
/// counts before any compaction.
async fn small_file_lake(
    events: usize,
    seed: u64,
    name: &str,
) -> (
    Vec<KinesisRecord>,
    TestDir,
    LocalStore,
    BTreeMap<&'static str, TableCounts>,
) {
    let records = shard_records(events, seed, 0.0);
    let root = temp_dir(name);
    archive(&root, records.chunks(100)).await;
    let store = LocalStore::new(root.join("lake"));
    let before = count_lake(&store).await.expect("count");
    (records, root, store, before)
}

/// Compacts every table; returns what was done.
async fn compact_all(store: &LocalStore, sizes: CompactionSizes) -> Vec<Compacted> {
    let mut done = Vec::new();
    for table in Table::ALL {
        done.extend(compact_table(store, table, sizes).await.expect("compacted"));
    }
    done
}

/// Every Parquet file of the lake with its size.
async fn sizes(store: &LocalStore) -> BTreeMap<String, u64> {
    store
        .list_sized("")
        .await
        .expect("list")
        .into_iter()
        .filter(|l| l.key.ends_with(".parquet"))
        .map(|l| (l.key, l.size))
        .collect()
}

/// Nothing lost against `before` and no duplicate left, table by table.
fn assert_whole_and_unique(
    after: &BTreeMap<&'static str, TableCounts>,
    before: &BTreeMap<&'static str, TableCounts>,
) {
    for (table, counts) in after {
        assert_eq!(
            counts.rows, counts.unique_rows,
            "{table}: no duplicates left"
        );
        assert_eq!(
            counts.unique_rows, before[table].unique_rows,
            "{table}: nothing lost"
        );
        assert_eq!(counts.by_event_type, before[table].by_event_type);
    }
}

#[tokio::test]
async fn compaction_merges_small_files_and_drops_retry_duplicates() {
    let records = shard_records(2000, 16, 0.0);
    let root = temp_dir("compact");
    // many small invocations, and a re-batched retry that duplicates rows
    archive(&root, records.chunks(150)).await;
    archive(&root, [&records[75..600]]).await;
    let store = LocalStore::new(root.join("lake"));
    let before = count_lake(&store).await.expect("count");
    assert!(
        before["order_events"].rows > before["order_events"].unique_rows,
        "duplicates present"
    );
    for table in Table::ALL {
        let done = compact_table(&store, table, CompactionSizes::default())
            .await
            .expect("compacted");
        assert!(!done.is_empty());
        for c in &done {
            assert!(c.files_in > 1 && c.rows_out <= c.rows_in);
            assert_eq!(c.keys.len(), 1, "small partitions become one file each");
        }
    }
    let after = count_lake(&store).await.expect("count");
    assert_whole_and_unique(&after, &before);
    for (table, counts) in &after {
        assert!(counts.files < before[table].files, "{table}: fewer files");
    }
    // idempotent: a second run finds one file per partition and does nothing
    assert!(
        compact_all(&store, CompactionSizes::default())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn merged_files_stop_at_the_target_size_and_big_files_are_never_rewritten() {
    let (records, root, store, before) = small_file_lake(6000, 23, "compact-target").await;
    // a target eight archiver files big, so that a partition's merge spans
    // several files and every archiver file is small
    let largest = sizes(&store).await.into_values().max().expect("files");
    let target = CompactionSizes::with_target(8 * largest);
    let done = compact_all(&store, target).await;
    assert!(
        done.iter().any(|c| c.keys.len() > 2),
        "the biggest partition became several files: {done:?}"
    );
    let merged = sizes(&store).await;
    for c in &done {
        let (last, full) = c.keys.split_last().expect("a file written");
        for key in full {
            assert!(
                merged[key] >= target.keep_bytes && merged[key] <= 2 * target.target_bytes,
                "{key}: {} bytes, target {}",
                merged[key],
                target.target_bytes
            );
        }
        assert!(merged.contains_key(last));
    }
    assert_whole_and_unique(&count_lake(&store).await.expect("count"), &before);
    // a second run has at most one small file a partition: nothing to do
    assert!(compact_all(&store, target).await.is_empty());
    // late duplicates of rows the big files hold (a retry re-batched after
    // compaction): merged and dropped, the big files left byte for byte
    let big: BTreeMap<String, u64> = merged
        .into_iter()
        .filter(|(k, size)| k.starts_with("order_events/") && *size >= target.keep_bytes)
        .collect();
    assert!(!big.is_empty());
    archive(&root, records[50..650].chunks(100)).await;
    for table in Table::ALL {
        let done = compact_table(&store, table, target)
            .await
            .expect("compacted");
        assert!(!done.is_empty());
        for c in done.iter().filter(|_| table == Table::OrderEvents) {
            assert!(c.files_kept > 0, "{c:?}");
            assert!(c.rows_out < c.rows_in, "duplicates dropped: {c:?}");
        }
    }
    let after = sizes(&store).await;
    for (key, size) in &big {
        assert_eq!(after.get(key), Some(size), "{key} untouched");
    }
    assert_whole_and_unique(&count_lake(&store).await.expect("count"), &before);
}

#[tokio::test]
async fn a_run_that_stopped_before_deleting_its_inputs_is_repaired_by_the_next() {
    let (_, root, store, before) = small_file_lake(4000, 29, "compact-crash").await;
    let inputs = sizes(&store).await;
    let copy = temp_dir("compact-crash-inputs");
    for key in inputs.keys() {
        let to = copy.join(key);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("dir");
        std::fs::copy(root.join("lake").join(key), to).expect("copy");
    }
    let largest = inputs.values().copied().max().expect("files");
    let target = CompactionSizes::with_target(8 * largest);
    compact_all(&store, target).await;
    // the run stopped after storing its files, before deleting any input
    for key in inputs.keys() {
        std::fs::copy(copy.join(key), root.join("lake").join(key)).expect("restore");
    }
    let interrupted = count_lake(&store).await.expect("count");
    assert!(interrupted["order_events"].rows > interrupted["order_events"].unique_rows);
    let written = sizes(&store).await;
    compact_all(&store, target).await;
    assert_whole_and_unique(&count_lake(&store).await.expect("count"), &before);
    let after = sizes(&store).await;
    assert!(
        inputs.keys().all(|k| !after.contains_key(k)),
        "inputs deleted"
    );
    let big: Vec<_> = written
        .iter()
        .filter(|(_, s)| **s >= target.keep_bytes)
        .collect();
    assert!(!big.is_empty(), "the first run wrote files to keep");
    for (key, size) in big {
        assert_eq!(
            after.get(key),
            Some(size),
            "{key}: a big file is not rewritten"
        );
    }
}

#[tokio::test]
async fn scheduled_compaction_touches_only_the_hours_it_is_given() {
    // 3,000 events, one every 4 seconds: over three hours, so four partitions
    let records = pipeline_generator::generate(pipeline_generator::TrafficConfig {
        events: 3000,
        seed: 17,
        events_per_second: 0.25,
        poison: pipeline_generator::PoisonMix::uniform(0.0),
        max_record_bytes: 64 * 1024,
        ..Default::default()
    });
    let records = pipeline_generator::kinesis::route(&records, 1).remove(0);
    let root = temp_dir("compact-hours");
    archive(&root, records.chunks(200)).await;
    let store = LocalStore::new(root.join("lake"));
    let files = |keys: &[String], dir: &str| keys.iter().filter(|k| k.starts_with(dir)).count();
    let before = store.list("order_events/").await.expect("list");
    let mut partitions: Vec<String> = before
        .iter()
        .filter_map(|k| k.rsplit_once('/').map(|(d, _)| format!("{d}/")))
        .collect();
    partitions.dedup();
    assert!(
        partitions.len() >= 2,
        "the traffic spans several hours: {partitions:?}"
    );
    // the hour of the first partition, e.g. order_events/dt=2026-11-25/hour=14/
    let first = &partitions[0];
    let dt = &first["order_events/dt=".len().."order_events/dt=".len() + 10];
    let hour: i64 = first[first.len() - 3..first.len() - 1]
        .parse()
        .expect("hour");
    let days =
        pipeline_schemas::rules::parse_rfc3339_utc_ms(&format!("{dt}T00:00:00Z")).expect("date");
    let ms = days + hour * 3_600_000;
    let done = compact_hours(
        &store,
        Table::OrderEvents,
        ms,
        ms + 1,
        CompactionSizes::default(),
    )
    .await
    .expect("compacted");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(format!("{}/", done[0].partition), *first);
    let after = store.list("order_events/").await.expect("list");
    assert_eq!(files(&after, first), 1);
    for other in &partitions[1..] {
        assert_eq!(
            files(&after, other),
            files(&before, other),
            "{other} untouched"
        );
    }
}

#[tokio::test]
async fn a_partition_with_more_rows_than_memory_allows_is_compacted_in_passes() {
    let (records, root, store, before) = small_file_lake(4000, 31, "compact-passes").await;
    // a retry's duplicates, and a big file whose rows no pass may repeat
    archive(&root, records[100..900].chunks(200)).await;
    let largest = sizes(&store).await.into_values().max().expect("files");
    let mut bounded = CompactionSizes::with_target(4 * largest);
    bounded.max_keys = 400;
    let done = compact_all(&store, bounded).await;
    let rows = |table: &str| before[table].unique_rows;
    for c in &done {
        let table = c.partition.split('/').next().expect("table");
        if rows(table) > 2 * bounded.max_keys {
            assert!(c.passes > 1, "{c:?}");
        }
        assert!(c.rows_out < c.rows_in, "duplicates dropped: {c:?}");
    }
    assert!(done.iter().any(|c| c.passes >= 8), "{done:?}");
    assert_whole_and_unique(&count_lake(&store).await.expect("count"), &before);
    // what the passes left is merged again by a run with room for it all,
    // which repeats none of the rows
    compact_all(&store, CompactionSizes::with_target(4 * largest)).await;
    assert_whole_and_unique(&count_lake(&store).await.expect("count"), &before);
    // a bound no number of passes can meet is an error, not a loop
    archive(&root, records[..300].chunks(100)).await;
    let mut impossible = bounded;
    impossible.max_keys = 0;
    assert!(
        compact_table(&store, Table::OrderEvents, impossible)
            .await
            .is_err()
    );
}
