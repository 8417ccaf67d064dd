//! The order and user functions on the embedded adapters: every transition,
//! concurrency, idempotency, the outbox and its relay, and the contract of
//! every emitted event.

use std::collections::HashSet;
use std::sync::Arc;

use pipeline_orders::outbox::{publish, relay};
use pipeline_orders::payments::{GOOD_CARD, TEST_CARDS};
use pipeline_orders::ports::Store;
use pipeline_orders::{
    ApiRequest, ApiResponse, Ids, LocalProvider, MemoryStore, MemoryStream, OrderService,
};
use pipeline_schemas::{EventData, EventType, RecordParser};
use serde_json::{Value, json};

type Svc = OrderService<MemoryStore, MemoryStream, LocalProvider>;

fn service() -> Svc {
    OrderService::new(
        MemoryStore::default(),
        MemoryStream::default(),
        LocalProvider::default(),
        Ids::seeded(7, 1_795_617_476_000),
    )
}

async fn call(s: &Svc, method: &str, path: &str, body: Value) -> ApiResponse {
    let body = body.to_string();
    s.handle(ApiRequest {
        method,
        path,
        body: body.as_bytes(),
        idempotency_key: None,
        correlation_id: None,
    })
    .await
}

async fn user(s: &Svc) -> String {
    let r = call(
        s,
        "POST",
        "/users",
        json!({"email": "ana@example.com", "country": "DE", "channel": "web", "marketing_opt_in": true}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["user_id"].as_str().expect("id").to_owned()
}

async fn order(s: &Svc, user_id: &str) -> String {
    let r = call(
        s,
        "POST",
        "/orders",
        json!({"user_id": user_id, "currency": "EUR",
               "items": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1299}, {"sku": "SKU-2", "quantity": 1, "unit_price_cents": 500}]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["total_cents"], 3098);
    r.body["order_id"].as_str().expect("id").to_owned()
}

/// Every event on the stream, parsed with the pipeline's own validator.
fn events(s: &Svc) -> Vec<(String, EventType, String)> {
    let mut parser = RecordParser::new();
    s.stream()
        .records()
        .into_iter()
        .map(|(key, mut data)| {
            let e = parser
                .parse(&mut data)
                .expect("every emitted event passes the contract");
            assert_eq!(
                e.data.partition_key(),
                key,
                "partition key = order_id or user_id"
            );
            (key, e.event_type(), e.event_id.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_happy_path_emits_valid_events_in_order() {
    let s = service();
    let u = user(&s).await;
    let o = order(&s, &u).await;
    let login = call(
        &s,
        "POST",
        &format!("/users/{u}/login"),
        json!({"method": "sso", "country": "DE"}),
    )
    .await;
    assert_eq!(login.status, 200);
    let paid = call(
        &s,
        "POST",
        &format!("/orders/{o}/payment"),
        json!({"method": "card", "card_number": GOOD_CARD}),
    )
    .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], "paid");
    let shipped = call(
        &s,
        "POST",
        &format!("/orders/{o}/fulfillment"),
        json!({"warehouse": "fra-1", "carrier": "dhl"}),
    )
    .await;
    assert_eq!(shipped.status, 200);
    let got = call(&s, "GET", &format!("/orders/{o}"), Value::Null).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["status"], "fulfilled");
    assert_eq!(got.body["history"].as_array().map(Vec::len), Some(3));
    let types: Vec<EventType> = events(&s).into_iter().map(|(_, t, _)| t).collect();
    assert_eq!(
        types,
        [
            EventType::UserSignedUp,
            EventType::OrderCreated,
            EventType::UserLoggedIn,
            EventType::OrderPaymentSucceeded,
            EventType::OrderFulfilled
        ]
    );
    // the fulfilment ships every unit; the payment charges the total
    let mut parser = RecordParser::new();
    for (_, mut data) in s.stream().records() {
        match parser.parse(&mut data).expect("valid").data {
            EventData::OrderFulfilled(d) => assert_eq!(d.shipped_items, 3),
            EventData::OrderPaymentSucceeded(d) => assert_eq!(d.amount_cents, 3098),
            _ => {}
        }
    }
    assert!(
        s.store().pending(10).await.expect("outbox").is_empty(),
        "everything published"
    );
}

#[tokio::test]
async fn illegal_transitions_are_409_and_emit_nothing() {
    let s = service();
    let u = user(&s).await;
    let o = order(&s, &u).await;
    let fulfil = json!({"warehouse": "fra-1", "carrier": "dhl"});
    let pay = json!({"method": "paypal"});
    assert_eq!(
        call(
            &s,
            "POST",
            &format!("/orders/{o}/fulfillment"),
            fulfil.clone()
        )
        .await
        .status,
        409
    );
    assert_eq!(
        call(&s, "POST", &format!("/orders/{o}/payment"), pay.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        call(&s, "POST", &format!("/orders/{o}/payment"), pay.clone())
            .await
            .status,
        409,
        "paid twice"
    );
    assert_eq!(
        call(
            &s,
            "POST",
            &format!("/orders/{o}/fulfillment"),
            fulfil.clone()
        )
        .await
        .status,
        200
    );
    let cancel = json!({"reason": "customer_request"});
    let r = call(&s, "POST", &format!("/orders/{o}/cancel"), cancel.clone()).await;
    assert_eq!(r.status, 409, "no cancellation after fulfilment");
    assert_eq!(
        r.body["type"],
        "https://kinesis-pipeline.dev/problems/illegal-transition"
    );
    // cancel from created, and nothing after a cancellation
    let o2 = order(&s, &u).await;
    assert_eq!(
        call(&s, "POST", &format!("/orders/{o2}/cancel"), cancel.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        call(&s, "POST", &format!("/orders/{o2}/payment"), pay)
            .await
            .status,
        409
    );
    assert_eq!(
        call(&s, "POST", &format!("/orders/{o2}/cancel"), cancel)
            .await
            .status,
        409
    );
    assert_eq!(events(&s).len(), 6);
}

#[tokio::test]
async fn test_cards_decline_with_each_reason_and_a_retry_can_succeed() {
    let s = service();
    let u = user(&s).await;
    let o = order(&s, &u).await;
    for (card, reason) in TEST_CARDS {
        let r = call(
            &s,
            "POST",
            &format!("/orders/{o}/payment"),
            json!({"method": "card", "card_number": card}),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["status"], "payment_failed");
        assert_eq!(r.body["reason"], reason);
    }
    let r = call(
        &s,
        "POST",
        &format!("/orders/{o}/payment"),
        json!({"method": "card", "card_number": GOOD_CARD}),
    )
    .await;
    assert_eq!(r.body["status"], "paid");
    let failed = events(&s)
        .iter()
        .filter(|(_, t, _)| *t == EventType::OrderPaymentFailed)
        .count();
    assert_eq!(failed, 4);
    // cancelling after failed payments is legal too
    let o2 = order(&s, &u).await;
    call(
        &s,
        "POST",
        &format!("/orders/{o2}/payment"),
        json!({"method": "card", "card_number": TEST_CARDS[0].0}),
    )
    .await;
    let r = call(
        &s,
        "POST",
        &format!("/orders/{o2}/cancel"),
        json!({"reason": "payment_failed"}),
    )
    .await;
    assert_eq!(r.status, 200);
}

/// Single-threaded runtime: all fifty read the order and reach the provider
/// before any commits, deterministically (the provider yields like a network call).
#[tokio::test]
async fn fifty_concurrent_payments_charge_once_and_emit_once() {
    let s = Arc::new(service());
    let u = user(&s).await;
    let o = order(&s, &u).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        let path = format!("/orders/{o}/payment");
        tasks.push(tokio::spawn(async move {
            call(
                &s,
                "POST",
                &path,
                json!({"method": "card", "card_number": GOOD_CARD}),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|&&st| st == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|&st| st == 200 || st == 409));
    assert_eq!(s.payments().calls(), 50, "all fifty raced to the provider");
    assert_eq!(s.payments().charges(), 1, "one charge");
    let paid = events(&s)
        .iter()
        .filter(|(_, t, _)| *t == EventType::OrderPaymentSucceeded)
        .count();
    assert_eq!(paid, 1, "one order.payment_succeeded");
}

#[tokio::test]
async fn a_crash_between_commit_and_publish_is_repaired_by_the_relay() {
    let mut s = service();
    s.simulate_crash_after_commit(true);
    let u = user(&s).await;
    let o = order(&s, &u).await;
    call(
        &s,
        "POST",
        &format!("/orders/{o}/payment"),
        json!({"method": "paypal"}),
    )
    .await;
    assert!(
        s.stream().records().is_empty(),
        "nothing published: the process 'crashed'"
    );
    let pending = s.store().pending(100).await.expect("outbox");
    assert_eq!(pending.len(), 3, "the events are safe in the outbox");
    // the relay's grace period protects the fast path
    let now = s.ids().now_ms();
    let early = relay(s.store(), s.stream(), now, 60_000, 100)
        .await
        .expect("relay");
    assert_eq!(early.sent, 0);
    let done = relay(s.store(), s.stream(), now + 60_000, 60_000, 100)
        .await
        .expect("relay");
    assert_eq!(done.sent, 3);
    let first: Vec<String> = events(&s).into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(first.len(), 3);
    let again = relay(s.store(), s.stream(), now + 120_000, 60_000, 100)
        .await
        .expect("relay");
    assert_eq!(again.sent, 0, "published once");
    // a duplicate publish (e.g. sent but not marked) carries the same event_id
    publish(s.store(), s.stream(), &pending, 1)
        .await
        .expect("publish");
    let all: Vec<String> = events(&s).into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(all.len(), 6);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        3,
        "duplicates share event ids"
    );
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_response() {
    let s = service();
    let u = user(&s).await;
    let body = json!({"user_id": u, "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 100}]}).to_string();
    let req = |body: &'static str| ApiRequest {
        method: "POST",
        path: "/orders",
        body: body.as_bytes(),
        idempotency_key: Some("key-123"),
        correlation_id: None,
    };
    let body: &'static str = Box::leak(body.into_boxed_str());
    let first = s.handle(req(body)).await;
    let second = s.handle(req(body)).await;
    assert_eq!(first.status, 201);
    assert_eq!(first, second, "same key, same body: the stored response");
    let other = s
        .handle(req(r#"{"user_id":"x","currency":"EUR","items":[]}"#))
        .await;
    assert_eq!(other.status, 422, "same key, another body");
    let created = events(&s)
        .iter()
        .filter(|(_, t, _)| *t == EventType::OrderCreated)
        .count();
    assert_eq!(created, 1, "one order, one event");
}

#[tokio::test]
async fn requests_are_validated_at_the_boundary() {
    let s = service();
    let u = user(&s).await;
    let cases = [
        ("POST", "/orders".to_owned(), "{not json".to_owned(), 400),
        ("POST", "/orders".to_owned(), json!({"user_id": u, "currency": "EUR", "items": [], "extra": 1}).to_string(), 400),
        ("POST", "/orders".to_owned(), json!({"user_id": u, "currency": "eur", "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}).to_string(), 422),
        ("POST", "/orders".to_owned(), json!({"user_id": u, "currency": "EUR", "items": []}).to_string(), 422),
        ("POST", "/orders".to_owned(), json!({"user_id": u, "currency": "EUR", "items": [{"sku": "A", "quantity": 0, "unit_price_cents": 1}]}).to_string(), 422),
        ("POST", "/orders".to_owned(), json!({"user_id": "nobody", "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}).to_string(), 422),
        ("POST", "/orders/ord_missing/payment".to_owned(), json!({"method": "paypal"}).to_string(), 404),
        ("POST", "/orders/ord_missing/payment".to_owned(), json!({"method": "bitcoin"}).to_string(), 422),
        ("GET", "/orders/ord_missing".to_owned(), String::new(), 404),
        ("DELETE", "/orders/ord_missing".to_owned(), String::new(), 405),
        ("GET", "/nope".to_owned(), String::new(), 404),
        ("POST", "/users".to_owned(), json!({"email": "not-an-email", "country": "DE", "channel": "web", "marketing_opt_in": false}).to_string(), 422),
        ("POST", "/users".to_owned(), json!({"email": "a@b.de", "country": "Germany", "channel": "web", "marketing_opt_in": false}).to_string(), 422),
        ("POST", "/users/usr_missing/login".to_owned(), json!({"method": "sso", "country": "DE"}).to_string(), 404),
        ("POST", format!("/users/{u}/login"), json!({"method": "telepathy", "country": "DE"}).to_string(), 422),
    ];
    for (method, path, body, status) in cases {
        let r = s
            .handle(ApiRequest {
                method,
                path: &path,
                body: body.as_bytes(),
                idempotency_key: None,
                correlation_id: None,
            })
            .await;
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
        assert!(
            r.body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://")),
            "problem+json"
        );
        assert_eq!(r.body["status"], status);
    }
    assert_eq!(events(&s).len(), 1, "only the sign-up emitted");
}
