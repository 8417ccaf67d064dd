//! The `metrics-aggregator` Lambda: per-minute business metrics, exactly once
//! per Kinesis tumbling window, into Timestream, InfluxDB or local files. A
//! thin shell over `pipeline_aggregators`; configured by environment variables
//! (see `docs/metrics.md`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use lambda_runtime::Context;
use pipeline_aggregators::WindowAggregator;
use pipeline_aggregators::config::{AggregatorConfig, AnySink};
use pipeline_aggregators::emf::emf_line;
use pipeline_processors::runtime::{deadline, init_json_logs, now_ms, run_raw};
use pipeline_schemas::DecoderConfig;
use serde_json::Value;

struct State {
    aggregator: tokio::sync::Mutex<WindowAggregator<AnySink>>,
    margin: Duration,
    namespace: String,
    function: String,
}

async fn handle(
    state: &State,
    body: Bytes,
    context: Context,
) -> Result<Value, lambda_runtime::Error> {
    let mut payload: Vec<u8> = body.into();
    let deadline = deadline(&context, state.margin);
    let outcome = state
        .aggregator
        .lock()
        .await
        .process(&mut payload, deadline)
        .await?;
    let s = &outcome.stats;
    if let Some(error) = &s.error {
        tracing::warn!(error = %error, "final metrics write failed; the window's last batch will be retried");
    }
    if s.digests_forgotten > 0 {
        tracing::warn!(
            forgotten = s.digests_forgotten,
            "the window state reached Lambda's limit: its event id digests were dropped, so duplicates of \
             earlier events are counted again in this window; shorten TumblingWindowInSeconds"
        );
    }
    let (written, requests, dropped) = s
        .sink
        .as_ref()
        .map_or((0, 0, 0), |r| (r.written, r.requests, r.dropped));
    tracing::info!(
        records_in = s.records_in,
        counted = s.counted,
        duplicates = s.duplicates,
        poison = s.poison,
        state_bytes = s.state_bytes,
        written,
        requests,
        dropped,
        "invocation handled"
    );
    println!(
        "{}",
        emf_line(&state.namespace, &state.function, s, now_ms())
    );
    Ok(outcome.response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_json_logs();
    let config = AggregatorConfig::from_env().context("metrics-aggregator is misconfigured")?;
    let sink = config.sink().await.context("building the metrics sink")?;
    let state = Arc::new(State {
        aggregator: tokio::sync::Mutex::new(WindowAggregator::new(
            sink,
            DecoderConfig {
                max_record_bytes: config.max_record_bytes,
            },
        )),
        margin: config.deadline_margin,
        namespace: config.namespace.clone(),
        function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .unwrap_or_else(|_| "metrics-aggregator".into()),
    });
    run_raw(move |body, context| {
        let state = state.clone();
        async move { handle(&state, body, context).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
