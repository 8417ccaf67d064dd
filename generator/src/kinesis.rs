//! Kinesis-shaped output: shard routing by MD5 of the partition key (as
//! Kinesis does), 56-digit per-shard sequence numbers, and Lambda invocation
//! payloads byte-for-byte in the shape the Lambda runtime delivers.

use base64_simd::STANDARD;
use md5::{Digest, Md5};
use pipeline_schemas::write::write_json_string;

use crate::{Body, Expected, GeneratedRecord};

/// The shard whose hash-key range holds MD5(`partition_key`), for a stream
/// of `shards` shards that split the 128-bit key space evenly.
pub fn shard_for(partition_key: &str, shards: u32) -> u32 {
    let digest = Md5::digest(partition_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    let hash = u128::from_be_bytes(bytes);
    if shards <= 1 {
        return 0;
    }
    let shards = u128::from(shards);
    // each shard owns 2^128 / shards hash keys, starting at zero
    let width = u128::MAX / shards + 1;
    (hash / width).min(shards - 1) as u32
}

/// The Kinesis shard id for index `shard`.
pub fn shard_id(shard: u32) -> String {
    format!("shardId-{shard:012}")
}

/// A 56-digit sequence number, increasing with `n` within a shard.
pub fn sequence_number(shard: u32, n: u64) -> String {
    format!("4959{shard:012}{n:040}")
}

/// Where the records come from, as it appears in the invocation.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The stream ARN (`eventSourceARN`).
    pub arn: String,
    /// `awsRegion`.
    pub region: String,
}

impl Default for StreamInfo {
    fn default() -> Self {
        StreamInfo {
            arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/events".into(),
            region: "eu-west-1".into(),
        }
    }
}

/// A record as it sits in a shard.
#[derive(Debug, Clone)]
pub struct KinesisRecord {
    /// Shard index.
    pub shard: u32,
    /// 56-digit sequence number.
    pub sequence_number: String,
    /// Partition key.
    pub partition_key: String,
    /// `kinesis.data` exactly as it will appear (base64, or corrupt text).
    pub data_base64: String,
    /// Approximate arrival time, epoch milliseconds.
    pub arrival_ms: i64,
    /// What decoding it must yield.
    pub expected: Expected,
}

/// Routes records to shards in order; each shard keeps arrival order.
pub fn route(records: &[GeneratedRecord], shards: u32) -> Vec<Vec<KinesisRecord>> {
    let shards = shards.max(1);
    let mut out: Vec<Vec<KinesisRecord>> = (0..shards).map(|_| Vec::new()).collect();
    for r in records {
        let shard = shard_for(&r.partition_key, shards);
        let list = &mut out[shard as usize];
        // Kinesis stamps arrival in order within a shard
        let arrival_ms = list
            .last()
            .map_or(r.arrival_ms, |prev| prev.arrival_ms.max(r.arrival_ms));
        let data_base64 = match &r.body {
            Body::Json(bytes) => STANDARD.encode_to_string(bytes),
            Body::RawBase64(text) => text.clone(),
        };
        list.push(KinesisRecord {
            shard,
            sequence_number: sequence_number(shard, list.len() as u64 + 1),
            partition_key: r.partition_key.clone(),
            data_base64,
            arrival_ms,
            expected: r.expected,
        });
    }
    out
}

/// The tumbling-window fields Lambda adds to an invocation when the event
/// source mapping sets `TumblingWindowInSeconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFields {
    /// Window start, epoch milliseconds.
    pub start_ms: i64,
    /// Window end, epoch milliseconds.
    pub end_ms: i64,
    /// The shard.
    pub shard_id: String,
    /// The state returned by the previous invocation of this window.
    pub state: Vec<(String, String)>,
    /// The last invocation of the window.
    pub is_final: bool,
    /// The window was cut short.
    pub terminated_early: bool,
}

impl WindowFields {
    /// The window tests and benchmarks use: the first minute after the
    /// epoch, on shard 0, carrying `state`.
    pub fn first_minute(state: Vec<(String, String)>, is_final: bool) -> Self {
        WindowFields {
            start_ms: 0,
            end_ms: 60_000,
            shard_id: shard_id(0),
            state,
            is_final,
            terminated_early: false,
        }
    }
}

/// The Lambda invocation payload for `records` (one shard's batch), exactly
/// as Lambda sends it: `{"Records":[{"kinesis":{...},"eventSource":...}]}`.
pub fn invocation_payload(records: &[KinesisRecord], stream: &StreamInfo) -> Vec<u8> {
    invocation_payload_with(records, stream, None)
}

/// [`invocation_payload`] with the tumbling-window fields.
pub fn invocation_payload_with(
    records: &[KinesisRecord],
    stream: &StreamInfo,
    window: Option<&WindowFields>,
) -> Vec<u8> {
    let size: usize = records.iter().map(|r| r.data_base64.len() + 520).sum();
    let mut out = Vec::with_capacity(size + 16);
    out.extend_from_slice(b"{\"Records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":");
        write_json_string(&mut out, &r.partition_key);
        out.extend_from_slice(b",\"sequenceNumber\":\"");
        out.extend_from_slice(r.sequence_number.as_bytes());
        out.extend_from_slice(b"\",\"data\":");
        write_json_string(&mut out, &r.data_base64);
        out.extend_from_slice(
            format!(
                ",\"approximateArrivalTimestamp\":{}.{:03}}},",
                r.arrival_ms.div_euclid(1000),
                r.arrival_ms.rem_euclid(1000)
            )
            .as_bytes(),
        );
        out.extend_from_slice(
            b"\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":\"",
        );
        out.extend_from_slice(shard_id(r.shard).as_bytes());
        out.push(b':');
        out.extend_from_slice(r.sequence_number.as_bytes());
        out.extend_from_slice(b"\",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":\"arn:aws:iam::123456789012:role/event-processor\",\"awsRegion\":");
        write_json_string(&mut out, &stream.region);
        out.extend_from_slice(b",\"eventSourceARN\":");
        write_json_string(&mut out, &stream.arn);
        out.push(b'}');
    }
    out.push(b']');
    if let Some(w) = window {
        let ts = |key: &str, ms: i64, out: &mut Vec<u8>| {
            out.extend_from_slice(format!(",\"{key}\":\"").as_bytes());
            pipeline_schemas::rules::format_rfc3339_ms(ms, out);
            out.push(b'"');
        };
        out.extend_from_slice(b",\"window\":{\"start\":\"");
        pipeline_schemas::rules::format_rfc3339_ms(w.start_ms, &mut out);
        out.push(b'"');
        ts("end", w.end_ms, &mut out);
        out.extend_from_slice(b"},\"state\":{");
        for (i, (k, v)) in w.state.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, k);
            out.push(b':');
            write_json_string(&mut out, v);
        }
        out.extend_from_slice(b"},\"shardId\":");
        write_json_string(&mut out, &w.shard_id);
        out.extend_from_slice(b",\"eventSourceARN\":");
        write_json_string(&mut out, &stream.arn);
        out.extend_from_slice(
            format!(
                ",\"isFinalInvokeForWindow\":{},\"isWindowTerminatedEarly\":{}",
                w.is_final, w.terminated_early
            )
            .as_bytes(),
        );
    }
    out.push(b'}');
    out
}

/// Splits each shard's records into invocations of at most `batch_size`
/// records, as an event source mapping with that `BatchSize` would.
pub fn invocations(
    shards: &[Vec<KinesisRecord>],
    batch_size: usize,
    stream: &StreamInfo,
) -> Vec<Vec<u8>> {
    shards
        .iter()
        .flat_map(|records| records.chunks(batch_size.max(1)))
        .map(|batch| invocation_payload(batch, stream))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_routing_is_stable_and_spread() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[shard_for(&format!("ord_{i}"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(shard_for("abc", 4), shard_for("abc", 4));
        assert_eq!(shard_for("abc", 1), 0);
    }

    #[test]
    fn sequence_numbers_have_56_digits_and_increase() {
        let a = sequence_number(3, 9);
        let b = sequence_number(3, 10);
        assert_eq!(a.len(), 56);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert!(a < b);
    }
}
