//! Configuration of the Lambda functions from environment variables, checked
//! at start-up so that a bad deployment fails at once with a clear message
//! rather than on the first record.

use std::time::Duration;

use bytes::Bytes;
use pipeline_schemas::DecoderConfig;

use crate::aws::{S3Store, SQS_MAX_MESSAGE_BYTES, SqsDeadLetterQueue, s3_client, sdk_config};
use crate::dlq::{DeadLetter, DeadLetterQueue, DlqError, LocalDeadLetters};
use crate::lake::{Codec, LakeConfig};
use crate::retry::RetryPolicy;
use crate::store::{Listed, LocalStore, ObjectStore, PutOptions, PutOutcome, StoreError};

pub use crate::settings::ConfigError;
use crate::settings::{StreamSettings, number};

/// Where something lives: S3 or a local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `s3://bucket/prefix/`
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// `file:///path`
    Local(std::path::PathBuf),
}

impl Location {
    /// Parses `s3://bucket/prefix` or `file:///absolute/path`.
    pub fn parse(var: &'static str, value: &str) -> Result<Self, ConfigError> {
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                });
            if !valid_bucket {
                return Err(ConfigError {
                    var,
                    problem: format!("{bucket:?} is not a valid S3 bucket name"),
                });
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some(path) = value.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(ConfigError {
                    var,
                    problem: "file:// locations must be absolute (file:///tmp/lake)".into(),
                });
            }
            return Ok(Location::Local(path.into()));
        }
        Err(ConfigError {
            var,
            problem: format!("{value:?} is neither s3://bucket/prefix nor file:///path"),
        })
    }
}

/// Where dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqLocation {
    /// An SQS queue URL.
    Sqs(String),
    /// A local folder.
    Local(std::path::PathBuf),
}

/// Everything the `event-processor` function needs.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// `LAKE_URI`: the lake root.
    pub lake: Location,
    /// `DLQ_URI`: SQS queue URL or `file:///path`.
    pub dlq: DlqLocation,
    /// `CLAIM_CHECK_URI`: where oversized dead letters go (default: `_dead_letters/` beside the lake).
    pub claim_check: Location,
    /// `KMS_KEY_ID`: SSE-KMS key for S3 writes (default: the bucket's default encryption).
    pub kms_key_id: Option<String>,
    /// `PARQUET_CODEC`: `zstd`, `zstd:N` or `snappy`.
    pub codec: Codec,
    /// `MAX_RECORD_BYTES`.
    pub max_record_bytes: usize,
    /// `RETRY_MAX_ATTEMPTS`, `RETRY_BASE_MS`, `RETRY_MAX_BACKOFF_MS`.
    pub retry: RetryPolicy,
    /// `DEADLINE_MARGIN_MS`: stop retrying this long before the Lambda times out.
    pub deadline_margin: Duration,
    /// `S3_FORCE_PATH_STYLE`: for local S3-protocol servers.
    pub force_path_style: bool,
    /// `SQS_MAX_MESSAGE_BYTES`: above this, letters are claim-checked to S3.
    pub sqs_max_message_bytes: usize,
    /// `METRICS_NAMESPACE`: CloudWatch namespace of the EMF metrics.
    pub metrics_namespace: String,
}

impl ProcessorConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lake_raw = get("LAKE_URI").ok_or(ConfigError {
            var: "LAKE_URI",
            problem:
                "not set: where to write Parquet, e.g. s3://my-lake/events/ or file:///tmp/lake"
                    .into(),
        })?;
        let lake = Location::parse("LAKE_URI", &lake_raw)?;
        let dlq_raw = get("DLQ_URI").ok_or(ConfigError {
            var: "DLQ_URI",
            problem: "not set: the dead-letter queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or file:///path"
                .into(),
        })?;
        let dlq = if dlq_raw.starts_with("https://") || dlq_raw.starts_with("http://") {
            DlqLocation::Sqs(dlq_raw)
        } else {
            match Location::parse("DLQ_URI", &dlq_raw)? {
                Location::Local(p) => DlqLocation::Local(p),
                Location::S3 { .. } => {
                    return Err(ConfigError {
                        var: "DLQ_URI",
                        problem: "must be an SQS queue URL or file:///path, not s3://".into(),
                    });
                }
            }
        };
        let claim_check = match get("CLAIM_CHECK_URI") {
            Some(v) => Location::parse("CLAIM_CHECK_URI", &v)?,
            None => match &lake {
                Location::S3 { bucket, prefix } => Location::S3 {
                    bucket: bucket.clone(),
                    prefix: format!(
                        "{}_dead_letters/",
                        prefix.trim_end_matches('/').to_owned() + "/"
                    )
                    .trim_start_matches('/')
                    .to_owned(),
                },
                Location::Local(p) => Location::Local(p.join("_dead_letters")),
            },
        };
        let codec_raw = get("PARQUET_CODEC").unwrap_or_else(|| "zstd".into());
        let codec = Codec::parse(&codec_raw).ok_or(ConfigError {
            var: "PARQUET_CODEC",
            problem: format!("{codec_raw:?}: use zstd, zstd:1..22 or snappy"),
        })?;
        let shared = StreamSettings::from_lookup(&get)?;
        let force_path_style = match get("S3_FORCE_PATH_STYLE").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "S3_FORCE_PATH_STYLE",
                    problem: format!("{other:?}: use true or false"),
                });
            }
        };
        Ok(ProcessorConfig {
            lake,
            dlq,
            claim_check,
            kms_key_id: get("KMS_KEY_ID"),
            codec,
            max_record_bytes: shared.max_record_bytes,
            retry: shared.retry,
            deadline_margin: shared.deadline_margin,
            force_path_style,
            sqs_max_message_bytes: number(
                &get,
                "SQS_MAX_MESSAGE_BYTES",
                SQS_MAX_MESSAGE_BYTES,
                1024..=1024 * 1024,
            )?,
            metrics_namespace: shared.metrics_namespace,
        })
    }

    /// The decoder limits.
    pub fn decoder(&self) -> DecoderConfig {
        DecoderConfig {
            max_record_bytes: self.max_record_bytes,
        }
    }

    /// The lake settings.
    pub fn lake_config(&self) -> LakeConfig {
        LakeConfig {
            codec: self.codec,
            if_absent: true,
            retry: self.retry,
            encode_threads: 0,
        }
    }

    /// Builds the configured adapters (AWS clients only where used).
    pub async fn adapters(&self) -> (AnyStore, AnyDlq) {
        let needs_aws = matches!(self.lake, Location::S3 { .. })
            || matches!(self.dlq, DlqLocation::Sqs(_))
            || matches!(self.claim_check, Location::S3 { .. });
        let sdk = if needs_aws {
            Some(sdk_config().await)
        } else {
            None
        };
        let store = |loc: &Location| match (loc, &sdk) {
            (Location::S3 { bucket, prefix }, Some(sdk)) => AnyStore::S3(S3Store::new(
                s3_client(sdk, self.force_path_style),
                bucket,
                prefix,
                self.kms_key_id.clone(),
            )),
            (Location::Local(p), _) => AnyStore::Local(LocalStore::new(p)),
            (Location::S3 { .. }, None) => unreachable!("sdk loaded whenever a location is S3"),
        };
        let lake = store(&self.lake);
        let dlq = match (&self.dlq, &sdk) {
            (DlqLocation::Sqs(url), Some(sdk)) => AnyDlq::Sqs(SqsDeadLetterQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                url,
                store(&self.claim_check),
                self.sqs_max_message_bytes,
            )),
            (DlqLocation::Local(p), _) => AnyDlq::Local(LocalDeadLetters::new(p)),
            (DlqLocation::Sqs(_), None) => unreachable!("sdk loaded whenever the DLQ is SQS"),
        };
        (lake, dlq)
    }
}

/// The object store chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// S3.
    S3(S3Store),
    /// A local folder.
    Local(LocalStore),
}

impl ObjectStore for AnyStore {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> Result<PutOutcome, StoreError> {
        match self {
            AnyStore::S3(s) => s.put(key, body, options).await,
            AnyStore::Local(s) => s.put(key, body, options).await,
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            AnyStore::S3(s) => s.get(key).await,
            AnyStore::Local(s) => s.get(key).await,
        }
    }
    async fn list_sized(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        match self {
            AnyStore::S3(s) => s.list_sized(prefix).await,
            AnyStore::Local(s) => s.list_sized(prefix).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::S3(s) => s.delete(key).await,
            AnyStore::Local(s) => s.delete(key).await,
        }
    }
    fn uri(&self, key: &str) -> String {
        match self {
            AnyStore::S3(s) => s.uri(key),
            AnyStore::Local(s) => s.uri(key),
        }
    }
}

impl AnyStore {
    /// The store at `location`, for functions that need one store and no DLQ
    /// (compactor, report generator); loads AWS settings only for S3.
    /// `kms_key_id` encrypts what is written (SSE-KMS), `force_path_style` is
    /// for local S3 servers.
    pub async fn open(
        location: &Location,
        kms_key_id: Option<String>,
        force_path_style: bool,
    ) -> AnyStore {
        match location {
            Location::S3 { bucket, prefix } => AnyStore::S3(S3Store::new(
                s3_client(&sdk_config().await, force_path_style),
                bucket,
                prefix,
                kms_key_id,
            )),
            Location::Local(p) => AnyStore::Local(LocalStore::new(p)),
        }
    }
}

/// The dead-letter queue chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnyDlq {
    /// SQS with an S3 (or local) claim check.
    Sqs(SqsDeadLetterQueue<AnyStore>),
    /// A local folder.
    Local(LocalDeadLetters),
}

impl DeadLetterQueue for AnyDlq {
    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        match self {
            AnyDlq::Sqs(q) => q.send(letters).await,
            AnyDlq::Local(q) => q.send(letters).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn minimal_settings_and_defaults() {
        let c = ProcessorConfig::from_lookup(env(&[
            ("LAKE_URI", "s3://my-lake/events/"),
            (
                "DLQ_URI",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
            ),
        ]))
        .expect("valid");
        assert_eq!(
            c.lake,
            Location::S3 {
                bucket: "my-lake".into(),
                prefix: "events/".into()
            }
        );
        assert_eq!(
            c.claim_check,
            Location::S3 {
                bucket: "my-lake".into(),
                prefix: "events/_dead_letters/".into()
            }
        );
        assert_eq!(c.codec, Codec::Zstd(1));
        assert_eq!(c.max_record_bytes, 1024 * 1024);
        assert!(!c.force_path_style);
    }

    #[test]
    fn missing_and_bad_settings_name_the_variable() {
        let e = ProcessorConfig::from_lookup(env(&[])).expect_err("missing");
        assert_eq!(e.var, "LAKE_URI");
        let e = ProcessorConfig::from_lookup(env(&[("LAKE_URI", "file:///tmp/l")]))
            .expect_err("missing");
        assert_eq!(e.var, "DLQ_URI");
        for (var, value) in [
            ("LAKE_URI", "s3://Bad_Bucket/x"),
            ("LAKE_URI", "/tmp/lake"),
            ("LAKE_URI", "file://relative"),
            ("PARQUET_CODEC", "gzip"),
            ("MAX_RECORD_BYTES", "lots"),
            ("MAX_RECORD_BYTES", "0"),
            ("RETRY_MAX_ATTEMPTS", "1000"),
            ("S3_FORCE_PATH_STYLE", "yes"),
        ] {
            let mut pairs = vec![
                ("LAKE_URI", "file:///tmp/lake"),
                ("DLQ_URI", "file:///tmp/dlq"),
            ];
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, value));
            let e = ProcessorConfig::from_lookup(env(&pairs)).expect_err(value);
            assert_eq!(e.var, var, "{value}");
        }
    }
}
