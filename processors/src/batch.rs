//! The Kinesis batch core, shared by every stream consumer.
//!
//! Per invocation: decode and validate every record (SIMD), hand valid events
//! to a [`RecordHandler`] and poison records to a [`DeadLetterQueue`] (both at
//! once), retry transient failures within the deadline, and answer Lambda with
//! checkpoint semantics: the response names the first record that was not
//! durably handled, and Lambda retries from there. Every record ends as
//! handled, dead-lettered, or inside the reported retry range: none is lost.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use pipeline_schemas::{DecoderConfig, Event, InvocationDecoder, InvocationError, RecordMeta};

use crate::dlq::{DeadLetter, DeadLetterQueue, DlqError};
use crate::retry::{RetryPolicy, Transient};

/// A valid record, with its position in the invocation. It borrows the
/// decoded record rather than holding it: moving 10,000 decoded events into
/// a list of their own copied 4 MB (0.5 ms an invocation).
#[derive(Debug, Clone, Copy)]
pub struct ValidRecord<'a> {
    /// Index in the invocation's `Records`.
    pub position: usize,
    /// Kinesis metadata.
    pub meta: &'a RecordMeta<'a>,
    /// The validated event.
    pub event: &'a Event<'a>,
}

/// What a handler did with its records.
#[derive(Debug, Clone, Default)]
pub struct HandlerReport {
    /// Positions of records that were not durably handled.
    pub failed: Vec<usize>,
    /// Retries made.
    pub retries: u32,
    /// Rows written, by table (or output) name.
    pub rows: BTreeMap<&'static str, usize>,
    /// Objects or requests written.
    pub objects: usize,
    /// Of those, how many were already present (an idempotent retry).
    pub already_present: usize,
    /// Bytes written.
    pub bytes: usize,
    /// What went wrong, for the logs.
    pub errors: Vec<String>,
}

/// A consumer of valid events: the archiver, the aggregator, yours.
///
/// `handle` must be all-or-nothing per position: a position it does not
/// report as failed is durably stored. Records arrive in stream order.
pub trait RecordHandler: Send + Sync {
    /// Durably handles `records` before `deadline`.
    fn handle(
        &self,
        records: &[ValidRecord<'_>],
        deadline: Instant,
    ) -> impl Future<Output = HandlerReport> + Send;
}

/// Per-invocation numbers, for logs and metrics.
#[derive(Debug, Clone, Default)]
pub struct InvocationStats {
    /// Records in the invocation.
    pub records_in: usize,
    /// Valid events.
    pub valid: usize,
    /// Poison records dead-lettered, by reason code.
    pub dead_lettered: BTreeMap<&'static str, usize>,
    /// Rows written, by table.
    pub rows: BTreeMap<&'static str, usize>,
    /// Objects written (and of those, already present).
    pub objects: (usize, usize),
    /// Bytes written by the handler.
    pub bytes: usize,
    /// Records reported back to Lambda for retry (from the first failure on).
    pub failed: usize,
    /// Retries of transient errors.
    pub retries: u32,
    /// Wall time of the invocation.
    pub duration: Duration,
    /// Errors seen (bounded), for the logs.
    pub errors: Vec<String>,
    /// `correlation_id`s of the first few events, for log correlation.
    pub correlation_ids: Vec<String>,
}

/// The result of one invocation.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// What to return to Lambda.
    pub response: KinesisEventResponse,
    /// Numbers.
    pub stats: InvocationStats,
}

/// Decoding + routing + failure accounting for one consumer.
pub struct BatchProcessor<H, D> {
    decoder: InvocationDecoder,
    handler: H,
    dlq: D,
    retry: RetryPolicy,
}

impl<H: RecordHandler, D: DeadLetterQueue> BatchProcessor<H, D> {
    /// A processor sending valid events to `handler` and poison to `dlq`.
    pub fn new(handler: H, dlq: D, decoder: DecoderConfig, retry: RetryPolicy) -> Self {
        BatchProcessor {
            decoder: InvocationDecoder::new(decoder).with_threads(0),
            handler,
            dlq,
            retry,
        }
    }

    /// Decodes on `threads` threads (`0`, the default: every core; `1` for
    /// the one-core figures of the benchmarks).
    pub fn with_decode_threads(mut self, threads: usize) -> Self {
        self.decoder.set_threads(threads);
        self
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The dead-letter queue.
    pub fn dlq(&self) -> &D {
        &self.dlq
    }

    /// Handles one invocation payload (the raw bytes Lambda sent).
    /// `deadline` is when retrying must stop (remaining time minus a margin).
    pub async fn process(
        &mut self,
        payload: &mut [u8],
        deadline: Instant,
    ) -> Result<BatchOutcome, InvocationError> {
        let started = Instant::now();
        // the records stay in the decoder's slices: joining them into one
        // list was a serial copy (about 240 bytes a record) on two threads
        let decoded = self.decoder.decode_sliced(payload, |_| (), |_, _| ())?;
        let mut stats = InvocationStats {
            records_in: decoded.records,
            ..InvocationStats::default()
        };
        let mut valid = Vec::with_capacity(decoded.records);
        let mut letters = Vec::new();
        let records = decoded.slices.iter().flat_map(|slice| &slice.records);
        for (position, record) in records.enumerate() {
            match &record.outcome {
                Ok(event) => valid.push(ValidRecord {
                    position,
                    meta: &record.meta,
                    event,
                }),
                Err(rejection) => {
                    letters.push((position, DeadLetter::new(&record.meta, rejection)))
                }
            }
        }
        stats.valid = valid.len();
        stats.correlation_ids = valid
            .iter()
            .take(3)
            .map(|r| r.event.correlation_id.to_owned())
            .collect();

        let (report, dlq_failed) = tokio::join!(
            self.handler.handle(&valid, deadline),
            send_letters(&self.dlq, &letters, &self.retry, deadline, &mut stats)
        );

        let first_failure = report.failed.iter().chain(dlq_failed.iter()).copied().min();
        stats.rows = report.rows;
        stats.objects = (report.objects, report.already_present);
        stats.bytes = report.bytes;
        stats.retries += report.retries;
        stats.errors.extend(report.errors.into_iter().take(10));
        let mut response = KinesisEventResponse::default();
        if let Some(first) = first_failure {
            stats.failed = stats.records_in - first;
            let seq = valid
                .iter()
                .find(|r| r.position == first)
                .map(|r| r.meta.sequence_number.to_owned())
                .or_else(|| {
                    letters
                        .iter()
                        .find(|(p, _)| *p == first)
                        .map(|(_, l)| l.sequence_number.clone())
                });
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = seq;
            response.batch_item_failures.push(failure);
        }
        stats.duration = started.elapsed();
        Ok(BatchOutcome { response, stats })
    }
}

/// Sends letters with retries; returns the positions that could not be stored.
async fn send_letters<D: DeadLetterQueue>(
    dlq: &D,
    letters: &[(usize, DeadLetter)],
    retry: &RetryPolicy,
    deadline: Instant,
    stats: &mut InvocationStats,
) -> Vec<usize> {
    let mut failed = Vec::new();
    let mut pending: Vec<usize> = (0..letters.len()).collect();
    let mut attempt = 0u32;
    let note = |stats: &mut InvocationStats, i: usize, e: &DlqError| {
        if stats.errors.len() < 10 {
            stats
                .errors
                .push(format!("dead letter {}: {e}", letters[i].1.sequence_number));
        }
    };
    while !pending.is_empty() {
        attempt += 1;
        let batch: Vec<DeadLetter> = pending.iter().map(|&i| letters[i].1.clone()).collect();
        let results = dlq.send(&batch).await;
        let mut again = Vec::new();
        for (k, &i) in pending.iter().enumerate() {
            match results.get(k) {
                Some(Ok(())) => *stats.dead_lettered.entry(letters[i].1.reason).or_insert(0) += 1,
                Some(Err(e)) if e.is_transient() => again.push((i, e.clone())),
                Some(Err(e)) => {
                    note(stats, i, e);
                    failed.push(letters[i].0);
                }
                None => again.push((i, DlqError::Transient("no result for this letter".into()))),
            }
        }
        if again.is_empty() {
            break;
        }
        let pause = retry.backoff(attempt);
        if attempt >= retry.max_attempts || Instant::now() + pause >= deadline {
            for (i, e) in &again {
                note(stats, *i, e);
                failed.push(letters[*i].0);
            }
            break;
        }
        tokio::time::sleep(pause).await;
        stats.retries += 1;
        pending = again.into_iter().map(|(i, _)| i).collect();
    }
    failed
}
