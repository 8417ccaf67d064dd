//! The HTTP shell: API Gateway HTTP API requests (`lambda_http`) to
//! [`OrderService`] and back, with `application/problem+json` errors. Each
//! function binary serves one route over the same library.

use std::sync::Arc;

use lambda_http::{Body, Error, Request, Response, service_fn};
use pipeline_processors::settings::ConfigError;

use crate::dynamo::DynamoStore;
use crate::kinesis::KinesisStream;
use crate::payments::LocalProvider;
use crate::service::{ApiRequest, ApiResponse, OrderService, Route};
use crate::{Ids, outbox};

/// The service as deployed.
pub type Deployed = OrderService<DynamoStore, KinesisStream, LocalProvider>;

/// Which route a function serves (its binary's name).
pub fn route_name(route: &Route) -> &'static str {
    match route {
        Route::CreateOrder => "create-order",
        Route::Pay(_) => "pay-order",
        Route::Fulfil(_) => "fulfil-order",
        Route::Cancel(_) => "cancel-order",
        Route::GetOrder(_) => "get-order",
        Route::SignUp => "sign-up",
        Route::LogIn(_) => "log-in",
    }
}

/// Converts a service response to HTTP.
pub fn to_http(resp: &ApiResponse) -> Response<Body> {
    let content_type = if resp.is_problem() {
        "application/problem+json"
    } else {
        "application/json"
    };
    Response::builder()
        .status(resp.status)
        .header("content-type", content_type)
        .body(Body::Text(resp.body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Handles one HTTP request for the function named `function`.
pub async fn handle<S, E, P>(
    service: &OrderService<S, E, P>,
    function: &str,
    req: &Request,
) -> Response<Body>
where
    S: crate::ports::Store,
    E: crate::ports::EventStream,
    P: crate::ports::PaymentProvider,
{
    let method = req.method().as_str();
    let path = req.uri().path();
    match Route::of(method, path) {
        Ok(route) if route_name(&route) != function => {
            return to_http(&ApiResponse {
                status: 404,
                body: serde_json::json!({
                    "type": "https://kinesis-pipeline.dev/problems/not-found",
                    "title": "Not served by this function",
                    "status": 404,
                    "detail": format!("{function} does not serve {method} {path}"),
                }),
            });
        }
        Err(resp) => return to_http(&resp),
        Ok(_) => {}
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let body: &[u8] = req.body().as_ref();
    let resp = service
        .handle(ApiRequest {
            method,
            path,
            body,
            idempotency_key: header("idempotency-key"),
            correlation_id: header("x-correlation-id"),
        })
        .await;
    to_http(&resp)
}

/// Builds the deployed service from the environment: `TABLE_NAME`,
/// `STREAM_NAME`, `PAYMENT_PROVIDER` (`local`).
pub async fn deployed() -> Result<Deployed, ConfigError> {
    let get = |k: &'static str, what: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError {
                var: k,
                problem: format!("not set: {what}"),
            })
    };
    let table = get(
        "TABLE_NAME",
        "the DynamoDB table of orders, users and the outbox",
    )?;
    let stream = get("STREAM_NAME", "the Kinesis stream the events go to")?;
    match std::env::var("PAYMENT_PROVIDER").as_deref() {
        Ok("local") | Err(_) => {}
        Ok(other) => {
            return Err(ConfigError {
                var: "PAYMENT_PROVIDER",
                problem: format!(
                    "{other:?}: only `local` is built in; add an adapter of PaymentProvider"
                ),
            });
        }
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    Ok(OrderService::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        KinesisStream::new(aws_sdk_kinesis::Client::new(&sdk), &stream),
        LocalProvider::default(),
        Ids::system(),
    ))
}

/// Runs the function `function` under the Lambda runtime.
pub async fn run(function: &'static str) -> Result<(), Error> {
    pipeline_processors::runtime::init_json_logs();
    let service = Arc::new(deployed().await?);
    lambda_http::run(service_fn(move |req: Request| {
        let service = service.clone();
        async move { Ok::<_, Error>(handle(&service, function, &req).await) }
    }))
    .await
}

/// Runs the outbox relay under the Lambda runtime (a scheduled function):
/// publishes events still pending `RELAY_GRACE_MS` (default 30 s) after commit.
pub async fn run_relay() -> Result<(), Error> {
    pipeline_processors::runtime::init_json_logs();
    let service = Arc::new(deployed().await?);
    let grace: i64 = std::env::var("RELAY_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    lambda_http::lambda_runtime::run(lambda_http::lambda_runtime::service_fn(
        move |_: lambda_http::lambda_runtime::LambdaEvent<serde_json::Value>| {
            let service = service.clone();
            async move {
                let now = service.ids().now_ms();
                let done =
                    outbox::relay(service.store(), service.stream(), now, grace, 5000).await?;
                tracing::info!(sent = done.sent, pending = done.pending, "relay run");
                Ok::<_, Error>(serde_json::json!({"sent": done.sent, "pending": done.pending}))
            }
        },
    ))
    .await
}
