//! The metrics aggregator: a 10,000-record invocation (the final one of its
//! tumbling window, so it aggregates and emits) from raw payload bytes to
//! metric records, against the ordinary path in the same run
//! (`aws_lambda_events` + `serde_json` typed structs, the same aggregation).
//!
//! Also prints, once: metric records and Timestream `WriteRecords` calls per
//! million events, from a 200,000-event run through the tumbling-window
//! event source mapping (4 shards, 60-second windows).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pipeline_aggregators::emulator::{WindowMapping, run_shard};
use pipeline_aggregators::measures::add_event;
use pipeline_aggregators::sink::MAX_RECORDS_PER_CALL;
use pipeline_aggregators::window::{WindowState, records_of};
use pipeline_aggregators::{MetricRecord, MetricsSink, SinkError, SinkReport, WindowAggregator};
use pipeline_generator::kinesis::{self, StreamInfo, WindowFields};
use pipeline_generator::{TrafficConfig, generate};
use pipeline_schemas::DecoderConfig;

/// Counts records and the `WriteRecords` calls Timestream would need.
#[derive(Clone, Default)]
struct CountingSink {
    records: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl MetricsSink for CountingSink {
    async fn write(&self, records: &[MetricRecord], _: Instant) -> Result<SinkReport, SinkError> {
        self.records.fetch_add(records.len(), Ordering::Relaxed);
        self.calls.fetch_add(
            records.len().div_ceil(MAX_RECORDS_PER_CALL),
            Ordering::Relaxed,
        );
        Ok(SinkReport {
            written: records.len(),
            ..SinkReport::default()
        })
    }
}

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // the one-off reports are for measurement runs (`cargo bench`), not the
    // test-mode smoke run of `cargo test --all-targets`
    if std::env::args().any(|a| a == "--bench") {
        report_request_rate(&rt);
    }
    const EVENTS: usize = 10_000;
    let records = generate(TrafficConfig {
        events: EVENTS,
        seed: 7,
        ..TrafficConfig::default()
    });
    let shard = kinesis::route(&records, 1).remove(0);
    let fields = WindowFields {
        start_ms: 0,
        end_ms: 60_000,
        shard_id: kinesis::shard_id(0),
        state: Vec::new(),
        is_final: true,
        terminated_early: false,
    };
    let payload = kinesis::invocation_payload_with(&shard, &StreamInfo::default(), Some(&fields));
    let mut group = c.benchmark_group("aggregate_invocation");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    let mut ours = WindowAggregator::new(CountingSink::default(), DecoderConfig::default());
    group.bench_function("simd_window_aggregator", |b| {
        b.iter_batched_ref(
            || payload.clone(),
            |buf| {
                let out = rt
                    .block_on(ours.process(buf, Instant::now() + Duration::from_secs(60)))
                    .expect("aggregated");
                assert_eq!(out.stats.counted, EVENTS);
                out.stats.sink.map_or(0, |s| s.written)
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("aws_lambda_events_serde_json", |b| {
        b.iter(|| {
            // the ordinary path: deserialize the whole event, parse each record, aggregate
            let event: aws_lambda_events::event::kinesis::KinesisEvent =
                serde_json::from_slice(&payload).expect("a Kinesis event");
            let mut state = WindowState::default();
            for record in &event.records {
                if let Ok(e) = pipeline_benches::parse_record(&record.kinesis.data.0)
                    && let Some(ev) = e.event()
                    && state
                        .seen
                        .insert(pipeline_aggregators::window::id_digest(ev.event_id))
                {
                    add_event(&mut state.aggregates, &ev);
                }
            }
            records_of(&state, "shardId-000000000000", 0, 60_000).len()
        })
    });
    group.finish();
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
