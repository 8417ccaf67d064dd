//! A record's layout, learnt from one record of an invocation and matched
//! against the next.
//!
//! One serializer writes every record of an invocation: the same keys in the
//! same order, the same whitespace, the same values where nothing changes
//! (event source, region, role, schema versions, the stream ARN, the shard id
//! that starts the event id). Only the sequence number, partition key, data,
//! arrival time and the rest of the event id differ from one record to the
//! next. The general reader scans and dispatches on
//! every key and value (about 300 ns a record, a quarter of an aggregator
//! invocation). A layout keeps the bytes between the changing values, the
//! glue, as one accepted record had them, and reads a record by comparing
//! glue (`memcmp`) and scanning only the changing values. The shard id and
//! stream ARN, being glue, are the learnt record's own slices for every record
//! that fits: equal by address, so nothing compares their bytes again.
//!
//! A layout decides how fast, never what: a record it does not fit (another
//! key order, an escape or non-ASCII text in a value, a value that changed)
//! is read by the general reader, with the same result and the same errors.
//! It is learnt from the bytes alone, whatever order or spacing the service
//! uses, and kept only once the general reader has accepted the record it
//! was learnt from.

use std::ops::Range;

use super::{RawMeta, epoch_ms, number_len, plain_string_len};

/// The values a layout reads from each record; every other byte is glue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    SequenceNumber,
    PartitionKey,
    Data,
    /// `eventID` after the `:` that ends its shard id.
    EventIdTail,
    Arrival,
}

impl Slot {
    /// The length of the slot's value at the start of `value`, if it is one a
    /// layout reads: a string body of printable ASCII without escapes, up to
    /// its closing quote (`data`: no quote or backslash, as the general
    /// reader delimits it); the arrival time a JSON number.
    // inlined: out of line, the per-record loop of `fit` ran 2-3% slower
    #[inline(always)]
    fn len(self, value: &[u8]) -> Option<usize> {
        match self {
            Slot::Arrival => number_len(value),
            Slot::Data => memchr::memchr2(b'"', b'\\', value).filter(|&i| value[i] == b'"'),
            _ => plain_string_len(value),
        }
    }
}

/// Learning attempts a reader may make: a record that does not fit the
/// layout is learnt from, once the general reader accepts it, up to this
/// many times (a payload whose records all differ stops paying for it).
const LEARNS: u8 = 8;

/// Records in a row that may miss a layout once nothing more can be
/// learnt, before the reader stops trying it.
const MISSES: u8 = 16;

/// A record's glue, with a slot after each stretch of it.
#[derive(Debug)]
pub(super) struct Layout {
    glue: Vec<u8>,
    /// The end of the glue before each slot, in the record's order; the
    /// glue after the last slot closes the record.
    steps: Vec<(usize, Slot)>,
}

/// Where a record's values are, relative to its first byte.
#[derive(Default)]
pub(super) struct Fit {
    /// The record's length, through its closing `}`.
    pub(super) len: usize,
    pub(super) sequence_number: Range<usize>,
    pub(super) partition_key: Range<usize>,
    pub(super) data: Range<usize>,
    pub(super) arrival_ms: i64,
}

impl Layout {
    /// The record at the start of `b`, if it fits: its glue equal to this
    /// layout's, each value one that [`Slot::len`] reads, its arrival time
    /// one that the general reader converts.
    pub(super) fn fit(&self, b: &[u8]) -> Option<Fit> {
        let (mut at, mut from) = (0, 0);
        let mut fit = Fit::default();
        for &(end, slot) in &self.steps {
            let glue = self.glue.get(from..end)?;
            if b.get(at..at + glue.len())? != glue {
                return None;
            }
            (at, from) = (at + glue.len(), end);
            let value = b.get(at..)?;
            let len = slot.len(value)?;
            let range = at..at + len;
            match slot {
                Slot::SequenceNumber => fit.sequence_number = range,
                Slot::PartitionKey => fit.partition_key = range,
                Slot::Data => fit.data = range,
                Slot::Arrival => fit.arrival_ms = epoch_ms(value.get(..len)?)?,
                Slot::EventIdTail => {}
            }
            at += len;
        }
        let close = self.glue.get(from..)?;
        if b.get(at..at + close.len())? != close {
            return None;
        }
        fit.len = at + close.len();
        Some(fit)
    }
}

/// Learns the layout of the record at the start of `b` (its opening `{`).
/// `None` for a record a layout cannot describe: a value it reads that is
/// not a string of printable ASCII (or, for the arrival time, a number),
/// missing or repeated; an event id without a `:`; a nested value other than
/// `kinesis`; an escape anywhere. It does not judge the record: the general
/// reader does, and the layout is kept only if that reader accepts it.
pub(super) fn learn(b: &[u8]) -> Option<Layout> {
    let mut l = Learner {
        b,
        at: 0,
        copied: 0,
        layout: Layout {
            glue: Vec::with_capacity(512),
            steps: Vec::with_capacity(6),
        },
    };
    l.object(false)?;
    l.layout.glue.extend_from_slice(b.get(l.copied..l.at)?);
    let once = |s: Slot| l.layout.steps.iter().filter(|(_, t)| *t == s).count() == 1;
    let all = [
        Slot::SequenceNumber,
        Slot::PartitionKey,
        Slot::Data,
        Slot::EventIdTail,
        Slot::Arrival,
    ];
    (l.layout.steps.len() == all.len() && all.into_iter().all(once)).then_some(l.layout)
}

struct Learner<'b> {
    b: &'b [u8],
    at: usize,
    /// Bytes before this are in the glue or a slot.
    copied: usize,
    layout: Layout,
}

impl Learner<'_> {
    fn whitespace(&mut self) {
        while matches!(self.b.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn byte(&mut self, c: u8) -> Option<()> {
        self.whitespace();
        (self.b.get(self.at) == Some(&c)).then(|| self.at += 1)
    }

    /// A string of printable ASCII without escapes; its body.
    fn string(&mut self) -> Option<Range<usize>> {
        self.byte(b'"')?;
        let start = self.at;
        let len = plain_string_len(self.b.get(start..)?)?;
        self.at = start + len + 1;
        Some(start..start + len)
    }

    /// `value` is a slot's: the glue before it is copied and it is skipped.
    fn slot(&mut self, value: Range<usize>, slot: Slot) -> Option<()> {
        let glue = self.b.get(self.copied..value.start)?;
        self.layout.glue.extend_from_slice(glue);
        self.layout.steps.push((self.layout.glue.len(), slot));
        self.copied = value.end;
        Some(())
    }

    /// An object: a record (`kinesis` false) or its `kinesis` object.
    fn object(&mut self, kinesis: bool) -> Option<()> {
        self.byte(b'{')?;
        self.whitespace();
        if self.b.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.byte(b':')?;
            self.whitespace();
            match (kinesis, self.b.get(key)?) {
                (false, b"kinesis") => self.object(true)?,
                (false, b"eventID") => {
                    // the shard id and its `:` are glue, the rest a slot
                    let value = self.string()?;
                    let colon = memchr::memchr(b':', self.b.get(value.clone())?)?;
                    self.slot(value.start + colon + 1..value.end, Slot::EventIdTail)?;
                }
                (true, b"sequenceNumber") => self.value_slot(Slot::SequenceNumber)?,
                (true, b"partitionKey") => self.value_slot(Slot::PartitionKey)?,
                (true, b"data") => self.value_slot(Slot::Data)?,
                (true, b"approximateArrivalTimestamp") => self.value_slot(Slot::Arrival)?,
                _ => self.constant()?,
            }
            self.whitespace();
            match self.b.get(self.at)? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A slot's whole value (a quoted string or, for the arrival time, a
    /// number), read as [`Layout::fit`] reads it.
    fn value_slot(&mut self, slot: Slot) -> Option<()> {
        let quoted = slot != Slot::Arrival;
        if quoted {
            self.byte(b'"')?;
        }
        let start = self.at;
        let len = slot.len(self.b.get(start..)?)?;
        self.slot(start..start + len, slot)?;
        // past the closing quote, which `len` found there
        self.at = start + len + usize::from(quoted);
        Some(())
    }

    /// A value that is glue: a string, number or literal, not nested.
    fn constant(&mut self) -> Option<()> {
        let rest = self.b.get(self.at..)?;
        self.at += match rest.first()? {
            b'"' => return self.string().map(drop),
            b'-' | b'0'..=b'9' => number_len(rest)?,
            _ => [&b"true"[..], b"false", b"null"]
                .into_iter()
                .find(|w| rest.starts_with(w))?
                .len(),
        };
        Some(())
    }
}

/// A reader's layout and what it may still learn.
#[derive(Debug)]
pub(super) struct Layouts<'p> {
    current: Option<Layout>,
    /// The shard id and stream ARN of the record the layout was learnt from,
    /// which are those of every record that fits it.
    shard_id: &'p [u8],
    event_source_arn: &'p [u8],
    learns_left: u8,
    misses_in_row: u8,
    /// Records read by a layout.
    pub(super) fits: usize,
}

impl<'p> Layouts<'p> {
    pub(super) fn new() -> Self {
        Layouts {
            current: None,
            shard_id: &[],
            event_source_arn: &[],
            learns_left: LEARNS,
            misses_in_row: 0,
            fits: 0,
        }
    }

    /// No layouts: every record read in full (tests compare both ways).
    #[cfg(any(test, fuzzing))]
    pub(super) fn none() -> Self {
        Layouts {
            learns_left: 0,
            ..Self::new()
        }
    }

    /// The record at the start of `b`, if it fits the current layout.
    pub(super) fn fit(&mut self, b: &[u8]) -> Option<Fit> {
        let fit = self.current.as_ref()?.fit(b);
        if fit.is_some() {
            self.misses_in_row = 0;
            self.fits += 1;
        } else {
            self.misses_in_row = self.misses_in_row.saturating_add(1);
            if self.learns_left == 0 && self.misses_in_row >= MISSES {
                self.current = None;
            }
        }
        fit
    }

    /// The layout of the record at the start of `b`, to [`keep`](Self::keep)
    /// once the general reader accepts the record.
    pub(super) fn learn(&mut self, b: &[u8]) -> Option<Layout> {
        self.learns_left = self.learns_left.checked_sub(1)?;
        learn(b)
    }

    /// Keeps the layout learnt from the record the general reader read as
    /// `meta`.
    pub(super) fn keep(&mut self, learnt: Option<Layout>, meta: &RawMeta<'p>) {
        if learnt.is_some() {
            self.current = learnt;
            self.shard_id = meta.shard_id;
            self.event_source_arn = meta.event_source_arn;
            self.misses_in_row = 0;
        }
    }

    /// The shard id and stream ARN of every record that fits the layout.
    pub(super) fn shared(&self) -> (&'p [u8], &'p [u8]) {
        (self.shard_id, self.event_source_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"k1","sequenceNumber":"4959","data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1545084650.987},"eventSource":"aws:kinesis","eventID":"shardId-000000000006:4959","eventSourceARN":"arn:aws:kinesis:us-east-2:1:stream/s"}"#;

    #[test]
    fn a_record_fits_the_layout_of_another_with_other_values() {
        let layout = learn(RECORD.as_bytes()).expect("a layout");
        let other = RECORD
            .replace("k1", "key-22")
            .replace("4959", "4960")
            .replace("eyJhIjoxfQ==", "eyJiIjoyfQ==")
            .replace("1545084650.987", "17");
        let b = format!("{other},more");
        let fit = layout.fit(b.as_bytes()).expect("fits");
        assert_eq!(fit.len, other.len());
        assert_eq!(&b[fit.partition_key.clone()], "key-22");
        assert_eq!(&b[fit.sequence_number.clone()], "4960");
        assert_eq!(&b[fit.data.clone()], "eyJiIjoyfQ==");
        assert_eq!(fit.arrival_ms, 17_000);
    }

    #[test]
    fn what_a_layout_cannot_read_does_not_fit() {
        let layout = learn(RECORD.as_bytes()).expect("a layout");
        for other in [
            RECORD.replace("\"aws:kinesis\"", "\"aws:other\""), // glue changed
            RECORD.replace("\"k1\"", "\"k\\u0031\""),           // an escape
            RECORD.replace("\"k1\"", "\"k\u{e9}\""),            // non-ASCII
            RECORD.replace("eyJhIjoxfQ==", "eyJhIjoxfQ\\u003d="), // escaped data
            RECORD.replace("1545084650.987", "\"1\""),          // arrival a string
            RECORD.replace("000006:4959", "0000064959"),        // no colon
            RECORD.replace("000006:", "000007:"),               // another shard
            RECORD.replace("stream/s", "stream/t"),             // another stream
            RECORD.replace(",\"eventSource\"", ", \"eventSource\""), // spacing
            RECORD[..RECORD.len() - 1].to_string(),             // truncated
        ] {
            assert!(layout.fit(other.as_bytes()).is_none(), "{other}");
        }
    }

    #[test]
    fn only_records_with_every_value_once_and_nothing_nested_are_learnt() {
        assert!(learn(RECORD.as_bytes()).is_some());
        let spaced = RECORD.replace(",", " ,\n ").replace(":", " : ");
        assert!(learn(spaced.as_bytes()).is_some(), "whitespace is glue");
        for bad in [
            RECORD.replace("\"eventID\"", "\"eventId\""),
            RECORD.replace("\"eventSource\"", "\"eventID\""),
            RECORD.replace("\"aws:kinesis\"", "{}"),
            RECORD.replace("\"aws:kinesis\"", "[1]"),
            RECORD.replace("\"1.0\"", "\"1\\u002e0\""),
            RECORD.replace("1545084650.987", "01"),
            RECORD.replace("000006:4959", "0000064959"),
            RECORD
                .replace("{\"kinesis\":{", "{\"kinesis\":[")
                .replace("987}", "987]"),
        ] {
            assert!(learn(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
