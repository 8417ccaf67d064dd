//! Deterministic traffic for tests, benchmarks and the main job.
//!
//! Simulates users and orders with consistent state (an order's events come
//! in a legal order, amounts add up, payments charge the order total), and
//! mixes in poison records of every kind at configurable rates. Each record
//! says what the decoder must make of it ([`Expected`]), so tests can check
//! every verdict. The same seed always yields the same bytes.

pub mod kinesis;
mod poison;
pub mod rng;

use std::collections::BTreeMap;

use pipeline_schemas::{
    CancelReason, Channel, Country, Currency, Event, EventData, EventType, LineItem, LoginMethod,
    OrderCancelled, OrderCreated, OrderFulfilled, OrderPaymentFailed, OrderPaymentSucceeded,
    PaymentFailureReason, PaymentMethod, ReasonCode, UserLoggedIn, UserProfileUpdated,
    UserSignedUp,
};
use rng::Rng;
use thiserror::Error;

/// 2026-11-25T12:00:00Z: the default start of event time.
pub const DEFAULT_START_MS: i64 = 1_795_608_000_000;

/// What the decoder must make of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expected {
    /// A valid event of this type.
    Valid(EventType),
    /// A poison record with this reason.
    Poison(ReasonCode),
}

/// A record's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The record's data (usually JSON; poison records may be anything).
    Json(Vec<u8>),
    /// Text to put in `kinesis.data` verbatim: corrupt base64.
    RawBase64(String),
}

/// One generated record.
#[derive(Debug, Clone)]
pub struct GeneratedRecord {
    /// `order_id` or `user_id`, as producers use.
    pub partition_key: String,
    /// The record bytes.
    pub body: Body,
    /// The verdict the decoder must reach.
    pub expected: Expected,
    /// Event time, epoch milliseconds.
    pub occurred_at_ms: i64,
    /// Arrival time in the stream, epoch milliseconds (a little after).
    pub arrival_ms: i64,
}

/// Per-kind probability that a record is poison of that kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoisonMix {
    rates: BTreeMap<ReasonCode, f64>,
}

/// A poison-mix specification could not be read.
#[derive(Debug, Error, PartialEq)]
pub enum MixError {
    /// Not `kind=rate`.
    #[error("expected KIND=RATE, got {0:?}")]
    Syntax(String),
    /// Unknown reason code.
    #[error("unknown poison kind {0:?}; known: {1}")]
    UnknownKind(String, String),
    /// Rate outside 0..=1, or rates adding up past 1.
    #[error("rates must be within 0..=1 and add up to at most 1 (got {0})")]
    Rate(String),
}

impl PoisonMix {
    /// No poison.
    pub fn none() -> Self {
        PoisonMix::default()
    }

    /// `total` spread over every kind; `record_too_large` gets a tenth of
    /// a share (they are big, and rare in real streams).
    pub fn uniform(total: f64) -> Self {
        let shares: Vec<(ReasonCode, f64)> = ReasonCode::ALL
            .iter()
            .map(|&r| {
                (
                    r,
                    if r == ReasonCode::RecordTooLarge {
                        0.1
                    } else {
                        1.0
                    },
                )
            })
            .collect();
        let sum: f64 = shares.iter().map(|(_, s)| s).sum();
        PoisonMix {
            rates: shares
                .into_iter()
                .map(|(r, s)| (r, total * s / sum))
                .collect(),
        }
    }

    /// Parses `kind=rate,kind=rate` (e.g. `malformed_json=0.01,total_mismatch=0.002`).
    pub fn parse(spec: &str) -> Result<Self, MixError> {
        let mut rates = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, rate) = part
                .split_once('=')
                .ok_or_else(|| MixError::Syntax(part.into()))?;
            let code = ReasonCode::from_code(kind.trim()).ok_or_else(|| {
                let known: Vec<_> = ReasonCode::ALL.iter().map(|r| r.as_str()).collect();
                MixError::UnknownKind(kind.into(), known.join(", "))
            })?;
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| MixError::Rate(part.into()))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(MixError::Rate(part.into()));
            }
            rates.insert(code, rate);
        }
        let mix = PoisonMix { rates };
        if mix.total() > 1.0 {
            return Err(MixError::Rate(format!("{}", mix.total())));
        }
        Ok(mix)
    }

    /// The same mix scaled so that every record is poison (kinds keep their
    /// relative weights): for producing poison records only.
    pub fn only_poison(&self) -> Self {
        let total = self.total();
        PoisonMix {
            rates: self
                .rates
                .iter()
                .map(|(&k, &v)| (k, if total > 0.0 { v / total } else { 0.0 }))
                .collect(),
        }
    }

    /// Probability that a record is poison of any kind.
    pub fn total(&self) -> f64 {
        self.rates.values().sum()
    }

    /// The configured rates.
    pub fn rates(&self) -> impl Iterator<Item = (ReasonCode, f64)> + '_ {
        self.rates.iter().map(|(&r, &p)| (r, p))
    }

    fn draw(&self, rng: &mut Rng) -> Option<ReasonCode> {
        if self.rates.is_empty() {
            return None;
        }
        let mut u = rng.unit();
        for (&code, &p) in &self.rates {
            if u < p {
                return Some(code);
            }
            u -= p;
        }
        None
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Records to produce (valid and poison).
    pub events: usize,
    /// Same seed, same bytes.
    pub seed: u64,
    /// Event time of the first record.
    pub start_ms: i64,
    /// Mean event-time rate (events per second of simulated time).
    pub events_per_second: f64,
    /// Poison rates by kind.
    pub poison: PoisonMix,
    /// Size above which records are too large; `record_too_large` poison
    /// is made just past it.
    pub max_record_bytes: usize,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            events: 10_000,
            seed: 42,
            start_ms: DEFAULT_START_MS,
            events_per_second: 200.0,
            poison: PoisonMix::none(),
            max_record_bytes: pipeline_schemas::invocation::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// Countries with their currency and a traffic weight: the markets every
/// simulation of this project draws from.
pub const MARKETS: &[(&str, &str, u32)] = &[
    ("US", "USD", 30),
    ("DE", "EUR", 14),
    ("GB", "GBP", 12),
    ("FR", "EUR", 9),
    ("JP", "JPY", 8),
    ("BR", "BRL", 6),
    ("IN", "INR", 6),
    ("CA", "CAD", 5),
    ("NL", "EUR", 4),
    ("ES", "EUR", 3),
    ("AU", "AUD", 2),
    ("SE", "SEK", 1),
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "example.net",
    "corp.example.de",
];
const WAREHOUSES: &[&str] = &["fra-1", "dub-2", "iad-1", "nrt-1", "gru-1"];
const CARRIERS: &[&str] = &["dhl", "ups", "fedex", "royal_mail", "yamato"];
const PROFILE_FIELDS: &[&str] = &[
    "display_name",
    "address",
    "phone",
    "avatar",
    "language",
    "newsletter",
];
const SKUS: usize = 400;

struct User {
    id: String,
    market: usize,
    method: PaymentMethod,
}

#[derive(Clone, Copy, PartialEq)]
enum OrderState {
    Created,
    PaymentFailed,
    Paid,
}

struct Order {
    id: String,
    user: usize,
    total: u64,
    units: u32,
    state: OrderState,
}

/// The simulation: state of every user and open order, and event time.
pub struct Generator {
    config: TrafficConfig,
    rng: Rng,
    now_ms: i64,
    users: Vec<User>,
    orders: Vec<Order>,
    produced: usize,
    buf: Vec<u8>,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: TrafficConfig) -> Self {
        Generator {
            rng: Rng::new(config.seed),
            now_ms: config.start_ms,
            config,
            users: Vec::new(),
            orders: Vec::new(),
            produced: 0,
            buf: Vec::with_capacity(1024),
        }
    }

    /// The next record, or `None` once `config.events` were produced.
    pub fn next_record(&mut self) -> Option<GeneratedRecord> {
        if self.produced >= self.config.events {
            return None;
        }
        self.produced += 1;
        let mean_gap = (1000.0 / self.config.events_per_second.max(0.001)).max(0.0);
        self.now_ms += self.rng.range(0, (2.0 * mean_gap) as u64) as i64;
        let arrival_ms = self.now_ms + self.rng.range(5, 400) as i64;
        if let Some(kind) = self.config.poison.draw(&mut self.rng) {
            let (partition_key, body) = poison::make(self, kind);
            return Some(GeneratedRecord {
                partition_key,
                body,
                expected: Expected::Poison(kind),
                occurred_at_ms: self.now_ms,
                arrival_ms,
            });
        }
        let (key, event_type) = self.step();
        Some(GeneratedRecord {
            partition_key: key,
            body: Body::Json(self.buf.clone()),
            expected: Expected::Valid(event_type),
            occurred_at_ms: self.now_ms,
            arrival_ms,
        })
    }

    /// Writes `data` as a full event into `self.buf`.
    fn emit(&mut self, data: EventData<'_>) -> (String, EventType) {
        let event_id = self.rng.uuid();
        let correlation_id = self.rng.uuid();
        let source = source_of(data.event_type());
        let event = Event {
            event_id: &event_id,
            schema_version: 1,
            occurred_at_ms: self.now_ms,
            source,
            correlation_id: &correlation_id,
            data,
        };
        self.buf.clear();
        event.write_json(&mut self.buf);
        (event.data.partition_key().to_owned(), event.event_type())
    }

    fn step(&mut self) -> (String, EventType) {
        // action weights: sign-up, login, profile, new order, advance order
        let weights = if self.users.len() < 20 {
            [1, 0, 0, 0, 0]
        } else if self.orders.is_empty() {
            [10, 18, 4, 30, 0]
        } else {
            [10, 18, 4, 22, 46]
        };
        match self.rng.weighted(&weights) {
            0 => self.sign_up(),
            1 => self.log_in(),
            2 => self.update_profile(),
            3 => self.create_order(),
            _ => self.advance_order(),
        }
    }

    fn sign_up(&mut self) -> (String, EventType) {
        let weights: Vec<u32> = MARKETS.iter().map(|m| m.2).collect();
        let market = self.rng.weighted(&weights);
        let id = format!("usr_{:012x}", self.rng.next_u64() >> 16);
        let email = format!("{}@{}", id.replace('_', "."), self.rng.pick(DOMAINS));
        let method = *self.rng.pick(&[
            PaymentMethod::Card,
            PaymentMethod::Card,
            PaymentMethod::Card,
            PaymentMethod::Paypal,
            PaymentMethod::ApplePay,
            PaymentMethod::BankTransfer,
        ]);
        let channel = *self.rng.pick(Channel::ALL);
        let opt_in = self.rng.chance(0.35);
        self.users.push(User {
            id: id.clone(),
            market,
            method,
        });
        self.emit(EventData::UserSignedUp(UserSignedUp {
            user_id: &id,
            email: &email,
            country: country(market),
            channel,
            marketing_opt_in: opt_in,
        }))
    }

    fn any_user(&mut self) -> usize {
        self.rng.below(self.users.len() as u64) as usize
    }

    fn log_in(&mut self) -> (String, EventType) {
        let u = self.any_user();
        let method = *self.rng.pick(LoginMethod::ALL);
        let id = self.users[u].id.clone();
        let market = self.users[u].market;
        self.emit(EventData::UserLoggedIn(UserLoggedIn {
            user_id: &id,
            method,
            country: country(market),
        }))
    }

    fn update_profile(&mut self) -> (String, EventType) {
        let u = self.any_user();
        let id = self.users[u].id.clone();
        let n = self.rng.range(1, 3) as usize;
        let start = self.rng.below(PROFILE_FIELDS.len() as u64) as usize;
        let fields: Vec<&str> = (0..n)
            .map(|i| PROFILE_FIELDS[(start + i) % PROFILE_FIELDS.len()])
            .collect();
        self.emit(EventData::UserProfileUpdated(UserProfileUpdated {
            user_id: &id,
            changed_fields: fields,
        }))
    }

    fn create_order(&mut self) -> (String, EventType) {
        let u = self.any_user();
        let market = self.users[u].market;
        let id = format!("ord_{:016x}", self.rng.next_u64());
        let lines = [1, 1, 1, 2, 2, 3, 4, 6][self.rng.below(8) as usize];
        let skus: Vec<String> = (0..lines)
            .map(|_| {
                // a skewed catalogue: low numbers sell more
                let a = self.rng.below(SKUS as u64);
                let b = self.rng.below(SKUS as u64);
                format!("SKU-{:05}", a.min(b))
            })
            .collect();
        let mut items = Vec::with_capacity(lines);
        for sku in &skus {
            let quantity = [1, 1, 1, 1, 2, 2, 3, 5][self.rng.below(8) as usize];
            let unit_price_cents = self.rng.range(199, 24_999) / 100 * 100 + 99;
            items.push(LineItem {
                sku,
                quantity,
                unit_price_cents,
            });
        }
        let total: u64 = items
            .iter()
            .map(|i| u64::from(i.quantity) * i.unit_price_cents)
            .sum();
        let units: u32 = items.iter().map(|i| i.quantity).sum();
        let user_id = self.users[u].id.clone();
        let out = self.emit(EventData::OrderCreated(OrderCreated {
            order_id: &id,
            user_id: &user_id,
            country: country(market),
            currency: currency(market),
            items,
            total_cents: total,
        }));
        self.orders.push(Order {
            id,
            user: u,
            total,
            units,
            state: OrderState::Created,
        });
        out
    }

    fn advance_order(&mut self) -> (String, EventType) {
        let o = self.rng.below(self.orders.len() as u64) as usize;
        let state = self.orders[o].state;
        let roll = self.rng.unit();
        let (order_id, total, units, user) = {
            let ord = &self.orders[o];
            (ord.id.clone(), ord.total, ord.units, ord.user)
        };
        let user_id = self.users[user].id.clone();
        let market = self.users[user].market;
        let method = self.users[user].method;
        let cancel = |reason| {
            EventData::OrderCancelled(OrderCancelled {
                order_id: &order_id,
                user_id: &user_id,
                country: country(market),
                reason,
            })
        };
        let (data, next) = match state {
            OrderState::Created | OrderState::PaymentFailed if roll < 0.06 => (
                cancel(if state == OrderState::Created {
                    CancelReason::CustomerRequest
                } else {
                    CancelReason::PaymentFailed
                }),
                None,
            ),
            OrderState::Created | OrderState::PaymentFailed => {
                let fails = if state == OrderState::Created {
                    0.18
                } else {
                    0.4
                };
                if self.rng.chance(fails) {
                    let reason = *self.rng.pick(PaymentFailureReason::ALL);
                    (
                        EventData::OrderPaymentFailed(OrderPaymentFailed {
                            order_id: &order_id,
                            user_id: &user_id,
                            country: country(market),
                            amount_cents: total,
                            currency: currency(market),
                            method,
                            reason,
                        }),
                        Some(OrderState::PaymentFailed),
                    )
                } else {
                    let payment_id = format!("pay_{:016x}", self.rng.next_u64());
                    return self.finish_step(
                        o,
                        Some(OrderState::Paid),
                        EventData::OrderPaymentSucceeded(OrderPaymentSucceeded {
                            order_id: &order_id,
                            user_id: &user_id,
                            country: country(market),
                            payment_id: &payment_id,
                            amount_cents: total,
                            currency: currency(market),
                            method,
                        }),
                    );
                }
            }
            OrderState::Paid if roll < 0.05 => (
                cancel(if self.rng.chance(0.5) {
                    CancelReason::CustomerRequest
                } else {
                    CancelReason::OutOfStock
                }),
                None,
            ),
            OrderState::Paid => {
                let warehouse = *self.rng.pick(WAREHOUSES);
                let carrier = *self.rng.pick(CARRIERS);
                (
                    EventData::OrderFulfilled(OrderFulfilled {
                        order_id: &order_id,
                        user_id: &user_id,
                        country: country(market),
                        warehouse,
                        carrier,
                        shipped_items: units,
                    }),
                    None,
                )
            }
        };
        self.finish_step(o, next, data)
    }

    fn finish_step(
        &mut self,
        o: usize,
        next: Option<OrderState>,
        data: EventData<'_>,
    ) -> (String, EventType) {
        let out = self.emit(data);
        match next {
            Some(state) => self.orders[o].state = state,
            None => {
                self.orders.swap_remove(o);
            }
        }
        out
    }
}

impl Iterator for Generator {
    type Item = GeneratedRecord;
    fn next(&mut self) -> Option<GeneratedRecord> {
        self.next_record()
    }
}

fn source_of(t: EventType) -> &'static str {
    match t {
        EventType::UserSignedUp => "users.sign-up",
        EventType::UserLoggedIn => "users.log-in",
        EventType::UserProfileUpdated => "users.update-profile",
        EventType::OrderCreated => "orders.create-order",
        EventType::OrderPaymentSucceeded | EventType::OrderPaymentFailed => "orders.pay-order",
        EventType::OrderFulfilled => "orders.fulfil-order",
        EventType::OrderCancelled => "orders.cancel-order",
    }
}

fn country(market: usize) -> Country {
    Country::new(MARKETS[market].0).unwrap_or_else(unreachable_market)
}

fn currency(market: usize) -> Currency {
    Currency::new(MARKETS[market].1).unwrap_or_else(unreachable_currency)
}

#[cold]
fn unreachable_market() -> Country {
    panic!("MARKETS holds only valid country codes")
}

#[cold]
fn unreachable_currency() -> Currency {
    panic!("MARKETS holds only valid currency codes")
}

/// All records of `config`, in production order.
pub fn generate(config: TrafficConfig) -> Vec<GeneratedRecord> {
    Generator::new(config).collect()
}

/// Counts of expected verdicts, for reconciliation.
pub fn expected_counts(records: &[GeneratedRecord]) -> BTreeMap<Expected, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.expected).or_insert(0) += 1;
    }
    counts
}
