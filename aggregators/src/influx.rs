//! InfluxDB line protocol over HTTP: Timestream for InfluxDB 3
//! (`/api/v3/write_lp`), InfluxDB 2 (`/api/v2/write`) and the 1.x `/write`
//! endpoint, gzip-compressed, in batches, with token auth.
//!
//! A point is identified by measurement, tag set and timestamp; writing it
//! again replaces it. Each record is one point (tags: the dimensions, shard
//! and window), so a retried write is an idempotent upsert.

use std::io::Write as _;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::future::join_all;
use pipeline_processors::retry::RetryPolicy;

use crate::sink::{MetricRecord, MetricsSink, SinkError, SinkReport};

/// The measurement all records are written to.
pub const MEASUREMENT: &str = "business_metrics";

/// Which write API to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxApi {
    /// InfluxDB 3 / Timestream for InfluxDB 3: `/api/v3/write_lp?db=`.
    V3 {
        /// Database.
        database: String,
    },
    /// InfluxDB 2: `/api/v2/write?org=&bucket=`.
    V2 {
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
    },
    /// InfluxDB 1.x (and the v1 compatibility endpoint): `/write?db=`.
    V1 {
        /// Database.
        database: String,
    },
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct InfluxConfig {
    /// `https://host:8086` (no trailing slash needed).
    pub url: String,
    /// The API.
    pub api: InfluxApi,
    /// Token (`Authorization: Bearer` for v3, `Token` for v1/v2), if any.
    pub token: Option<String>,
    /// Lines per request (InfluxDB recommends about 5,000).
    pub batch_lines: usize,
    /// gzip request bodies.
    pub gzip: bool,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The InfluxDB sink.
#[derive(Debug, Clone)]
pub struct InfluxSink {
    http: reqwest::Client,
    config: InfluxConfig,
    write_url: String,
}

fn escape_tag(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, ',' | '=' | ' ' | '\\') {
            out.push('\\');
        }
        if c == '\n' {
            out.push_str("\\n");
        } else {
            out.push(c);
        }
    }
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One record as a line of line protocol (timestamp in milliseconds).
pub fn line(record: &MetricRecord) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(MEASUREMENT);
    for (k, v) in record.dimensions() {
        out.push(',');
        out.push_str(k);
        out.push('=');
        escape_tag(&mut out, v);
    }
    out.push(' ');
    for (i, (k, v)) in record.measures.named().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&v.to_string());
        out.push('i');
    }
    out.push(' ');
    out.push_str(&record.minute_ms.to_string());
    out
}

impl InfluxSink {
    /// A sink for `config`.
    pub fn new(config: InfluxConfig) -> Result<Self, SinkError> {
        let base = config.url.trim_end_matches('/');
        let write_url = match &config.api {
            InfluxApi::V3 { database } => {
                format!(
                    "{base}/api/v3/write_lp?db={}&precision=millisecond",
                    query_escape(database)
                )
            }
            InfluxApi::V2 { org, bucket } => format!(
                "{base}/api/v2/write?org={}&bucket={}&precision=ms",
                query_escape(org),
                query_escape(bucket)
            ),
            InfluxApi::V1 { database } => {
                format!("{base}/write?db={}&precision=ms", query_escape(database))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SinkError::Permanent(format!("HTTP client: {e}")))?;
        Ok(InfluxSink {
            http,
            config,
            write_url,
        })
    }

    /// The write endpoint in use.
    pub fn write_url(&self) -> &str {
        &self.write_url
    }

    async fn post(&self, body: bytes::Bytes) -> Result<(), SinkError> {
        let mut req = self
            .http
            .post(&self.write_url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body);
        if self.config.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        if let Some(token) = &self.config.token {
            let scheme = match self.config.api {
                InfluxApi::V3 { .. } => "Bearer",
                _ => "Token",
            };
            req = req.header("Authorization", format!("{scheme} {token}"));
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_builder() {
                SinkError::Permanent(e.to_string())
            } else {
                SinkError::Transient(e.to_string())
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let msg = format!("{} from {}: {text}", status.as_u16(), self.write_url);
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SinkError::Transient(msg))
        } else {
            Err(SinkError::Permanent(msg))
        }
    }
}

impl MetricsSink for InfluxSink {
    async fn write(
        &self,
        records: &[MetricRecord],
        deadline: Instant,
    ) -> Result<SinkReport, SinkError> {
        let mut bodies = Vec::new();
        for chunk in records.chunks(self.config.batch_lines.max(1)) {
            let mut text = String::with_capacity(chunk.len() * 256);
            for r in chunk {
                text.push_str(&line(r));
                text.push('\n');
            }
            let body = if self.config.gzip {
                let mut gz =
                    GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::fast());
                gz.write_all(text.as_bytes())
                    .map_err(|e| SinkError::Permanent(format!("gzip: {e}")))?;
                gz.finish()
                    .map_err(|e| SinkError::Permanent(format!("gzip: {e}")))?
            } else {
                text.into_bytes()
            };
            bodies.push(bytes::Bytes::from(body));
        }
        let sends = bodies.iter().map(|body| {
            self.config
                .retry
                .run(deadline, move || self.post(body.clone()))
        });
        let mut report = SinkReport::default();
        for outcome in join_all(sends).await {
            report.requests += 1 + outcome.retries as usize;
            report.retries += outcome.retries;
            outcome.result?;
        }
        report.written = records.len();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measures::{Dims, Measures};

    #[test]
    fn lines_follow_the_protocol() {
        let r = MetricRecord {
            minute_ms: 1_795_617_420_000,
            dims: Dims {
                country: "DE".into(),
                currency: "EUR".into(),
                payment_method: "card".into(),
            },
            shard_id: "shardId-000000000001".into(),
            window: "1435".into(),
            measures: Measures {
                payments_succeeded: 2,
                payment_revenue_cents: 5998,
                ..Default::default()
            },
            version: 1_795_617_600_000,
        };
        let l = line(&r);
        assert!(l.starts_with(
            "business_metrics,country=DE,currency=EUR,payment_method=card,shard_id=shardId-000000000001,window=1435 "
        ));
        assert!(l.contains("payments_succeeded=2i,payment_revenue_cents=5998i"));
        assert!(l.ends_with(" 1795617420000"));
        let mut s = String::new();
        escape_tag(&mut s, "a b,c=d");
        assert_eq!(s, "a\\ b\\,c\\=d");
    }
}
