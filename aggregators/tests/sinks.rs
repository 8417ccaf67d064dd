//! The metrics sinks against real servers started by `scripts/test.sh`:
//! InfluxDB 1.6 (Debian's `influxdb`, line protocol on `/write`) and moto
//! (the Timestream write protocol). Request shapes are checked with an SDK
//! interceptor on the real client; faults are injected the same way.

#![cfg(all(feature = "aws", feature = "influx"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_timestreamwrite::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_timestreamwrite::config::{
    ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_smithy_types::body::SdkBody;
use pipeline_aggregators::influx::{InfluxApi, InfluxConfig, InfluxSink};
use pipeline_aggregators::measures::{Dim, Dims, Measures};
use pipeline_aggregators::timestream::TimestreamSink;
use pipeline_aggregators::{MetricRecord, MetricsSink, SinkError};
use pipeline_processors::retry::RetryPolicy;
use serde_json::Value;

fn env(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with `bash scripts/test.sh`"))
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
    }
}

fn records(n: usize, version: i64, shard: &str) -> Vec<MetricRecord> {
    let countries = ["DE", "US", "FR", "JP"];
    (0..n)
        .map(|i| MetricRecord {
            minute_ms: 1_795_617_420_000 + 60_000 * (i / countries.len()) as i64,
            dims: Dims {
                country: Dim::new(countries[i % countries.len()]).expect("dim"),
                currency: Dim::new("EUR").expect("dim"),
                payment_method: Dim::new("card").expect("dim"),
            },
            shard_id: shard.into(),
            window: "1435".into(),
            measures: Measures {
                orders_created: 1 + i as u64 % 3,
                gross_revenue_cents: 1000 * (i as u64 + 1),
                ..Default::default()
            },
            version,
        })
        .collect()
}

// ---------------------------------------------------------------- InfluxDB

async fn influx_query(url: &str, db: &str, q: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{url}/query"))
        .query(&[("db", db), ("q", q)])
        .send()
        .await
        .expect("query");
    serde_json::from_str(&resp.text().await.expect("body")).expect("json")
}

/// Creates `db` and waits until the server lists it. InfluxDB answers
/// `CREATE DATABASE` with 200 even when the statement failed (the error is in
/// the body), and a write right after a server start has once found no
/// database (CI, f1013ed), so the test checks both instead of trusting the
/// status code.
async fn create_db(url: &str, db: &str) {
    let client = reqwest::Client::new();
    let give_up = Instant::now() + Duration::from_secs(15);
    loop {
        let body = client
            .post(format!("{url}/query"))
            .form(&[("q", format!("CREATE DATABASE {db}"))])
            .send()
            .await
            .expect("create database")
            .error_for_status()
            .expect("created")
            .text()
            .await
            .expect("answer");
        let listed = influx_query(url, db, "SHOW DATABASES").await;
        let is_listed = listed["results"][0]["series"][0]["values"]
            .as_array()
            .map(|rows| rows.iter().any(|r| r[0].as_str() == Some(db)))
            .unwrap_or(false);
        if is_listed {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "database {db} not listed after CREATE DATABASE: {body}; SHOW DATABASES: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sum_of(v: &Value) -> Option<u64> {
    v["results"][0]["series"][0]["values"][0][1].as_u64()
}

#[tokio::test]
async fn influx_v1_writes_gzip_batches_and_retries_are_upserts() {
    let url = env("PIPELINE_TEST_INFLUX_URL");
    let db = format!("metrics_{}", std::process::id());
    create_db(&url, &db).await;
    let sink = InfluxSink::new(InfluxConfig {
        url: url.clone(),
        api: InfluxApi::V1 {
            database: db.clone(),
        },
        token: None,
        batch_lines: 7, // several requests
        gzip: true,
        retry: quick(),
        timeout: Duration::from_secs(5),
    })
    .expect("sink");
    let recs = records(30, 1, "shardId-000000000000");
    let report = sink.write(&recs, deadline()).await.expect("written");
    assert_eq!(report.written, 30);
    assert_eq!(report.requests, 5);
    let want: u64 = recs.iter().map(|r| r.measures.gross_revenue_cents).sum();
    let q = "SELECT sum(gross_revenue_cents) FROM business_metrics";
    assert_eq!(sum_of(&influx_query(&url, &db, q).await), Some(want));
    // the same write again (a retried final invocation): points are replaced, not added
    sink.write(&recs, deadline()).await.expect("rewritten");
    assert_eq!(sum_of(&influx_query(&url, &db, q).await), Some(want));
    // another shard's contribution to the same minutes adds up
    sink.write(&records(30, 1, "shardId-000000000001"), deadline())
        .await
        .expect("written");
    assert_eq!(sum_of(&influx_query(&url, &db, q).await), Some(2 * want));
    let by_country = influx_query(
        &url,
        &db,
        "SELECT sum(orders_created) FROM business_metrics GROUP BY country",
    )
    .await;
    assert_eq!(
        by_country["results"][0]["series"].as_array().map(Vec::len),
        Some(4)
    );
}

#[tokio::test]
async fn influx_errors_are_classified() {
    let url = env("PIPELINE_TEST_INFLUX_URL");
    let sink = InfluxSink::new(InfluxConfig {
        url: url.clone(),
        api: InfluxApi::V1 {
            database: "no_such_database".into(),
        },
        token: None,
        batch_lines: 100,
        gzip: false,
        retry: quick(),
        timeout: Duration::from_secs(5),
    })
    .expect("sink");
    let err = sink
        .write(&records(2, 1, "s"), deadline())
        .await
        .expect_err("no database");
    assert!(
        matches!(err, SinkError::Permanent(ref m) if m.contains("404")),
        "{err:?}"
    );
    let down = InfluxSink::new(InfluxConfig {
        url: "http://127.0.0.1:9".into(),
        api: InfluxApi::V1 {
            database: "x".into(),
        },
        token: None,
        batch_lines: 100,
        gzip: false,
        retry: quick(),
        timeout: Duration::from_secs(1),
    })
    .expect("sink");
    let err = down
        .write(&records(1, 1, "s"), deadline())
        .await
        .expect_err("refused");
    assert!(matches!(err, SinkError::Transient(_)), "{err:?}");
}

// ---------------------------------------------------------------- Timestream

/// Records every WriteRecords body, and turns the next `throttle` responses
/// into `ThrottlingException`s.
#[derive(Debug, Default)]
struct Spy {
    bodies: Mutex<Vec<Value>>,
    throttle: AtomicU32,
}

#[derive(Debug)]
struct SpyInterceptor(Arc<Spy>);

impl Intercept for SpyInterceptor {
    fn name(&self) -> &'static str {
        "Spy"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let req = ctx.request();
        let target = req.headers().get("x-amz-target").unwrap_or("");
        if target.ends_with("WriteRecords")
            && let Some(bytes) = req.body().bytes()
        {
            let v: Value = serde_json::from_slice(bytes)?;
            self.0
                .bodies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(v);
        }
        Ok(())
    }
    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if self.0.throttle.load(Ordering::SeqCst) > 0 {
            self.0.throttle.fetch_sub(1, Ordering::SeqCst);
            let resp = ctx.response_mut();
            *resp.status_mut() = 400u16.try_into()?;
            *resp.body_mut() = SdkBody::from(
                r#"{"__type":"com.amazonaws.timestream.v20181101#ThrottlingException","message":"Rate exceeded"}"#,
            );
        }
        Ok(())
    }
}

async fn timestream(spy: Arc<Spy>) -> (aws_sdk_timestreamwrite::Client, String, String) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("PIPELINE_TEST_AWS_ENDPOINT"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let plain = aws_sdk_timestreamwrite::Client::new(&sdk);
    // a database per test: tests run in parallel, and moto's CreateDatabase
    // on an existing name races with the other test's CreateTable
    let table = format!("business_metrics_{}", spy.throttle.load(Ordering::SeqCst));
    let db = format!("events_{}_{table}", std::process::id());
    let _ = plain.create_database().database_name(&db).send().await;
    plain
        .create_table()
        .database_name(&db)
        .table_name(&table)
        .send()
        .await
        .expect("create table");
    let conf = aws_sdk_timestreamwrite::config::Builder::from(&sdk)
        .interceptor(SpyInterceptor(spy))
        .build();
    (aws_sdk_timestreamwrite::Client::from_conf(conf), db, table)
}

#[tokio::test]
async fn timestream_batches_at_100_with_common_attributes() {
    let spy = Arc::new(Spy::default());
    let (client, db, table) = timestream(spy.clone()).await;
    let sink = TimestreamSink::new(client, &db, &table, quick());
    let mut recs = records(230, 1_795_617_600_000, "shardId-000000000000");
    recs.extend(records(20, 1_795_617_600_000, "shardId-000000000001"));
    let report = sink.write(&recs, deadline()).await.expect("written");
    assert_eq!(report.written, 250);
    let bodies = spy.bodies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["Records"].as_array().map_or(0, Vec::len))
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec![20, 30, 100, 100],
        "at most 100 records a call, one shard per call"
    );
    for b in &bodies {
        assert_eq!(b["DatabaseName"], db);
        let common = &b["CommonAttributes"];
        assert_eq!(common["MeasureName"], "business_metrics");
        assert_eq!(common["MeasureValueType"], "MULTI");
        assert_eq!(common["TimeUnit"], "MILLISECONDS");
        assert_eq!(common["Version"], 1_795_617_600_000i64);
        let dims: Vec<&str> = common["Dimensions"]
            .as_array()
            .expect("dims")
            .iter()
            .filter_map(|d| d["Name"].as_str())
            .collect();
        assert_eq!(dims, ["shard_id", "window"]);
        let first = &b["Records"][0];
        assert_eq!(first["MeasureValues"].as_array().map(Vec::len), Some(10));
        assert!(
            first["MeasureValues"]
                .as_array()
                .expect("values")
                .iter()
                .all(|m| m["Type"] == "BIGINT")
        );
        assert_eq!(first["Dimensions"].as_array().map(Vec::len), Some(3));
    }
}

#[tokio::test]
async fn timestream_throttling_is_retried_by_the_sdk_and_by_us() {
    let spy = Arc::new(Spy {
        throttle: AtomicU32::new(4),
        ..Spy::default()
    });
    let (client, db, table) = timestream(spy.clone()).await;
    let sink = TimestreamSink::new(client, &db, &table, quick());
    let report = sink
        .write(&records(50, 7, "shardId-000000000002"), deadline())
        .await
        .expect("written after throttling");
    assert_eq!(report.written, 50);
    assert!(report.retries >= 1, "our retry ran after the SDK's");
    assert_eq!(spy.throttle.load(Ordering::SeqCst), 0);
}
