//! Poison redrive: once a fix for a rejected kind of record is deployed (a
//! relaxed rule, a new schema version), the dead letters are re-published to
//! the stream so that every consumer handles them as if they had just arrived.
//!
//! Each dead letter is first re-validated with *this* build's parser: a record
//! that would still be rejected stays in the queue (re-publishing it would only
//! dead-letter it again, a loop), unless `force` says otherwise. A message is
//! deleted only after Kinesis accepted its record; records of a `PutRecords`
//! partial failure are retried, and their messages kept if they still fail.
//! The record keeps its partition key (so it lands on the shard of its
//! entity) and its bytes (so its `event_id` is unchanged and the lake's
//! de-duplication holds if a redrive is interrupted and re-run).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use pipeline_schemas::put_records::{counted_bytes, put_calls, record_size};
use pipeline_schemas::{DecoderConfig, RecordParser, Rejection};
use serde_json::Value;

use super::{AwsClients, delete, receive, sdk_error};

/// Attempts for records that a `PutRecords` call did not accept.
const PUT_ATTEMPTS: u32 = 5;

/// What to redrive.
#[derive(Debug, Clone, Default)]
pub struct PoisonOptions {
    /// Only letters with these reason codes (all when empty).
    pub reasons: Vec<String>,
    /// Report what would happen; publish and delete nothing.
    pub dry_run: bool,
    /// Re-publish even records that this build still rejects.
    pub force: bool,
    /// The record limits the consumers run with (`MAX_RECORD_BYTES`).
    pub decoder: DecoderConfig,
}

/// What one poison redrive pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoisonReport {
    /// Messages read.
    pub messages: usize,
    /// Records accepted by Kinesis (messages deleted).
    pub republished: usize,
    /// Records that would be re-published (dry run).
    pub would_republish: usize,
    /// Letters left alone because of the reason filter.
    pub filtered: usize,
    /// Letters still rejected by this build, by reason code (kept).
    pub still_rejected: BTreeMap<String, usize>,
    /// Other messages kept, with why.
    pub kept: Vec<String>,
}

/// A dead letter, as the SQS adapter wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The reason code it was rejected with.
    pub reason: String,
    /// The producer's partition key.
    pub partition_key: String,
    /// Shard and sequence number it came from (for messages to people).
    pub origin: String,
    /// Inline base64 data, or the claim-check URI holding the whole letter.
    pub data: LetterData,
}

/// Where a letter's record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LetterData {
    /// In the message.
    Inline(String),
    /// In S3 (`s3://bucket/key`), as the full letter JSON.
    ClaimCheck(String),
}

impl Letter {
    /// Reads a dead-letter message body (version 1).
    pub fn from_message(body: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        Self::from_value(&v)
    }

    fn from_value(v: &Value) -> Result<Self, String> {
        if v.get("version").and_then(Value::as_u64) != Some(1) {
            return Err("not a version 1 dead letter".into());
        }
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("dead letter without `{k}`"))
        };
        let data = match (s("data_base64"), s("data_uri")) {
            (Ok(b64), _) => LetterData::Inline(b64),
            (Err(_), Ok(uri)) => LetterData::ClaimCheck(uri),
            (Err(e), Err(_)) => return Err(e),
        };
        Ok(Letter {
            reason: s("reason")?,
            partition_key: s("partition_key")?,
            origin: format!("{}/{}", s("shard_id")?, s("sequence_number")?),
            data,
        })
    }
}

/// Splits `s3://bucket/key`.
fn s3_location(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// The record bytes of a letter, fetching a claim check from S3.
async fn record_bytes(s3: &aws_sdk_s3::Client, letter: &Letter) -> Result<Vec<u8>, String> {
    let claimed;
    let b64 = match &letter.data {
        LetterData::Inline(b64) => b64.as_str(),
        LetterData::ClaimCheck(uri) => {
            let (bucket, key) =
                s3_location(uri).ok_or_else(|| format!("bad claim-check URI {uri}"))?;
            let object = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(sdk_error(format!("GetObject {uri}")))?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| format!("GetObject {uri}: {e}"))?
                .into_bytes();
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("claim check {uri} is not JSON: {e}"))?;
            claimed = match Letter::from_value(&v)?.data {
                LetterData::Inline(b64) => b64,
                LetterData::ClaimCheck(_) => {
                    return Err(format!("claim check {uri} points at another claim check"));
                }
            };
            claimed.as_str()
        }
    };
    base64_simd::STANDARD
        .decode_to_vec(b64.as_bytes())
        .map_err(|_| "the letter's data is not base64".to_owned())
}

/// Validates `bytes` as the consumers would: size limit, then the contract.
pub fn revalidate(
    parser: &mut RecordParser,
    bytes: &[u8],
    config: DecoderConfig,
) -> Result<(), Rejection> {
    if bytes.len() > config.max_record_bytes {
        return Err(Rejection::record(
            pipeline_schemas::ReasonCode::RecordTooLarge,
            format!("{} bytes, limit {}", bytes.len(), config.max_record_bytes),
        ));
    }
    let mut copy = bytes.to_vec();
    parser.parse(&mut copy).map(|_| ())
}

struct Pending {
    receipt: String,
    partition_key: String,
    data: Vec<u8>,
    origin: String,
}

/// One pass over the dead-letter queue `queue_url`, re-publishing to `stream_name`.
pub async fn redrive_poison(
    clients: &AwsClients,
    queue_url: &str,
    stream_name: &str,
    options: &PoisonOptions,
    deadline: Instant,
) -> Result<PoisonReport, String> {
    let mut report = PoisonReport::default();
    let mut parser = RecordParser::new();
    // Messages left in the queue are made visible again at the end of the pass.
    let mut release: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        let messages = receive(&clients.sqs, queue_url).await?;
        if messages.is_empty() {
            break;
        }
        let mut pending = Vec::new();
        for m in &messages {
            report.messages += 1;
            let Some(receipt) = m.receipt_handle().map(str::to_owned) else {
                continue;
            };
            let letter = match m.body().map(Letter::from_message) {
                Some(Ok(letter)) => letter,
                Some(Err(why)) => {
                    report
                        .kept
                        .push(format!("message {:?}: {why}", m.message_id()));
                    release.push(receipt);
                    continue;
                }
                None => {
                    report
                        .kept
                        .push(format!("message {:?}: empty", m.message_id()));
                    release.push(receipt);
                    continue;
                }
            };
            if !options.reasons.is_empty() && !options.reasons.contains(&letter.reason) {
                report.filtered += 1;
                release.push(receipt);
                continue;
            }
            let data = match record_bytes(&clients.s3, &letter).await {
                Ok(data) => data,
                Err(why) => {
                    report.kept.push(format!("{}: {why}", letter.origin));
                    release.push(receipt);
                    continue;
                }
            };
            if let Err(rejection) = revalidate(&mut parser, &data, options.decoder)
                && !options.force
            {
                *report
                    .still_rejected
                    .entry(rejection.reason.as_str().to_owned())
                    .or_default() += 1;
                release.push(receipt);
                continue;
            }
            if let Err(why) = record_size(&letter.partition_key, data.len()) {
                report.kept.push(format!(
                    "{}: cannot be put to Kinesis: {why}",
                    letter.origin
                ));
                release.push(receipt);
                continue;
            }
            if options.dry_run {
                report.would_republish += 1;
                release.push(receipt);
                continue;
            }
            pending.push(Pending {
                receipt,
                partition_key: letter.partition_key,
                data,
                origin: letter.origin,
            });
        }
        for chunk in put_chunks(pending) {
            let (done, failed) = put_all(&clients.kinesis, stream_name, chunk, deadline).await?;
            for p in done {
                delete(&clients.sqs, queue_url, &p.receipt).await?;
                report.republished += 1;
            }
            for (p, why) in failed {
                report.kept.push(format!("{}: PutRecords: {why}", p.origin));
                release.push(p.receipt);
            }
        }
    }
    for receipt in release {
        // Best effort: if this fails the message reappears after its timeout.
        let _ = clients
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
    Ok(report)
}

/// Groups records into `PutRecords` calls within Kinesis' count and size limits.
fn put_chunks(pending: Vec<Pending>) -> Vec<Vec<Pending>> {
    let sizes: Vec<usize> = pending
        .iter()
        .map(|p| counted_bytes(&p.partition_key, p.data.len()))
        .collect();
    let mut rest = pending.into_iter();
    put_calls(&sizes)
        .into_iter()
        .map(|call| rest.by_ref().take(call.len()).collect())
        .collect()
}

type PutOutcome = (Vec<Pending>, Vec<(Pending, String)>);

/// Puts every record, retrying the ones a partial failure names.
async fn put_all(
    kinesis: &aws_sdk_kinesis::Client,
    stream_name: &str,
    mut todo: Vec<Pending>,
    deadline: Instant,
) -> Result<PutOutcome, String> {
    let mut done = Vec::new();
    let mut last_error: Vec<String> = Vec::new();
    for attempt in 0..PUT_ATTEMPTS {
        if todo.is_empty() {
            break;
        }
        if attempt > 0 {
            let backoff = Duration::from_millis(100 << attempt);
            if Instant::now() + backoff > deadline {
                break;
            }
            tokio::time::sleep(backoff).await;
        }
        let entries = todo
            .iter()
            .map(|p| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&p.partition_key)
                    .data(Blob::new(p.data.clone()))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = match kinesis
            .put_records()
            .stream_name(stream_name)
            .set_records(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let why = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                last_error = vec![why; todo.len()];
                continue;
            }
        };
        let results = out.records();
        let mut retry = Vec::new();
        last_error.clear();
        for (i, p) in todo.into_iter().enumerate() {
            match results.get(i).and_then(|r| r.error_code()) {
                None if results.get(i).is_some() => done.push(p),
                code => {
                    last_error.push(code.unwrap_or("no result").to_owned());
                    retry.push(p);
                }
            }
        }
        todo = retry;
    }
    let failed = todo
        .into_iter()
        .zip(
            last_error
                .into_iter()
                .chain(std::iter::repeat(String::new())),
        )
        .collect();
    Ok((done, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(extra: Value) -> String {
        let mut v = serde_json::json!({
            "version": 1, "reason": "invalid_field", "path": "/data/country", "detail": "x",
            "shard_id": "shardId-000000000001", "sequence_number": "4960", "partition_key": "o-1",
            "arrival_ms": 1, "event_source_arn": "arn"
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v.to_string()
    }

    #[test]
    fn reads_inline_and_claim_checked_letters() {
        let inline = Letter::from_message(&letter(serde_json::json!({"data_base64": "e30="})))
            .expect("inline");
        assert_eq!(inline.data, LetterData::Inline("e30=".into()));
        assert_eq!(inline.origin, "shardId-000000000001/4960");
        let pointer = Letter::from_message(&letter(
            serde_json::json!({"data_uri": "s3://b/dead-letters/x.json"}),
        ))
        .expect("pointer");
        assert_eq!(
            pointer.data,
            LetterData::ClaimCheck("s3://b/dead-letters/x.json".into())
        );
        assert_eq!(
            s3_location("s3://b/dead-letters/x.json"),
            Some(("b", "dead-letters/x.json"))
        );
        assert_eq!(s3_location("s3://b/"), None);
    }

    #[test]
    fn rejects_messages_that_are_not_dead_letters() {
        assert!(Letter::from_message("{}").is_err());
        assert!(Letter::from_message("not json").is_err());
        let no_data = Letter::from_message(&letter(serde_json::json!({})));
        assert!(no_data.is_err_and(|e| e.contains("data_base64")));
    }

    #[test]
    fn revalidation_applies_the_size_limit_and_the_contract() {
        let mut parser = RecordParser::new();
        let small = DecoderConfig {
            max_record_bytes: 4,
        };
        let err = revalidate(&mut parser, b"{\"a\":1}", small).expect_err("too large");
        assert_eq!(err.reason, pipeline_schemas::ReasonCode::RecordTooLarge);
        let err = revalidate(&mut parser, b"{\"a\"", DecoderConfig::default()).expect_err("bad");
        assert_eq!(err.reason, pipeline_schemas::ReasonCode::MalformedJson);
    }

    #[test]
    fn put_chunks_keep_every_record_in_order_within_the_limits() {
        let p = |i: usize, n: usize| Pending {
            receipt: i.to_string(),
            partition_key: "k".into(),
            data: vec![b'x'; n],
            origin: String::new(),
        };
        // 1,001 small records, then six of just under 1 MiB
        let records: Vec<Pending> = (0..1001)
            .map(|i| p(i, 10))
            .chain((1001..1007).map(|i| p(i, 1024 * 1024 - 2)))
            .collect();
        let chunks = put_chunks(records);
        let lens: Vec<usize> = chunks.iter().map(Vec::len).collect();
        // the last small record and four large ones come to 4 MiB and 7 bytes;
        // a fifth large one would bring them to 5 MiB and 6 bytes
        assert_eq!(lens, vec![500, 500, 5, 2]);
        let order: Vec<String> = chunks.into_iter().flatten().map(|p| p.receipt).collect();
        let want: Vec<String> = (0..1007).map(|i: usize| i.to_string()).collect();
        assert_eq!(order, want);
    }
}
