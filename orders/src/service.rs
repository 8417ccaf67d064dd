//! The order and user functions' logic, independent of HTTP and AWS: validate
//! at the boundary, apply the state machine, commit the state change together
//! with its event (transactional outbox), then publish.

use md5::{Digest, Md5};
use pipeline_schemas::rules::{self, MAX_ID_CHARS, MAX_INT32, MAX_SAFE_INTEGER, MAX_SHORT_CHARS};
use pipeline_schemas::{
    CancelReason, Channel, Country, Currency, Event, EventData, LineItem, LoginMethod,
    OrderCancelled, OrderCreated, OrderFulfilled, OrderPaymentFailed, OrderPaymentSucceeded,
    PaymentFailureReason, PaymentMethod, RecordParser, UserLoggedIn, UserSignedUp,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ids::Ids;
use crate::model::{HistoryEntry, Item, Order, OrderStatus, User};
use crate::outbox::publish;
use crate::ports::{
    Charge, ChargeOutcome, Commit, EventStream, IdempotencyRecord, OutboxEntry, PaymentProvider,
    Store, StoreError, Write,
};

/// What a request plans to commit: the state change, its event, and the
/// response to send (and remember, with an `Idempotency-Key`).
type Planned = (Write, OutboxEntry, ApiResponse);

/// A request, as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path, e.g. `/orders/ord_1/payment`.
    pub path: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
    /// The `X-Correlation-Id` header (a UUID), if the caller has one.
    pub correlation_id: Option<&'a str>,
}

/// A response: status and JSON body (`application/problem+json` for errors).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

impl ApiResponse {
    /// Whether the body is a problem document.
    pub fn is_problem(&self) -> bool {
        self.status >= 400
    }
}

fn problem(status: u16, kind: &str, title: &str, detail: impl Into<String>) -> ApiResponse {
    ApiResponse {
        status,
        body: json!({
            "type": format!("https://kinesis-pipeline.dev/problems/{kind}"),
            "title": title,
            "status": status,
            "detail": detail.into(),
        }),
    }
}

fn invalid(detail: impl Into<String>) -> ApiResponse {
    problem(422, "validation", "The request breaks a rule", detail)
}

pub(crate) fn store_error(e: StoreError) -> ApiResponse {
    match e {
        StoreError::Throttled(m) => {
            problem(429, "throttled", "Too many requests; retry with backoff", m)
        }
        StoreError::Transient(m) => problem(503, "unavailable", "Try again shortly", m),
        StoreError::Conflict(m) => problem(409, "conflict", "The resource changed", m),
        StoreError::KeyTaken => problem(
            409,
            "conflict",
            "A request with this Idempotency-Key is in progress",
            "",
        ),
        StoreError::Permanent(m) => problem(500, "internal", "Internal error", m),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemIn {
    sku: String,
    quantity: u64,
    unit_price_cents: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrderIn {
    user_id: String,
    currency: String,
    items: Vec<ItemIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayIn {
    method: String,
    card_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FulfilIn {
    warehouse: String,
    carrier: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelIn {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUpIn {
    email: String,
    country: String,
    channel: String,
    marketing_opt_in: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogInIn {
    method: String,
    country: String,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiResponse> {
    serde_json::from_slice(body).map_err(|e| {
        problem(
            400,
            "malformed",
            "The body is not the expected JSON",
            e.to_string(),
        )
    })
}

fn id_ok(s: &str) -> bool {
    rules::has_char_len(s, MAX_ID_CHARS)
}

/// The routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /orders`
    CreateOrder,
    /// `POST /orders/{id}/payment`
    Pay(String),
    /// `POST /orders/{id}/fulfillment`
    Fulfil(String),
    /// `POST /orders/{id}/cancel`
    Cancel(String),
    /// `GET /orders/{id}`
    GetOrder(String),
    /// `POST /users`
    SignUp,
    /// `POST /users/{id}/login`
    LogIn(String),
}

impl Route {
    /// Matches a method and path; `Err` is the 404/405 response.
    pub fn of(method: &str, path: &str) -> Result<Route, ApiResponse> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let route = match parts.as_slice() {
            ["orders"] => ("POST", Route::CreateOrder),
            ["orders", id] => ("GET", Route::GetOrder((*id).into())),
            ["orders", id, "payment"] => ("POST", Route::Pay((*id).into())),
            ["orders", id, "fulfillment"] => ("POST", Route::Fulfil((*id).into())),
            ["orders", id, "cancel"] => ("POST", Route::Cancel((*id).into())),
            ["users"] => ("POST", Route::SignUp),
            ["users", id, "login"] => ("POST", Route::LogIn((*id).into())),
            _ => {
                return Err(problem(
                    404,
                    "not-found",
                    "No such resource",
                    path.to_owned(),
                ));
            }
        };
        if route.0 != method {
            return Err(problem(
                405,
                "method",
                "Method not allowed",
                format!("{method} {path}"),
            ));
        }
        Ok(route.1)
    }
}

/// The order and user functions.
pub struct OrderService<S, E, P> {
    store: S,
    stream: E,
    payments: P,
    ids: Ids,
    publish_after_commit: bool,
}

impl<S: Store, E: EventStream, P: PaymentProvider> OrderService<S, E, P> {
    /// The service over its ports.
    pub fn new(store: S, stream: E, payments: P, ids: Ids) -> Self {
        OrderService {
            store,
            stream,
            payments,
            ids,
            publish_after_commit: true,
        }
    }

    /// Skips the publish after commit, as a crash between commit and publish
    /// would (the relay then publishes): for tests of the relay.
    pub fn simulate_crash_after_commit(&mut self, crash: bool) {
        self.publish_after_commit = !crash;
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream.
    pub fn stream(&self) -> &E {
        &self.stream
    }

    /// The payment provider.
    pub fn payments(&self) -> &P {
        &self.payments
    }

    /// The id and time source.
    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// Handles one request.
    pub async fn handle(&self, req: ApiRequest<'_>) -> ApiResponse {
        let route = match Route::of(req.method, req.path) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let Some(key) = req.idempotency_key.filter(|_| req.method == "POST") else {
            return self.execute(&route, &req, None).await;
        };
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return problem(
                400,
                "idempotency-key",
                "Bad Idempotency-Key",
                "1 to 255 printable ASCII characters",
            );
        }
        let hash = {
            let mut h = Md5::new();
            h.update(req.method.as_bytes());
            h.update(b" ");
            h.update(req.path.as_bytes());
            h.update(b"\n");
            h.update(req.body);
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        for _ in 0..2 {
            match self.store.idempotency(key).await {
                Ok(Some(stored)) if stored.request_hash == hash => {
                    return ApiResponse {
                        status: stored.status,
                        body: serde_json::from_str(&stored.body).unwrap_or(Value::Null),
                    };
                }
                Ok(Some(_)) => {
                    return invalid("this Idempotency-Key was used with another request");
                }
                Ok(None) => {}
                Err(e) => return store_error(e),
            }
            let resp = self.execute(&route, &req, Some((key, &hash))).await;
            if resp.status == 409 && resp.body["detail"] == "" {
                continue; // the key was taken concurrently: answer with its result
            }
            return resp;
        }
        problem(
            409,
            "conflict",
            "A request with this Idempotency-Key is in progress",
            "",
        )
    }

    async fn execute(
        &self,
        route: &Route,
        req: &ApiRequest<'_>,
        key: Option<(&str, &str)>,
    ) -> ApiResponse {
        let correlation_id = match req.correlation_id {
            Some(c) if rules::is_uuid(c) => c.to_owned(),
            _ => self.ids.uuid(),
        };
        let planned = match route {
            Route::GetOrder(id) => {
                return match self.store.order(id).await {
                    Ok(Some(o)) => ApiResponse {
                        status: 200,
                        body: serde_json::to_value(&o).unwrap_or(Value::Null),
                    },
                    Ok(None) => problem(404, "not-found", "No such order", id.clone()),
                    Err(e) => store_error(e),
                };
            }
            Route::CreateOrder => self.create_order(req.body, &correlation_id).await,
            Route::Pay(id) => self.pay(id, req.body, &correlation_id).await,
            Route::Fulfil(id) => self.fulfil(id, req.body, &correlation_id).await,
            Route::Cancel(id) => self.cancel(id, req.body, &correlation_id).await,
            Route::SignUp => self.sign_up(req.body, &correlation_id).await,
            Route::LogIn(id) => self.log_in(id, req.body, &correlation_id).await,
        };
        let (write, outbox, response) = match planned {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        let idempotency = key.map(|(key, hash)| IdempotencyRecord {
            key: key.to_owned(),
            request_hash: hash.to_owned(),
            status: response.status,
            body: response.body.to_string(),
        });
        let commit = Commit {
            write,
            outbox: outbox.clone(),
            idempotency,
        };
        match self.store.commit(commit).await {
            Ok(()) => {}
            Err(StoreError::KeyTaken) => {
                return problem(
                    409,
                    "conflict",
                    "A request with this Idempotency-Key is in progress",
                    "",
                );
            }
            Err(StoreError::Conflict(m)) => {
                return problem(
                    409,
                    "conflict",
                    "The order changed meanwhile; read it again",
                    m,
                );
            }
            Err(e) => return store_error(e),
        }
        if self.publish_after_commit
            && let Err(e) =
                publish(&self.store, &self.stream, std::slice::from_ref(&outbox), 3).await
        {
            // committed: the relay publishes it
            tracing::warn!(error = %e, event_id = %outbox.event_id, "publish after commit failed");
        }
        response
    }

    /// Builds, serialises and validates an event: nothing leaves that the
    /// pipeline would reject.
    fn event(
        &self,
        data: EventData<'_>,
        source: &str,
        correlation_id: &str,
    ) -> Result<OutboxEntry, ApiResponse> {
        let event_id = self.ids.uuid();
        let event = Event {
            event_id: &event_id,
            schema_version: 1,
            occurred_at_ms: self.ids.now_ms(),
            source,
            correlation_id,
            data,
        };
        let mut bytes = event.to_json();
        let partition_key = event.data.partition_key().to_owned();
        let created_ms = event.occurred_at_ms;
        RecordParser::new().parse(&mut bytes.clone()).map_err(|r| {
            problem(
                500,
                "internal",
                "Event would break the contract",
                r.to_string(),
            )
        })?;
        let data = String::from_utf8(std::mem::take(&mut bytes)).unwrap_or_default();
        Ok(OutboxEntry {
            event_id,
            partition_key,
            data,
            created_ms,
        })
    }

    async fn load(&self, id: &str) -> Result<Order, ApiResponse> {
        match self.store.order(id).await {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err(problem(404, "not-found", "No such order", id.to_owned())),
            Err(e) => Err(store_error(e)),
        }
    }

    fn transition(order: &Order, next: OrderStatus) -> Result<(), ApiResponse> {
        if order.status.can_become(next) {
            Ok(())
        } else {
            Err(problem(
                409,
                "illegal-transition",
                "The order cannot make this change",
                format!("{} -> {}", order.status.as_str(), next.as_str()),
            ))
        }
    }

    /// The commit of a status change: the order at its next version (with a
    /// history entry for `outbox`'s event), conditional on the version read.
    fn transition_commit(
        &self,
        order: &Order,
        next: OrderStatus,
        outbox: OutboxEntry,
        detail: Option<String>,
        body: Value,
    ) -> Planned {
        let mut o = order.clone();
        o.status = next;
        o.version += 1;
        o.history.push(HistoryEntry {
            status: next,
            at_ms: self.ids.now_ms(),
            event_id: outbox.event_id.clone(),
            detail,
        });
        let write = Write::UpdateOrder {
            order: o,
            expected_version: order.version,
        };
        (write, outbox, ApiResponse { status: 200, body })
    }

    async fn create_order(&self, body: &[u8], cid: &str) -> Result<Planned, ApiResponse> {
        let req: CreateOrderIn = parse(body)?;
        if !id_ok(&req.user_id) {
            return Err(invalid("user_id must be 1 to 128 characters"));
        }
        let currency = Currency::new(&req.currency)
            .ok_or_else(|| invalid("currency must be ISO 4217 (e.g. EUR)"))?;
        if !(1..=rules::MAX_ITEMS).contains(&req.items.len()) {
            return Err(invalid("an order has 1 to 100 items"));
        }
        let mut total: u128 = 0;
        for (i, item) in req.items.iter().enumerate() {
            if !rules::has_char_len(&item.sku, MAX_SHORT_CHARS) {
                return Err(invalid(format!(
                    "items[{i}].sku must be 1 to 64 characters"
                )));
            }
            if !(1..=MAX_INT32).contains(&item.quantity) {
                return Err(invalid(format!(
                    "items[{i}].quantity must be 1 to {MAX_INT32}"
                )));
            }
            if item.unit_price_cents > MAX_SAFE_INTEGER {
                return Err(invalid(format!("items[{i}].unit_price_cents is too large")));
            }
            total += u128::from(item.quantity) * u128::from(item.unit_price_cents);
        }
        if total > u128::from(MAX_SAFE_INTEGER) {
            return Err(invalid("the order total is too large"));
        }
        let user = match self.store.user(&req.user_id).await {
            Ok(Some(u)) => u,
            Ok(None) => return Err(invalid(format!("unknown user {}", req.user_id))),
            Err(e) => return Err(store_error(e)),
        };
        let country =
            Country::new(&user.country).ok_or_else(|| invalid("the user's country is invalid"))?;
        let order_id = self.ids.id("ord");
        let items: Vec<Item> = req
            .items
            .iter()
            .map(|i| Item {
                sku: i.sku.clone(),
                quantity: i.quantity as u32,
                unit_price_cents: i.unit_price_cents,
            })
            .collect();
        let outbox = self.event(
            EventData::OrderCreated(OrderCreated {
                order_id: &order_id,
                user_id: &user.user_id,
                country,
                currency,
                items: items
                    .iter()
                    .map(|i| LineItem {
                        sku: &i.sku,
                        quantity: i.quantity,
                        unit_price_cents: i.unit_price_cents,
                    })
                    .collect(),
                total_cents: total as u64,
            }),
            "orders.create-order",
            cid,
        )?;
        let order = Order {
            order_id: order_id.clone(),
            user_id: user.user_id.clone(),
            country: user.country.clone(),
            currency: req.currency.clone(),
            items,
            total_cents: total as u64,
            status: OrderStatus::Created,
            version: 1,
            history: vec![HistoryEntry {
                status: OrderStatus::Created,
                at_ms: outbox.created_ms,
                event_id: outbox.event_id.clone(),
                detail: None,
            }],
        };
        let resp = ApiResponse {
            status: 201,
            body: json!({"order_id": order_id, "status": "created", "total_cents": order.total_cents, "currency": order.currency}),
        };
        Ok((Write::NewOrder(order), outbox, resp))
    }

    async fn pay(&self, id: &str, body: &[u8], cid: &str) -> Result<Planned, ApiResponse> {
        let req: PayIn = parse(body)?;
        let method =
            PaymentMethod::parse(&req.method).ok_or_else(|| invalid(PaymentMethod::EXPECTED))?;
        let order = self.load(id).await?;
        Self::transition(&order, OrderStatus::Paid)?;
        let (country, currency) = codes(&order)?;
        // keyed by order version: concurrent or retried attempts on the same
        // state charge once
        let outcome = self
            .payments
            .charge(Charge {
                idempotency_key: format!("{}:{}", order.order_id, order.version),
                amount_cents: order.total_cents,
                currency: order.currency.clone(),
                method: req.method.clone(),
                card_number: req.card_number.clone(),
            })
            .await
            .map_err(|e| problem(422, "payment", "The payment request is invalid", e))?;
        let (next, outbox, detail, body) = match outcome {
            ChargeOutcome::Succeeded { payment_id } => {
                let outbox = self.event(
                    EventData::OrderPaymentSucceeded(OrderPaymentSucceeded {
                        order_id: &order.order_id,
                        user_id: &order.user_id,
                        country,
                        payment_id: &payment_id,
                        amount_cents: order.total_cents,
                        currency,
                        method,
                    }),
                    "orders.pay-order",
                    cid,
                )?;
                let body =
                    json!({"order_id": order.order_id, "status": "paid", "payment_id": payment_id});
                (OrderStatus::Paid, outbox, Some(payment_id), body)
            }
            ChargeOutcome::Declined { reason } => {
                let r = PaymentFailureReason::parse(reason)
                    .unwrap_or(PaymentFailureReason::ProviderError);
                Self::transition(&order, OrderStatus::PaymentFailed)?;
                let outbox = self.event(
                    EventData::OrderPaymentFailed(OrderPaymentFailed {
                        order_id: &order.order_id,
                        user_id: &order.user_id,
                        country,
                        amount_cents: order.total_cents,
                        currency,
                        method,
                        reason: r,
                    }),
                    "orders.pay-order",
                    cid,
                )?;
                let body = json!({"order_id": order.order_id, "status": "payment_failed", "reason": reason});
                (
                    OrderStatus::PaymentFailed,
                    outbox,
                    Some(reason.to_owned()),
                    body,
                )
            }
        };
        Ok(self.transition_commit(&order, next, outbox, detail, body))
    }

    async fn fulfil(&self, id: &str, body: &[u8], cid: &str) -> Result<Planned, ApiResponse> {
        let req: FulfilIn = parse(body)?;
        if !id_ok(&req.warehouse) || !id_ok(&req.carrier) {
            return Err(invalid("warehouse and carrier must be 1 to 128 characters"));
        }
        let order = self.load(id).await?;
        Self::transition(&order, OrderStatus::Fulfilled)?;
        let (country, _) = codes(&order)?;
        let shipped: u64 = order.items.iter().map(|i| u64::from(i.quantity)).sum();
        let outbox = self.event(
            EventData::OrderFulfilled(OrderFulfilled {
                order_id: &order.order_id,
                user_id: &order.user_id,
                country,
                warehouse: &req.warehouse,
                carrier: &req.carrier,
                shipped_items: shipped.min(MAX_INT32) as u32,
            }),
            "orders.fulfil-order",
            cid,
        )?;
        let body = json!({"order_id": order.order_id, "status": "fulfilled"});
        Ok(self.transition_commit(
            &order,
            OrderStatus::Fulfilled,
            outbox,
            Some(req.carrier),
            body,
        ))
    }

    async fn cancel(&self, id: &str, body: &[u8], cid: &str) -> Result<Planned, ApiResponse> {
        let req: CancelIn = parse(body)?;
        let reason =
            CancelReason::parse(&req.reason).ok_or_else(|| invalid(CancelReason::EXPECTED))?;
        let order = self.load(id).await?;
        Self::transition(&order, OrderStatus::Cancelled)?;
        let (country, _) = codes(&order)?;
        let outbox = self.event(
            EventData::OrderCancelled(OrderCancelled {
                order_id: &order.order_id,
                user_id: &order.user_id,
                country,
                reason,
            }),
            "orders.cancel-order",
            cid,
        )?;
        let body = json!({"order_id": order.order_id, "status": "cancelled"});
        Ok(self.transition_commit(
            &order,
            OrderStatus::Cancelled,
            outbox,
            Some(req.reason),
            body,
        ))
    }

    async fn sign_up(&self, body: &[u8], cid: &str) -> Result<Planned, ApiResponse> {
        let req: SignUpIn = parse(body)?;
        if !rules::is_email(&req.email) {
            return Err(invalid("email is not an e-mail address"));
        }
        let country = Country::new(&req.country)
            .ok_or_else(|| invalid("country must be ISO 3166-1 alpha-2"))?;
        let channel = Channel::parse(&req.channel).ok_or_else(|| invalid(Channel::EXPECTED))?;
        let user_id = self.ids.id("usr");
        let outbox = self.event(
            EventData::UserSignedUp(UserSignedUp {
                user_id: &user_id,
                email: &req.email,
                country,
                channel,
                marketing_opt_in: req.marketing_opt_in,
            }),
            "users.sign-up",
            cid,
        )?;
        let user = User {
            user_id: user_id.clone(),
            email: req.email,
            country: req.country,
            channel: req.channel,
            marketing_opt_in: req.marketing_opt_in,
            created_at_ms: outbox.created_ms,
        };
        let resp = ApiResponse {
            status: 201,
            body: json!({"user_id": user_id}),
        };
        Ok((Write::NewUser(user), outbox, resp))
    }

    async fn log_in(&self, id: &str, body: &[u8], cid: &str) -> Result<Planned, ApiResponse> {
        let req: LogInIn = parse(body)?;
        let method =
            LoginMethod::parse(&req.method).ok_or_else(|| invalid(LoginMethod::EXPECTED))?;
        let country = Country::new(&req.country)
            .ok_or_else(|| invalid("country must be ISO 3166-1 alpha-2"))?;
        match self.store.user(id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(problem(404, "not-found", "No such user", id.to_owned())),
            Err(e) => return Err(store_error(e)),
        }
        let outbox = self.event(
            EventData::UserLoggedIn(UserLoggedIn {
                user_id: id,
                method,
                country,
            }),
            "users.log-in",
            cid,
        )?;
        let resp = ApiResponse {
            status: 200,
            body: json!({"user_id": id, "logged_in": true}),
        };
        Ok((
            Write::UserExists {
                user_id: id.to_owned(),
            },
            outbox,
            resp,
        ))
    }
}

fn codes(order: &Order) -> Result<(Country, Currency), ApiResponse> {
    match (Country::new(&order.country), Currency::new(&order.currency)) {
        (Some(c), Some(cur)) => Ok((c, cur)),
        _ => Err(problem(
            500,
            "internal",
            "Stored order has invalid codes",
            order.order_id.clone(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_map_to_statuses() {
        assert_eq!(store_error(StoreError::Throttled("x".into())).status, 429);
        assert_eq!(store_error(StoreError::Transient("x".into())).status, 503);
        assert_eq!(store_error(StoreError::Conflict("x".into())).status, 409);
        assert_eq!(store_error(StoreError::Permanent("x".into())).status, 500);
        let r = store_error(StoreError::Throttled("x".into()));
        assert_eq!(
            r.body["type"],
            "https://kinesis-pipeline.dev/problems/throttled"
        );
    }
}
