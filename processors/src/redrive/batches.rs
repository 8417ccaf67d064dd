//! Batch redrive: the event source mapping's on-failure destination (an SQS
//! queue) receives a batch's metadata when its retries run out. The redrive reads
//! those messages, fetches the records from the stream (`GetShardIterator` at
//! the start sequence number, `GetRecords` up to the end), runs them through
//! the handler as a Lambda invocation would, and deletes the message only when
//! every record was durably handled. Records the stream no longer holds
//! (older than its retention) are reported, and the message is kept.

use aws_sdk_kinesis::types::ShardIteratorType;
use pipeline_generator::Expected;
use pipeline_generator::kinesis::{KinesisRecord, StreamInfo, invocation_payload};
use pipeline_schemas::ReasonCode;
use serde_json::Value;

use crate::batch::{BatchProcessor, RecordHandler};
use crate::dlq::DeadLetterQueue;

use super::{delete, receive, sdk_error};

/// A batch the mapping gave up on (`KinesisBatchInfo` of the on-failure record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatchInfo {
    /// Shard.
    pub shard_id: String,
    /// First sequence number.
    pub start_sequence_number: String,
    /// Last sequence number.
    pub end_sequence_number: String,
    /// The stream ARN.
    pub stream_arn: String,
}

impl FailedBatchInfo {
    /// Reads Lambda's on-failure message (`{"KinesisBatchInfo": {...}, ...}`).
    pub fn from_message(body: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(body).ok()?;
        let info = v.get("KinesisBatchInfo")?;
        let s = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(FailedBatchInfo {
            shard_id: s("shardId")?,
            start_sequence_number: s("startSequenceNumber")?,
            end_sequence_number: s("endSequenceNumber")?,
            stream_arn: s("streamArn")?,
        })
    }
}

/// What one redrive pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Messages read.
    pub messages: usize,
    /// Batches fully handled (messages deleted).
    pub redriven: usize,
    /// Records re-run.
    pub records: usize,
    /// Messages kept, with why.
    pub kept: Vec<String>,
}

fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// Reads the batch's records from the stream.
pub async fn fetch(
    kinesis: &aws_sdk_kinesis::Client,
    stream_name: &str,
    info: &FailedBatchInfo,
) -> Result<Vec<KinesisRecord>, String> {
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream_name)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&info.start_sequence_number)
        .send()
        .await
        .map_err(sdk_error("GetShardIterator"))?
        .shard_iterator()
        .map(str::to_owned);
    let shard = info
        .shard_id
        .rsplit('-')
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(1000)
            .send()
            .await
            .map_err(sdk_error("GetRecords"))?;
        if page.records().is_empty() {
            break;
        }
        for r in page.records() {
            if seq_cmp(r.sequence_number(), &info.end_sequence_number).is_gt() {
                return Ok(out);
            }
            out.push(KinesisRecord {
                shard,
                sequence_number: r.sequence_number().to_owned(),
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data_base64: base64_simd::STANDARD.encode_to_string(r.data().as_ref()),
                arrival_ms: r.approximate_arrival_timestamp().map_or(0, |t| {
                    t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000)
                }),
                expected: Expected::Poison(ReasonCode::MalformedJson),
            });
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    Ok(out)
}

/// One pass over the on-failure queue.
pub async fn redrive<H: RecordHandler, D: DeadLetterQueue>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    kinesis: &aws_sdk_kinesis::Client,
    stream_name: &str,
    processor: &mut BatchProcessor<H, D>,
    deadline: std::time::Instant,
) -> Result<RedriveReport, String> {
    let mut report = RedriveReport::default();
    loop {
        let messages = receive(sqs, queue_url).await?;
        if messages.is_empty() {
            return Ok(report);
        }
        for m in &messages {
            report.messages += 1;
            let Some(info) = m.body().and_then(FailedBatchInfo::from_message) else {
                report
                    .kept
                    .push(format!("{:?}: not an on-failure record", m.message_id()));
                continue;
            };
            let records = fetch(kinesis, stream_name, &info).await?;
            if records.first().map(|r| r.sequence_number.as_str())
                != Some(info.start_sequence_number.as_str())
            {
                report.kept.push(format!(
                    "{}: {} is no longer in the stream (retention); replay from the lake or the producers",
                    info.shard_id, info.start_sequence_number
                ));
                continue;
            }
            let stream = StreamInfo {
                arn: info.stream_arn.clone(),
                ..StreamInfo::default()
            };
            let mut all_done = true;
            for chunk in records.chunks(1000) {
                let mut payload = invocation_payload(chunk, &stream);
                let out = processor
                    .process(&mut payload, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                report.records += chunk.len();
                if !out.response.batch_item_failures.is_empty() {
                    all_done = false;
                    report.kept.push(format!(
                        "{}: still failing: {:?}",
                        info.shard_id, out.stats.errors
                    ));
                    break;
                }
            }
            if all_done {
                if let Some(handle) = m.receipt_handle() {
                    delete(sqs, queue_url, handle).await?;
                }
                report.redriven += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::seq_cmp;
    use std::cmp::Ordering;

    #[test]
    fn sequence_numbers_compare_as_the_numbers_they_are() {
        // Kinesis' are 56 digits: more than a u128 holds (39), so they are
        // compared as text of equal length
        let a = "49590338271490256608559692538361571095921575989136588898";
        let b = "49590338271490256608559692540925702759324208523137515618";
        assert_eq!(seq_cmp(a, b), Ordering::Less);
        assert_eq!(seq_cmp(b, a), Ordering::Greater);
        assert_eq!(seq_cmp(a, a), Ordering::Equal);
        // they differ only past the 39th digit
        let c = "49590338271490256608559692538361571095921575989136588899";
        assert_eq!(seq_cmp(a, c), Ordering::Less);
        // shorter ones (local servers number from 1) by length first
        assert_eq!(seq_cmp("9", "10"), Ordering::Less);
        assert_eq!(seq_cmp("100", "99"), Ordering::Greater);
    }
}
