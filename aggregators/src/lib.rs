//! Windowed business metrics from the event stream (DESIGN section 6),
//! exactly once per tumbling window, written to Timestream for
//! LiveAnalytics, InfluxDB (Timestream for InfluxDB 3) or local files.
//!
//! - [`measures`]: the dashboard contract: dimensions and measure names.
//! - [`window`]: the tumbling-window aggregator and why it is correct under retries.
//! - [`sink`]: the sink port and the local adapter; [`timestream`] and [`influx`] the others.
//! - [`emf`]: the function's own operational metrics, as EMF log lines.

#[cfg(all(feature = "aws", feature = "influx"))]
pub mod config;
pub mod emf;
#[cfg(feature = "emulator")]
pub mod emulator;
#[cfg(feature = "influx")]
pub mod influx;
pub mod measures;
pub mod sink;
#[cfg(feature = "aws")]
pub mod timestream;
pub mod window;

pub use measures::{Aggregates, Dim, Dims, Measures, SeriesKey};
pub use sink::{LocalMetrics, MetricRecord, MetricsSink, SinkError, SinkReport};
pub use window::{WindowAggregator, WindowOutcome, WindowState};
