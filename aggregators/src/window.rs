//! Exactly-once metrics with Lambda's Kinesis tumbling windows.
//!
//! With `TumblingWindowInSeconds` on the event source mapping, Lambda groups
//! each shard's records into windows by arrival time and carries a `state`
//! from one invocation of a window to the next; the last invocation is marked
//! `isFinalInvokeForWindow`. The aggregator keeps the window's running
//! aggregates in that state and writes nothing until the final invocation,
//! which writes one upsert per (minute, dimensions, shard, window) with the
//! window's end as version. So:
//!
//! - a retried batch is recomputed from the state Lambda checkpointed with it:
//!   nothing counts twice, whatever the new batch boundaries;
//! - a retried final write rewrites the same records with the same version;
//! - a duplicated record (same `event_id` twice in a window) counts once.
//!
//! The response carries both `state` and `batchItemFailures` (the
//! `aws_lambda_events` time-window response has no `batchItemFailures`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use pipeline_schemas::write::push_json_string;
use pipeline_schemas::{
    DecodedRecord, DecoderConfig, Event, InvocationDecoder, InvocationError, Slice, Sliced,
};
use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use crate::measures::{Aggregates, Dim, Dims, Measures, SeriesKey, measure, merge};
use crate::sink::{MetricRecord, MetricsSink, SinkReport};

/// The state key under which the window's aggregates travel.
pub const STATE_KEY: &str = "aggregates_v1";

/// Why an invocation could not be handled at all.
#[derive(Debug, Error)]
pub enum WindowError {
    /// The payload is not a Kinesis event.
    #[error(transparent)]
    Invocation(#[from] InvocationError),
    /// The event source mapping has no tumbling window: exactly-once metrics
    /// need one (set `TumblingWindowInSeconds`).
    #[error("metrics-aggregator needs TumblingWindowInSeconds on its event source mapping")]
    NoWindow,
    /// The carried state is unreadable (it was not written by this version).
    #[error("window state is unreadable: {0}")]
    BadState(String),
    /// The final write of an empty invocation failed: there is no record to
    /// name in `batchItemFailures`, so the invocation fails and Lambda retries it.
    #[error("final metrics write failed: {0}")]
    FinalWriteFailed(String),
    /// The window's aggregates alone pass Lambda's state limit (the digests
    /// were already dropped): the window is too long for its dimensions.
    #[error(
        "the window's aggregates take {0} bytes, over the {STATE_BUDGET_BYTES}-byte state budget: \
         shorten TumblingWindowInSeconds"
    )]
    StateTooLarge(usize),
}

/// The most a returned state may take as it travels: the JSON object
/// `{"aggregates_v1":"..."}`, the encoded state escaped inside it. Lambda
/// refuses a response whose state passes 1 MB, and then retries the same
/// batch, which fails the same way, holding its shard back until its records
/// expire. 1 MB is read as 10^6 bytes, the smaller reading.
pub const STATE_BUDGET_BYTES: usize = 1_000_000;

/// The running aggregates of one window, plus 64-bit digests of the event
/// ids seen (for de-duplicating records a producer sent twice). Digests keep
/// the state small: Lambda caps it at 1 MB, i.e. about 93,000 events per
/// shard and window within [`STATE_BUDGET_BYTES`] (size
/// `TumblingWindowInSeconds` for that). Past it, the digests are dropped
/// rather than the invocation failed (see [`WindowState::encode_within`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowState {
    /// Aggregates so far.
    pub aggregates: Aggregates,
    /// Digests of the `event_id`s counted in this window, sorted, each once:
    /// the order they are encoded in, so a state is read without building a
    /// set and written without sorting it (see [`WindowState::admit`]).
    seen: Vec<u64>,
}

/// A 64-bit digest of a (validated) UUID: its 128 bits folded in half.
/// Collisions among 90,000 random UUIDs: about 1 in 4 billion windows.
/// Digests travel in the window state from one invocation (and one
/// deployed version) to the next, so the value must never change.
pub fn id_digest(event_id: &str) -> u64 {
    canonical_uuid_digest(event_id.as_bytes()).unwrap_or_else(|| any_text_digest(event_id))
}

/// [`id_digest`] of a canonical UUID (`8-4-4-4-12` hex digits), the shape
/// every valid event has; `None` for any other text.
fn canonical_uuid_digest(b: &[u8]) -> Option<u64> {
    pipeline_schemas::rules::uuid_halves(b).map(|(hi, lo)| hi ^ lo)
}

/// [`id_digest`] of any text: its hex digits, in order, as one number.
fn any_text_digest(event_id: &str) -> u64 {
    let mut v: u128 = 0;
    for c in event_id.bytes() {
        if let Some(d) = (c as char).to_digit(16) {
            v = (v << 4) | u128::from(d);
        }
    }
    (v >> 64) as u64 ^ v as u64
}

impl WindowState {
    /// Compact JSON: `{"e":"<digests, base64>","s":[[minute,country,currency,method,m0..m9],...]}`.
    /// Written directly rather than through `serde_json::Value`: a window
    /// half a minute into a busy shard carries 30,000 digests (330 KB), and
    /// building and printing a `Value` for it took 0.8 ms of every
    /// mid-window invocation. The bytes are what `serde_json` printed
    /// before (a test pins them): states cross deployments.
    pub fn encode(&self) -> String {
        let mut ids = Vec::with_capacity(self.seen.len() * 8);
        for d in &self.seen {
            ids.extend_from_slice(&d.to_le_bytes());
        }
        let mut out = String::with_capacity(ids.len() / 3 * 4 + 16 + self.aggregates.len() * 128);
        out.push_str(r#"{"e":""#);
        base64_simd::STANDARD.encode_append(&ids, &mut out);
        out.push_str(r#"","s":["#);
        for (i, (k, m)) in self.aggregates.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            out.push_str(itoa::Buffer::new().format(k.minute_ms));
            for dim in [&k.dims.country, &k.dims.currency, &k.dims.payment_method] {
                out.push(',');
                push_json_string(&mut out, dim.as_str());
            }
            for (_, v) in m.named() {
                out.push(',');
                out.push_str(itoa::Buffer::new().format(v));
            }
            out.push(']');
        }
        out.push_str("]}");
        out
    }

    /// [`WindowState::encode`], within [`STATE_BUDGET_BYTES`]: if the state
    /// would pass it, the digests seen so far are forgotten (their number is
    /// returned), so that the window goes on with its counts whole and only
    /// de-duplication against the events before this point is lost. Failing
    /// instead would stop the shard: Lambda retries the same batch, which
    /// passes the limit again. Duplicates within one invocation are still
    /// found, and a producer's duplicates are adjacent in the shard.
    pub fn encode_within(&mut self, budget: usize) -> Result<(String, usize), WindowError> {
        let encoded = self.encode();
        if self.travelling_bytes(&encoded) <= budget {
            return Ok((encoded, 0));
        }
        let forgotten = std::mem::take(&mut self.seen).len();
        let encoded = self.encode();
        match self.travelling_bytes(&encoded) {
            bytes if bytes <= budget => Ok((encoded, forgotten)),
            bytes => Err(WindowError::StateTooLarge(bytes)),
        }
    }

    /// The bytes of `{"aggregates_v1":"<encoded, escaped>"}` for this
    /// state's `encoded` form: its quotes and backslashes are escaped once
    /// more. The digests are base64, which has neither, so only what follows
    /// them is scanned.
    fn travelling_bytes(&self, encoded: &str) -> usize {
        const PREFIX: &str = r#"{"e":""#;
        let digests_end = PREFIX.len() + base64_simd::STANDARD.encoded_length(self.seen.len() * 8);
        let escapes = |b: &[u8]| b.iter().filter(|&&c| c == b'"' || c == b'\\').count();
        let escaped = escapes(PREFIX.as_bytes())
            + escapes(encoded.as_bytes().get(digests_end..).unwrap_or_default());
        // {"aggregates_v1":" then the escaped state, then "}
        r#"{"":""#.len() + STATE_KEY.len() + encoded.len() + escaped + r#""}"#.len()
    }

    /// Reads [`WindowState::encode`] back. The digests are borrowed from
    /// `text` (base64 has nothing to unescape) and decoded straight into the
    /// sorted list they were written from.
    pub fn decode(text: &str) -> Result<Self, String> {
        let encoded: Encoded<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut state = WindowState::default();
        for Row(minute_ms, country, currency, method, m0, m1, m2, m3, m4, m5, m6, m7, m8, m9) in
            encoded.s
        {
            let values = [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9];
            let dim = |s: &str| Dim::new(s).ok_or("dimension");
            state.aggregates.insert(
                SeriesKey {
                    minute_ms,
                    dims: Dims {
                        country: dim(&country)?,
                        currency: dim(&currency)?,
                        payment_method: dim(&method)?,
                    },
                },
                Measures::from_values(values),
            );
        }
        let ids = base64_simd::STANDARD
            .decode_to_vec(encoded.e.as_bytes())
            .map_err(|e| e.to_string())?;
        if ids.len() % 8 != 0 {
            return Err("id digests".into());
        }
        state.seen = ids
            .chunks_exact(8)
            .map(|chunk| {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                u64::from_le_bytes(b)
            })
            .collect();
        // every writer sorts them; anything else is not a state of ours
        if !state.seen.is_sorted_by(|a, b| a < b) {
            return Err("id digests out of order".into());
        }
        Ok(state)
    }

    /// The digests of the `event_id`s counted so far, in ascending order.
    pub fn seen(&self) -> &[u64] {
        &self.seen
    }

    /// Decides which of a batch's events count: `digests` are their
    /// `event_id` digests in record order, in runs (`None` for a record that
    /// is not an event). An event counts if no earlier one in the window
    /// had its digest: neither one seen before this batch nor one earlier
    /// in it. Returns a flag per record and adds the counted digests.
    ///
    /// The batch's digests are sorted with their positions and merged with
    /// the sorted digests seen before, so a mid-window invocation neither
    /// builds a set of the window's digests nor sorts them all to encode
    /// them: for 30,000 seen and 10,000 new, about 0.4 ms against 1.2 ms
    /// with a hash set (built, grown, then sorted).
    pub fn admit<'d>(&mut self, digests: impl IntoIterator<Item = &'d [Option<u64>]>) -> Vec<bool> {
        let mut batch: Vec<(u64, u32)> = Vec::new();
        let mut records = 0usize;
        for run in digests {
            batch.reserve(run.len());
            for digest in run {
                if let Some(d) = *digest {
                    // positions fit: an invocation holds at most 10,000 records
                    batch.push((d, u32::try_from(records).unwrap_or(u32::MAX)));
                }
                records += 1;
            }
        }
        let mut counts = vec![false; records];
        // by digest, then position: each digest's first occurrence first
        batch.sort_unstable();
        let mut fresh = Vec::with_capacity(batch.len());
        let (mut old, mut last) = (0, None);
        for (d, at) in batch {
            if last == Some(d) {
                continue;
            }
            last = Some(d);
            while self.seen.get(old).is_some_and(|&s| s < d) {
                old += 1;
            }
            if self.seen.get(old) == Some(&d) {
                continue;
            }
            if let Some(flag) = counts.get_mut(at as usize) {
                *flag = true;
            }
            fresh.push(d);
        }
        if self.seen.is_empty() {
            self.seen = fresh;
        } else if !fresh.is_empty() {
            self.seen = merge_sorted(&self.seen, &fresh);
        }
        counts
    }
}

/// [`WindowState`] as encoded.
#[derive(Deserialize)]
struct Encoded<'a> {
    /// The digests, base64.
    #[serde(borrow)]
    e: Cow<'a, str>,
    /// The series.
    #[serde(borrow)]
    s: Vec<Row<'a>>,
}

/// One series of an encoded state: minute, country, currency, payment
/// method, then the ten measures in [`Measures::named`] order.
#[derive(Deserialize)]
struct Row<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
);

/// `HHMM` of `ms` in UTC.
fn hhmm(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    format!("{:02}{:02}", in_day / 3_600_000, in_day / 60_000 % 60)
}

/// The records a final invocation writes.
pub fn records_of(
    state: &WindowState,
    shard_id: &str,
    window_start_ms: i64,
    window_end_ms: i64,
) -> Vec<MetricRecord> {
    state
        .aggregates
        .iter()
        .filter(|(_, m)| !m.is_zero())
        .map(|(k, m)| MetricRecord {
            minute_ms: k.minute_ms,
            dims: k.dims,
            shard_id: shard_id.to_owned(),
            window: hhmm(window_start_ms),
            measures: *m,
            version: window_end_ms,
        })
        .collect()
}

/// What one invocation did.
#[derive(Debug, Clone, Default)]
pub struct WindowStats {
    /// Records in the invocation.
    pub records_in: usize,
    /// Valid events counted.
    pub counted: usize,
    /// Duplicates (same `event_id` again in the window) skipped.
    pub duplicates: usize,
    /// Poison records skipped (the archiver dead-letters them).
    pub poison: usize,
    /// Final invocation: what the sink did.
    pub sink: Option<SinkReport>,
    /// The sink's failure, if any.
    pub error: Option<String>,
    /// Size of the returned state, bytes.
    pub state_bytes: usize,
    /// Digests dropped to keep the state within Lambda's limit (0 almost
    /// always): de-duplication against the events before them is lost.
    pub digests_forgotten: usize,
}

/// The response to Lambda, and the numbers.
#[derive(Debug, Clone)]
pub struct WindowOutcome {
    /// `{"state": {...}, "batchItemFailures": [...]}`.
    pub response: Value,
    /// Numbers for logs and metrics.
    pub stats: WindowStats,
}

/// What one slice of records adds, taken while the decoder had each record
/// in cache (see [`InvocationDecoder::decode_sliced`]): the `event_id`
/// digests (`None` for poison) and the sums of every valid event, as if
/// none were a duplicate.
struct SliceCount {
    digests: Vec<Option<u64>>,
    sums: SliceSums,
}

/// A slice's sums by series. A hash map, not the window's ordered map: each
/// event adds to one, and an ordered map's `entry`, comparing 56-byte keys
/// down the tree, was 2.75% of the aggregator (`perf`); the slice's few
/// hundred series are merged into the window's map once. Seeded per process
/// (foldhash): producers choose the minutes and codes that make up the keys,
/// and an unseeded hash would let them pile series onto one bucket.
type SliceSums = HashMap<SeriesKey, Measures, foldhash::fast::RandomState>;

fn add_to(sums: &mut SliceSums, event: &Event<'_>) {
    if let Some((key, m)) = measure(event) {
        sums.entry(key).or_default().add(&m);
    }
}

impl SliceCount {
    fn new(records: usize) -> Self {
        SliceCount {
            digests: Vec::with_capacity(records),
            sums: SliceSums::default(),
        }
    }

    fn visit(&mut self, record: &DecodedRecord<'_>) {
        let digest = record.outcome.as_ref().ok().map(|event| {
            add_to(&mut self.sums, event);
            id_digest(event.event_id)
        });
        self.digests.push(digest);
    }
}

/// Counts the valid events of `records` into `state`, each `event_id` once
/// per window (the first occurrence counts, in record order). One thread
/// decides which events count ([`WindowState::admit`]); a slice holding an
/// event that does not (a duplicate: producer retries) is summed again
/// without it. Sums do not depend on the order they are added in.
fn count(slices: &[Slice<'_, SliceCount>], state: &mut WindowState, stats: &mut WindowStats) {
    // the slices cover the invocation in order, so a record's flag is at
    // its position in the invocation
    let counts = state.admit(slices.iter().map(|s| s.value.digests.as_slice()));
    for slice in slices {
        let digests = &slice.value.digests;
        let flags = counts.get(slice.range.clone()).unwrap_or_default();
        let mut all_count = true;
        for (digest, &counted) in digests.iter().zip(flags) {
            match (digest, counted) {
                (Some(_), true) => stats.counted += 1,
                (Some(_), false) => {
                    stats.duplicates += 1;
                    all_count = false;
                }
                (None, _) => stats.poison += 1,
            }
        }
        if all_count {
            merge(&mut state.aggregates, &slice.value.sums);
        } else {
            merge(&mut state.aggregates, &sum_counted(&slice.records, flags));
        }
    }
}

/// Two sorted lists of distinct digests, with none in both, as one.
fn merge_sorted(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        if x < y {
            out.push(x);
            i += 1;
        } else {
            out.push(y);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The sums of the events of `records` marked in `counts`.
fn sum_counted(records: &[DecodedRecord<'_>], counts: &[bool]) -> SliceSums {
    let mut sums = SliceSums::default();
    for (record, &counted) in records.iter().zip(counts) {
        if let (true, Ok(event)) = (counted, &record.outcome) {
            add_to(&mut sums, event);
        }
    }
    sums
}

/// The metrics aggregator for one Lambda container.
pub struct WindowAggregator<S> {
    decoder: InvocationDecoder,
    sink: S,
}

impl<S: MetricsSink> WindowAggregator<S> {
    /// An aggregator writing to `sink`; it decodes large invocations on
    /// every core (a 3,538 MB Lambda has two).
    pub fn new(sink: S, decoder: DecoderConfig) -> Self {
        WindowAggregator {
            decoder: InvocationDecoder::new(decoder).with_threads(0),
            sink,
        }
    }

    /// Decodes and counts on up to `threads` threads (`0`: every core); the
    /// metric records are the same whatever the count.
    pub fn with_decode_threads(mut self, threads: usize) -> Self {
        self.decoder.set_threads(threads);
        self
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Handles one invocation payload.
    pub async fn process(
        &mut self,
        payload: &mut [u8],
        deadline: Instant,
    ) -> Result<WindowOutcome, WindowError> {
        let Sliced {
            window,
            records,
            slices,
        } = self
            .decoder
            .decode_sliced(payload, SliceCount::new, SliceCount::visit)?;
        let first = slices.iter().find_map(|s| s.records.first());
        let window = window.ok_or(WindowError::NoWindow)?;
        // the state as it came is also the answer when the final write
        // fails (this batch is retried from it), so it is decoded, not cloned
        // a window starts with an empty state and we write only STATE_KEY, so
        // anything else was written by another build (a rollback across a
        // format change): counting from zero would under-count silently
        let mut state = match window.state.iter().find(|(k, _)| *k == STATE_KEY) {
            Some((_, v)) => WindowState::decode(v).map_err(WindowError::BadState)?,
            None => match window.state.first() {
                None => WindowState::default(),
                Some((key, _)) => {
                    return Err(WindowError::BadState(format!(
                        "it holds {key:?}, not {STATE_KEY:?}: written by another build"
                    )));
                }
            },
        };
        let mut stats = WindowStats {
            records_in: records,
            ..WindowStats::default()
        };
        count(&slices, &mut state, &mut stats);
        let shard_id = if window.shard_id.is_empty() {
            first.map_or("", |r| r.meta.shard_id)
        } else {
            window.shard_id
        };
        let mut failures = Vec::new();
        let state_out = if window.is_final {
            let records = records_of(&state, shard_id, window.start_ms, window.end_ms);
            match self.sink.write(&records, deadline).await {
                Ok(report) => {
                    stats.sink = Some(report);
                    serde_json::Map::new()
                }
                Err(e) => {
                    stats.error = Some(e.to_string());
                    // retry this batch from its first record, with the state before it
                    if let Some(first) = first {
                        failures.push(json!({"itemIdentifier": first.meta.sequence_number}));
                    }
                    window
                        .state
                        .iter()
                        .map(|&(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                        .collect()
                }
            }
        } else {
            let (encoded, forgotten) = state.encode_within(STATE_BUDGET_BYTES)?;
            stats.digests_forgotten = forgotten;
            serde_json::Map::from_iter([(STATE_KEY.to_owned(), Value::String(encoded))])
        };
        stats.state_bytes = state_out
            .values()
            .map(|v| v.as_str().map_or(0, str::len))
            .sum();
        if window.is_final && stats.error.is_some() && records == 0 {
            // nothing to name in batchItemFailures: fail the invocation so Lambda retries it
            return Err(WindowError::FinalWriteFailed(
                stats.error.clone().unwrap_or_default(),
            ));
        }
        // built by moving the state in: `json!` would copy it
        let response = serde_json::Map::from_iter([
            ("batchItemFailures".to_owned(), Value::Array(failures)),
            ("state".to_owned(), Value::Object(state_out)),
        ]);
        Ok(WindowOutcome {
            response: Value::Object(response),
            stats,
        })
    }
}

/// Sums records over shards and windows: what a dashboard query computes.
pub fn totals(records: &[MetricRecord]) -> Aggregates {
    let mut out = Aggregates::new();
    for r in records {
        out.entry(SeriesKey {
            minute_ms: r.minute_ms,
            dims: r.dims,
        })
        .or_default()
        .add(&r.measures);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series of one minute and three dimension values.
    fn series(minute_ms: i64, country: &str, currency: &str, method: &str) -> SeriesKey {
        let dim = |v| Dim::new(v).expect("dim");
        SeriesKey {
            minute_ms,
            dims: Dims {
                country: dim(country),
                currency: dim(currency),
                payment_method: dim(method),
            },
        }
    }

    #[test]
    fn a_state_past_its_budget_forgets_its_digests_and_keeps_its_aggregates() {
        let mut s = WindowState::default();
        s.aggregates.insert(
            series(1_795_617_420_000, "FR", "EUR", "card"),
            Measures {
                orders_created: 7,
                ..Default::default()
            },
        );
        let digests: Vec<Option<u64>> = (0..1000u64).map(Some).collect();
        s.admit([digests.as_slice()]);
        let whole = s.encode();
        // within the budget: nothing forgotten, the bytes of `encode`
        let mut within = s.clone();
        assert_eq!(
            within.encode_within(2 * whole.len()).ok(),
            Some((whole.clone(), 0))
        );
        assert_eq!(within, s);
        // over it: the digests go, the aggregates stay
        let mut over = s.clone();
        let (text, forgotten) = over
            .encode_within(whole.len() / 2)
            .expect("fits without digests");
        assert_eq!(forgotten, 1000);
        let back = WindowState::decode(&text).expect("decodes");
        assert!(back.seen().is_empty());
        assert_eq!(back.aggregates, s.aggregates);
        // the budget is on the state as it travels, escaped in its JSON object
        let object = serde_json::json!({ STATE_KEY: whole }).to_string();
        assert_eq!(s.travelling_bytes(&whole), object.len());
        assert!(
            s.clone()
                .encode_within(object.len())
                .is_ok_and(|(_, f)| f == 0)
        );
        assert!(
            s.clone()
                .encode_within(object.len() - 1)
                .is_ok_and(|(_, f)| f == 1000)
        );
        // the aggregates alone over the budget: an error that says what to do
        let err = over.encode_within(10).expect_err("too large");
        assert!(err.to_string().contains("TumblingWindowInSeconds"), "{err}");
    }

    #[test]
    fn state_round_trips() {
        let mut s = WindowState::default();
        s.aggregates.insert(
            series(1_795_617_420_000, "DE", "EUR", "card"),
            Measures {
                payments_succeeded: 3,
                payment_revenue_cents: 9000,
                ..Default::default()
            },
        );
        let ids = [
            Some(id_digest("7c9e6679-7425-40de-944b-e07fc1f90ae7")),
            Some(id_digest("0f8fad5b-d9cb-469f-a165-70867728950e")),
        ];
        assert_eq!(s.admit([&ids[..]]), [true, true]);
        assert_eq!(s.seen().len(), 2);
        assert_eq!(WindowState::decode(&s.encode()), Ok(s.clone()));
        assert!(WindowState::decode("{}").is_err());
        // the same ids, admitted in another order and in other batches: the same bytes
        let digests: Vec<Option<u64>> = (0..500u64)
            .map(|d| Some(d.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let mut other = WindowState {
            aggregates: s.aggregates.clone(),
            ..WindowState::default()
        };
        let reversed: Vec<Option<u64>> = digests.iter().rev().copied().collect();
        other.admit([&reversed[..]]);
        let mut again = WindowState {
            aggregates: s.aggregates.clone(),
            ..WindowState::default()
        };
        again.admit([&digests[..200]]);
        again.admit([&digests[300..], &digests[200..300]]);
        assert_eq!(other.encode(), again.encode());
        assert_eq!(other, again);
    }

    /// States cross deployments (a window open during a deploy is finished
    /// by the new version): the bytes the earlier `serde_json`-printed
    /// encoder wrote, escapes and all, are what is written and read now.
    #[test]
    fn state_bytes_never_change() {
        const WRITTEN: &str = "{\"e\":\"AAAAAAAAAAABAAAAAAAAAO/Nq4lnRSMB//////////8=\",\"s\":[[1795617420000,\"DE\",\"EUR\",\"card\",1,0,0,3,9000,0,0,0,0,0],[1795617480000,\"A\\\"\\\\\\u0001\u{7f}é\",\"\",\"x\",1,0,0,18446744073709551615,9000,0,0,0,0,0],[1795617480000,\"US\",\"USD\",\"-\",1,0,0,7,9000,0,0,0,0,0]]}";
        let mut s = WindowState::default();
        for (minute_ms, country, currency, method, n) in [
            (1_795_617_420_000, "DE", "EUR", "card", 3),
            (1_795_617_480_000, "US", "USD", "-", 7),
            (1_795_617_480_000, "A\"\\\u{1}\u{7f}é", "", "x", u64::MAX),
        ] {
            s.aggregates.insert(
                series(minute_ms, country, currency, method),
                Measures {
                    orders_created: 1,
                    payments_succeeded: n,
                    payment_revenue_cents: 9000,
                    ..Default::default()
                },
            );
        }
        s.admit([&[
            Some(0),
            Some(1),
            Some(u64::MAX),
            Some(0x0123_4567_89ab_cdef),
        ][..]]);
        assert_eq!(s.encode(), WRITTEN);
        assert_eq!(WindowState::decode(WRITTEN), Ok(s.clone()));
        // every control character escaped as serde_json escapes it, read back
        let all: String = (0u8..0x20).map(char::from).collect();
        let mut controls = WindowState::default();
        controls.aggregates.insert(
            series(-1, &all[..15], &all[15..30], &all[30..]),
            Measures::default(),
        );
        let text = controls.encode();
        let value: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value.to_string(), text);
        assert_eq!(WindowState::decode(&text), Ok(controls));
        // what is not a state is refused, not half read
        for bad in [
            "{}",
            r#"{"e":"","s":[[1,"DE","EUR","card",1,2,3]]}"#,
            r#"{"e":"AAAA","s":[]}"#,
            r#"{"e":"!","s":[]}"#,
            // digests out of order, or twice: not written by us
            r#"{"e":"AQAAAAAAAAAAAAAAAAAAAA==","s":[]}"#,
            r#"{"e":"AQAAAAAAAAABAAAAAAAAAA==","s":[]}"#,
            r#"{"e":"","s":[[1,"DE","EUR","a-dimension-too-long",1,0,0,0,0,0,0,0,0,0]]}"#,
            r#"{"e":"","s":[[1,"DE","EUR","card",-1,0,0,0,0,0,0,0,0,0]]}"#,
        ] {
            assert!(WindowState::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_named_by_their_start() {
        assert_eq!(hhmm(1_795_617_420_000), "1437");
        assert_eq!(hhmm(0), "0000");
    }

    /// Digests carried in window states written by earlier versions must
    /// keep matching: pinned values, and the canonical-shape fast path
    /// equal to the general rule for any 128 bits in any letter case.
    #[test]
    fn id_digests_never_change() {
        assert_eq!(
            id_digest("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
            0x7c9e_6679_7425_40de ^ 0x944b_e07f_c1f9_0ae7
        );
        assert_eq!(
            id_digest("7C9E6679-7425-40DE-944B-E07FC1F90AE7"),
            id_digest("7c9e6679-7425-40de-944b-e07fc1f90ae7")
        );
        // not the canonical shape: every hex digit, in order
        assert_eq!(id_digest("ab-cd"), 0xabcd);
        assert_eq!(id_digest("7c9e6679-7425-40de-944b-e07fc1f90ag7"), {
            let v: u128 = 0x07c9_e667_9742_540d_e944_be07_fc1f_90a7;
            (v >> 64) as u64 ^ v as u64
        });
    }

    proptest::proptest! {
        #[test]
        fn the_uuid_fast_path_agrees_with_the_general_rule(v: u128, upper: bool, at in 0usize..36, c: u8) {
            let hex = format!("{v:032x}");
            let mut id = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]
            );
            if upper {
                id = id.to_uppercase();
            }
            proptest::prop_assert_eq!(id_digest(&id), (v >> 64) as u64 ^ v as u64);
            proptest::prop_assert_eq!(id_digest(&id), any_text_digest(&id));
            // one byte changed: whatever it becomes, both rules agree
            let mut bytes = id.into_bytes();
            bytes[at] = c;
            if let Ok(changed) = std::str::from_utf8(&bytes) {
                proptest::prop_assert_eq!(id_digest(changed), any_text_digest(changed));
            }
        }

        /// `admit` decides as a set in record order would: over batches in
        /// runs, with digests from a small domain (many duplicates, within a
        /// batch and against earlier ones) and records that are not events.
        #[test]
        fn admitting_agrees_with_a_set_in_record_order(
            batches in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(proptest::option::weighted(0.9, 0u64..40), 0..12),
                    0..4,
                ),
                1..6,
            ),
        ) {
            let mut state = WindowState::default();
            let mut model = std::collections::HashSet::new();
            for runs in &batches {
                let expected: Vec<bool> = runs
                    .iter()
                    .flatten()
                    .map(|d| d.is_some_and(|d| model.insert(d)))
                    .collect();
                let counts = state.admit(runs.iter().map(Vec::as_slice));
                proptest::prop_assert_eq!(counts, expected);
                let mut seen: Vec<u64> = model.iter().copied().collect();
                seen.sort_unstable();
                proptest::prop_assert_eq!(state.seen(), &seen[..]);
            }
        }

        /// Any state (dimensions of any text up to their limit, any
        /// numbers) is written as the earlier `serde_json` encoder wrote it,
        /// and read back whole; any text at all is read or refused, never a
        /// panic.
        #[test]
        fn states_are_written_as_before_and_read_back(
            series in proptest::collection::vec(
                (proptest::num::i64::ANY, "\\PC{0,5}", "[\\x00-\\x7f]{0,15}", ".{0,3}", proptest::array::uniform10(proptest::num::u64::ANY)),
                0..20,
            ),
            digests in proptest::collection::vec(proptest::num::u64::ANY, 0..200),
            noise in ".{0,64}",
        ) {
            let mut state = WindowState::default();
            for (minute_ms, country, currency, method, values) in &series {
                let (Some(country), Some(currency), Some(payment_method)) =
                    (Dim::new(country), Dim::new(currency), Dim::new(method))
                else {
                    continue;
                };
                state.aggregates.insert(
                    SeriesKey { minute_ms: *minute_ms, dims: Dims { country, currency, payment_method } },
                    Measures::from_values(*values),
                );
            }
            let digests: Vec<Option<u64>> = digests.into_iter().map(Some).collect();
            state.admit([&digests[..]]);
            let text = state.encode();
            proptest::prop_assert_eq!(&text, &serde_json_encoding(&state));
            proptest::prop_assert_eq!(WindowState::decode(&text), Ok(state));
            let _ = WindowState::decode(&noise);
            let half: String = text.chars().take(text.chars().count() / 2).collect();
            proptest::prop_assert!(WindowState::decode(&half).is_err());
        }
    }

    /// The encoder as it was first written, through `serde_json::Value`.
    fn serde_json_encoding(state: &WindowState) -> String {
        let series: Vec<Value> = state
            .aggregates
            .iter()
            .map(|(k, m)| {
                let mut row = vec![
                    json!(k.minute_ms),
                    json!(k.dims.country.as_str()),
                    json!(k.dims.currency.as_str()),
                    json!(k.dims.payment_method.as_str()),
                ];
                row.extend(m.named().iter().map(|(_, v)| json!(v)));
                Value::Array(row)
            })
            .collect();
        let mut digests: Vec<u64> = state.seen().to_vec();
        digests.sort_unstable();
        let ids: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
        json!({"s": series, "e": base64_simd::STANDARD.encode_to_string(&ids)}).to_string()
    }
}
