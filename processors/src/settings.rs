//! Settings errors shared by the function binaries' configuration.

use thiserror::Error;

/// A missing or malformed setting.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong, and what a good value looks like.
    pub problem: String,
}
