//! The `cancel-order` function (API Gateway HTTP API): a thin shell over `pipeline_orders`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    pipeline_orders::http::run("cancel-order").await
}
