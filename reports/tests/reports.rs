//! The reports' numbers on a small fixed input, computed by hand: a lake
//! written by the real archiver from handcrafted events (one duplicated by a
//! retry), plus two dead letters.

use std::time::{Duration, Instant};

use base64_simd::STANDARD;
use pipeline_generator::Expected;
use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo};
use pipeline_processors::{
    BatchProcessor, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore, RetryPolicy,
};
use pipeline_reports::{ReportResult, run_reports, write_reports};
use pipeline_schemas::*;
use serde_json::{Value, json};

const T10: i64 = 1_795_600_800_000; // 2026-11-25T10:00:00Z

fn ev(id: u32, minutes: i64, data: EventData<'_>) -> Vec<u8> {
    let event_id = format!("00000000-0000-4000-8000-{id:012}");
    Event {
        event_id: &event_id,
        schema_version: 1,
        occurred_at_ms: T10 + minutes * 60_000,
        source: "test",
        correlation_id: "0f8fad5b-d9cb-469f-a165-70867728950e",
        data,
    }
    .to_json()
}

fn c(code: &str) -> Country {
    Country::new(code).expect("country")
}

fn cur(code: &str) -> Currency {
    Currency::new(code).expect("currency")
}

fn item(sku: &str, quantity: u32, unit_price_cents: u64) -> LineItem<'_> {
    LineItem {
        sku,
        quantity,
        unit_price_cents,
    }
}

fn signup<'a>(user: &'a str, country: &str) -> EventData<'a> {
    EventData::UserSignedUp(UserSignedUp {
        user_id: user,
        email: "x@example.com",
        country: c(country),
        channel: Channel::Web,
        marketing_opt_in: false,
    })
}

fn created<'a>(
    order: &'a str,
    user: &'a str,
    country: &str,
    currency: &str,
    items: Vec<LineItem<'a>>,
) -> EventData<'a> {
    let total = items
        .iter()
        .map(|i| u64::from(i.quantity) * i.unit_price_cents)
        .sum();
    EventData::OrderCreated(OrderCreated {
        order_id: order,
        user_id: user,
        country: c(country),
        currency: cur(currency),
        items,
        total_cents: total,
    })
}

fn paid<'a>(
    order: &'a str,
    user: &'a str,
    country: &str,
    currency: &str,
    amount: u64,
    method: PaymentMethod,
) -> EventData<'a> {
    EventData::OrderPaymentSucceeded(OrderPaymentSucceeded {
        order_id: order,
        user_id: user,
        country: c(country),
        payment_id: "pay_1",
        amount_cents: amount,
        currency: cur(currency),
        method,
    })
}

fn failed<'a>(
    order: &'a str,
    user: &'a str,
    amount: u64,
    reason: PaymentFailureReason,
) -> EventData<'a> {
    EventData::OrderPaymentFailed(OrderPaymentFailed {
        order_id: order,
        user_id: user,
        country: c("DE"),
        amount_cents: amount,
        currency: cur("EUR"),
        method: PaymentMethod::Card,
        reason,
    })
}

fn record(seq: u64, data: Vec<u8>) -> KinesisRecord {
    KinesisRecord {
        shard: 0,
        sequence_number: kinesis::sequence_number(0, seq),
        partition_key: format!("k{seq}"),
        data_base64: STANDARD.encode_to_string(&data),
        arrival_ms: T10,
        expected: Expected::Poison(ReasonCode::MalformedJson),
    }
}

async fn lake() -> (std::path::PathBuf, Vec<ReportResult>) {
    let root = std::env::temp_dir().join(format!("reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let events = vec![
        ev(1, 0, signup("u1", "DE")),
        ev(2, 1, signup("u2", "US")),
        ev(3, 2, signup("u3", "DE")),
        ev(
            4,
            15,
            created(
                "o1",
                "u1",
                "DE",
                "EUR",
                vec![item("A", 2, 1000), item("B", 1, 500)],
            ),
        ),
        ev(
            5,
            45,
            created("o2", "u2", "US", "USD", vec![item("A", 1, 1000)]),
        ),
        ev(
            6,
            65,
            created("o3", "u1", "DE", "EUR", vec![item("C", 3, 200)]),
        ),
        ev(
            7,
            16,
            failed("o1", "u1", 2500, PaymentFailureReason::CardDeclined),
        ),
        ev(
            8,
            17,
            paid("o1", "u1", "DE", "EUR", 2500, PaymentMethod::Card),
        ),
        ev(
            9,
            46,
            paid("o2", "u2", "US", "USD", 1000, PaymentMethod::Paypal),
        ),
        ev(
            10,
            66,
            failed("o3", "u1", 600, PaymentFailureReason::InsufficientFunds),
        ),
        ev(
            11,
            30,
            EventData::OrderFulfilled(OrderFulfilled {
                order_id: "o1",
                user_id: "u1",
                country: c("DE"),
                warehouse: "fra-1",
                carrier: "dhl",
                shipped_items: 3,
            }),
        ),
    ];
    let mut records: Vec<KinesisRecord> = events
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, e)| record(i as u64 + 1, e))
        .collect();
    records.push(record(50, b"{\"event_id\":".to_vec())); // malformed_json
    records.push(record(51, b"[1,2]".to_vec())); // not_an_object
    let mut p = BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), LakeConfig::default()),
        LocalDeadLetters::new(root.join("dlq")),
        DecoderConfig::default(),
        RetryPolicy::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = p
        .process(
            &mut kinesis::invocation_payload(&records, &StreamInfo::default()),
            deadline,
        )
        .await
        .expect("batch");
    assert!(out.response.batch_item_failures.is_empty());
    // a retry re-delivers o2's creation: a duplicate row the reports must not count
    let dup = vec![record(60, events[4].clone())];
    p.process(
        &mut kinesis::invocation_payload(&dup, &StreamInfo::default()),
        deadline,
    )
    .await
    .expect("batch");
    let results = run_reports(&root.join("lake"), &root.join("dlq"))
        .await
        .expect("reports");
    (root, results)
}

fn report<'a>(all: &'a [ReportResult], name: &str) -> &'a ReportResult {
    all.iter().find(|r| r.name == name).expect("report")
}

#[tokio::test]
async fn reports_equal_hand_computed_numbers() {
    let (root, all) = lake().await;
    let revenue = report(&all, "revenue_by_hour_country");
    let rows: Vec<(String, Value, Value)> = revenue
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("").to_owned(),
                r[1].clone(),
                r[4].clone(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[0].0.starts_with("2026-11-25T10:00:00"), "{rows:?}");
    assert_eq!(
        (rows[0].1.clone(), rows[0].2.clone()),
        (json!("DE"), json!(2500))
    );
    assert_eq!(
        (rows[1].1.clone(), rows[1].2.clone()),
        (json!("US"), json!(1000)),
        "o2 counted once"
    );
    assert!(rows[2].0.starts_with("2026-11-25T11:00:00"));
    assert_eq!(rows[2].2, json!(600));
    assert_eq!(revenue.column("orders"), vec![json!(1), json!(1), json!(1)]);

    let funnel = report(&all, "funnel");
    assert_eq!(
        funnel.column("step"),
        vec![
            json!("signed_up"),
            json!("ordered"),
            json!("paid"),
            json!("fulfilled")
        ]
    );
    assert_eq!(
        funnel.column("users"),
        vec![json!(3), json!(2), json!(2), json!(1)]
    );

    let rate = report(&all, "payment_failure_rate");
    assert_eq!(
        rate.column("payment_method"),
        vec![json!("card"), json!("paypal")]
    );
    assert_eq!(rate.column("failed"), vec![json!(2), json!(0)]);
    assert_eq!(rate.column("attempts"), vec![json!(3), json!(1)]);
    let r0 = rate.column("failure_rate")[0].as_f64().unwrap_or(0.0);
    assert!((r0 - 2.0 / 3.0).abs() < 1e-9);

    let reasons = report(&all, "payment_failure_reasons");
    assert_eq!(
        reasons.rows,
        vec![
            vec![json!("card"), json!("card_declined"), json!(1)],
            vec![json!("card"), json!("insufficient_funds"), json!(1)]
        ]
    );

    let skus = report(&all, "top_skus");
    assert_eq!(skus.column("sku"), vec![json!("A"), json!("C"), json!("B")]);
    assert_eq!(skus.column("units"), vec![json!(3), json!(3), json!(1)]);
    assert_eq!(
        skus.column("revenue_cents"),
        vec![json!(3000), json!(600), json!(500)]
    );

    let dlq = report(&all, "dlq_by_reason");
    assert_eq!(
        dlq.rows,
        vec![
            vec![json!("malformed_json"), json!(1)],
            vec![json!("not_an_object"), json!(1)]
        ]
    );

    // outputs: CSV, JSON, one self-contained HTML page with a chart per report
    let html = write_reports(&all, &root.join("reports")).expect("written");
    let page = std::fs::read_to_string(&html).expect("html");
    assert_eq!(page.matches("<svg class=\"chart\"").count(), all.len());
    assert!(
        !page.contains("http://")
            || page.matches("http://").count()
                == page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "no network resources"
    );
    let csv = std::fs::read_to_string(root.join("reports/top_skus.csv")).expect("csv");
    assert_eq!(csv.lines().next(), Some("sku,units,revenue_cents"));
    assert_eq!(csv.lines().nth(1), Some("A,3,3000"));
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("reports/funnel.json")).expect("json"),
    )
    .expect("json");
    assert_eq!(json[0]["step"], "signed_up");
}

#[tokio::test]
async fn only_real_days_reach_the_views_sql() {
    let root = std::env::temp_dir().join(format!("reports-days-{}", std::process::id()));
    let lake = format!("{}/", root.display());
    let ctx = || datafusion::prelude::SessionContext::new();
    for bad in [
        vec![],
        vec!["2026-11-25') OR ('1' = '1".to_owned()],
        vec!["2026-11-25".to_owned(), "2026-02-30".to_owned()],
    ] {
        assert!(
            pipeline_reports::register_lake(&ctx(), &lake, Some(&bad))
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    let good = ctx();
    let days = ["2026-11-25".to_owned(), "2026-11-24".to_owned()];
    pipeline_reports::register_lake(&good, &lake, Some(&days))
        .await
        .expect("registered");
    let rows = good
        .sql("SELECT count(*) FROM order_events")
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    assert_eq!(rows[0].num_rows(), 1);
    let _ = std::fs::remove_dir_all(&root);
}
