//! The S3 and SQS adapters against a local server speaking the AWS wire
//! protocols (moto), through the real Rust SDK. `scripts/test.sh` starts the
//! server and sets `PIPELINE_TEST_AWS_ENDPOINT`. Faults are injected with an
//! SDK interceptor, so the SDK's own retry and error paths run.

#![cfg(feature = "aws")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_s3::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use bytes::Bytes;
use common::*;
use pipeline_processors::aws::{S3Store, SqsDeadLetterQueue};
use pipeline_processors::{
    BatchProcessor, DeadLetter, DeadLetterQueue, LakeArchiver, LakeConfig, Listed, ObjectStore,
    PutOptions, PutOutcome, RetryPolicy, StoreError,
};
use pipeline_schemas::DecoderConfig;

fn endpoint() -> String {
    std::env::var("PIPELINE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("PIPELINE_TEST_AWS_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts moto")
    })
}

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Turns the next `n` responses to requests for `order_events` objects into
/// `503 SlowDown`, as S3 does under load.
#[derive(Debug)]
struct SlowDown(Arc<AtomicU32>);

#[derive(Debug, Clone)]
struct Targeted(bool);

impl Storable for Targeted {
    type Storer = StoreReplace<Self>;
}

impl Intercept for SlowDown {
    fn name(&self) -> &'static str {
        "SlowDown"
    }
    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        // the request is gone by the time the response arrives: remember the target
        let targeted = ctx.request().uri().contains("order_events");
        cfg.interceptor_state().store_put(Targeted(targeted));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let target = cfg.load::<Targeted>().is_some_and(|t| t.0);
        let left = self.0.load(Ordering::SeqCst);
        if target && left > 0 {
            self.0.store(left - 1, Ordering::SeqCst);
            let resp = ctx.response_mut();
            *resp.status_mut() = 503u16.try_into()?;
            *resp.body_mut() = SdkBody::from(
                "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            );
        }
        Ok(())
    }
}

async fn s3(faults: Option<Arc<AtomicU32>>) -> (aws_sdk_s3::Client, String) {
    let sdk = sdk().await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true);
    let bucket = unique("lake");
    aws_sdk_s3::Client::from_conf(conf.clone().build())
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let conf = match faults {
        Some(f) => conf.interceptor(SlowDown(f)),
        None => conf,
    };
    (aws_sdk_s3::Client::from_conf(conf.build()), bucket)
}

const PUT: PutOptions = PutOptions {
    if_absent: true,
    content_type: "application/octet-stream",
};

#[tokio::test]
async fn s3_store_puts_conditionally_with_sse_kms_and_reads_back() {
    let (client, bucket) = s3(None).await;
    let store = S3Store::new(client.clone(), &bucket, "events", Some("alias/lake".into()));
    let key = "order_events/dt=2026-11-25/hour=14/part-a.parquet";
    assert_eq!(
        store.put(key, Bytes::from_static(b"one"), PUT).await,
        Ok(PutOutcome::Written)
    );
    assert_eq!(
        store.put(key, Bytes::from_static(b"two"), PUT).await,
        Ok(PutOutcome::AlreadyExists),
        "If-None-Match: * keeps the first write"
    );
    assert_eq!(store.get(key).await, Ok(Some(Bytes::from_static(b"one"))));
    assert_eq!(store.get("missing").await, Ok(None));
    assert_eq!(store.list("order_events/").await, Ok(vec![key.to_owned()]));
    assert_eq!(
        store.list_sized("order_events/").await,
        Ok(vec![Listed {
            key: key.to_owned(),
            size: 3
        }]),
        "compaction decides from the listed size"
    );
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(format!("events/{key}"))
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    assert_eq!(store.uri(key), format!("s3://{bucket}/events/{key}"));
}

#[tokio::test]
async fn s3_errors_are_classified() {
    let sdk = sdk().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let store = S3Store::new(client, "no-such-bucket-anywhere", "", None);
    let err = store
        .put("k", Bytes::from_static(b"x"), PUT)
        .await
        .expect_err("no bucket");
    assert!(matches!(err, StoreError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn throttled_uploads_are_retried_by_the_sdk_and_by_us() {
    // 5 SlowDowns: more than the SDK's 3 attempts, so our retry runs too
    let faults = Arc::new(AtomicU32::new(5));
    let (client, bucket) = s3(Some(faults.clone())).await;
    let store = S3Store::new(client, &bucket, "lake/", None);
    let archiver = LakeArchiver::new(
        store.clone(),
        LakeConfig {
            retry: RetryPolicy {
                max_attempts: 6,
                base: std::time::Duration::from_millis(5),
                max_backoff: std::time::Duration::from_millis(20),
            },
            ..LakeConfig::default()
        },
    );
    let records = shard_records(300, 21, 0.0);
    let root = temp_dir("s3-throttle");
    let mut p = BatchProcessor::new(
        archiver,
        pipeline_processors::LocalDeadLetters::new(root.join("dlq")),
        DecoderConfig::default(),
        RetryPolicy::default(),
    );
    let out = p
        .process(&mut payload(&records), deadline())
        .await
        .expect("a Kinesis event");
    assert!(
        out.response.batch_item_failures.is_empty(),
        "{:?}",
        out.stats.errors
    );
    assert_eq!(
        faults.load(Ordering::SeqCst),
        0,
        "every injected fault was hit"
    );
    assert!(
        out.stats.retries >= 1,
        "our retry ran after the SDK gave up"
    );
    let keys = store.list("").await.expect("list");
    assert!(
        keys.iter().any(|k| k.starts_with("order_events/dt=")),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| k.ends_with(".parquet")));
    // the objects are real Parquet
    let bytes = store.get(&keys[0]).await.expect("get").expect("exists");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet");
    assert!(reader.metadata().file_metadata().num_rows() > 0);
}

fn letter(seq: &str, data_len: usize) -> DeadLetter {
    DeadLetter {
        reason: "malformed_json",
        path: None,
        detail: "record is truncated".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: seq.into(),
        partition_key: "ord_1".into(),
        arrival_ms: 1_795_617_476_123,
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/events".into(),
        data_base64: "A".repeat(data_len),
    }
}

/// An SQS dead-letter queue on moto with a 4,096-byte message limit, its
/// claim checks in a new bucket: the queue, its client and URL, the claim
/// store and its bucket.
async fn dlq_on_moto(
    name: &str,
) -> (
    SqsDeadLetterQueue<S3Store>,
    aws_sdk_sqs::Client,
    String,
    S3Store,
    String,
) {
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(unique(name))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let (s3c, bucket) = s3(None).await;
    let claims = S3Store::new(s3c, &bucket, "_dead_letters/", None);
    let dlq = SqsDeadLetterQueue::new(sqs.clone(), &queue, claims.clone(), 4096);
    (dlq, sqs, queue, claims, bucket)
}

/// At least `n` messages from `queue` (with their attributes), or what 20
/// receives found.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    n: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut messages = Vec::new();
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        messages.extend(got.messages().iter().cloned());
        if messages.len() >= n {
            break;
        }
    }
    messages
}

#[tokio::test]
async fn a_letter_whose_attributes_pass_the_limit_is_claim_checked() {
    let (dlq, sqs, queue, _, _) = dlq_on_moto("dlq-edge").await;
    // SQS counts the body and the reason attribute ("reason", "String",
    // "malformed_json": 26 bytes): find the letters whose message is exactly
    // 4,096 bytes and one byte more; the larger one's body alone is under 4,096
    let attribute = "reason".len() + "String".len() + "malformed_json".len();
    let body_len = |n: usize| {
        letter(&format!("{:056}", 0), n)
            .to_json(None)
            .to_string()
            .len()
    };
    let fits = (0..4096)
        .rev()
        .find(|&n| body_len(n) + attribute == 4096)
        .expect("a letter of exactly 4,096 bytes");
    let (at, over) = (
        letter(&format!("{:056}", 1), fits),
        letter(&format!("{:056}", 2), fits + 1),
    );
    assert!(
        body_len(fits + 1) < 4096,
        "the body alone is under the limit"
    );
    let results = dlq.send(&[at, over]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let inline: HashMap<String, bool> = receive(&sqs, &queue, 2)
        .await
        .iter()
        .map(|m| {
            let b: serde_json::Value = serde_json::from_str(m.body().expect("body")).expect("json");
            let seq = b["sequence_number"].as_str().expect("seq").to_owned();
            (seq, b.get("data_base64").is_some())
        })
        .collect();
    assert_eq!(
        inline.get(&format!("{:056}", 1)),
        Some(&true),
        "4,096 bytes go inline"
    );
    assert_eq!(
        inline.get(&format!("{:056}", 2)),
        Some(&false),
        "4,097 bytes are claim-checked"
    );
}

#[tokio::test]
async fn sqs_dlq_sends_letters_and_claim_checks_large_ones() {
    let (dlq, sqs, queue, claims, bucket) = dlq_on_moto("dlq").await;
    // 23 small letters (three SendMessageBatch calls) and one over the limit
    let mut letters: Vec<DeadLetter> = (0..23).map(|i| letter(&format!("{i:056}"), 100)).collect();
    letters.push(letter(&format!("{:056}", 99), 10_000));
    let results = dlq.send(&letters).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let mut bodies = Vec::new();
    for m in receive(&sqs, &queue, letters.len()).await {
        assert_eq!(
            m.message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|v| v.string_value()),
            Some("malformed_json")
        );
        bodies.push(
            serde_json::from_str::<serde_json::Value>(m.body().expect("body")).expect("json"),
        );
    }
    assert_eq!(bodies.len(), letters.len());
    let big = bodies
        .iter()
        .find(|b| b["sequence_number"] == format!("{:056}", 99))
        .expect("large letter");
    assert!(big.get("data_base64").is_none());
    let uri = big["data_uri"].as_str().expect("claim check");
    let key = uri
        .strip_prefix(&format!("s3://{bucket}/_dead_letters/"))
        .expect("points into the claim-check prefix");
    let stored = claims
        .get(key)
        .await
        .expect("get")
        .expect("claim-checked object");
    let stored: serde_json::Value = serde_json::from_slice(&stored).expect("json");
    assert_eq!(stored["data_base64"].as_str().map(str::len), Some(10_000));
    for b in bodies
        .iter()
        .filter(|b| b["sequence_number"] != format!("{:056}", 99))
    {
        assert_eq!(b["data_base64"].as_str().map(str::len), Some(100));
        assert_eq!(b["reason"], "malformed_json");
        assert_eq!(b["shard_id"], "shardId-000000000000");
    }
}

#[tokio::test]
async fn sqs_dlq_reports_a_missing_queue_per_letter() {
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (s3c, bucket) = s3(None).await;
    let claims = S3Store::new(s3c, &bucket, "", None);
    let dlq = SqsDeadLetterQueue::new(
        sqs,
        &format!("{}/123456789012/no-such-queue", endpoint()),
        claims,
        4096,
    );
    let results = dlq.send(&[letter("1", 10), letter("2", 10)]).await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(Result::is_err), "{results:?}");
}
