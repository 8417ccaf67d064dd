//! The decoder against generated traffic: every record gets exactly the
//! verdict the generator intended, and valid events survive a round trip.

use pipeline_generator::kinesis::{self, StreamInfo};
use pipeline_generator::{Body, Expected, PoisonMix, TrafficConfig, generate};
use pipeline_schemas::{DecoderConfig, InvocationDecoder, ReasonCode};

fn config(seed: u64, poison: f64) -> TrafficConfig {
    TrafficConfig {
        events: 3000,
        seed,
        poison: PoisonMix::uniform(poison),
        max_record_bytes: 16 * 1024,
        ..TrafficConfig::default()
    }
}

#[test]
fn every_record_gets_its_intended_verdict() {
    for seed in [1, 2, 3] {
        let records = generate(config(seed, 0.25));
        let shards = kinesis::route(&records, 4);
        let mut decoder = InvocationDecoder::new(DecoderConfig {
            max_record_bytes: 16 * 1024,
        });
        let mut seen_reasons = std::collections::BTreeSet::new();
        let mut total = 0;
        for shard in &shards {
            for batch in shard.chunks(100) {
                let mut payload = kinesis::invocation_payload(batch, &StreamInfo::default());
                let decoded = decoder
                    .decode(&mut payload)
                    .expect("payload is a Kinesis event");
                assert_eq!(decoded.len(), batch.len());
                for (rec, src) in decoded.iter().zip(batch) {
                    total += 1;
                    assert_eq!(rec.meta.sequence_number, src.sequence_number);
                    assert_eq!(rec.meta.partition_key, src.partition_key);
                    assert_eq!(rec.meta.arrival_ms, src.arrival_ms);
                    assert_eq!(rec.meta.shard_id, kinesis::shard_id(src.shard));
                    assert_eq!(rec.meta.data_base64, src.data_base64.as_bytes());
                    let got = match &rec.outcome {
                        Ok(e) => Expected::Valid(e.event_type()),
                        Err(r) => Expected::Poison(r.reason),
                    };
                    assert_eq!(
                        got, src.expected,
                        "seed {seed} seq {}: {:?}",
                        src.sequence_number, rec.outcome
                    );
                    if let Err(r) = &rec.outcome {
                        seen_reasons.insert(r.reason);
                    }
                }
            }
        }
        assert_eq!(total, records.len());
        assert_eq!(
            seen_reasons.len(),
            ReasonCode::ALL.len(),
            "seed {seed}: {seen_reasons:?}"
        );
    }
}

#[test]
fn valid_events_round_trip_byte_for_byte() {
    let records = generate(config(9, 0.0));
    let mut parser = pipeline_schemas::RecordParser::new();
    for r in &records {
        let Body::Json(bytes) = &r.body else {
            panic!("valid records are JSON")
        };
        let mut buf = bytes.clone();
        let event = parser.parse(&mut buf).expect("generated events are valid");
        assert_eq!(event.to_json(), *bytes);
        assert_eq!(event.occurred_at_ms, r.occurred_at_ms);
        assert_eq!(event.data.partition_key(), r.partition_key);
    }
}

#[test]
fn the_same_seed_yields_the_same_bytes() {
    let a = generate(config(5, 0.1));
    let b = generate(config(5, 0.1));
    assert_eq!(a.len(), b.len());
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.body == y.body && x.partition_key == y.partition_key)
    );
    let c = generate(config(6, 0.1));
    assert!(a.iter().zip(&c).any(|(x, y)| x.body != y.body));
}

#[test]
fn order_events_follow_the_state_machine() {
    use pipeline_schemas::{EventData, RecordParser};
    use std::collections::HashMap;
    let records = generate(TrafficConfig {
        events: 20_000,
        ..TrafficConfig::default()
    });
    let mut parser = RecordParser::new();
    // state per order: created, failed, paid, done
    let mut state: HashMap<String, &str> = HashMap::new();
    let mut totals: HashMap<String, u64> = HashMap::new();
    for r in &records {
        let Body::Json(bytes) = &r.body else { continue };
        let mut buf = bytes.clone();
        let event = parser.parse(&mut buf).expect("valid");
        match &event.data {
            EventData::OrderCreated(d) => {
                assert!(state.insert(d.order_id.into(), "created").is_none());
                totals.insert(d.order_id.into(), d.total_cents);
            }
            EventData::OrderPaymentSucceeded(d) => {
                let s = state.get(d.order_id).copied();
                assert!(matches!(s, Some("created" | "failed")), "pay from {s:?}");
                assert_eq!(totals.get(d.order_id), Some(&d.amount_cents));
                state.insert(d.order_id.into(), "paid");
            }
            EventData::OrderPaymentFailed(d) => {
                let s = state.get(d.order_id).copied();
                assert!(matches!(s, Some("created" | "failed")), "fail from {s:?}");
                state.insert(d.order_id.into(), "failed");
            }
            EventData::OrderFulfilled(d) => {
                assert_eq!(state.get(d.order_id).copied(), Some("paid"));
                state.insert(d.order_id.into(), "done");
            }
            EventData::OrderCancelled(d) => {
                let s = state.get(d.order_id).copied();
                assert!(
                    matches!(s, Some("created" | "failed" | "paid")),
                    "cancel from {s:?}"
                );
                state.insert(d.order_id.into(), "done");
            }
            _ => {}
        }
    }
    assert!(state.values().filter(|s| **s == "done").count() > 500);
}

#[test]
fn decoding_on_several_threads_gives_the_same_records_in_order() {
    // large and small records, every kind of poison, all in one invocation
    // (above the parallel threshold) so that the cuts fall everywhere
    for seed in [4, 5] {
        let records = generate(config(seed, 0.3));
        let batch: Vec<_> = kinesis::route(&records, 1).remove(0);
        let limits = DecoderConfig {
            max_record_bytes: 16 * 1024,
        };
        let mut one = InvocationDecoder::new(limits).with_threads(1);
        let mut payload_one = kinesis::invocation_payload(&batch, &StreamInfo::default());
        let want = one.decode(&mut payload_one).expect("one thread");
        for threads in [2, 3, 7] {
            let mut many = InvocationDecoder::new(limits).with_threads(threads);
            let mut payload = kinesis::invocation_payload(&batch, &StreamInfo::default());
            let got = many.decode(&mut payload).expect("threads");
            assert_eq!(got.len(), batch.len());
            assert_eq!(got, want, "seed {seed}, {threads} threads");
        }
    }
}

#[test]
fn a_data_string_that_is_not_clean_json_text_is_one_poison_record() {
    // `data` is checked by the base64 decoder, not by the envelope reader:
    // raw control or non-UTF-8 bytes there reject that record, not the batch
    let records = generate(TrafficConfig {
        events: 4,
        seed: 9,
        poison: PoisonMix::uniform(0.0),
        ..TrafficConfig::default()
    });
    let batch: Vec<_> = kinesis::route(&records, 1).remove(0);
    let mut payload = kinesis::invocation_payload(&batch, &StreamInfo::default());
    for (n, bad) in [(1, 0xff), (2, 0x01)] {
        let data = batch[n].data_base64.as_bytes();
        let at = payload
            .windows(data.len())
            .position(|w| w == data)
            .expect("the record's data in the payload");
        payload[at + 3] = bad;
    }
    let mut decoder = InvocationDecoder::default();
    let decoded = decoder
        .decode(&mut payload)
        .expect("the batch is still read");
    assert_eq!(decoded.len(), 4);
    for (i, record) in decoded.iter().enumerate() {
        match i {
            1 | 2 => assert_eq!(
                record.outcome.as_ref().map_err(|r| r.reason),
                Err(ReasonCode::InvalidBase64),
                "record {i}"
            ),
            _ => assert!(record.outcome.is_ok(), "record {i}"),
        }
    }
    assert_eq!(decoded[1].meta.data_base64[3], 0xff);
}
