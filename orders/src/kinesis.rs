//! Kinesis as the event stream: `PutRecords` within its limits (500 records
//! and 5 MiB a call, 1 MiB a record: `pipeline_schemas::put_records`),
//! partition key = `order_id` or `user_id`, per-record results so a partial
//! failure (`FailedRecordCount`) retries only the failed records.

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use pipeline_schemas::put_records::{put_calls, record_size};

use crate::ports::EventStream;

/// The Kinesis stream.
#[derive(Debug, Clone)]
pub struct KinesisStream {
    client: aws_sdk_kinesis::Client,
    stream_name: String,
}

impl KinesisStream {
    /// Puts to `stream_name`.
    pub fn new(client: aws_sdk_kinesis::Client, stream_name: &str) -> Self {
        KinesisStream {
            client,
            stream_name: stream_name.to_owned(),
        }
    }
}

impl EventStream for KinesisStream {
    /// A record Kinesis could never take (over 1 MiB, or a bad partition key)
    /// is reported not put, and logged, rather than sent: Kinesis would refuse
    /// the whole call, and every record batched with it, on every retry. A
    /// call that fails after others succeeded ends the put with their results,
    /// so that the outbox retries only what was not published.
    async fn put(&self, records: &[(String, Vec<u8>)]) -> Result<Vec<bool>, String> {
        let mut results = vec![false; records.len()];
        let mut sendable = Vec::with_capacity(records.len());
        let mut sizes = Vec::with_capacity(records.len());
        for (i, (key, data)) in records.iter().enumerate() {
            match record_size(key, data.len()) {
                Ok(size) => {
                    sendable.push(i);
                    sizes.push(size);
                }
                Err(why) => tracing::error!(record = i, %why, "an event Kinesis cannot take"),
            }
        }
        for call in put_calls(&sizes) {
            let indices = sendable.get(call).unwrap_or_default();
            let mut entries = Vec::with_capacity(indices.len());
            for &i in indices {
                let (key, data) = &records[i];
                entries.push(
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(data.clone()))
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            let out = match self
                .client
                .put_records()
                .stream_name(&self.stream_name)
                .set_records(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let why = format!("PutRecords: {}", DisplayErrorContext(&e));
                    if !results.contains(&true) {
                        return Err(why);
                    }
                    // the calls before it stand: report them put, so that a
                    // retry does not publish them twice
                    tracing::warn!(error = %why, "a PutRecords call failed after others succeeded");
                    break;
                }
            };
            for (&i, r) in indices.iter().zip(out.records()) {
                results[i] = r.error_code().is_none();
            }
        }
        Ok(results)
    }
}
