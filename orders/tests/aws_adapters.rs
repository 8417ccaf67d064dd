//! The DynamoDB store and the Kinesis stream against moto (a local server
//! speaking both protocols; `scripts/test.sh` starts it), through the real
//! SDK: transactions with conditions, the outbox, idempotency, PutRecords.

#![cfg(feature = "aws")]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_sdk_kinesis::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use pipeline_orders::dynamo::DynamoStore;
use pipeline_orders::kinesis::KinesisStream;
use pipeline_orders::outbox::relay;
use pipeline_orders::payments::GOOD_CARD;
use pipeline_orders::ports::{EventStream, Store};
use pipeline_orders::{ApiRequest, ApiResponse, Ids, LocalProvider, OrderService};
use pipeline_schemas::{EventType, RecordParser};
use serde_json::{Value, json};

type Svc = OrderService<DynamoStore, KinesisStream, LocalProvider>;

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("PIPELINE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("PIPELINE_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh`")
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

async fn setup(name: &str) -> (Svc, aws_sdk_kinesis::Client, String) {
    let sdk = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("orders-{name}-{}", std::process::id());
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key")
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attr")
    };
    ddb.create_table()
        .table_name(&table)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let stream = new_stream(&kinesis, name).await;
    let svc = OrderService::new(
        DynamoStore::new(ddb, &table),
        KinesisStream::new(kinesis.clone(), &stream),
        LocalProvider::default(),
        Ids::seeded(11, 1_795_617_476_000),
    );
    (svc, kinesis, stream)
}

async fn call(s: &Svc, method: &str, path: &str, body: Value, key: Option<&str>) -> ApiResponse {
    let body = body.to_string();
    s.handle(ApiRequest {
        method,
        path,
        body: body.as_bytes(),
        idempotency_key: key,
        correlation_id: None,
    })
    .await
}

/// Every record in the (one-shard) stream: partition key and data.
async fn stream_records(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    let shard = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("shards")
        .shards()[0]
        .shard_id()
        .to_owned();
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator()
        .map(str::to_owned);
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .expect("records");
        if page.records().is_empty() {
            break;
        }
        for r in page.records() {
            out.push((
                r.partition_key().unwrap_or_default().to_owned(),
                r.data().as_ref().to_vec(),
            ));
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    out
}

/// Every record in the (one-shard) stream, validated with the pipeline's parser.
async fn stream_events(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<(EventType, String)> {
    let mut parser = RecordParser::new();
    let mut out = Vec::new();
    for (key, mut data) in stream_records(kinesis, stream).await {
        let e = parser
            .parse(&mut data)
            .expect("every event passes the contract");
        assert_eq!(e.data.partition_key(), key);
        out.push((e.event_type(), e.event_id.to_owned()));
    }
    out
}

#[tokio::test]
async fn orders_commit_transactionally_and_publish_to_kinesis() {
    let (s, kinesis, stream) = setup("flow").await;
    let s = Arc::new(s);
    let u = call(&s, "POST", "/users", json!({"email": "a@example.com", "country": "FR", "channel": "ios", "marketing_opt_in": false}), None).await;
    assert_eq!(u.status, 201, "{}", u.body);
    let user = u.body["user_id"].as_str().expect("id").to_owned();
    let o = call(&s, "POST", "/orders", json!({"user_id": user, "currency": "EUR", "items": [{"sku": "S", "quantity": 3, "unit_price_cents": 250}]}), None).await;
    assert_eq!(o.status, 201, "{}", o.body);
    let order = o.body["order_id"].as_str().expect("id").to_owned();
    // concurrent payments: DynamoDB's condition on the version lets one through
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        let path = format!("/orders/{order}/payment");
        tasks.push(tokio::spawn(async move {
            call(
                &s,
                "POST",
                &path,
                json!({"method": "card", "card_number": GOOD_CARD}),
                None,
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let st = t.await.expect("task");
        assert!(st == 200 || st == 409, "{st}");
        ok += usize::from(st == 200);
    }
    assert_eq!(ok, 1);
    assert_eq!(s.payments().charges(), 1);
    let fulfil = call(
        &s,
        "POST",
        &format!("/orders/{order}/fulfillment"),
        json!({"warehouse": "w", "carrier": "c"}),
        None,
    )
    .await;
    assert_eq!(fulfil.status, 200);
    let cancel = call(
        &s,
        "POST",
        &format!("/orders/{order}/cancel"),
        json!({"reason": "customer_request"}),
        None,
    )
    .await;
    assert_eq!(cancel.status, 409, "not after fulfilment");
    let got = call(&s, "GET", &format!("/orders/{order}"), Value::Null, None).await;
    assert_eq!(got.body["status"], "fulfilled");
    assert_eq!(got.body["version"], 3);
    let types: Vec<EventType> = stream_events(&kinesis, &stream)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        types,
        [
            EventType::UserSignedUp,
            EventType::OrderCreated,
            EventType::OrderPaymentSucceeded,
            EventType::OrderFulfilled
        ]
    );
    assert!(s.store().pending(100).await.expect("outbox").is_empty());
}

#[tokio::test]
async fn the_outbox_survives_a_crash_and_idempotency_keys_hold() {
    let (mut s, kinesis, stream) = setup("relay").await;
    s.simulate_crash_after_commit(true);
    let u = call(&s, "POST", "/users", json!({"email": "b@example.com", "country": "JP", "channel": "web", "marketing_opt_in": true}), Some("k1")).await;
    assert_eq!(u.status, 201);
    let again = call(&s, "POST", "/users", json!({"email": "b@example.com", "country": "JP", "channel": "web", "marketing_opt_in": true}), Some("k1")).await;
    assert_eq!(again, u, "the stored response, no second user");
    let other = call(&s, "POST", "/users", json!({"email": "c@example.com", "country": "JP", "channel": "web", "marketing_opt_in": true}), Some("k1")).await;
    assert_eq!(other.status, 422);
    let user = u.body["user_id"].as_str().expect("id");
    let login = call(
        &s,
        "POST",
        &format!("/users/{user}/login"),
        json!({"method": "password", "country": "JP"}),
        None,
    )
    .await;
    assert_eq!(login.status, 200);
    let missing = call(
        &s,
        "POST",
        "/users/usr_nobody/login",
        json!({"method": "password", "country": "JP"}),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert!(
        stream_events(&kinesis, &stream).await.is_empty(),
        "crashed before publishing"
    );
    let pending = s.store().pending(100).await.expect("outbox");
    assert_eq!(pending.len(), 2);
    let now = s.ids().now_ms() + 60_000;
    let done = relay(s.store(), s.stream(), now, 30_000, 100)
        .await
        .expect("relay");
    assert_eq!(done.sent, 2);
    assert!(s.store().pending(100).await.expect("outbox").is_empty());
    let published = stream_events(&kinesis, &stream).await;
    let ids: HashSet<&String> = published.iter().map(|(_, id)| id).collect();
    let want: HashSet<&String> = pending.iter().map(|e| &e.event_id).collect();
    assert_eq!(
        ids, want,
        "the relay published exactly the committed events"
    );
}

/// Refuses a `PutRecords` call over Kinesis' limits, as Kinesis does (moto
/// takes any): more than 500 records, or more than 5 MiB of data and keys.
/// With `fail_call: Some(n)`, the `n`th call (from 0) fails as if the
/// connection dropped.
#[derive(Debug, Default)]
struct KinesisLimits {
    calls: Mutex<Vec<(usize, usize)>>,
    fail_call: Option<usize>,
}

#[derive(Debug)]
struct Enforce(Arc<KinesisLimits>);

impl Intercept for Enforce {
    fn name(&self) -> &'static str {
        "KinesisLimits"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let req = ctx.request();
        if !req
            .headers()
            .get("x-amz-target")
            .unwrap_or("")
            .ends_with("PutRecords")
        {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(req.body().bytes().unwrap_or_default())?;
        let records = body["Records"].as_array().cloned().unwrap_or_default();
        let bytes: usize = records
            .iter()
            .map(|r| {
                // the data travels as base64; Kinesis counts it decoded
                let b64 = r["Data"].as_str().unwrap_or("");
                let padding = b64.bytes().rev().take_while(|&c| c == b'=').count();
                b64.len() / 4 * 3 - padding + r["PartitionKey"].as_str().unwrap_or("").len()
            })
            .sum();
        let mut calls = self.0.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push((records.len(), bytes));
        if self.0.fail_call == Some(calls.len() - 1) {
            return Err("connection reset (injected)".into());
        }
        if records.len() > 500 || bytes > 5 * 1024 * 1024 {
            return Err(format!(
                "{} records, {bytes} bytes: over PutRecords' limits",
                records.len()
            )
            .into());
        }
        Ok(())
    }
}

/// A Kinesis client that enforces `limits`, and a new one-shard stream.
async fn limited_stream(
    name: &str,
    limits: Arc<KinesisLimits>,
) -> (aws_sdk_kinesis::Client, String) {
    let sdk = sdk().await;
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&sdk)
            .interceptor(Enforce(limits))
            .build(),
    );
    let stream = new_stream(&kinesis, name).await;
    (kinesis, stream)
}

/// A new one-shard stream named after the test and the process.
async fn new_stream(kinesis: &aws_sdk_kinesis::Client, name: &str) -> String {
    let stream = format!("events-{name}-{}", std::process::id());
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .expect("create stream");
    stream
}

#[tokio::test]
async fn large_events_are_put_within_kinesis_limits_and_an_impossible_one_alone_fails() {
    let limits = Arc::new(KinesisLimits::default());
    let (kinesis, stream) = limited_stream("limits", limits.clone()).await;
    // 600 events of 40 KB (an order of 100 items with long SKUs), one of
    // 1.1 MB among them, which Kinesis can never take
    let mut records: Vec<(String, Vec<u8>)> = (0..600)
        .map(|i| (format!("ord_{i:04}"), vec![b'a' + (i % 26) as u8; 40_000]))
        .collect();
    records[300].1 = vec![b'x'; 1_100_000];
    let put = KinesisStream::new(kinesis.clone(), &stream)
        .put(&records)
        .await
        .expect("the calls within the limits succeed");
    assert_eq!(put.iter().filter(|ok| !**ok).count(), 1);
    assert!(!put[300], "the 1.1 MB event is reported not put");
    let calls = limits
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        calls.len() >= 5 && calls.iter().all(|&(n, b)| n <= 500 && b <= 5 * 1024 * 1024),
        "calls (records, bytes): {calls:?}"
    );
    let stored = stream_records(&kinesis, &stream).await;
    let want: Vec<(String, Vec<u8>)> = records
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| (i != 300).then_some(r))
        .collect();
    assert_eq!(stored.len(), 599);
    assert!(
        stored == want,
        "every other event is in the stream, in order"
    );
}

#[tokio::test]
async fn a_call_failing_after_others_keeps_their_records_put() {
    let limits = Arc::new(KinesisLimits {
        fail_call: Some(1),
        ..KinesisLimits::default()
    });
    let (kinesis, stream) = limited_stream("partial", limits.clone()).await;
    let records: Vec<(String, Vec<u8>)> = (0..1200)
        .map(|i| (format!("usr_{i:04}"), format!("event {i}").into_bytes()))
        .collect();
    let put = KinesisStream::new(kinesis.clone(), &stream)
        .put(&records)
        .await
        .expect("the first call succeeded, so the put reports per record");
    // the first call's 500 are put; the failed call's and the untried ones are not,
    // so the outbox retries those 700 and does not publish the 500 twice
    assert!(put[..500].iter().all(|ok| *ok) && put[500..].iter().all(|ok| !*ok));
    let stored = stream_records(&kinesis, &stream).await;
    assert!(
        stored == records[..500],
        "the stream holds the first call's records"
    );
    // a put whose first call fails is an error, as before
    let first_fails = Arc::new(KinesisLimits {
        fail_call: Some(0),
        ..KinesisLimits::default()
    });
    let (kinesis, stream) = limited_stream("down", first_fails).await;
    let err = KinesisStream::new(kinesis, &stream)
        .put(&records)
        .await
        .expect_err("nothing was put");
    assert!(err.contains("connection reset"), "{err}");
}
