//! Settings errors shared by the function binaries' configuration.

use std::time::Duration;

use thiserror::Error;

use crate::retry::RetryPolicy;

/// A missing or malformed setting.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong, and what a good value looks like.
    pub problem: String,
}

/// The integer setting `var` from `get`: `default` when unset, an error
/// naming the range when it is not a number in `range`. Every function's
/// numeric settings go through this, so a typo fails at start instead of
/// quietly becoming the default.
pub fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    let v: T = raw.trim().parse().map_err(|_| ConfigError {
        var,
        problem: format!("{raw:?} is not a number"),
    })?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError {
            var,
            problem: format!("{v} is outside {}..={}", range.start(), range.end()),
        })
    }
}

/// The settings every stream function shares, read in one place so that the
/// archiver and the aggregator accept the same values: both must skip the
/// same oversized records and stop retrying at the same margin.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `MAX_RECORD_BYTES`: a larger record is poison (`record_too_large`).
    pub max_record_bytes: usize,
    /// `DEADLINE_MARGIN_MS`: stop retrying this long before the Lambda times out.
    pub deadline_margin: Duration,
    /// `RETRY_MAX_ATTEMPTS`, `RETRY_BASE_MS`, `RETRY_MAX_BACKOFF_MS`.
    pub retry: RetryPolicy,
    /// `METRICS_NAMESPACE`: CloudWatch namespace of the function's EMF metrics.
    pub metrics_namespace: String,
}

impl StreamSettings {
    /// Reads the shared settings through `get`, with their defaults and ranges.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(StreamSettings {
            max_record_bytes: number(
                get,
                "MAX_RECORD_BYTES",
                pipeline_schemas::invocation::DEFAULT_MAX_RECORD_BYTES,
                1..=10 * 1024 * 1024,
            )?,
            deadline_margin: Duration::from_millis(number(
                get,
                "DEADLINE_MARGIN_MS",
                2000u64,
                0..=60_000,
            )?),
            retry: RetryPolicy {
                max_attempts: number(get, "RETRY_MAX_ATTEMPTS", 8u32, 1..=50)?,
                base: Duration::from_millis(number(get, "RETRY_BASE_MS", 50u64, 1..=60_000)?),
                max_backoff: Duration::from_millis(number(
                    get,
                    "RETRY_MAX_BACKOFF_MS",
                    2000u64,
                    1..=300_000,
                )?),
            },
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| "EventPipeline".into()),
        })
    }
}
