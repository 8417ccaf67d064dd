//! The baselines the benchmarks compare against: what a careful team writes
//! with the ordinary tools. `aws_lambda_events` + `serde_json` into typed
//! structs, then the same contract checks (the shared [`rules`]), so both
//! sides do the same work and reach the same verdicts.

pub mod fixtures;

use aws_lambda_events::event::kinesis::KinesisEvent;
use pipeline_schemas::rules::{self, MAX_ID_CHARS, MAX_INT32, MAX_SAFE_INTEGER, MAX_SHORT_CHARS};
use pipeline_schemas::{
    CancelReason, Channel, Country, Currency, Event, EventData, EventType, LineItem, LoginMethod,
    OrderCancelled, OrderCreated, OrderFulfilled, OrderPaymentFailed, OrderPaymentSucceeded,
    PaymentFailureReason, PaymentMethod, UserLoggedIn, UserProfileUpdated, UserSignedUp,
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

/// The typed payload, as serde produced it.
enum Payload {
    SignedUp(SignedUp),
    LoggedIn(LoggedIn),
    Profile(ProfileUpdated),
    Created(Created),
    Paid(Paid),
    PayFailed(PayFailed),
    Fulfilled(Fulfilled),
    Cancelled(Cancelled),
}

/// A validated event in owned form, as the baseline produces it.
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
    source: String,
    correlation_id: String,
    payload: Payload,
}

impl std::fmt::Debug for BaselineEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaselineEvent")
            .field("event_id", &self.event_id)
            .finish_non_exhaustive()
    }
}

impl BaselineEvent {
    /// The event as the lake encoder takes it (borrowing the owned strings).
    pub fn event(&self) -> Option<Event<'_>> {
        let data = match &self.payload {
            Payload::SignedUp(d) => EventData::UserSignedUp(UserSignedUp {
                user_id: &d.user_id,
                email: &d.email,
                country: Country::new(&d.country)?,
                channel: Channel::parse(&d.channel)?,
                marketing_opt_in: d.marketing_opt_in,
            }),
            Payload::LoggedIn(d) => EventData::UserLoggedIn(UserLoggedIn {
                user_id: &d.user_id,
                method: LoginMethod::parse(&d.method)?,
                country: Country::new(&d.country)?,
            }),
            Payload::Profile(d) => EventData::UserProfileUpdated(UserProfileUpdated {
                user_id: &d.user_id,
                changed_fields: d.changed_fields.iter().map(String::as_str).collect(),
            }),
            Payload::Created(d) => EventData::OrderCreated(OrderCreated {
                order_id: &d.order_id,
                user_id: &d.user_id,
                country: Country::new(&d.country)?,
                currency: Currency::new(&d.currency)?,
                items: d
                    .items
                    .iter()
                    .map(|i| LineItem {
                        sku: &i.sku,
                        quantity: i.quantity as u32,
                        unit_price_cents: i.unit_price_cents,
                    })
                    .collect(),
                total_cents: d.total_cents,
            }),
            Payload::Paid(d) => EventData::OrderPaymentSucceeded(OrderPaymentSucceeded {
                order_id: &d.order_id,
                user_id: &d.user_id,
                country: Country::new(&d.country)?,
                payment_id: &d.payment_id,
                amount_cents: d.amount_cents,
                currency: Currency::new(&d.currency)?,
                method: PaymentMethod::parse(&d.method)?,
            }),
            Payload::PayFailed(d) => EventData::OrderPaymentFailed(OrderPaymentFailed {
                order_id: &d.order_id,
                user_id: &d.user_id,
                country: Country::new(&d.country)?,
                amount_cents: d.amount_cents,
                currency: Currency::new(&d.currency)?,
                method: PaymentMethod::parse(&d.method)?,
                reason: PaymentFailureReason::parse(&d.reason)?,
            }),
            Payload::Fulfilled(d) => EventData::OrderFulfilled(OrderFulfilled {
                order_id: &d.order_id,
                user_id: &d.user_id,
                country: Country::new(&d.country)?,
                warehouse: &d.warehouse,
                carrier: &d.carrier,
                shipped_items: d.shipped_items as u32,
            }),
            Payload::Cancelled(d) => EventData::OrderCancelled(OrderCancelled {
                order_id: &d.order_id,
                user_id: &d.user_id,
                country: Country::new(&d.country)?,
                reason: CancelReason::parse(&d.reason)?,
            }),
        };
        Some(Event {
            event_id: &self.event_id,
            schema_version: 1,
            occurred_at_ms: self.occurred_at_ms,
            source: &self.source,
            correlation_id: &self.correlation_id,
            data,
        })
    }
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
    let (entity, amount_cents, payload) = match event_type {
        EventType::UserSignedUp => {
            let d: SignedUp = data(env.data)?;
            id(&d.user_id)?;
            check(rules::is_email(&d.email), "invalid_field")?;
            country(&d.country)?;
            Channel::parse(&d.channel).ok_or("invalid_field")?;
            let _ = d.marketing_opt_in;
            (d.user_id.clone(), 0, Payload::SignedUp(d))
        }
        EventType::UserLoggedIn => {
            let d: LoggedIn = data(env.data)?;
            id(&d.user_id)?;
            LoginMethod::parse(&d.method).ok_or("invalid_field")?;
            country(&d.country)?;
            (d.user_id.clone(), 0, Payload::LoggedIn(d))
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
            (d.user_id.clone(), 0, Payload::Profile(d))
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
            (d.order_id.clone(), total, Payload::Created(d))
        }
        EventType::OrderPaymentSucceeded => {
            let d: Paid = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            id(&d.payment_id)?;
            currency(&d.currency)?;
            PaymentMethod::parse(&d.method).ok_or("invalid_field")?;
            (d.order_id.clone(), cents(d.amount_cents)?, Payload::Paid(d))
        }
        EventType::OrderPaymentFailed => {
            let d: PayFailed = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            currency(&d.currency)?;
            PaymentMethod::parse(&d.method).ok_or("invalid_field")?;
            PaymentFailureReason::parse(&d.reason).ok_or("invalid_field")?;
            (
                d.order_id.clone(),
                cents(d.amount_cents)?,
                Payload::PayFailed(d),
            )
        }
        EventType::OrderFulfilled => {
            let d: Fulfilled = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            id(&d.warehouse)?;
            id(&d.carrier)?;
            check((1..=MAX_INT32).contains(&d.shipped_items), "invalid_field")?;
            (d.order_id.clone(), 0, Payload::Fulfilled(d))
        }
        EventType::OrderCancelled => {
            let d: Cancelled = data(env.data)?;
            id(&d.order_id)?;
            id(&d.user_id)?;
            country(&d.country)?;
            CancelReason::parse(&d.reason).ok_or("invalid_field")?;
            (d.order_id.clone(), 0, Payload::Cancelled(d))
        }
    };
    Ok(BaselineEvent {
        event_type,
        occurred_at_ms,
        event_id: env.event_id,
        entity,
        amount_cents,
        source: env.source,
        correlation_id: env.correlation_id,
        payload,
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

/// Archives an invocation the ordinary way: `aws_lambda_events` +
/// `serde_json` into owned typed structs, validated, then row-by-row Arrow
/// builders and `parquet`'s column writers for every column (ours writes
/// six of them straight from the records), with the same bytes out.
/// Returns (valid, rejected, Parquet files).
pub fn archive_invocation(
    payload: &[u8],
    codec: pipeline_processors::Codec,
) -> Result<(usize, usize, Vec<pipeline_processors::lake::LakeFile>), String> {
    let event: KinesisEvent = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let mut owned = Vec::with_capacity(event.records.len());
    let mut rejected = 0;
    for (i, record) in event.records.iter().enumerate() {
        match parse_record(&record.kinesis.data.0) {
            Ok(e) => owned.push((i, record, e)),
            Err(_) => rejected += 1,
        }
    }
    let mut rows = Vec::with_capacity(owned.len());
    for (i, record, e) in &owned {
        let event_id = record.event_id.as_deref().unwrap_or("");
        let meta = pipeline_schemas::RecordMeta {
            index: *i,
            sequence_number: record.kinesis.sequence_number.as_str(),
            partition_key: record.kinesis.partition_key.as_str(),
            shard_id: event_id.split_once(':').map_or("", |(s, _)| s),
            event_source_arn: record.event_source_arn.as_deref().unwrap_or(""),
            arrival_ms: record
                .kinesis
                .approximate_arrival_timestamp
                .0
                .timestamp_millis(),
            data_base64: b"",
        };
        let event = e.event().ok_or("validated event did not convert")?;
        rows.push((*i, meta, event));
    }
    let valid: Vec<_> = rows
        .iter()
        .map(|(position, meta, event)| pipeline_processors::ValidRecord {
            position: *position,
            meta,
            event,
        })
        .collect();
    let files = pipeline_processors::lake::encode_through_arrow(&valid, codec)?;
    Ok((valid.len(), rejected, files))
}

/// Aggregates an invocation the ordinary way: the whole `KinesisEvent`
/// through `serde_json`, [`parse_record`] on each record, then the same
/// de-duplication and aggregation as ours. Returns the metric records of the
/// window.
pub fn aggregate_invocation(
    payload: &[u8],
) -> Result<Vec<pipeline_aggregators::MetricRecord>, serde_json::Error> {
    use pipeline_aggregators::window::{WindowState, records_of};
    let event: KinesisEvent = serde_json::from_slice(payload)?;
    let mut state = WindowState::default();
    count_into(
        &mut state,
        event.records.iter().map(|r| &r.kinesis.data.0[..]),
    );
    Ok(records_of(&state, "shardId-000000000000", 0, 60_000))
}

/// Parses each record ([`parse_record`]) and counts the valid events into
/// `state`, each `event_id` once per window, as ours does.
fn count_into<'r>(
    state: &mut pipeline_aggregators::WindowState,
    records: impl Iterator<Item = &'r [u8]>,
) {
    use pipeline_aggregators::window::id_digest;
    let verdicts: Vec<Verdict> = records.map(parse_record).collect();
    let digests: Vec<Option<u64>> = verdicts
        .iter()
        .map(|v| {
            v.as_ref()
                .ok()
                .and_then(|e| e.event())
                .map(|ev| id_digest(ev.event_id))
        })
        .collect();
    let counts = state.admit([&digests[..]]);
    for (verdict, counted) in verdicts.iter().zip(counts) {
        if counted
            && let Ok(e) = verdict
            && let Some(ev) = e.event()
        {
            pipeline_aggregators::measures::add_event(&mut state.aggregates, &ev);
        }
    }
}

/// A mid-window invocation the ordinary way: `KinesisTimeWindowEvent`
/// through `serde_json`, the window's state decoded, [`parse_record`] on each
/// record with the same de-duplication and aggregation as ours, and the
/// `KinesisTimeWindowEventResponse` carrying the new state serialized, as the
/// runtime would send it. Returns the response's bytes.
pub fn aggregate_mid_window(payload: &[u8]) -> Result<Vec<u8>, String> {
    use aws_lambda_events::event::kinesis::{
        KinesisTimeWindowEvent, KinesisTimeWindowEventResponse,
    };
    use pipeline_aggregators::window::{STATE_KEY, WindowState};
    let event: KinesisTimeWindowEvent =
        serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let mut state = match event.time_window_properties.state.get(STATE_KEY) {
        Some(text) => WindowState::decode(text)?,
        None => WindowState::default(),
    };
    count_into(
        &mut state,
        event
            .kinesis_event
            .records
            .iter()
            .map(|r| &r.kinesis.data.0[..]),
    );
    let mut response = KinesisTimeWindowEventResponse::default();
    let properties = &mut response.time_window_event_response_properties;
    properties
        .state
        .insert(STATE_KEY.to_owned(), state.encode());
    serde_json::to_vec(&response).map_err(|e| e.to_string())
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

    /// Mid-window, the baseline carries the same state forward as ours.
    #[test]
    fn mid_window_baseline_returns_the_state_ours_returns() {
        use crate::fixtures::{CountingSink, deadline, mid_window_payload, runtime};
        use pipeline_aggregators::WindowAggregator;
        use pipeline_aggregators::window::STATE_KEY;
        let mut payload = mid_window_payload(2_000, 1_000);
        let response = aggregate_mid_window(&payload).expect("the baseline aggregates");
        let theirs: serde_json::Value = serde_json::from_slice(&response).expect("JSON");
        let mut ours = WindowAggregator::new(
            CountingSink::default(),
            pipeline_schemas::DecoderConfig::default(),
        );
        let out = runtime()
            .block_on(ours.process(&mut payload, deadline()))
            .expect("ours aggregates");
        assert_eq!(out.stats.counted, 1_000);
        let state = &theirs["state"][STATE_KEY];
        assert!(state.as_str().is_some_and(|s| s.len() > 3_000 * 8));
        assert_eq!(state, &out.response["state"][STATE_KEY]);
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
