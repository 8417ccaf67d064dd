//! The aggregator under Lambda's tumbling-window semantics: totals equal a
//! brute-force recomputation over the stream for many seeds, whatever the
//! batch boundaries, with failed final writes retried (re-batched) and
//! duplicated records.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pipeline_aggregators::measures::add_event;
use pipeline_aggregators::sink::FaultySink;
use pipeline_aggregators::window::totals;
use pipeline_aggregators::{Aggregates, LocalMetrics, MetricsSink, WindowAggregator};
use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo, WindowFields};
use pipeline_generator::rng::Rng;
use pipeline_generator::{PoisonMix, TrafficConfig, generate};
use pipeline_processors::faults::FaultPlan;
use pipeline_schemas::{DecoderConfig, RecordParser};
use proptest::prelude::*;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "agg-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Brute force: every distinct valid event, added once.
fn brute_force(shards: &[Vec<KinesisRecord>]) -> Aggregates {
    let mut agg = Aggregates::new();
    let mut seen = HashSet::new();
    let mut parser = RecordParser::new();
    for r in shards.iter().flatten() {
        let Ok(mut bytes) = base64_simd::STANDARD.decode_to_vec(&r.data_base64) else {
            continue;
        };
        if bytes.len() > 64 * 1024 {
            continue; // dead-lettered as record_too_large, however valid its JSON
        }
        if let Ok(e) = parser.parse(&mut bytes)
            && seen.insert(e.event_id.to_owned())
        {
            add_event(&mut agg, &e);
        }
    }
    agg
}

/// Lambda's event source mapping with `TumblingWindowInSeconds`, for one
/// shard: windows by arrival time, batches of random size, state carried,
/// a failed batch retried from its first record with the state before it.
async fn run_shard<S: MetricsSink>(
    agg: &mut WindowAggregator<S>,
    shard: &[KinesisRecord],
    window_ms: i64,
    rng: &mut Rng,
) -> usize {
    let stream = StreamInfo::default();
    let mut retries = 0;
    let mut start = 0;
    while start < shard.len() {
        let w = shard[start].arrival_ms.div_euclid(window_ms);
        let end = shard[start..]
            .iter()
            .position(|r| r.arrival_ms.div_euclid(window_ms) != w)
            .map_or(shard.len(), |p| start + p);
        let window = &shard[start..end];
        let mut state: Vec<(String, String)> = Vec::new();
        let mut pos = 0;
        // sometimes Lambda closes the window with an empty final invocation
        let empty_final = rng.chance(0.3);
        loop {
            let size = rng.range(1, 400) as usize;
            let batch_end = (pos + size).min(window.len());
            let batch = &window[pos..batch_end];
            let is_final = if empty_final {
                batch.is_empty()
            } else {
                batch_end == window.len()
            };
            let fields = WindowFields {
                start_ms: w * window_ms,
                end_ms: (w + 1) * window_ms,
                shard_id: kinesis::shard_id(window[0].shard),
                state: state.clone(),
                is_final,
                terminated_early: false,
            };
            let mut payload = kinesis::invocation_payload_with(batch, &stream, Some(&fields));
            let deadline = Instant::now() + Duration::from_secs(30);
            match agg.process(&mut payload, deadline).await {
                Ok(out) => {
                    let failures = out.response["batchItemFailures"]
                        .as_array()
                        .map_or(0, Vec::len);
                    if failures > 0 {
                        assert_eq!(
                            out.response["batchItemFailures"][0]["itemIdentifier"].as_str(),
                            batch.first().map(|r| r.sequence_number.as_str())
                        );
                        retries += 1;
                        // the state Lambda keeps is the one returned: the state before this batch
                        state = state_of(&out.response);
                        assert!(retries < 200, "retrying forever");
                        continue;
                    }
                    state = state_of(&out.response);
                    pos = batch_end;
                    if is_final {
                        assert!(state.is_empty(), "a closed window carries no state");
                        break;
                    }
                }
                Err(e) => {
                    // function error (empty final invocation): retried as is
                    assert!(batch.is_empty(), "{e}");
                    retries += 1;
                    assert!(retries < 200, "retrying forever");
                }
            }
        }
        start = end;
    }
    retries
}

fn state_of(response: &serde_json::Value) -> Vec<(String, String)> {
    response["state"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn traffic(seed: u64, events: usize, shards: u32, duplicates: f64) -> Vec<Vec<KinesisRecord>> {
    let records = generate(TrafficConfig {
        events,
        seed,
        poison: PoisonMix::uniform(0.02),
        max_record_bytes: 64 * 1024,
        ..TrafficConfig::default()
    });
    let mut routed = kinesis::route(&records, shards);
    // producers that retry publish the same event twice, adjacent in the shard
    let mut rng = Rng::new(seed ^ 0xD0D0);
    for shard in &mut routed {
        let mut out = Vec::with_capacity(shard.len());
        for r in shard.drain(..) {
            let dup = rng.chance(duplicates);
            out.push(r.clone());
            if dup {
                let mut again = r;
                again.sequence_number.push('1'); // a new record, same event
                out.push(again);
            }
        }
        *shard = out;
    }
    routed
}

async fn check(seed: u64, fault_rate: f64) {
    let shards = traffic(seed, 3000, 3, 0.03);
    let root = temp_dir("windows");
    let sink = FaultySink::new(
        LocalMetrics::new(&root),
        if fault_rate > 0.0 {
            FaultPlan::Rate {
                rate: fault_rate,
                seed,
            }
        } else {
            FaultPlan::None
        },
    );
    let mut agg = WindowAggregator::new(
        sink,
        DecoderConfig {
            max_record_bytes: 64 * 1024,
        },
    );
    let mut rng = Rng::new(seed);
    let mut retries = 0;
    for shard in &shards {
        retries += run_shard(&mut agg, shard, 5_000, &mut rng).await;
    }
    let written = agg.sink().inner().read_all().expect("metrics");
    let got = totals(&written);
    let want = brute_force(&shards);
    if got != want {
        let sum = |a: &Aggregates| {
            let mut t = pipeline_aggregators::Measures::default();
            a.values().for_each(|m| t.add(m));
            t
        };
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(3)
            .collect();
        panic!(
            "seed {seed}: {} series written, {} expected; totals {:?} vs {:?}; e.g. missing {missing:?}",
            got.len(),
            want.len(),
            sum(&got),
            sum(&want)
        );
    }
    if fault_rate > 0.3 {
        assert!(retries > 0, "faults were injected and retried");
    }
}

#[tokio::test]
async fn totals_equal_brute_force_with_failed_writes_and_duplicates() {
    check(1, 0.5).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn totals_equal_brute_force_for_any_seed_and_batching(seed in any::<u64>(), faulty in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(check(seed, if faulty { 0.4 } else { 0.0 }));
    }
}

#[tokio::test]
async fn an_invocation_without_a_window_is_refused() {
    let shards = traffic(3, 50, 1, 0.0);
    let mut payload = kinesis::invocation_payload(&shards[0], &StreamInfo::default());
    let mut agg = WindowAggregator::new(
        LocalMetrics::new(temp_dir("nowindow")),
        DecoderConfig::default(),
    );
    let err = agg
        .process(&mut payload, Instant::now() + Duration::from_secs(5))
        .await
        .expect_err("no window");
    assert!(err.to_string().contains("TumblingWindowInSeconds"));
}
