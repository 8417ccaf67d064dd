//! The redrive tool against moto (Kinesis and SQS protocols): an on-failure
//! message names a batch; the records are fetched from the stream at its
//! sequence numbers, re-run through the archiver, and the message is deleted.

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

#[tokio::test]
async fn a_failed_batch_is_fetched_from_the_stream_rerun_and_its_message_deleted() {
    let endpoint = std::env::var("PIPELINE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("PIPELINE_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh`")
    });
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
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
    let mut processor = BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), LakeConfig::default()),
        LocalDeadLetters::new(root.join("dlq")),
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
        RetryPolicy::default(),
    );
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
