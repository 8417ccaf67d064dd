//! The Kinesis batch core and the Parquet archiver.
//!
//! There is no Powertools for Rust; this crate is its batch-processing part for
//! Kinesis, usable by any Rust consumer:
//!
//! - [`batch`]: [`BatchProcessor`] decodes an invocation (SIMD), routes valid
//!   events to your [`RecordHandler`] and poison records to a
//!   [`DeadLetterQueue`], retries transient failures within the deadline, and
//!   returns a `KinesisEventResponse` with checkpoint semantics.
//! - [`lake`]: the archiver, a `RecordHandler` that writes Athena-ready Parquet.
//! - [`store`], [`dlq`]: the ports, with embedded adapters; `aws` has the
//!   S3 and SQS adapters (feature `aws`).
//! - [`metrics`]: CloudWatch Embedded Metric Format lines.
//! - [`faults`]: fault injection for tests and the main job.

#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
#[cfg(feature = "aws")]
pub mod config;
pub mod dlq;
#[cfg(feature = "emulator")]
pub mod esm;
pub mod faults;
pub mod lake;
pub mod metrics;
#[cfg(all(feature = "aws", feature = "emulator"))]
pub mod redrive;
pub mod retry;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod settings;
pub mod store;

pub use batch::{
    BatchOutcome, BatchProcessor, HandlerReport, InvocationStats, RecordHandler, ValidRecord,
};
pub use dlq::{DeadLetter, DeadLetterQueue, DlqError, LocalDeadLetters};
pub use lake::{Codec, LakeArchiver, LakeConfig};
pub use retry::RetryPolicy;
pub use store::{Listed, LocalStore, ObjectStore, PutOptions, PutOutcome, StoreError};
