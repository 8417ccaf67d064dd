//! The `outbox-relay` function (EventBridge schedule): publishes outbox events
//! whose publish after commit failed.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    pipeline_orders::http::run_relay().await
}
