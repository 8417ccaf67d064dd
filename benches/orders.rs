//! The order functions on the embedded adapters: create + pay, requests per
//! second on one core, with and without an `Idempotency-Key` (same run), so
//! the cost of idempotency is visible. Each request validates its body,
//! applies the state machine, builds and validates its event, commits state +
//! outbox (+ the idempotency record) atomically, and publishes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pipeline_orders::payments::GOOD_CARD;
use pipeline_orders::{ApiRequest, Ids, LocalProvider, MemoryStore, MemoryStream, OrderService};

type Svc = OrderService<MemoryStore, MemoryStream, LocalProvider>;

async fn create_and_pay(s: &Svc, user: &str, n: u64, keyed: bool) {
    let body = format!(
        r#"{{"user_id":"{user}","currency":"EUR","items":[{{"sku":"SKU-1","quantity":2,"unit_price_cents":1299}},{{"sku":"SKU-2","quantity":1,"unit_price_cents":499}}]}}"#
    );
    let key_a = format!("a{n}");
    let created = s
        .handle(ApiRequest {
            method: "POST",
            path: "/orders",
            body: body.as_bytes(),
            idempotency_key: keyed.then_some(key_a.as_str()),
            correlation_id: None,
        })
        .await;
    assert_eq!(created.status, 201);
    let path = format!(
        "/orders/{}/payment",
        created.body["order_id"].as_str().unwrap_or("")
    );
    let pay = format!(r#"{{"method":"card","card_number":"{GOOD_CARD}"}}"#);
    let key_b = format!("b{n}");
    let paid = s
        .handle(ApiRequest {
            method: "POST",
            path: &path,
            body: pay.as_bytes(),
            idempotency_key: keyed.then_some(key_b.as_str()),
            correlation_id: None,
        })
        .await;
    assert_eq!(paid.status, 200);
}

fn orders(c: &mut Criterion) {
    let rt = pipeline_benches::fixtures::runtime();
    let mut group = c.benchmark_group("create_and_pay");
    group.throughput(Throughput::Elements(2)); // two requests per iteration
    for keyed in [false, true] {
        let s: Svc = OrderService::new(
            MemoryStore::default(),
            MemoryStream::default(),
            LocalProvider::default(),
            Ids::seeded(1, 1_795_617_476_000),
        );
        let signup = r#"{"email":"bench@example.com","country":"DE","channel":"web","marketing_opt_in":false}"#;
        let user = rt
            .block_on(s.handle(ApiRequest {
                method: "POST",
                path: "/users",
                body: signup.as_bytes(),
                idempotency_key: None,
                correlation_id: None,
            }))
            .body["user_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let mut n = 0u64;
        let name = if keyed {
            "with_idempotency_key"
        } else {
            "without_idempotency_key"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                rt.block_on(create_and_pay(&s, &user, n, keyed));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, orders);
criterion_main!(benches);
