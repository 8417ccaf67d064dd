//! The whole hot path for one invocation: the raw payload (10,000 records of
//! the generated mix, base64, with the tumbling-window fields) to the Lambda
//! response and the encoded Parquet objects (the archiver) and to the metric
//! records (the aggregator). They are two functions on the same stream, so
//! each gets its own copy of the payload, as Lambda delivers it; events/s
//! counts each event once, through both.
//!
//! Baseline in the same run: the same two jobs the ordinary way
//! (`aws_lambda_events` + `serde_json` into typed structs, row-by-row Arrow
//! builders and the same Parquet writer, the same aggregation).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pipeline_aggregators::WindowAggregator;
use pipeline_benches::fixtures::{
    CountingSink, NullDlq, NullStore, archiver, deadline, payload, runtime,
};
use pipeline_processors::{BatchProcessor, Codec, LakeArchiver};
use pipeline_schemas::DecoderConfig;

const EVENTS: usize = 10_000;

/// Both functions as deployed, on `threads` threads (1 = the one-core figure).
struct Functions {
    archiver: BatchProcessor<LakeArchiver<NullStore>, NullDlq>,
    aggregator: WindowAggregator<CountingSink>,
}

impl Functions {
    fn new(threads: usize) -> Self {
        Functions {
            archiver: archiver(NullStore::default(), threads),
            aggregator: WindowAggregator::new(CountingSink::default(), DecoderConfig::default())
                .with_decode_threads(threads),
        }
    }

    /// (Parquet objects, metric records) for one invocation.
    fn handle(
        &mut self,
        rt: &tokio::runtime::Runtime,
        archive: &mut [u8],
        aggregate: &mut [u8],
    ) -> (usize, usize) {
        let deadline = deadline();
        let archived = rt
            .block_on(self.archiver.process(archive, deadline))
            .expect("a Kinesis event");
        assert_eq!(archived.stats.valid, EVENTS);
        assert!(archived.response.batch_item_failures.is_empty());
        let aggregated = rt
            .block_on(self.aggregator.process(aggregate, deadline))
            .expect("a tumbling-window event");
        assert_eq!(aggregated.stats.counted, EVENTS);
        let metrics = aggregated.stats.sink.map_or(0, |s| s.written);
        (archived.stats.objects.0, metrics)
    }
}

fn pipeline(c: &mut Criterion) {
    let rt = runtime();
    let payload = payload(EVENTS, true);
    // a fair race: both paths write the same number of metric records
    let (_, ours) = Functions::new(1).handle(&rt, &mut payload.clone(), &mut payload.clone());
    let baseline = pipeline_benches::aggregate_invocation(&payload).expect("aggregate");
    assert_eq!(ours, baseline.len());
    let mut group = c.benchmark_group("pipeline_invocation");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    for (name, threads) in [
        ("simd_archive_and_aggregate", 1),
        ("simd_archive_and_aggregate_2_threads", 2),
    ] {
        let mut ours = Functions::new(threads);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (payload.clone(), payload.clone()),
                |(archive, aggregate)| {
                    let (objects, metrics) = ours.handle(&rt, archive, aggregate);
                    assert!(objects > 0 && metrics > 0);
                    objects + metrics
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function("aws_lambda_events_serde_json", |b| {
        b.iter(|| {
            let (valid, _, files) =
                pipeline_benches::archive_invocation(&payload, Codec::Zstd(1)).expect("archive");
            assert_eq!(valid, EVENTS);
            let metrics = pipeline_benches::aggregate_invocation(&payload).expect("aggregate");
            assert!(!files.is_empty() && !metrics.is_empty());
            files.len() + metrics.len()
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
