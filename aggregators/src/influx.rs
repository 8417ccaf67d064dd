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

/// Where and how to write. Its `Debug` shows whether a token is set, never
/// the token: a configuration printed in a log or an error message must not
/// carry a credential.
#[derive(Clone)]
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

impl std::fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url)
            .field("api", &self.api)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("batch_lines", &self.batch_lines)
            .field("gzip", &self.gzip)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
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
    use crate::measures::{Dim, Dims, Measures};

    #[test]
    fn lines_follow_the_protocol() {
        let r = MetricRecord {
            minute_ms: 1_795_617_420_000,
            dims: Dims {
                country: Dim::new("DE").expect("dim"),
                currency: Dim::new("EUR").expect("dim"),
                payment_method: Dim::new("card").expect("dim"),
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

    /// A one-shot HTTP listener that captures the request and answers 204:
    /// the v3 and v2 endpoints are not in Debian's InfluxDB 1.6.
    fn capture() -> (String, std::thread::JoinHandle<Vec<u8>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = conn.read(&mut chunk).expect("read");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: ").map(str::to_owned))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .expect("write");
            buf
        });
        (url, handle)
    }

    fn record() -> MetricRecord {
        MetricRecord {
            minute_ms: 60_000,
            dims: Dims {
                country: Dim::new("DE").expect("dim"),
                currency: Dim::new("EUR").expect("dim"),
                payment_method: Dim::new("none").expect("dim"),
            },
            shard_id: "s".into(),
            window: "0000".into(),
            measures: Measures {
                orders_created: 1,
                ..Default::default()
            },
            version: 1,
        }
    }

    #[tokio::test]
    async fn v3_and_v2_requests_have_the_right_path_auth_and_gzip_body() {
        use std::io::Read;
        for (api, path, auth) in [
            (
                InfluxApi::V3 {
                    database: "metrics db".into(),
                },
                "/api/v3/write_lp?db=metrics%20db&precision=millisecond",
                "authorization: bearer t0k",
            ),
            (
                InfluxApi::V2 {
                    org: "acme".into(),
                    bucket: "m".into(),
                },
                "/api/v2/write?org=acme&bucket=m&precision=ms",
                "authorization: token t0k",
            ),
        ] {
            let (url, server) = capture();
            let sink = InfluxSink::new(InfluxConfig {
                url,
                api,
                token: Some("t0k".into()),
                batch_lines: 10,
                gzip: true,
                retry: RetryPolicy::default(),
                timeout: Duration::from_secs(5),
            })
            .expect("sink");
            sink.write(&[record()], Instant::now() + Duration::from_secs(5))
                .await
                .expect("204");
            let raw = server.join().expect("server");
            let split = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("headers")
                + 4;
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            assert!(
                head.starts_with(&format!("post {} http/1.1", path.to_ascii_lowercase())),
                "{head}"
            );
            assert!(head.contains(auth), "{head}");
            assert!(head.contains("content-encoding: gzip"));
            let mut text = String::new();
            flate2::read::GzDecoder::new(&raw[split..])
                .read_to_string(&mut text)
                .expect("gzip body");
            assert_eq!(text, format!("{}\n", line(&record())));
        }
    }
}
