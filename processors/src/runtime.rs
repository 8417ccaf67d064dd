//! Lambda runtime glue shared by the function binaries: raw payloads for the
//! SIMD decoder, JSON logs, the clock.

use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use std::future::Future;

use bytes::Bytes;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Context, LambdaEvent, LambdaInvocation, Runtime, service_fn};
use serde_json::Value;

/// Hands the invocation's raw bytes to the handler untouched.
///
/// `lambda_runtime` deserialises every payload with serde_json before the
/// handler runs; for a 6 MB Kinesis batch that is a whole extra parse. This
/// layer takes the body off the invocation (replacing it with `null`, which
/// the runtime deserialises for free) so the handler can run the SIMD decoder
/// on the original bytes.
#[derive(Clone, Default)]
pub struct RawPayload(Arc<Mutex<Option<Bytes>>>);

impl RawPayload {
    /// The body of the current invocation (once).
    pub fn take(&self) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A tower layer that moves the invocation body into a [`RawPayload`] slot.
pub struct RawPayloadLayer(RawPayload);

impl RawPayloadLayer {
    /// A layer filling `slot`.
    pub fn new(slot: RawPayload) -> Self {
        RawPayloadLayer(slot)
    }
}

impl<S> Layer<S> for RawPayloadLayer {
    type Service = RawPayloadService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RawPayloadService {
            inner,
            slot: self.0.clone(),
        }
    }
}

/// The service of [`RawPayloadLayer`].
pub struct RawPayloadService<S> {
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

/// JSON logs through `tracing` (level from `RUST_LOG`, default `info`), with
/// the current span's fields (the runtime's `requestId` and `xrayTraceId`)
/// in every line. No timestamps: CloudWatch adds them.
pub fn init_json_logs() {
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
}

/// When retrying must stop: the invocation's deadline minus `margin`.
pub fn deadline(context: &Context, margin: std::time::Duration) -> std::time::Instant {
    let remaining =
        std::time::Duration::from_millis((context.deadline as i64 - now_ms()).max(0) as u64);
    std::time::Instant::now() + remaining.saturating_sub(margin)
}

/// Wall-clock epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `handler` under the Lambda runtime on the raw invocation bytes (no
/// serde pass), with the runtime's tracing span (request id, X-Ray trace id)
/// around every invocation. The shared shell of the function binaries.
pub async fn run_raw<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Bytes, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, lambda_runtime::Error>> + Send,
{
    let raw = RawPayload::default();
    let slot = raw.clone();
    let handler = Arc::new(handler);
    let service = service_fn(move |event: LambdaEvent<Value>| {
        let (raw, handler) = (raw.clone(), handler.clone());
        async move {
            let body = raw
                .take()
                .ok_or("the invocation payload was not captured")?;
            handler(body, event.context).await
        }
    });
    Runtime::new(service)
        .layer(RawPayloadLayer::new(slot))
        .layer(TracingLayer::new())
        .run()
        .await
}
