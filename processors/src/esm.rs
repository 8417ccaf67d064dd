//! Lambda's Kinesis event source mapping, in process: what runs the real
//! handlers on one machine (the main job, replays, tests). Per shard it keeps
//! a checkpoint, builds batches by `BatchSize` and
//! `MaximumBatchingWindowInSeconds`, hands the function the invocation payload
//! bytes Lambda would send, and reacts to the answer as Lambda does:
//!
//! - a response naming failed items: checkpoint before the lowest one and
//!   retry from it;
//! - a function error: retry the batch, split in halves first when
//!   `BisectBatchOnFunctionError` is set;
//! - after `MaximumRetryAttempts` retries: send the batch's metadata to the
//!   on-failure destination and move on;
//! - `ParallelizationFactor` > 1: records are split by partition key hash
//!   into that many sub-streams, each with its own checkpoint (per-key order is kept).

use std::future::Future;

use md5::{Digest, Md5};
use pipeline_generator::kinesis::{self, KinesisRecord, StreamInfo};
use serde_json::Value;

/// The event source mapping's settings.
#[derive(Debug, Clone, Copy)]
pub struct MappingConfig {
    /// `BatchSize`: records per invocation, at most.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`, in ms: a batch holds the records
    /// that arrived within this long of its first one (0: whatever is there).
    pub batching_window_ms: i64,
    /// `MaximumRetryAttempts` per batch.
    pub max_retry_attempts: u32,
    /// `BisectBatchOnFunctionError`.
    pub bisect_on_error: bool,
    /// `ParallelizationFactor` (1..=10).
    pub parallelization_factor: u32,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            batch_size: 100,
            batching_window_ms: 0,
            max_retry_attempts: 10,
            bisect_on_error: true,
            parallelization_factor: 1,
        }
    }
}

/// What the on-failure destination receives: a batch's metadata (no data, as
/// Lambda sends it), enough for the redrive tool to re-read the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatch {
    /// `shardId-...`.
    pub shard_id: String,
    /// First sequence number of the batch.
    pub start_sequence_number: String,
    /// Last sequence number of the batch.
    pub end_sequence_number: String,
    /// Records in it.
    pub batch_size: usize,
    /// Why: the last error or the reported failure.
    pub condition: String,
}

/// What the mapping did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingReport {
    /// Invocations made.
    pub invocations: usize,
    /// Invocations that were retries.
    pub retries: usize,
    /// Batches split after a function error.
    pub bisections: usize,
    /// Batches given up on and sent to the on-failure destination.
    pub on_failure: Vec<FailedBatch>,
}

/// A function under the mapping: gets the payload bytes, answers with the
/// response JSON (`batchItemFailures`) or a function error.
pub trait Function {
    /// One invocation.
    fn invoke(&mut self, payload: Vec<u8>) -> impl Future<Output = Result<Value, String>>;
}

fn sub_stream(partition_key: &str, factor: u32) -> u32 {
    if factor <= 1 {
        return 0;
    }
    let d = Md5::digest(partition_key.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % factor
}

/// Runs `function` over every shard of `shards` until each is consumed.
pub async fn run<F: Function>(
    shards: &[Vec<KinesisRecord>],
    config: MappingConfig,
    function: &mut F,
) -> MappingReport {
    let stream = StreamInfo::default();
    let mut report = MappingReport::default();
    for shard in shards {
        let factor = config.parallelization_factor.clamp(1, 10);
        for part in 0..factor {
            let records: Vec<&KinesisRecord> = shard
                .iter()
                .filter(|r| sub_stream(&r.partition_key, factor) == part)
                .collect();
            consume(&records, config, function, &stream, &mut report).await;
        }
    }
    report
}

async fn consume<F: Function>(
    records: &[&KinesisRecord],
    config: MappingConfig,
    function: &mut F,
    stream: &StreamInfo,
    report: &mut MappingReport,
) {
    let mut checkpoint = 0;
    // pending sub-batches after a bisection: (start, end) ranges, first to run first
    let mut attempts = 0u32;
    let mut limit: Option<usize> = None;
    while checkpoint < records.len() {
        let first = records[checkpoint];
        let mut end = (checkpoint + config.batch_size.max(1)).min(records.len());
        if config.batching_window_ms > 0 {
            let until = first.arrival_ms + config.batching_window_ms;
            end = checkpoint
                + records[checkpoint..end]
                    .iter()
                    .take_while(|r| r.arrival_ms <= until)
                    .count()
                    .max(1);
        }
        if let Some(l) = limit {
            end = end.min(checkpoint + l.max(1));
        }
        let batch: Vec<KinesisRecord> = records[checkpoint..end]
            .iter()
            .map(|r| (*r).clone())
            .collect();
        let payload = kinesis::invocation_payload(&batch, stream);
        report.invocations += 1;
        if attempts > 0 {
            report.retries += 1;
        }
        let outcome = function.invoke(payload).await;
        let failed_at = match &outcome {
            Ok(resp) => resp["batchItemFailures"]
                .as_array()
                .and_then(|f| {
                    f.iter()
                        .filter_map(|i| i["itemIdentifier"].as_str())
                        .filter_map(|seq| batch.iter().position(|r| r.sequence_number == seq))
                        .min()
                })
                .map(Ok),
            Err(e) => Some(Err(e.clone())),
        };
        match failed_at {
            None => {
                checkpoint = end;
                attempts = 0;
                limit = None;
            }
            Some(result) => {
                attempts += 1;
                if attempts > config.max_retry_attempts {
                    let from = match result {
                        Ok(i) => checkpoint + i,
                        Err(_) => checkpoint,
                    };
                    report.on_failure.push(FailedBatch {
                        shard_id: kinesis::shard_id(records[from].shard),
                        start_sequence_number: records[from].sequence_number.clone(),
                        end_sequence_number: records[end - 1].sequence_number.clone(),
                        batch_size: end - from,
                        condition: match &result {
                            Ok(_) => "RetryAttemptsExhausted: batch item failures".into(),
                            Err(e) => format!("RetryAttemptsExhausted: {e}"),
                        },
                    });
                    checkpoint = end;
                    attempts = 0;
                    limit = None;
                    continue;
                }
                match result {
                    // retry from the lowest failed record
                    Ok(i) => checkpoint += i,
                    // a function error: retry, in halves if bisecting
                    Err(_) if config.bisect_on_error && end - checkpoint > 1 => {
                        report.bisections += 1;
                        limit = Some((end - checkpoint) / 2);
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_generator::{TrafficConfig, generate};
    use serde_json::json;
    use std::collections::HashMap;

    /// Records what it saw; fails per a rule. A unit-test function, not an adapter.
    struct Probe<R: FnMut(&[String], usize) -> Result<Option<String>, String>> {
        seen: Vec<Vec<String>>,
        rule: R,
    }

    impl<R: FnMut(&[String], usize) -> Result<Option<String>, String>> Function for Probe<R> {
        async fn invoke(&mut self, mut payload: Vec<u8>) -> Result<Value, String> {
            let mut decoder = pipeline_schemas::InvocationDecoder::default();
            let seqs: Vec<String> = decoder
                .decode(&mut payload)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|r| r.meta.sequence_number.to_owned())
                .collect();
            let call = self.seen.len();
            self.seen.push(seqs.clone());
            match (self.rule)(&seqs, call)? {
                Some(seq) => Ok(json!({"batchItemFailures": [{"itemIdentifier": seq}]})),
                None => Ok(json!({"batchItemFailures": []})),
            }
        }
    }

    fn shards(n: usize, shards: u32) -> Vec<Vec<KinesisRecord>> {
        kinesis::route(
            &generate(TrafficConfig {
                events: n,
                ..TrafficConfig::default()
            }),
            shards,
        )
    }

    fn delivered(seen: &[Vec<String>]) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in seen.iter().flatten() {
            *m.entry(s.clone()).or_insert(0) += 1;
        }
        m
    }

    #[tokio::test]
    async fn batches_respect_batch_size_and_every_record_is_delivered_in_order() {
        let s = shards(1000, 3);
        let mut f = Probe {
            seen: vec![],
            rule: |_: &[String], _| Ok(None),
        };
        let report = run(
            &s,
            MappingConfig {
                batch_size: 64,
                ..Default::default()
            },
            &mut f,
        )
        .await;
        assert!(f.seen.iter().all(|b| b.len() <= 64 && !b.is_empty()));
        assert_eq!(delivered(&f.seen).len(), 1000);
        assert!(delivered(&f.seen).values().all(|&n| n == 1));
        assert_eq!(report.retries, 0);
        for shard in &s {
            let order: Vec<&String> = f
                .seen
                .iter()
                .flatten()
                .filter(|seq| shard.iter().any(|r| &r.sequence_number == *seq))
                .collect();
            let want: Vec<&String> = shard.iter().map(|r| &r.sequence_number).collect();
            assert_eq!(order, want, "per-shard order");
        }
    }

    #[tokio::test]
    async fn a_reported_failure_is_retried_from_the_lowest_failed_record() {
        let s = shards(300, 1);
        let target = s[0][130].sequence_number.clone();
        let mut failed_once = false;
        let mut f = Probe {
            seen: vec![],
            rule: move |seqs: &[String], _| {
                if !failed_once && seqs.contains(&target) {
                    failed_once = true;
                    return Ok(Some(target.clone()));
                }
                Ok(None)
            },
        };
        let report = run(
            &s,
            MappingConfig {
                batch_size: 100,
                ..Default::default()
            },
            &mut f,
        )
        .await;
        assert_eq!(report.retries, 1);
        // the retry starts exactly at the failed record
        let retry = f
            .seen
            .iter()
            .find(|b| b[0] == s[0][130].sequence_number)
            .expect("retry batch");
        assert!(retry.len() <= 100);
        let d = delivered(&f.seen);
        assert_eq!(
            d[&s[0][129].sequence_number], 1,
            "records before the failure are not redone"
        );
        assert_eq!(d[&s[0][130].sequence_number], 2);
    }

    #[tokio::test]
    async fn function_errors_bisect_then_go_to_the_on_failure_destination() {
        let s = shards(200, 1);
        let poison = s[0][37].sequence_number.clone();
        let mut f = Probe {
            seen: vec![],
            rule: move |seqs: &[String], _| {
                if seqs.contains(&poison) {
                    Err("boom".to_owned())
                } else {
                    Ok(None)
                }
            },
        };
        let config = MappingConfig {
            batch_size: 100,
            max_retry_attempts: 8,
            ..Default::default()
        };
        let report = run(&s, config, &mut f).await;
        assert!(report.bisections >= 3, "{report:?}");
        assert_eq!(report.on_failure.len(), 1);
        let failed = &report.on_failure[0];
        assert!(
            failed.batch_size < 100,
            "bisection narrowed the batch: {failed:?}"
        );
        assert!(failed.condition.contains("boom"));
        // everything else got through
        let d = delivered(&f.seen);
        assert!(s[0].iter().all(|r| d.contains_key(&r.sequence_number)));
    }

    #[tokio::test]
    async fn parallelization_keeps_per_key_order_and_batching_windows_cut_batches() {
        let s = shards(600, 1);
        let mut f = Probe {
            seen: vec![],
            rule: |_: &[String], _| Ok(None),
        };
        let config = MappingConfig {
            batch_size: 1000,
            batching_window_ms: 500,
            parallelization_factor: 4,
            ..Default::default()
        };
        run(&s, config, &mut f).await;
        assert!(f.seen.len() > 4, "windows cut batches before BatchSize");
        let position: HashMap<&String, usize> = f
            .seen
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        let mut last: HashMap<&str, usize> = HashMap::new();
        for r in &s[0] {
            let at = position[&r.sequence_number];
            if let Some(prev) = last.insert(&r.partition_key, at) {
                assert!(prev < at, "key {} out of order", r.partition_key);
            }
        }
    }
}
