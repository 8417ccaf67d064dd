//! The baselines the benchmarks compare against: what a careful team writes
//! with the ordinary tools. `aws_lambda_events` + `serde_json` into typed
//! structs, then the same contract checks (the shared [`rules`]), so both
//! sides do the same work and reach the same verdicts.

use aws_lambda_events::event::kinesis::KinesisEvent;
use pipeline_schemas::rules::{self, MAX_ID_CHARS, MAX_INT32, MAX_SAFE_INTEGER, MAX_SHORT_CHARS};
use pipeline_schemas::{
    CancelReason, Channel, Country, Currency, EventType, LoginMethod, PaymentFailureReason,
    PaymentMethod,
};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Envelope<'a> {
    event_id: String,
    event_type: String,
    schema_version: i64,
    occurred_at: String,
    source: String,
    correlation_id: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct SignedUp {
    user_id: String,
    email: String,
    country: String,
    channel: String,
    marketing_opt_in: bool,
}

#[derive(Deserialize)]
struct LoggedIn {
    user_id: String,
    method: String,
    country: String,
}

#[derive(Deserialize)]
struct ProfileUpdated {
    user_id: String,
    changed_fields: Vec<String>,
}

#[derive(Deserialize)]
struct Item {
    sku: String,
    quantity: u64,
    unit_price_cents: u64,
}

#[derive(Deserialize)]
struct Created {
    order_id: String,
    user_id: String,
    country: String,
    currency: String,
    items: Vec<Item>,
    total_cents: u64,
}

#[derive(Deserialize)]
struct Paid {
    order_id: String,
    user_id: String,
    country: String,
    payment_id: String,
    amount_cents: u64,
    currency: String,
    method: String,
}

#[derive(Deserialize)]
struct PayFailed {
    order_id: String,
    user_id: String,
    country: String,
    amount_cents: u64,
    currency: String,
    method: String,
    reason: String,
}

#[derive(Deserialize)]
struct Fulfilled {
    order_id: String,
    user_id: String,
    country: String,
    warehouse: String,
    carrier: String,
    shipped_items: u64,
}

#[derive(Deserialize)]
struct Cancelled {
    order_id: String,
    user_id: String,
    country: String,
    reason: String,
}

/// A validated event in owned form, as the baseline produces it.
#[derive(Debug)]
pub struct BaselineEvent {
    /// The event type.
    pub event_type: EventType,
    /// Event time, epoch milliseconds.
    pub occurred_at_ms: i64,
    /// The event id.
    pub event_id: String,
    /// The partition entity (`order_id` or `user_id`).
    pub entity: String,
    /// Money amount where the type has one.
    pub amount_cents: u64,
}

type Verdict = Result<BaselineEvent, &'static str>;

fn check(ok: bool, why: &'static str) -> Result<(), &'static str> {
    if ok { Ok(()) } else { Err(why) }
}

fn id(s: &str) -> Result<(), &'static str> {
    check(rules::has_char_len(s, MAX_ID_CHARS), "invalid_field")
}

fn country(s: &str) -> Result<Country, &'static str> {
    Country::new(s).ok_or("invalid_field")
}

fn currency(s: &str) -> Result<Currency, &'static str> {
    Currency::new(s).ok_or("invalid_field")
}

fn cents(v: u64) -> Result<u64, &'static str> {
    check(v <= MAX_SAFE_INTEGER, "invalid_field").map(|()| v)
}

fn data<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, &'static str> {
    serde_json::from_str(raw.get()).map_err(|_| "data")
}

/// Parses and validates one record the ordinary way: `serde_json` into typed
/// structs (envelope first, then the payload type named by `event_type`).
pub fn parse_record(bytes: &[u8]) -> Verdict {
    let env: Envelope<'_> = serde_json::from_slice(bytes).map_err(|_| "malformed_json")?;
    check(env.schema_version == 1, "unsupported_schema_version")?;
    let event_type = EventType::parse(&env.event_type).ok_or("unknown_event_type")?;
    check(rules::is_uuid(&env.event_id), "invalid_field")?;
    let occurred_at_ms = rules::parse_rfc3339_utc_ms(&env.occurred_at).ok_or("invalid_field")?;
    id(&env.source)?;
    check(rules::is_uuid(&env.correlation_id), "invalid_field")?;
    let (entity, amount_cents) = match event_type {
        EventType::UserSignedUp => {
            let d: SignedUp = data(env.data)?;
            id(&d.user_id)?;
            check(rules::is_email(&d.email), "invalid_field")?;
            country(&d.country)?;
            Channel::parse(&d.channel).ok_or("invalid_field")?;
            let _ = d.marketing_opt_in;
            (d.user_id, 0)
        }
        EventType::UserLoggedIn => {
            let d: LoggedIn = data(env.data)?;
            id(&d.user_id)?;
            LoginMethod::parse(&d.method).ok_or("invalid_field")?;
            country(&d.country)?;
            (d.user_id, 0)
        }
        EventType::UserProfileUpdated => {
            let d: ProfileUpdated = data(env.data)?;
            id(&d.user_id)?;
            check(
                (1..=rules::MAX_CHANGED_FIELDS).contains(&d.changed_fields.len()),
                "invalid_field",
            )?;
            for f in &d.changed_fields {
                check(rules::has_char_len(f, MAX_SHORT_CHARS), "invalid_field")?;
            }
            (d.user_id, 0)
        }
        EventType::OrderCreated => {
            let d: Created = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            currency(&d.currency)?;
            check(
                (1..=rules::MAX_ITEMS).contains(&d.items.len()),
                "invalid_field",
            )?;
            let mut sum = 0u128;
            for item in &d.items {
                check(
                    rules::has_char_len(&item.sku, MAX_SHORT_CHARS),
                    "invalid_field",
                )?;
                check((1..=MAX_INT32).contains(&item.quantity), "invalid_field")?;
                cents(item.unit_price_cents)?;
                sum += u128::from(item.quantity) * u128::from(item.unit_price_cents);
            }
            let total = cents(d.total_cents)?;
            check(sum == u128::from(total), "total_mismatch")?;
            (d.order_id, total)
        }
        EventType::OrderPaymentSucceeded => {
            let d: Paid = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            id(&d.payment_id)?;
            currency(&d.currency)?;
            PaymentMethod::parse(&d.method).ok_or("invalid_field")?;
            (d.order_id, cents(d.amount_cents)?)
        }
        EventType::OrderPaymentFailed => {
            let d: PayFailed = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            currency(&d.currency)?;
            PaymentMethod::parse(&d.method).ok_or("invalid_field")?;
            PaymentFailureReason::parse(&d.reason).ok_or("invalid_field")?;
            (d.order_id, cents(d.amount_cents)?)
        }
        EventType::OrderFulfilled => {
            let d: Fulfilled = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            id(&d.warehouse)?;
            id(&d.carrier)?;
            check((1..=MAX_INT32).contains(&d.shipped_items), "invalid_field")?;
            (d.order_id, 0)
        }
        EventType::OrderCancelled => {
            let d: Cancelled = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            CancelReason::parse(&d.reason).ok_or("invalid_field")?;
            (d.order_id, 0)
        }
    };
    Ok(BaselineEvent {
        event_type,
        occurred_at_ms,
        event_id: env.event_id,
        entity,
        amount_cents,
    })
}

/// Decodes a whole invocation the ordinary way: `aws_lambda_events`'
/// `KinesisEvent` through `serde_json` (which base64-decodes `data`), then
/// [`parse_record`] on each record. Returns (valid, rejected).
pub fn decode_invocation(payload: &[u8]) -> Result<(usize, usize), serde_json::Error> {
    let event: KinesisEvent = serde_json::from_slice(payload)?;
    let mut valid = 0;
    let mut rejected = 0;
    for record in &event.records {
        match parse_record(&record.kinesis.data.0) {
            Ok(_) => valid += 1,
            Err(_) => rejected += 1,
        }
    }
    Ok((valid, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_generator::kinesis::{self, StreamInfo};
    use pipeline_generator::{Body, Expected, PoisonMix, TrafficConfig, generate};

    /// The baseline must reach the same verdicts, or the comparison is unfair.
    #[test]
    fn baseline_agrees_with_the_simd_path_on_valid_and_invalid_records() {
        let records = generate(TrafficConfig {
            events: 3000,
            poison: PoisonMix::uniform(0.2),
            max_record_bytes: 8192,
            ..TrafficConfig::default()
        });
        for r in &records {
            let Body::Json(bytes) = &r.body else { continue };
            let ok = parse_record(bytes).is_ok();
            let expected_ok = matches!(r.expected, Expected::Valid(_));
            if r.expected != Expected::Poison(pipeline_schemas::ReasonCode::RecordTooLarge) {
                assert_eq!(
                    ok,
                    expected_ok,
                    "{:?}: {}",
                    r.expected,
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        let readable: Vec<_> = records
            .iter()
            .filter(|r| matches!(r.body, Body::Json(_)))
            .take(500)
            .cloned()
            .collect();
        let shards = kinesis::route(&readable, 1);
        let payload = kinesis::invocation_payload(&shards[0], &StreamInfo::default());
        let (valid, rejected) = decode_invocation(&payload).expect("a Kinesis event");
        assert_eq!(valid + rejected, 500);
    }

    /// Why the ordinary path is not good enough: one record with corrupt
    /// base64 fails the whole invocation, so Lambda retries the batch forever.
    #[test]
    fn the_ordinary_path_fails_the_whole_batch_on_one_corrupt_record() {
        let records = generate(TrafficConfig {
            events: 2000,
            poison: PoisonMix::parse("invalid_base64=0.01").expect("valid mix"),
            ..TrafficConfig::default()
        });
        let shards = kinesis::route(&records, 1);
        let mut payload = kinesis::invocation_payload(&shards[0], &StreamInfo::default());
        assert!(decode_invocation(&payload).is_err());
        let mut ours = pipeline_schemas::InvocationDecoder::default();
        let decoded = ours.decode(&mut payload).expect("a Kinesis event");
        assert_eq!(decoded.len(), 2000);
        assert!(decoded.iter().any(|r| r.outcome.is_err()));
    }
}
