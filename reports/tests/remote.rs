//! The report generator against S3 (moto, started by `scripts/test.sh`): a
//! lake written by the real archiver into a bucket, read in place through
//! DataFusion's S3 object store (only the days asked for), the reports written
//! back under a dated prefix, and equal to the same reports over a local copy.

#![cfg(feature = "lambda")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;

use pipeline_generator::kinesis::{self, StreamInfo};
use pipeline_generator::{PoisonMix, TrafficConfig, generate};
use pipeline_processors::aws::S3Store;
use pipeline_processors::{
    BatchProcessor, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore, ObjectStore,
    RetryPolicy,
};
use pipeline_reports::remote::{LakeSource, run_remote};
use pipeline_schemas::DecoderConfig;

#[tokio::test]
async fn reports_are_generated_from_a_lake_in_s3_and_written_back() {
    let endpoint = std::env::var("PIPELINE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("PIPELINE_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh`")
    });
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    let client = pipeline_processors::aws::s3_client(&sdk, true);
    let bucket = format!("reports-{}", std::process::id());
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let lake = S3Store::new(client.clone(), &bucket, "lake/", None);
    let out = S3Store::new(client.clone(), &bucket, "reports/", None);

    let records = generate(TrafficConfig {
        events: 1500,
        poison: PoisonMix::uniform(0.02),
        max_record_bytes: 64 * 1024,
        ..TrafficConfig::default()
    });
    let shard = kinesis::route(&records, 1).remove(0);
    let scratch = std::env::temp_dir().join(format!("remote-reports-{}", std::process::id()));
    // the same records into the bucket and into a local lake
    let mut p = BatchProcessor::new(
        LakeArchiver::new(lake.clone(), LakeConfig::default()),
        LocalDeadLetters::new(scratch.join("letters")),
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
        RetryPolicy::default(),
    );
    let mut local = BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(scratch.join("lake")), LakeConfig::default()),
        LocalDeadLetters::new(scratch.join("local-letters")),
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
        RetryPolicy::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for batch in shard.chunks(500) {
        let payload = kinesis::invocation_payload(batch, &StreamInfo::default());
        for outcome in [
            p.process(&mut payload.clone(), deadline).await,
            local.process(&mut payload.clone(), deadline).await,
        ] {
            assert!(
                outcome
                    .expect("batch")
                    .response
                    .batch_item_failures
                    .is_empty()
            );
        }
    }
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("object store");
    let source = LakeSource::S3 {
        store: Arc::new(s3),
        bucket: bucket.clone(),
        prefix: "lake/".into(),
    };
    let letters = LocalStore::new(scratch.join("letters"));
    let run = run_remote(
        &source,
        Some(&letters),
        &out,
        &["2026-11-25".to_owned()],
        "2026-11-25",
        &scratch.join("work"),
    )
    .await
    .expect("reports");
    assert!(run.letters_in > 0, "{run:?}");
    assert_eq!(
        run.objects_out, 13,
        "six reports as CSV and JSON, and the page"
    );
    assert_eq!(run.html_key, "2026-11-25/report.html");
    let html = out.get(&run.html_key).await.expect("get").expect("page");
    assert!(String::from_utf8_lossy(&html).contains("<svg class=\"chart\""));
    let funnel = out
        .get("2026-11-25/funnel.json")
        .await
        .expect("get")
        .expect("json");
    let funnel: serde_json::Value = serde_json::from_slice(&funnel).expect("json");
    assert!(funnel[0]["users"].as_u64().unwrap_or(0) > 0);
    // every report equals the same report over the local copy of the lake
    let expected = pipeline_reports::run_reports(&scratch.join("lake"), &scratch.join("letters"))
        .await
        .expect("local reports");
    for report in &expected {
        let got = out
            .get(&format!("2026-11-25/{}.json", report.name))
            .await
            .expect("get")
            .expect("json");
        let got: serde_json::Value = serde_json::from_slice(&got).expect("json");
        assert_eq!(got, report.to_json(), "{}", report.name);
    }
    // a day with no partition reads nothing, though the bucket has rows
    let other = run_remote(
        &source,
        None::<&LocalStore>,
        &out,
        &["2026-11-24".to_owned()],
        "2026-11-24",
        &scratch.join("work"),
    )
    .await
    .expect("reports");
    let funnel = out
        .get(&other.html_key.replace("report.html", "funnel.json"))
        .await
        .expect("get")
        .expect("json");
    let funnel: serde_json::Value = serde_json::from_slice(&funnel).expect("json");
    assert_eq!(
        funnel[0]["users"].as_u64().unwrap_or(0),
        0,
        "only the days asked for are read: {funnel}"
    );
}
