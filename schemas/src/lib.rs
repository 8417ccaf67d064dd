//! The v1 event contract of the pipeline (DESIGN section 3) and the fast path
//! from a Lambda invocation's raw bytes to validated, typed events.
//!
//! - [`event`]: typed events; strings borrow from the record buffer.
//! - [`rules`]: the contract's primitive rules (UUIDs, RFC 3339, ISO codes).
//! - [`record`]: one record's JSON to an [`Event`] or a [`Rejection`].
//! - [`invocation`]: a whole Kinesis invocation payload, SIMD end to end.
//! - [`lake`]: the Arrow schemas of the lake tables (DESIGN section 5).
//!
//! The JSON Schema files under `schemas/json/` state the same contract for
//! producers in other languages; a test keeps both in agreement.

mod envelope;
pub mod event;
pub mod invocation;
pub mod lake;
pub mod parallel;
pub mod put_records;
pub mod reason;
pub mod record;
pub mod rules;
pub mod write;

pub use event::*;
pub use invocation::{
    DecodedRecord, DecoderConfig, InvocationDecoder, InvocationError, RecordMeta, Slice, Sliced,
};
pub use reason::{ReasonCode, Rejection};
pub use record::RecordParser;

#[cfg(fuzzing)]
pub use envelope::layouts_agree;
#[cfg(fuzzing)]
pub use record::layouts_agree as record_layouts_agree;

/// The contract version this crate reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the JSON Schema files live, relative to the workspace root.
pub const JSON_SCHEMA_DIR: &str = "schemas/json";
