//! Poison records of every kind, built by breaking a valid event in one way.
//! Each kind maps to exactly the reason code the decoder must report.

use base64_simd::STANDARD;
use pipeline_schemas::{
    CancelReason, Channel, Country, Currency, Event, EventData, LineItem, LoginMethod,
    OrderCancelled, OrderCreated, OrderFulfilled, OrderPaymentFailed, OrderPaymentSucceeded,
    PaymentFailureReason, PaymentMethod, ReasonCode, UserLoggedIn, UserProfileUpdated,
    UserSignedUp,
};
use serde_json::{Map, Value, json};

use crate::{Body, Generator};

/// A valid event of a random type about made-up entities (the simulation's
/// state is not touched: a buggy producer's record changes nothing).
fn template(g: &mut Generator, want_order_created: bool) -> (String, Vec<u8>) {
    let rng = &mut g.rng;
    let user_id = format!("usr_{:012x}", rng.next_u64() >> 16);
    let order_id = format!("ord_{:016x}", rng.next_u64());
    let country = Country::new("DE");
    let currency = Currency::new("EUR");
    let (Some(country), Some(currency)) = (country, currency) else {
        unreachable!("constant codes are valid")
    };
    let kind = if want_order_created { 3 } else { rng.below(8) };
    let items = vec![
        LineItem {
            sku: "SKU-00001",
            quantity: 2,
            unit_price_cents: 1299,
        },
        LineItem {
            sku: "SKU-00002",
            quantity: 1,
            unit_price_cents: 499,
        },
    ];
    let data = match kind {
        0 => EventData::UserSignedUp(UserSignedUp {
            user_id: &user_id,
            email: "someone@example.com",
            country,
            channel: Channel::Web,
            marketing_opt_in: false,
        }),
        1 => EventData::UserLoggedIn(UserLoggedIn {
            user_id: &user_id,
            method: LoginMethod::Password,
            country,
        }),
        2 => EventData::UserProfileUpdated(UserProfileUpdated {
            user_id: &user_id,
            changed_fields: vec!["address"],
        }),
        3 => EventData::OrderCreated(OrderCreated {
            order_id: &order_id,
            user_id: &user_id,
            country,
            currency,
            items,
            total_cents: 3097,
        }),
        4 => EventData::OrderPaymentSucceeded(OrderPaymentSucceeded {
            order_id: &order_id,
            user_id: &user_id,
            country,
            payment_id: "pay_0000000000000001",
            amount_cents: 3097,
            currency,
            method: PaymentMethod::Card,
        }),
        5 => EventData::OrderPaymentFailed(OrderPaymentFailed {
            order_id: &order_id,
            user_id: &user_id,
            country,
            amount_cents: 3097,
            currency,
            method: PaymentMethod::Card,
            reason: PaymentFailureReason::CardDeclined,
        }),
        6 => EventData::OrderFulfilled(OrderFulfilled {
            order_id: &order_id,
            user_id: &user_id,
            country,
            warehouse: "fra-1",
            carrier: "dhl",
            shipped_items: 3,
        }),
        _ => EventData::OrderCancelled(OrderCancelled {
            order_id: &order_id,
            user_id: &user_id,
            country,
            reason: CancelReason::CustomerRequest,
        }),
    };
    let event_id = rng.uuid();
    let correlation_id = rng.uuid();
    let event = Event {
        event_id: &event_id,
        schema_version: 1,
        occurred_at_ms: g.now_ms,
        source: "orders.buggy-producer",
        correlation_id: &correlation_id,
        data,
    };
    (event.data.partition_key().to_owned(), event.to_json())
}

fn as_object(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn data_of(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    match obj.get_mut("data") {
        Some(Value::Object(d)) => d,
        _ => unreachable!("templates always carry a data object"),
    }
}

/// The bytes of a poison record of `kind`, and its partition key.
pub(crate) fn make(g: &mut Generator, kind: ReasonCode) -> (String, Body) {
    let (key, json) = template(g, kind == ReasonCode::TotalMismatch);
    let variant = g.rng.below(4);
    let body = match kind {
        ReasonCode::InvalidBase64 => {
            let mut text = STANDARD.encode_to_string(&json);
            let at = g.rng.below(text.len() as u64) as usize;
            let junk = ["*", "!", "%", "é"][variant as usize];
            text.insert_str(at - at % 4, junk);
            Body::RawBase64(text)
        }
        ReasonCode::RecordTooLarge => {
            let mut obj = as_object(&json);
            let pad = g.config.max_record_bytes.saturating_sub(json.len()) + 64;
            obj.insert("padding".into(), Value::String("x".repeat(pad)));
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
        ReasonCode::InvalidUtf8 => {
            let mut bytes = json;
            // inside the value of "source", which every event has
            let at = find(&bytes, b"\"source\":\"").map_or(1, |i| i + 10);
            let bad: &[u8] = [
                &b"\xff"[..],
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xf8\x88\x80\x80\x80",
            ][variant as usize];
            bytes.splice(at..at, bad.iter().copied());
            Body::Json(bytes)
        }
        ReasonCode::MalformedJson => {
            let mut bytes = json;
            match variant {
                0 | 1 => {
                    let cut = 1 + g.rng.below(bytes.len() as u64 - 2) as usize;
                    bytes.truncate(cut);
                }
                2 => bytes.extend_from_slice(b"}"),
                _ => {
                    let at = find(&bytes, b"\",\"").map_or(1, |i| i + 1);
                    bytes.remove(at);
                }
            }
            Body::Json(bytes)
        }
        ReasonCode::NotAnObject => Body::Json(match variant {
            0 => [b"[".as_slice(), &json, b"]"].concat(),
            1 => b"\"order.created\"".to_vec(),
            2 => b"42".to_vec(),
            _ => b"null".to_vec(),
        }),
        ReasonCode::MissingField => {
            let mut obj = as_object(&json);
            if variant == 0 {
                let keys: Vec<String> = obj.keys().cloned().collect();
                let k = g.rng.pick(&keys).clone();
                obj.remove(&k);
            } else {
                let data = data_of(&mut obj);
                let keys: Vec<String> = data.keys().cloned().collect();
                let k = g.rng.pick(&keys).clone();
                data.remove(&k);
            }
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
        ReasonCode::WrongType => {
            let mut obj = as_object(&json);
            let target = if variant == 0 {
                &mut obj
            } else {
                data_of(&mut obj)
            };
            let keys: Vec<String> = target.keys().cloned().collect();
            let k = g.rng.pick(&keys).clone();
            let replacement = match target.get(&k) {
                Some(Value::String(_)) => json!(12345),
                Some(Value::Number(_)) => json!("12"),
                Some(Value::Bool(_)) => json!("yes"),
                Some(Value::Array(_)) => json!({"not": "a list"}),
                Some(Value::Object(_)) => json!("not an object"),
                _ => Value::Null,
            };
            target.insert(k, replacement);
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
        ReasonCode::InvalidField => {
            let mut obj = as_object(&json);
            match variant {
                0 => {
                    obj.insert("event_id".into(), json!("not-a-uuid"));
                }
                1 => {
                    obj.insert("occurred_at".into(), json!("2026-11-25 14:37:56"));
                }
                2 => {
                    let data = data_of(&mut obj);
                    if data.contains_key("country") {
                        data.insert("country".into(), json!("Germany"));
                    } else {
                        data.insert("user_id".into(), json!(""));
                    }
                }
                _ => {
                    obj.insert("correlation_id".into(), json!(""));
                }
            }
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
        ReasonCode::UnknownEventType => {
            let mut obj = as_object(&json);
            let name = ["order.refunded", "user.deleted", "ORDER.CREATED", ""][variant as usize];
            obj.insert("event_type".into(), json!(name));
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
        ReasonCode::UnsupportedSchemaVersion => {
            let mut obj = as_object(&json);
            let version = [2, 0, 99, -1][variant as usize];
            obj.insert("schema_version".into(), json!(version));
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
        ReasonCode::TotalMismatch => {
            let mut obj = as_object(&json);
            let delta = g.rng.range(1, 500);
            data_of(&mut obj).insert("total_cents".into(), json!(3097 + delta));
            Body::Json(serde_json::to_vec(&obj).unwrap_or_default())
        }
    };
    (key, body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
