//! Reports over a lake in an object store (S3 in AWS): the partitions of the
//! last days are fetched to local scratch space (Lambda's `/tmp`), reported on
//! with the same SQL, and the outputs uploaded under a dated prefix. The
//! `report-generator` Lambda runs this on a schedule.

use std::path::Path;

use bytes::Bytes;
use pipeline_processors::{ObjectStore, PutOptions, StoreError};

use crate::{ReportError, run_reports, write_reports};

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRun {
    /// Lake objects fetched.
    pub objects_in: usize,
    /// Report objects written.
    pub objects_out: usize,
    /// Key of the HTML page in the output store.
    pub html_key: String,
}

fn store(e: StoreError) -> ReportError {
    ReportError::Query("object store", e.to_string())
}

/// Fetches `table/dt=<day>/...` for each of `days` (`YYYY-MM-DD`) from
/// `lake` and every letter from `letters`, runs the reports in `scratch`, and
/// writes them to `out` under `prefix`.
pub async fn run_remote<L: ObjectStore, D: ObjectStore, O: ObjectStore>(
    lake: &L,
    letters: Option<&D>,
    out: &O,
    days: &[String],
    prefix: &str,
    scratch: &Path,
) -> Result<RemoteRun, ReportError> {
    let io = |p: &Path, e| ReportError::Io(p.to_path_buf(), e);
    let _ = std::fs::remove_dir_all(scratch);
    let mut objects_in = 0;
    for table in ["user_events", "order_events", "order_items"] {
        for day in days {
            for key in lake
                .list(&format!("{table}/dt={day}/"))
                .await
                .map_err(store)?
            {
                let Some(bytes) = lake.get(&key).await.map_err(store)? else {
                    continue;
                };
                let path = scratch.join("lake").join(&key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                }
                std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
                objects_in += 1;
            }
        }
    }
    let dlq_dir = scratch.join("dead-letters");
    std::fs::create_dir_all(&dlq_dir).map_err(|e| io(&dlq_dir, e))?;
    if let Some(letters) = letters {
        for key in letters.list("").await.map_err(store)? {
            if !key.ends_with(".json") {
                continue;
            }
            let Some(bytes) = letters.get(&key).await.map_err(store)? else {
                continue;
            };
            let path = dlq_dir.join(key.replace('/', "_"));
            std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
        }
    }
    let results = run_reports(&scratch.join("lake"), &dlq_dir).await?;
    let report_dir = scratch.join("reports");
    write_reports(&results, &report_dir)?;
    let mut objects_out = 0;
    let mut html_key = String::new();
    let mut entries: Vec<_> = std::fs::read_dir(&report_dir)
        .map_err(|e| io(&report_dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report")
            .to_owned();
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("csv") => "text/csv; charset=utf-8",
            _ => "application/json",
        };
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let key = format!("{}/{name}", prefix.trim_end_matches('/'));
        out.put(
            &key,
            Bytes::from(bytes),
            PutOptions {
                if_absent: false,
                content_type,
            },
        )
        .await
        .map_err(store)?;
        if name == "report.html" {
            html_key = key;
        }
        objects_out += 1;
    }
    Ok(RemoteRun {
        objects_in,
        objects_out,
        html_key,
    })
}
