//! Decoding benchmarks, each against its baseline in the same run:
//!
//! - `record_parse`: one record's JSON to a validated, typed event:
//!   simd-json tape reader vs serde_json typed structs.
//! - `invocation_decode`: a 10,000-record Kinesis invocation payload (base64
//!   and all) to validated events: our SIMD decoder vs `aws_lambda_events` +
//!   serde_json.
//!
//! Throughput is reported in events/s; bytes per event are printed once so
//! MB/s can be derived (see docs/benchmarks.md).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pipeline_generator::kinesis::{self, StreamInfo};
use pipeline_generator::{Body, TrafficConfig, generate};
use pipeline_schemas::record::RECORD_PADDING;
use pipeline_schemas::{InvocationDecoder, RecordParser};
use std::hint::black_box;

const EVENTS: usize = 10_000;

fn traffic() -> Vec<Vec<u8>> {
    generate(TrafficConfig {
        events: EVENTS,
        seed: 7,
        ..TrafficConfig::default()
    })
    .into_iter()
    .filter_map(|r| match r.body {
        Body::Json(b) => Some(b),
        Body::RawBase64(_) => None,
    })
    .collect()
}

fn record_parse(c: &mut Criterion) {
    let records = traffic();
    let bytes: usize = records.iter().map(Vec::len).sum();
    eprintln!(
        "record_parse: {} records, {bytes} bytes, {:.0} bytes/record",
        records.len(),
        bytes as f64 / records.len() as f64
    );
    // Our path parses a packed arena (as the invocation decoder lays it out).
    let mut arena = Vec::with_capacity(bytes + records.len() * RECORD_PADDING);
    let mut spans = Vec::with_capacity(records.len());
    for r in &records {
        spans.push(r.len());
        arena.extend_from_slice(r);
        arena.extend(std::iter::repeat_n(b' ', RECORD_PADDING));
    }
    let mut group = c.benchmark_group("record_parse");
    group.throughput(Throughput::Elements(records.len() as u64));
    let mut parser = RecordParser::new();
    group.bench_function("simd_json_tape_reader", |b| {
        b.iter_batched_ref(
            || arena.clone(),
            |buf| {
                let mut rest: &mut [u8] = buf;
                let mut ok = 0usize;
                for &len in &spans {
                    let (chunk, tail) =
                        std::mem::take(&mut rest).split_at_mut(len + RECORD_PADDING);
                    rest = tail;
                    ok += usize::from(parser.parse_padded(chunk, len).is_ok());
                }
                assert_eq!(ok, spans.len());
                ok
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("serde_json_typed", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for r in &records {
                ok += usize::from(pipeline_benches::parse_record(black_box(r)).is_ok());
            }
            assert_eq!(ok, records.len());
            ok
        })
    });
    group.finish();
}

fn invocation_decode(c: &mut Criterion) {
    let records = generate(TrafficConfig {
        events: EVENTS,
        seed: 7,
        ..TrafficConfig::default()
    });
    let shards = kinesis::route(&records, 1);
    let payload = kinesis::invocation_payload(&shards[0], &StreamInfo::default());
    eprintln!(
        "invocation_decode: {EVENTS} records, {} payload bytes, {:.0} bytes/record",
        payload.len(),
        payload.len() as f64 / EVENTS as f64
    );
    let mut group = c.benchmark_group("invocation_decode");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    let mut decoder = InvocationDecoder::default();
    group.bench_function("simd_arena_decoder", |b| {
        b.iter_batched_ref(
            || payload.clone(),
            |buf| {
                let decoded = decoder.decode(buf).expect("a Kinesis event");
                let ok = decoded.iter().filter(|r| r.outcome.is_ok()).count();
                assert_eq!(ok, EVENTS);
                ok
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("aws_lambda_events_serde_json", |b| {
        b.iter(|| {
            let (ok, _) =
                pipeline_benches::decode_invocation(black_box(&payload)).expect("a Kinesis event");
            assert_eq!(ok, EVENTS);
            ok
        })
    });
    group.finish();
}

criterion_group!(benches, record_parse, invocation_decode);
criterion_main!(benches);
