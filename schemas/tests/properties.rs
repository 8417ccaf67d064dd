//! Property tests: no input makes the decoder panic, every input yields an
//! event or a reason code, and every generated valid event round-trips.

use base64_simd::STANDARD;
use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo};
use pipeline_generator::{Body, Expected, PoisonMix, TrafficConfig, generate};
use pipeline_schemas::{InvocationDecoder, ReasonCode, RecordParser};
use proptest::prelude::*;
use serde_json::Value;

fn wrap(records: Vec<String>) -> Vec<u8> {
    let batch: Vec<KinesisRecord> = records
        .into_iter()
        .enumerate()
        .map(|(i, data_base64)| KinesisRecord {
            shard: 0,
            sequence_number: kinesis::sequence_number(0, i as u64),
            partition_key: format!("k{i}"),
            data_base64,
            arrival_ms: 1_795_617_476_123,
            expected: Expected::Poison(ReasonCode::MalformedJson),
        })
        .collect();
    kinesis::invocation_payload(&batch, &StreamInfo::default())
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_as_a_record_yield_an_event_or_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut parser = RecordParser::new();
        let mut buf = bytes.clone();
        let _ = parser.parse(&mut buf);
        // and inside an invocation: exactly one verdict, never a batch failure
        let mut payload = wrap(vec![STANDARD.encode_to_string(&bytes)]);
        let mut decoder = InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("a well-formed invocation");
        prop_assert_eq!(decoded.len(), 1);
    }

    #[test]
    fn any_text_as_base64_yields_a_verdict(text in "[A-Za-z0-9+/=*é ]{0,200}") {
        let mut payload = wrap(vec![text, STANDARD.encode_to_string(b"{}")]);
        let mut decoder = InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("a well-formed invocation");
        prop_assert_eq!(decoded.len(), 2);
        prop_assert_eq!(
            decoded[1].outcome.as_ref().err().map(|r| r.reason),
            Some(ReasonCode::MissingField)
        );
    }

    #[test]
    fn any_bytes_as_a_payload_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut decoder = InvocationDecoder::default();
        let mut buf = bytes;
        let _ = decoder.decode(&mut buf);
    }

    #[test]
    fn any_json_in_any_field_yields_an_event_or_a_reason(
        seed in 0u64..1000,
        pick in any::<prop::sample::Index>(),
        in_data in any::<bool>(),
        value in arbitrary_json(),
    ) {
        let records = generate(TrafficConfig { events: 1, seed, ..TrafficConfig::default() });
        let Body::Json(bytes) = &records[0].body else { unreachable!("valid records are JSON") };
        let mut event: Value = serde_json::from_slice(bytes).expect("valid JSON");
        let target = if in_data { event["data"].as_object_mut() } else { event.as_object_mut() };
        let target = target.expect("objects");
        let keys: Vec<String> = target.keys().cloned().collect();
        let key = pick.get(&keys).clone();
        target.insert(key, value);
        let mut buf = serde_json::to_vec(&event).expect("serialisable");
        let mut parser = RecordParser::new();
        if let Ok(parsed) = parser.parse(&mut buf) {
            // whatever was accepted must survive its own round trip
            let mut again = parsed.to_json();
            let reparsed = RecordParser::new().parse(&mut again).map(|e| e.to_json());
            prop_assert_eq!(reparsed.ok(), Some(parsed.to_json()));
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_traffic_decodes_to_its_intended_verdicts(seed in any::<u64>(), shards in 1u32..5, batch in 1usize..300) {
        let records = generate(TrafficConfig {
            events: 600,
            seed,
            poison: PoisonMix::uniform(0.1),
            max_record_bytes: 4096,
            ..TrafficConfig::default()
        });
        let routed = kinesis::route(&records, shards);
        let mut decoder = InvocationDecoder::new(pipeline_schemas::DecoderConfig { max_record_bytes: 4096 });
        for shard in &routed {
            for chunk in shard.chunks(batch) {
                let mut payload = kinesis::invocation_payload(chunk, &StreamInfo::default());
                let decoded = decoder.decode(&mut payload).expect("a Kinesis event");
                prop_assert_eq!(decoded.len(), chunk.len());
                for (d, src) in decoded.iter().zip(chunk) {
                    let got = match &d.outcome {
                        Ok(e) => {
                            // valid events round-trip byte for byte
                            let original = STANDARD.decode_to_vec(&src.data_base64).expect("base64");
                            prop_assert_eq!(e.to_json(), original);
                            Expected::Valid(e.event_type())
                        }
                        Err(r) => Expected::Poison(r.reason),
                    };
                    prop_assert_eq!(got, src.expected);
                }
            }
        }
    }
}

/// A Kinesis event as serde_json writes it, with `extra` values in every
/// object Lambda's schema may grow, and `key` as the partition key.
fn envelope_with(extra: &Value, key: &str, pretty: bool) -> Vec<u8> {
    let event = serde_json::json!({
        "extra": extra,
        "Records": [{
            "extra": extra,
            "kinesis": {
                "extra": extra,
                "partitionKey": key,
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "data": "eyJhIjoxfQ==",
                "approximateArrivalTimestamp": 1545084650.987,
            },
            "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/s",
        }],
    });
    let text = if pretty {
        serde_json::to_vec_pretty(&event)
    } else {
        serde_json::to_vec(&event)
    };
    text.expect("serialisable")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The envelope reader reads any JSON serde_json writes: unknown values of
    /// every shape are skipped, escaped and non-ASCII strings come out as
    /// written, whitespace does not matter.
    #[test]
    fn the_envelope_reads_whatever_valid_json_lambda_could_send(
        extra in arbitrary_json(),
        key in ".{0,40}",
        pretty in any::<bool>(),
    ) {
        let mut payload = envelope_with(&extra, &key, pretty);
        let mut decoder = InvocationDecoder::default();
        let decoded = decoder.decode(&mut payload).expect("a valid Kinesis event");
        prop_assert_eq!(decoded.len(), 1);
        let meta = &decoded[0].meta;
        prop_assert_eq!(meta.partition_key, key.as_str());
        prop_assert_eq!(meta.shard_id, "shardId-000000000006");
        prop_assert_eq!(meta.arrival_ms, 1_545_084_650_987);
        prop_assert_eq!(meta.data_base64, b"eyJhIjoxfQ==");
    }

    /// Cut or corrupted anywhere outside `data`, the envelope is refused
    /// (or is still JSON serde_json accepts); never a panic.
    #[test]
    fn a_damaged_envelope_is_refused_not_misread(
        extra in arbitrary_json(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let payload = envelope_with(&extra, "k", false);
        let at = at.index(payload.len());
        let mut decoder = InvocationDecoder::default();
        prop_assert!(decoder.decode(&mut payload[..at].to_vec()).is_err());
        let data = payload.windows(12).position(|w| w == b"eyJhIjoxfQ==").expect("data");
        let mut damaged = payload.clone();
        damaged[at] = byte;
        let accepted = decoder.decode(&mut damaged.clone()).is_ok();
        if accepted && !(data..data + 12).contains(&at) {
            // still JSON: serde_json reads it, or refuses only a number too
            // large for an f64 (`1e309`), which JSON's grammar allows and the
            // envelope skips unread
            let reread = serde_json::from_slice::<Value>(&damaged);
            prop_assert!(
                reread
                    .as_ref()
                    .map_or_else(|e| e.to_string().starts_with("number out of range"), |_| true),
                "accepted, but serde_json says {:?}",
                reread.err()
            );
        }
    }
}
