//! Kinesis as the event stream: `PutRecords` (up to 500 records, 5 MiB a
//! call), partition key = `order_id` or `user_id`, per-record results so a
//! partial failure (`FailedRecordCount`) retries only the failed records.

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

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
    async fn put(&self, records: &[(String, Vec<u8>)]) -> Result<Vec<bool>, String> {
        let mut results = Vec::with_capacity(records.len());
        for chunk in records.chunks(500) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (key, data) in chunk {
                entries.push(
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(data.clone()))
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            let out = self
                .client
                .put_records()
                .stream_name(&self.stream_name)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| format!("PutRecords: {}", DisplayErrorContext(&e)))?;
            results.extend(out.records().iter().map(|r| r.error_code().is_none()));
        }
        Ok(results)
    }
}
