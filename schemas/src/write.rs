//! Serialises events to contract JSON, for producers and the generator.
//!
//! Hand-written rather than serde: field order is fixed (stable bytes for
//! tests and fixtures) and the hot producers append to a reused buffer.

use crate::event::{Event, EventData, LineItem};
use crate::rules::format_rfc3339_ms;

/// Appends `s` as a JSON string literal (quotes included), escaped as
/// `serde_json` escapes it, so text written here and text serde writes
/// read the same and compare equal byte for byte.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    escape_json(s, |piece| out.extend_from_slice(piece.as_bytes()));
}

/// [`write_json_string`] into a `String`.
pub fn push_json_string(out: &mut String, s: &str) {
    escape_json(s, |piece| out.push_str(piece));
}

/// Hands `s` to `put` as a quoted JSON string, in pieces: runs of `s` that
/// need no escape, and escapes.
fn escape_json(s: &str, mut put: impl FnMut(&str)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    put("\"");
    let mut start = 0;
    for (i, &c) in s.as_bytes().iter().enumerate() {
        let short = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `c` is ASCII, so `i` is a character boundary
        put(&s[start..i]);
        if short.is_empty() {
            let unicode = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ];
            put(std::str::from_utf8(&unicode).unwrap_or_default());
        } else {
            put(short);
        }
        start = i + 1;
    }
    put(&s[start..]);
    put("\"");
}

struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> ObjectWriter<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, first: true }
    }
    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_json_string(self.out, k);
        self.out.push(b':');
        self.out
    }
    fn str(&mut self, k: &str, v: &str) {
        write_json_string(self.key(k), v);
    }
    fn u64(&mut self, k: &str, v: u64) {
        crate::rules::write_u64(self.key(k), v);
    }
    fn bool(&mut self, k: &str, v: bool) {
        let out = self.key(k);
        out.extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn end(self) {
        self.out.push(b'}');
    }
}

fn write_items(out: &mut Vec<u8>, items: &[LineItem<'_>]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut o = ObjectWriter::new(out);
        o.str("sku", item.sku);
        o.u64("quantity", u64::from(item.quantity));
        o.u64("unit_price_cents", item.unit_price_cents);
        o.end();
    }
    out.push(b']');
}

fn write_data(out: &mut Vec<u8>, data: &EventData<'_>) {
    let mut o = ObjectWriter::new(out);
    match data {
        EventData::UserSignedUp(d) => {
            o.str("user_id", d.user_id);
            o.str("email", d.email);
            o.str("country", d.country.as_str());
            o.str("channel", d.channel.as_str());
            o.bool("marketing_opt_in", d.marketing_opt_in);
        }
        EventData::UserLoggedIn(d) => {
            o.str("user_id", d.user_id);
            o.str("method", d.method.as_str());
            o.str("country", d.country.as_str());
        }
        EventData::UserProfileUpdated(d) => {
            o.str("user_id", d.user_id);
            let out = o.key("changed_fields");
            out.push(b'[');
            for (i, f) in d.changed_fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(out, f);
            }
            out.push(b']');
        }
        EventData::OrderCreated(d) => {
            o.str("order_id", d.order_id);
            o.str("user_id", d.user_id);
            o.str("country", d.country.as_str());
            o.str("currency", d.currency.as_str());
            write_items(o.key("items"), &d.items);
            o.u64("total_cents", d.total_cents);
        }
        EventData::OrderPaymentSucceeded(d) => {
            o.str("order_id", d.order_id);
            o.str("user_id", d.user_id);
            o.str("country", d.country.as_str());
            o.str("payment_id", d.payment_id);
            o.u64("amount_cents", d.amount_cents);
            o.str("currency", d.currency.as_str());
            o.str("method", d.method.as_str());
        }
        EventData::OrderPaymentFailed(d) => {
            o.str("order_id", d.order_id);
            o.str("user_id", d.user_id);
            o.str("country", d.country.as_str());
            o.u64("amount_cents", d.amount_cents);
            o.str("currency", d.currency.as_str());
            o.str("method", d.method.as_str());
            o.str("reason", d.reason.as_str());
        }
        EventData::OrderFulfilled(d) => {
            o.str("order_id", d.order_id);
            o.str("user_id", d.user_id);
            o.str("country", d.country.as_str());
            o.str("warehouse", d.warehouse);
            o.str("carrier", d.carrier);
            o.u64("shipped_items", u64::from(d.shipped_items));
        }
        EventData::OrderCancelled(d) => {
            o.str("order_id", d.order_id);
            o.str("user_id", d.user_id);
            o.str("country", d.country.as_str());
            o.str("reason", d.reason.as_str());
        }
    }
    o.end();
}

impl Event<'_> {
    /// Appends this event as one contract-v1 JSON object (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = ObjectWriter::new(out);
        o.str("event_id", self.event_id);
        o.str("event_type", self.event_type().as_str());
        o.u64("schema_version", u64::from(self.schema_version));
        let ts = o.key("occurred_at");
        ts.push(b'"');
        format_rfc3339_ms(self.occurred_at_ms, ts);
        ts.push(b'"');
        o.str("source", self.source);
        o.str("correlation_id", self.correlation_id);
        write_data(o.key("data"), &self.data);
        o.end();
    }

    /// The event as a JSON byte vector.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        self.write_json(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#""a\"b\\c\nd\u0001é""#
        );
    }

    /// Every ASCII character, alone and between other text, and non-ASCII
    /// text: escaped exactly as `serde_json` escapes it, by both writers.
    #[test]
    fn escapes_as_serde_json_does() {
        let mut texts: Vec<String> = (0u8..0x80).map(|c| char::from(c).to_string()).collect();
        texts.push((0u8..0x80).map(char::from).collect());
        texts.push("é\u{7f}\u{1}ü\"€\u{8}\u{c}x".to_owned());
        texts.push(String::new());
        for text in &texts {
            let expected = serde_json::to_string(text).expect("a string");
            let mut bytes = Vec::new();
            write_json_string(&mut bytes, text);
            assert_eq!(String::from_utf8(bytes).expect("utf8"), expected);
            let mut string = String::new();
            push_json_string(&mut string, text);
            assert_eq!(string, expected);
        }
    }
}
