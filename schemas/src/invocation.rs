//! Decodes a whole Lambda invocation from Kinesis: the raw payload bytes, as
//! the Lambda runtime receives them, to validated events or reason codes.
//!
//! The outer payload is read once by [`crate::envelope`]. Every record's base64
//! `data` is decoded (SIMD) into one packed arena with simd-json's padding
//! between records, and each record is then parsed in place from the arena.
//! Record metadata borrows from the payload, events borrow from the arena:
//! no per-field allocation, and buffers are reused across invocations.

use std::borrow::Cow;
use std::ops::Range;

use base64_simd::{Out, STANDARD};
use thiserror::Error;

use crate::envelope::{DataLen, Recent, Records};
use crate::event::Event;
use crate::parallel::Workers;
use crate::reason::{ReasonCode, Rejection};
use crate::record::{RECORD_PADDING, RecordParser};

/// Kinesis' record size limit for provisioned streams: 1 MiB of data.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecoderConfig {
    /// Records whose decoded data is larger are rejected as `record_too_large`
    /// without being decoded.
    pub max_record_bytes: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// The invocation payload itself is unusable. Lambda never sends such a
/// payload, so this means the function is wired to the wrong source.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvocationError {
    /// The payload is not JSON.
    #[error("invocation payload is not JSON: {0}")]
    NotJson(String),
    /// The payload has no `Records` array.
    #[error("invocation payload has no `Records` array; is this function triggered by Kinesis?")]
    NoRecords,
    /// The tumbling-window fields are malformed.
    #[error("invocation has a malformed `{field}`")]
    BadWindow {
        /// The field.
        field: &'static str,
    },
    /// A record lacks a field that every Kinesis event record has.
    #[error("Records[{index}] has no valid `{field}`")]
    BadRecord {
        /// Position in `Records`.
        index: usize,
        /// The missing or mistyped field.
        field: &'static str,
    },
}

/// What Lambda tells us about one Kinesis record, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordMeta<'p> {
    /// Position in the invocation's `Records`.
    pub index: usize,
    /// The 56-digit sequence number; `batchItemFailures` reports this.
    pub sequence_number: &'p str,
    /// The producer's partition key.
    pub partition_key: &'p str,
    /// `shardId-...`, taken from `eventID`.
    pub shard_id: &'p str,
    /// ARN of the stream.
    pub event_source_arn: &'p str,
    /// `approximateArrivalTimestamp`, in epoch milliseconds.
    pub arrival_ms: i64,
    /// The record exactly as received (base64), for the dead-letter queue.
    /// Bytes, not `str`: it is checked as base64 when decoded, which is
    /// stricter than UTF-8 and would make a second check redundant.
    pub data_base64: &'p [u8],
}

/// One record of the invocation: its metadata and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRecord<'p> {
    /// Kinesis metadata.
    pub meta: RecordMeta<'p>,
    /// The event, or why the record is poison.
    pub outcome: Result<Event<'p>, Rejection>,
}

/// A reusable decoder. Keep one per Lambda container: its buffers grow to
/// the largest invocation seen and are then reused.
pub struct InvocationDecoder {
    config: DecoderConfig,
    /// One parser per thread (scratch buffers kept between invocations).
    parsers: Vec<RecordParser>,
    threads: usize,
    arena: Vec<u8>,
}

/// Below this many records an invocation is decoded on one thread: a thread
/// costs more than it saves.
const PARALLEL_MIN_RECORDS: usize = 512;

/// Payloads from this size up wake the helper threads before the envelope is
/// read: 512 records of the smallest valid event are about this much.
const PARALLEL_MIN_BYTES: usize = 128 * 1024;

impl std::fmt::Debug for InvocationDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationDecoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for InvocationDecoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

/// Where a record's decoded bytes sit in the arena, or why they don't.
enum Span {
    Data { len: usize },
    Rejected(Rejection),
}

impl InvocationDecoder {
    /// A decoder with the given limits.
    pub fn new(config: DecoderConfig) -> Self {
        InvocationDecoder {
            config,
            parsers: vec![RecordParser::new()],
            threads: 1,
            arena: Vec::new(),
        }
    }

    /// Decodes records (base64 and parsing) on up to `threads` threads; `0`
    /// uses every core, and more than the machine has are not used (see
    /// [`Workers`]). Large payloads' envelopes are read in pieces on them too.
    /// Results are the same, in the same order, whatever the count. A
    /// 3,538 MB Lambda has two vCPUs.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.set_threads(threads);
        self
    }

    /// See [`InvocationDecoder::with_threads`].
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
    }

    /// The threads asked for (`0`: every core): a consumer shares its own
    /// per-record work over the same ones.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The limits in force.
    pub fn config(&self) -> DecoderConfig {
        self.config
    }

    /// Decodes `payload` (escaped strings are rewritten in place, hence `mut`).
    /// Every record yields exactly one [`DecodedRecord`], in order; a bad
    /// record never fails the batch.
    pub fn decode<'p>(
        &'p mut self,
        payload: &'p mut [u8],
    ) -> Result<Vec<DecodedRecord<'p>>, InvocationError> {
        self.decode_invocation(payload).map(|i| i.records)
    }

    /// Like [`InvocationDecoder::decode`], and also reads the tumbling-window
    /// fields Lambda adds when the event source mapping sets
    /// `TumblingWindowInSeconds`.
    pub fn decode_invocation<'p>(
        &'p mut self,
        payload: &'p mut [u8],
    ) -> Result<DecodedInvocation<'p>, InvocationError> {
        let Sliced {
            window,
            records,
            slices,
        } = self.decode_sliced(payload, |_| (), |_, _| ())?;
        // one slice (one thread) is the list; several are joined into a list
        // of the exact length: collecting the flattened slices grew it (and
        // copied it) several times
        let mut out = Vec::new();
        for slice in slices {
            if out.is_empty() && slice.records.len() == records {
                out = slice.records;
            } else {
                out.reserve_exact(records - out.len());
                out.extend(slice.records);
            }
        }
        Ok(DecodedInvocation {
            records: out,
            window,
        })
    }

    /// Like [`InvocationDecoder::decode_invocation`], but the records stay
    /// in the lists of the slices they were decoded in, and `visit` is called
    /// on each right after decoding it, on the thread that decoded it, with
    /// one `T` per slice (made by `new` from the slice's record count).
    /// Work on an event's fields done there finds them in cache; done after
    /// the whole invocation is decoded, it finds them evicted by the records
    /// decoded since (digests of `event_id`s cost the aggregator twice as
    /// long). Keeping the lists apart skips joining them on one thread (a
    /// copy of about 240 bytes a record while the other cores wait). The
    /// slices come in record order; how records are cut into slices depends
    /// on the thread count and the payload.
    pub fn decode_sliced<'p, T, N, V>(
        &'p mut self,
        payload: &'p mut [u8],
        new: N,
        visit: V,
    ) -> Result<Sliced<'p, T>, InvocationError>
    where
        T: Send,
        N: Fn(usize) -> T + Sync,
        V: Fn(&mut T, &DecodedRecord<'p>) + Sync,
    {
        let Self {
            config,
            parsers,
            threads,
            arena,
        } = self;
        let workers = Workers::new(*threads);
        // wake the other cores now, so that they are up when the records are
        // shared out, rather than after (see `crate::parallel`)
        let _warm = (payload.len() >= PARALLEL_MIN_BYTES).then(|| workers.warm());
        let crate::envelope::Envelope {
            records: metas,
            window,
        } = crate::envelope::read_envelope(payload, workers)?;
        let metas = &metas;

        // The arena holds every record's decoded bytes and padding: sized
        // from the lengths the envelope reader took at each `data` (a record
        // rejected for its size below keeps its room, unused).
        let max = config.max_record_bytes;
        let runs = metas.runs();
        let room = |records: usize, decoded: usize| decoded + records * RECORD_PADDING;
        let total: usize = runs.iter().map(|r| room(r.records.len(), r.decoded)).sum();
        if arena.len() < total {
            arena.resize(total, 0);
        }

        // Decode base64 into the arena, then parse each record in place; in
        // slices of records (and of the arena) on several threads when the
        // invocation is large enough, a few per thread, handed out as threads
        // come free: a core slowed by its neighbours on the host takes fewer,
        // rather than the other waiting for it at the end.
        let threads = if metas.len() >= PARALLEL_MIN_RECORDS {
            workers.threads()
        } else {
            1
        };
        while parsers.len() < threads {
            parsers.push(RecordParser::new());
        }
        let arena = &mut arena[..total];
        let slices = if threads == 1 {
            let all = 0..metas.len();
            vec![decode_slice(
                &mut parsers[0],
                metas,
                all,
                max,
                arena,
                &new,
                &visit,
            )]
        } else {
            // the pieces the envelope was read in (balanced by payload
            // bytes, so by decoded bytes), or cuts balanced by decoded bytes
            let cuts: Vec<(Range<usize>, usize)> = if runs.len() > 1 {
                runs.iter()
                    .map(|r| (r.records.clone(), room(r.records.len(), r.decoded)))
                    .collect()
            } else {
                balanced_cuts(metas, workers.slice_count(), total)
            };
            let mut pieces = Vec::with_capacity(cuts.len());
            let mut arena_rest = arena;
            for (records, bytes) in cuts {
                let (piece_arena, tail) = arena_rest.split_at_mut(bytes);
                pieces.push((records, piece_arena));
                arena_rest = tail;
            }
            workers.map_with(&mut parsers[..threads], pieces, |parser, (r, a)| {
                decode_slice(parser, metas, r, max, a, &new, &visit)
            })
        };
        Ok(Sliced {
            window,
            records: slices.iter().map(|s| s.records.len()).sum(),
            slices,
        })
    }
}

/// `slices` runs of records, each with its room in the arena, cut where
/// the decoded bytes (`total` in all) reach an even share.
fn balanced_cuts(metas: &Records<'_>, slices: usize, total: usize) -> Vec<(Range<usize>, usize)> {
    let mut cuts = Vec::with_capacity(slices);
    let (mut start, mut start_bytes, mut offset) = (0, 0, 0);
    for (i, len) in metas.data_lens().enumerate() {
        if cuts.len() + 1 < slices && offset * slices >= total * (cuts.len() + 1) {
            cuts.push((start..i, offset - start_bytes));
            (start, start_bytes) = (i, offset);
        }
        offset += len.decoded.unwrap_or(0) + RECORD_PADDING;
    }
    cuts.push((start..metas.len(), offset - start_bytes));
    cuts
}

/// Where a record's decoded bytes go, or why it has none: from its data's
/// lengths and the size limit.
fn span_of(data: DataLen, max: usize) -> Span {
    let estimate = STANDARD.estimated_decoded_length(data.base64);
    match data.decoded {
        _ if estimate > max + 2 => Span::Rejected(too_large(estimate, max)),
        Some(len) if len > max => Span::Rejected(too_large(len, max)),
        Some(len) => Span::Data { len },
        None => Span::Rejected(bad_base64()),
    }
}

/// Decodes the records `range` of the invocation into `arena` (which has
/// room for at least their decoded bytes and padding), showing each to
/// `visit` with the slice's value (made by `new`).
fn decode_slice<'p, T>(
    parser: &mut RecordParser,
    metas: &Records<'p>,
    range: Range<usize>,
    max: usize,
    arena: &'p mut [u8],
    new: impl Fn(usize) -> T,
    visit: impl Fn(&mut T, &DecodedRecord<'p>),
) -> Slice<'p, T> {
    let mut rest: &'p mut [u8] = arena;
    let mut records = Vec::with_capacity(range.len());
    let mut value = new(range.len());
    let mut recent = Recent::default();
    let start = range.start;
    for i in range {
        let Some((meta, data)) = metas.meta(i, &mut recent) else {
            break;
        };
        let outcome = match span_of(data, max) {
            Span::Rejected(r) => Err(r),
            Span::Data { len } => {
                let free = std::mem::take(&mut rest);
                let (chunk, tail) = free.split_at_mut(len + RECORD_PADDING);
                rest = tail;
                decode_one(parser, meta.data_base64, chunk, len)
            }
        };
        let record = DecodedRecord { meta, outcome };
        visit(&mut value, &record);
        records.push(record);
    }
    Slice {
        range: start..start + records.len(),
        records,
        value,
    }
}

/// What [`InvocationDecoder::decode_sliced`] returns: the invocation with
/// its records in slices.
#[derive(Debug)]
pub struct Sliced<'p, T> {
    /// Present when the event source mapping uses tumbling windows.
    pub window: Option<TumblingWindow<'p>>,
    /// How many records the invocation holds.
    pub records: usize,
    /// The slices, in record order.
    pub slices: Vec<Slice<'p, T>>,
}

/// A run of an invocation's records, decoded on one thread.
#[derive(Debug)]
pub struct Slice<'p, T> {
    /// The records' positions in the invocation.
    pub range: Range<usize>,
    /// The records, in order.
    pub records: Vec<DecodedRecord<'p>>,
    /// What the visitor made of them.
    pub value: T,
}

/// A decoded invocation: its records and, for tumbling-window event source
/// mappings, the window.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedInvocation<'p> {
    /// One entry per record, in order.
    pub records: Vec<DecodedRecord<'p>>,
    /// Present when the event source mapping uses tumbling windows.
    pub window: Option<TumblingWindow<'p>>,
}

/// The tumbling-window fields of a Kinesis invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct TumblingWindow<'p> {
    /// Window start (arrival time), epoch milliseconds.
    pub start_ms: i64,
    /// Window end, epoch milliseconds.
    pub end_ms: i64,
    /// The shard.
    pub shard_id: &'p str,
    /// The state returned by the previous invocation of this window:
    /// string keys and values (Lambda's state is a map; values we write are strings).
    pub state: Vec<(&'p str, &'p str)>,
    /// The last invocation of the window: time to emit.
    pub is_final: bool,
    /// The window closed early (the 1 MB state limit, or a shard change).
    pub terminated_early: bool,
}

fn decode_one<'p>(
    parser: &mut RecordParser,
    b64: &[u8],
    chunk: &'p mut [u8],
    len: usize,
) -> Result<Event<'p>, Rejection> {
    match STANDARD.decode(b64, Out::from_slice(&mut chunk[..len])) {
        Ok(decoded) if decoded.len() == len => {}
        _ => return Err(bad_base64()),
    }
    parser.parse_padded(chunk, len)
}

fn too_large(len: usize, max: usize) -> Rejection {
    Rejection::record(
        ReasonCode::RecordTooLarge,
        format!("record is {len} bytes; the limit is {max}"),
    )
}

fn bad_base64() -> Rejection {
    Rejection::record(
        ReasonCode::InvalidBase64,
        Cow::Borrowed("kinesis.data is not valid base64"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An invocation whose records' data decode to each of `sizes` bytes.
    fn invocation(sizes: &[usize]) -> Vec<u8> {
        let records: Vec<String> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let data = STANDARD.encode_to_string(vec![b'x'; n]);
                format!(
                    r#"{{"kinesis":{{"partitionKey":"k","sequenceNumber":"{i}","data":"{data}","approximateArrivalTimestamp":1.5}},"eventID":"shardId-000000000001:{i}","eventSourceARN":"arn:aws:kinesis:us-east-1:1:stream/s"}}"#
                )
            })
            .collect();
        format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
    }

    #[test]
    fn the_size_limit_holds_to_the_byte_whatever_the_padding_and_threads() {
        const MAX: usize = 300;
        // sizes around the limit, each padding of base64 ('', '=', '==')
        // among them; enough records for the threaded path
        let sizes: Vec<usize> = (0..100).flat_map(|_| MAX - 4..=MAX + 4).collect();
        for threads in [1, 2, 3] {
            let mut decoder = InvocationDecoder::new(DecoderConfig {
                max_record_bytes: MAX,
            })
            .with_threads(threads);
            let mut payload = invocation(&sizes);
            let records = decoder.decode(&mut payload).expect("an envelope");
            assert_eq!(records.len(), sizes.len());
            for (r, &size) in records.iter().zip(&sizes) {
                let reason = r.outcome.as_ref().err().map(|e| e.reason);
                if size > MAX {
                    assert_eq!(reason, Some(ReasonCode::RecordTooLarge), "{size} bytes");
                } else {
                    // decoded, then refused as JSON: `x...` is not a document
                    assert_eq!(reason, Some(ReasonCode::MalformedJson), "{size} bytes");
                }
            }
        }
    }

    /// The visitor sees every record once, in order, and the slices it is
    /// handed cover the invocation end to end whatever the thread count;
    /// kept in their slices, the records are those of the joined list.
    #[test]
    fn the_visitor_sees_each_record_once_in_slices_that_cover_the_invocation() {
        let sizes: Vec<usize> = (0..3000).map(|i| 10 + i % 200).collect();
        for threads in [1, 2, 3] {
            let mut decoder =
                InvocationDecoder::new(DecoderConfig::default()).with_threads(threads);
            let mut payload = invocation(&sizes);
            let sliced = decoder
                .decode_sliced(
                    &mut payload,
                    Vec::with_capacity,
                    |seen: &mut Vec<String>, r| {
                        seen.push(r.meta.sequence_number.to_owned());
                    },
                )
                .expect("an envelope");
            assert_eq!(sliced.records, sizes.len());
            if threads > 1 {
                assert!(sliced.slices.len() > 1, "{threads} threads cut one slice");
            }
            let mut next = 0;
            for slice in &sliced.slices {
                assert_eq!(
                    slice.range.start, next,
                    "{threads} threads: slices in order"
                );
                assert_eq!(slice.range.len(), slice.records.len());
                let expected: Vec<&str> = slice
                    .records
                    .iter()
                    .map(|r| r.meta.sequence_number)
                    .collect();
                assert_eq!(slice.value, expected, "{threads} threads");
                next = slice.range.end;
            }
            assert_eq!(next, sizes.len(), "{threads} threads: every record");
            // kept in their slices: the records of the joined list
            let mut payload = self::invocation(&sizes);
            let mut other = InvocationDecoder::new(DecoderConfig::default()).with_threads(threads);
            let joined = other.decode_invocation(&mut payload).expect("an envelope");
            let got: Vec<_> = sliced
                .slices
                .iter()
                .flat_map(|s| s.records.clone())
                .collect();
            assert_eq!(got, joined.records, "{threads} threads");
        }
    }
}
