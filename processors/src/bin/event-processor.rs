//! The `event-processor` Lambda: Kinesis records -> Parquet lake + dead-letter
//! queue, with partial-batch failure reporting. A thin shell over
//! `pipeline_processors`; configured by environment variables (see
//! `docs/archiver.md`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_lambda_events::streams::KinesisEventResponse;
use bytes::Bytes;
use lambda_runtime::Context;
use pipeline_processors::config::{AnyDlq, AnyStore, ProcessorConfig};
use pipeline_processors::metrics::emf_line;
use pipeline_processors::runtime::{deadline, init_json_logs, now_ms, run_raw};
use pipeline_processors::{BatchProcessor, LakeArchiver};

type Processor = BatchProcessor<LakeArchiver<AnyStore>, AnyDlq>;

struct State {
    processor: tokio::sync::Mutex<Processor>,
    margin: Duration,
    namespace: String,
    function: String,
}

async fn handle(
    state: &State,
    body: Bytes,
    context: Context,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let mut payload: Vec<u8> = body.into();
    let deadline = deadline(&context, state.margin);
    let outcome = state
        .processor
        .lock()
        .await
        .process(&mut payload, deadline)
        .await?;
    let stats = &outcome.stats;
    for error in &stats.errors {
        tracing::warn!(error = %error, "not durably handled; will be retried");
    }
    tracing::info!(
        records_in = stats.records_in,
        valid = stats.valid,
        dead_lettered = stats.dead_lettered.values().sum::<usize>(),
        failed = stats.failed,
        retries = stats.retries,
        objects = stats.objects.0,
        duration_ms = stats.duration.as_millis() as u64,
        correlation_ids = ?stats.correlation_ids,
        first_failure = ?outcome.response.batch_item_failures.first().and_then(|f| f.item_identifier.clone()),
        "invocation handled"
    );
    println!(
        "{}",
        emf_line(&state.namespace, &state.function, stats, now_ms())
    );
    Ok(outcome.response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_json_logs();
    let config = ProcessorConfig::from_env().context("event-processor is misconfigured")?;
    let (lake, dlq) = config.adapters().await;
    let processor = BatchProcessor::new(
        LakeArchiver::new(lake, config.lake_config()),
        dlq,
        config.decoder(),
        config.retry,
    );
    let state = Arc::new(State {
        processor: tokio::sync::Mutex::new(processor),
        margin: config.deadline_margin,
        namespace: config.metrics_namespace.clone(),
        function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .unwrap_or_else(|_| "event-processor".into()),
    });
    run_raw(move |body, context| {
        let state = state.clone();
        async move { serde_json::to_value(handle(&state, body, context).await?).map_err(Into::into) }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
