//! Traffic through the real order functions: simulated users and shoppers
//! call the HTTP API of the order and user functions (embedded adapters);
//! the events the functions commit and publish are the stream's records.
//! Poison records from buggy producers are mixed in by the generator.

use pipeline_generator::rng::Rng;
use pipeline_generator::{Body, Expected, GeneratedRecord, MARKETS, TrafficConfig, generate};
use pipeline_orders::payments::{GOOD_CARD, TEST_CARDS};
use pipeline_orders::{ApiRequest, Ids, LocalProvider, MemoryStore, MemoryStream, OrderService};
use pipeline_schemas::RecordParser;
use serde_json::{Value, json};

type Svc = OrderService<MemoryStore, MemoryStream, LocalProvider>;

/// What the simulated clients did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientStats {
    /// Requests sent.
    pub requests: usize,
    /// Requests that were retried with the same `Idempotency-Key`.
    pub idempotent_retries: usize,
    /// 409 answers (illegal transitions tried on purpose).
    pub conflicts: usize,
}

async fn call(
    s: &Svc,
    stats: &mut ClientStats,
    method: &str,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> Value {
    stats.requests += 1;
    let body = body.to_string();
    let resp = s
        .handle(ApiRequest {
            method,
            path,
            body: body.as_bytes(),
            idempotency_key: key,
            correlation_id: None,
        })
        .await;
    if resp.status == 409 {
        stats.conflicts += 1;
    }
    resp.body
}

/// Runs the simulation until the functions have emitted the valid share of
/// `config.events`, then mixes in the poison share. Records are in the order
/// the functions published them.
pub async fn traffic(
    config: &TrafficConfig,
) -> anyhow::Result<(Vec<GeneratedRecord>, ClientStats)> {
    let poison_total = config.poison.total();
    let valid_target = ((config.events as f64) * (1.0 - poison_total)).round() as usize;
    let svc: Svc = OrderService::new(
        MemoryStore::default(),
        MemoryStream::default(),
        LocalProvider::default(),
        Ids::seeded(config.seed, config.start_ms),
    );
    let mut rng = Rng::new(config.seed ^ 0xC1);
    let mut stats = ClientStats::default();
    let mut users: Vec<(String, usize)> = Vec::new();
    let mut open: Vec<(String, &'static str)> = Vec::new();
    let mut now = config.start_ms;
    let mean_gap = 1000.0 / config.events_per_second.max(0.001);
    let weights: Vec<u32> = MARKETS.iter().map(|c| c.2).collect();
    let mut emitted = 0;
    let progress = crate::run::progress_bar(valid_target as u64, "producers");
    while emitted < valid_target {
        now += rng.range(0, (2.0 * mean_gap) as u64) as i64;
        svc.ids().set_time(now);
        // sign-up, log-in, create an order, advance an open order
        let action = if users.len() < 20 {
            0
        } else if open.is_empty() {
            rng.weighted(&[10, 18, 30])
        } else {
            rng.weighted(&[10, 18, 22, 46])
        };
        match action {
            0 => {
                let market = rng.weighted(&weights);
                let n = users.len();
                let channel = *rng.pick(&["web", "ios", "android", "partner"]);
                let key = format!("signup-{}-{n}", config.seed);
                let body = json!({"email": format!("user{n}@example.com"), "country": MARKETS[market].0,
                                  "channel": channel, "marketing_opt_in": rng.chance(0.35)});
                let resp = call(&svc, &mut stats, "POST", "/users", body.clone(), Some(&key)).await;
                if rng.chance(0.05) {
                    // a client that timed out retries with the same key: no second user
                    call(&svc, &mut stats, "POST", "/users", body, Some(&key)).await;
                    stats.idempotent_retries += 1;
                }
                if let Some(id) = resp["user_id"].as_str() {
                    users.push((id.to_owned(), market));
                }
            }
            1 => {
                let (user, market) = users[rng.below(users.len() as u64) as usize].clone();
                let method = *rng.pick(&["password", "sso", "magic_link"]);
                call(
                    &svc,
                    &mut stats,
                    "POST",
                    &format!("/users/{user}/login"),
                    json!({"method": method, "country": MARKETS[market].0}),
                    None,
                )
                .await;
            }
            2 => {
                let (user, market) = users[rng.below(users.len() as u64) as usize].clone();
                let lines = [1, 1, 1, 2, 2, 3, 4, 6][rng.below(8) as usize];
                let items: Vec<Value> = (0..lines)
                    .map(|_| {
                        let sku = rng.below(400).min(rng.below(400));
                        let quantity = [1, 1, 1, 1, 2, 2, 3, 5][rng.below(8) as usize];
                        let price = rng.range(199, 24_999) / 100 * 100 + 99;
                        json!({"sku": format!("SKU-{sku:05}"), "quantity": quantity, "unit_price_cents": price})
                    })
                    .collect();
                let resp = call(
                    &svc,
                    &mut stats,
                    "POST",
                    "/orders",
                    json!({"user_id": user, "currency": MARKETS[market].1, "items": items}),
                    None,
                )
                .await;
                if let Some(id) = resp["order_id"].as_str() {
                    open.push((id.to_owned(), "created"));
                }
            }
            _ => {
                let i = rng.below(open.len() as u64) as usize;
                let (order, state) = open[i].clone();
                let roll = rng.unit();
                let next = match state {
                    "created" | "payment_failed" if roll < 0.06 => {
                        let reason = if state == "created" {
                            "customer_request"
                        } else {
                            "payment_failed"
                        };
                        call(
                            &svc,
                            &mut stats,
                            "POST",
                            &format!("/orders/{order}/cancel"),
                            json!({"reason": reason}),
                            None,
                        )
                        .await;
                        None
                    }
                    "created" | "payment_failed" => {
                        let body = match rng.below(10) {
                            0 | 1 => {
                                json!({"method": "card", "card_number": rng.pick(&TEST_CARDS).0})
                            }
                            2 => json!({"method": "paypal"}),
                            3 => json!({"method": "apple_pay"}),
                            4 => json!({"method": "bank_transfer"}),
                            _ => json!({"method": "card", "card_number": GOOD_CARD}),
                        };
                        let resp = call(
                            &svc,
                            &mut stats,
                            "POST",
                            &format!("/orders/{order}/payment"),
                            body,
                            None,
                        )
                        .await;
                        match resp["status"].as_str() {
                            Some("paid") => Some("paid"),
                            Some("payment_failed") => Some("payment_failed"),
                            _ => Some(state),
                        }
                    }
                    _ if roll < 0.05 => {
                        let reason = *rng.pick(&["customer_request", "out_of_stock"]);
                        call(
                            &svc,
                            &mut stats,
                            "POST",
                            &format!("/orders/{order}/cancel"),
                            json!({"reason": reason}),
                            None,
                        )
                        .await;
                        None
                    }
                    _ => {
                        if rng.chance(0.02) {
                            // a client bug: fulfil twice (the second is a 409, no event)
                            call(
                                &svc,
                                &mut stats,
                                "POST",
                                &format!("/orders/{order}/fulfillment"),
                                json!({"warehouse": "fra-1", "carrier": "dhl"}),
                                None,
                            )
                            .await;
                        }
                        let warehouse = *rng.pick(&["fra-1", "dub-2", "iad-1", "nrt-1", "gru-1"]);
                        let carrier = *rng.pick(&["dhl", "ups", "fedex", "royal_mail", "yamato"]);
                        call(
                            &svc,
                            &mut stats,
                            "POST",
                            &format!("/orders/{order}/fulfillment"),
                            json!({"warehouse": warehouse, "carrier": carrier}),
                            None,
                        )
                        .await;
                        None
                    }
                };
                match next {
                    Some(s) => open[i].1 = s,
                    None => {
                        open.swap_remove(i);
                    }
                }
            }
        }
        emitted = svc.stream().len();
        progress.set_position(emitted as u64);
    }
    progress.finish_and_clear();

    // the functions' events, in publish order
    let mut parser = RecordParser::new();
    let mut records = Vec::with_capacity(config.events);
    for (key, data) in svc.stream().drain() {
        let mut buf = data.clone();
        let event = parser
            .parse(&mut buf)
            .map_err(|r| anyhow::anyhow!("an order function emitted an invalid event: {r}"))?;
        let occurred = event.occurred_at_ms;
        let expected = Expected::Valid(event.event_type());
        records.push(GeneratedRecord {
            partition_key: key,
            body: Body::Json(data),
            expected,
            occurred_at_ms: occurred,
            arrival_ms: occurred + rng.range(5, 400) as i64,
        });
    }
    // buggy producers' poison, spread through the stream
    let poison_n = config.events.saturating_sub(records.len());
    if poison_n > 0 && poison_total > 0.0 {
        let poison = generate(TrafficConfig {
            events: poison_n,
            poison: config.poison.only_poison(),
            ..config.clone()
        });
        for mut p in poison
            .into_iter()
            .filter(|p| matches!(p.expected, Expected::Poison(_)))
        {
            let at = rng.below(records.len() as u64 + 1) as usize;
            let near = records.get(at.min(records.len().saturating_sub(1)));
            if let Some(n) = near {
                p.occurred_at_ms = n.occurred_at_ms;
                p.arrival_ms = n.arrival_ms;
            }
            records.insert(at, p);
        }
    }
    Ok((records, stats))
}
