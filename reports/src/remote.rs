//! Reports over a lake in an object store (S3 in AWS). The tables are read
//! where they lie, through DataFusion's object store: only the partitions of
//! the days asked for, and in them only the column chunks the SQL needs, so a
//! run's memory and scratch space do not grow with the lake. Dead letters are
//! fetched from their store, and the outputs uploaded under a dated prefix.
//! The `report-generator` Lambda runs this on a schedule.

use std::path::{Path, PathBuf};
#[cfg(feature = "s3")]
use std::sync::Arc;

use bytes::Bytes;
use datafusion::prelude::SessionContext;
use pipeline_processors::{ObjectStore, PutOptions, StoreError};

use crate::{ReportError, register_lake, run_sql, write_reports};

/// Where the lake is.
#[derive(Debug, Clone)]
pub enum LakeSource {
    /// A local folder holding the three tables' folders.
    Local(PathBuf),
    /// `s3://bucket/prefix/`, read through `store`, which holds the
    /// credentials, region and endpoint.
    #[cfg(feature = "s3")]
    S3 {
        /// The bucket's object store.
        store: Arc<dyn object_store::ObjectStore>,
        /// Bucket.
        bucket: String,
        /// Key prefix of the tables (`lake/`).
        prefix: String,
    },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRun {
    /// Dead letters read.
    pub letters_in: usize,
    /// Report objects written.
    pub objects_out: usize,
    /// Key of the HTML page in the output store.
    pub html_key: String,
}

fn store(e: StoreError) -> ReportError {
    ReportError::Query("object store", e.to_string())
}

/// Runs the reports over the partitions of `days` (`YYYY-MM-DD`) of `lake`
/// and every letter of `letters`, using `scratch` for the outputs, and
/// writes them to `out` under `prefix`.
pub async fn run_remote<D: ObjectStore, O: ObjectStore>(
    lake: &LakeSource,
    letters: Option<&D>,
    out: &O,
    days: &[String],
    prefix: &str,
    scratch: &Path,
) -> Result<RemoteRun, ReportError> {
    let io = |p: &Path, e| ReportError::Io(p.to_path_buf(), e);
    let _ = std::fs::remove_dir_all(scratch);
    let ctx = SessionContext::new();
    let root = match lake {
        LakeSource::Local(dir) => dir.display().to_string(),
        #[cfg(feature = "s3")]
        LakeSource::S3 {
            store,
            bucket,
            prefix,
        } => {
            let url = url::Url::parse(&format!("s3://{bucket}"))
                .map_err(|e| ReportError::Query("register", format!("bucket {bucket}: {e}")))?;
            ctx.register_object_store(&url, store.clone());
            format!("s3://{bucket}/{}", prefix.trim_matches('/'))
        }
    };
    register_lake(&ctx, &root, Some(days)).await?;
    let mut documents = Vec::new();
    if let Some(letters) = letters {
        for key in letters.list("").await.map_err(store)? {
            if !key.ends_with(".json") {
                continue;
            }
            let Some(bytes) = letters.get(&key).await.map_err(store)? else {
                continue;
            };
            let doc = serde_json::from_slice(&bytes)
                .map_err(|e| ReportError::Query("dead_letters", format!("{key}: {e}")))?;
            documents.push(doc);
        }
    }
    let results = run_sql(&ctx, &documents).await?;
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
        letters_in: documents.len(),
        objects_out,
        html_key,
    })
}
