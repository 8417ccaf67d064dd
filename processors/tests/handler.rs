//! The batch core and the archiver on every path: all valid, poison mixed in,
//! an upload failing mid-batch (then replayed), the DLQ unavailable, transient
//! faults retried, an identical batch retried. Embedded adapters, with faults
//! injected by wrapping them.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use arrow_array::cast::AsArray;
use common::*;
use pipeline_generator::Expected;
use pipeline_processors::faults::{FaultPlan, FaultyDlq, FaultyStore};
use pipeline_processors::{
    BatchProcessor, LakeArchiver, LakeConfig, LocalDeadLetters, LocalStore, RetryPolicy,
};
use pipeline_schemas::{DecoderConfig, EventData, RecordParser};

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(5),
    }
}

fn config() -> LakeConfig {
    LakeConfig {
        retry: quick_retry(),
        ..LakeConfig::default()
    }
}

fn decoder() -> DecoderConfig {
    DecoderConfig {
        max_record_bytes: 64 * 1024,
    }
}

/// The archiver on a local lake and DLQ under `root`, with no faults.
fn local_processor(
    root: &std::path::Path,
) -> BatchProcessor<LakeArchiver<LocalStore>, LocalDeadLetters> {
    BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), config()),
        LocalDeadLetters::new(root.join("dlq")),
        decoder(),
        quick_retry(),
    )
}

fn lake_event_ids(root: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, batches) in read_lake(root) {
        for b in batches {
            for row in 0..b.num_rows() {
                out.entry(table.clone())
                    .or_default()
                    .push(s(&b, "event_id", row).expect("event_id"));
            }
        }
    }
    out
}

#[tokio::test]
async fn all_valid_records_land_in_the_lake_column_for_column() {
    let records = shard_records(2000, 11, 0.0);
    let root = temp_dir("all-valid");
    let mut p = local_processor(&root);
    let out = p
        .process(&mut payload(&records), deadline())
        .await
        .expect("a Kinesis event");
    assert!(
        out.response.batch_item_failures.is_empty(),
        "{:?}",
        out.stats.errors
    );
    assert_eq!(out.stats.valid, 2000);
    assert_eq!(out.stats.failed, 0);

    // The expected rows, from the original record bytes.
    let mut parser = RecordParser::new();
    let mut originals = Vec::new();
    for r in &records {
        originals.push(
            base64_simd::STANDARD
                .decode_to_vec(&r.data_base64)
                .expect("base64"),
        );
    }
    let mut by_id = HashMap::new();
    let mut want_items = 0;
    let mut bufs: Vec<Vec<u8>> = originals.clone();
    for (r, buf) in records.iter().zip(bufs.iter_mut()) {
        let e = parser.parse(buf).expect("valid");
        if let EventData::OrderCreated(d) = &e.data {
            want_items += d.items.len();
        }
        by_id.insert(
            e.event_id.to_owned(),
            (r.sequence_number.clone(), r.arrival_ms, e.to_json()),
        );
    }

    let lake = read_lake(&root.join("lake"));
    let mut seen = 0;
    let mut items = 0;
    let mut parser = RecordParser::new();
    for (table, batches) in &lake {
        for b in batches {
            for row in 0..b.num_rows() {
                let id = s(b, "event_id", row).expect("event_id");
                let (seq, arrival, json) = by_id.get(&id).expect("row of a produced event");
                let mut json = json.clone();
                let e = parser.parse(&mut json).expect("valid");
                assert_eq!(
                    s(b, "event_type", row).as_deref(),
                    Some(e.event_type().as_str())
                );
                assert_eq!(i32c(b, "schema_version", row), Some(1));
                assert_eq!(ts(b, "occurred_at", row), e.occurred_at_ms);
                assert_eq!(ts(b, "arrived_at", row), *arrival);
                assert_eq!(s(b, "source", row).as_deref(), Some(e.source));
                assert_eq!(
                    s(b, "correlation_id", row).as_deref(),
                    Some(e.correlation_id)
                );
                assert_eq!(s(b, "sequence_number", row).as_deref(), Some(seq.as_str()));
                assert_eq!(
                    s(b, "shard_id", row).as_deref(),
                    Some("shardId-000000000000")
                );
                match (table.as_str(), &e.data) {
                    ("order_items", EventData::OrderCreated(d)) => {
                        let line = i32c(b, "line_number", row).expect("line") as usize;
                        let item = &d.items[line - 1];
                        assert_eq!(s(b, "sku", row).as_deref(), Some(item.sku));
                        assert_eq!(i32c(b, "quantity", row), Some(item.quantity as i32));
                        assert_eq!(
                            i64c(b, "unit_price_cents", row),
                            Some(item.unit_price_cents as i64)
                        );
                        assert_eq!(s(b, "currency", row).as_deref(), Some(d.currency.as_str()));
                        assert_eq!(s(b, "order_id", row).as_deref(), Some(d.order_id));
                        items += 1;
                        continue;
                    }
                    ("order_events", EventData::OrderCreated(d)) => {
                        assert_eq!(i64c(b, "amount_cents", row), Some(d.total_cents as i64));
                        assert_eq!(i32c(b, "item_count", row), Some(d.items.len() as i32));
                        assert_eq!(s(b, "payment_method", row), None);
                    }
                    ("order_events", EventData::OrderPaymentSucceeded(d)) => {
                        assert_eq!(i64c(b, "amount_cents", row), Some(d.amount_cents as i64));
                        assert_eq!(s(b, "payment_id", row).as_deref(), Some(d.payment_id));
                        assert_eq!(
                            s(b, "payment_method", row).as_deref(),
                            Some(d.method.as_str())
                        );
                        assert_eq!(i32c(b, "item_count", row), None);
                    }
                    ("order_events", EventData::OrderPaymentFailed(d)) => {
                        assert_eq!(
                            s(b, "failure_reason", row).as_deref(),
                            Some(d.reason.as_str())
                        );
                        assert_eq!(s(b, "currency", row).as_deref(), Some(d.currency.as_str()));
                    }
                    ("order_events", EventData::OrderFulfilled(d)) => {
                        assert_eq!(s(b, "warehouse", row).as_deref(), Some(d.warehouse));
                        assert_eq!(s(b, "carrier", row).as_deref(), Some(d.carrier));
                        assert_eq!(i32c(b, "shipped_items", row), Some(d.shipped_items as i32));
                        assert_eq!(i64c(b, "amount_cents", row), None);
                    }
                    ("order_events", EventData::OrderCancelled(d)) => {
                        assert_eq!(
                            s(b, "cancel_reason", row).as_deref(),
                            Some(d.reason.as_str())
                        );
                    }
                    ("user_events", EventData::UserSignedUp(d)) => {
                        assert_eq!(s(b, "user_id", row).as_deref(), Some(d.user_id));
                        assert_eq!(s(b, "channel", row).as_deref(), Some(d.channel.as_str()));
                        let domain = d.email.rsplit_once('@').map(|(_, dom)| dom.to_owned());
                        assert_eq!(s(b, "email_domain", row), domain);
                        assert_eq!(s(b, "login_method", row), None);
                    }
                    ("user_events", EventData::UserLoggedIn(d)) => {
                        assert_eq!(
                            s(b, "login_method", row).as_deref(),
                            Some(d.method.as_str())
                        );
                        assert_eq!(s(b, "country", row).as_deref(), Some(d.country.as_str()));
                        assert_eq!(s(b, "email_domain", row), None);
                    }
                    ("user_events", EventData::UserProfileUpdated(d)) => {
                        let list = b
                            .column_by_name("changed_fields")
                            .expect("col")
                            .as_list::<i32>();
                        let values = list.value(row);
                        let got: Vec<String> = values
                            .as_string::<i32>()
                            .iter()
                            .map(|v| v.unwrap_or("").to_owned())
                            .collect();
                        assert_eq!(got, d.changed_fields);
                    }
                    (t, d) => panic!("{} in table {t}", d.event_type()),
                }
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 2000, "one event row per event");
    assert_eq!(items, want_items, "one item row per line item");
    // no e-mail address anywhere in the lake
    for batches in lake.values() {
        for b in batches {
            assert!(b.schema().field_with_name("email").is_err());
        }
    }
}

#[tokio::test]
async fn poison_records_go_to_the_dlq_and_the_batch_succeeds() {
    let records = shard_records(3000, 12, 0.1);
    let root = temp_dir("poison");
    let dlq = LocalDeadLetters::new(root.join("dlq"));
    let mut p = BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), config()),
        dlq.clone(),
        decoder(),
        quick_retry(),
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
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    let mut valid = 0;
    for r in &records {
        match r.expected {
            Expected::Poison(reason) => *want.entry(reason.as_str()).or_insert(0) += 1,
            Expected::Valid(_) => valid += 1,
        }
    }
    assert_eq!(out.stats.dead_lettered, want);
    let letters = dlq.read_all().expect("letters");
    assert_eq!(letters.len(), want.values().sum::<usize>());
    let by_seq: HashMap<&str, &pipeline_generator::kinesis::KinesisRecord> = records
        .iter()
        .map(|r| (r.sequence_number.as_str(), r))
        .collect();
    for l in &letters {
        let src = by_seq[l["sequence_number"].as_str().expect("seq")];
        assert_eq!(
            l["data_base64"].as_str(),
            Some(src.data_base64.as_str()),
            "raw record kept"
        );
        assert_eq!(
            Expected::Poison(
                pipeline_schemas::ReasonCode::from_code(l["reason"].as_str().expect("reason"))
                    .expect("code")
            ),
            src.expected
        );
        assert_eq!(l["shard_id"], "shardId-000000000000");
        assert_eq!(l["arrival_ms"], src.arrival_ms);
        assert!(l["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let rows: usize = lake_event_ids(&root.join("lake"))
        .iter()
        .filter(|(t, _)| *t != "order_items")
        .map(|(_, ids)| ids.len())
        .sum();
    assert_eq!(
        rows, valid,
        "every valid record is a lake row; nothing lost"
    );
}

#[tokio::test]
async fn a_failed_upload_mid_batch_is_reported_and_a_replay_loses_and_doubles_nothing() {
    let records = shard_records(3000, 13, 0.02);
    let root = temp_dir("mid-failure");
    // the generated traffic spans ~15 minutes of event time; fail the
    // order_events file of the batch, whatever its partition
    let store = FaultyStore::new(
        LocalStore::new(root.join("lake")),
        FaultPlan::KeyContains {
            needle: "order_events/".into(),
            times: Mutex::new(1000),
        },
    );
    let mut p = BatchProcessor::new(
        LakeArchiver::new(store, config()),
        LocalDeadLetters::new(root.join("dlq")),
        decoder(),
        quick_retry(),
    );
    let out = p
        .process(&mut payload(&records), deadline())
        .await
        .expect("a Kinesis event");
    assert_eq!(out.response.batch_item_failures.len(), 1);
    let failed_seq = out.response.batch_item_failures[0]
        .item_identifier
        .clone()
        .expect("seq");
    // the first order event is the first record not durably handled
    let first_order = records
        .iter()
        .position(|r| matches!(r.expected, Expected::Valid(t) if t.is_order()))
        .expect("an order event");
    assert_eq!(failed_seq, records[first_order].sequence_number);
    assert_eq!(out.stats.failed, records.len() - first_order);
    assert!(
        out.stats.retries >= 3,
        "the upload was retried before giving up"
    );
    assert!(!out.stats.errors.is_empty());

    // Lambda retries from the reported record, now that S3 is back.
    let mut replay = local_processor(&root);
    let out = replay
        .process(&mut payload(&records[first_order..]), deadline())
        .await
        .expect("a Kinesis event");
    assert!(
        out.response.batch_item_failures.is_empty(),
        "{:?}",
        out.stats.errors
    );

    // nothing lost, nothing counted twice after de-duplication by event_id
    let ids = lake_event_ids(&root.join("lake"));
    let valid = records
        .iter()
        .filter(|r| matches!(r.expected, Expected::Valid(_)))
        .count();
    let unique: HashSet<&String> = ids
        .iter()
        .filter(|(t, _)| *t != "order_items")
        .flat_map(|(_, v)| v.iter())
        .collect();
    assert_eq!(unique.len(), valid);
    let orders = &ids["order_events"];
    let distinct: HashSet<&String> = orders.iter().collect();
    assert_eq!(distinct.len(), orders.len(), "order events written once");
}

#[tokio::test]
async fn an_unavailable_dlq_fails_from_the_first_poison_record() {
    let records = shard_records(1500, 14, 0.05);
    let root = temp_dir("dlq-down");
    let mut p = BatchProcessor::new(
        LakeArchiver::new(LocalStore::new(root.join("lake")), config()),
        FaultyDlq::new(LocalDeadLetters::new(root.join("dlq")), FaultPlan::Always),
        decoder(),
        quick_retry(),
    );
    let out = p
        .process(&mut payload(&records), deadline())
        .await
        .expect("a Kinesis event");
    let first_poison = records
        .iter()
        .position(|r| matches!(r.expected, Expected::Poison(_)))
        .expect("a poison record");
    assert_eq!(
        out.response.batch_item_failures[0]
            .item_identifier
            .as_deref(),
        Some(records[first_poison].sequence_number.as_str())
    );
    assert!(out.stats.dead_lettered.is_empty());
    assert!(out.stats.retries > 0);
}

#[tokio::test]
async fn transient_faults_are_retried_to_success_and_retries_are_idempotent() {
    let records = shard_records(2000, 15, 0.02);
    let root = temp_dir("flaky");
    let store = FaultyStore::new(
        LocalStore::new(root.join("lake")),
        FaultPlan::Rate { rate: 0.4, seed: 3 },
    );
    let mut p = BatchProcessor::new(
        LakeArchiver::new(
            store,
            LakeConfig {
                retry: RetryPolicy {
                    max_attempts: 12,
                    ..quick_retry()
                },
                ..LakeConfig::default()
            },
        ),
        FaultyDlq::new(
            LocalDeadLetters::new(root.join("dlq")),
            FaultPlan::Rate { rate: 0.4, seed: 4 },
        ),
        decoder(),
        RetryPolicy {
            max_attempts: 12,
            ..quick_retry()
        },
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
    assert!(out.stats.retries > 0);
    let files_before = lake_event_ids(&root.join("lake"));

    // Lambda re-delivers the identical batch (e.g. after a timeout): the
    // deterministic keys are already there; nothing is added.
    let out = p
        .process(&mut payload(&records), deadline())
        .await
        .expect("a Kinesis event");
    assert!(out.response.batch_item_failures.is_empty());
    assert_eq!(
        out.stats.objects.0, out.stats.objects.1,
        "every object already present"
    );
    assert_eq!(lake_event_ids(&root.join("lake")), files_before);
}
