//! The HTTP shell with `lambda_http`'s request types: routing per function,
//! headers, status codes and `application/problem+json`.

#![cfg(feature = "lambda")]

use lambda_http::{Body, Request};
use pipeline_orders::http::handle;
use pipeline_orders::{Ids, LocalProvider, MemoryStore, MemoryStream, OrderService};

fn request(method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method(method)
        .uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::Text(body.to_owned())).expect("request")
}

fn text(resp: &lambda_http::Response<Body>) -> serde_json::Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).expect("json"),
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn functions_serve_their_route_with_json_and_problem_json() {
    let s = OrderService::new(
        MemoryStore::default(),
        MemoryStream::default(),
        LocalProvider::default(),
        Ids::seeded(3, 1_795_617_476_000),
    );
    let signup =
        r#"{"email":"x@example.com","country":"DE","channel":"web","marketing_opt_in":false}"#;
    let resp = handle(
        &s,
        "sign-up",
        &request("POST", "/users", signup, &[("Idempotency-Key", "abc")]),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let user = text(&resp)["user_id"].as_str().expect("id").to_owned();
    // the same key answers the same, through the header
    let again = handle(
        &s,
        "sign-up",
        &request("POST", "/users", signup, &[("Idempotency-Key", "abc")]),
    )
    .await;
    assert_eq!(text(&again)["user_id"], user.as_str());

    let wrong = handle(&s, "create-order", &request("POST", "/users", signup, &[])).await;
    assert_eq!(wrong.status(), 404, "each function serves one route");
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");

    let bad = handle(&s, "create-order", &request("POST", "/orders", "{", &[])).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    assert_eq!(text(&bad)["status"], 400);

    let correlation = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let order = handle(
        &s,
        "create-order",
        &request(
            "POST",
            "/orders",
            &format!(r#"{{"user_id":"{user}","currency":"EUR","items":[{{"sku":"A","quantity":1,"unit_price_cents":100}}]}}"#),
            &[("X-Correlation-Id", correlation)],
        ),
    )
    .await;
    assert_eq!(order.status(), 201);
    let (_, mut data) = s.stream().records().pop().expect("event");
    let e = pipeline_schemas::RecordParser::new()
        .parse(&mut data)
        .expect("valid");
    assert_eq!(
        e.correlation_id, correlation,
        "the caller's correlation id follows the request"
    );
}

/// The OpenAPI document describes exactly the routes the functions serve.
#[test]
fn openapi_lists_every_route() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut served = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                let concrete = path.replace("{id}", "x1");
                let route = pipeline_orders::Route::of(&method.to_uppercase(), &concrete)
                    .unwrap_or_else(|_| panic!("{method} {path} is documented but not served"));
                served.push(pipeline_orders::http::route_name(&route));
            }
        }
    }
    served.sort_unstable();
    assert_eq!(
        served,
        [
            "cancel-order",
            "create-order",
            "fulfil-order",
            "get-order",
            "log-in",
            "pay-order",
            "sign-up"
        ]
    );
}
