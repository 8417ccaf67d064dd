//! The `event-processor` Lambda: Kinesis records -> Parquet lake + dead-letter
//! queue, with partial-batch failure reporting. A thin shell over
//! `pipeline_processors`; configured by environment variables (see
//! `docs/archiver.md`).

use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_lambda_events::streams::KinesisEventResponse;
use bytes::Bytes;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{LambdaEvent, LambdaInvocation, Runtime, layers::TracingLayer, service_fn};
use pipeline_processors::config::{AnyDlq, AnyStore, ProcessorConfig};
use pipeline_processors::metrics::emf_line;
use pipeline_processors::{BatchProcessor, LakeArchiver};
use serde_json::Value;

type Processor = BatchProcessor<LakeArchiver<AnyStore>, AnyDlq>;

/// Hands the invocation's raw bytes to the handler untouched.
///
/// `lambda_runtime` deserialises every payload with serde_json before the
/// handler runs; for a 6 MB Kinesis batch that is a whole extra parse. This
/// layer takes the body off the invocation (replacing it with `null`, which
/// the runtime deserialises for free) so the handler can run the SIMD decoder
/// on the original bytes.
#[derive(Clone, Default)]
struct RawPayload(Arc<Mutex<Option<Bytes>>>);

impl RawPayload {
    fn take(&self) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

struct RawPayloadLayer(RawPayload);

impl<S> Layer<S> for RawPayloadLayer {
    type Service = RawPayloadService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RawPayloadService {
            inner,
            slot: self.0.clone(),
        }
    }
}

struct RawPayloadService<S> {
    inner: S,
    slot: RawPayload,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for RawPayloadService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, Bytes::from_static(b"null"));
        *self.slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        self.inner.call(invocation)
    }
}

struct State {
    processor: tokio::sync::Mutex<Processor>,
    raw: RawPayload,
    margin: Duration,
    namespace: String,
    function: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn handle(
    state: &State,
    event: LambdaEvent<Value>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let body = state
        .raw
        .take()
        .ok_or("the invocation payload was not captured")?;
    let mut payload: Vec<u8> = body.into();
    let remaining = Duration::from_millis((event.context.deadline as i64 - now_ms()).max(0) as u64);
    let deadline = Instant::now() + remaining.saturating_sub(state.margin);
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
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .init();
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
        raw: RawPayload::default(),
        margin: config.deadline_margin,
        namespace: config.metrics_namespace.clone(),
        function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .unwrap_or_else(|_| "event-processor".into()),
    });
    let raw = state.raw.clone();
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let state = state.clone();
        async move { handle(&state, event).await }
    });
    Runtime::new(handler)
        .layer(RawPayloadLayer(raw))
        .layer(TracingLayer::new())
        .run()
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
