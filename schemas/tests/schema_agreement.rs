//! Holds the JSON Schema files and the Rust validator to the same verdict on
//! a corpus (`tests/corpus/contract.json`) with at least one invalid example
//! per reason code and per rule, so neither can drift from the other.
//!
//! Every case goes through the full invocation decoder (base64 in a Kinesis
//! payload, as Lambda delivers it) and must yield the corpus' reason code and
//! JSON Pointer. Cases that are JSON are also validated against
//! `schemas/json/envelope.schema.json` with the `jsonschema` crate.
//! Two rules JSON Schema cannot state are documented exceptions: the sum
//! rule (`total_mismatch`) and the size limit (`record_too_large`).

use std::path::{Path, PathBuf};

use base64_simd::STANDARD;
use pipeline_generator::Expected;
use pipeline_generator::kinesis::{KinesisRecord, StreamInfo, invocation_payload};
use pipeline_schemas::{DecoderConfig, InvocationDecoder, ReasonCode};
use serde_json::Value;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("json")
}

fn validator() -> jsonschema::Validator {
    let mut resources = Vec::new();
    for entry in std::fs::read_dir(schema_dir()).expect("schemas/json exists") {
        let path = entry.expect("readable entry").path();
        let text = std::fs::read_to_string(&path).expect("readable schema");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        let id = schema["$id"]
            .as_str()
            .expect("every schema has an $id")
            .to_owned();
        assert!(
            id.ends_with(path.file_name().and_then(|n| n.to_str()).unwrap_or("?")),
            "$id {id} must end with the file name"
        );
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        resources.push((id, schema));
    }
    let envelope = resources
        .iter()
        .find(|(id, _)| id.ends_with("/envelope.schema.json"))
        .map(|(_, s)| s.clone())
        .expect("envelope schema");
    let registry = jsonschema::Registry::new()
        .extend(
            resources
                .into_iter()
                .map(|(id, s)| (id, jsonschema::Resource::from_contents(s))),
        )
        .expect("valid URIs")
        .prepare()
        .expect("registry resolves");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(&registry)
        .build(&envelope)
        .expect("envelope schema compiles")
}

struct Case {
    name: String,
    data_base64: String,
    json: Option<Value>,
    reason: Option<ReasonCode>,
    path: Option<String>,
    max_record_bytes: Option<usize>,
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/contract.json"),
    )
    .expect("corpus exists");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("corpus is JSON");
    cases
        .into_iter()
        .map(|c| {
            let name = c["case"].as_str().expect("case name").to_owned();
            let (bytes, json): (Option<Vec<u8>>, Option<Value>) =
                if let Some(record) = c.get("record") {
                    (
                        Some(serde_json::to_vec(record).expect("serialisable")),
                        Some(record.clone()),
                    )
                } else if let Some(raw) = c.get("raw").and_then(Value::as_str) {
                    (
                        Some(raw.as_bytes().to_vec()),
                        serde_json::from_str(raw).ok(),
                    )
                } else if let Some(hex) = c.get("raw_hex").and_then(Value::as_str) {
                    let bytes = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                        .collect();
                    (Some(bytes), None)
                } else {
                    (None, None)
                };
            let data_base64 = match bytes {
                Some(b) => STANDARD.encode_to_string(b),
                None => c["data_base64"]
                    .as_str()
                    .expect("a record, raw, raw_hex or data_base64")
                    .to_owned(),
            };
            Case {
                name,
                data_base64,
                json,
                reason: c.get("reason").and_then(Value::as_str).map(|r| {
                    ReasonCode::from_code(r).unwrap_or_else(|| panic!("unknown reason {r}"))
                }),
                path: c.get("path").and_then(Value::as_str).map(str::to_owned),
                max_record_bytes: c
                    .get("max_record_bytes")
                    .and_then(Value::as_u64)
                    .map(|v| v as usize),
            }
        })
        .collect()
}

fn decode(case: &Case) -> Result<(), (ReasonCode, Option<String>)> {
    let record = KinesisRecord {
        shard: 0,
        sequence_number: pipeline_generator::kinesis::sequence_number(0, 1),
        partition_key: "k".into(),
        data_base64: case.data_base64.clone(),
        arrival_ms: 1_795_617_476_123,
        expected: Expected::Poison(ReasonCode::MalformedJson),
    };
    let mut payload = invocation_payload(&[record], &StreamInfo::default());
    let mut decoder = InvocationDecoder::new(DecoderConfig {
        max_record_bytes: case
            .max_record_bytes
            .unwrap_or(pipeline_schemas::invocation::DEFAULT_MAX_RECORD_BYTES),
    });
    let decoded = decoder
        .decode(&mut payload)
        .expect("payload is a Kinesis event");
    assert_eq!(decoded.len(), 1);
    match &decoded[0].outcome {
        Ok(_) => Ok(()),
        Err(r) => Err((r.reason, r.path.as_ref().map(|p| p.to_string()))),
    }
}

#[test]
fn rust_validator_gives_each_case_its_reason_and_path() {
    let mut failures = Vec::new();
    for case in corpus() {
        let got = decode(&case);
        let want = match case.reason {
            None => Ok(()),
            Some(r) => Err((r, case.path.clone())),
        };
        if got != want {
            failures.push(format!("{}: want {want:?}, got {got:?}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn json_schema_and_rust_validator_agree() {
    let validator = validator();
    let mut failures = Vec::new();
    for case in corpus() {
        let Some(json) = &case.json else {
            // not JSON at all: no schema can accept it, and the decoder must reject it
            assert!(
                case.reason.is_some(),
                "{}: non-JSON case must be invalid",
                case.name
            );
            continue;
        };
        let schema_ok = validator.is_valid(json);
        let inexpressible = matches!(
            case.reason,
            Some(ReasonCode::TotalMismatch | ReasonCode::RecordTooLarge)
        );
        let rust_ok = case.reason.is_none();
        if inexpressible {
            if !schema_ok {
                failures.push(format!(
                    "{}: schema rejects a case only the sum/size rule should",
                    case.name
                ));
            }
            continue;
        }
        if schema_ok != rust_ok {
            failures.push(format!(
                "{}: schema valid={schema_ok}, rust valid={rust_ok}",
                case.name
            ));
            continue;
        }
        // Where the case names a field, the schema must complain about that
        // field too (a missing field is reported at its parent object).
        if let (false, Some(path)) = (schema_ok, &case.path) {
            let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
            let locations: Vec<String> = validator
                .iter_errors(json)
                .map(|e| e.instance_path().to_string())
                .collect();
            let want = if case.reason == Some(ReasonCode::MissingField) {
                parent
            } else {
                path.as_str()
            };
            if !locations.iter().any(|l| l == want) {
                failures.push(format!(
                    "{}: schema errors at {locations:?}, none at {want}",
                    case.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_covers_every_reason_code() {
    let cases = corpus();
    for reason in ReasonCode::ALL {
        assert!(
            cases.iter().any(|c| c.reason == Some(reason)),
            "no corpus case for {reason}"
        );
    }
    assert!(
        cases.iter().filter(|c| c.reason.is_none()).count() >= 8,
        "a valid case per event type"
    );
}
