//! AWS adapters of the ports: S3 for objects, SQS (with an S3 claim check)
//! for dead letters. Errors are classified into transient (retry) and
//! permanent from the HTTP status and error code, after the SDK's own retries.

use std::fmt::Debug;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use bytes::Bytes;
use futures_util::future::join_all;

use crate::dlq::{DeadLetter, DeadLetterQueue, DlqError};
use crate::store::{Listed, ObjectStore, PutOptions, PutOutcome, StoreError};

/// SQS' classic message size limit. Letters larger than the configured limit
/// are stored in S3 and the message carries a pointer (claim check).
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The message attribute that carries a letter's reason code, so that
/// consumers can filter without parsing bodies.
const REASON_ATTRIBUTE: &str = "reason";
const REASON_DATA_TYPE: &str = "String";

/// The bytes SQS counts against its limits for a letter's message: the body,
/// and the name, data type and value of each attribute. Counting the body
/// alone would let a letter a few bytes under the limit through the claim
/// check, and SQS would refuse it every time, holding its shard back.
fn message_bytes(body: &str, reason: &str) -> usize {
    body.len() + REASON_ATTRIBUTE.len() + REASON_DATA_TYPE.len() + reason.len()
}

/// Transient or permanent, from what the service said.
fn is_transient<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, status: Option<u16>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ConstructionFailure(_) => false,
        _ => {
            let throttled = matches!(
                err.code(),
                Some(
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestTimeout"
                        | "InternalError"
                        | "ServiceUnavailable"
                        | "RequestThrottled"
                        | "KmsThrottlingException"
                )
            );
            throttled || matches!(status, Some(408 | 409 | 429 | 500..=599))
        }
    }
}

fn status_of<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// S3 as the object store: a bucket and a key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    kms_key_id: Option<String>,
}

impl S3Store {
    /// `prefix` is prepended to every key (`""` or ending in `/`). With a KMS
    /// key, objects are written SSE-KMS with an S3 Bucket Key (fewer KMS calls).
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: &str,
        prefix: &str,
        kms_key_id: Option<String>,
    ) -> Self {
        let prefix = match prefix.trim_start_matches('/') {
            "" => String::new(),
            p if p.ends_with('/') => p.to_owned(),
            p => format!("{p}/"),
        };
        S3Store {
            client,
            bucket: bucket.to_owned(),
            prefix,
            kms_key_id,
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn store_error<E: ProvideErrorMetadata + Debug + std::error::Error + 'static>(
        &self,
        what: &str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError {
        let status = status_of(&err);
        let msg = format!(
            "{what} s3://{}/{}: {}",
            self.bucket,
            self.full(key),
            DisplayErrorContext(&err)
        );
        if is_transient(&err, status) {
            StoreError::Transient(msg)
        } else {
            StoreError::Permanent(msg)
        }
    }
}

impl ObjectStore for S3Store {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_type(options.content_type)
            .body(ByteStream::from(body));
        if let Some(kms) = &self.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms)
                .bucket_key_enabled(true);
        }
        if options.if_absent {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(PutOutcome::Written),
            // If-None-Match: the object exists, i.e. an earlier attempt succeeded
            Err(e) if status_of(&e) == Some(412) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(self.store_error("put", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
        {
            Ok(out) => out
                .body
                .collect()
                .await
                .map(|b| Some(b.into_bytes()))
                .map_err(|e| {
                    StoreError::Transient(format!(
                        "reading s3://{}/{}: {e}",
                        self.bucket,
                        self.full(key)
                    ))
                }),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.store_error("get", key, e)),
        }
    }

    async fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.store_error("list", prefix, e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(self.prefix.as_str())) {
                    keys.push(Listed {
                        key: k.to_owned(),
                        size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.store_error("delete", key, e))
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full(key))
    }
}

/// SQS as the dead-letter queue. Letters that would pass `max_message_bytes`
/// are written to `claim_check` first and the message points at them.
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue<S> {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    claim_check: S,
    max_message_bytes: usize,
}

impl<S: ObjectStore> SqsDeadLetterQueue<S> {
    /// Sends to `queue_url`; oversized letters go to `claim_check`.
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: &str,
        claim_check: S,
        max_message_bytes: usize,
    ) -> Self {
        SqsDeadLetterQueue {
            client,
            queue_url: queue_url.to_owned(),
            claim_check,
            max_message_bytes,
        }
    }

    /// The message body for a letter, claim-checking it if needed.
    async fn body(&self, letter: &DeadLetter) -> Result<String, DlqError> {
        let inline = letter.to_json(None).to_string();
        if message_bytes(&inline, letter.reason) <= self.max_message_bytes {
            return Ok(inline);
        }
        let key = letter.object_key();
        let options = PutOptions {
            if_absent: false,
            content_type: "application/json",
        };
        self.claim_check
            .put(&key, Bytes::from(inline), options)
            .await
            .map_err(|e| match e {
                StoreError::Transient(m) => DlqError::Transient(format!("claim check: {m}")),
                StoreError::Permanent(m) => DlqError::Permanent(format!("claim check: {m}")),
            })?;
        Ok(letter
            .to_json(Some(&self.claim_check.uri(&key)))
            .to_string())
    }

    async fn send_batch(
        &self,
        entries: Vec<(usize, String, &'static str)>,
    ) -> Vec<(usize, Result<(), DlqError>)> {
        let mut req = self.client.send_message_batch().queue_url(&self.queue_url);
        for (i, body, reason) in &entries {
            let attr = MessageAttributeValue::builder()
                .data_type(REASON_DATA_TYPE)
                .string_value(*reason)
                .build();
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .set_message_attributes(
                    attr.ok()
                        .map(|a| [(REASON_ATTRIBUTE.to_owned(), a)].into_iter().collect()),
                )
                .build();
            match entry {
                Ok(e) => req = req.entries(e),
                Err(e) => {
                    return entries
                        .iter()
                        .map(|(i, ..)| (*i, Err(DlqError::Permanent(e.to_string()))))
                        .collect();
                }
            }
        }
        match req.send().await {
            Ok(out) => {
                let mut results: Vec<(usize, Result<(), DlqError>)> =
                    entries.iter().map(|(i, ..)| (*i, Ok(()))).collect();
                for failed in out.failed() {
                    let Ok(id) = failed.id().parse::<usize>() else {
                        continue;
                    };
                    let msg = format!("{}: {}", failed.code(), failed.message().unwrap_or(""));
                    if let Some(slot) = results.iter_mut().find(|(i, _)| *i == id) {
                        slot.1 = Err(if failed.sender_fault() {
                            DlqError::Permanent(msg)
                        } else {
                            DlqError::Transient(msg)
                        });
                    }
                }
                results
            }
            Err(e) => {
                let status = status_of(&e);
                let transient = is_transient(&e, status);
                let msg = format!(
                    "SendMessageBatch to {}: {}",
                    self.queue_url,
                    DisplayErrorContext(&e)
                );
                entries
                    .iter()
                    .map(|(i, ..)| {
                        (
                            *i,
                            Err(if transient {
                                DlqError::Transient(msg.clone())
                            } else {
                                DlqError::Permanent(msg.clone())
                            }),
                        )
                    })
                    .collect()
            }
        }
    }
}

impl<S: ObjectStore> DeadLetterQueue for SqsDeadLetterQueue<S> {
    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        let mut results: Vec<Result<(), DlqError>> = (0..letters.len()).map(|_| Ok(())).collect();
        let bodies = join_all(letters.iter().map(|l| self.body(l))).await;
        // SendMessageBatch: at most 10 entries and max_message_bytes in all
        let mut batches: Vec<Vec<(usize, String, &'static str)>> = Vec::new();
        let mut size = 0;
        for (i, body) in bodies.into_iter().enumerate() {
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    results[i] = Err(e);
                    continue;
                }
            };
            let len = message_bytes(&body, letters[i].reason);
            let start_new = match batches.last() {
                None => true,
                Some(b) => b.len() == 10 || size + len > self.max_message_bytes,
            };
            if start_new {
                batches.push(Vec::new());
                size = 0;
            }
            size += len;
            if let Some(b) = batches.last_mut() {
                b.push((i, body, letters[i].reason));
            }
        }
        for outcome in join_all(batches.into_iter().map(|b| self.send_batch(b))).await {
            for (i, r) in outcome {
                results[i] = r;
            }
        }
        results
    }
}

/// The SDK configuration from the environment (credentials, region, and
/// `AWS_ENDPOINT_URL` for local servers).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// An S3 client; `force_path_style` for local servers (moto, MinIO).
pub fn s3_client(config: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
