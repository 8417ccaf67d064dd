//! Stable reason codes for rejected records.
//!
//! Dead-letter messages, metrics and dashboards key on these strings, so they
//! never change once released; new codes may be added.

use std::borrow::Cow;
use std::fmt;

/// Why a record was rejected. The string form (`as_str`) is the stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// `kinesis.data` is not valid base64.
    InvalidBase64,
    /// The decoded record is larger than the configured limit.
    RecordTooLarge,
    /// The record bytes are not UTF-8.
    InvalidUtf8,
    /// The record is not parseable JSON (truncated, garbage, empty).
    MalformedJson,
    /// The record is JSON but not an object.
    NotAnObject,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (e.g. a number where a string belongs).
    WrongType,
    /// A field has the right type but breaks a rule (format, range, enum).
    InvalidField,
    /// `event_type` is not one of the contract's types.
    UnknownEventType,
    /// `schema_version` is an integer the pipeline does not know.
    UnsupportedSchemaVersion,
    /// `order.created` whose `total_cents` is not the sum of its items.
    TotalMismatch,
}

impl ReasonCode {
    /// Every code, in a stable order (used by reports and tests).
    pub const ALL: [ReasonCode; 11] = [
        ReasonCode::InvalidBase64,
        ReasonCode::RecordTooLarge,
        ReasonCode::InvalidUtf8,
        ReasonCode::MalformedJson,
        ReasonCode::NotAnObject,
        ReasonCode::MissingField,
        ReasonCode::WrongType,
        ReasonCode::InvalidField,
        ReasonCode::UnknownEventType,
        ReasonCode::UnsupportedSchemaVersion,
        ReasonCode::TotalMismatch,
    ];

    /// The stable snake_case code.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::InvalidBase64 => "invalid_base64",
            ReasonCode::RecordTooLarge => "record_too_large",
            ReasonCode::InvalidUtf8 => "invalid_utf8",
            ReasonCode::MalformedJson => "malformed_json",
            ReasonCode::NotAnObject => "not_an_object",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::WrongType => "wrong_type",
            ReasonCode::InvalidField => "invalid_field",
            ReasonCode::UnknownEventType => "unknown_event_type",
            ReasonCode::UnsupportedSchemaVersion => "unsupported_schema_version",
            ReasonCode::TotalMismatch => "total_mismatch",
        }
    }

    /// Parses a stable code back (for redrive tools and reports).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// Whether the record's JSON itself was readable. Codes before this point
    /// are about bytes, not the contract.
    pub const fn is_contract_violation(self) -> bool {
        !matches!(
            self,
            ReasonCode::InvalidBase64
                | ReasonCode::RecordTooLarge
                | ReasonCode::InvalidUtf8
                | ReasonCode::MalformedJson
        )
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: the reason code, the JSON Pointer (RFC 6901) of the
/// offending field where one applies, and a human-readable detail.
///
/// Rejections are the cold path, so they may allocate; accepted records never
/// build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The stable code.
    pub reason: ReasonCode,
    /// JSON Pointer of the field, e.g. `/data/items/2/quantity`.
    pub path: Option<Cow<'static, str>>,
    /// What was wrong, for people reading the dead-letter queue.
    pub detail: Cow<'static, str>,
}

impl Rejection {
    /// A rejection that concerns the whole record.
    pub fn record(reason: ReasonCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            reason,
            path: None,
            detail: detail.into(),
        }
    }

    /// A rejection that concerns one field.
    pub fn field(
        reason: ReasonCode,
        path: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Rejection {
            reason,
            path: Some(path.into()),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} at {}: {}", self.reason, p, self.detail),
            None => write!(f, "{}: {}", self.reason, self.detail),
        }
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in ReasonCode::ALL {
            assert!(seen.insert(r.as_str()), "duplicate code {r}");
            assert_eq!(ReasonCode::from_code(r.as_str()), Some(r));
        }
        assert_eq!(ReasonCode::from_code("nope"), None);
    }

    #[test]
    fn display_names_the_path() {
        let r = Rejection::field(
            ReasonCode::InvalidField,
            "/data/country",
            "not ISO 3166-1 alpha-2",
        );
        assert_eq!(
            r.to_string(),
            "invalid_field at /data/country: not ISO 3166-1 alpha-2"
        );
    }
}
