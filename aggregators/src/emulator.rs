//! Lambda's Kinesis event source mapping with `TumblingWindowInSeconds`, for
//! one shard, in process: records grouped into windows by arrival time,
//! batches of up to `BatchSize`, the state carried from one invocation of a
//! window to the next, a batch that reports a failure retried from that
//! record with the state returned, and a function error retried as is. The
//! main job and the tests run the real aggregator through it.

use std::time::{Duration, Instant};

use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo, WindowFields};

use crate::sink::MetricsSink;
use crate::window::WindowAggregator;

/// Event source mapping settings.
#[derive(Debug, Clone, Copy)]
pub struct WindowMapping {
    /// `TumblingWindowInSeconds`, in milliseconds.
    pub window_ms: i64,
    /// `BatchSize`.
    pub batch_size: usize,
    /// `MaximumRetryAttempts` per batch.
    pub max_retries: u32,
    /// Close each window with an extra, empty final invocation (Lambda does
    /// this when no record arrives before the window ends).
    pub empty_final: bool,
}

/// What the mapping did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MappingStats {
    /// Invocations made.
    pub invocations: usize,
    /// Invocations retried.
    pub retries: usize,
    /// Windows closed.
    pub windows: usize,
}

/// Drives `aggregator` over one shard's records. `batch_size` may vary per
/// invocation (`next_batch` returns it), as Lambda's batching does.
pub async fn run_shard<S: MetricsSink>(
    aggregator: &mut WindowAggregator<S>,
    shard: &[KinesisRecord],
    mapping: WindowMapping,
    mut next_batch: impl FnMut() -> usize,
) -> Result<MappingStats, String> {
    let stream = StreamInfo::default();
    let mut stats = MappingStats::default();
    let mut start = 0;
    while start < shard.len() {
        let w = shard[start].arrival_ms.div_euclid(mapping.window_ms);
        let end = shard[start..]
            .iter()
            .position(|r| r.arrival_ms.div_euclid(mapping.window_ms) != w)
            .map_or(shard.len(), |p| start + p);
        let window = &shard[start..end];
        let mut state: Vec<(String, String)> = Vec::new();
        let mut pos = 0;
        let mut attempts = 0;
        loop {
            let size = next_batch().clamp(1, mapping.batch_size.max(1));
            let batch_end = (pos + size).min(window.len());
            let batch = &window[pos..batch_end];
            let is_final = if mapping.empty_final {
                batch.is_empty()
            } else {
                batch_end == window.len()
            };
            let fields = WindowFields {
                start_ms: w * mapping.window_ms,
                end_ms: (w + 1) * mapping.window_ms,
                shard_id: kinesis::shard_id(window[0].shard),
                state: state.clone(),
                is_final,
                terminated_early: false,
            };
            let mut payload = kinesis::invocation_payload_with(batch, &stream, Some(&fields));
            stats.invocations += 1;
            let outcome = aggregator
                .process(&mut payload, Instant::now() + Duration::from_secs(60))
                .await;
            let failed = match &outcome {
                Ok(out) => {
                    state = out.response["state"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.response["batchItemFailures"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty())
                }
                Err(_) => true,
            };
            if failed {
                attempts += 1;
                stats.retries += 1;
                if attempts > mapping.max_retries {
                    return Err(format!(
                        "window {w} of {} still failing after {attempts} attempts: {:?}",
                        fields.shard_id,
                        outcome.map(|o| o.stats.error)
                    ));
                }
                continue;
            }
            attempts = 0;
            pos = batch_end;
            if is_final {
                stats.windows += 1;
                break;
            }
        }
        start = end;
    }
    Ok(stats)
}
