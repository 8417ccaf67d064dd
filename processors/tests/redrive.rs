//! The redrive tools against moto (Kinesis, SQS and S3 protocols):
//! - batches: an on-failure message names a batch; the records are fetched
//!   from the stream at its sequence numbers, re-run through the archiver, and
//!   the message is deleted;
//! - poison: dead letters written by the SQS adapter (some claim-checked to S3)
//!   are re-validated after a fix and re-published to the stream.

#![cfg(all(feature = "aws", feature = "emulator"))]

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use common::*;
use pipeline_generator::Body;
use pipeline_processors::lake::read::count_lake;
use pipeline_processors::redrive::redrive;
use pipeline_processors::{
    BatchProcessor, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore, RetryPolicy,
};
use pipeline_schemas::DecoderConfig;

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("PIPELINE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("PIPELINE_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh`")
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

#[tokio::test]
async fn a_failed_batch_is_fetched_from_the_stream_rerun_and_its_message_deleted() {
    let sdk = sdk().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let stream = format!("redrive-{}", std::process::id());
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .expect("stream");
    let records = pipeline_generator::generate(pipeline_generator::TrafficConfig {
        events: 300,
        poison: pipeline_generator::PoisonMix::uniform(0.05),
        max_record_bytes: 64 * 1024,
        ..Default::default()
    });
    let mut entries = Vec::new();
    let mut data_of = Vec::new();
    for r in &records {
        let Body::Json(bytes) = &r.body else { continue };
        data_of.push(r.clone());
        entries.push(
            PutRecordsRequestEntry::builder()
                .partition_key(&r.partition_key)
                .data(Blob::new(bytes.clone()))
                .build()
                .expect("entry"),
        );
    }
    let put = kinesis
        .put_records()
        .stream_name(&stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("put");
    let seqs: Vec<String> = put
        .records()
        .iter()
        .map(|r| r.sequence_number().unwrap_or("").to_owned())
        .collect();
    let shard = put.records()[0].shard_id().unwrap_or("").to_owned();
    let queue = sqs
        .create_queue()
        .queue_name(format!("on-failure-{}", std::process::id()))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .unwrap_or("")
        .to_owned();
    let message = serde_json::json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "KinesisBatchInfo": {"shardId": shard, "startSequenceNumber": seqs[50], "endSequenceNumber": seqs[149],
                             "batchSize": 100, "streamArn": format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}")}
    });
    sqs.send_message()
        .queue_url(&queue)
        .message_body(message.to_string())
        .send()
        .await
        .expect("send");
    sqs.send_message()
        .queue_url(&queue)
        .message_body("not an on-failure record")
        .send()
        .await
        .expect("send");

    let root = temp_dir("redrive");
    let mut processor = local_archiver(&root);
    let report = redrive(&sqs, &queue, &kinesis, &stream, &mut processor, deadline())
        .await
        .expect("redrive");
    assert_eq!(report.messages, 2);
    assert_eq!(report.redriven, 1);
    assert_eq!(report.records, 100, "exactly the batch's sequence range");
    assert_eq!(
        report.kept.len(),
        1,
        "the unreadable message is kept: {:?}",
        report.kept
    );
    let lake = count_lake(&LocalStore::new(root.join("lake")))
        .await
        .expect("lake");
    let rows: usize = lake
        .iter()
        .filter(|(t, _)| **t != "order_items")
        .map(|(_, c)| c.unique_rows)
        .sum();
    let letters = LocalDeadLetters::new(root.join("dlq"))
        .read_all()
        .expect("letters");
    assert_eq!(
        rows + letters.len(),
        100,
        "every redriven record is a row or a dead letter"
    );
    let want_valid = data_of[50..150]
        .iter()
        .filter(|r| matches!(r.expected, pipeline_generator::Expected::Valid(_)))
        .count();
    assert_eq!(rows, want_valid);
}

/// All records of a one-shard stream, oldest first.
async fn stream_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<aws_sdk_kinesis::types::Record> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("shards");
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut it = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator()
            .map(str::to_owned);
        while let Some(i) = it {
            let page = kinesis
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .expect("records");
            if page.records().is_empty() {
                break;
            }
            out.extend(page.records().iter().cloned());
            it = page.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

/// Messages in the queue (all visible: the redrive releases what it keeps).
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return bodies;
        }
        for m in got.messages() {
            bodies.push(m.body().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

#[tokio::test]
async fn poison_records_are_revalidated_after_a_fix_and_republished_with_their_keys() {
    use pipeline_processors::aws::{S3Store, SqsDeadLetterQueue};
    use pipeline_processors::redrive::{AwsClients, PoisonOptions, redrive_poison};
    let sdk = sdk().await;
    let clients = AwsClients {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        kinesis: aws_sdk_kinesis::Client::new(&sdk),
        s3: pipeline_processors::aws::s3_client(&sdk, true),
    };
    let id = format!("{}-{}", std::process::id(), line!());
    let stream = format!("poison-{id}");
    clients
        .kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .expect("stream");
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(format!("dead-letters-{id}"))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .unwrap_or("")
        .to_owned();
    let bucket = format!("claims-{id}");
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");

    // The bug: the archiver ran with a record limit far too low, so valid
    // orders with many items were dead-lettered as record_too_large, next to
    // truly malformed records. Letters over 1,200 bytes are claim-checked.
    let records = shard_records(400, 7, 0.0);
    let mut mixed = pipeline_generator::generate(pipeline_generator::TrafficConfig {
        events: 40,
        seed: 8,
        poison: pipeline_generator::PoisonMix::parse("malformed_json=1").expect("mix"),
        max_record_bytes: 64 * 1024,
        ..Default::default()
    });
    mixed.retain(|r| matches!(r.expected, pipeline_generator::Expected::Poison(_)));
    let mut records = records;
    records.extend(pipeline_generator::kinesis::route(&mixed, 1).remove(0));
    let low = DecoderConfig {
        max_record_bytes: 450,
    };
    let dlq = SqsDeadLetterQueue::new(
        clients.sqs.clone(),
        &queue,
        S3Store::new(clients.s3.clone(), &bucket, "_dead_letters/", None),
        1200,
    );
    let root = temp_dir("poison");
    let mut processor = BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), LakeConfig::default()),
        dlq,
        low,
        RetryPolicy::default(),
    );
    let out = processor
        .process(&mut payload(&records), deadline())
        .await
        .expect("invocation");
    assert!(out.response.batch_item_failures.is_empty());
    let too_large = out
        .stats
        .dead_lettered
        .get("record_too_large")
        .copied()
        .unwrap_or(0);
    let malformed = out
        .stats
        .dead_lettered
        .get("malformed_json")
        .copied()
        .unwrap_or(0);
    let size = |r: &pipeline_generator::kinesis::KinesisRecord| {
        base64_simd::STANDARD
            .decode_to_vec(r.data_base64.as_bytes())
            .map_or(0, |d| d.len())
    };
    let valid = |r: &pipeline_generator::kinesis::KinesisRecord| {
        matches!(r.expected, pipeline_generator::Expected::Valid(_))
    };
    let fixable = records
        .iter()
        .filter(|r| valid(r) && size(r) > low.max_record_bytes)
        .count();
    let still_poison = records.iter().filter(|r| !valid(r)).count();
    assert!(
        fixable > 20 && malformed > 20,
        "{:?}",
        out.stats.dead_lettered
    );
    assert_eq!(too_large + malformed, fixable + still_poison);
    let claim_checked = clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list")
        .key_count()
        .unwrap_or(0);
    assert!(claim_checked > 0, "some letters are claim-checked");

    // The fix is deployed (the default 1 MiB limit). A dry run publishes
    // nothing and deletes nothing.
    let options = PoisonOptions {
        dry_run: true,
        ..PoisonOptions::default()
    };
    let report = redrive_poison(&clients, &queue, &stream, &options, deadline())
        .await
        .expect("dry run");
    assert_eq!(report.would_republish, fixable);
    assert_eq!(
        report.still_rejected.values().sum::<usize>(),
        still_poison,
        "{report:?}"
    );
    assert!(stream_records(&clients.kinesis, &stream).await.is_empty());

    // Only one reason: the malformed letters are left alone.
    let options = PoisonOptions {
        reasons: vec!["record_too_large".into()],
        ..PoisonOptions::default()
    };
    let report = redrive_poison(&clients, &queue, &stream, &options, deadline())
        .await
        .expect("redrive");
    assert_eq!(report.republished, fixable, "{report:?}");
    assert_eq!(report.filtered, malformed);
    assert_eq!(
        report.still_rejected.values().sum::<usize>(),
        too_large - fixable,
        "oversized malformed records stay"
    );
    assert!(report.kept.is_empty(), "{:?}", report.kept);

    // Kinesis holds exactly the fixed records, bytes and partition keys intact.
    let want: std::collections::BTreeSet<(String, Vec<u8>)> = records
        .iter()
        .filter_map(|r| {
            let data = base64_simd::STANDARD
                .decode_to_vec(r.data_base64.as_bytes())
                .ok()?;
            (valid(r) && data.len() > low.max_record_bytes).then(|| (r.partition_key.clone(), data))
        })
        .collect();
    let got: std::collections::BTreeSet<(String, Vec<u8>)> =
        stream_records(&clients.kinesis, &stream)
            .await
            .iter()
            .map(|r| {
                (
                    r.partition_key().unwrap_or_default().to_owned(),
                    r.data().as_ref().to_vec(),
                )
            })
            .collect();
    assert_eq!(got.len(), fixable);
    assert_eq!(got, want);

    // What is still poison stays in the queue, visible, with its reason.
    let left = drain(&clients.sqs, &queue).await;
    assert_eq!(left.len(), still_poison);
}
