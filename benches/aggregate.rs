//! The metrics aggregator: a 10,000-record invocation (the final one of its
//! tumbling window, so it aggregates and emits) from raw payload bytes to
//! metric records, against the ordinary path in the same run
//! (`aws_lambda_events` + `serde_json` typed structs, the same aggregation).
//!
//! Also prints, once: metric records and Timestream `WriteRecords` calls per
//! million events, from a 200,000-event run through the tumbling-window
//! event source mapping (4 shards, 60-second windows).

use std::sync::atomic::Ordering;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pipeline_aggregators::WindowAggregator;
use pipeline_aggregators::emulator::{WindowMapping, run_shard};
use pipeline_benches::fixtures::{CountingSink, deadline, mid_window_payload, payload, runtime};
use pipeline_generator::kinesis;
use pipeline_generator::{TrafficConfig, generate};
use pipeline_schemas::DecoderConfig;

fn report_request_rate(rt: &tokio::runtime::Runtime) {
    const EVENTS: usize = 200_000;
    let records = generate(TrafficConfig {
        events: EVENTS,
        seed: 7,
        ..TrafficConfig::default()
    });
    let sink = CountingSink::default();
    let mut agg = WindowAggregator::new(sink.clone(), DecoderConfig::default());
    for shard in kinesis::route(&records, 4) {
        let mapping = WindowMapping {
            window_ms: 60_000,
            batch_size: 1000,
            max_retries: 0,
            empty_final: false,
        };
        rt.block_on(run_shard(&mut agg, &shard, mapping, || 1000))
            .expect("windows");
    }
    let per_million = |n: usize| n as f64 * 1e6 / EVENTS as f64;
    eprintln!(
        "aggregate: per million events (200 events/s, 4 shards, 60 s windows): {:.0} metric records, {:.0} WriteRecords calls",
        per_million(sink.records.load(Ordering::Relaxed)),
        per_million(sink.calls.load(Ordering::Relaxed))
    );
}

/// Records an invocation holds.
const EVENTS: usize = 10_000;

/// Events the window held before the mid-window invocation: half a minute
/// of a busy shard (1,000 records/s, Kinesis' write limit per shard).
const SEEN_BEFORE: usize = 30_000;

fn aggregate(c: &mut Criterion) {
    let rt = runtime();
    // the one-off reports are for measurement runs (`cargo bench`), not the
    // test-mode smoke run of `cargo test --all-targets`
    if std::env::args().any(|a| a == "--bench") {
        report_request_rate(&rt);
    }
    // the window's final invocation: it emits the window's metric records
    invocation(
        c,
        &rt,
        "aggregate_invocation",
        &payload(EVENTS, true),
        EVENTS,
        BOTH,
        ordinary_final_invocation,
    );
    // most invocations of a window: the state read in, the records counted
    // into it, the state written out in the response; no metric records
    let mid = mid_window_payload(SEEN_BEFORE, EVENTS);
    invocation(c, &rt, "aggregate_mid_window", &mid, EVENTS, BOTH, |p| {
        pipeline_benches::aggregate_mid_window(p)
            .expect("a Kinesis window event")
            .len()
    });
    // small invocations (an event source mapping's default `BatchSize` is
    // 100): one thread, as the decoder uses for them whatever the cores
    for events in [100, 1_000] {
        invocation(
            c,
            &rt,
            &format!("aggregate_invocation_{events}_records"),
            &payload(events, true),
            events,
            &[("simd_window_aggregator", 1)],
            ordinary_final_invocation,
        );
    }
}

/// The ordinary path on a window's only (so final) invocation: deserialize
/// the whole event, parse each record, aggregate; the metric records made.
fn ordinary_final_invocation(payload: &[u8]) -> usize {
    pipeline_benches::aggregate_invocation(payload)
        .expect("a Kinesis event")
        .len()
}

/// Ours on one thread and on two.
const BOTH: &[(&str, usize)] = &[
    ("simd_window_aggregator", 1),
    ("simd_window_aggregator_2_threads", 2),
];

/// Ours on each of `threads` (name, thread count), payload of `events`
/// records to serialized response (as the runtime sends it), against
/// `baseline` on the same payload.
fn invocation(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    payload: &[u8],
    events: usize,
    threads: &[(&str, usize)],
    baseline: impl Fn(&[u8]) -> usize,
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(events as u64));
    group.sample_size(if events < EVENTS { 40 } else { 20 });
    for &(name, threads) in threads {
        let mut ours = WindowAggregator::new(CountingSink::default(), DecoderConfig::default())
            .with_decode_threads(threads);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || payload.to_vec(),
                |buf| {
                    let out = rt
                        .block_on(ours.process(buf, deadline()))
                        .expect("aggregated");
                    assert_eq!(out.stats.counted, events);
                    serde_json::to_vec(&out.response).expect("a response").len()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function("aws_lambda_events_serde_json", |b| {
        b.iter(|| baseline(payload))
    });
    group.finish();
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
