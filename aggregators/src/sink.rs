//! The metrics-sink port and its embedded adapter (JSON-lines files).
//! AWS: `timestream::TimestreamSink`; InfluxDB: `influx::InfluxSink`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use pipeline_processors::retry::Transient;
use serde_json::{Value, json};
use thiserror::Error;

use crate::measures::{Dim, Dims, Measures};

/// Timestream's `WriteRecords` accepts at most 100 records per call.
pub const MAX_RECORDS_PER_CALL: usize = 100;

/// One multi-measure record: a series, a minute, one shard's contribution in
/// one tumbling window. Summing over `shard_id` and `window` gives the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRecord {
    /// Start of the minute, epoch milliseconds.
    pub minute_ms: i64,
    /// Business dimensions.
    pub dims: Dims,
    /// The Kinesis shard that contributed.
    pub shard_id: String,
    /// The tumbling window that contributed, as `HHMM` of its start in UTC
    /// (bounded cardinality: 1,440 values at most).
    pub window: String,
    /// The measures.
    pub measures: Measures,
    /// Upsert version: the window's end, epoch milliseconds. A retry writes
    /// the same values with the same version.
    pub version: i64,
}

impl MetricRecord {
    /// Dimension names and values, in a fixed order.
    pub fn dimensions(&self) -> [(&'static str, &str); 5] {
        [
            ("country", self.dims.country.as_str()),
            ("currency", self.dims.currency.as_str()),
            ("payment_method", self.dims.payment_method.as_str()),
            ("shard_id", &self.shard_id),
            ("window", &self.window),
        ]
    }

    /// As JSON (the local adapter's line format).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "minute_ms": self.minute_ms,
            "version": self.version,
        });
        for (k, d) in self.dimensions() {
            v[k] = json!(d);
        }
        for (k, m) in self.measures.named() {
            v[k] = json!(m);
        }
        v
    }

    /// Reads [`MetricRecord::to_json`] back.
    pub fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut values = [0u64; 10];
        for (slot, (name, _)) in values.iter_mut().zip(Measures::default().named()) {
            *slot = v.get(name)?.as_u64()?;
        }
        Some(MetricRecord {
            minute_ms: v.get("minute_ms")?.as_i64()?,
            dims: Dims {
                country: Dim::new(&s("country")?)?,
                currency: Dim::new(&s("currency")?)?,
                payment_method: Dim::new(&s("payment_method")?)?,
            },
            shard_id: s("shard_id")?,
            window: s("window")?,
            measures: Measures::from_values(values),
            version: v.get("version")?.as_i64()?,
        })
    }
}

/// A sink failure.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SinkError {
    /// Throttling, 5xx, network: retried, then reported.
    #[error("transient metrics-sink error: {0}")]
    Transient(String),
    /// Bad request, auth, or records the service rejects for good.
    #[error("metrics-sink error: {0}")]
    Permanent(String),
}

impl Transient for SinkError {
    fn is_transient(&self) -> bool {
        matches!(self, SinkError::Transient(_))
    }
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Records accepted (or already present with the same version).
    pub written: usize,
    /// Requests made (retries included).
    pub requests: usize,
    /// Retries of transient failures.
    pub retries: u32,
    /// Records the service rejected for a reason retrying cannot fix and
    /// that the documented rule says to drop (e.g. older than the retention).
    pub dropped: usize,
}

/// Where metric records go. Writes must be idempotent upserts: the same
/// record written twice leaves one record.
pub trait MetricsSink: Send + Sync {
    /// Writes every record durably before `deadline`, or fails.
    fn write(
        &self,
        records: &[MetricRecord],
        deadline: Instant,
    ) -> impl Future<Output = Result<SinkReport, SinkError>> + Send;
}

/// JSON-lines files under a folder: `<root>/window=<start ms>/<shard>.jsonl`,
/// one file per shard and window, so a retry rewrites the same file.
#[derive(Debug, Clone)]
pub struct LocalMetrics {
    root: PathBuf,
}

impl LocalMetrics {
    /// Files go under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalMetrics { root: root.into() }
    }

    /// Every record written so far.
    pub fn read_all(&self) -> std::io::Result<Vec<MetricRecord>> {
        let mut out = Vec::new();
        for path in pipeline_processors::dlq::files_with_extension(&self.root, "jsonl")? {
            for line in std::fs::read_to_string(&path)?.lines() {
                let v: Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
                out.push(MetricRecord::from_json(&v).ok_or_else(|| {
                    std::io::Error::other(format!("bad record in {}", path.display()))
                })?);
            }
        }
        Ok(out)
    }
}

impl MetricsSink for LocalMetrics {
    async fn write(
        &self,
        records: &[MetricRecord],
        _deadline: Instant,
    ) -> Result<SinkReport, SinkError> {
        let mut files: std::collections::BTreeMap<PathBuf, String> =
            std::collections::BTreeMap::new();
        for r in records {
            let path = self
                .root
                .join(format!("window_end={}", r.version))
                .join(format!("{}.jsonl", r.shard_id));
            let text = files.entry(path).or_default();
            text.push_str(&r.to_json().to_string());
            text.push('\n');
        }
        let n = records.len();
        let requests = files.len();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for (path, text) in files {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = path.with_extension("jsonl.tmp");
                std::fs::write(&tmp, text)?;
                std::fs::rename(&tmp, &path)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| SinkError::Transient(e.to_string()))?
        .map_err(|e| SinkError::Transient(e.to_string()))?;
        Ok(SinkReport {
            written: n,
            requests,
            retries: 0,
            dropped: 0,
        })
    }
}

/// A sink whose writes fail per a fault plan (keyed by shard), for tests and
/// the main job: the retry paths of the real code run.
#[derive(Debug)]
pub struct FaultySink<S> {
    inner: S,
    faults: pipeline_processors::faults::Faults,
}

impl<S> FaultySink<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, plan: pipeline_processors::faults::FaultPlan) -> Self {
        FaultySink {
            inner,
            faults: pipeline_processors::faults::Faults::new(plan),
        }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.faults.injected()
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: MetricsSink> MetricsSink for FaultySink<S> {
    async fn write(
        &self,
        records: &[MetricRecord],
        deadline: Instant,
    ) -> Result<SinkReport, SinkError> {
        let key = records.first().map_or("", |r| r.shard_id.as_str());
        match self.faults.decide(key) {
            Some(true) => Err(SinkError::Permanent("injected: access denied".into())),
            Some(false) => Err(SinkError::Transient("injected: throttled".into())),
            None => self.inner.write(records, deadline).await,
        }
    }
}
