//! The dead-letter port: where poison records go, with everything needed to
//! understand and redrive them. Adapters: SQS with an S3 claim check
//! (`aws::SqsDeadLetterQueue`) and a local folder ([`LocalDeadLetters`]).

use std::future::Future;
use std::path::PathBuf;

use pipeline_schemas::{RecordMeta, Rejection};
use serde_json::{Value, json};
use thiserror::Error;

use crate::retry::Transient;

/// A dead-letter failure.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DlqError {
    /// Throttling, 5xx, network: retry.
    #[error("transient dead-letter error: {0}")]
    Transient(String),
    /// Retrying will not help (no such queue, access denied).
    #[error("dead-letter error: {0}")]
    Permanent(String),
}

impl Transient for DlqError {
    fn is_transient(&self) -> bool {
        matches!(self, DlqError::Transient(_))
    }
}

/// A poison record on its way to the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Stable reason code, e.g. `total_mismatch`.
    pub reason: &'static str,
    /// JSON Pointer of the offending field, if one applies.
    pub path: Option<String>,
    /// What was wrong, in words.
    pub detail: String,
    /// `shardId-...`.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: String,
    /// The producer's partition key.
    pub partition_key: String,
    /// Approximate arrival time in the stream, epoch milliseconds.
    pub arrival_ms: i64,
    /// The stream ARN.
    pub event_source_arn: String,
    /// The record exactly as received (base64).
    pub data_base64: String,
}

impl DeadLetter {
    /// A dead letter for a rejected record.
    pub fn new(meta: &RecordMeta<'_>, rejection: &Rejection) -> Self {
        DeadLetter {
            reason: rejection.reason.as_str(),
            path: rejection.path.as_ref().map(|p| p.to_string()),
            detail: rejection.detail.to_string(),
            shard_id: meta.shard_id.to_owned(),
            sequence_number: meta.sequence_number.to_owned(),
            partition_key: meta.partition_key.to_owned(),
            arrival_ms: meta.arrival_ms,
            event_source_arn: meta.event_source_arn.to_owned(),
            // text unless the payload was not JSON-clean (Lambda's always is)
            data_base64: String::from_utf8_lossy(meta.data_base64).into_owned(),
        }
    }

    /// A stable, unique name: one record of one shard.
    pub fn object_key(&self) -> String {
        format!(
            "{}/{}/{}.json",
            self.reason, self.shard_id, self.sequence_number
        )
    }

    /// The message body; `data` is either inline base64 or a claim-check URI.
    pub fn to_json(&self, claim_check: Option<&str>) -> Value {
        let mut v = json!({
            "version": 1,
            "reason": self.reason,
            "path": self.path,
            "detail": self.detail,
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
            "partition_key": self.partition_key,
            "arrival_ms": self.arrival_ms,
            "event_source_arn": self.event_source_arn,
        });
        match claim_check {
            Some(uri) => v["data_uri"] = json!(uri),
            None => v["data_base64"] = json!(self.data_base64),
        }
        v
    }
}

/// A dead-letter queue. `send` returns one result per letter, in order, so a
/// partial failure fails only the letters that were not stored.
pub trait DeadLetterQueue: Send + Sync {
    /// Durably stores each letter.
    fn send(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Vec<Result<(), DlqError>>> + Send;
}

/// Dead letters as JSON files in a folder, one per record:
/// `<root>/<reason>/<shard>/<sequence>.json` (a replay rewrites the same file).
#[derive(Debug, Clone)]
pub struct LocalDeadLetters {
    root: PathBuf,
}

impl LocalDeadLetters {
    /// Letters go under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDeadLetters { root: root.into() }
    }

    /// Reads every letter back (for reports and tests).
    pub fn read_all(&self) -> std::io::Result<Vec<Value>> {
        files_with_extension(&self.root, "json")?
            .into_iter()
            .map(|path| {
                let text = std::fs::read(&path)?;
                serde_json::from_slice(&text).map_err(std::io::Error::other)
            })
            .collect()
    }
}

/// Every file under `root` (recursively) whose extension is `ext`, sorted;
/// none if `root` does not exist.
pub fn files_with_extension(root: &std::path::Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl DeadLetterQueue for LocalDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        let jobs: Vec<(PathBuf, Vec<u8>)> = letters
            .iter()
            .map(|l| {
                let body = serde_json::to_vec_pretty(&l.to_json(None)).unwrap_or_default();
                (self.root.join(l.object_key()), body)
            })
            .collect();
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(path, body)| {
                    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
                    std::fs::create_dir_all(&dir)
                        .and_then(|()| {
                            let tmp = path.with_extension("json.tmp");
                            std::fs::write(&tmp, &body)?;
                            std::fs::rename(&tmp, &path)
                        })
                        .map_err(|e| DlqError::Transient(format!("{}: {e}", path.display())))
                })
                .collect::<Vec<_>>()
        })
        .await;
        done.unwrap_or_else(|e| {
            letters
                .iter()
                .map(|_| Err(DlqError::Transient(e.to_string())))
                .collect()
        })
    }
}
