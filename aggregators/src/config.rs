//! Configuration of the `metrics-aggregator` from environment variables,
//! checked at start-up (a bad deployment fails at once, naming the variable).

use std::time::Duration;

use pipeline_processors::retry::RetryPolicy;
use pipeline_processors::settings::{ConfigError, StreamSettings, number};

use crate::influx::{InfluxApi, InfluxConfig, InfluxSink};
use crate::sink::{LocalMetrics, MetricRecord, MetricsSink, SinkError, SinkReport};
use crate::timestream::TimestreamSink;

/// Which sink.
#[derive(Debug, Clone)]
pub enum SinkChoice {
    /// `METRICS_SINK=timestream`: `TIMESTREAM_DATABASE`, `TIMESTREAM_TABLE`.
    Timestream {
        /// Database.
        database: String,
        /// Table.
        table: String,
        /// Endpoint discovery (on in AWS; off against a local endpoint).
        discovery: bool,
    },
    /// `METRICS_SINK=influx`: `INFLUX_URL`, `INFLUX_API`, database/org/bucket, `INFLUX_TOKEN`.
    Influx(InfluxConfig),
    /// `METRICS_SINK=local`: `METRICS_DIR`.
    Local(std::path::PathBuf),
}

/// Everything the function needs.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    /// The sink.
    pub sink: SinkChoice,
    /// `MAX_RECORD_BYTES` (as the archiver's, so both skip the same records).
    pub max_record_bytes: usize,
    /// `DEADLINE_MARGIN_MS`.
    pub deadline_margin: Duration,
    /// `RETRY_MAX_ATTEMPTS`, `RETRY_BASE_MS`, `RETRY_MAX_BACKOFF_MS`.
    pub retry: RetryPolicy,
    /// `METRICS_NAMESPACE` for the function's own EMF metrics.
    pub namespace: String,
}

fn need(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    what: &str,
) -> Result<String, ConfigError> {
    get(var).ok_or(ConfigError {
        var,
        problem: format!("not set: {what}"),
    })
}

impl AggregatorConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let shared = StreamSettings::from_lookup(&get)?;
        let retry = shared.retry;
        let kind = need(&get, "METRICS_SINK", "timestream, influx or local")?;
        let sink = match kind.as_str() {
            "timestream" => SinkChoice::Timestream {
                database: need(&get, "TIMESTREAM_DATABASE", "the Timestream database")?,
                table: need(&get, "TIMESTREAM_TABLE", "the Timestream table")?,
                discovery: match get("TIMESTREAM_ENDPOINT_DISCOVERY").as_deref() {
                    Some("false") => false,
                    Some("true") => true,
                    None => get("AWS_ENDPOINT_URL").is_none(),
                    Some(other) => {
                        return Err(ConfigError {
                            var: "TIMESTREAM_ENDPOINT_DISCOVERY",
                            problem: format!("{other:?}: use true or false"),
                        });
                    }
                },
            },
            "influx" => {
                let url = need(
                    &get,
                    "INFLUX_URL",
                    "e.g. https://my-instance.timestream-influxdb.eu-west-1.on.aws:8181",
                )?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError {
                        var: "INFLUX_URL",
                        problem: format!("{url:?} is not an http(s) URL"),
                    });
                }
                let api = match get("INFLUX_API").as_deref().unwrap_or("v3") {
                    "v3" => InfluxApi::V3 {
                        database: need(&get, "INFLUX_DATABASE", "the database to write to")?,
                    },
                    "v2" => InfluxApi::V2 {
                        org: need(&get, "INFLUX_ORG", "the organisation")?,
                        bucket: need(&get, "INFLUX_BUCKET", "the bucket")?,
                    },
                    "v1" => InfluxApi::V1 {
                        database: need(&get, "INFLUX_DATABASE", "the database to write to")?,
                    },
                    other => {
                        return Err(ConfigError {
                            var: "INFLUX_API",
                            problem: format!("{other:?}: use v3, v2 or v1"),
                        });
                    }
                };
                SinkChoice::Influx(InfluxConfig {
                    url,
                    api,
                    token: get("INFLUX_TOKEN"),
                    batch_lines: number(&get, "INFLUX_BATCH_LINES", 5000u64, 1..=100_000)? as usize,
                    gzip: get("INFLUX_GZIP").as_deref() != Some("false"),
                    retry,
                    timeout: Duration::from_secs(10),
                })
            }
            "local" => {
                SinkChoice::Local(need(&get, "METRICS_DIR", "folder for metric files")?.into())
            }
            other => {
                return Err(ConfigError {
                    var: "METRICS_SINK",
                    problem: format!("{other:?}: use timestream, influx or local"),
                });
            }
        };
        Ok(AggregatorConfig {
            sink,
            max_record_bytes: shared.max_record_bytes,
            deadline_margin: shared.deadline_margin,
            retry,
            namespace: shared.metrics_namespace,
        })
    }

    /// Builds the configured sink.
    pub async fn sink(&self) -> Result<AnySink, SinkError> {
        Ok(match &self.sink {
            SinkChoice::Timestream {
                database,
                table,
                discovery,
            } => {
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await;
                let client = aws_sdk_timestreamwrite::Client::new(&sdk);
                let client = if *discovery {
                    let (client, reloader) = client
                        .with_endpoint_discovery_enabled()
                        .await
                        .map_err(|e| {
                            SinkError::Transient(format!("Timestream endpoint discovery: {e}"))
                        })?;
                    tokio::spawn(reloader.reload_task());
                    client
                } else {
                    client
                };
                AnySink::Timestream(TimestreamSink::new(client, database, table, self.retry))
            }
            SinkChoice::Influx(c) => AnySink::Influx(InfluxSink::new(c.clone())?),
            SinkChoice::Local(dir) => AnySink::Local(LocalMetrics::new(dir)),
        })
    }
}

/// The sink chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnySink {
    /// Timestream for LiveAnalytics.
    Timestream(TimestreamSink),
    /// InfluxDB line protocol.
    Influx(InfluxSink),
    /// Local files.
    Local(LocalMetrics),
}

impl MetricsSink for AnySink {
    async fn write(
        &self,
        records: &[MetricRecord],
        deadline: std::time::Instant,
    ) -> Result<SinkReport, SinkError> {
        match self {
            AnySink::Timestream(s) => s.write(records, deadline).await,
            AnySink::Influx(s) => s.write(records, deadline).await,
            AnySink::Local(s) => s.write(records, deadline).await,
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
    fn a_printed_configuration_never_shows_the_influx_token() {
        let c = AggregatorConfig::from_lookup(env(&[
            ("METRICS_SINK", "influx"),
            ("INFLUX_URL", "https://db.example:8181"),
            ("INFLUX_DATABASE", "metrics"),
            ("INFLUX_TOKEN", "apiv3_s3cr3t-t0ken"),
        ]))
        .expect("valid");
        let printed = format!("{c:?} {c:#?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("db.example"));
        // the sink still sends it
        assert!(
            matches!(&c.sink, SinkChoice::Influx(i) if i.token.as_deref() == Some("apiv3_s3cr3t-t0ken"))
        );
    }

    #[test]
    fn each_sink_is_configured_and_checked() {
        let c = AggregatorConfig::from_lookup(env(&[
            ("METRICS_SINK", "timestream"),
            ("TIMESTREAM_DATABASE", "events"),
            ("TIMESTREAM_TABLE", "business_metrics"),
        ]))
        .expect("valid");
        assert!(matches!(
            c.sink,
            SinkChoice::Timestream {
                discovery: true,
                ..
            }
        ));
        let c = AggregatorConfig::from_lookup(env(&[
            ("METRICS_SINK", "influx"),
            ("INFLUX_URL", "https://db.example:8181"),
            ("INFLUX_DATABASE", "metrics"),
        ]))
        .expect("valid");
        assert!(
            matches!(c.sink, SinkChoice::Influx(ref i) if i.api == InfluxApi::V3 { database: "metrics".into() })
        );
        for (pairs, var) in [
            (vec![], "METRICS_SINK"),
            (vec![("METRICS_SINK", "prometheus")], "METRICS_SINK"),
            (vec![("METRICS_SINK", "timestream")], "TIMESTREAM_DATABASE"),
            (
                vec![("METRICS_SINK", "influx"), ("INFLUX_URL", "db:8086")],
                "INFLUX_URL",
            ),
            (
                vec![
                    ("METRICS_SINK", "influx"),
                    ("INFLUX_URL", "http://db"),
                    ("INFLUX_API", "v9"),
                ],
                "INFLUX_API",
            ),
            (
                vec![
                    ("METRICS_SINK", "local"),
                    ("METRICS_DIR", "/m"),
                    ("RETRY_MAX_ATTEMPTS", "0"),
                ],
                "RETRY_MAX_ATTEMPTS",
            ),
        ] {
            let e = AggregatorConfig::from_lookup(env(&pairs)).expect_err("invalid");
            assert_eq!(e.var, var);
        }
    }
}
