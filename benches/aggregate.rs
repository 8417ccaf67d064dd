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
use pipeline_benches::fixtures::{CountingSink, deadline, payload, runtime};
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

fn aggregate(c: &mut Criterion) {
    let rt = runtime();
    // the one-off reports are for measurement runs (`cargo bench`), not the
    // test-mode smoke run of `cargo test --all-targets`
    if std::env::args().any(|a| a == "--bench") {
        report_request_rate(&rt);
    }
    const EVENTS: usize = 10_000;
    let payload = payload(EVENTS, true);
    let mut group = c.benchmark_group("aggregate_invocation");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    for (name, threads) in [
        ("simd_window_aggregator", 1),
        ("simd_window_aggregator_2_threads", 2),
    ] {
        let mut ours = WindowAggregator::new(CountingSink::default(), DecoderConfig::default())
            .with_decode_threads(threads);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || payload.clone(),
                |buf| {
                    let out = rt
                        .block_on(ours.process(buf, deadline()))
                        .expect("aggregated");
                    assert_eq!(out.stats.counted, EVENTS);
                    out.stats.sink.map_or(0, |s| s.written)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function("aws_lambda_events_serde_json", |b| {
        b.iter(|| {
            // the ordinary path: deserialize the whole event, parse each record, aggregate
            pipeline_benches::aggregate_invocation(&payload)
                .expect("a Kinesis event")
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
