//! The object-store port: where Parquet files and claim-checked dead letters
//! go. One adapter for S3 (`aws::S3Store`), one for a local folder
//! ([`LocalStore`]), so the same archiver runs in Lambda, the main job and tests.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use thiserror::Error;

use crate::retry::Transient;

/// A store failure, classified for retrying.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    /// Throttling, 5xx, timeouts: retry.
    #[error("transient store error: {0}")]
    Transient(String),
    /// Access denied, no such bucket, bad request: retrying will not help.
    #[error("store error: {0}")]
    Permanent(String),
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written.
    Written,
    /// `if_absent` was set and the key already existed: a retry of a write that
    /// had succeeded. Deterministic keys and bytes make this a success.
    AlreadyExists,
}

/// How to put an object.
#[derive(Debug, Clone, Copy)]
pub struct PutOptions {
    /// Write only if the key does not exist (S3 `If-None-Match: *`).
    pub if_absent: bool,
    /// MIME type.
    pub content_type: &'static str,
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key, relative to the store's root.
    pub key: String,
    /// Its size in bytes: compaction decides from it, without reading the
    /// object, whether a file is already big enough to be left alone.
    pub size: u64,
}

/// An object store. Keys are relative to the store's root (bucket + prefix
/// for S3, a folder locally) and use `/` separators.
pub trait ObjectStore: Send + Sync {
    /// Writes `body` at `key`, atomically: readers see the whole object or none.
    fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Reads an object; `None` if absent.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// The objects under `prefix` with their sizes, sorted by key.
    fn list_sized(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send;

    /// Keys under `prefix`, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            let listed = self.list_sized(prefix).await?;
            Ok(listed.into_iter().map(|l| l.key).collect())
        }
    }

    /// Deletes an object (absent is fine).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A URI for people and pointers (`s3://bucket/key`, `file:///...`).
    fn uri(&self, key: &str) -> String;
}

/// A local folder as an object store: the embedded default.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(StoreError::Permanent(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

fn io(e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput => {
            StoreError::Permanent(e.to_string())
        }
        _ => StoreError::Transient(e.to_string()),
    }
}

fn put_file(path: &Path, body: &[u8], if_absent: bool) -> Result<PutOutcome, StoreError> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Permanent(format!("no parent folder for {}", path.display())))?;
    std::fs::create_dir_all(dir).map_err(io)?;
    if if_absent && path.exists() {
        return Ok(PutOutcome::AlreadyExists);
    }
    // write a temporary file beside the target, then link/rename it into place:
    // readers never see a partial object
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(body).map_err(io)?;
    f.sync_data().map_err(io)?;
    drop(f);
    let outcome = if if_absent {
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(PutOutcome::Written),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(io(e)),
        }
    } else {
        std::fs::rename(&tmp, path)
            .map(|()| PutOutcome::Written)
            .map_err(io)
    };
    let _ = std::fs::remove_file(&tmp);
    outcome
}

fn list_dir(root: &Path, prefix: &str) -> Result<Vec<Listed>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let key = rel.to_string_lossy().replace('\\', "/");
            if entry.file_type().map_err(io)?.is_dir() {
                if prefix.starts_with(&key) || key.starts_with(prefix) || prefix.is_empty() {
                    stack.push(path);
                }
            } else if key.starts_with(prefix)
                && !key.rsplit('/').next().unwrap_or("").starts_with('.')
            {
                let size = entry.metadata().map_err(io)?.len();
                out.push(Listed { key, size });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

impl ObjectStore for LocalStore {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || put_file(&path, &body, options.if_absent))
            .await
            .map_err(|e| StoreError::Transient(e.to_string()))?
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || list_dir(&root, &prefix))
            .await
            .map_err(|e| StoreError::Transient(e.to_string()))?
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    fn uri(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT: PutOptions = PutOptions {
        if_absent: true,
        content_type: "application/octet-stream",
    };

    #[tokio::test]
    async fn conditional_put_is_idempotent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(dir.path());
        let key = "t/dt=2026-11-25/hour=14/part-a.parquet";
        assert_eq!(
            store.put(key, Bytes::from_static(b"one"), PUT).await,
            Ok(PutOutcome::Written)
        );
        assert_eq!(
            store.put(key, Bytes::from_static(b"two"), PUT).await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert_eq!(store.get(key).await, Ok(Some(Bytes::from_static(b"one"))));
        let overwrite = PutOptions {
            if_absent: false,
            ..PUT
        };
        assert_eq!(
            store.put(key, Bytes::from_static(b"two"), overwrite).await,
            Ok(PutOutcome::Written)
        );
        assert_eq!(store.get(key).await, Ok(Some(Bytes::from_static(b"two"))));
        assert_eq!(store.list("t/").await, Ok(vec![key.to_owned()]));
        assert_eq!(
            store.list_sized("t/").await,
            Ok(vec![Listed {
                key: key.to_owned(),
                size: 3
            }])
        );
        assert_eq!(store.list("u/").await, Ok(vec![]));
        assert_eq!(store.get("t/none").await, Ok(None));
    }

    #[tokio::test]
    async fn rejects_keys_that_escape_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(dir.path());
        for key in ["../x", "a/../../x", "", "a//b", "/abs"] {
            assert!(matches!(
                store.put(key, Bytes::new(), PUT).await,
                Err(StoreError::Permanent(_))
            ));
        }
    }
}
