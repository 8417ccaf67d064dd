//! Events to Arrow record batches, one function per lake table.
//!
//! Builders append into contiguous buffers (no allocation per field); each
//! batch is sized up front from the rows it will hold. Columns that the
//! encoder writes straight from the records (`super::direct`) can be left
//! out: they come back as `None`.

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use pipeline_schemas::EventData;
use pipeline_schemas::lake::Table;
use pipeline_schemas::rules::email_domain;

use crate::batch::ValidRecord;

fn ts(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")
}

/// The nine columns every table starts with.
struct Common {
    event_id: Option<StringBuilder>,
    event_type: StringBuilder,
    schema_version: Int32Builder,
    occurred_at: Option<TimestampMillisecondBuilder>,
    source: StringBuilder,
    correlation_id: Option<StringBuilder>,
    shard_id: StringBuilder,
    sequence_number: Option<StringBuilder>,
    arrived_at: Option<TimestampMillisecondBuilder>,
}

/// Which of a table's columns (by position) are left out of its batch.
pub type Skip = [bool];

/// `value` unless column `c` is skipped.
fn unless<T>(skip: &Skip, c: usize, value: impl FnOnce() -> T) -> Option<T> {
    (!skip.get(c).copied().unwrap_or(false)).then(value)
}

/// A string builder for column `c`, unless it is skipped.
fn strings(skip: &Skip, c: usize, n: usize, bytes: usize) -> Option<StringBuilder> {
    unless(skip, c, || StringBuilder::with_capacity(n, n * bytes))
}

impl Common {
    fn new(n: usize, skip: &Skip) -> Self {
        Common {
            event_id: strings(skip, 0, n, 36),
            event_type: StringBuilder::with_capacity(n, n * 16),
            schema_version: Int32Builder::with_capacity(n),
            occurred_at: unless(skip, 3, || ts(n)),
            source: StringBuilder::with_capacity(n, n * 20),
            correlation_id: strings(skip, 5, n, 36),
            shard_id: StringBuilder::with_capacity(n, n * 20),
            sequence_number: strings(skip, 7, n, 56),
            arrived_at: unless(skip, 8, || ts(n)),
        }
    }

    fn push(&mut self, r: &ValidRecord<'_>) {
        let e = &r.event;
        if let Some(b) = &mut self.event_id {
            b.append_value(e.event_id);
        }
        self.event_type.append_value(e.event_type().as_str());
        self.schema_version.append_value(e.schema_version as i32);
        if let Some(b) = &mut self.occurred_at {
            b.append_value(e.occurred_at_ms);
        }
        self.source.append_value(e.source);
        if let Some(b) = &mut self.correlation_id {
            b.append_value(e.correlation_id);
        }
        self.shard_id.append_value(r.meta.shard_id);
        if let Some(b) = &mut self.sequence_number {
            b.append_value(r.meta.sequence_number);
        }
        if let Some(b) = &mut self.arrived_at {
            b.append_value(r.meta.arrival_ms);
        }
    }

    fn finish(self) -> Columns {
        vec![
            self.event_id.map(finish),
            Some(finish(self.event_type)),
            Some(finish(self.schema_version)),
            self.occurred_at.map(finish),
            Some(finish(self.source)),
            self.correlation_id.map(finish),
            Some(finish(self.shard_id)),
            self.sequence_number.map(finish),
            self.arrived_at.map(finish),
        ]
    }
}

/// A table's columns in schema order, `None` where left out.
pub type Columns = Vec<Option<ArrayRef>>;

fn finish(mut builder: impl ArrayBuilder) -> ArrayRef {
    builder.finish()
}

/// The columns as a batch of the table's schema (none left out).
pub fn batch(table: Table, columns: Columns) -> Result<RecordBatch, ArrowError> {
    let columns = columns
        .into_iter()
        .enumerate()
        .map(|(c, column)| {
            column.ok_or_else(|| {
                ArrowError::InvalidArgumentError(format!(
                    "column {c} of {} was left out",
                    table.name()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(table.schema(), columns)
}

/// The table-specific columns of one `user_events` row; `None` is null.
#[derive(Default)]
struct UserRow<'a> {
    user_id: &'a str,
    country: Option<&'a str>,
    channel: Option<&'static str>,
    login_method: Option<&'static str>,
    marketing_opt_in: Option<bool>,
    changed_fields: Option<&'a [&'a str]>,
    email_domain: Option<&'a str>,
}

/// `user_events` rows for `rows` (user events only).
pub fn user_events<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
    skip: &Skip,
) -> Result<Columns, ArrowError> {
    let n = rows.clone().count();
    let mut common = Common::new(n, skip);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut country = StringBuilder::with_capacity(n, n * 2);
    let mut channel = StringBuilder::with_capacity(n, n * 4);
    let mut login_method = StringBuilder::with_capacity(n, n * 4);
    let mut opt_in = BooleanBuilder::with_capacity(n);
    let mut changed = ListBuilder::new(StringBuilder::new());
    let mut domain = StringBuilder::with_capacity(n, n * 8);
    for r in rows {
        let row = match &r.event.data {
            EventData::UserSignedUp(d) => UserRow {
                user_id: d.user_id,
                country: Some(d.country.as_str()),
                channel: Some(d.channel.as_str()),
                marketing_opt_in: Some(d.marketing_opt_in),
                email_domain: Some(email_domain(d.email)),
                ..UserRow::default()
            },
            EventData::UserLoggedIn(d) => UserRow {
                user_id: d.user_id,
                country: Some(d.country.as_str()),
                login_method: Some(d.method.as_str()),
                ..UserRow::default()
            },
            EventData::UserProfileUpdated(d) => UserRow {
                user_id: d.user_id,
                changed_fields: Some(&d.changed_fields),
                ..UserRow::default()
            },
            _ => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "{} is not a user event",
                    r.event.event_type()
                )));
            }
        };
        common.push(r);
        user_id.append_value(row.user_id);
        country.append_option(row.country);
        channel.append_option(row.channel);
        login_method.append_option(row.login_method);
        opt_in.append_option(row.marketing_opt_in);
        match row.changed_fields {
            Some(fields) => {
                for f in fields {
                    changed.values().append_value(f);
                }
                changed.append(true);
            }
            None => changed.append_null(),
        }
        domain.append_option(row.email_domain);
    }
    let mut cols = common.finish();
    let rest: [Option<ArrayRef>; 7] = [
        Some(finish(user_id)),
        Some(finish(country)),
        Some(finish(channel)),
        Some(finish(login_method)),
        Some(finish(opt_in)),
        Some(finish(changed)),
        Some(finish(domain)),
    ];
    cols.extend(rest);
    Ok(cols)
}

/// The table-specific columns of one `order_events` row; `None` is null.
#[derive(Default)]
struct OrderRow<'a> {
    order_id: &'a str,
    user_id: &'a str,
    country: &'a str,
    currency: Option<&'a str>,
    amount_cents: Option<i64>,
    item_count: Option<i32>,
    payment_id: Option<&'a str>,
    payment_method: Option<&'static str>,
    failure_reason: Option<&'static str>,
    warehouse: Option<&'a str>,
    carrier: Option<&'a str>,
    shipped_items: Option<i32>,
    cancel_reason: Option<&'static str>,
}

fn order_row<'a>(data: &'a EventData<'a>) -> Option<OrderRow<'a>> {
    Some(match data {
        EventData::OrderCreated(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            currency: Some(d.currency.as_str()),
            amount_cents: Some(d.total_cents as i64),
            item_count: Some(d.items.len() as i32),
            ..OrderRow::default()
        },
        EventData::OrderPaymentSucceeded(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            currency: Some(d.currency.as_str()),
            amount_cents: Some(d.amount_cents as i64),
            payment_id: Some(d.payment_id),
            payment_method: Some(d.method.as_str()),
            ..OrderRow::default()
        },
        EventData::OrderPaymentFailed(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            currency: Some(d.currency.as_str()),
            amount_cents: Some(d.amount_cents as i64),
            payment_method: Some(d.method.as_str()),
            failure_reason: Some(d.reason.as_str()),
            ..OrderRow::default()
        },
        EventData::OrderFulfilled(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            warehouse: Some(d.warehouse),
            carrier: Some(d.carrier),
            shipped_items: Some(d.shipped_items as i32),
            ..OrderRow::default()
        },
        EventData::OrderCancelled(d) => OrderRow {
            order_id: d.order_id,
            user_id: d.user_id,
            country: d.country.as_str(),
            cancel_reason: Some(d.reason.as_str()),
            ..OrderRow::default()
        },
        _ => return None,
    })
}

/// `order_events` rows for `rows` (order events only).
pub fn order_events<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
    skip: &Skip,
) -> Result<Columns, ArrowError> {
    let n = rows.clone().count();
    let mut common = Common::new(n, skip);
    let mut order_id = strings(skip, 9, n, 20);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut country = StringBuilder::with_capacity(n, n * 2);
    let mut currency = StringBuilder::with_capacity(n, n * 3);
    let mut amount = Int64Builder::with_capacity(n);
    let mut item_count = Int32Builder::with_capacity(n);
    let mut payment_id = StringBuilder::with_capacity(n, n * 8);
    let mut method = StringBuilder::with_capacity(n, n * 4);
    let mut failure = StringBuilder::with_capacity(n, n * 4);
    let mut warehouse = StringBuilder::with_capacity(n, n * 2);
    let mut carrier = StringBuilder::with_capacity(n, n * 2);
    let mut shipped = Int32Builder::with_capacity(n);
    let mut cancel = StringBuilder::with_capacity(n, n * 2);
    for r in rows {
        let Some(row) = order_row(&r.event.data) else {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{} is not an order event",
                r.event.event_type()
            )));
        };
        common.push(r);
        if let Some(b) = &mut order_id {
            b.append_value(row.order_id);
        }
        user_id.append_value(row.user_id);
        country.append_value(row.country);
        currency.append_option(row.currency);
        amount.append_option(row.amount_cents);
        item_count.append_option(row.item_count);
        payment_id.append_option(row.payment_id);
        method.append_option(row.payment_method);
        failure.append_option(row.failure_reason);
        warehouse.append_option(row.warehouse);
        carrier.append_option(row.carrier);
        shipped.append_option(row.shipped_items);
        cancel.append_option(row.cancel_reason);
    }
    let mut cols = common.finish();
    let rest: [Option<ArrayRef>; 13] = [
        order_id.map(finish),
        Some(finish(user_id)),
        Some(finish(country)),
        Some(finish(currency)),
        Some(finish(amount)),
        Some(finish(item_count)),
        Some(finish(payment_id)),
        Some(finish(method)),
        Some(finish(failure)),
        Some(finish(warehouse)),
        Some(finish(carrier)),
        Some(finish(shipped)),
        Some(finish(cancel)),
    ];
    cols.extend(rest);
    Ok(cols)
}

/// `order_items` rows: one per line item of each `order.created` in `rows`.
pub fn order_items<'a>(
    rows: impl Iterator<Item = &'a ValidRecord<'a>> + Clone,
    skip: &Skip,
) -> Result<Columns, ArrowError> {
    let n: usize = rows
        .clone()
        .map(|r| match &r.event.data {
            EventData::OrderCreated(d) => d.items.len(),
            _ => 0,
        })
        .sum();
    let mut common = Common::new(n, skip);
    let mut order_id = strings(skip, 9, n, 20);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut line = Int32Builder::with_capacity(n);
    let mut sku = StringBuilder::with_capacity(n, n * 10);
    let mut quantity = Int32Builder::with_capacity(n);
    let mut price = Int64Builder::with_capacity(n);
    let mut currency = StringBuilder::with_capacity(n, n * 3);
    let mut country = StringBuilder::with_capacity(n, n * 2);
    for r in rows {
        let EventData::OrderCreated(d) = &r.event.data else {
            continue;
        };
        for (i, item) in d.items.iter().enumerate() {
            common.push(r);
            if let Some(b) = &mut order_id {
                b.append_value(d.order_id);
            }
            user_id.append_value(d.user_id);
            line.append_value(i as i32 + 1);
            sku.append_value(item.sku);
            quantity.append_value(item.quantity as i32);
            price.append_value(item.unit_price_cents as i64);
            currency.append_value(d.currency.as_str());
            country.append_value(d.country.as_str());
        }
    }
    let mut cols = common.finish();
    let rest: [Option<ArrayRef>; 8] = [
        order_id.map(finish),
        Some(finish(user_id)),
        Some(finish(line)),
        Some(finish(sku)),
        Some(finish(quantity)),
        Some(finish(price)),
        Some(finish(currency)),
        Some(finish(country)),
    ];
    cols.extend(rest);
    Ok(cols)
}
