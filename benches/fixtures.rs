//! What the benchmarks share: the generated invocation payloads and sinks
//! that keep only counts (uploads and API calls are I/O, not what the
//! benchmarks measure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline_aggregators::sink::MAX_RECORDS_PER_CALL;
use pipeline_aggregators::window::STATE_KEY;
use pipeline_aggregators::{MetricRecord, MetricsSink, SinkError, SinkReport, WindowAggregator};
use pipeline_generator::kinesis::{self, StreamInfo, WindowFields};
use pipeline_generator::{TrafficConfig, generate};
use pipeline_processors::{
    BatchProcessor, Codec, DeadLetter, DeadLetterQueue, DlqError, LakeArchiver, LakeConfig, Listed,
    ObjectStore, PutOptions, PutOutcome, RetryPolicy, StoreError,
};
use pipeline_schemas::DecoderConfig;

/// One shard's invocation of `events` records of the generated mix (seed 7),
/// as the Lambda runtime receives it. With `window`, it carries the
/// tumbling-window fields of the final invocation of a 60-second window, as
/// the aggregator's event source mapping sends them (the archiver ignores them).
pub fn payload(events: usize, window: bool) -> Vec<u8> {
    let records = generate(TrafficConfig {
        events,
        seed: 7,
        ..TrafficConfig::default()
    });
    let shard = kinesis::route(&records, 1).remove(0);
    let fields = window.then(|| WindowFields::first_minute(Vec::new(), true));
    kinesis::invocation_payload_with(&shard, &StreamInfo::default(), fields.as_ref())
}

/// A mid-window invocation of the aggregator: the last `events` records of
/// one shard's `before + events` (generated mix, seed 7), not the window's
/// last, carrying the state the aggregator returned for the `before` records
/// (their sums and event-id digests), as the tumbling-window event source
/// mapping passes it on. Most invocations of a window look like this: state
/// read in and written out, no metric records.
pub fn mid_window_payload(before: usize, events: usize) -> Vec<u8> {
    let records = generate(TrafficConfig {
        events: before + events,
        seed: 7,
        ..TrafficConfig::default()
    });
    let shard = kinesis::route(&records, 1).remove(0);
    let (earlier, batch) = shard.split_at(shard.len().saturating_sub(events));
    let fields = WindowFields::first_minute;
    let stream = StreamInfo::default();
    let mut first =
        kinesis::invocation_payload_with(earlier, &stream, Some(&fields(Vec::new(), false)));
    let mut aggregator = WindowAggregator::new(CountingSink::default(), DecoderConfig::default());
    let out = runtime()
        .block_on(aggregator.process(&mut first, deadline()))
        .expect("the earlier records aggregate");
    let state = out.response["state"][STATE_KEY]
        .as_str()
        .expect("a mid-window invocation returns its state")
        .to_owned();
    kinesis::invocation_payload_with(
        batch,
        &stream,
        Some(&fields(vec![(STATE_KEY.to_owned(), state)], false)),
    )
}

/// An object store that keeps nothing but the byte count.
#[derive(Clone, Default)]
pub struct NullStore(pub Arc<AtomicUsize>);

impl ObjectStore for NullStore {
    async fn put(&self, _: &str, body: Bytes, _: PutOptions) -> Result<PutOutcome, StoreError> {
        self.0.fetch_add(body.len(), Ordering::Relaxed);
        Ok(PutOutcome::Written)
    }
    async fn get(&self, _: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(None)
    }
    async fn list_sized(&self, _: &str) -> Result<Vec<Listed>, StoreError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn uri(&self, key: &str) -> String {
        format!("null://{key}")
    }
}

/// A dead-letter queue that accepts every letter.
pub struct NullDlq;

impl DeadLetterQueue for NullDlq {
    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        letters.iter().map(|_| Ok(())).collect()
    }
}

/// Counts metric records and the `WriteRecords` calls Timestream would need.
#[derive(Clone, Default)]
pub struct CountingSink {
    /// Metric records written.
    pub records: Arc<AtomicUsize>,
    /// `WriteRecords` calls they would take.
    pub calls: Arc<AtomicUsize>,
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

/// The archiver as deployed (zstd level 1, conditional writes), decoding and
/// encoding on `threads` threads (1 = the one-core figure).
pub fn archiver(
    store: NullStore,
    threads: usize,
) -> BatchProcessor<LakeArchiver<NullStore>, NullDlq> {
    archiver_with(store, threads, Codec::Zstd(1))
}

/// [`archiver`] writing with `codec` (`PARQUET_CODEC`).
pub fn archiver_with(
    store: NullStore,
    threads: usize,
    codec: Codec,
) -> BatchProcessor<LakeArchiver<NullStore>, NullDlq> {
    let lake = LakeConfig {
        codec,
        encode_threads: threads,
        ..LakeConfig::default()
    };
    BatchProcessor::new(
        LakeArchiver::new(store, lake),
        NullDlq,
        DecoderConfig::default(),
        RetryPolicy::default(),
    )
    .with_decode_threads(threads)
}

/// The single-threaded runtime a Lambda handler runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A deadline far enough away that no benchmark meets it.
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}
