//! The `lake-compactor` Lambda (EventBridge schedule, hourly): merges the
//! small files the archiver writes (one per invocation and partition) into
//! files of about `COMPACT_FILE_MB` (default 128; files of a quarter of that
//! or more are left alone), dropping duplicate `event_id`s from retries, for
//! the partitions of the last `COMPACT_HOURS` hours (default 3). A partition
//! whose row keys would need more than `COMPACT_KEYS_MB` (default 1,024) is
//! compacted in several passes. Configured by
//! `LAKE_URI` (and `KMS_KEY_ID` for SSE-KMS). A manual invocation may widen or
//! move the window for a backfill: `{"hours": 48}`, or
//! `{"start": "2026-11-20T00:00:00Z", "hours": 24}`.
//!
//! Readers are never affected: the merged files are written before their inputs
//! are deleted, and every query de-duplicates by `event_id` (see
//! `pipeline_processors::lake::compact`).

#![recursion_limit = "256"]

use anyhow::Context as _;
use bytes::Bytes;
use pipeline_processors::config::{AnyStore, Location};
use pipeline_processors::lake::compact::{CompactionSizes, compact_hours};
use pipeline_processors::runtime::{init_json_logs, now_ms, run_raw};
use pipeline_processors::settings::number;
use pipeline_schemas::lake::Table;
use serde_json::{Value, json};

/// The most hours one invocation compacts (a week).
const MAX_HOURS: i64 = 168;

/// Merged files' sizes, MB: from 1 (tests) to 1,024 (Athena's gain ends
/// well before; a merged file is held in memory until it is stored).
const FILE_MB: std::ops::RangeInclusive<u64> = 1..=1024;

/// The hours to compact, `(first, last)` in epoch milliseconds: the last
/// `default` hours up to `now`, unless the event asks for another window.
fn window_of(body: &Bytes, default: i64, now: i64) -> Result<(i64, i64), String> {
    let event = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let hours = match event.get("hours") {
        None => default,
        Some(v) => v
            .as_i64()
            .filter(|h| (1..=MAX_HOURS).contains(h))
            .ok_or_else(|| {
                format!("\"hours\" must be an integer from 1 to {MAX_HOURS}, got {v}")
            })?,
    };
    match event.get("start") {
        None => Ok((now - (hours - 1) * 3_600_000, now)),
        Some(v) => {
            let start = v
                .as_str()
                .and_then(pipeline_schemas::rules::parse_rfc3339_utc_ms)
                .ok_or_else(|| format!("\"start\" must be an RFC 3339 UTC time, got {v}"))?;
            Ok((start, start + (hours - 1) * 3_600_000))
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_json_logs();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let lake = Location::parse("LAKE_URI", &var("LAKE_URI").context("LAKE_URI is not set")?)?;
    let hours = number(&var, "COMPACT_HOURS", 3, 1..=MAX_HOURS)?;
    let sizes = CompactionSizes::with_target(
        number(
            &var,
            "COMPACT_FILE_MB",
            CompactionSizes::DEFAULT_TARGET_MB,
            FILE_MB,
        )? << 20,
    )
    .with_keys_mb(number(
        &var,
        "COMPACT_KEYS_MB",
        CompactionSizes::DEFAULT_KEYS_MB,
        CompactionSizes::KEYS_MB,
    )?);
    let path_style = var("S3_FORCE_PATH_STYLE").as_deref() == Some("true");
    let store = AnyStore::open(&lake, var("KMS_KEY_ID"), path_style).await;
    run_raw(move |body, _context| {
        let store = store.clone();
        async move {
            let (from, to) = window_of(&body, hours, now_ms())?;
            let (mut partitions, mut files_in, mut files_out, mut rows_in, mut rows_out) =
                (0, 0, 0, 0, 0);
            // more than one: some hour needed more than COMPACT_KEYS_MB
            let mut most_passes = 1;
            for table in Table::ALL {
                for c in compact_hours(&store, table, from, to, sizes).await? {
                    tracing::info!(partition = %c.partition, files_in = c.files_in, files_out = c.keys.len(),
                        files_kept = c.files_kept, rows_in = c.rows_in, rows_out = c.rows_out,
                        passes = c.passes, "compacted");
                    partitions += 1;
                    files_in += c.files_in;
                    files_out += c.keys.len();
                    rows_in += c.rows_in;
                    rows_out += c.rows_out;
                    most_passes = most_passes.max(c.passes);
                }
            }
            tracing::info!(from, to, partitions, files_in, files_out, rows_in, rows_out, most_passes,
                "compaction run");
            Ok(json!({
                "partitions": partitions, "files_in": files_in, "files_out": files_out,
                "rows_in": rows_in, "duplicates_removed": rows_in - rows_out,
                "most_passes": most_passes
            }))
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_may_move_or_widen_the_window_within_limits() {
        let now = 1_764_072_000_000; // 2025-11-25T12:00:00Z
        let w = |body: &'static [u8]| window_of(&Bytes::from_static(body), 3, now);
        assert_eq!(w(b"{}"), Ok((now - 2 * 3_600_000, now)));
        assert_eq!(w(b"{\"source\":\"aws.events\"}"), w(b"{}"));
        assert_eq!(w(b"{\"hours\":48}"), Ok((now - 47 * 3_600_000, now)));
        assert_eq!(
            w(b"{\"start\":\"2025-11-20T00:00:00Z\",\"hours\":24}"),
            Ok((1_763_596_800_000, 1_763_596_800_000 + 23 * 3_600_000))
        );
        assert!(w(b"{\"hours\":0}").is_err());
        assert!(w(b"{\"hours\":\"x\"}").is_err());
        assert!(w(b"{\"hours\":1000}").is_err());
        assert!(w(b"{\"start\":\"yesterday\"}").is_err());
    }
}
