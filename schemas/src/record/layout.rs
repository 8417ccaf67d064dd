//! An event's layout, learnt from the events before it, that turns its bytes
//! into simd-json's tape without simd-json.
//!
//! A producer's serializer writes every event of a type the same way: the
//! same keys in the same order, the same spacing, the same nesting; only the
//! values change, and most are short ASCII strings and small integers. For
//! such an event, simd-json's two stages (finding every structural byte, then
//! walking them) and its string copies are most of the cost of reading it.
//! A layout keeps the bytes between the values (the glue: keys, quotes,
//! colons, commas, brackets) as one accepted event had them, and reads the
//! next event by comparing glue and scanning only the values. The tape it
//! writes is the one simd-json would have written, node for node, so
//! [`super::read_event`] (every rule of the contract) runs unchanged on it.
//!
//! A layout decides how fast, never what. It reads only what it can read
//! exactly as simd-json does: string values of printable ASCII without
//! escapes, integers from 0 to 18 digits without sign, `true` and `false`;
//! `null` and every key are glue. Anything else (an escape, non-ASCII text, a
//! negative or fractional number, another key order, an array of another
//! length) does not fit, and the event is parsed by simd-json, with the same
//! result and the same errors. A layout is kept only after the tape it writes
//! for the event it was learnt from has been compared with simd-json's.
//!
//! Event types and array lengths give an invocation a few dozen layouts. They
//! are kept sorted, each noting how many steps it shares with the one before
//! it, so that trying them is a walk of the trie they form: steps that the
//! previous layout passed are not read again, and a layout that shares the
//! step where the previous one failed is skipped without reading anything.

use std::cmp::Ordering;
use std::ops::Range;

use simd_json::{Node, StaticNode};

use super::Located;
use crate::envelope::plain_string_len;
use crate::rules::digits;

/// What [`Layouts::located`] gives for a layout it does not hold.
static NOTHING_LOCATED: Located = Located {
    event_type: None,
    at: Vec::new(),
};

/// What a layout reads after a stretch of glue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// A string body of printable ASCII without escapes, up to its quote.
    Str,
    /// A JSON integer from 0 to 18 digits, no sign (simd-json's `U64`).
    Uint,
    /// `true` or `false`.
    Bool,
    /// Nothing: the glue closes the event.
    End,
}

/// One step of a layout: glue, then a value.
#[derive(Clone, Debug)]
struct Step {
    /// The glue's bytes in the layout's `glue`.
    glue: Range<u32>,
    value: Value,
}

/// The layout of one event shape.
#[derive(Debug)]
struct Layout {
    glue: Vec<u8>,
    steps: Vec<Step>,
    /// The tape of the event it was learnt from; keys and values are
    /// replaced by each event's own (headers and `null`s are the same for
    /// every event that fits).
    tape: Vec<Node<'static>>,
    /// Keys: tape index, then `len` bytes `from` bytes into step `step`.
    keys: Vec<Key>,
    /// Values: where each goes in the tape and which step reads it.
    values: Vec<Slot>,
    /// Leading steps equal to those of the layout before it in the list.
    shared: usize,
    /// Events read by this layout since the budgets were last renewed.
    hits: u32,
    /// Where the contract's reader found each key it looked for, in the
    /// order it looked (see [`super::Locate`]): the same for every event
    /// that fits, recorded once from the event it was learnt from.
    located: Located,
}

/// A value of a layout: its tape index, the step that reads it, that
/// step's glue length and what it reads, together so that writing a tape
/// loads one record a value.
#[derive(Clone, Copy, Debug)]
struct Slot {
    node: u16,
    step: u16,
    glue: u16,
    value: Value,
}

#[derive(Clone, Copy, Debug)]
struct Key {
    node: u16,
    step: u16,
    from: u16,
    len: u16,
}

/// Layouts a parser keeps; learning stops when it holds this many, until a
/// renewal drops those that read nothing.
const MAX_LAYOUTS: usize = 64;

/// Learning attempts a parser may make between renewals: an event that
/// fits no layout is learnt from, once simd-json and the contract accept it.
const LEARNS: u16 = 256;

/// Events between renewals of the learning budget.
const RENEWAL: u32 = 1 << 16;

/// The learnt tape's node for a key or value: `write_tape` sets it to each
/// event's own (`keys` and `values` say where), so the learnt event's
/// strings are not kept.
const PER_EVENT: Node<'static> = Node::Static(StaticNode::Null);

/// Nesting a layout describes; deeper events are parsed by simd-json.
const MAX_DEPTH: usize = 16;

/// The largest event a layout is learnt from. Events are a few hundred
/// bytes; a record may be up to a megabyte, and 64 layouts of that size
/// would hold 64 MB of glue and tape.
const MAX_LEARNT_BYTES: usize = 4096;

/// The layouts of one parser (one thread), kept across invocations.
#[derive(Debug)]
pub(super) struct Layouts {
    /// Sorted by steps (see [`order`]), so that shared prefixes are adjacent.
    list: Vec<Layout>,
    /// Where each step of the layout being tried starts in the event; one
    /// more entry for the end.
    at: Vec<usize>,
    learns_left: u16,
    until_renewal: u32,
    /// Events read by a layout (tests count them).
    pub(super) fits: u64,
}

impl Layouts {
    pub(super) fn new() -> Self {
        Layouts {
            list: Vec::new(),
            at: vec![0],
            learns_left: LEARNS,
            until_renewal: RENEWAL,
            fits: 0,
        }
    }

    /// Whether an event of `len` bytes that fits nothing should be learnt
    /// from.
    pub(super) fn learning(&self, len: usize) -> bool {
        self.learns_left > 0 && self.list.len() < MAX_LAYOUTS && len <= MAX_LEARNT_BYTES
    }

    /// The layout the event `b` fits, if any; its steps' positions are left
    /// in `self.at` for [`Layouts::write`].
    pub(super) fn fit(&mut self, b: &[u8]) -> Option<usize> {
        self.until_renewal -= 1;
        if self.until_renewal == 0 {
            self.renew();
        }
        let at = &mut self.at;
        // steps the previous layout passed before it failed
        let mut passed = 0;
        for (i, layout) in self.list.iter_mut().enumerate() {
            if layout.shared > passed {
                // it shares the step the previous one failed at
                continue;
            }
            let k = layout.walk(b, at, layout.shared);
            if layout.read_all(b, at, k) {
                layout.hits += 1;
                self.fits += 1;
                return Some(i);
            }
            passed = k;
        }
        None
    }

    /// Writes the tape of the event `s` that layout `i` fitted (after
    /// [`Layouts::fit`] returned `i` for the same bytes). `None` only if the
    /// positions do not fit `s`, which `fit` rules out.
    ///
    ///
    /// The keys are left out (their nodes `null`; [`Layouts::write_keys`]
    /// adds them): the contract's reader replays where they are for events
    /// of the type the layout was learnt from (see [`super::Locate`]) and
    /// reads no key; slicing each event's keys out of it was a fifth of
    /// writing its tape.
    pub(super) fn write<'a>(&self, i: usize, s: &'a str, tape: &mut Vec<Node<'a>>) -> Option<()> {
        write_tape(self.list.get(i)?, &self.at, s, tape)
    }

    /// Adds the keys to a tape [`Layouts::write`] wrote without them.
    pub(super) fn write_keys<'a>(&self, i: usize, s: &'a str, tape: &mut [Node<'a>]) -> Option<()> {
        write_keys(self.list.get(i)?, &self.at, s, tape)
    }

    /// Where the contract's reader finds the keys of an event layout `i`
    /// fitted (empty if it was not recorded).
    pub(super) fn located(&self, i: usize) -> &Located {
        self.list.get(i).map_or(&NOTHING_LOCATED, |l| &l.located)
    }

    /// Adds a layout learnt from `event` if the tape it writes for `event`
    /// equals `tape`, simd-json's. Returns whether it was added. `located`:
    /// where the contract's reader found the keys in `tape`.
    pub(super) fn learn(&mut self, event: &[u8], tape: &[Node<'_>], located: Located) -> bool {
        self.learns_left = self.learns_left.saturating_sub(1);
        let Some(mut layout) = learn(event) else {
            return false;
        };
        layout.located = located;
        let mut at = vec![0; layout.steps.len() + 1];
        let k = layout.walk(event, &mut at, 0);
        let mut written = Vec::with_capacity(tape.len());
        let agrees = layout.read_all(event, &at, k)
            && std::str::from_utf8(event)
                .ok()
                .and_then(|s| {
                    write_tape(&layout, &at, s, &mut written)?;
                    write_keys(&layout, &at, s, &mut written)
                })
                .is_some()
            && written.as_slice() == tape;
        if agrees {
            self.insert(layout);
        }
        agrees
    }

    fn insert(&mut self, mut layout: Layout) {
        let i = match self.list.binary_search_by(|l| order(l, &layout)) {
            Ok(_) => return,
            Err(i) => i,
        };
        layout.shared = i
            .checked_sub(1)
            .map_or(0, |p| shared(&self.list[p], &layout));
        if self.at.len() < layout.steps.len() + 1 {
            self.at.resize(layout.steps.len() + 1, 0);
        }
        self.list.insert(i, layout);
        if i + 1 < self.list.len() {
            self.list[i + 1].shared = shared(&self.list[i], &self.list[i + 1]);
        }
    }

    /// Renews the learning budget, and drops the layouts that read nothing
    /// since the last renewal (the producers changed) so that new shapes
    /// can be learnt.
    fn renew(&mut self) {
        self.until_renewal = RENEWAL;
        self.learns_left = LEARNS;
        self.list.retain(|l| l.hits > 0);
        for i in 0..self.list.len() {
            let shared_before = i
                .checked_sub(1)
                .map_or(0, |p| shared(&self.list[p], &self.list[i]));
            let layout = &mut self.list[i];
            layout.shared = shared_before;
            layout.hits = 0;
        }
    }
}

impl Layout {
    fn glue(&self, step: &Step) -> &[u8] {
        self.glue
            .get(step.glue.start as usize..step.glue.end as usize)
            .unwrap_or(&[])
    }

    /// Reads the steps of `b` from step `from` on (whose start is `at[from]`),
    /// noting where each next one starts; how many steps were read before one
    /// failed (all of them if none did).
    #[inline(always)]
    fn walk(&self, b: &[u8], at: &mut [usize], from: usize) -> usize {
        let mut k = from;
        while let (Some(step), Some(&start)) = (self.steps.get(k), at.get(k)) {
            match (self.read(step, b, start), at.get_mut(k + 1)) {
                (Some(end), Some(next)) => *next = end,
                _ => break,
            }
            k += 1;
        }
        k
    }

    /// Whether [`Layout::walk`], having read `k` steps, read the whole of
    /// `b`: every step, and nothing left after the last.
    fn read_all(&self, b: &[u8], at: &[usize], k: usize) -> bool {
        k == self.steps.len() && at.get(k) == Some(&b.len())
    }

    /// Reads `step` at `b[at..]`: its glue, then its value; the end of what
    /// it read.
    #[inline(always)]
    fn read(&self, step: &Step, b: &[u8], at: usize) -> Option<usize> {
        let glue = self.glue(step);
        let value_at = at + glue.len();
        if !same_bytes(b.get(at..value_at)?, glue) {
            return None;
        }
        let rest = b.get(value_at..)?;
        // branches rather than a jump table: strings are most values, and
        // an indirect jump per step was mispredicted
        let len = if step.value == Value::Str {
            plain_string_len(rest)?
        } else if step.value == Value::Uint {
            uint_len(rest)?
        } else if step.value == Value::Bool {
            bool_len(rest)?
        } else {
            0
        };
        Some(value_at + len)
    }
}

/// The tape of the event `s` read by `layout` with its steps at `at`.
fn write_tape<'a>(
    layout: &Layout,
    at: &[usize],
    s: &'a str,
    tape: &mut Vec<Node<'a>>,
) -> Option<()> {
    tape.clear();
    tape.extend_from_slice(&layout.tape);
    for slot in &layout.values {
        let k = usize::from(slot.step);
        let start = at.get(k)? + usize::from(slot.glue);
        let value = s.get(start..*at.get(k + 1)?)?;
        *tape.get_mut(usize::from(slot.node))? = if slot.value == Value::Str {
            Node::String(value)
        } else if slot.value == Value::Uint {
            // at most 18 digits, as `uint_len` read them: no overflow
            if value.len() > 18 {
                return None;
            }
            Node::Static(StaticNode::U64(
                u64::try_from(digits(value.as_bytes())?).ok()?,
            ))
        } else {
            Node::Static(StaticNode::Bool(value == "true"))
        };
    }
    Some(())
}

/// The keys of the event `s` that `layout` read with its steps at `at`,
/// into the tape [`write_tape`] wrote for it.
fn write_keys<'a>(layout: &Layout, at: &[usize], s: &'a str, tape: &mut [Node<'a>]) -> Option<()> {
    for key in &layout.keys {
        let start = at.get(key.step as usize)? + key.from as usize;
        *tape.get_mut(key.node as usize)? = Node::String(s.get(start..start + key.len as usize)?);
    }
    Some(())
}

/// `a == b`, inlined: glue and keys are mostly 5 to 25 bytes, too short to
/// pay for a call to `memcmp` (which was 9% of the aggregator when every
/// glue comparison called it).
#[inline(always)]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
    fn half(s: &[u8], at: usize) -> u32 {
        s.get(at..at + 4)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        // the last eight, overlapping the word before
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// The integer at the start of `b`: `0`, or up to 18 digits not starting
/// with `0` (a value simd-json reads as a `U64`). What follows must be glue,
/// so a longer number, a fraction or an exponent does not fit.
#[inline(always)]
fn uint_len(b: &[u8]) -> Option<usize> {
    match b.first()? {
        b'0' => Some(1),
        b'1'..=b'9' => Some(
            1 + b[1..]
                .iter()
                .take(17)
                .take_while(|c| c.is_ascii_digit())
                .count(),
        ),
        _ => None,
    }
}

#[inline(always)]
fn bool_len(b: &[u8]) -> Option<usize> {
    if b.starts_with(b"true") {
        Some(4)
    } else if b.starts_with(b"false") {
        Some(5)
    } else {
        None
    }
}

/// The order layouts are kept in: step by step, glue by its bytes, then the
/// value. Any total order would do; what matters is that layouts sharing a
/// prefix of steps are adjacent.
fn order(a: &Layout, b: &Layout) -> Ordering {
    for (x, y) in a.steps.iter().zip(&b.steps) {
        let o = a.glue(x).cmp(b.glue(y)).then(x.value.cmp(&y.value));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.steps.len().cmp(&b.steps.len())
}

/// How many leading steps `a` and `b` have in common.
fn shared(a: &Layout, b: &Layout) -> usize {
    a.steps
        .iter()
        .zip(&b.steps)
        .take_while(|(x, y)| x.value == y.value && a.glue(x) == b.glue(y))
        .count()
}

/// Learns the layout of the event `b`. `None` for an event a layout cannot
/// describe (see the module's documentation) or that is not JSON; it does
/// not judge the event: simd-json and the contract do, and the caller keeps
/// the layout only if they accept the event and the tapes agree.
fn learn(b: &[u8]) -> Option<Layout> {
    if b.len() > MAX_LEARNT_BYTES {
        return None;
    }
    let mut l = Learner {
        b,
        at: 0,
        glue_from: 0,
        layout: Layout {
            glue: Vec::with_capacity(b.len()),
            steps: Vec::with_capacity(32),
            tape: Vec::with_capacity(64),
            keys: Vec::with_capacity(32),
            values: Vec::with_capacity(32),
            shared: 0,
            hits: 0,
            located: Located::default(),
        },
    };
    l.space();
    l.value(0)?;
    l.space();
    if l.at != b.len() {
        return None;
    }
    l.step(Value::End)?;
    u16::try_from(l.layout.tape.len()).ok()?;
    Some(l.layout)
}

struct Learner<'b> {
    b: &'b [u8],
    at: usize,
    /// Where the glue being gathered starts.
    glue_from: usize,
    layout: Layout,
}

impl Learner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The tape index of the next node.
    fn node(&self) -> Option<u16> {
        u16::try_from(self.layout.tape.len()).ok()
    }

    /// Ends the glue gathered so far with a step reading `value` here.
    fn step(&mut self, value: Value) -> Option<u16> {
        let start = u32::try_from(self.layout.glue.len()).ok()?;
        self.layout
            .glue
            .extend_from_slice(self.b.get(self.glue_from..self.at)?);
        let end = u32::try_from(self.layout.glue.len()).ok()?;
        let step = u16::try_from(self.layout.steps.len()).ok()?;
        self.layout.steps.push(Step {
            glue: start..end,
            value,
        });
        Some(step)
    }

    /// A value read by a step, `len` bytes here.
    fn slot(&mut self, value: Value, len: usize) -> Option<()> {
        let step = self.step(value)?;
        let node = self.node()?;
        let glue = self.layout.steps.last()?.glue.len();
        self.layout.values.push(Slot {
            node,
            step,
            glue: u16::try_from(glue).ok()?,
            value,
        });
        self.layout.tape.push(PER_EVENT);
        self.at += len;
        self.glue_from = self.at;
        Some(())
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let rest = self.b.get(self.at..)?;
        match *rest.first()? {
            b'{' => self.container(depth, b'}'),
            b'[' => self.container(depth, b']'),
            b'"' => {
                self.at += 1;
                let len = plain_string_len(self.b.get(self.at..)?)?;
                self.slot(Value::Str, len)?;
                // the closing quote starts the next glue
                self.at += 1;
                Some(())
            }
            b't' | b'f' => self.slot(Value::Bool, bool_len(rest)?),
            b'0'..=b'9' => self.slot(Value::Uint, uint_len(rest)?),
            b'n' if rest.starts_with(b"null") => {
                self.at += 4;
                self.layout.tape.push(Node::Static(StaticNode::Null));
                Some(())
            }
            _ => None,
        }
    }

    /// An object (`close` is `}`) or an array (`]`): its header, then its
    /// members.
    fn container(&mut self, depth: usize, close: u8) -> Option<()> {
        let header = self.layout.tape.len();
        // set once the members are counted
        self.layout.tape.push(Node::Static(StaticNode::Null));
        self.at += 1;
        self.space();
        let mut len = 0;
        if self.peek()? == close {
            self.at += 1;
        } else {
            loop {
                self.space();
                if close == b'}' {
                    self.key()?;
                }
                self.value(depth + 1)?;
                len += 1;
                self.space();
                match self.peek()? {
                    b',' => self.at += 1,
                    c if c == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let count = self.layout.tape.len() - header - 1;
        self.layout.tape[header] = if close == b'}' {
            Node::Object { len, count }
        } else {
            Node::Array { len, count }
        };
        Some(())
    }

    /// A key and its colon: glue, but the tape holds each event's own.
    fn key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        let key = plain_string_len(self.b.get(self.at..)?)?;
        // the key lies in the glue of the step that reads the next value
        self.layout.keys.push(Key {
            node: self.node()?,
            step: u16::try_from(self.layout.steps.len()).ok()?,
            from: u16::try_from(self.at - self.glue_from).ok()?,
            len: u16::try_from(key).ok()?,
        });
        self.layout.tape.push(PER_EVENT);
        self.at += key + 1;
        self.space();
        self.expect(b':')?;
        self.space();
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::layouts_agree;

    /// One event of each type, as the generator's serializer writes them.
    const EVENTS: [&str; 8] = [
        r#"{"event_id":"8374477f-7b34-4d8e-9266-a87f474120fe","event_type":"user.signed_up","schema_version":1,"occurred_at":"2026-11-25T12:00:00.009Z","source":"users.sign-up","correlation_id":"c648401f-7bc7-4d2a-b55d-0330b4ed4508","data":{"user_id":"usr_c8084559b4e5","email":"usr.c8084559b4e5@example.com","country":"US","channel":"ios","marketing_opt_in":false}}"#,
        r#"{"event_id":"92124789-610f-417a-9ed8-ad8d22da7adc","event_type":"user.logged_in","schema_version":1,"occurred_at":"2026-11-25T12:00:00.109Z","source":"users.log-in","correlation_id":"d987fb3f-edb8-485f-ae88-4a3713438231","data":{"user_id":"usr_81e9992d5bdb","method":"magic_link","country":"FR"}}"#,
        r#"{"event_id":"d168c8a7-0d74-4a68-a9dd-a10e0702f480","event_type":"order.created","schema_version":1,"occurred_at":"2026-11-25T12:00:00.116Z","source":"orders.create-order","correlation_id":"60d55888-f2b1-42e1-8ed3-f7af1a0c5db9","data":{"order_id":"ord_8c6d9b80981f1aa0","user_id":"usr_10864fea20d6","country":"NL","currency":"EUR","items":[{"sku":"SKU-00037","quantity":1,"unit_price_cents":6499}],"total_cents":6499}}"#,
        r#"{"event_id":"1482e570-78d5-4bc0-a879-b7d987d74bcc","event_type":"user.profile_updated","schema_version":1,"occurred_at":"2026-11-25T12:00:00.129Z","source":"users.update-profile","correlation_id":"de013bbb-689e-47dc-8c09-60ced3333504","data":{"user_id":"usr_48c5f629f0a2","changed_fields":["language"]}}"#,
        r#"{"event_id":"8f54ef2d-68c4-4ea6-aad4-fa815061bf10","event_type":"order.cancelled","schema_version":1,"occurred_at":"2026-11-25T12:00:00.138Z","source":"orders.cancel-order","correlation_id":"a3b90d12-4360-497a-831f-adb440bd62f8","data":{"order_id":"ord_b1d2ebf95592d8de","user_id":"usr_87bbbcbbe7ae","country":"IN","reason":"customer_request"}}"#,
        r#"{"event_id":"b8e78744-f864-48fc-976b-fac55b392834","event_type":"order.payment_succeeded","schema_version":1,"occurred_at":"2026-11-25T12:00:00.159Z","source":"orders.pay-order","correlation_id":"fd98429b-306a-407e-b5d8-c53fa8df45db","data":{"order_id":"ord_b92ea2062ba9aca9","user_id":"usr_87bbbcbbe7ae","country":"IN","payment_id":"pay_96c45bf458e3b00a","amount_cents":59997,"currency":"INR","method":"card"}}"#,
        r#"{"event_id":"1be5ef30-a9dc-48fb-8420-9671d74c0b33","event_type":"order.fulfilled","schema_version":1,"occurred_at":"2026-11-25T12:00:00.166Z","source":"orders.fulfil-order","correlation_id":"730197b7-51c9-4251-b9c4-52d85e5f5126","data":{"order_id":"ord_b92ea2062ba9aca9","user_id":"usr_87bbbcbbe7ae","country":"IN","warehouse":"iad-1","carrier":"ups","shipped_items":3}}"#,
        r#"{"event_id":"2d77fee7-ccd5-47c3-9771-7bbded96242e","event_type":"order.payment_failed","schema_version":1,"occurred_at":"2026-11-25T12:00:00.446Z","source":"orders.pay-order","correlation_id":"a6575749-e139-456a-8cef-c850b933dcd1","data":{"order_id":"ord_7e8a9fad8079191a","user_id":"usr_5c1d911f39b5","country":"US","amount_cents":13399,"currency":"USD","method":"card","reason":"card_declined"}}"#,
    ];

    /// Each event, then the same events with other values in every slot.
    fn twice() -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = EVENTS.iter().map(|e| e.as_bytes().to_vec()).collect();
        for e in EVENTS {
            all.push(
                e.replace("2026-11-25T12", "2026-11-26T13")
                    .replace("\"country\":\"", "\"country\":\"D")
                    .replace("\"DUS\"", "\"DE\"")
                    .replace("\"DFR\"", "\"DK\"")
                    .replace("\"DNL\"", "\"DZ\"")
                    .replace("\"DIN\"", "\"DM\"")
                    .replace("false", "true")
                    .replace(":1,", ":7,")
                    .into_bytes(),
            );
        }
        all
    }

    fn agree(records: &[Vec<u8>]) -> (bool, u64) {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        layouts_agree(&refs)
    }

    #[test]
    fn events_of_a_learnt_shape_are_read_by_their_layout() {
        let (same, fits) = agree(&twice());
        assert!(same);
        // the first of each type is learnt from, the second fits
        assert_eq!(fits, EVENTS.len() as u64);
    }

    #[test]
    fn an_event_of_another_type_with_the_same_keys_is_read_by_its_own_keys() {
        // a payment that failed, written with a successful payment's keys
        // (payment_id, no reason), fits the successful payment's layout; its
        // own type's keys must be looked for (so /data/reason is missing),
        // not those recorded for the layout's
        let paid = EVENTS[5];
        let odd = paid.replace("order.payment_succeeded", "order.payment_failed");
        let records = [paid.as_bytes().to_vec(), odd.clone().into_bytes()];
        let (same, fits) = agree(&records);
        assert!(same);
        assert_eq!(fits, 1);
        let mut parser = super::super::RecordParser::new();
        for r in &records {
            let mut padded = r.clone();
            padded.resize(r.len() + super::super::RECORD_PADDING, b' ');
            let out = parser.parse_padded(&mut padded, r.len());
            if r.as_slice() == odd.as_bytes() {
                let err = out.expect_err("no reason");
                assert_eq!(err.path.as_deref(), Some("/data/reason"));
            }
        }
    }

    #[test]
    fn a_layout_writes_simd_jsons_tape() {
        let e = EVENTS[2].as_bytes();
        let layout = learn(e).expect("a layout");
        // keys and structure are glue; each scalar value is a step
        assert_eq!(layout.values.len(), 14);
        assert_eq!(layout.steps.len(), 15);
        let mut buf = e.to_vec();
        let tape = simd_json::to_tape(&mut buf).expect("JSON");
        let mut layouts = Layouts::new();
        assert!(layouts.learn(e, &tape.0, Located::default()));
        // another quantity and another event id
        let mut other = EVENTS[2].replace(":1,", ":27,").into_bytes();
        other[14] = b'a';
        let i = layouts.fit(&other).expect("fits");
        let text = std::str::from_utf8(&other).expect("text");
        let mut written = Vec::new();
        layouts.write(i, text, &mut written).expect("written");
        let bare = written.clone();
        layouts
            .write_keys(i, text, &mut written)
            .expect("keys written");
        let mut copy = other.clone();
        let expected = simd_json::to_tape(&mut copy).expect("JSON");
        assert_eq!(written, expected.0);
        // without its keys: the same tape, `null` where each key was
        let keys = expected.0.iter().zip(&bare).filter(|(a, b)| a != b);
        assert!(keys.clone().count() > 10);
        for (full, left_out) in keys {
            assert!(matches!(full, Node::String(_)), "{full:?}");
            assert_eq!(*left_out, Node::Static(StaticNode::Null));
        }
    }

    #[test]
    fn what_a_layout_cannot_read_exactly_is_not_learnt() {
        for text in [
            r#"{"a":"\u00e9"}"#,
            r#"{"a":"é"}"#,
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1234567890123456789}"#,
            r#"{"a":"tab	"}"#,
            r#"{"a\"b":1}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":[1,]}"#,
            r#"{"a":tru}"#,
            "",
        ] {
            assert!(learn(text.as_bytes()).is_none(), "learnt {text:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(learn(deep.as_bytes()).is_none());
        for text in [
            r#" { "a" : [ null , true , 0 , "" , { } , [ ] ] } "#,
            "7",
            r#""s""#,
        ] {
            assert!(learn(text.as_bytes()).is_some(), "not learnt {text:?}");
        }
    }

    #[test]
    fn values_a_layout_cannot_read_exactly_go_to_simd_json() {
        let mut records = twice();
        let base = EVENTS[6];
        for (from, to) in [
            ("\"shipped_items\":3", "\"shipped_items\":-3"),
            ("\"shipped_items\":3", "\"shipped_items\":3.0"),
            (
                "\"shipped_items\":3",
                "\"shipped_items\":30000000000000000000",
            ),
            ("\"shipped_items\":3", "\"shipped_items\":03"),
            ("\"shipped_items\":3", "\"shipped_items\":\"3\""),
            ("\"shipped_items\":3", "\"shipped_items\":null"),
            ("\"carrier\":\"ups\"", "\"carrier\":\"u\\u0070s\""),
            ("\"carrier\":\"ups\"", "\"carrier\":\"upé\""),
            ("\"carrier\":\"ups\"", "\"carrier\":\"u\\\"s\""),
            ("\"carrier\":\"ups\"", "\"carrier\":\"\""),
            ("\"carrier\":\"ups\"", "\"carrier\": \"ups\""),
            (
                "\"carrier\":\"ups\"",
                "\"carrier\":\"ups\",\"carrier\":\"dhl\"",
            ),
            ("\"schema_version\":1", "\"schema_version\":2"),
            ("{\"event_id\"", " {\"event_id\""),
        ] {
            assert!(base.contains(from));
            records.push(base.replace(from, to).into_bytes());
        }
        let (same, fits) = agree(&records);
        assert!(same);
        // the second round of the eight, "carrier":"" (an empty value), and
        // "schema_version":2 (still the layout's shape)
        assert_eq!(fits, EVENTS.len() as u64 + 2);
    }

    #[test]
    fn every_corruption_and_cut_reads_the_same_by_layout_as_in_full() {
        let mut records = twice();
        let base = records.len();
        for (i, event) in EVENTS.iter().enumerate().filter(|(i, _)| i % 3 != 1) {
            for at in 0..event.len() {
                for bad in [
                    b'"', b'\\', b'{', b']', b':', b',', b' ', b'0', b'9', b'-', b'.', b'e', b't',
                    0x01, 0xc3, 0xff,
                ] {
                    let mut b = event.as_bytes().to_vec();
                    b[at] = bad;
                    records.push(b);
                }
            }
            for cut in 0..event.len() {
                records.push(event.as_bytes()[..cut].to_vec());
            }
            let _ = i;
        }
        assert!(records.len() > base + 10_000);
        let (same, fits) = agree(&records);
        assert!(same);
        assert!(fits > 1_000, "only {fits} read by a layout");
    }

    #[test]
    fn layouts_sharing_steps_are_kept_adjacent_and_tried_in_order() {
        let mut layouts = Layouts::new();
        for e in EVENTS {
            let mut buf = e.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut buf).expect("JSON");
            assert!(layouts.learn(e.as_bytes(), &tape.0, Located::default()));
        }
        assert_eq!(layouts.list.len(), EVENTS.len());
        for pair in layouts.list.windows(2) {
            assert_eq!(order(&pair[0], &pair[1]), Ordering::Less);
            assert_eq!(pair[1].shared, shared(&pair[0], &pair[1]));
        }
        // every event fits its own layout, whatever was tried before it
        for e in EVENTS {
            let i = layouts.fit(e.as_bytes()).expect("fits");
            assert_eq!(
                shared(&layouts.list[i], &learn(e.as_bytes()).expect("a layout")),
                layouts.list[i].steps.len()
            );
        }
    }

    #[test]
    fn large_events_are_not_learnt_from() {
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_LEARNT_BYTES));
        assert!(learn(big.as_bytes()).is_none());
        assert!(!Layouts::new().learning(big.len()));
        let (same, fits) = agree(&[big.clone().into_bytes(), big.into_bytes()]);
        assert!(same);
        assert_eq!(fits, 0);
    }

    #[test]
    fn glue_comparison_sees_every_byte() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(same_bytes(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{n} bytes, differing at {at}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn layouts_that_read_nothing_make_room_at_renewal() {
        let mut layouts = Layouts::new();
        for e in &EVENTS[..2] {
            let mut buf = e.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut buf).expect("JSON");
            assert!(layouts.learn(e.as_bytes(), &tape.0, Located::default()));
        }
        for _ in 0..RENEWAL - 1 {
            assert!(layouts.fit(EVENTS[1].as_bytes()).is_some());
        }
        assert_eq!(layouts.list.len(), 2);
        // this fit renews first: the layout of EVENTS[0] read nothing
        assert!(layouts.fit(EVENTS[1].as_bytes()).is_some());
        assert_eq!(layouts.list.len(), 1);
        assert_eq!(layouts.list[0].shared, 0);
        assert!(layouts.fit(EVENTS[0].as_bytes()).is_none());
    }
}
