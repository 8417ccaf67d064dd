//! Reads one record's JSON into a typed, validated [`Event`].
//!
//! The record is parsed once with simd-json into a reused tape; the reader
//! then walks the tape directly (no DOM, no serde), dispatching on
//! `event_type`. Strings are borrowed from the record buffer, which simd-json
//! unescapes in place, so an accepted record allocates only its item and
//! changed-field vectors. A record shaped like one read before (the same
//! keys, order and spacing, plain values) skips simd-json: the [`layout`]
//! learnt from that record writes the same tape from its bytes.

use std::borrow::Cow;

use simd_json::{Buffers, ErrorType, Node, StaticNode, Tape};

mod layout;

use layout::Layouts;

use crate::event::*;
use crate::reason::{ReasonCode, Rejection};
use crate::rules::{self, MAX_ID_CHARS, MAX_INT32, MAX_SAFE_INTEGER, MAX_SHORT_CHARS};

/// Bytes of padding simd-json needs after each record in a packed buffer.
pub const RECORD_PADDING: usize = simd_json::INPUT_PADDING;

/// A reusable record parser: owns simd-json's scratch buffers and tape so
/// that parsing many records allocates nothing after warm-up, and the
/// layouts learnt from the records before (see [`layout`]).
pub struct RecordParser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    layouts: Layouts,
    /// The record being learnt from, as it was before simd-json parsed it
    /// (simd-json unescapes strings in place).
    learning: Vec<u8>,
}

impl Default for RecordParser {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecordParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordParser").finish_non_exhaustive()
    }
}

impl RecordParser {
    /// A parser with buffers sized for typical (sub-kilobyte) records.
    pub fn new() -> Self {
        RecordParser {
            buffers: Buffers::new(4096),
            tape: Some(Tape::null().reset()),
            layouts: Layouts::new(),
            learning: Vec::new(),
        }
    }

    /// Parses the record in `buf[..len]`; `buf[len..]` must hold at least
    /// [`RECORD_PADDING`] bytes of any content (the next record may live
    /// there). Strings of the result borrow from `buf`.
    ///
    /// A record that fits a layout learnt from the records this parser read
    /// before is turned into its tape by the layout instead of simd-json;
    /// the result is the same either way.
    pub fn parse_padded<'a>(
        &mut self,
        buf: &'a mut [u8],
        len: usize,
    ) -> Result<Event<'a>, Rejection> {
        if len == 0 {
            return Err(Rejection::record(ReasonCode::MalformedJson, "empty record"));
        }
        let mut tape: Tape<'a> = self.tape.take().unwrap_or_else(Tape::null).reset();
        let out = match buf.get(..len).and_then(|b| self.layouts.fit(b)) {
            Some(layout) => {
                let record: &'a [u8] = buf;
                // the layout read only ASCII bytes, so the record is text
                let located = self.layouts.located(layout);
                let text = record
                    .get(..len)
                    .and_then(|b| simdutf8::basic::from_utf8(b).ok());
                // keys only where the reader will look for them
                let mut keys_left_out = false;
                let written = text.and_then(|s| {
                    self.layouts.write(layout, s, &mut tape.0)?;
                    keys_left_out = located.replays(&tape.0);
                    if !keys_left_out {
                        self.layouts.write_keys(layout, s, &mut tape.0)?;
                    }
                    Some(())
                });
                let mut locate = Locate::Replay(located, 0);
                match written {
                    Some(()) => {
                        let out = read_event_located(&tape.0, &mut locate);
                        // every test run reads the event with its keys too
                        #[cfg(debug_assertions)]
                        if let (true, Some(s)) = (keys_left_out, text) {
                            let mut full = tape.0.clone();
                            self.layouts.write_keys(layout, s, &mut full);
                            debug_assert_eq!(read_event(&full), out, "read without its keys");
                        }
                        out
                    }
                    None => Err(Rejection::record(
                        ReasonCode::MalformedJson,
                        "record does not fit the layout it matched",
                    )),
                }
            }
            None => {
                let learn = self.layouts.learning(len);
                if learn {
                    self.learning.clear();
                    self.learning
                        .extend_from_slice(buf.get(..len).unwrap_or_default());
                }
                // an event learnt from notes where its keys are as it is read
                let mut located = Located::default();
                let mut how = if learn {
                    Locate::Record(&mut located)
                } else {
                    Locate::Scan
                };
                let out = match simd_json::fill_tape_padded(buf, len, &mut self.buffers, &mut tape)
                {
                    Ok(()) => read_event_located(&tape.0, &mut how),
                    Err(e) => Err(json_error(e.error())),
                };
                if learn && out.is_ok() {
                    self.layouts.learn(&self.learning, &tape.0, located);
                }
                out
            }
        };
        self.tape = Some(tape.reset());
        out
    }

    /// Records this parser read by a learnt layout.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn layout_fits(&self) -> u64 {
        self.layouts.fits
    }

    /// Parses a record that sits alone in `buf` (copies it once into an
    /// aligned scratch buffer). Use [`RecordParser::parse_padded`] on packed batches.
    pub fn parse<'a>(&mut self, buf: &'a mut [u8]) -> Result<Event<'a>, Rejection> {
        if buf.is_empty() {
            return Err(Rejection::record(ReasonCode::MalformedJson, "empty record"));
        }
        let mut tape: Tape<'a> = self.tape.take().unwrap_or_else(Tape::null).reset();
        let parsed = simd_json::fill_tape(buf, &mut self.buffers, &mut tape);
        let out = match parsed {
            Ok(()) => read_event(&tape.0),
            Err(e) => Err(json_error(e.error())),
        };
        self.tape = Some(tape.reset());
        out
    }
}

/// Whether reading `records` one after another with one parser (so that
/// later records are read by layouts learnt from earlier ones) gives what a
/// fresh simd-json parse of each gives: the same event or the same
/// rejection. Also how many were read by a layout. The fuzz target and the
/// tests call it.
#[cfg(any(test, fuzzing))]
pub fn layouts_agree(records: &[&[u8]]) -> (bool, u64) {
    let mut parser = RecordParser::new();
    let mut agree = true;
    for record in records {
        let mut padded = record.to_vec();
        padded.resize(record.len() + RECORD_PADDING, b'x');
        let by_layout = parser.parse_padded(&mut padded, record.len());
        let mut alone = record.to_vec();
        let in_full = RecordParser::new().parse(&mut alone);
        agree &= by_layout == in_full;
    }
    (agree, parser.layout_fits())
}

fn json_error(e: &ErrorType) -> Rejection {
    match e {
        ErrorType::InvalidUtf8 => {
            Rejection::record(ReasonCode::InvalidUtf8, "record is not valid UTF-8")
        }
        ErrorType::Eof => Rejection::record(ReasonCode::MalformedJson, "record is truncated"),
        other => Rejection::record(ReasonCode::MalformedJson, format!("not JSON: {other:?}")),
    }
}

/// Number of tape nodes a value occupies, header included.
#[inline]
fn width(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

fn type_name(node: &Node<'_>) -> &'static str {
    match node {
        Node::String(_) => "a string",
        Node::Object { .. } => "an object",
        Node::Array { .. } => "an array",
        Node::Static(StaticNode::Null) => "null",
        Node::Static(StaticNode::Bool(_)) => "a boolean",
        Node::Static(_) => "a number",
    }
}

/// The fields of one JSON object, located by name in a single pass.
///
/// Field JSON Pointers are built only when a rule fails (the cold path).
struct Fields<'t, 'a, const N: usize> {
    nodes: &'t [Node<'a>],
    at: [usize; N],
    keys: &'static [&'static str; N],
    at_path: Parent,
}

/// Where an object sits in the record, for error paths.
#[derive(Clone, Copy)]
enum Parent {
    Root,
    Data,
    Item(usize),
}

const ABSENT: usize = usize::MAX;

/// Key comparison that settles most misses on length and first byte, and
/// compares the rest inline (keys are too short to pay for a `memcmp` call).
#[inline(always)]
fn same_key(name: &str, key: &str) -> bool {
    let (a, b) = (name.as_bytes(), key.as_bytes());
    a.len() == b.len() && a.first() == b.first() && layout::same_bytes(a, b)
}

/// How [`Fields::locate`] finds an object's keys.
///
/// Every event a layout fits has the tape of the event it was learnt from,
/// node for node, with the same keys (keys are glue): the keys the reader
/// looks for are where they were in that event. So the positions found
/// when a layout is learnt are recorded, and replayed for the events it
/// reads, instead of comparing each event's keys again (`locate` was 5% of
/// the aggregator in `perf`).
///
/// Which keys the reader looks for depends on one value, `event_type`: an
/// event of another type with the same keys fits the layout too, so the
/// positions are replayed only for events of the type they were recorded
/// from.
pub(crate) enum Locate<'m> {
    /// Compare the object's keys.
    Scan,
    /// Compare, and note what was found.
    Record(&'m mut Located),
    /// Take what was found from the front; scan once it is used up.
    Replay(&'m Located, usize),
}

/// The positions of the keys the reader looked for, in the order it looked,
/// as `u32` ([`u32::MAX`]: absent), and the event type they are for.
#[derive(Debug, Default)]
pub(crate) struct Located {
    event_type: Option<EventType>,
    at: Vec<u32>,
}

impl Located {
    /// Whether the reader, replaying these positions on `tape`, will find
    /// every key where they say and compare none: the tape's event is of
    /// the type they were recorded for (its `event_type` is where it was).
    /// Events of another type with the same keys make the reader scan, and
    /// need their keys in the tape.
    fn replays(&self, tape: &[Node<'_>]) -> bool {
        let Some(recorded) = self.event_type else {
            return false;
        };
        // the envelope's keys come first, `event_type` second of them
        let at = self.at.get(1).map_or(usize::MAX, |&i| i as usize);
        matches!(tape.get(at), Some(Node::String(name)) if EventType::parse(name) == Some(recorded))
    }
}

impl<'t, 'a, const N: usize> Fields<'t, 'a, N> {
    /// `nodes[0]` must be an object header. Later duplicates win, as in
    /// every mainstream JSON reader (and in the JSON Schema test oracle).
    fn locate(
        nodes: &'t [Node<'a>],
        keys: &'static [&'static str; N],
        at_path: Parent,
        how: &mut Locate<'_>,
    ) -> Self {
        let at = match how {
            Locate::Scan => Self::scan(nodes, keys),
            Locate::Record(found) => {
                let at = Self::scan(nodes, keys);
                // tapes of learnt events (4 KB at most) are far shorter
                found
                    .at
                    .extend(at.map(|i| u32::try_from(i).unwrap_or(u32::MAX)));
                at
            }
            Locate::Replay(found, from) => {
                match found
                    .at
                    .get(*from..)
                    .and_then(|rest| rest.first_chunk::<N>())
                {
                    Some(head) => {
                        *from += N;
                        let at = head.map(|i| if i == u32::MAX { ABSENT } else { i as usize });
                        // every test run checks the replay against the keys,
                        // where the tape has them (see `RecordParser::parse_padded`)
                        debug_assert!(
                            !matches!(nodes.get(1), Some(Node::String(_)))
                                || at == Self::scan(nodes, keys),
                            "replayed key positions"
                        );
                        at
                    }
                    None => Self::scan(nodes, keys),
                }
            }
        };
        Fields {
            nodes,
            at,
            keys,
            at_path,
        }
    }

    fn scan(nodes: &[Node<'_>], keys: &'static [&'static str; N]) -> [usize; N] {
        let mut at = [ABSENT; N];
        let len = match nodes.first() {
            Some(Node::Object { len, .. }) => *len,
            _ => 0,
        };
        let mut idx = 1;
        for _ in 0..len {
            let (Some(Node::String(key)), Some(value)) = (nodes.get(idx), nodes.get(idx + 1))
            else {
                break;
            };
            for (slot, name) in at.iter_mut().zip(keys.iter()) {
                if same_key(name, key) {
                    *slot = idx + 1;
                    break;
                }
            }
            idx += 1 + width(value);
        }
        at
    }

    fn path(&self, i: usize) -> Cow<'static, str> {
        let key = self.keys[i];
        Cow::Owned(match self.at_path {
            Parent::Root => format!("/{key}"),
            Parent::Data => format!("/data/{key}"),
            Parent::Item(n) => format!("/data/items/{n}/{key}"),
        })
    }

    fn reject(
        &self,
        reason: ReasonCode,
        i: usize,
        detail: impl Into<Cow<'static, str>>,
    ) -> Rejection {
        Rejection::field(reason, self.path(i), detail)
    }

    // inlined: every typed read starts here, and out of line it cost 2.3 M
    // instructions an archiver invocation
    #[inline(always)]
    fn node(&self, i: usize) -> Result<&'t Node<'a>, Rejection> {
        match self.at[i] {
            ABSENT => Err(self.reject(ReasonCode::MissingField, i, "required field is missing")),
            idx => self
                .nodes
                .get(idx)
                .ok_or_else(|| self.reject(ReasonCode::MalformedJson, i, "tape ended")),
        }
    }

    /// The sub-tape of field `i` (for nested objects and arrays).
    fn sub(&self, i: usize) -> &'t [Node<'a>] {
        let idx = self.at[i];
        self.nodes
            .get(idx..)
            .map_or(&[], |rest| &rest[..width(&rest[0]).min(rest.len())])
    }

    fn wrong_type(&self, i: usize, expected: &'static str, got: &Node<'_>) -> Rejection {
        self.reject(
            ReasonCode::WrongType,
            i,
            format!("expected {expected}, got {}", type_name(got)),
        )
    }

    fn str(&self, i: usize) -> Result<&'a str, Rejection> {
        match self.node(i)? {
            Node::String(s) => Ok(s),
            other => Err(self.wrong_type(i, "a string", other)),
        }
    }

    /// A string of 1 to `max` characters.
    fn text(&self, i: usize, max: usize) -> Result<&'a str, Rejection> {
        let s = self.str(i)?;
        if rules::has_char_len(s, max) {
            Ok(s)
        } else {
            Err(self.reject(
                ReasonCode::InvalidField,
                i,
                format!("must be 1 to {max} characters"),
            ))
        }
    }

    fn id(&self, i: usize) -> Result<&'a str, Rejection> {
        self.text(i, MAX_ID_CHARS)
    }

    fn uuid(&self, i: usize) -> Result<&'a str, Rejection> {
        let s = self.str(i)?;
        if rules::is_uuid(s) {
            Ok(s)
        } else {
            Err(self.reject(ReasonCode::InvalidField, i, "not a UUID (8-4-4-4-12 hex)"))
        }
    }

    fn country(&self, i: usize) -> Result<Country, Rejection> {
        Country::new(self.str(i)?).ok_or_else(|| {
            self.reject(
                ReasonCode::InvalidField,
                i,
                "not an ISO 3166-1 alpha-2 code (e.g. DE)",
            )
        })
    }

    fn currency(&self, i: usize) -> Result<Currency, Rejection> {
        Currency::new(self.str(i)?).ok_or_else(|| {
            self.reject(
                ReasonCode::InvalidField,
                i,
                "not an ISO 4217 code (e.g. EUR)",
            )
        })
    }

    fn one_of<E>(
        &self,
        i: usize,
        parse: fn(&str) -> Option<E>,
        expected: &'static str,
    ) -> Result<E, Rejection> {
        parse(self.str(i)?).ok_or_else(|| self.reject(ReasonCode::InvalidField, i, expected))
    }

    fn bool(&self, i: usize) -> Result<bool, Rejection> {
        match self.node(i)? {
            Node::Static(StaticNode::Bool(b)) => Ok(*b),
            other => Err(self.wrong_type(i, "a boolean", other)),
        }
    }

    /// An integer in `min..=max`. JSON numbers with a zero fraction (`3.0`,
    /// `1e2`) are integers, as JSON Schema defines them.
    fn int(&self, i: usize, min: u64, max: u64) -> Result<u64, Rejection> {
        let node = self.node(i)?;
        let value: Option<i128> = match node {
            Node::Static(StaticNode::I64(v)) => Some(i128::from(*v)),
            Node::Static(StaticNode::U64(v)) => Some(i128::from(*v)),
            Node::Static(StaticNode::F64(f)) if f.is_finite() && f.fract() == 0.0 => {
                if *f < min as f64 || *f > max as f64 {
                    None
                } else {
                    Some(*f as i128)
                }
            }
            Node::Static(StaticNode::F64(_)) => return Err(self.wrong_type(i, "an integer", node)),
            other => return Err(self.wrong_type(i, "an integer", other)),
        };
        match value {
            Some(v) if v >= i128::from(min) && v <= i128::from(max) => Ok(v as u64),
            _ => Err(self.reject(
                ReasonCode::InvalidField,
                i,
                format!("must be an integer from {min} to {max}"),
            )),
        }
    }

    fn cents(&self, i: usize) -> Result<u64, Rejection> {
        self.int(i, 0, MAX_SAFE_INTEGER)
    }

    fn count32(&self, i: usize) -> Result<u32, Rejection> {
        self.int(i, 1, MAX_INT32).map(|v| v as u32)
    }
}

const ENVELOPE: &[&str; 7] = &[
    "schema_version",
    "event_type",
    "event_id",
    "occurred_at",
    "source",
    "correlation_id",
    "data",
];

/// Reads a parsed record (its tape) into a validated event.
pub(crate) fn read_event<'a>(nodes: &[Node<'a>]) -> Result<Event<'a>, Rejection> {
    read_event_located(nodes, &mut Locate::Scan)
}

/// [`read_event`], finding keys as `how` says.
fn read_event_located<'a>(
    nodes: &[Node<'a>],
    how: &mut Locate<'_>,
) -> Result<Event<'a>, Rejection> {
    match nodes.first() {
        Some(Node::Object { .. }) => {}
        Some(other) => {
            return Err(Rejection::record(
                ReasonCode::NotAnObject,
                format!("record is {}, not an object", type_name(other)),
            ));
        }
        None => return Err(Rejection::record(ReasonCode::MalformedJson, "empty record")),
    }
    let env = Fields::locate(nodes, ENVELOPE, Parent::Root, how);

    let version = match env.node(0)? {
        Node::Static(StaticNode::I64(1) | StaticNode::U64(1)) => 1,
        Node::Static(StaticNode::F64(f)) if *f == 1.0 => 1,
        Node::Static(StaticNode::I64(_) | StaticNode::U64(_)) => {
            return Err(env.reject(
                ReasonCode::UnsupportedSchemaVersion,
                0,
                "this pipeline reads schema_version 1",
            ));
        }
        Node::Static(StaticNode::F64(f)) if f.is_finite() && f.fract() == 0.0 => {
            return Err(env.reject(
                ReasonCode::UnsupportedSchemaVersion,
                0,
                "this pipeline reads schema_version 1",
            ));
        }
        other => return Err(env.wrong_type(0, "an integer", other)),
    };
    let type_name = env.str(1)?;
    let Some(event_type) = EventType::parse(type_name) else {
        return Err(env.reject(
            ReasonCode::UnknownEventType,
            1,
            format!("unknown event_type {:?}", truncate(type_name, 64)),
        ));
    };
    match how {
        Locate::Record(found) => found.event_type = Some(event_type),
        Locate::Replay(found, _) if found.event_type != Some(event_type) => *how = Locate::Scan,
        _ => {}
    }
    let event_id = env.uuid(2)?;
    let occurred = env.str(3)?;
    let Some(occurred_at_ms) = rules::parse_rfc3339_utc_ms(occurred) else {
        return Err(env.reject(
            ReasonCode::InvalidField,
            3,
            "not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z)",
        ));
    };
    let source = env.id(4)?;
    let correlation_id = env.uuid(5)?;
    match env.node(6)? {
        Node::Object { .. } => {}
        other => return Err(env.wrong_type(6, "an object", other)),
    }
    let data = read_data(event_type, env.sub(6), how)?;
    Ok(Event {
        event_id,
        schema_version: version,
        occurred_at_ms,
        source,
        correlation_id,
        data,
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

const SIGNED_UP: &[&str; 5] = &["user_id", "email", "country", "channel", "marketing_opt_in"];
const LOGGED_IN: &[&str; 3] = &["user_id", "method", "country"];
const PROFILE: &[&str; 2] = &["user_id", "changed_fields"];
const CREATED: &[&str; 6] = &[
    "order_id",
    "user_id",
    "country",
    "currency",
    "items",
    "total_cents",
];
const ITEM: &[&str; 3] = &["sku", "quantity", "unit_price_cents"];
const PAID: &[&str; 7] = &[
    "order_id",
    "user_id",
    "country",
    "payment_id",
    "amount_cents",
    "currency",
    "method",
];
const PAY_FAILED: &[&str; 7] = &[
    "order_id",
    "user_id",
    "country",
    "amount_cents",
    "currency",
    "method",
    "reason",
];
const FULFILLED: &[&str; 6] = &[
    "order_id",
    "user_id",
    "country",
    "warehouse",
    "carrier",
    "shipped_items",
];
const CANCELLED: &[&str; 4] = &["order_id", "user_id", "country", "reason"];

fn read_data<'a>(
    event_type: EventType,
    nodes: &[Node<'a>],
    how: &mut Locate<'_>,
) -> Result<EventData<'a>, Rejection> {
    Ok(match event_type {
        EventType::UserSignedUp => {
            let f = Fields::locate(nodes, SIGNED_UP, Parent::Data, how);
            let user_id = f.id(0)?;
            let email = f.str(1)?;
            if !rules::is_email(email) {
                return Err(f.reject(ReasonCode::InvalidField, 1, "not an e-mail address"));
            }
            EventData::UserSignedUp(UserSignedUp {
                user_id,
                email,
                country: f.country(2)?,
                channel: f.one_of(3, Channel::parse, Channel::EXPECTED)?,
                marketing_opt_in: f.bool(4)?,
            })
        }
        EventType::UserLoggedIn => {
            let f = Fields::locate(nodes, LOGGED_IN, Parent::Data, how);
            EventData::UserLoggedIn(UserLoggedIn {
                user_id: f.id(0)?,
                method: f.one_of(1, LoginMethod::parse, LoginMethod::EXPECTED)?,
                country: f.country(2)?,
            })
        }
        EventType::UserProfileUpdated => {
            let f = Fields::locate(nodes, PROFILE, Parent::Data, how);
            let user_id = f.id(0)?;
            let changed_fields = read_changed_fields(&f)?;
            EventData::UserProfileUpdated(UserProfileUpdated {
                user_id,
                changed_fields,
            })
        }
        EventType::OrderCreated => {
            let f = Fields::locate(nodes, CREATED, Parent::Data, how);
            let order_id = f.id(0)?;
            let user_id = f.id(1)?;
            let country = f.country(2)?;
            let currency = f.currency(3)?;
            let items = read_items(&f, how)?;
            let total_cents = f.cents(5)?;
            let sum: u128 = items
                .iter()
                .map(|i| u128::from(i.quantity) * u128::from(i.unit_price_cents))
                .sum();
            if sum != u128::from(total_cents) {
                return Err(f.reject(
                    ReasonCode::TotalMismatch,
                    5,
                    format!("total_cents is {total_cents} but the items add up to {sum}"),
                ));
            }
            EventData::OrderCreated(OrderCreated {
                order_id,
                user_id,
                country,
                currency,
                items,
                total_cents,
            })
        }
        EventType::OrderPaymentSucceeded => {
            let f = Fields::locate(nodes, PAID, Parent::Data, how);
            EventData::OrderPaymentSucceeded(OrderPaymentSucceeded {
                order_id: f.id(0)?,
                user_id: f.id(1)?,
                country: f.country(2)?,
                payment_id: f.id(3)?,
                amount_cents: f.cents(4)?,
                currency: f.currency(5)?,
                method: f.one_of(6, PaymentMethod::parse, PaymentMethod::EXPECTED)?,
            })
        }
        EventType::OrderPaymentFailed => {
            let f = Fields::locate(nodes, PAY_FAILED, Parent::Data, how);
            EventData::OrderPaymentFailed(OrderPaymentFailed {
                order_id: f.id(0)?,
                user_id: f.id(1)?,
                country: f.country(2)?,
                amount_cents: f.cents(3)?,
                currency: f.currency(4)?,
                method: f.one_of(5, PaymentMethod::parse, PaymentMethod::EXPECTED)?,
                reason: f.one_of(
                    6,
                    PaymentFailureReason::parse,
                    PaymentFailureReason::EXPECTED,
                )?,
            })
        }
        EventType::OrderFulfilled => {
            let f = Fields::locate(nodes, FULFILLED, Parent::Data, how);
            EventData::OrderFulfilled(OrderFulfilled {
                order_id: f.id(0)?,
                user_id: f.id(1)?,
                country: f.country(2)?,
                warehouse: f.id(3)?,
                carrier: f.id(4)?,
                shipped_items: f.count32(5)?,
            })
        }
        EventType::OrderCancelled => {
            let f = Fields::locate(nodes, CANCELLED, Parent::Data, how);
            EventData::OrderCancelled(OrderCancelled {
                order_id: f.id(0)?,
                user_id: f.id(1)?,
                country: f.country(2)?,
                reason: f.one_of(3, CancelReason::parse, CancelReason::EXPECTED)?,
            })
        }
    })
}

/// The elements of an array field: each element's sub-tape.
fn elements<'t, 'a>(array: &'t [Node<'a>]) -> impl Iterator<Item = &'t [Node<'a>]> {
    let len = match array.first() {
        Some(Node::Array { len, .. }) => *len,
        _ => 0,
    };
    let mut idx = 1;
    (0..len).map_while(move |_| {
        let node = array.get(idx)?;
        let w = width(node);
        let slice = array.get(idx..idx + w)?;
        idx += w;
        Some(slice)
    })
}

fn array_len<const N: usize>(
    f: &Fields<'_, '_, N>,
    i: usize,
    min: usize,
    max: usize,
) -> Result<usize, Rejection> {
    match f.node(i)? {
        Node::Array { len, .. } if (min..=max).contains(len) => Ok(*len),
        Node::Array { .. } => Err(f.reject(
            ReasonCode::InvalidField,
            i,
            format!("must have {min} to {max} entries"),
        )),
        other => Err(f.wrong_type(i, "an array", other)),
    }
}

fn read_items<'a>(
    f: &Fields<'_, 'a, 6>,
    how: &mut Locate<'_>,
) -> Result<Vec<LineItem<'a>>, Rejection> {
    let len = array_len(f, 4, 1, rules::MAX_ITEMS)?;
    let mut items = Vec::with_capacity(len);
    for (n, element) in elements(f.sub(4)).enumerate() {
        match element.first() {
            Some(Node::Object { .. }) => {}
            Some(other) => {
                return Err(Rejection::field(
                    ReasonCode::WrongType,
                    format!("/data/items/{n}"),
                    format!("expected an object, got {}", type_name(other)),
                ));
            }
            None => break,
        }
        let item = Fields::locate(element, ITEM, Parent::Item(n), how);
        items.push(LineItem {
            sku: item.text(0, MAX_SHORT_CHARS)?,
            quantity: item.count32(1)?,
            unit_price_cents: item.cents(2)?,
        });
    }
    Ok(items)
}

fn read_changed_fields<'a>(f: &Fields<'_, 'a, 2>) -> Result<Vec<&'a str>, Rejection> {
    let len = array_len(f, 1, 1, rules::MAX_CHANGED_FIELDS)?;
    let mut out = Vec::with_capacity(len);
    for (n, element) in elements(f.sub(1)).enumerate() {
        let path = || format!("/data/changed_fields/{n}");
        match element.first() {
            Some(Node::String(s)) if rules::has_char_len(s, MAX_SHORT_CHARS) => out.push(*s),
            Some(Node::String(_)) => {
                return Err(Rejection::field(
                    ReasonCode::InvalidField,
                    path(),
                    format!("must be 1 to {MAX_SHORT_CHARS} characters"),
                ));
            }
            Some(other) => {
                return Err(Rejection::field(
                    ReasonCode::WrongType,
                    path(),
                    format!("expected a string, got {}", type_name(other)),
                ));
            }
            None => break,
        }
    }
    Ok(out)
}
