//! Reads the Lambda Kinesis event document, the envelope around the records,
//! in one pass over the payload.
//!
//! Almost all of an invocation's bytes are the records' base64 `data`
//! strings, which hold no escapes and need no parsing here (the base64
//! decoder validates them). A general JSON parser spends most of its time on
//! exactly those bytes (simd-json's structural index and tape over 10 MB
//! took a quarter of the archiver's time). This reader is a strict JSON
//! parser of its own: one pass over a string, eight bytes at a time, finds
//! its end and checks every byte; strings are borrowed from the payload and
//! escaped ones unescaped in place. Values the pipeline does not use are
//! validated and skipped. Anything that is not JSON is rejected with the
//! byte offset. `data` is the exception: it is only delimited, and the base64
//! decoder checks it (a bad one is one poison record, not a bad invocation).
//! Large payloads are read in pieces on several threads ([`read_pieces`]).

use std::ops::Range;

use crate::invocation::{InvocationError, RecordMeta, TumblingWindow};
use crate::parallel::Workers;
use crate::rules::{digits, eight_digits};

mod layout;
use layout::Layouts;

/// Nesting deeper than this in skipped values is rejected rather than
/// risking the stack (Lambda's own documents nest four levels).
const MAX_DEPTH: usize = 64;

/// The records' metadata and the tumbling window, borrowed from the payload.
pub(crate) struct Envelope<'p> {
    pub(crate) records: Records<'p>,
    pub(crate) window: Option<TumblingWindow<'p>>,
}

/// The records' metadata: read in one pass, or as byte ranges when read in
/// pieces on several threads. Ranges become [`RecordMeta`]s where the
/// decoder needs them, on the thread that decodes the record's data right
/// next to them, so their bytes are in cache: turning them into strings on
/// one thread first took 2 ms of cache misses an invocation, half of what
/// splitting the reading saved.
pub(crate) enum Records<'p> {
    /// Read in one pass.
    Metas(Vec<RecordMeta<'p>>, Vec<DataLen>),
    /// Read in pieces: ranges of `text`, one list a piece, kept apart (see
    /// [`Pieces`]).
    Spans { text: &'p [u8], pieces: Pieces },
}

impl<'p> Records<'p> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Records::Metas(m, _) => m.len(),
            Records::Spans { pieces, .. } => pieces.len(),
        }
    }

    /// The runs of records as read: the whole list when read in one pass,
    /// else one run a piece, each with the bytes its records' data decode
    /// to (summed on the thread that read the piece, where the lengths
    /// are in cache).
    pub(crate) fn runs(&self) -> Vec<Run> {
        match self {
            Records::Metas(m, lens) => vec![Run {
                records: 0..m.len(),
                decoded: lens.iter().filter_map(|l| l.decoded).sum(),
            }],
            Records::Spans { pieces, .. } => (pieces.lists.iter())
                .zip(&pieces.starts)
                .zip(&pieces.decoded)
                .map(|((list, &start), &decoded)| Run {
                    records: start..start + list.len(),
                    decoded,
                })
                .collect(),
        }
    }

    /// Every record's [`DataLen`], in order.
    pub(crate) fn data_lens(&self) -> impl Iterator<Item = DataLen> + '_ {
        let (read, pieces) = match self {
            Records::Metas(_, lens) => (Some(lens), None),
            Records::Spans { pieces, .. } => (None, Some(pieces)),
        };
        let read = read.into_iter().flatten().copied();
        let pieces = pieces
            .into_iter()
            .flat_map(|p| p.lists.iter().flatten().map(|m| m.data_len));
        read.chain(pieces)
    }

    /// Record `i`'s metadata and data lengths. `recent` holds the previous
    /// record's shard id and stream ARN (see [`Recent`]).
    pub(crate) fn meta(
        &self,
        i: usize,
        recent: &mut Recent<'p>,
    ) -> Option<(RecordMeta<'p>, DataLen)> {
        match self {
            Records::Metas(m, lens) => Some((*m.get(i)?, *lens.get(i)?)),
            Records::Spans { text, pieces } => {
                let m = pieces.get(i)?;
                // the spans were cut from this very buffer, so they are in it
                let bytes = |r: &Range<usize>| text.get(r.clone()).unwrap_or_default();
                let raw = RawMeta {
                    sequence_number: bytes(&m.sequence_number),
                    partition_key: bytes(&m.partition_key),
                    around: around(text, &m.sequence_number, &m.partition_key),
                    shard_id: bytes(&m.shard_id),
                    event_source_arn: bytes(&m.event_source_arn),
                    arrival_ms: m.arrival_ms,
                    data_base64: bytes(&m.data_base64),
                    data_len: m.data_len,
                };
                Some((raw.meta(i, recent), m.data_len))
            }
        }
    }

    /// Every record's metadata.
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<RecordMeta<'p>> {
        let mut recent = Recent::default();
        (0..self.len())
            .filter_map(|i| self.meta(i, &mut recent))
            .map(|(meta, _)| meta)
            .collect()
    }
}

/// Reads `payload` (escaped strings are rewritten in place, hence `mut`),
/// in pieces on several threads when `workers` has them and the payload is
/// large (see [`read_pieces`]); the result is the same either way.
pub(crate) fn read_envelope(
    payload: &mut [u8],
    workers: Workers,
) -> Result<Envelope<'_>, InvocationError> {
    read_with(payload, workers, SPLIT_MIN_BYTES)
}

/// [`read_envelope`], splitting payloads from `split_min` bytes up.
fn read_with(
    payload: &mut [u8],
    workers: Workers,
    split_min: usize,
) -> Result<Envelope<'_>, InvocationError> {
    if workers.threads() > 1 && payload.len() >= split_min {
        let cuts = guess_cuts(payload, workers.threads() * PIECES_PER_THREAD);
        if let Some(pieces) = read_pieces(&mut *payload, workers, &cuts) {
            return finish_pieces(payload, pieces).map_err(into_error);
        }
    }
    read_serial(payload)
}

/// Whether one pass over `payload` reads the same records, the same window
/// and the same error with layouts (see [`layout`]) as with every record
/// read in full: the fuzz target `envelope_layouts` calls it on any bytes.
#[cfg(fuzzing)]
pub fn layouts_agree(payload: &[u8]) -> bool {
    let read = |layouts: Layouts<'_>| {
        let mut buf = payload.to_vec();
        // as text: the records borrow from a buffer that ends here
        match read_one_pass(&mut buf, layouts).0 {
            Ok(Envelope {
                records: Records::Metas(metas, lens),
                window,
            }) => Ok(format!("{metas:?} {lens:?} {window:?}")),
            Ok(_) => Err("read in pieces".to_string()),
            Err(e) => Err(format!("{e:?}")),
        }
    };
    read(Layouts::new()) == read(Layouts::none())
}

/// Reads `payload` front to back on the caller's thread.
fn read_serial(payload: &mut [u8]) -> Result<Envelope<'_>, InvocationError> {
    read_one_pass(payload, Layouts::new()).0
}

/// [`read_serial`] with `layouts` (tests and the fuzz hook also read with
/// none); also how many records a layout read.
fn read_one_pass<'p>(
    payload: &'p mut [u8],
    layouts: Layouts<'p>,
) -> (Result<Envelope<'p>, InvocationError>, usize) {
    let mut reader = Reader::new(payload, 0, false);
    reader.layouts = layouts;
    let read = reader.document().map_err(into_error);
    (read, reader.layouts.fits)
}

fn into_error(e: Failure) -> InvocationError {
    match e {
        Failure::Syntax { at, what } => InvocationError::NotJson(format!("{what} at byte {at}")),
        Failure::Invalid(e) => e,
    }
}

/// Below this size one thread reads the envelope: the handover costs more
/// than sharing the reading saves (a 1,000-record invocation is about 1 MB).
const SPLIT_MIN_BYTES: usize = 512 * 1024;

/// Pieces per thread: more pieces than threads, handed out as threads come
/// free, so that a helper that wakes late takes fewer of them rather than
/// holding up the end (waking a parked vCPU can take milliseconds).
const PIECES_PER_THREAD: usize = 4;

/// What the pieces read: every record's byte ranges, in order, in one list
/// a piece. Not joined into one list: that was a copy of 90 bytes a record
/// on one thread while the others waited.
pub(crate) struct Pieces {
    lists: Vec<Vec<MetaSpans>>,
    /// The index of each list's first record.
    starts: Vec<usize>,
    /// The bytes each list's data decode to.
    decoded: Vec<usize>,
    /// Just after the `]` that closes `Records`.
    records_end: usize,
}

impl Pieces {
    /// Records in all.
    fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// Record `i`'s ranges.
    fn get(&self, i: usize) -> Option<&MetaSpans> {
        // the last list starting at or before `i` (a handful of lists)
        let k = self.starts.partition_point(|&s| s <= i).checked_sub(1)?;
        self.lists.get(k)?.get(i - self.starts.get(k)?)
    }
}

/// A [`RecordMeta`] as byte ranges of the payload, so that a piece read on a
/// helper thread borrows nothing once it is done.
pub(crate) struct MetaSpans {
    sequence_number: Range<usize>,
    partition_key: Range<usize>,
    shard_id: Range<usize>,
    event_source_arn: Range<usize>,
    arrival_ms: i64,
    data_base64: Range<usize>,
    data_len: DataLen,
}

impl MetaSpans {
    fn of(base: usize, meta: &RawMeta<'_>) -> Self {
        let at = |s: &[u8]| {
            let start = (s.as_ptr() as usize).wrapping_sub(base);
            start..start + s.len()
        };
        MetaSpans {
            sequence_number: at(meta.sequence_number),
            partition_key: at(meta.partition_key),
            shard_id: at(meta.shard_id),
            event_source_arn: at(meta.event_source_arn),
            arrival_ms: meta.arrival_ms,
            data_base64: at(meta.data_base64),
            data_len: meta.data_len,
        }
    }
}

/// A record's metadata as read: strings as bytes, already checked to be
/// UTF-8 by [`Reader::string`] but not yet `str`. Turning bytes into `str`
/// checks them again (the workspace forbids the unchecked conversion), so
/// it happens once, where the record is kept: right away on one thread,
/// or in the decoder's slices when the envelope was read in pieces (which
/// keep byte ranges only and so skip it).
struct RawMeta<'p> {
    sequence_number: &'p [u8],
    partition_key: &'p [u8],
    /// Bytes of the payload holding both the sequence number and the
    /// partition key, or nothing: see [`both_texts`].
    around: &'p [u8],
    /// The part of `eventID` before its `:`.
    shard_id: &'p [u8],
    event_source_arn: &'p [u8],
    arrival_ms: i64,
    data_base64: &'p [u8],
    data_len: DataLen,
}

/// A run of records read together, and the bytes their data decode to.
pub(crate) struct Run {
    pub(crate) records: Range<usize>,
    pub(crate) decoded: usize,
}

/// A record's `data` sizes, taken as the reader passes its end, where the
/// bytes are in cache: the decoder's first pass used to read each record's
/// last bytes again, a cache miss a record (0.3 ms an invocation, on one
/// thread as on two).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct DataLen {
    /// Bytes of base64.
    pub(crate) base64: usize,
    /// Bytes it decodes to; `None` if no base64 string has its length or
    /// padding.
    pub(crate) decoded: Option<usize>,
}

impl DataLen {
    fn of(data: &[u8]) -> Self {
        DataLen {
            base64: data.len(),
            decoded: base64_simd::STANDARD.decoded_length(data).ok(),
        }
    }
}

impl<'p> RawMeta<'p> {
    fn meta(self, index: usize, recent: &mut Recent<'p>) -> RecordMeta<'p> {
        let (sequence_number, partition_key) =
            both_texts(self.around, self.sequence_number, self.partition_key);
        RecordMeta {
            index,
            sequence_number,
            partition_key,
            shard_id: Recent::same(&mut recent.shard_id, self.shard_id),
            event_source_arn: Recent::same(&mut recent.event_source_arn, self.event_source_arn),
            arrival_ms: self.arrival_ms,
            data_base64: self.data_base64,
        }
    }
}

/// The previous record's shard id and stream ARN. Every record of an
/// invocation normally has the same ones, so a record's bytes are compared
/// with them (a `memcmp`) and, when equal, take the earlier `str` rather than
/// being checked as UTF-8 again; one shard's records also share one slice,
/// which the lake's grouping by shard compares by address first.
#[derive(Default)]
pub(crate) struct Recent<'p> {
    shard_id: &'p str,
    event_source_arn: &'p str,
}

impl<'p> Recent<'p> {
    /// `bytes` as `str`: `last` when equal, else checked and remembered.
    /// Records read by one layout share the very same slice, so the address
    /// settles it without reading the bytes (a cache miss a record).
    fn same(last: &mut &'p str, bytes: &'p [u8]) -> &'p str {
        if !std::ptr::eq(bytes, last.as_bytes()) && bytes != last.as_bytes() {
            *last = text(bytes);
        }
        last
    }
}

/// `Records`, as Lambda lays the document out: first.
const PREFIX: &[u8] = br#"{"Records":["#;

/// Where `pieces` pieces would start: the first `},{` after each even share
/// of the payload, pointing at its `{`. Guesses: a `},{` may as well be
/// inside a string or a nested value; [`read_pieces`] finds out.
fn guess_cuts(payload: &[u8], pieces: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::with_capacity(pieces);
    for k in 1..pieces {
        let from = (payload.len() / pieces * k).max(cuts.last().map_or(0, |&c| c + 1));
        let Some(i) = payload
            .get(from..)
            .and_then(|p| memchr::memmem::find(p, b"},{"))
        else {
            break;
        };
        cuts.push(from + i + 2);
    }
    cuts
}

/// Reads the `Records` array in pieces on all threads, each piece from a
/// guessed record boundary (`cuts`, increasing) to the next. The guesses are
/// checked as the pieces are read: every piece but the last must end
/// exactly at the next cut, between two `Records` elements, and the last at
/// the closing `]`; then each cut is a true boundary and the pieces, joined,
/// are what one pass reads. The pieces only read (a string with escapes
/// ends the attempt), so on a wrong guess or any error the untouched payload
/// is read again serially, which also gives the exact error of a serial
/// read. Only Lambda's layout, `Records` first, is split.
fn read_pieces(payload: &mut [u8], workers: Workers, cuts: &[usize]) -> Option<Pieces> {
    if !payload.starts_with(PREFIX) || cuts.is_empty() || cuts[0] < PREFIX.len() {
        return None;
    }
    let base = payload.as_ptr() as usize;
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let (mut rest, mut start) = (payload, 0);
    for (k, &cut) in cuts.iter().enumerate() {
        let (piece, tail) = rest.split_at_mut(cut.checked_sub(start)?);
        pieces.push((k, start, piece));
        (rest, start) = (tail, cut);
    }
    pieces.push((cuts.len(), start, rest));
    let read = workers.map(pieces, |(k, start, piece)| {
        let mut r = Reader::new(piece, start, true);
        if k == 0 {
            r.bump(PREFIX.len());
        }
        let mut spans = Vec::with_capacity(r.rest.len() / 1024 + 1);
        let mut decoded = 0;
        let pause_at = cuts.get(k).copied();
        let mut add = |m: RawMeta<'_>| {
            decoded += m.data_len.decoded.unwrap_or(0);
            spans.push(MetaSpans::of(base, &m));
        };
        match r.record_list(|_, m| add(m), 0, pause_at) {
            Ok(paused) if paused == pause_at.is_some() => Some((spans, decoded, r.offset)),
            _ => None,
        }
    });
    let mut pieces = Pieces {
        lists: Vec::with_capacity(read.len()),
        starts: Vec::with_capacity(read.len()),
        decoded: Vec::with_capacity(read.len()),
        records_end: 0,
    };
    let mut records = 0;
    for piece in read {
        let (spans, decoded, end) = piece?;
        pieces.starts.push(records);
        pieces.decoded.push(decoded);
        records += spans.len();
        pieces.lists.push(spans);
        pieces.records_end = end;
    }
    Some(pieces)
}

/// The envelope from the pieces [`read_pieces`] read, and the rest of the
/// document after `Records`, read as a serial read would.
fn finish_pieces(payload: &mut [u8], pieces: Pieces) -> Read<Envelope<'_>> {
    let records_end = pieces.records_end;
    let (text, rest) = payload.split_at_mut(records_end);
    // `Records` is the first member: the rest reads as if it had been read
    let mut top = Top {
        records: Some(Records::Spans { text, pieces }),
        ..Top::default()
    };
    let mut reader = Reader::new(rest, records_end, false);
    reader.members_after_value(|r, key| r.top_field(key, &mut top))?;
    reader.end()?;
    top.envelope()
}

/// Why reading stopped: not JSON, or JSON that is not a Kinesis event.
enum Failure {
    Syntax { at: usize, what: &'static str },
    Invalid(InvocationError),
}

impl From<InvocationError> for Failure {
    fn from(e: InvocationError) -> Self {
        Failure::Invalid(e)
    }
}

type Read<T> = Result<T, Failure>;

/// A value the envelope's fields are matched against; objects and arrays
/// met where a scalar is expected are skipped whole.
enum Scalar<'p> {
    /// A string's bytes, checked to be UTF-8: most are compared or skipped,
    /// so they become `str` only where kept (see [`text`]).
    Str(&'p [u8]),
    /// The number's text, checked against JSON's grammar; converted only
    /// where a field needs it.
    Number(&'p str),
    Bool(bool),
    Other,
}

/// What a record's `kinesis` object holds for us; `None` where missing or
/// mistyped.
#[derive(Default)]
struct KinesisFields<'p> {
    sequence_number: Option<&'p [u8]>,
    partition_key: Option<&'p [u8]>,
    data: Option<&'p [u8]>,
    arrival_ms: Option<i64>,
}

/// The top-level object's members, as read so far.
struct Top<'p> {
    records: Option<Records<'p>>,
    has_window: bool,
    window: TumblingWindow<'p>,
}

impl Default for Top<'_> {
    fn default() -> Self {
        Top {
            records: None,
            has_window: false,
            window: TumblingWindow {
                start_ms: 0,
                end_ms: 0,
                shard_id: "",
                state: Vec::new(),
                is_final: false,
                terminated_early: false,
            },
        }
    }
}

impl<'p> Top<'p> {
    fn envelope(self) -> Read<Envelope<'p>> {
        Ok(Envelope {
            records: self.records.ok_or(InvocationError::NoRecords)?,
            window: self.has_window.then_some(self.window),
        })
    }
}

struct Reader<'p> {
    /// What is left to read; strings are split off the front as they are read.
    rest: &'p mut [u8],
    /// Bytes already read, for error messages.
    offset: usize,
    /// Reading a guessed piece (see [`read_pieces`]): the payload must not be
    /// written, so a string with escapes fails instead of being unescaped.
    speculative: bool,
    /// The records' layout, once learnt (see [`layout`]).
    layouts: Layouts<'p>,
}

impl<'p> Reader<'p> {
    fn new(rest: &'p mut [u8], offset: usize, speculative: bool) -> Self {
        Reader {
            rest,
            offset,
            speculative,
            layouts: Layouts::new(),
        }
    }

    fn fail<T>(&self, what: &'static str) -> Read<T> {
        Err(Failure::Syntax {
            at: self.offset,
            what,
        })
    }

    fn bump(&mut self, n: usize) {
        let rest = std::mem::take(&mut self.rest);
        self.rest = &mut rest[n..];
        self.offset += n;
    }

    /// The next byte that is not JSON whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let skip = self
            .rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
            .unwrap_or(self.rest.len());
        if skip > 0 {
            self.bump(skip);
        }
        self.rest.first().copied()
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Read<()> {
        if self.peek() == Some(byte) {
            self.bump(1);
            Ok(())
        } else {
            self.fail(what)
        }
    }

    fn document(&mut self) -> Read<Envelope<'p>> {
        if self.peek() != Some(b'{') {
            // Lambda always sends an object; anything else is not an event
            if self.peek().is_none() {
                return self.fail("empty payload");
            }
            self.value(0)?;
            self.end()?;
            return Err(InvocationError::NoRecords.into());
        }
        let mut top = Top::default();
        self.object(0, |r, key| r.top_field(key, &mut top))?;
        self.end()?;
        top.envelope()
    }

    /// One member of the top-level object.
    fn top_field(&mut self, key: &'p [u8], top: &mut Top<'p>) -> Read<()> {
        match key {
            b"Records" if top.records.is_none() && self.peek() == Some(b'[') => {
                top.records = Some(self.records()?);
            }
            b"window" if self.peek() == Some(b'{') => {
                let (start, end) = self.window_bounds()?;
                (top.window.start_ms, top.window.end_ms) = (start, end);
                top.has_window = true;
            }
            b"state" if self.peek() == Some(b'{') => {
                let state = &mut top.window.state;
                self.object(1, |r, k| match r.value(2)? {
                    Scalar::Str(v) => {
                        state.push((text(k), text(v)));
                        Ok(())
                    }
                    _ => Err(InvocationError::BadWindow { field: "state" }.into()),
                })?;
            }
            _ => match (key, self.value(1)?) {
                (b"shardId", Scalar::Str(s)) => top.window.shard_id = text(s),
                (b"isFinalInvokeForWindow", Scalar::Bool(b)) => top.window.is_final = b,
                (b"isWindowTerminatedEarly", Scalar::Bool(b)) => top.window.terminated_early = b,
                _ => {}
            },
        }
        Ok(())
    }

    /// Only whitespace may follow the document.
    fn end(&mut self) -> Read<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("unexpected bytes after the document"),
        }
    }

    fn records(&mut self) -> Read<Records<'p>> {
        // about 1.4 KB of envelope and data per record: a close first guess
        let guess = self.rest.len() / 1024 + 1;
        let (mut out, mut lens) = (Vec::with_capacity(guess), Vec::with_capacity(guess));
        self.expect(b'[', "expected '['")?;
        if self.peek() == Some(b']') {
            self.bump(1);
        } else {
            let mut recent = Recent::default();
            self.record_list(
                |i, m| {
                    lens.push(m.data_len);
                    out.push(m.meta(i, &mut recent));
                },
                0,
                None,
            )?;
        }
        Ok(Records::Metas(out, lens))
    }

    /// `Records` elements from the cursor on, numbered from `index`, through
    /// the closing `]`. With `pause_at`, stops (and returns `true`) when the
    /// next element would start exactly there and nothing is left to read:
    /// a piece of [`read_pieces`] ends at the next one's start.
    fn record_list(
        &mut self,
        mut out: impl FnMut(usize, RawMeta<'p>),
        mut index: usize,
        pause_at: Option<usize>,
    ) -> Read<bool> {
        loop {
            out(index, self.record(index)?);
            index += 1;
            match self.peek() {
                Some(b',') => {
                    self.bump(1);
                    if pause_at == Some(self.offset) && self.rest.is_empty() {
                        return Ok(true);
                    }
                }
                Some(b']') => {
                    self.bump(1);
                    return Ok(false);
                }
                _ => return self.fail("expected ',' or ']'"),
            }
        }
    }

    /// A `Records` element: by the layout of the records before it when it
    /// fits, else in full (and its layout learnt for the next ones).
    fn record(&mut self, index: usize) -> Read<RawMeta<'p>> {
        if let Some(fit) = self.layouts.fit(self.rest) {
            let rest = std::mem::take(&mut self.rest);
            let (record, tail) = rest.split_at_mut(fit.len);
            self.rest = tail;
            self.offset += fit.len;
            let record: &'p [u8] = record;
            // the ranges were found in these very bytes
            let at = |r: Range<usize>| record.get(r).unwrap_or_default();
            let data = at(fit.data);
            let (shard_id, event_source_arn) = self.layouts.shared();
            return Ok(RawMeta {
                around: around(record, &fit.sequence_number, &fit.partition_key),
                sequence_number: at(fit.sequence_number),
                partition_key: at(fit.partition_key),
                shard_id,
                event_source_arn,
                arrival_ms: fit.arrival_ms,
                data_base64: data,
                data_len: DataLen::of(data),
            });
        }
        let learnt = self.layouts.learn(self.rest);
        let meta = self.record_in_full(index)?;
        self.layouts.keep(learnt, &meta);
        Ok(meta)
    }

    fn record_in_full(&mut self, index: usize) -> Read<RawMeta<'p>> {
        let bad = |field| Failure::Invalid(InvocationError::BadRecord { index, field });
        if self.peek() != Some(b'{') {
            self.value(2)?;
            return Err(bad("kinesis"));
        }
        let (mut kinesis, mut event_id, mut arn) = (None, None, None);
        self.object(2, |r, key| {
            match key {
                b"kinesis" if r.peek() == Some(b'{') => kinesis = Some(r.kinesis()?),
                _ => match (key, r.value(3)?) {
                    (b"eventID", Scalar::Str(s)) => event_id = Some(s),
                    (b"eventSourceARN", Scalar::Str(s)) => arn = Some(s),
                    _ => {}
                },
            }
            Ok(())
        })?;
        let k = kinesis.ok_or(bad("kinesis"))?;
        let event_id = event_id.ok_or(bad("eventID"))?;
        let colon = memchr::memchr(b':', event_id).ok_or(bad("eventID"))?;
        let meta = RawMeta {
            around: &[],
            shard_id: &event_id[..colon],
            sequence_number: k.sequence_number.ok_or(bad("kinesis.sequenceNumber"))?,
            partition_key: k.partition_key.ok_or(bad("kinesis.partitionKey"))?,
            event_source_arn: arn.ok_or(bad("eventSourceARN"))?,
            arrival_ms: k
                .arrival_ms
                .ok_or(bad("kinesis.approximateArrivalTimestamp"))?,
            data_base64: k.data.ok_or(bad("kinesis.data"))?,
            data_len: DataLen::default(),
        };
        Ok(RawMeta {
            data_len: DataLen::of(meta.data_base64),
            ..meta
        })
    }

    /// The fields of a record's `kinesis` object that the pipeline uses.
    fn kinesis(&mut self) -> Read<KinesisFields<'p>> {
        let mut f = KinesisFields::default();
        self.object(3, |r, k| {
            if k == b"data" && r.peek() == Some(b'"') {
                f.data = Some(r.base64_string()?);
                return Ok(());
            }
            match (k, r.value(4)?) {
                (b"sequenceNumber", Scalar::Str(s)) => f.sequence_number = Some(s),
                (b"partitionKey", Scalar::Str(s)) => f.partition_key = Some(s),
                (b"data", _) => f.data = None,
                (b"approximateArrivalTimestamp", Scalar::Number(n)) => {
                    f.arrival_ms = epoch_ms(n.as_bytes())
                }
                (b"approximateArrivalTimestamp", _) => f.arrival_ms = None,
                _ => {}
            }
            Ok(())
        })?;
        Ok(f)
    }

    fn window_bounds(&mut self) -> Read<(i64, i64)> {
        let bad = |field| Failure::Invalid(InvocationError::BadWindow { field });
        let (mut start, mut end) = (None, None);
        self.object(1, |r, k| {
            let ms = match r.value(2)? {
                Scalar::Str(s) => crate::rules::parse_rfc3339_utc_ms(text(s)),
                _ => None,
            };
            match k {
                b"start" => start = Some(ms.ok_or(bad("window.start"))?),
                b"end" => end = Some(ms.ok_or(bad("window.end"))?),
                _ => {}
            }
            Ok(())
        })?;
        Ok((
            start.ok_or(bad("window.start"))?,
            end.ok_or(bad("window.end"))?,
        ))
    }

    /// Reads an object, calling `field` with each key; `field` reads the value.
    fn object(
        &mut self,
        depth: usize,
        field: impl FnMut(&mut Self, &'p [u8]) -> Read<()>,
    ) -> Read<()> {
        if depth > MAX_DEPTH {
            return self.fail("nesting too deep");
        }
        self.expect(b'{', "expected '{'")?;
        if self.peek() == Some(b'}') {
            self.bump(1);
            return Ok(());
        }
        self.members(field)
    }

    /// An object's members from a key on, through the closing `}`.
    fn members(&mut self, mut field: impl FnMut(&mut Self, &'p [u8]) -> Read<()>) -> Read<()> {
        loop {
            if self.peek() != Some(b'"') {
                return self.fail("expected a string key");
            }
            let key = self.string()?;
            self.expect(b':', "expected ':'")?;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.bump(1),
                Some(b'}') => {
                    self.bump(1);
                    return Ok(());
                }
                _ => return self.fail("expected ',' or '}'"),
            }
        }
    }

    /// The rest of an object after one of its values: `}` or `,` and more
    /// members.
    fn members_after_value(
        &mut self,
        field: impl FnMut(&mut Self, &'p [u8]) -> Read<()>,
    ) -> Read<()> {
        match self.peek() {
            Some(b',') => {
                self.bump(1);
                self.members(field)
            }
            Some(b'}') => {
                self.bump(1);
                Ok(())
            }
            _ => self.fail("expected ',' or '}'"),
        }
    }

    /// Reads an array, calling `item` with each index; `item` reads the value.
    fn array(
        &mut self,
        depth: usize,
        mut item: impl FnMut(&mut Self, usize) -> Read<()>,
    ) -> Read<()> {
        if depth > MAX_DEPTH {
            return self.fail("nesting too deep");
        }
        self.expect(b'[', "expected '['")?;
        if self.peek() == Some(b']') {
            self.bump(1);
            return Ok(());
        }
        let mut index = 0;
        loop {
            item(self, index)?;
            index += 1;
            match self.peek() {
                Some(b',') => self.bump(1),
                Some(b']') => {
                    self.bump(1);
                    return Ok(());
                }
                _ => return self.fail("expected ',' or ']'"),
            }
        }
    }

    /// Any JSON value; objects and arrays are validated and skipped.
    fn value(&mut self, depth: usize) -> Read<Scalar<'p>> {
        match self.peek() {
            Some(b'"') => self.string().map(Scalar::Str),
            Some(b'{') => {
                self.object(depth + 1, |r, _| r.value(depth + 2).map(drop))?;
                Ok(Scalar::Other)
            }
            Some(b'[') => {
                self.array(depth + 1, |r, _| r.value(depth + 2).map(drop))?;
                Ok(Scalar::Other)
            }
            Some(b't') => self.literal(b"true", Scalar::Bool(true)),
            Some(b'f') => self.literal(b"false", Scalar::Bool(false)),
            Some(b'n') => self.literal(b"null", Scalar::Other),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.fail("expected a value"),
            None => self.fail("unexpected end of payload"),
        }
    }

    fn literal(&mut self, word: &[u8], value: Scalar<'p>) -> Read<Scalar<'p>> {
        if self.rest.starts_with(word) {
            self.bump(word.len());
            Ok(value)
        } else {
            self.fail("invalid literal")
        }
    }

    /// A JSON number, checked against the grammar, as text.
    fn number(&mut self) -> Read<Scalar<'p>> {
        let Some(i) = number_len(self.rest) else {
            return self.fail("invalid number");
        };
        let rest = std::mem::take(&mut self.rest);
        let (text, tail) = rest.split_at_mut(i);
        self.rest = tail;
        self.offset += i;
        let text: &'p [u8] = text;
        // ASCII digits, signs and dots only, checked by `number_len`
        Ok(Scalar::Number(std::str::from_utf8(text).unwrap_or("0")))
    }

    /// The `data` string: found with a vector search and not checked here.
    /// It is most of the invocation's bytes, and the base64 decoder checks
    /// every byte against its alphabet anyway (which is stricter than JSON's
    /// string rules), so a malformed one is one poison record, not a
    /// rejected invocation.
    fn base64_string(&mut self) -> Read<&'p [u8]> {
        let start = self.offset;
        self.bump(1); // the opening quote
        let mut end = 0;
        let mut escaped = false;
        loop {
            let Some(i) = memchr::memchr2(b'"', b'\\', &self.rest[end..]) else {
                return Err(Failure::Syntax {
                    at: start,
                    what: "unterminated string",
                });
            };
            end += i;
            if self.rest[end] == b'"' {
                break;
            }
            // whatever follows a backslash belongs to the string
            escaped = true;
            end += 2;
            if end > self.rest.len() {
                end = self.rest.len();
            }
        }
        let rest = std::mem::take(&mut self.rest);
        let (text, tail) = rest.split_at_mut(end);
        self.rest = &mut tail[1..];
        self.offset += end + 1;
        if escaped && self.speculative {
            return self.fail("escape in a speculative read");
        }
        let len = if escaped {
            unescape_in_place(text).map_err(|what| Failure::Syntax { at: start, what })?
        } else {
            text.len()
        };
        let text: &'p [u8] = text;
        Ok(&text[..len])
    }

    /// A string at the cursor, borrowed from the payload (unescaped in place),
    /// checked to be UTF-8.
    fn string(&mut self) -> Read<&'p [u8]> {
        let start = self.offset;
        self.bump(1); // the opening quote
        let bad = |what| Failure::Syntax { at: start, what };
        let (mut end, mut escaped, mut ascii) = (0, false, true);
        loop {
            end += first_special(&self.rest[end..]);
            match self.rest.get(end) {
                Some(b'"') => break,
                Some(b'\\') => {
                    // whatever follows a backslash belongs to the string
                    escaped = true;
                    end = (end + 2).min(self.rest.len());
                }
                Some(0..0x20) => return Err(bad("control character in string")),
                Some(_) => {
                    ascii = false;
                    end += 1;
                }
                None => return Err(bad("unterminated string")),
            }
        }
        let rest = std::mem::take(&mut self.rest);
        let (text, tail) = rest.split_at_mut(end);
        self.rest = &mut tail[1..];
        self.offset += end + 1;
        if escaped && self.speculative {
            return Err(bad("escape in a speculative read"));
        }
        let len = if escaped {
            unescape_in_place(text).map_err(bad)?
        } else {
            text.len()
        };
        let text: &'p [u8] = &text[..len];
        // printable ASCII (every byte was looked at) is UTF-8 already
        if !ascii || escaped {
            simdutf8::basic::from_utf8(text).map_err(|_| bad("string is not UTF-8"))?;
        }
        Ok(text)
    }
}

/// A string's bytes as `str`; [`Reader::string`] checked them already.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// `a` and `b` as `str`, from one check of `around` when both lie in it.
/// A sequence number and a partition key are 20 to 60 bytes each, too
/// short for `simdutf8`'s vector check (it hands inputs under 64 bytes to
/// the standard library's, which goes a byte at a time up to an aligned
/// word and after the last: 240 instructions each, 3% of an archiver
/// invocation); the two with the glue between them are long enough.
fn both_texts<'p>(around: &'p [u8], a: &'p [u8], b: &'p [u8]) -> (&'p str, &'p str) {
    let base = around.as_ptr() as usize;
    let within = |s: &[u8]| {
        let start = (s.as_ptr() as usize).checked_sub(base)?;
        (start + s.len() <= around.len()).then_some(start..start + s.len())
    };
    if let (Some(ra), Some(rb)) = (within(a), within(b))
        && let Ok(all) = simdutf8::basic::from_utf8(around)
        && let (Some(x), Some(y)) = (all.get(ra), all.get(rb))
    {
        return (x, y);
    }
    (text(a), text(b))
}

/// The bytes of `buf` from the first of `a` and `b` to the end of the
/// last, for [`both_texts`]; empty when they are far apart (a record whose
/// data lies between them), so that nothing long is checked for them.
fn around<'p>(buf: &'p [u8], a: &Range<usize>, b: &Range<usize>) -> &'p [u8] {
    let (from, to) = (a.start.min(b.start), a.end.max(b.end));
    if to.saturating_sub(from) > AROUND_MAX {
        return &[];
    }
    buf.get(from..to).unwrap_or_default()
}

/// The most bytes [`around`] spans: two long keys and the glue between.
const AROUND_MAX: usize = 256;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte a string scan must stop at: a quote, a
/// backslash, a control character or a non-ASCII byte (`bytes.len()` if
/// none). Eight bytes per step (SWAR): base64 data, most of an invocation,
/// passes through here once, and keys are too short for a vector search to
/// pay for its setup.
pub(crate) fn first_special(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        if let Some(i) = special_in(u64::from_le_bytes(word.try_into().unwrap_or([0; 8]))) {
            return at + i;
        }
        at += 8;
    }
    // the tail, padded with spaces (not special) to one more word
    let tail = words.remainder();
    let mut last = [b' '; 8];
    last[..tail.len()].copy_from_slice(tail);
    at + special_in(u64::from_le_bytes(last)).unwrap_or(tail.len())
}

/// The length of the string body at the start of `value` up to its closing
/// quote, if it is all printable ASCII without escapes: what the record and
/// event layouts read as a string value.
#[inline(always)]
pub(crate) fn plain_string_len(value: &[u8]) -> Option<usize> {
    Some(first_special(value)).filter(|&i| value.get(i) == Some(&b'"'))
}

/// The first special byte of a little-endian word.
#[inline(always)]
fn special_in(w: u64) -> Option<usize> {
    let quote = w ^ (ONES * u64::from(b'"'));
    let slash = w ^ (ONES * u64::from(b'\\'));
    // the high bit of each byte that is zero, below 0x20, or >= 0x80;
    // a borrow can flag a byte wrongly only above one rightly flagged,
    // so the lowest flag is exact
    let flags = ((quote.wrapping_sub(ONES) & !quote)
        | (slash.wrapping_sub(ONES) & !slash)
        | (w.wrapping_sub(ONES * 0x20) & !w)
        | w)
        & HIGH;
    (flags != 0).then(|| (flags.trailing_zeros() / 8) as usize)
}

/// The length of the JSON number `b` starts with, if it starts with one.
fn number_len(b: &[u8]) -> Option<usize> {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int = digits(i);
    if int == 0 || (b[i] == b'0' && int > 1) {
        return None;
    }
    i += int;
    if b.get(i) == Some(&b'.') {
        let frac = digits(i + 1);
        if frac == 0 {
            return None;
        }
        i += 1 + frac;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = digits(i);
        if exp == 0 {
            return None;
        }
        i += exp;
    }
    Some(i)
}

/// `approximateArrivalTimestamp` (epoch seconds, usually with a fraction)
/// to epoch milliseconds. Bytes, not `str`: the common form is read without
/// the UTF-8 check, which cost more than reading the digits (1.5% of an
/// archiver invocation); anything else is checked and parsed.
fn epoch_ms(number: &[u8]) -> Option<i64> {
    if let Some(ms) = milliseconds_exactly(number) {
        return Some(ms);
    }
    let number = std::str::from_utf8(number).ok()?;
    if let Ok(seconds) = number.parse::<i64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let seconds = number.parse::<f64>().ok().filter(|f| f.is_finite())?;
    // `as` saturates: absurd times stay representable and fail later rules
    Some((seconds * 1000.0).round() as i64)
}

/// `seconds.fff` (1 to 12 digits, a point, 1 to 3 digits), as Kinesis
/// writes arrival times, in whole milliseconds without a float: the same
/// result as [`epoch_ms`]'s float path, which is exact for these (the
/// parsed value is within 2^-52 of the decimal, far less than the half
/// millisecond that rounding forgives). Anything else is `None`, for the
/// general path. A float parse was a fifth of reading a record's envelope.
fn milliseconds_exactly(b: &[u8]) -> Option<i64> {
    // what Kinesis writes this century: ten digits, a point, three
    if let (Some(whole), Some(b'.'), Some(fraction @ &[_, _, _])) =
        (b.first_chunk::<10>(), b.get(10), b.get(11..))
    {
        let high = eight_digits(whole.first_chunk::<8>()?)?;
        return Some((high * 100 + digits(&whole[8..])?) * 1000 + digits(fraction)?);
    }
    let point = b.iter().position(|&c| c == b'.')?;
    let (whole, fraction) = (b.get(..point)?, b.get(point + 1..)?);
    if !(1..=12).contains(&whole.len()) || !(1..=3).contains(&fraction.len()) {
        return None;
    }
    let scale = [100, 10, 1][fraction.len() - 1];
    Some(digits(whole)? * 1000 + digits(fraction)? * scale)
}

/// Rewrites a JSON string body's escapes in place; returns the new length.
/// Unescaped text is never longer than its escaped form.
fn unescape_in_place(buf: &mut [u8]) -> Result<usize, &'static str> {
    let (mut read, mut write) = (0, 0);
    while read < buf.len() {
        // a vector search: a window's state is hundreds of KB of JSON in
        // a string, its long base64 run free of escapes
        let Some(slash) = memchr::memchr(b'\\', &buf[read..]) else {
            buf.copy_within(read.., write);
            write += buf.len() - read;
            break;
        };
        buf.copy_within(read..read + slash, write);
        write += slash;
        read += slash;
        let escape = *buf.get(read + 1).ok_or("unterminated escape")?;
        read += 2;
        let byte = match escape {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let high = hex4(buf.get(read..read + 4))?;
                read += 4;
                let code = match high {
                    0xD800..=0xDBFF => {
                        if buf.get(read..read + 2) != Some(b"\\u") {
                            return Err("lone surrogate in \\u escape");
                        }
                        let low = hex4(buf.get(read + 2..read + 6))?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err("lone surrogate in \\u escape");
                        }
                        read += 6;
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err("lone surrogate in \\u escape"),
                    _ => high,
                };
                let c = char::from_u32(code).ok_or("invalid \\u escape")?;
                let mut utf8 = [0u8; 4];
                let encoded = c.encode_utf8(&mut utf8).as_bytes();
                buf[write..write + encoded.len()].copy_from_slice(encoded);
                write += encoded.len();
                continue;
            }
            _ => return Err("invalid escape"),
        };
        buf[write] = byte;
        write += 1;
    }
    Ok(write)
}

fn hex4(digits: Option<&[u8]>) -> Result<u32, &'static str> {
    let digits = digits.ok_or("truncated \\u escape")?;
    digits.iter().try_fold(0u32, |acc, &c| {
        let v = (c as char).to_digit(16).ok_or("invalid \\u escape")?;
        Ok(acc * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn arrival_times_in_milliseconds_are_those_of_the_float_path() {
        let float = |n: &str| {
            let seconds: f64 = n.parse().expect("a number");
            (seconds * 1000.0).round() as i64
        };
        let mut seed = 0x853c_49e6_748f_ea9b_u64;
        let mut cases: Vec<String> = [
            "0.0",
            "0.001",
            "0.5",
            "1.999",
            "999999999999.999",
            "1733577600.1",
            "1733577600.12",
            "1733577600.123",
            "1545084650.987",
            "4102444800.000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let whole = (seed >> 20) % 1_000_000_000_000;
            let digits = 1 + (seed % 3) as usize;
            let fraction = (seed >> 8) % 10u64.pow(digits as u32);
            cases.push(format!("{whole}.{fraction:0digits$}"));
            // and Kinesis's own shape, ten digits and three (the word-wise path)
            let whole = 1_000_000_000 + (seed >> 24) % 9_000_000_000;
            cases.push(format!("{whole}.{:03}", (seed >> 4) % 1000));
        }
        for n in &cases {
            assert_eq!(
                super::milliseconds_exactly(n.as_bytes()),
                Some(float(n)),
                "{n}"
            );
            assert_eq!(super::epoch_ms(n.as_bytes()), Some(float(n)), "{n}");
        }
        // left to the general path: more digits, exponents, signs, integers
        for n in [
            "1.2345",
            "1e9",
            "-1.5",
            "1733577600",
            "1234567890123.5",
            ".5",
            "1.",
        ] {
            assert_eq!(super::milliseconds_exactly(n.as_bytes()), None, "{n}");
        }
        // not digits, in the shape of the word-wise path: a byte either
        // side of `0`..`9`, a sign, a high bit, in every place
        for at in [0, 3, 7, 8, 9, 11, 13] {
            for bad in [b'/', b':', b'-', b'+', b'\x00', 0xb3, 0x39 + 0x80] {
                let mut n = *b"1733577600.123";
                n[at] = bad;
                assert_eq!(super::milliseconds_exactly(&n), None, "{bad:#x} at {at}");
            }
        }
        assert_eq!(crate::rules::eight_digits(b"00000000"), Some(0));
        assert_eq!(crate::rules::eight_digits(b"99999999"), Some(99_999_999));
        assert_eq!(crate::rules::eight_digits(b"12345678"), Some(12_345_678));
        assert_eq!(
            super::epoch_ms(b"1.7335776001235e9"),
            Some(1_733_577_600_124)
        );
        assert_eq!(super::epoch_ms(b"1733577600"), Some(1_733_577_600_000));
    }

    use super::*;

    fn read(text: &str) -> Result<(Vec<RecordMeta<'static>>, bool), InvocationError> {
        let buf: &'static mut [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
        read_serial(buf).map(|e| (e.records.to_vec(), e.window.is_some()))
    }

    const RECORD: &str = r#"{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"k1","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1545084650.987},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000006:49590338271490256608559692538361571095921575989136588898","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/lambda-role","awsRegion":"us-east-2","eventSourceARN":"arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"}"#;

    #[test]
    fn reads_what_lambda_sends() {
        let (records, window) =
            read(&format!(r#"{{"Records":[{RECORD},{RECORD}]}}"#)).expect("an envelope");
        assert!(!window);
        assert_eq!(records.len(), 2);
        let r = &records[1];
        assert_eq!(r.index, 1);
        assert_eq!(r.partition_key, "k1");
        assert_eq!(r.shard_id, "shardId-000000000006");
        assert_eq!(r.data_base64, b"eyJhIjoxfQ==");
        assert_eq!(r.arrival_ms, 1_545_084_650_987);
        assert_eq!(
            r.event_source_arn,
            "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
        );
    }

    #[test]
    fn whitespace_field_order_escapes_and_unknown_values_do_not_matter() {
        let text = r#" {
          "extra": [1, -2.5e3, {"a": [true, false, null]}, "x\"y"],
          "Records": [ { "eventSourceARN" : "arn\/s" ,
            "eventID":"shard\u0041:1",
            "kinesis": { "approximateArrivalTimestamp": 17, "data": "e30=",
              "partitionKey": "caf\u00e9 \ud83d\ude00 \n", "sequenceNumber": "1" } } ]
        } "#;
        let (records, _) = read(text).expect("an envelope");
        let r = &records[0];
        assert_eq!(r.event_source_arn, "arn/s");
        assert_eq!(r.shard_id, "shardA");
        assert_eq!(r.partition_key, "café 😀 \n");
        assert_eq!(r.arrival_ms, 17_000);
    }

    #[test]
    fn agrees_with_serde_json_on_generated_invocations() {
        use pipeline_generator::kinesis::{self, StreamInfo};
        use pipeline_generator::{TrafficConfig, generate};
        let records = generate(TrafficConfig {
            events: 300,
            seed: 11,
            poison: pipeline_generator::PoisonMix::uniform(0.2),
            ..TrafficConfig::default()
        });
        for shard in kinesis::route(&records, 3) {
            let payload = kinesis::invocation_payload(&shard, &StreamInfo::default());
            let reference: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
            let (envelope, fits) = read_counting(&payload);
            let envelope = envelope.expect("an envelope");
            let expected = reference["Records"].as_array().expect("an envelope");
            assert_eq!(envelope.records.len(), expected.len());
            // generated records look alike: each fits the layout of the first
            assert_eq!(fits, expected.len() - 1, "records read by a layout");
            for (got, want) in envelope.records.to_vec().iter().zip(expected) {
                let k = &want["kinesis"];
                assert_eq!(
                    got.data_base64,
                    k["data"].as_str().expect("present").as_bytes()
                );
                assert_eq!(
                    got.partition_key,
                    k["partitionKey"].as_str().expect("present")
                );
                assert_eq!(
                    got.sequence_number,
                    k["sequenceNumber"].as_str().expect("present")
                );
                let arrival = k["approximateArrivalTimestamp"]
                    .as_f64()
                    .expect("an envelope");
                assert_eq!(got.arrival_ms, (arrival * 1000.0).round() as i64);
                assert!(
                    want["eventID"]
                        .as_str()
                        .expect("present")
                        .starts_with(got.shard_id)
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_every_corruption_is_refused_not_a_panic() {
        let text = format!(
            r#"{{"Records":[{RECORD}],"window":{{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:01:00Z"}},"state":{{"a":"b"}}}}"#
        );
        assert!(read(&text).expect("present").1);
        for cut in 0..text.len() {
            assert!(
                read(&text[..cut]).is_err(),
                "a payload cut at byte {cut} was accepted"
            );
        }
        // every single-byte corruption: an error or a document serde_json
        // also accepts, never a panic; the one exception is inside `data`,
        // left to the base64 decoder (one poison record, tested with the
        // decoder)
        let bytes = text.as_bytes();
        let data_at = text.find("eyJhIjoxfQ==").expect("data");
        let data = data_at..data_at + "eyJhIjoxfQ==".len();
        for at in 0..bytes.len() {
            for bad in [b'"', b'\\', b'{', b']', b',', 0x01, 0xff, b'x'] {
                let mut b = bytes.to_vec();
                b[at] = bad;
                let ours = read_serial(&mut b.clone()).is_ok();
                if ours && !data.contains(&at) {
                    assert!(
                        serde_json::from_slice::<serde_json::Value>(&b).is_ok(),
                        "accepted invalid JSON with {bad:#x} at {at}"
                    );
                }
            }
        }
    }

    /// `records` copies of `record` with the window fields after them, as
    /// the aggregator's event source mapping sends them.
    fn invocation(records: &[String], window: bool) -> Vec<u8> {
        let window = if window {
            r#","window":{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:01:00Z"},"state":{"a":"b"},"shardId":"s","isFinalInvokeForWindow":true"#
        } else {
            ""
        };
        format!(r#"{{"Records":[{}]{window}}}"#, records.join(",")).into_bytes()
    }

    fn records_with_keys(keys: impl Iterator<Item = String>) -> Vec<String> {
        keys.map(|k| {
            RECORD.replace(
                r#""partitionKey":"k1""#,
                &format!(r#""partitionKey":"{k}""#),
            )
        })
        .collect()
    }

    /// Both ways of reading, on copies of `payload`: in pieces (forced,
    /// whatever the size) and in one pass.
    fn both(
        payload: &[u8],
    ) -> (
        Result<Envelope<'static>, InvocationError>,
        Result<Envelope<'static>, InvocationError>,
    ) {
        let pieces: &'static mut [u8] = Box::leak(payload.to_vec().into_boxed_slice());
        let serial: &'static mut [u8] = Box::leak(payload.to_vec().into_boxed_slice());
        (read_with(pieces, Workers::new(2), 0), read_serial(serial))
    }

    fn same(
        a: &Result<Envelope<'_>, InvocationError>,
        b: &Result<Envelope<'_>, InvocationError>,
    ) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                // the data lengths too, and they are those of the data read
                let lens = |e: &Envelope<'_>| e.records.data_lens().collect::<Vec<_>>();
                let of_data: Vec<DataLen> = (a.records.to_vec().iter())
                    .map(|r| DataLen::of(r.data_base64))
                    .collect();
                a.records.to_vec() == b.records.to_vec()
                    && a.window == b.window
                    && lens(a) == lens(b)
                    && lens(a) == of_data
            }
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }

    /// Where each record but the first starts.
    fn record_starts(payload: &[u8]) -> Vec<usize> {
        payload
            .windows(12)
            .enumerate()
            .filter(|(_, w)| w == br#"},{"kinesis""#)
            .map(|(i, _)| i + 2)
            .collect()
    }

    #[test]
    fn pieces_read_what_one_pass_reads() {
        for n in [2, 3, 10, 101] {
            for window in [false, true] {
                let keys = (0..n).map(|i| format!("key-{i}"));
                let payload = invocation(&records_with_keys(keys), window);
                // the guesses are right: the payload is read in pieces
                let cuts = guess_cuts(&payload, 8);
                assert!(!cuts.is_empty(), "{n} records");
                let read = read_pieces(&mut payload.clone(), Workers::new(2), &cuts);
                assert_eq!(read.map(|p| p.len()), Some(n));
                // and so is every record boundary, one record a piece
                let every = record_starts(&payload);
                let read = read_pieces(&mut payload.clone(), Workers::new(2), &every);
                assert_eq!(read.map(|p| p.len()), Some(n));
                let (split, serial) = both(&payload);
                let split = split.expect("an envelope");
                assert_eq!(split.records.len(), n);
                let records = split.records.to_vec();
                assert!(records.iter().enumerate().all(|(i, r)| r.index == i));
                assert_eq!(records[n - 1].partition_key, format!("key-{}", n - 1));
                assert_eq!(split.window.is_some(), window);
                assert!(same(&Ok(split), &serial), "{n} records, window {window}");
            }
        }
    }

    #[test]
    fn shard_ids_and_arns_are_read_per_record_and_equal_ones_share_a_slice() {
        // runs of seven records from one shard and stream, then a change of both
        let source = |i: usize| {
            if (i / 7).is_multiple_of(2) {
                ("6", "a")
            } else {
                ("7", "b")
            }
        };
        let records: Vec<String> = (0..40)
            .map(|i| {
                let (shard, stream) = source(i);
                RECORD
                    .replace(
                        "shardId-000000000006:",
                        &format!("shardId-00000000000{shard}:"),
                    )
                    .replace("stream/lambda-stream", &format!("stream/{stream}"))
            })
            .collect();
        let (split, serial) = both(&invocation(&records, false));
        for envelope in [split, serial] {
            let metas = envelope.expect("an envelope").records.to_vec();
            for (i, m) in metas.iter().enumerate() {
                let (shard, stream) = source(i);
                assert_eq!(
                    m.shard_id,
                    format!("shardId-00000000000{shard}"),
                    "record {i}"
                );
                assert!(
                    m.event_source_arn.ends_with(&format!("stream/{stream}")),
                    "record {i}"
                );
                if i % 7 != 0 {
                    let before = &metas[i - 1];
                    assert!(std::ptr::eq(m.shard_id, before.shard_id), "record {i}");
                    assert!(std::ptr::eq(m.event_source_arn, before.event_source_arn));
                }
            }
        }
    }

    #[test]
    fn a_wrong_guess_or_an_escape_falls_back_to_one_pass() {
        // a `},{` inside a string, and one inside a nested unknown value
        let keys = (0..20).map(|i| format!("a}},{{{i}"));
        let mut records = records_with_keys(keys);
        records[12] = records[12].replacen(r#""eventSource""#, r#""x":[{},{}],"eventSource""#, 1);
        let payload = invocation(&records, false);
        let good = record_starts(&payload);
        for wrong in [
            payload
                .windows(5)
                .position(|w| w == b"a},{7")
                .expect("present")
                + 3,
            payload
                .windows(5)
                .position(|w| w == b"[{},{")
                .expect("present")
                + 4,
        ] {
            let mut cuts = good.clone();
            cuts.push(wrong);
            cuts.sort_unstable();
            assert!(read_pieces(&mut payload.clone(), Workers::new(2), &cuts).is_none());
            assert!(read_pieces(&mut payload.clone(), Workers::new(2), &[wrong]).is_none());
        }
        let (split, serial) = both(&payload);
        assert_eq!(
            split.as_ref().expect("an envelope").records.to_vec()[7].partition_key,
            "a},{7"
        );
        assert!(same(&split, &serial));
        // escapes must not be unescaped by a reading that is then dropped
        for escaped_at in [1, 15] {
            let keys = (0..20).map(|i| {
                if i == escaped_at {
                    r#"q\"\u00e9"#.to_owned()
                } else {
                    format!("k{i}")
                }
            });
            let payload = invocation(&records_with_keys(keys), true);
            let cuts = record_starts(&payload);
            assert!(read_pieces(&mut payload.clone(), Workers::new(2), &cuts).is_none());
            let (split, serial) = both(&payload);
            let split = split.expect("an envelope");
            assert_eq!(split.records.to_vec()[escaped_at].partition_key, "q\"é");
            assert!(same(&Ok(split), &serial));
        }
        // pretty-printed or `Records` not first: read in one pass, the same
        let pretty = String::from_utf8(invocation(
            &records_with_keys((0..9).map(|i| i.to_string())),
            true,
        ))
        .expect("UTF-8")
        .replacen("{", "{ ", 1);
        let (split, serial) = both(pretty.as_bytes());
        assert!(same(&split, &serial) && split.is_ok());
    }

    #[test]
    fn every_corruption_reads_the_same_in_pieces_as_in_one_pass() {
        let payload = invocation(&records_with_keys((0..4).map(|i| format!("k{i}"))), true);
        for at in 0..payload.len() {
            for bad in [b'"', b'\\', b'{', b'}', b']', b',', 0x01, 0xff] {
                let mut b = payload.clone();
                b[at] = bad;
                let (split, serial) = both(&b);
                assert!(
                    same(&split, &serial),
                    "{bad:#x} at {at}: {split:?} vs {serial:?}",
                    split = split.as_ref().err(),
                    serial = serial.as_ref().err()
                );
            }
        }
        for cut in 0..payload.len() {
            let (split, serial) = both(&payload[..cut]);
            assert!(same(&split, &serial), "cut at {cut}");
        }
    }

    #[test]
    fn sequence_number_and_partition_key_read_the_same_from_one_check() {
        let seq = "49590338271490256608559692538361571095921575989136588898";
        let key = "3f2b1c9e-5d4a-4e8f-9b7c-1a2d3e4f5a6b";
        let record =
            format!(r#"{{"partitionKey":"{key}","sequenceNumber":"{seq}","data":"AA=="}}"#);
        let b = record.as_bytes();
        let range = |s: &str| {
            let at = record.find(s).expect("in the record");
            at..at + s.len()
        };
        let (rs, rk) = (range(seq), range(key));
        let spanned = around(b, &rs, &rk);
        assert!(spanned.len() >= 64, "long enough for the vector check");
        assert_eq!(
            both_texts(spanned, &b[rs.clone()], &b[rk.clone()]),
            (seq, key)
        );
        // not around them, or nothing: each checked alone, the same result
        assert_eq!(
            both_texts(&b[..10], &b[rs.clone()], &b[rk.clone()]),
            (seq, key)
        );
        assert_eq!(both_texts(&[], &b[rs.clone()], &b[rk.clone()]), (seq, key));
        // too far apart: nothing spanned
        assert!(around(b, &(0..1), &(300..301)).is_empty());
        // bytes between them that are not UTF-8 do not matter
        let mut odd = b.to_vec();
        odd[rk.end + 1] = 0xff;
        let spanned = around(&odd, &rs, &rk);
        assert_eq!(
            both_texts(spanned, &odd[rs.clone()], &odd[rk.clone()]),
            (seq, key)
        );
    }

    #[test]
    fn the_first_special_byte_is_found_at_any_position() {
        for len in [0, 1, 7, 8, 9, 63, 200] {
            let clean: Vec<u8> = (0..len).map(|i| b'A' + (i % 58) as u8).collect();
            let clean: Vec<u8> = clean
                .into_iter()
                .map(|c| if c == b'\\' { b'/' } else { c })
                .collect();
            assert_eq!(first_special(&clean), len, "false positive at length {len}");
            for at in 0..len {
                for c in [b'"', b'\\', 0x00, 0x01, 0x1f, 0x80, 0xff] {
                    let mut dirty = clean.clone();
                    dirty[at] = c;
                    // a second special byte after it must not matter
                    if at + 1 < len {
                        dirty[at + 1] = 0x00;
                    }
                    assert_eq!(first_special(&dirty), at, "{c:#x} at {at} of {len}");
                }
            }
        }
    }

    /// One pass with every record read in full, no layout.
    fn read_in_full(payload: &[u8]) -> Result<Envelope<'static>, InvocationError> {
        let buf: &'static mut [u8] = Box::leak(payload.to_vec().into_boxed_slice());
        read_one_pass(buf, Layouts::none()).0
    }

    /// One pass as the decoder reads, and how many records a layout read.
    fn read_counting(payload: &[u8]) -> (Result<Envelope<'static>, InvocationError>, usize) {
        let buf: &'static mut [u8] = Box::leak(payload.to_vec().into_boxed_slice());
        read_one_pass(buf, Layouts::new())
    }

    /// Records that vary in every value a layout reads, and some that a
    /// layout cannot read (escapes, non-ASCII, another order, spacing).
    fn varied_records() -> Vec<String> {
        let mut records = records_with_keys((0..12).map(|i| format!("key-{}", i * 37)));
        for (i, r) in records.iter_mut().enumerate() {
            *r = r
                .replace("4959033827149", &format!("49590338271{:02}", i))
                .replace("1545084650.987", &format!("15450846{i}0.5"))
                .replace("eyJhIjoxfQ==", ["eyJhIjoxfQ==", "eyJiIjoyMn0="][i % 2]);
        }
        records[4] = records[4].replace("key-148", "k\\u00e9y");
        records[5] = records[5].replace("key-185", "kéy");
        records[7] = records[7].replace(
            r#""eventSource":"aws:kinesis","eventVersion":"1.0","#,
            r#""eventVersion":"1.0","eventSource":"aws:kinesis","#,
        );
        records[9] = records[9].replace(":", " : ");
        records
    }

    #[test]
    fn records_read_by_their_layout_are_read_as_in_full() {
        let records = varied_records();
        let payload = invocation(&records, true);
        let (read, fits) = read_counting(&payload);
        let full = read_in_full(&payload);
        assert!(same(&read, &full) && read.is_ok());
        // records 1-3 and 6 fit the first one's layout (4 and 5 have text
        // a layout does not read); 7 to 10 each differ from the one before,
        // and each is learnt; 11 fits 10's
        assert_eq!(fits, 5, "records read by a layout");
        // the same records all alike: every one after the first
        let alike = invocation(&records_with_keys((0..50).map(|i| i.to_string())), false);
        assert_eq!(read_counting(&alike).1, 49);
    }

    #[test]
    fn every_corruption_reads_the_same_by_layout_as_in_full() {
        let records = varied_records();
        let payload = invocation(&records[..4], false);
        // corrupt the later records, which are read by the first one's layout
        let second = payload.len() - records[1..4].join(",").len() - 2;
        for at in second..payload.len() {
            for bad in [
                b'"', b'\\', b'{', b'}', b':', b',', b' ', b'1', 0x01, 0xff, b'x',
            ] {
                let mut b = payload.clone();
                b[at] = bad;
                let (read, _) = read_counting(&b);
                let full = read_in_full(&b);
                assert!(
                    same(&read, &full),
                    "{bad:#x} at {at}: {read:?} vs {full:?}",
                    read = read.as_ref().err(),
                    full = full.as_ref().err()
                );
            }
        }
        for cut in second..payload.len() {
            let (read, _) = read_counting(&payload[..cut]);
            assert!(same(&read, &read_in_full(&payload[..cut])), "cut at {cut}");
        }
    }

    #[test]
    fn long_strings_with_escapes_and_non_ascii_text_are_read() {
        let long = "é".repeat(40) + "\\\"" + &"x".repeat(100);
        let text = format!(
            r#"{{"Records":[],"shardId":"{long}","window":{{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:01:00Z"}}}}"#
        );
        let mut buf = text.into_bytes();
        let envelope = read_serial(&mut buf).expect("an envelope");
        let expected = "é".repeat(40) + "\"" + &"x".repeat(100);
        assert_eq!(envelope.window.expect("present").shard_id, expected);
        let control = format!("{{\"Records\":[],\"x\":\"{}\u{7}\"}}", "y".repeat(100));
        assert!(matches!(read(&control), Err(InvocationError::NotJson(_))));
    }

    #[test]
    fn malformed_json_names_the_byte() {
        let err = read(r#"{"Records": [}"#).expect_err("rejected");
        assert_eq!(
            err,
            InvocationError::NotJson("expected a value at byte 13".into())
        );
        for bad in [
            "",
            "  ",
            r#"{"Records":[]} x"#,
            r#"{"Records":[],}"#,
            r#"{"Records":01}"#,
            r#"{"Records":1.}"#,
            r#"{"Records":"\x"}"#,
            r#"{"Records":"\ud800"}"#,
            "{\"Records\":\"a\u{1}b\"}",
            r#"{"Records":tru}"#,
            r#"{"Records":"\"#,
            r#"{"Records":[{"kinesis":{"data":"\"#,
        ] {
            assert!(
                matches!(read(bad), Err(InvocationError::NotJson(_))),
                "accepted {bad:?}"
            );
        }
        let mut not_utf8 = br#"{"Records":"\xff"}"#.to_vec();
        not_utf8[12] = 0xff;
        assert!(matches!(
            read_serial(&mut not_utf8),
            Err(InvocationError::NotJson(_))
        ));
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(matches!(read(&deep), Err(InvocationError::NotJson(_))));
    }

    #[test]
    fn json_that_is_not_a_kinesis_event_says_what_is_missing() {
        assert_eq!(
            read("[]").expect_err("rejected"),
            InvocationError::NoRecords
        );
        assert_eq!(
            read(r#"{"Records":{}}"#).expect_err("rejected"),
            InvocationError::NoRecords
        );
        assert_eq!(
            read(r#"{"Records":[1]}"#).expect_err("rejected"),
            InvocationError::BadRecord {
                index: 0,
                field: "kinesis"
            }
        );
        let no_data = RECORD.replace(r#""data":"eyJhIjoxfQ==","#, r#""data":5,"#);
        assert_eq!(
            read(&format!(r#"{{"Records":[{no_data}]}}"#)).expect_err("rejected"),
            InvocationError::BadRecord {
                index: 0,
                field: "kinesis.data"
            }
        );
        assert_eq!(
            read(r#"{"Records":[],"window":{"start":"yesterday","end":"2026-01-01T00:00:00Z"}}"#)
                .expect_err("rejected"),
            InvocationError::BadWindow {
                field: "window.start"
            }
        );
        assert_eq!(
            read(r#"{"Records":[],"state":{"a":1}}"#).expect_err("rejected"),
            InvocationError::BadWindow { field: "state" }
        );
    }
}
