//! Timestream for LiveAnalytics: multi-measure records, `CommonAttributes`
//! for what a call's records share, 100 records per `WriteRecords` (the
//! service limit), calls in parallel, throttling retried with backoff, and
//! `RejectedRecords` handled record by record.
//!
//! Rules for rejected records (the rest of the call was written):
//! - a version conflict where the stored version is ours or newer is a retry
//!   of a write that succeeded: success;
//! - a record outside the memory store's window is dropped and counted
//!   (enable magnetic store writes on the table to accept late data; the lake
//!   keeps every event either way);
//! - anything else fails the write, so the batch is retried and then reaches
//!   the on-failure destination.

use std::time::Instant;

use aws_sdk_timestreamwrite::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError;
use aws_sdk_timestreamwrite::types::{Dimension, MeasureValue, MeasureValueType, Record, TimeUnit};
use futures_util::future::join_all;
use pipeline_processors::retry::RetryPolicy;

use crate::sink::{MetricRecord, MetricsSink, SinkError, SinkReport};

pub use crate::sink::MAX_RECORDS_PER_CALL;
/// The multi-measure record name dashboards query.
pub const MEASURE_NAME: &str = "business_metrics";

/// The Timestream sink.
#[derive(Debug, Clone)]
pub struct TimestreamSink {
    client: aws_sdk_timestreamwrite::Client,
    database: String,
    table: String,
    retry: RetryPolicy,
}

/// What one call's rejected records amount to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Conflicts with a version at least ours: already written.
    pub already_written: usize,
    /// Outside the retention window: dropped.
    pub dropped: usize,
    /// Anything else: a failure, with the service's reasons.
    pub failed: Vec<String>,
}

/// Classifies `RejectedRecords` (reason text, stored version) for records
/// written with `version`.
pub fn classify_rejections<'a>(
    rejected: impl IntoIterator<Item = (Option<&'a str>, Option<i64>)>,
    version: i64,
) -> Rejections {
    let mut out = Rejections::default();
    for (reason, existing) in rejected {
        let reason = reason.unwrap_or("");
        let lower = reason.to_ascii_lowercase();
        if existing.is_some_and(|v| v >= version) {
            out.already_written += 1;
        } else if lower.contains("outside")
            && (lower.contains("retention") || lower.contains("time range"))
        {
            out.dropped += 1;
        } else {
            out.failed.push(reason.to_owned());
        }
    }
    out
}

impl TimestreamSink {
    /// Writes to `database.table`. Build the client with endpoint discovery
    /// in AWS (`Client::with_endpoint_discovery_enabled`), as the service requires.
    pub fn new(
        client: aws_sdk_timestreamwrite::Client,
        database: &str,
        table: &str,
        retry: RetryPolicy,
    ) -> Self {
        TimestreamSink {
            client,
            database: database.to_owned(),
            table: table.to_owned(),
            retry,
        }
    }

    /// The `WriteRecords` input for one chunk: shared dimensions, type, unit
    /// and version in `CommonAttributes`; per record its time, business
    /// dimensions and the ten measures.
    pub fn request(chunk: &[MetricRecord]) -> Result<(Record, Vec<Record>), SinkError> {
        let first = chunk
            .first()
            .ok_or_else(|| SinkError::Permanent("empty chunk".into()))?;
        let dim = |name: &str, value: &str| {
            Dimension::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| SinkError::Permanent(e.to_string()))
        };
        let common = Record::builder()
            .measure_name(MEASURE_NAME)
            .measure_value_type(MeasureValueType::Multi)
            .time_unit(TimeUnit::Milliseconds)
            .version(first.version)
            .dimensions(dim("shard_id", &first.shard_id)?)
            .dimensions(dim("window", &first.window)?)
            .build();
        let mut records = Vec::with_capacity(chunk.len());
        for r in chunk {
            let mut b = Record::builder()
                .time(r.minute_ms.to_string())
                .dimensions(dim("country", r.dims.country.as_str())?)
                .dimensions(dim("currency", r.dims.currency.as_str())?)
                .dimensions(dim("payment_method", r.dims.payment_method.as_str())?);
            for (name, value) in r.measures.named() {
                b = b.measure_values(
                    MeasureValue::builder()
                        .name(name)
                        .value(value.to_string())
                        .r#type(MeasureValueType::Bigint)
                        .build()
                        .map_err(|e| SinkError::Permanent(e.to_string()))?,
                );
            }
            records.push(b.build());
        }
        Ok((common, records))
    }

    async fn write_chunk(&self, chunk: &[MetricRecord]) -> Result<Rejections, SinkError> {
        let (common, records) = Self::request(chunk)?;
        let version = chunk.first().map_or(0, |r| r.version);
        let sent = self
            .client
            .write_records()
            .database_name(&self.database)
            .table_name(&self.table)
            .common_attributes(common)
            .set_records(Some(records))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Rejections::default()),
            Err(SdkError::ServiceError(e)) => {
                let err = e.into_err();
                match &err {
                    WriteRecordsError::RejectedRecordsException(r) => Ok(classify_rejections(
                        r.rejected_records()
                            .iter()
                            .map(|x| (x.reason(), x.existing_version())),
                        version,
                    )),
                    WriteRecordsError::ThrottlingException(_)
                    | WriteRecordsError::InternalServerException(_) => Err(SinkError::Transient(
                        format!("WriteRecords: {}", DisplayErrorContext(&err)),
                    )),
                    _ if matches!(err.code(), Some("ServiceUnavailable" | "RequestTimeout")) => {
                        Err(SinkError::Transient(format!(
                            "WriteRecords: {}",
                            DisplayErrorContext(&err)
                        )))
                    }
                    _ => Err(SinkError::Permanent(format!(
                        "WriteRecords: {}",
                        DisplayErrorContext(&err)
                    ))),
                }
            }
            Err(
                e @ (SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_)),
            ) => Err(SinkError::Transient(format!(
                "WriteRecords: {}",
                DisplayErrorContext(&e)
            ))),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let msg = format!("WriteRecords: {}", DisplayErrorContext(&e));
                if matches!(status, Some(429 | 500..=599)) {
                    Err(SinkError::Transient(msg))
                } else {
                    Err(SinkError::Permanent(msg))
                }
            }
        }
    }
}

impl MetricsSink for TimestreamSink {
    async fn write(
        &self,
        records: &[MetricRecord],
        deadline: Instant,
    ) -> Result<SinkReport, SinkError> {
        // one version, shard and window per call (they are CommonAttributes)
        let mut chunks: Vec<&[MetricRecord]> = Vec::new();
        let mut start = 0;
        for i in 1..=records.len() {
            let boundary = i == records.len()
                || i - start == MAX_RECORDS_PER_CALL
                || (&records[i].shard_id, &records[i].window, records[i].version)
                    != (
                        &records[start].shard_id,
                        &records[start].window,
                        records[start].version,
                    );
            if boundary && i > start {
                chunks.push(&records[start..i]);
                start = i;
            }
        }
        let calls = chunks
            .iter()
            .map(|chunk| self.retry.run(deadline, move || self.write_chunk(chunk)));
        let mut report = SinkReport::default();
        let mut failed = Vec::new();
        for (chunk, outcome) in chunks.iter().zip(join_all(calls).await) {
            report.requests += 1 + outcome.retries as usize;
            report.retries += outcome.retries;
            let rejections = outcome.result?;
            report.dropped += rejections.dropped;
            report.written += chunk.len() - rejections.dropped - rejections.failed.len();
            failed.extend(rejections.failed);
        }
        if failed.is_empty() {
            Ok(report)
        } else {
            Err(SinkError::Permanent(format!(
                "{} records rejected: {}",
                failed.len(),
                failed.into_iter().take(3).collect::<Vec<_>>().join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_records_follow_the_rules() {
        let r = classify_rejections(
            [
                (
                    Some("A record with a higher version already exists"),
                    Some(20),
                ),
                (Some("Same version, different values"), Some(10)),
                (
                    Some(
                        "The record timestamp is outside the time range [2026-11-24T14:00:00Z, 2026-11-25T15:00:00Z) of the memory store.",
                    ),
                    None,
                ),
                (Some("Measure value type mismatch"), None),
                (Some("Version conflict"), Some(5)),
            ],
            10,
        );
        assert_eq!(r.already_written, 2);
        assert_eq!(r.dropped, 1);
        assert_eq!(r.failed.len(), 2);
    }

    fn rec(i: usize, version: i64) -> MetricRecord {
        MetricRecord {
            minute_ms: 60_000 * i as i64,
            dims: crate::measures::Dims {
                country: crate::measures::Dim::new("DE").expect("dim"),
                currency: crate::measures::Dim::new("EUR").expect("dim"),
                payment_method: crate::measures::Dim::new("none").expect("dim"),
            },
            shard_id: "shardId-000000000000".into(),
            window: "1435".into(),
            measures: crate::measures::Measures {
                orders_created: 1,
                ..Default::default()
            },
            version,
        }
    }

    #[test]
    fn requests_share_common_attributes() {
        let chunk: Vec<_> = (0..3).map(|i| rec(i, 99)).collect();
        let (common, records) = TimestreamSink::request(&chunk).expect("valid");
        assert_eq!(common.measure_value_type(), Some(&MeasureValueType::Multi));
        assert_eq!(common.version(), Some(99));
        assert_eq!(common.dimensions().len(), 2);
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].time(), Some("60000"));
        assert_eq!(records[0].measure_values().len(), 10);
        assert_eq!(records[0].dimensions().len(), 3);
    }
}
